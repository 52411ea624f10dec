"""The tuning loop, against an in-process stand-in for a device (SyntheticCostRunner): it returns a
deterministic cost per config and the reference values, and can be told to fail or lie."""

from __future__ import annotations

import json
import math
import statistics
import time

import pytest

from jit_core.caps import DeviceCaps
from jit_core.ops import MatMul
from jit_core.protocol import Batch, CandidateResult, MeasureSpec
from jit_core.reference import expected_values
from jit_core.search import Exhaustive, get_strategy
from jit_core.space import Config
from jit_core.templates import MatmulWGSL
from jit_core.tuner import TrialRecord, TuneOptions, tune

CAPS = DeviceCaps.from_probe({
    "adapter": {"vendor": "google", "architecture": "swiftshader", "isFallbackAdapter": True},
    "limits": {"maxComputeInvocationsPerWorkgroup": 256, "maxComputeWorkgroupStorageSize": 32768},
    "features": ["timestamp-query"],
})
OP = MatMul(64, 64, 64)
T = MatmulWGSL()


def synthetic_cost(c: Config) -> float:
    """Deterministic, with a single cheapest config (BM=32, BN=64, BK=16, 4x4, SH=1)."""
    return (1.0 + abs(math.log2(c["BM"]) - 5) + 1.3 * abs(math.log2(c["BN"]) - 6) + 0.7 * abs(math.log2(c["TM"]) - 2)
            + 0.4 * abs(math.log2(c["BK"]) - 4) + (0.0 if c["SH"] else 2.5))


class SyntheticCostRunner:
    """In-process stand-in for a device (not a device): maps each kernel back to its config, answers
    ``synthetic_cost`` as samples and the reference values at the check positions. ``fail`` maps
    config keys to an error class; ``wrong`` holds config keys whose values are off; ``sleep_s`` is
    spent per candidate, and ``clock()`` is the simulated device time so spent (immune to the
    machine's load); ``raise_on_batch`` raises on that batch number (device gone)."""

    def __init__(self, op, *, fail=None, wrong=(), sleep_s=0.0, raise_on_batch=None):
        self.op = op
        self.by_code = {T.render(op, c).code: c for c in T.space(op, CAPS)}
        self.fail = dict(fail or {})
        self.wrong = set(wrong)
        self.sleep_s = sleep_s
        self.raise_on_batch = raise_on_batch
        self.batches: list[Batch] = []
        self.spent_s = 0.0

    def clock(self) -> float:
        return self.spent_s

    def run_batch(self, batch: Batch) -> list[CandidateResult]:
        self.batches.append(batch)
        if self.raise_on_batch == len(self.batches):
            raise RuntimeError("browser crashed")
        seed = batch.buffers[0].seed
        exp = expected_values(batch.op, seed, list(batch.check_positions)).tolist()
        out = []
        for cand in batch.candidates:
            time.sleep(self.sleep_s)
            self.spent_s += self.sleep_s
            c = self.by_code[cand.kernel.code]
            if c.key() in self.fail:
                out.append(CandidateResult(cand.id, False, self.fail[c.key()], "synthetic failure"))
                continue
            values = [v + (1.0 if c.key() in self.wrong else 0.0) for v in exp]
            cost = synthetic_cost(c)
            out.append(CandidateResult(cand.id, True, compile_ms=1.0, first_run_ms=cost, samples_ms=[cost * 1.1, cost, cost * 0.95 + 0.05],
                                       reps=4, timer_kind="timestamp", timer_resolution_ms=1e-4, values=values))
        return out


def _ranked():
    return sorted(T.space(OP, CAPS), key=synthetic_cost)


def test_tuner_finds_the_cheapest_config_of_the_whole_space():
    runner = SyntheticCostRunner(OP)
    res = tune(OP, T, CAPS, runner)
    space = T.space(OP, CAPS)
    search = [t for t in res.trials if t.phase == "search"]
    assert res.stopped == "space-exhausted" and len(search) == len(space) == res.space_size
    # then the confirmation rounds: the 4 fastest again, twice, each round in one batch
    confirm = res.trials[len(search):]
    assert [t.phase for t in confirm] == ["confirm"] * 8
    assert [t.config_key for t in confirm] == [c.key() for c in _ranked()[:4]] * 2
    assert [len(b.candidates) for b in runner.batches[-2:]] == [4, 4]
    assert res.best is not None and res.best.config_key == _ranked()[0].key()
    assert res.best.median_ms == pytest.approx(synthetic_cost(_ranked()[0]))
    assert all(t.ok and t.check_ok for t in res.trials)
    assert (res.template, res.template_version, res.caps_fingerprint) == ("matmul-wgsl", T.version, CAPS.fingerprint())
    assert res.raw_space_size == 3072 and res.space_report["size"] == len(space)


def test_failed_and_wrong_result_configs_never_win():
    ranked = _ranked()
    runner = SyntheticCostRunner(OP, fail={ranked[0].key(): "compile"}, wrong={ranked[1].key()})
    res = tune(OP, T, CAPS, runner)
    assert res.best.config_key == ranked[2].key()
    by_key = {t.config_key: t for t in res.trials}
    compiled = by_key[ranked[0].key()]
    assert (compiled.ok, compiled.error_class, compiled.check_ok, compiled.median_ms) == (False, "compile", None, None)
    wrong = by_key[ranked[1].key()]
    assert (wrong.ok, wrong.error_class, wrong.check_ok) == (False, "wrong-result", False)
    assert wrong.max_abs_err == pytest.approx(1.0) and "wrong" in wrong.error


def test_max_evals_caps_the_number_of_trials():
    runner = SyntheticCostRunner(OP)
    res = tune(OP, T, CAPS, runner, options=TuneOptions(max_evals=10, batch_size=4))
    assert res.stopped == "eval-budget" and sum(t.phase == "search" for t in res.trials) == 10
    # the confirmation rounds re-time 4 of those 10 twice: no config beyond the first 10 is tried
    assert [len(b.candidates) for b in runner.batches] == [4, 4, 2, 4, 4]
    assert {t.config_key for t in res.trials} == {c.key() for c in T.space(OP, CAPS).configs[:10]}


def test_time_budget_stops_the_search_within_one_batch():
    runner = SyntheticCostRunner(OP, sleep_s=0.02)
    res = tune(OP, T, CAPS, runner, options=TuneOptions(budget_s=0.3, batch_size=4, confirm_top=0), clock=runner.clock)
    assert res.stopped == "time-budget"
    assert 0 < len(res.trials) < res.space_size
    # Checked before each batch: the last batch starts under the budget and adds at most 4 candidates.
    assert 0.3 <= res.elapsed_s <= 0.3 + 4 * 0.02 + 1e-9
    assert len(res.trials) == round(res.elapsed_s / 0.02)
    assert res.best is not None and res.best.ok


def test_trace_has_monotone_best_so_far_and_elapsed_time():
    seen: list[TrialRecord] = []
    res = tune(OP, T, CAPS, SyntheticCostRunner(OP), options=TuneOptions(batch_size=5), on_trial=seen.append)
    assert seen == res.trials and [t.index for t in seen] == list(range(len(seen)))
    bests = [t.best_so_far_ms for t in res.trials]
    assert all(b is not None for b in bests)
    assert all(a >= b for a, b in zip(bests, bests[1:]))
    assert bests[-1] == res.best.median_ms
    el = [t.elapsed_s for t in res.trials]
    assert all(a <= b for a, b in zip(el, el[1:])) and el[-1] <= res.elapsed_s


def test_exhaustive_search_follows_the_prior_order():
    res = tune(OP, T, CAPS, SyntheticCostRunner(OP), options=TuneOptions(max_evals=12))
    search = [t.config_key for t in res.trials if t.phase == "search"]
    assert search == [c.key() for c in T.space(OP, CAPS).configs[:12]]


def test_codegen_failure_is_a_trial_not_a_crash():
    class Flaky(MatmulWGSL):
        def render(self, op, config):
            if config["TM"] == 2:
                raise RuntimeError("template bug")
            return super().render(op, config)

    res = tune(OP, Flaky(), CAPS, SyntheticCostRunner(OP))
    bad = [t for t in res.trials if t.config["TM"] == 2]
    assert bad and all(t.error_class == "codegen" and "template bug" in t.error and not t.ok for t in bad)
    assert sum(t.phase == "search" for t in res.trials) == res.space_size and res.best.config["TM"] != 2


def test_a_runner_exception_propagates():
    with pytest.raises(RuntimeError, match="browser crashed"):
        tune(OP, T, CAPS, SyntheticCostRunner(OP, raise_on_batch=2))


def test_batches_carry_the_options_seed_measure_and_check_positions():
    runner = SyntheticCostRunner(OP)
    measure = MeasureSpec(warmup=0, samples=3, min_sample_ms=1.0)
    tune(OP, "matmul-wgsl", CAPS, runner, options=TuneOptions(max_evals=2, seed=9, measure=measure, check_count=16))
    b = runner.batches[0]
    assert b.measure == measure and {x.seed for x in b.buffers if x.init == "prng"} == {9}
    assert [x.name for x in b.buffers] == ["A", "B", "C"] and b.buffers[2].output
    assert len(b.check_positions) >= 16


def test_result_serializes_to_json():
    res = tune(OP, T, CAPS, SyntheticCostRunner(OP), options=TuneOptions(max_evals=3))
    d = json.loads(json.dumps(res.to_dict()))
    assert d["op_key"] == OP.key() and d["best"]["config_key"] == res.best.config_key
    assert [t["phase"] for t in d["trials"]] == ["search"] * 3 + ["confirm"] * 6
    assert res.best_config == Config.from_key(res.best.config_key)


def test_tune_options_validate():
    with pytest.raises(ValueError):
        TuneOptions(budget_s=0)
    with pytest.raises(ValueError):
        TuneOptions(batch_size=0)
    with pytest.raises(ValueError):
        TuneOptions(max_evals=0)
    with pytest.raises(ValueError, match="confirm"):
        TuneOptions(confirm_top=-1)
    with pytest.raises(ValueError, match="confirm"):
        TuneOptions(confirm_rounds=-1)


def test_exhaustive_strategy_keeps_the_ask_tell_contract():
    space = T.space(OP, CAPS)
    s = get_strategy("exhaustive", space, seed=1)
    assert isinstance(s, Exhaustive)
    first = s.ask(5)
    assert first == list(space.configs[:5])
    with pytest.raises(ValueError, match="never asked"):
        s.tell(space.configs[10], 1.0)
    for i, c in enumerate(first):
        s.tell(c, None if i == 0 else float(10 - i))
    with pytest.raises(ValueError, match="twice"):
        s.tell(first[1], 1.0)
    assert s.best == (first[4], 6.0)
    rest = s.ask(10_000)
    assert len(rest) == len(space) - 5 and not set(rest) & set(first)
    assert s.done and s.ask(3) == [] and len(s.pending) == len(rest)
    with pytest.raises(ValueError, match="known"):
        get_strategy("annealing", space, seed=1)


def test_an_empty_space_ends_at_once_without_a_winner():
    tiny = CAPS.__class__.from_dict({**CAPS.to_dict(), "max_storage_buffer_binding_size": 1024})
    runner = SyntheticCostRunner(OP)
    res = tune(OP, T, tiny, runner)
    assert (res.stopped, res.best, res.trials, res.space_size) == ("space-exhausted", None, [], 0)
    assert res.space_report["removed"]["operands-fit-binding"] > 0 and runner.batches == []


class LuckyOnceRunner(SyntheticCostRunner):
    """The stand-in device, where the configs in ``lucky`` answer their first run at ``factor``
    times their cost (a measurement that caught the machine idle) and every later run at their cost."""

    def __init__(self, op, *, lucky, factor=0.4, **kw):
        super().__init__(op, **kw)
        self.lucky, self.factor, self.seen = set(lucky), factor, set()

    def run_batch(self, batch):
        out = super().run_batch(batch)
        for cand, res in zip(batch.candidates, out):
            key = self.by_code[cand.kernel.code].key()
            if key in self.lucky and key not in self.seen and res.ok:
                res.samples_ms = [x * self.factor for x in res.samples_ms]
            self.seen.add(key)
        return out


def test_a_lucky_single_measurement_does_not_win_the_confirmation_rounds():
    ranked = _ranked()
    lucky = ranked[5]  # 0.4x its cost on first sight: the fastest of the first pass
    without = tune(OP, T, CAPS, LuckyOnceRunner(OP, lucky={lucky.key()}), options=TuneOptions(confirm_top=0))
    assert without.best.config_key == lucky.key()
    res = tune(OP, T, CAPS, LuckyOnceRunner(OP, lucky={lucky.key()}), options=TuneOptions(confirm_top=4, confirm_rounds=2))
    assert res.best.config_key == ranked[0].key()
    leaders = {t.config_key for t in res.trials if t.phase == "confirm"}
    assert lucky.key() in leaders and ranked[0].key() in leaders and len(leaders) == 4
    # the winner's samples are all of its samples, its median theirs; the trace ends on it
    mine = [x for t in res.trials if t.config_key == ranked[0].key() for x in t.samples_ms]
    assert sorted(res.best.samples_ms) == sorted(mine) and len(mine) == 9
    assert res.best.median_ms == pytest.approx(statistics.median(mine))
    assert (res.trials[-1].best_config_key, res.trials[-1].best_so_far_ms) == (ranked[0].key(), res.best.median_ms)


def test_a_leader_that_fails_a_confirmation_round_never_wins():
    ranked = _ranked()

    class FailsSecondTime(SyntheticCostRunner):
        """The stand-in device, where the cheapest config gives a wrong result from its second run on."""

        def __init__(self, op):
            super().__init__(op)
            self.runs = 0

        def run_batch(self, batch):
            out = super().run_batch(batch)
            for cand, res in zip(batch.candidates, out):
                if self.by_code[cand.kernel.code] == ranked[0]:
                    self.runs += 1
                    if self.runs > 1:
                        res.values = [v + 1.0 for v in res.values]
            return out

    res = tune(OP, T, CAPS, FailsSecondTime(OP), options=TuneOptions(confirm_top=3, confirm_rounds=2))
    assert res.best.config_key == ranked[1].key()
    failed = [t for t in res.trials if t.phase == "confirm" and t.config_key == ranked[0].key()]
    assert len(failed) == 1 and failed[0].error_class == "wrong-result"  # out after its first failure
    assert sum(t.phase == "confirm" for t in res.trials) == 3 + 2


def test_time_for_the_confirmation_rounds_is_set_aside_from_the_budget():
    runner = SyntheticCostRunner(OP, sleep_s=0.02)
    res = tune(OP, T, CAPS, runner, options=TuneOptions(budget_s=0.6, batch_size=4, confirm_top=4, confirm_rounds=2),
               clock=runner.clock)
    assert res.stopped == "time-budget"
    confirm = [t for t in res.trials if t.phase == "confirm"]
    assert len(confirm) == 8 and len(runner.batches[-1].candidates) == 4
    # the search stopped once 4 leaders x 2 rounds x 0.02 s no longer fitted; the rounds end within
    # the budget plus at most one batch
    search_end = max(t.elapsed_s for t in res.trials if t.phase == "search")
    assert 0.6 - 0.16 - 4 * 0.02 - 1e-9 <= search_end <= 0.6 - 0.16 + 1e-9
    assert res.elapsed_s <= 0.6 + 4 * 0.02 + 1e-9


def test_no_confirmation_round_when_fewer_than_two_configs_passed():
    ranked = _ranked()
    keep = {ranked[3].key()}
    fail = {c.key(): "compile" for c in ranked if c.key() not in keep}
    res = tune(OP, T, CAPS, SyntheticCostRunner(OP, fail=fail))
    assert res.best.config_key == ranked[3].key() and all(t.phase == "search" for t in res.trials)
