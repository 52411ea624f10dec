"""Transformer blocks as one chain of our kernels on real WebGPU (wgpu-native on lavapipe): every
model's block, prefill and decode, a stack of layers, and the JIT timeline, checked against numpy."""

from __future__ import annotations

import dataclasses

import pytest

from jit_core.blocks import build_block, stack_blocks
from jit_core.chain import block_positions, check_block, default_plans, jit_timeline, time_chain
from jit_core.models import MODELS, scaled
from jit_core.protocol import MeasureSpec

pytestmark = pytest.mark.native

TINY = dict(hidden=64, heads=4, head_dim=16, ffn=96)
FAST = MeasureSpec(warmup=0, samples=2, min_sample_ms=1.0, max_reps=4)
CASES = [(m, p) for m in sorted(MODELS) for p in ("prefill", "decode") if not (p == "decode" and MODELS[m].arch == "encoder")]


@pytest.mark.parametrize("model,phase", CASES, ids=[f"{m}-{p}" for m, p in CASES])
def test_every_models_block_runs_as_one_chain_and_matches_numpy(lavapipe_driver, lavapipe_caps, model, phase):
    block = build_block(scaled(model, **TINY), 7, phase, past=5 if phase == "decode" else None)
    res, check = time_chain(block, default_plans(block, lavapipe_caps), lavapipe_driver, seed=3, measure=FAST)
    assert res.ok, res.error
    assert check.ok, check.message
    assert len(res.samples_ms) == FAST.samples


def test_a_stack_of_layers_with_split_k_kernels_matches_numpy_after_repeated_runs(lavapipe_driver, lavapipe_caps):
    """Repeated runs of one chain (calibration, samples) leave the same output: no step reads a
    buffer a later step writes. GPU-like caps give split-K kernels their scratch buffers."""
    gpu_like = dataclasses.replace(lavapipe_caps, vendor="gpu", architecture="", device="gpu", description="",
                                   is_fallback=False)
    block = stack_blocks(build_block(scaled("gpt2", hidden=128, heads=4, head_dim=32, ffn=1024), 16, "prefill"), 2)
    plans = default_plans(block, gpu_like)
    for p in plans:
        if p.template.name == "matmul-wgsl-vec4":
            split = [c for c in p.template.space(p.op, gpu_like) if c["SK"] > 1]
            if split:
                p.config = split[0]
    assert any(p.config.get("SK", 1) > 1 for p in plans)
    res, check = time_chain(block, plans, lavapipe_driver, seed=5,
                            measure=MeasureSpec(warmup=2, samples=3, min_sample_ms=1.0, max_reps=8))
    assert res.ok, res.error
    assert check.ok, check.message


def test_the_jit_timeline_starts_from_defaults_and_only_swaps_in_correct_faster_kernels(lavapipe_driver, lavapipe_caps):
    block = build_block(scaled("llama-2-7b", **TINY), 8, "prefill")
    tl = jit_timeline(block, lavapipe_caps, lavapipe_driver, budget_s=4.0, seed=2, op_measure=FAST, chain_measure=FAST,
                      min_op_s=0.2)
    assert tl.points[0].event == "default"
    assert all(p.ok for p in tl.points), [p.event for p in tl.points]
    assert [p.t_s for p in tl.points] == sorted(p.t_s for p in tl.points)
    assert any(p.tune_s > 0 for p in tl.plans)
    for p in tl.plans:
        assert p.config in p.template.space(p.op, lavapipe_caps)
    assert check_block(block, 2, block_positions(block), tl.final.values).ok
