"""A transformer block run on the device as one chain of our kernels, and its JIT timeline.

``chain_kernel`` turns a block graph (``jit_core.blocks``) and one rendered kernel per step into a
single multi-dispatch candidate (PROTOCOL.md: bindings by name, scratch buffers): the buffers stay
on the device between kernels and one run of the candidate is one inference of the block.
``block_batch`` is the batch that times it; its output is checked against the block's numpy
reference (``check_block``).

``jit_timeline`` is nnJIT's claim as a measurement: the block starts with each op's default config
(the first of its space in prior order, what an engine would ship), then the ops are tuned one at a
time (largest first, the budget split by FLOPs) and every improvement is swapped into the chain,
which is timed again and keeps it only if the block got faster. Each point is (seconds since ``origin``, block latency), so a curve of model
latency against wall-clock time with tuning in the loop can be drawn.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

import numpy as np

from .blocks import Block, run_block_reference, unique_ops
from .caps import DeviceCaps
from .ops import OpSpec
from .protocol import Batch, BufferSpec, Candidate, CandidateResult, Dispatch, KernelSource, MeasureSpec, Runner
from .space import Config
from .templates import Template, get_template, templates_for
from .timing import median
from .tuner import TuneOptions, tune

# The template each op kind is tuned with in a chain (matmul: the vec4 family, whose space also
# holds the skinny-M kernels of decode).
CHAIN_TEMPLATES: dict[str, str] = {
    "matmul": "matmul-wgsl-vec4", "softmax": "softmax-wgsl", "norm": "norm-wgsl",
    "eltwise": "eltwise-wgsl", "heads": "heads-wgsl",
}


def chain_kernel(block: Block, kernels: Sequence[KernelSource]) -> KernelSource:
    """One candidate running ``kernels[i]`` (rendered for ``block.steps[i].op``) in step order over
    the block's buffers. A kernel's own bindings (the op's binding names, or its batch order when
    it names none) are mapped to the step's buffers; its scratch buffers get a per-step prefix."""
    if len(kernels) != len(block.steps) or not kernels:
        raise ValueError(f"a chain needs one kernel per step ({len(block.steps)}), got {len(kernels)}")
    dispatches: list[Dispatch] = []
    scratch: list[tuple[str, int]] = []
    for i, (step, k) in enumerate(zip(block.steps, kernels)):
        if k.kind != "wgsl":
            raise ValueError(f"step {i} ({step.role}): chains run WGSL kernels, not {k.kind}")
        names = dict(step.inputs)
        names["C"] = step.output
        own = {n for n, _ in k.scratch}

        def buffer(n: str, i: int = i, names: dict[str, str] = names, own: set[str] = own) -> str:
            if n in own:
                return f"s{i}.{n}"
            if n not in names:
                raise ValueError(f"step {i} ({step.role}): the kernel binds {n!r}, which the op does not have")
            return names[n]

        first = k.bindings or (*((n, "read") for n in step.op.input_sizes()), ("C", "read_write"))
        dispatches.append(Dispatch(k.code, k.entry, k.workgroups, k.workgroup_size,
                                   tuple((buffer(n), acc) for n, acc in first)))
        dispatches += [replace(d, bindings=tuple((buffer(n), acc) for n, acc in d.bindings)) for d in k.then]
        scratch += [(f"s{i}.{n}", size) for n, size in k.scratch]
    head = dispatches[0]
    return KernelSource(code=head.code, entry=head.entry, workgroups=head.workgroups,
                        workgroup_size=head.workgroup_size, bindings=head.bindings,
                        then=tuple(dispatches[1:]), scratch=tuple(scratch))


def block_buffers(block: Block, seed: int) -> tuple[BufferSpec, ...]:
    """The block's buffer table as protocol buffers: written ones read-write, the rest read-only
    (the page keeps read-only PRNG buffers, the weights, from one batch to the next)."""
    written = {s.output for s in block.steps}
    return tuple(
        BufferSpec(b.name, i, b.size, "read_write" if b.name in written else "read", b.init,
                   seed=seed, stream=int(b.stream or 0), scale=b.scale, shift=b.shift, output=b.name == block.output)
        for i, b in enumerate(block.buffers))


def block_positions(block: Block, count: int = 256) -> tuple[int, ...]:
    """Output positions to check: the first and last row, and ``count`` spread over the output."""
    n = block.buffer(block.output).size
    row = block.buffer(block.output).shape[-1]
    spread = np.linspace(0, n - 1, num=min(n, count), dtype=np.int64)
    return tuple(sorted({*range(min(row, n)), *range(max(0, n - row), n), *(int(p) for p in spread)}))


def block_batch(block: Block, kernels: Sequence[tuple[str, KernelSource]], *, seed: int, measure: MeasureSpec,
                positions: Sequence[int] | None = None) -> Batch:
    """A batch timing chain candidates (``chain_kernel`` results, by id) of ``block``."""
    return Batch(op=block, buffers=block_buffers(block, seed),  # type: ignore[arg-type]  # records only
                 candidates=tuple(Candidate(cid, k) for cid, k in kernels), measure=measure,
                 check_positions=tuple(block_positions(block) if positions is None else positions))


@dataclass(frozen=True)
class BlockCheck:
    ok: bool
    max_abs_err: float
    scale: float  # RMS of the expected values at the checked positions
    message: str = ""


def check_block(block: Block, seed: int, positions: Sequence[int], values: Sequence[float] | None,
                *, expected: np.ndarray | None = None, rel: float = 2e-3) -> BlockCheck:
    """Values at ``positions`` of the block's output against its numpy reference: every error
    within ``rel`` x the RMS of the expected values (f32 kernels accumulate rounding over a dozen
    kernels; a wrong kernel is off by the values' own size)."""
    if values is None or len(values) != len(positions):
        return BlockCheck(False, float("inf"), 0.0, "no values")
    ref = run_block_reference(block, seed)[block.output] if expected is None else expected
    want = np.asarray(ref, dtype=np.float64)[np.asarray(positions, dtype=np.int64)]
    got = np.asarray(values, dtype=np.float64)
    scale = float(np.sqrt(np.mean(want * want))) or 1.0
    err = np.abs(got - want)
    worst = float(np.nanmax(err)) if np.all(np.isfinite(got)) else float("inf")
    ok = worst <= rel * scale
    msg = "" if ok else f"max error {worst:.3g} > {rel} x RMS {scale:.3g} (at position {positions[int(np.nanargmax(err))]})"
    return BlockCheck(ok, worst, scale, msg)


@dataclass
class OpPlan:
    """One distinct op of the block: its steps, template and current config (and its single-op
    median when it was tuned)."""

    op: OpSpec
    steps: list[int]
    template: Template
    config: Config
    default: Config
    tuned_ms: float | None = None
    default_ms: float | None = None
    tune_s: float = 0.0


def default_plans(block: Block, caps: DeviceCaps, templates: dict[str, str] | None = None) -> list[OpPlan]:
    """Each distinct op with its template and default config (the first of its space). An op whose
    preferred template has no config within the device's limits (e.g. a compatibility adapter's
    small workgroups) takes the next WebGPU template of its kind that has one."""
    names = {**CHAIN_TEMPLATES, **(templates or {})}
    plans = []
    for op, _ in unique_ops(block):
        tried = []
        for name in [names[op.kind], *(t for t in templates_for(op.kind) if t != names[op.kind])]:
            tpl = get_template(name)
            if tpl.backend != "webgpu":
                continue
            tried.append(name)
            space = tpl.space(op, caps)
            if len(space):
                first = space.configs[0]
                plans.append(OpPlan(op, [i for i, s in enumerate(block.steps) if s.op == op], tpl, first, first))
                break
        else:
            raise ValueError(f"no template of {tried} has a config for {op.key()} within this device's limits")
    return plans


def render_chain(block: Block, plans: Sequence[OpPlan]) -> KernelSource:
    by_op = {p.op: p for p in plans}
    return chain_kernel(block, [by_op[s.op].template.render(s.op, by_op[s.op].config) for s in block.steps])


@dataclass
class TimelinePoint:
    t_s: float  # seconds since the origin
    block_ms: float  # median block latency
    ci_ms: tuple[float, float] | None
    event: str  # "default" or "tuned <op key>"
    ok: bool = True
    kept: bool = True  # False: the block was not faster with this kernel, which was swapped out again


@dataclass
class Timeline:
    """The JIT timeline of one block on one device."""

    points: list[TimelinePoint] = field(default_factory=list)
    plans: list[OpPlan] = field(default_factory=list)
    final: CandidateResult | None = None

    def in_use(self) -> list[TimelinePoint]:
        """The points whose kernels stayed in the block (the curve of block latency over time)."""
        return [p for p in self.points if p.ok and p.kept]

    def latency_at(self, t_s: float) -> float | None:
        """Block latency in use at ``t_s`` (the last kept point at or before it)."""
        ok = [p for p in self.in_use() if p.t_s <= t_s]
        return ok[-1].block_ms if ok else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "points": [vars(p) for p in self.points],
            "ops": [{"op": p.op.key(), "steps": len(p.steps), "template": p.template.name, "default": p.default.key(),
                     "config": p.config.key(), "default_ms": p.default_ms, "tuned_ms": p.tuned_ms, "tune_s": p.tune_s}
                    for p in self.plans],
        }


def time_chain(block: Block, plans: Sequence[OpPlan], runner: Runner, *, seed: int, measure: MeasureSpec,
               cid: str = "chain", expected: np.ndarray | None = None) -> tuple[CandidateResult, BlockCheck]:
    """Run and time the chain of the plans' configs once; the result and its check (against
    ``expected``, the block's reference output, computed here when not given)."""
    batch = block_batch(block, [(cid, render_chain(block, plans))], seed=seed, measure=measure)
    (res,) = runner.run_batch(batch)
    check = check_block(block, seed, batch.check_positions, res.values, expected=expected) if res.ok \
        else BlockCheck(False, 0, 0, res.error or "")
    return res, check


def jit_timeline(block: Block, caps: DeviceCaps, runner: Runner, *, budget_s: float, seed: int = 1,
                 op_measure: MeasureSpec = MeasureSpec(samples=3, min_sample_ms=2.0),
                 chain_measure: MeasureSpec = MeasureSpec(samples=5, min_sample_ms=10.0, warmup_ms=100.0),
                 strategy: str = "exhaustive", min_op_s: float = 0.5, min_gain: float = 0.03,
                 origin: float | None = None, expected: np.ndarray | None = None,
                 on_point: Callable[[TimelinePoint], None] | None = None) -> Timeline:
    """Default configs first, then each op tuned (largest FLOPs first; ``budget_s`` split by each
    op's share of the block's FLOPs, at least ``min_op_s``; the default config is timed first in
    the same tune) with the winner swapped into the chain, and the chain timed again, when it beats
    the default by more than ``min_gain`` (smaller gains are noise at a few samples); the new kernel
    stays only if the block itself got faster by more than ``min_gain`` (else the point is marked
    ``kept=False`` and the previous kernel goes back). Points are stamped from ``origin`` (default:
    now). The block's reference output (``expected``, computed here when not given) is computed
    before the clock starts: host numpy work is not tuning time."""
    if expected is None:
        expected = run_block_reference(block, seed)[block.output]
    clock = time.perf_counter
    t0 = clock() if origin is None else origin
    plans = default_plans(block, caps)
    tl = Timeline(plans=plans)

    def point(event: str) -> TimelinePoint:
        res, check = time_chain(block, plans, runner, seed=seed, measure=chain_measure, expected=expected)
        p = TimelinePoint(clock() - t0, median(res.samples_ms) if res.ok and res.samples_ms else float("nan"),
                          res.ci_ms, event,
                          ok=res.ok and check.ok)
        if not p.ok:
            p.event += f" (failed: {res.error_class or 'wrong-result'}: {(res.error or check.message)[:200]})"
        tl.points.append(p)
        results[id(p)] = res
        return p

    def emit(p: TimelinePoint) -> None:
        if on_point is not None:
            on_point(p)

    results: dict[int, CandidateResult] = {}

    current = point("default")
    tl.final = results[id(current)]
    emit(current)
    steps_flops = {p.op: p.op.flops() * len(p.steps) for p in plans}
    total = sum(steps_flops.values()) or 1
    start = clock()
    for plan in sorted(plans, key=lambda p: -steps_flops[p.op]):
        left = budget_s - (clock() - start)
        if left <= 0:
            break
        share = max(min_op_s, budget_s * steps_flops[plan.op] / total)
        options = TuneOptions(strategy=strategy, budget_s=min(share, max(left, min_op_s)), seed=seed,
                              measure=op_measure, start=(plan.default,), batch_size=4)
        t_op = clock()
        result = tune(plan.op, plan.template, caps, runner, options=options)
        plan.tune_s = clock() - t_op
        first = next((t for t in result.trials if t.config_key == plan.default.key() and t.ok), None)
        plan.default_ms = first.median_ms if first else None
        if result.best is None:
            continue
        plan.tuned_ms = result.best.median_ms
        gain = plan.default_ms is None or (plan.tuned_ms or 0) < (1 - min_gain) * plan.default_ms
        if result.best_config == plan.config or not gain:
            continue
        # Swap it in, and keep it only if the block itself got faster: alone, a kernel may win by
        # less than the noise of few samples, or lose in the chain (caches, launch overhead).
        previous, plan.config = plan.config, result.best_config
        p = point(f"tuned {plan.op.key()}")
        if not p.ok or (current.ok and p.block_ms >= (1 - min_gain) * current.block_ms):
            plan.config = previous
            p.kept = False
            p.event += " (block not faster: kept the previous kernel)" if p.ok else ""
        else:
            current = p
            tl.final = results[id(p)]
        emit(p)
    return tl


def seconds_to_fraction(tl: Timeline, baseline_ms: float, fraction: float = 0.95) -> float | None:
    """First time the block's speedup over ``baseline_ms`` reached ``fraction`` of its final one."""
    ok = tl.in_use()
    if not ok or not baseline_ms:
        return None
    final = baseline_ms / ok[-1].block_ms
    for p in ok:
        if baseline_ms / p.block_ms >= fraction * final:
            return p.t_s
    return None
