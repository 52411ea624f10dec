"""Every TF.js and ONNX Runtime Web baseline, the timer layer and forced fallbacks, in real
headless Chromium (SwiftShader WebGPU; lavapipe through a compatibility adapter)."""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np
import pytest

from farm.baselines.catalog import CATALOG, baseline_spec
from farm.drivers.base import BrowserOptions
from farm.drivers.playwright_driver import PlaywrightDriver
from farm.harness.server import HarnessServer
from jit_core.ops import MatMul
from jit_core.protocol import KernelSource, MeasureSpec, make_batch
from jit_core.reference import check_outputs, check_positions, op_inputs, prng_f32
from jit_core.timing import median_ci

CHROMIUM = BrowserOptions().executable_path
LAVAPIPE_ICD = "/usr/share/vulkan/icd.d/lvp_icd.x86_64.json"
SWIFTSHADER_FLAGS = ("--enable-unsafe-webgpu", "--enable-webgpu-developer-features")
LAVAPIPE = BrowserOptions(
    args=("--enable-unsafe-webgpu", "--use-angle=vulkan", "--ignore-gpu-blocklist",
          "--use-webgpu-adapter=opengles", "--disable-gpu-driver-bug-workarounds"),
    env=(("VK_ICD_FILENAMES", LAVAPIPE_ICD),), feature_level="compatibility", call_timeout_s=120)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not (CHROMIUM and Path(CHROMIUM).is_file()), reason=f"no Chromium at {CHROMIUM}"),
]

OP = MatMul(M=24, N=16, K=8)
SEED = 5
MEASURE = MeasureSpec(warmup=1, samples=3, min_sample_ms=2.0, max_reps=32, timer="wall", timeout_ms=60000)

MATMUL = """
@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<f32>;
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  if (g.y >= {M}u || g.x >= {N}u) { return; }
  var acc = 0.0;
  for (var k = 0u; k < {K}u; k++) { acc += A[g.y * {K}u + k] * B[k * {N}u + g.x]; }
  C[g.y * {N}u + g.x] = acc;
}
"""


def kernel(op: MatMul) -> KernelSource:
    code = MATMUL.replace("{M}", str(op.M)).replace("{N}", str(op.N)).replace("{K}", str(op.K))
    return KernelSource(code, "main", ((op.N + 7) // 8, (op.M + 7) // 8, 1), (8, 8, 1))


def spec(name: str, op: MatMul = OP, measure: MeasureSpec = MEASURE, **kw):
    return baseline_spec(name, op, seed=SEED, measure=measure.to_json(),
                         positions=check_positions(op, 32, SEED), **kw)


@pytest.fixture(scope="module")
def server():
    with HarnessServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def driver(server):
    with PlaywrightDriver(BrowserOptions(args=SWIFTSHADER_FLAGS, call_timeout_s=120), server=server) as drv:
        yield drv


@pytest.fixture(scope="module")
def probe(driver):
    return driver.probe()


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_each_baseline_backend_initialises_runs_what_was_asked_and_is_correct(driver, probe, name):
    r = driver.run_baseline(spec(name))
    assert r["ok"], r["error"]
    b = CATALOG[name]
    assert (r["library"], r["backendRequested"], r["backendUsed"]) == (b.library, b.backend, b.backend)
    assert r["libraryVersion"] == {"tfjs": "4.22.0", "ort": "1.30.0"}[b.library]
    assert len(r["samplesMs"]) == 3 and all(s > 0 for s in r["samplesMs"])
    assert r["compileMs"] > 0 and r["firstRunMs"] > 0
    assert check_outputs(OP, SEED, check_positions(OP, 32, SEED), r["values"]).ok
    if b.gpu:  # on the adapter our kernels use
        assert r["deviceSource"] in ("shared", "same-adapter")
        assert r["adapter"]["architecture"] == probe["adapter"]["architecture"]
    if name == "tfjs-webgpu" and "timestamp-query" in probe["features"]:
        assert r["gpuMs"] and all(x > 0 for x in r["gpuMs"])  # GPU timestamps next to the wall clock
    if b.backend == "wasm":
        assert r["simd"] is True and r["threads"] >= 1
        if b.library == "ort":  # ORT gets every core of an isolated page
            assert r["threads"] == probe["hardwareConcurrency"]


@pytest.mark.parametrize("op,graph", [(MatMul(6, 10, 7), "gemm-bias"), (MatMul(5, 6, 7, batch=3), "matmul")])
def test_ort_runs_gemm_with_bias_and_batched_matmul_models_built_at_the_jobs_shapes(driver, op, graph):
    s = spec("ort-wasm", op, graph=graph)
    r = driver.run_baseline(s)
    assert r["ok"], r["error"]
    x = op_inputs(op, SEED)
    lead = (op.batch,) if op.batch > 1 else ()
    c = x["A"].reshape(lead + (op.M, op.K)) @ x["B"].reshape(lead + (op.K, op.N))
    if graph == "gemm-bias":
        c = c + prng_f32(SEED, 2, op.N)
    expected = c.reshape(-1)[s["check"]["positions"]]
    np.testing.assert_allclose(r["values"], expected, rtol=1e-4, atol=1e-4)


def test_timer_layer_reports_resolutions_and_every_sample_spans_the_minimum(driver, probe):
    res = probe["timerResolutionMs"]
    assert 0 < res["wall"] <= 0.1 and (res["timestamp"] is None or res["timestamp"] > 0)
    measure = MeasureSpec(warmup=1, samples=4, min_sample_ms=5.0, max_reps=4096, timer="wall")
    (k,) = driver.run_batch(make_batch(OP, [("k", kernel(OP))], seed=SEED, measure=measure,
                                       check_positions=[0]))
    assert k.ok and k.timer_kind == "wall" and k.timer_resolution_ms == res["wall"]
    # One dispatch is well under 5 ms on an idle machine, so samples are scaled up (reps > 1) to
    # span it; a sample that still comes out much shorter than calibrated is flagged, never silent.
    span = statistics.median(k.samples_ms) * k.reps
    assert span >= 0.5 * 5.0 or "short-samples" in k.flags
    r = driver.run_baseline(spec("tfjs-cpu", measure=measure))
    assert r["ok"] and r["timer"] == {"kind": "wall", "resolutionMs": res["wall"]}
    assert statistics.median(r["samplesMs"]) * r["reps"] >= 0.5 * 5.0 or "short-samples" in r["flags"]


def test_a_target_ci_takes_samples_until_the_median_is_pinned_or_a_cap_is_hit(driver):
    measure = MeasureSpec(warmup=1, samples=6, min_sample_ms=1.0, max_reps=256, timer="wall",
                          target_ci_rel=0.5, max_samples=30, max_time_ms=5000)
    (k,) = driver.run_batch(make_batch(OP, [("k", kernel(OP))], seed=SEED, measure=measure, check_positions=[0]))
    assert k.ok and k.stop in ("ci", "max-samples", "max-time") and 6 <= len(k.samples_ms) <= 30
    lo, hi = k.ci_ms
    assert (lo, hi) == median_ci(k.samples_ms)  # the page's order statistics are numpy-side's
    if k.stop == "ci":
        assert hi - lo <= 0.5 * statistics.median(k.samples_ms)


def test_a_baseline_forced_off_webgpu_is_a_fallback_naming_the_backend_that_ran(server):
    no_webgpu = BrowserOptions(args=(), call_timeout_s=120)  # no --enable-unsafe-webgpu: no adapter
    with PlaywrightDriver(no_webgpu, server=server) as drv:
        r = drv.run_baseline(spec("tfjs-webgpu", device="own"))
        assert not r["ok"] and r["errorClass"] == "fallback" and "backend-mismatch" in r["flags"]
        assert r["backendRequested"] == "webgpu" and r["backendUsed"] != "webgpu"
        assert f"backend in use: {r['backendUsed']}" in r["error"]
        o = drv.run_baseline(spec("ort-webgpu", device="own"))
        assert not o["ok"] and o["errorClass"] == "fallback"


def test_a_missing_library_says_to_run_setup(tmp_path):
    with HarnessServer(node_modules_dir=tmp_path) as srv, \
            PlaywrightDriver(BrowserOptions(args=SWIFTSHADER_FLAGS), server=srv) as drv:
        for name in ("tfjs-wasm", "ort-wasm"):
            r = drv.run_baseline(spec(name))
            assert not r["ok"] and r["errorClass"] == "harness" and "setup" in r["error"], r


@pytest.mark.skipif(not Path(LAVAPIPE_ICD).is_file(), reason="lavapipe is not installed (mesa-vulkan-drivers)")
def test_webgpu_baselines_run_on_the_compatibility_adapter_our_kernels_use(server):
    with PlaywrightDriver(LAVAPIPE, server=server) as drv:
        probe = drv.probe()
        assert probe["adapter"]["featureLevel"] == "compatibility"
        for name, source in (("tfjs-webgpu", "shared"), ("ort-webgpu", "same-adapter")):
            r = drv.run_baseline(spec(name))
            assert r["ok"], r["error"]
            assert r["deviceSource"] == source and r["adapter"]["featureLevel"] == "compatibility"
            assert check_outputs(OP, SEED, check_positions(OP, 32, SEED), r["values"]).ok
