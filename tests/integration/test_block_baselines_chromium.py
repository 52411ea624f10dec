"""ONNX Runtime Web runs a transformer block graph (farm/baselines/onnx_blocks.py) on its webgpu
and wasm EPs, and TF.js runs the block graph itself (its steps mapped to TF.js ops) on its webgpu
and wasm backends, in real headless Chromium (SwiftShader WebGPU); their outputs match the numpy
reference of the same block graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from farm.baselines.onnx_blocks import block_baseline_spec
from farm.drivers.base import BrowserOptions
from farm.drivers.playwright_driver import PlaywrightDriver
from farm.harness.server import HarnessServer
from jit_core.blocks import build_block, run_block_reference, stack_blocks
from jit_core.models import scaled
from jit_core.protocol import MeasureSpec

CHROMIUM = BrowserOptions().executable_path
SWIFTSHADER_FLAGS = ("--enable-unsafe-webgpu", "--enable-webgpu-developer-features")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not (CHROMIUM and Path(CHROMIUM).is_file()), reason=f"no Chromium at {CHROMIUM}"),
]

SEED = 11
MEASURE = MeasureSpec(warmup=0, samples=2, min_sample_ms=1.0, max_reps=4, timer="wall", timeout_ms=60000)
TINY = dict(hidden=64, heads=4, head_dim=16, ffn=128)
CASES = [("gpt2", "prefill", 1), ("llama-2-7b", "decode", 2), ("bart-base", "prefill", 1)]


@pytest.fixture(scope="module")
def driver():
    with HarnessServer() as srv, \
            PlaywrightDriver(BrowserOptions(args=SWIFTSHADER_FLAGS, call_timeout_s=120), server=srv) as drv:
        yield drv


@pytest.mark.parametrize("model,phase,layers", CASES)
@pytest.mark.parametrize("baseline", ["ort-webgpu", "ort-wasm"])
def test_ort_web_runs_the_block_graph_and_matches_the_numpy_reference(driver, model, phase, layers, baseline):
    block = stack_blocks(build_block(scaled(model, **TINY), 8, phase), layers)
    expected = run_block_reference(block, SEED)[block.output]
    positions = list(range(len(expected)))
    r = driver.run_baseline(block_baseline_spec(baseline, block, seed=SEED, measure=MEASURE.to_json(),
                                                positions=positions))
    assert r["ok"], r["error"]
    assert r["backendUsed"] == baseline.split("-")[1] and len(r["samplesMs"]) == 2
    np.testing.assert_allclose(r["values"], expected, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("baseline", ["tfjs-webgpu", "tfjs-wasm"])
def test_tfjs_runs_the_block_graph_with_its_ops_and_matches_the_numpy_reference(driver, baseline):
    for model, phase, layers in CASES:  # one page warm-up per backend, three blocks
        block = stack_blocks(build_block(scaled(model, **TINY), 8, phase), layers)
        expected = run_block_reference(block, SEED)[block.output]
        r = driver.run_baseline(block_baseline_spec(baseline, block, seed=SEED, measure=MEASURE.to_json(),
                                                    positions=list(range(len(expected)))))
        assert r["ok"], f"{model} {phase}: {r['errorClass']}: {r['error']}"
        assert r["library"] == "tfjs" and r["backendUsed"] == baseline.split("-")[1] and len(r["samplesMs"]) == 2
        np.testing.assert_allclose(r["values"], expected, rtol=1e-3, atol=1e-4, err_msg=f"{model} {phase}")
