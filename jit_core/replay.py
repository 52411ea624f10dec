"""Recorded device timings, and a runner that replays them in-process (Kernel Tuner's simulation mode).

``record_space`` times every config of a template's space on a real device in batches, as the
tuner does, and splits each batch's wall time between its candidates: each gets its own device
work (compile, warm-up and first run, calibration, samples) plus an equal share of the rest (batch
setup, readback, driver overhead). The ``Recording`` is plain JSON. ``ReplayRunner`` answers batches from a recording: the
recorded samples (cycled, so a config timed again gets other samples), the recorded failures, and
a simulated device clock that advances by each candidate's recorded wall time, scaled to the
number of samples asked. Strategies are then compared on real timings without the device, and the
budget and the trace use the simulated clock (``tune(..., clock=runner.clock)``).
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from .caps import DeviceCaps
from .ops import OpSpec, op_from_dict
from .protocol import Batch, CandidateResult, MeasureSpec, Runner
from .reference import expected_values
from .space import Config
from .templates import Template, get_template
from .tuner import TrialRecord, TuneOptions, run_configs, tune

FORMAT_VERSION = 1


@dataclass(frozen=True)
class RecordedConfig:
    """One config as the device answered it: ``ok`` (compiled, ran, passed the check), its error
    class otherwise, per-dispatch ``samples_ms`` with ``reps`` dispatches per sample, and
    ``wall_s``: its device seconds (its own work plus its share of its batch's overhead)."""

    ok: bool
    error_class: str | None
    samples_ms: list[float]
    reps: int
    compile_ms: float | None
    first_run_ms: float | None
    timer_kind: str | None
    wall_s: float

    @property
    def median_ms(self) -> float | None:
        return statistics.median(self.samples_ms) if self.samples_ms else None


@dataclass
class Recording:
    """Every config of one space timed on one device. Contract: ``configs`` maps config keys to
    what the device answered; ``save``/``load`` round-trip through JSON; a file of another format
    version raises ValueError."""

    op: OpSpec
    template: str
    template_version: str
    caps: DeviceCaps
    measure: MeasureSpec
    configs: dict[str, RecordedConfig]
    recorded_at: float = field(default_factory=time.time)

    def retimed(self) -> dict[str, float]:
        """Median of the samples ``record_space(confirm_top=...)`` added, per re-timed ok config."""
        n = self.measure.samples
        return {k: statistics.median(r.samples_ms[n:]) for k, r in self.configs.items() if r.ok and len(r.samples_ms) > n}

    def first_pass(self, key: str) -> float | None:
        """Median of ``key``'s samples of the first pass, or None if it failed."""
        r = self.configs.get(key)
        return statistics.median(r.samples_ms[: self.measure.samples]) if r is not None and r.ok and r.samples_ms else None

    def best(self) -> tuple[str, float] | None:
        """The key and median of the whole space's best. With re-timed leaders: the one with the
        lowest median of its re-timed samples (taken interleaved, at one time: the machine's drift
        between the first pass and the re-timing does not decide); else the fastest first pass."""
        return self._best(self.retimed())

    def _best(self, retimed: dict[str, float]) -> tuple[str, float] | None:
        ok = ([(ms, k) for k, ms in retimed.items()] if retimed else
              [(ms, k) for k in self.configs if (ms := self.first_pass(k)) is not None])
        if not ok:
            return None
        ms, key = min(ok)
        return key, ms

    def ratio(self, key: str) -> float | None:
        """``key``'s cost over the whole space's best, on samples taken at the same time: the
        re-timed medians when both were re-timed, else both first-pass medians; None if it failed."""
        retimed = self.retimed()
        best = self._best(retimed)
        if best is None:
            return None
        if key in retimed:
            return retimed[key] / best[1]
        mine, theirs = self.first_pass(key), self.first_pass(best[0])
        return mine / theirs if mine is not None and theirs else None

    def total_wall_s(self) -> float:
        return sum(r.wall_s for r in self.configs.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION, "op": self.op.to_dict(), "template": self.template,
            "template_version": self.template_version, "caps": self.caps.to_dict(),
            "measure": asdict(self.measure), "recorded_at": self.recorded_at,
            "configs": {k: asdict(v) for k, v in self.configs.items()},
        }

    @staticmethod
    def from_dict(d: dict[str, Any]) -> "Recording":
        if d.get("format") != FORMAT_VERSION:
            raise ValueError(f"recording format {d.get('format')!r} is not {FORMAT_VERSION}")
        return Recording(
            op=op_from_dict(d["op"]), template=d["template"], template_version=d["template_version"],
            caps=DeviceCaps.from_dict(d["caps"]), measure=MeasureSpec(**d["measure"]),
            configs={_with_added_params(d["template"], k): RecordedConfig(**v) for k, v in d["configs"].items()},
            recorded_at=float(d.get("recorded_at", 0.0)),
        )

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=None, separators=(",", ":")) + "\n")

    @staticmethod
    def load(path: str | Path) -> "Recording":
        return Recording.from_dict(json.loads(Path(path).read_text()))


def _with_added_params(template: str, key: str) -> str:
    """A recorded config key in the template's current parameter order, where a parameter added
    to the template after the recording (such as matmul-wgsl-vec4's SK) takes its first value, the
    one that renders the kernel the recording timed (the template version did not change)."""
    try:
        params = get_template(template).params()
    except ValueError:
        return key
    old = Config.from_key(key).as_dict()
    names = [p.name for p in params]
    if set(old) - set(names) or set(old) == set(names):
        return key
    return Config([(p.name, old.get(p.name, p.values[0])) for p in params]).key()


def record_space(op: OpSpec, template: Template | str, caps: DeviceCaps, runner: Runner, *,
                 measure: MeasureSpec = MeasureSpec(), seed: int = 1, check_count: int = 64,
                 batch_size: int = 8, confirm_top: int = 0, confirm_rounds: int = 3) -> Recording:
    """Time every config of the space on ``runner``'s device, ``batch_size`` per round trip. With
    ``confirm_top``, the that many fastest configs are then timed ``confirm_rounds`` more times, all
    of them in one batch per round (interleaved), and those samples join their recorded ones: the
    space's best is then not just the luckiest single measurement of a flat landscape. Their
    ``wall_s`` grows by the added samples' time, as if the first pass had taken them: a replay
    asking for the first pass's number of samples is charged what the first pass cost."""
    tpl = get_template(template) if isinstance(template, str) else template
    options = TuneOptions(strategy="exhaustive", budget_s=1e9, batch_size=batch_size, seed=seed, measure=measure,
                          check_count=check_count, confirm_top=0)  # one pass; the leaders are re-timed below
    result = tune(op, tpl, caps, runner, options=options)
    configs: dict[str, RecordedConfig] = {}
    batches: list[list[TrialRecord]] = []
    for rec in result.trials:  # the records of one batch share their elapsed_s
        if batches and batches[-1][0].elapsed_s == rec.elapsed_s:
            batches[-1].append(rec)
        else:
            batches.append([rec])
    previous = 0.0
    for batch in batches:
        wall = batch[0].elapsed_s - previous
        previous = batch[0].elapsed_s
        own = [_own_s(r, measure) for r in batch]
        if sum(own) > wall > 0:  # the estimate overshoots (e.g. a first run that includes setup): scale it
            own = [o * wall / sum(own) for o in own]
        share = max(0.0, wall - sum(own)) / len(batch)
        for r, o in zip(batch, own):
            configs[r.config_key] = _recorded(r, o + share)
    if confirm_top:
        _confirm(op, tpl, runner, configs, measure, seed, check_count, confirm_top, confirm_rounds)
    return Recording(op, tpl.name, tpl.version, caps, measure, configs)


def _confirm(op: OpSpec, tpl: Template, runner: Runner, configs: dict[str, "RecordedConfig"], measure: MeasureSpec,
             seed: int, check_count: int, top: int, rounds: int) -> None:
    """Time the ``top`` fastest ok configs again, interleaved, ``rounds`` times; add the samples of
    the checked runs to theirs."""
    leaders = sorted((r.median_ms, k) for k, r in configs.items() if r.ok and r.median_ms is not None)[:top]
    keys = [k for _, k in leaders]
    for _ in range(rounds):
        records = run_configs(op, tpl, [Config.from_key(k) for k in keys], runner, measure=measure, seed=seed,
                              check_count=check_count)
        for key, res in zip(keys, records):
            if res.ok:
                rec = configs[key]
                added_s = len(res.samples_ms) * rec.reps * (rec.median_ms or 0.0) / 1e3
                configs[key] = replace(rec, samples_ms=[*rec.samples_ms, *res.samples_ms], wall_s=rec.wall_s + added_s)


def _own_s(rec: TrialRecord, measure: MeasureSpec) -> float:
    """Device seconds one candidate needs by itself: compile, first run and warm-up, then the
    calibration (counted as one sample) and the samples."""
    first = rec.first_run_ms or 0.0
    per_sample = rec.reps * (rec.median_ms or 0.0)
    return ((rec.compile_ms or 0.0) + first * (1 + measure.warmup) + per_sample * (1 + len(rec.samples_ms))) / 1e3


def _recorded(rec: TrialRecord, wall_s: float) -> RecordedConfig:
    return RecordedConfig(ok=rec.ok, error_class=rec.error_class, samples_ms=list(rec.samples_ms), reps=rec.reps,
                          compile_ms=rec.compile_ms, first_run_ms=rec.first_run_ms, timer_kind=rec.timer_kind,
                          wall_s=max(0.0, wall_s))


class ReplayRunner:
    """In-process replay of a ``Recording`` (not a device): implements ``Runner.run_batch``.

    Contract: each candidate is mapped back to its config by rendering the recording's configs with
    the same template; a recorded success answers ``samples`` recorded samples (cycled from where
    the last answer for that config stopped) and the reference values at the check positions; a
    recorded wrong result answers values that fail the check; other recorded failures and configs
    missing from the recording answer their error class. ``clock()`` is the simulated device time
    in seconds: each candidate adds its recorded wall time, less (or plus) the time of the samples
    it skipped (or added) relative to the recording.
    """

    def __init__(self, recording: Recording, template: Template | None = None):
        tpl = template or get_template(recording.template)
        if tpl.version != recording.template_version:
            raise ValueError(f"recording made with {recording.template} v{recording.template_version}, "
                             f"template is v{tpl.version}: record it again")
        self.recording = recording
        self._by_code = {tpl.render(recording.op, Config.from_key(k)).full_text(): k for k in recording.configs}
        self._cursor: dict[str, int] = {}
        self.device_s = 0.0
        self.candidates = 0

    def clock(self) -> float:
        return self.device_s

    def run_batch(self, batch: Batch) -> list[CandidateResult]:
        seed = batch.buffers[0].seed
        expected = expected_values(batch.op, seed, list(batch.check_positions)).tolist()
        return [self._answer(c.id, c.kernel.full_text(), batch.measure, expected) for c in batch.candidates]

    def _answer(self, cid: str, code: str, measure: MeasureSpec, expected: list[float]) -> CandidateResult:
        self.candidates += 1
        key = self._by_code.get(code)
        rec = None if key is None else self.recording.configs[key]
        if rec is None:
            self.device_s += 0.01
            return CandidateResult(cid, False, "harness", "config not in the recording")
        if rec.error_class not in (None, "wrong-result"):
            self.device_s += rec.wall_s
            return CandidateResult(cid, False, rec.error_class, f"recorded failure: {rec.error_class}")
        n = measure.samples
        start = self._cursor.get(key, 0)
        samples = [rec.samples_ms[(start + i) % len(rec.samples_ms)] for i in range(n)] if rec.samples_ms else []
        self._cursor[key] = start + n
        median = rec.median_ms or 0.0
        extra_s = (n - len(rec.samples_ms)) * rec.reps * median / 1e3
        self.device_s += max(0.0, rec.wall_s + extra_s)
        wrong = rec.error_class == "wrong-result"
        return CandidateResult(cid, True, compile_ms=rec.compile_ms, first_run_ms=rec.first_run_ms, samples_ms=samples,
                               reps=rec.reps, timer_kind=rec.timer_kind or "wall",
                               values=[v + 1.0 + abs(v) for v in expected] if wrong else list(expected))
