"""The JIT tuning loop: ask the strategy, render, run a batch on the device, check, tell.

``tune`` never decides how a device is driven: it only builds protocol batches and reads results
through a ``Runner``. Every candidate becomes a ``TrialRecord``; failures (codegen, compile,
runtime, wrong result) are records that never win, not exceptions. An exception from the runner
means the device itself is gone and propagates to the caller (the farm handles it).
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Sequence

from .caps import DeviceCaps
from .ops import OpSpec
from .protocol import CandidateResult, KernelSource, MeasureSpec, Runner, make_batch
from .reference import check_outputs, check_positions
from .search import Strategy, get_strategy
from .space import Config
from .templates import Template, get_template

STOP_REASONS = ("space-exhausted", "time-budget", "eval-budget")


@dataclass(frozen=True)
class TuneOptions:
    """How to tune one op: ``strategy`` name, wall-clock ``budget_s`` (checked before each batch
    but the first),
    optional ``max_evals`` (candidates tried, failures included), ``batch_size`` candidates per
    device round trip, ``seed`` for inputs, check positions and the strategy, ``measure`` (how each
    candidate is timed; a strategy may ask for fewer samples, see ``Strategy.samples``),
    ``check_count`` (random output positions verified besides the edges) and ``start``: configs
    tried first (a cached winner and runners-up: warm start; ignored where not in the space).

    ``confirm_top`` and ``confirm_rounds``: the tuner's last step times its ``confirm_top`` fastest
    configs again, all in one batch per round (interleaved), ``confirm_rounds`` times, and returns
    the one with the lowest median of all its samples. On a flat landscape the fastest single
    measurement of many is mostly luck; this keeps it from winning. Time for it is set aside from
    ``budget_s`` (estimated from the candidates timed so far); its re-timings do not count
    against ``max_evals`` (they try no new config). ``confirm_top`` < 2 or ``confirm_rounds`` 0: off."""

    strategy: str = "exhaustive"
    budget_s: float = 30.0
    max_evals: int | None = None
    batch_size: int = 8
    seed: int = 1
    measure: MeasureSpec = field(default_factory=MeasureSpec)
    check_count: int = 64
    start: tuple[Config, ...] = ()
    confirm_top: int = 4
    confirm_rounds: int = 2

    def __post_init__(self) -> None:
        if self.budget_s <= 0:
            raise ValueError(f"budget_s must be > 0, got {self.budget_s}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.max_evals is not None and self.max_evals < 1:
            raise ValueError(f"max_evals must be >= 1 or None, got {self.max_evals}")
        if self.confirm_top < 0 or self.confirm_rounds < 0:
            raise ValueError(f"confirm_top and confirm_rounds must be >= 0, got {self.confirm_top}, {self.confirm_rounds}")

    @property
    def confirms(self) -> bool:
        return self.confirm_top >= 2 and self.confirm_rounds >= 1


@dataclass
class TrialRecord:
    """One candidate's outcome. ``ok`` is True only if it compiled, ran and passed the check;
    ``error_class`` is then None, else one of the protocol's classes plus 'codegen' (render
    failed) and 'wrong-result'. ``median_ms`` is the median of ``samples_ms`` (the cost);
    ``elapsed_s`` is seconds since the tune started, at the end of the candidate's batch;
    ``best_so_far_ms`` is the cost of the config the tuner would return if it stopped after this
    trial (the strategy's best; for successive halving, the best of its most-sampled rung; after a
    confirmation round, the leader with the lowest median of all its samples) and
    ``best_config_key`` that config: (elapsed_s, best_so_far_ms) is the tuning curve. ``phase`` is
    'search' (asked by the strategy) or 'confirm' (a leader timed again, see ``TuneOptions``)."""

    index: int
    config: dict[str, int]
    config_key: str
    ok: bool
    error_class: str | None = None
    error: str | None = None
    compile_ms: float | None = None
    first_run_ms: float | None = None
    samples_ms: list[float] = field(default_factory=list)
    median_ms: float | None = None
    reps: int = 0
    timer_kind: str | None = None
    timer_resolution_ms: float | None = None
    check_ok: bool | None = None
    max_abs_err: float | None = None
    max_rel_err: float | None = None
    elapsed_s: float = 0.0
    best_so_far_ms: float | None = None
    best_config_key: str | None = None
    flags: list[str] = field(default_factory=list)  # the device's measurement flags, e.g. short-samples
    phase: str = "search"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TuneResult:
    """Everything one ``tune`` call learned: the winner (``best``, None if none passed: the
    strategy's best, or after confirmation rounds the leader with the lowest median of all its
    samples; its ``samples_ms`` are then all of them and ``median_ms`` their median), every trial in
    order, the space's sizes and why the search stopped."""

    op: OpSpec
    template: str
    template_version: str
    caps_fingerprint: str
    best: TrialRecord | None
    trials: list[TrialRecord]
    space_size: int
    raw_space_size: int
    elapsed_s: float
    stopped: str
    strategy: str = "exhaustive"
    space_report: dict[str, Any] = field(default_factory=dict)
    start: list[str] = field(default_factory=list)

    @property
    def best_config(self) -> Config | None:
        return None if self.best is None else Config(self.best.config)

    def to_dict(self) -> dict[str, Any]:
        return {
            "op": self.op.to_dict(),
            "op_key": self.op.key(),
            "template": self.template,
            "template_version": self.template_version,
            "caps_fingerprint": self.caps_fingerprint,
            "strategy": self.strategy,
            "best": None if self.best is None else self.best.to_dict(),
            "trials": [t.to_dict() for t in self.trials],
            "space_size": self.space_size,
            "raw_space_size": self.raw_space_size,
            "space_report": self.space_report,
            "elapsed_s": self.elapsed_s,
            "stopped": self.stopped,
            "start": list(self.start),
        }


def tune(
    op: OpSpec,
    template: Template | str,
    caps: DeviceCaps,
    runner: Runner,
    *,
    options: TuneOptions = TuneOptions(),
    on_trial: Callable[[TrialRecord], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> TuneResult:
    """Tune ``op`` with ``template`` on the device behind ``runner`` until the space, the time
    budget or the evaluation budget is exhausted. ``on_trial`` is called with each record as soon
    as its batch is back (stream it to storage there). ``clock`` (seconds) measures the budget and
    the trace: wall time by default; a replay of recorded timings passes its simulated device clock."""
    t0 = clock()
    tpl = get_template(template) if isinstance(template, str) else template
    space = tpl.space(op, caps)
    strategy = get_strategy(options.strategy, space, seed=options.seed, start=options.start,
                            samples=options.measure.samples)
    positions = check_positions(op, options.check_count, options.seed)
    trials: list[TrialRecord] = []
    best: TrialRecord | None = None
    latest: dict[Config, TrialRecord] = {}
    batch_wall: list[float] = []  # seconds per candidate of past batches

    def elapsed() -> float:
        return clock() - t0

    def reserve() -> float:
        """Seconds set aside for the confirmation rounds: per-candidate time so far x leaders x rounds."""
        if not options.confirms or not batch_wall:
            return 0.0
        leaders = min(options.confirm_top, sum(1 for r in latest.values() if r.ok))
        return statistics.median(batch_wall) * leaders * options.confirm_rounds if leaders >= 2 else 0.0

    while True:
        if strategy.done:
            stopped = "space-exhausted"
            break
        if options.max_evals is not None and len(trials) >= options.max_evals:
            stopped = "eval-budget"
            break
        remaining = options.budget_s - elapsed() - reserve()
        if remaining <= 0 and trials:  # the first batch always runs: a tune returns something
            stopped = "time-budget"
            break
        n = options.batch_size
        if options.max_evals is not None:
            n = min(n, options.max_evals - len(trials))
        if batch_wall:  # shrink the batch when a full one would clearly overrun the budget
            per = statistics.median(batch_wall)
            if per > 0:
                n = max(1, min(n, int(remaining / per)))
        configs = strategy.ask(n)
        if not configs:
            stopped = "space-exhausted"
            break
        measure = options.measure if not strategy.samples else replace(options.measure, samples=strategy.samples)
        batch_t0 = clock()
        records = _run_batch(op, tpl, configs, runner, options.seed, measure, positions, first_index=len(trials))
        batch_wall.append((clock() - batch_t0) / len(configs))
        now = elapsed()
        for config, rec in zip(configs, records):
            rec.elapsed_s = now
            latest[config] = rec
            strategy.tell(config, rec.median_ms if rec.ok else None)
            winner = strategy.best
            best = None if winner is None else latest[winner[0]]
            rec.best_so_far_ms = None if best is None else best.median_ms
            rec.best_config_key = None if best is None else best.config_key
            trials.append(rec)
            if on_trial is not None:
                on_trial(rec)

    if options.confirms and best is not None:
        searched = len(trials)
        confirmed = _confirm(op, tpl, strategy, latest, trials, runner, options, positions, elapsed, on_trial)
        if len(trials) > searched:  # a round ran: its answer stands, even None (every config failed)
            best = confirmed

    return TuneResult(
        op=op,
        template=tpl.name,
        template_version=tpl.version,
        caps_fingerprint=caps.fingerprint(),
        best=best,
        trials=trials,
        space_size=len(space),
        raw_space_size=space.raw_size,
        elapsed_s=elapsed(),
        stopped=stopped,
        strategy=options.strategy,
        space_report=space.report(),
        start=[c.key() for c in options.start if c in space],
    )


def _confirm(op: OpSpec, tpl: Template, strategy: Strategy, latest: dict[Config, TrialRecord], trials: list[TrialRecord],
             runner: Runner, options: TuneOptions, positions: list[int], elapsed: Callable[[], float],
             on_trial: Callable[[TrialRecord], None] | None) -> TrialRecord | None:
    """The confirmation rounds (``TuneOptions.confirm_top``): the leaders by their latest cost (the
    strategy's best first) timed again, one batch per round while the budget lasts. Returns the
    leader with the lowest median of all its ok samples; None when there are fewer than two
    leaders or no round ran. A leader that fails in a round is out; when all fail, the fastest
    config that was not a leader wins (None if there is none)."""
    ranked = sorted((r.median_ms, i, c) for i, (c, r) in enumerate(latest.items()) if r.ok and r.median_ms is not None)
    order = [c for _, _, c in ranked]
    if strategy.best is not None and strategy.best[0] in order:  # successive halving ranks by rung first
        order.remove(strategy.best[0])
        order.insert(0, strategy.best[0])
    leaders, rest = order[: options.confirm_top], order[options.confirm_top:]
    if len(leaders) < 2:
        return None
    winner: TrialRecord | None = None
    for _ in range(options.confirm_rounds):
        if elapsed() >= options.budget_s or not leaders:
            break
        records = _run_batch(op, tpl, leaders, runner, options.seed, options.measure, positions, first_index=len(trials))
        now = elapsed()
        for rec in records:
            rec.phase, rec.elapsed_s = "confirm", now
        leaders = [c for c, rec in zip(leaders, records) if rec.ok]
        winner = None
        if leaders:
            pooled = {c: [x for t in trials + records if t.ok and t.config_key == c.key() for x in t.samples_ms]
                      for c in leaders}
            key = min(leaders, key=lambda c: (statistics.median(pooled[c]), leaders.index(c)))
            last = next(r for r in records if r.config_key == key.key())
            winner = replace(last, samples_ms=pooled[key], median_ms=statistics.median(pooled[key]))
        elif rest:
            winner = latest[rest[0]]
        for rec in records:
            rec.best_so_far_ms = None if winner is None else winner.median_ms
            rec.best_config_key = None if winner is None else winner.config_key
            trials.append(rec)
            if on_trial is not None:
                on_trial(rec)
    return winner


def run_configs(op: OpSpec, template: Template | str, configs: Sequence[Config], runner: Runner, *,
                measure: MeasureSpec, seed: int = 1, check_count: int = 64) -> list[TrialRecord]:
    """Render ``configs``, run them in one batch on ``runner`` (so they are interleaved) and check
    each against the reference at ``check_positions(op, check_count, seed)``, as the tuner does:
    one record per config, in order; a failure is a record with ``ok`` False, never an exception
    (except from the runner: the device is gone). For re-timing chosen configs outside a tune."""
    tpl = get_template(template) if isinstance(template, str) else template
    return _run_batch(op, tpl, list(configs), runner, seed, measure, check_positions(op, check_count, seed), first_index=0)


def _run_batch(
    op: OpSpec,
    tpl: Template,
    configs: list[Config],
    runner: Runner,
    seed: int,
    measure: MeasureSpec,
    positions: list[int],
    *,
    first_index: int,
) -> list[TrialRecord]:
    """Render, run and check one batch; one record per config, in order."""
    records: list[TrialRecord | None] = [None] * len(configs)
    kernels: list[tuple[str, KernelSource]] = []
    slot: dict[str, int] = {}
    for i, config in enumerate(configs):
        try:
            kernel = tpl.render(op, config)
        except Exception as e:  # a template bug for one config is a failed trial, not a crash
            records[i] = _record(first_index + i, config, ok=False, error_class="codegen", error=f"{type(e).__name__}: {e}")
            continue
        cid = f"c{first_index + i}"
        slot[cid] = i
        kernels.append((cid, kernel))
    if kernels:
        batch = make_batch(op, kernels, seed=seed, measure=measure, check_positions=positions)
        results = {r.id: r for r in runner.run_batch(batch)}
        for cid, i in slot.items():
            res = results.get(cid)
            if res is None:
                records[i] = _record(first_index + i, configs[i], ok=False, error_class="harness", error=f"no result for candidate {cid}")
            else:
                records[i] = _from_result(first_index + i, configs[i], res, op, seed, positions)
    return [r for r in records if r is not None]


def _record(index: int, config: Config, **kw: Any) -> TrialRecord:
    return TrialRecord(index=index, config=config.as_dict(), config_key=config.key(), **kw)


def _from_result(
    index: int, config: Config, res: CandidateResult, op: OpSpec, seed: int, positions: list[int]
) -> TrialRecord:
    samples = [float(s) for s in res.samples_ms]
    finite = [s for s in samples if math.isfinite(s)]
    rec = _record(
        index,
        config,
        ok=res.ok,
        error_class=res.error_class,
        error=res.error,
        compile_ms=res.compile_ms,
        first_run_ms=res.first_run_ms,
        samples_ms=samples,
        median_ms=statistics.median(finite) if finite else None,
        reps=res.reps,
        timer_kind=res.timer_kind,
        timer_resolution_ms=res.timer_resolution_ms,
        flags=list(res.flags),
    )
    if not res.ok:
        rec.error_class = rec.error_class or "harness"
        return rec
    check = check_outputs(op, seed, positions, res.values)
    rec.check_ok, rec.max_abs_err, rec.max_rel_err = check.ok, check.max_abs_err, check.max_rel_err
    if not check.ok:
        rec.ok, rec.error_class, rec.error = False, "wrong-result", check.message
    elif rec.median_ms is None or len(finite) != len(samples):
        rec.ok, rec.error_class, rec.error = False, "harness", f"bad samples from the device: {samples!r}"
    return rec
