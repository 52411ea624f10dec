"""A transformer block as one chain of our kernels in headless Chromium (SwiftShader WebGPU),
checked against numpy and against ONNX Runtime Web running the same block in the same page."""

from __future__ import annotations

import numpy as np
import pytest

from farm.baselines.onnx_blocks import block_baseline_spec
from jit_core.blocks import build_block
from jit_core.caps import DeviceCaps
from jit_core.chain import block_batch, block_positions, check_block, default_plans, render_chain
from jit_core.models import scaled
from jit_core.protocol import MeasureSpec

pytestmark = pytest.mark.browser

TINY = dict(hidden=64, heads=4, head_dim=16, ffn=96)
FAST = MeasureSpec(warmup=0, samples=2, min_sample_ms=1.0, max_reps=4, timer="wall", timeout_ms=60000)


@pytest.fixture(scope="module")
def driver(swiftshader_page):
    return swiftshader_page


@pytest.mark.parametrize("model,phase", [("gpt2", "prefill"), ("llama-2-7b", "decode")])
def test_our_chain_and_ort_web_compute_the_same_block_in_one_page(driver, model, phase):
    block = build_block(scaled(model, **TINY), 6, phase, past=4 if phase == "decode" else None)
    caps = DeviceCaps.from_probe(driver.probe())
    positions = list(block_positions(block))
    batch = block_batch(block, [("chain", render_chain(block, default_plans(block, caps)))], seed=7, measure=FAST)
    (ours,) = driver.run_batch(batch)
    assert ours.ok, ours.error
    assert check_block(block, 7, positions, ours.values).ok
    ort = driver.run_baseline(block_baseline_spec("ort-webgpu", block, seed=7, measure=FAST.to_json(), positions=positions))
    assert ort["ok"], ort.get("error")
    np.testing.assert_allclose(np.asarray(ours.values), np.asarray(ort["values"]), rtol=1e-3, atol=1e-4)
