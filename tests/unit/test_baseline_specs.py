"""Baseline catalogue, ONNX models at the job's shapes, and validity flags (no browser)."""

from __future__ import annotations

import base64

import numpy as np
import onnx
import pytest
from onnx.reference import ReferenceEvaluator

from farm.baselines.catalog import CATALOG, baseline_spec
from farm.baselines.onnx_models import model_for
from farm.config.experiments import BASELINES
from farm.scheduler.job import BASELINE_LIBRARIES
from farm.validity import baseline_flags, probe_flags
from jit_core.ops import MatMul
from jit_core.reference import op_inputs, prng_f32


def test_every_library_backend_is_a_baseline_experiments_can_name():
    assert set(BASELINES) == set(CATALOG) == set(BASELINE_LIBRARIES)
    assert {"tfjs-webgpu", "tfjs-webgl", "tfjs-wasm", "tfjs-cpu", "ort-webgpu", "ort-wasm", "ort-webgl"} <= set(CATALOG)


@pytest.mark.parametrize("op", [MatMul(4, 6, 5), MatMul(3, 4, 5, batch=2)])
def test_onnx_matmul_model_computes_the_reference_on_the_shared_prng_inputs(op):
    model = onnx.load_from_string(model_for(op))
    x = op_inputs(op, seed=3)
    lead = (op.batch,) if op.batch > 1 else ()
    a = x["A"].reshape(lead + (op.M, op.K))
    b = x["B"].reshape(lead + (op.K, op.N))
    (c,) = ReferenceEvaluator(model).run(None, {"A": a, "B": b})
    np.testing.assert_allclose(c, a @ b, rtol=1e-5, atol=1e-5)


def test_gemm_with_bias_model_adds_the_bias_row_and_its_spec_carries_a_bias_buffer():
    op = MatMul(4, 6, 5)
    spec = baseline_spec("ort-wasm", op, seed=2, measure={}, positions=[0, 1], graph="gemm-bias")
    names = [b["name"] for b in spec["buffers"]]
    assert names == ["A", "B", "bias", "C"]
    model = onnx.load_from_string(base64.b64decode(spec["model"]["base64"]))
    x = op_inputs(op, seed=2)
    a, b = x["A"].reshape(op.M, op.K), x["B"].reshape(op.K, op.N)
    bias = prng_f32(2, 2, op.N)
    (c,) = ReferenceEvaluator(model).run(None, {"A": a, "B": b, "bias": bias})
    np.testing.assert_allclose(c, a @ b + bias, rtol=1e-5, atol=1e-5)


def test_only_webgpu_baselines_ask_for_the_shared_device_and_only_ort_carries_a_model():
    op = MatMul(8, 8, 8)
    specs = {n: baseline_spec(n, op, seed=1, measure={}, positions=[0]) for n in CATALOG}
    assert {n for n, s in specs.items() if s["device"] == "shared"} == {"tfjs-webgpu", "ort-webgpu"}
    assert {n for n, s in specs.items() if "model" in s} == {"ort-webgpu", "ort-wasm", "ort-webgl"}


SWIFTSHADER = {"adapter": {"vendor": "google", "architecture": "swiftshader", "isFallbackAdapter": True,
                           "featureLevel": "core"}, "crossOriginIsolated": True, "hardwareConcurrency": 2}
LAVAPIPE_COMPAT = {"adapter": {"vendor": "", "architecture": "", "featureLevel": "compatibility"},
                   "crossOriginIsolated": False,
                   "web": {"webgl2": {"renderer": "ANGLE (Mesa, Vulkan 1.3 (llvmpipe (LLVM 15.0.6 256 bits)))"}}}
REAL_GPU = {"adapter": {"vendor": "nvidia", "architecture": "hopper", "featureLevel": "core"},
            "crossOriginIsolated": True}


def test_probe_flags_name_software_fallback_compat_and_isolation():
    assert probe_flags(SWIFTSHADER) == ["software-adapter", "fallback-adapter"]
    assert probe_flags(LAVAPIPE_COMPAT) == ["software-adapter", "compat-adapter", "not-isolated"]
    assert probe_flags(REAL_GPU) == []
    assert probe_flags(REAL_GPU, {"software": "true"}) == ["software-adapter"]


def test_baseline_flags_name_a_fallback_another_adapter_and_one_thread():
    fell = {"ok": False, "errorClass": "fallback", "backendRequested": "webgpu", "backendUsed": "cpu"}
    assert baseline_flags(fell, "a", None, SWIFTSHADER) == ["backend-mismatch"]
    other = {"ok": True, "backendRequested": "webgpu", "backendUsed": "webgpu"}
    assert baseline_flags(other, "lavapipe [compat]", "google swiftshader", SWIFTSHADER) == ["adapter-mismatch"]
    one = {"ok": True, "backendRequested": "wasm", "backendUsed": "wasm", "threads": 1, "flags": ["short-samples"]}
    assert baseline_flags(one, "a", None, SWIFTSHADER) == ["short-samples", "single-thread"]
