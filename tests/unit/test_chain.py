"""Block chains as protocol candidates (jit_core/chain.py), without a device: bindings, scratch
buffers, buffer access, the output check and the timeline's arithmetic."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from jit_core.blocks import build_block, run_block_reference, stack_blocks
from jit_core.chain import (Timeline, TimelinePoint, block_buffers, block_positions, chain_kernel, check_block,
                            default_plans, render_chain, seconds_to_fraction)
from jit_core.models import scaled
from jit_core.templates import get_template
from tests.caps_profiles import NVIDIA, SWIFTSHADER

TINY = dict(hidden=64, heads=4, head_dim=16, ffn=128)


@pytest.mark.parametrize("model,phase", [("gpt2", "prefill"), ("llama-2-7b", "decode"), ("bart-base", "prefill")])
def test_a_chain_binds_every_dispatch_to_block_buffers_or_its_own_scratch(model, phase):
    block = build_block(scaled(model, **TINY), 8, phase)
    kernel = render_chain(block, default_plans(block, SWIFTSHADER))
    names = {b.name for b in block.buffers} | {n for n, _ in kernel.scratch}
    dispatches = [kernel, *kernel.then]
    assert len(dispatches) >= len(block.steps)
    for d in dispatches:
        assert d.bindings and all(n in names for n, _ in d.bindings)
        written = [n for n, acc in d.bindings if acc == "read_write"]
        assert len(written) == 1, "each dispatch writes one buffer"
    assert dispatches[-1].bindings[-1] == ("out", "read_write")


def test_split_k_steps_keep_their_scratch_apart_in_a_chain():
    block = build_block(scaled("bart-base", hidden=256, heads=4, head_dim=64, ffn=2048), 64, "prefill")
    plans = default_plans(block, NVIDIA)
    down = next(p for p in plans if p.op.kind == "matmul" and p.op.K == 2048)
    split = next(c for c in p_space(down) if c["SK"] > 1)
    down.config = split
    kernel = render_chain(block, plans)
    step = down.steps[0]
    assert (f"s{step}.P", down.op.M * down.op.N * split["SK"]) in kernel.scratch
    by_op = {p.op: p for p in plans}
    per_step = [1 + len(by_op[s.op].template.render(s.op, by_op[s.op].config).then) for s in block.steps]
    assert per_step[step] == 2  # the partial products, then their reduction
    assert 1 + len(kernel.then) == sum(per_step)
    assert len({n for n, _ in kernel.scratch}) == len(kernel.scratch)


def p_space(plan):
    return plan.template.space(plan.op, NVIDIA)


def test_chain_needs_one_wgsl_kernel_per_step():
    block = build_block(scaled("gpt2", **TINY), 4, "prefill")
    plans = default_plans(block, SWIFTSHADER)
    kernels = [p.template.render(p.op, p.config) for p in plans]
    with pytest.raises(ValueError, match="one kernel per step"):
        chain_kernel(block, kernels[:2])
    wasm = get_template("matmul-wasm-simd")
    assert wasm.backend != "webgpu"


def test_written_buffers_are_read_write_and_weights_read_only():
    block = stack_blocks(build_block(scaled("llama-2-7b", **TINY), 4, "decode", past=3), 2)
    specs = {b.name: b for b in block_buffers(block, seed=2)}
    assert specs["out"].output and specs["out"].access == "read_write"
    assert specs["l0.k_cache"].access == "read_write" and specs["l0.k_cache"].init == "prng"
    assert specs["l1.attn.qkv.w"].access == "read" and specs["l1.attn.qkv.w"].scale == pytest.approx(64 ** -0.5)
    assert specs["x"].access == "read"
    assert len({s.binding for s in specs.values()}) == len(specs)


def test_the_block_check_accepts_rounding_and_rejects_a_wrong_kernel():
    block = build_block(scaled("gpt2", **TINY), 6, "prefill")
    ref = run_block_reference(block, 1)[block.output]
    pos = block_positions(block, count=32)
    exact = ref[list(pos)]
    assert check_block(block, 1, pos, list(exact * (1 + 1e-6))).ok
    wrong = exact.copy()
    wrong[3] += np.sqrt(np.mean(exact * exact))
    bad = check_block(block, 1, pos, list(wrong))
    assert not bad.ok and "max error" in bad.message
    assert not check_block(block, 1, pos, None).ok


def test_seconds_to_95_percent_of_the_final_speedup_reads_the_timeline():
    tl = Timeline(points=[TimelinePoint(1.0, 100.0, None, "default"), TimelinePoint(5.0, 60.0, None, "tuned a"),
                          TimelinePoint(9.0, 50.0, None, "tuned b"), TimelinePoint(12.0, 49.0, None, "tuned c")])
    # final speedup over 98 ms: 2.0x; 95% of it (1.9x) is first reached by the 50 ms point (1.96x)
    assert seconds_to_fraction(tl, 98.0) == 9.0
    assert tl.latency_at(6.0) == 60.0 and tl.latency_at(0.5) is None
    failed = dataclasses.replace(tl.points[-1], ok=False)
    assert Timeline(points=[*tl.points[:-1], failed]).latency_at(20.0) == 50.0
    slower = dataclasses.replace(tl.points[-1], block_ms=70.0, kept=False)  # swapped out again
    assert Timeline(points=[*tl.points[:-1], slower]).latency_at(20.0) == 50.0
