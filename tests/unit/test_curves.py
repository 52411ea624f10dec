"""Tuning curves drawn from a run's trials table (best-so-far against elapsed seconds)."""

import dataclasses
from pathlib import Path

import pandas as pd
import pytest

from farm.analysis.curves import tuning_curves
from farm.scheduler.job import trial_row
from farm.store.parquet import ParquetStore
from jit_core.protocol import make_batch
from jit_core.replay import Recording, ReplayRunner, record_space
from jit_core.space import Config
from jit_core.templates import get_template
from jit_core.tuner import TuneOptions, tune

DATA = Path(__file__).resolve().parent.parent / "data" / "recordings"


def test_curve_of_a_replayed_tune_steps_down_with_time(tmp_path):
    rec = Recording.load(sorted(DATA.glob("*.json"))[0])
    runner = ReplayRunner(rec)
    tpl = get_template(rec.template)
    store = ParquetStore(tmp_path / "run")
    common = {"run_id": "r", "job_id": "j", "device_id": "lavapipe", "op_key": rec.op.key(), "op_label": "op", "ts": 0.0}
    res = tune(rec.op, tpl, rec.caps, runner, clock=runner.clock,
               options=TuneOptions(strategy="exhaustive", max_evals=30, measure=rec.measure, confirm_top=0),
               on_trial=lambda t: store.append("trials", [trial_row(common, t, tpl, "exhaustive")]))
    curve = tuning_curves(store.read("trials"))
    assert len(res.trials) == 30 and 1 <= len(curve) <= 30  # the steps, plus the last trial
    assert curve["elapsed_s"].is_monotonic_increasing and curve["best_so_far_ms"].is_monotonic_decreasing
    assert curve["best_so_far_ms"].iloc[-1] == res.best.median_ms


def test_curve_takes_only_the_answer_from_confirmation_rounds_whose_pooled_medians_go_up_and_down():
    # As in a real lavapipe run: the search's luckiest sample 0.0655 ms; round 1 pools the leaders'
    # samples to 0.090 ms, round 2 to 0.0813 ms, the tuner's answer. Round 1 is no search step.
    rows = [("search", 0, 1.0, 0.100), ("search", 1, 2.0, 0.0655), ("search", 2, 3.0, 0.0700),
            ("confirm", 3, 4.0, 0.090), ("confirm", 4, 4.0, 0.090),
            ("confirm", 5, 5.0, 0.0813), ("confirm", 6, 5.0, 0.0813)]
    trials = pd.DataFrame([{"run_id": "r", "device_id": "d", "op_key": "k", "op_label": "op", "phase": ph,
                            "trial_index": i, "elapsed_s": t, "best_so_far_ms": b} for ph, i, t, b in rows])
    curve = tuning_curves(trials)
    assert list(curve["best_so_far_ms"]) == [0.100, 0.0655, 0.0813]
    assert list(curve["elapsed_s"]) == [1.0, 2.0, 5.0]
    # a table written before the phase column existed: every row is a search row
    old = tuning_curves(trials.drop(columns="phase").iloc[:3])
    assert list(old["best_so_far_ms"]) == [0.100, 0.0655, 0.0700]


def test_record_space_times_its_leaders_again_interleaved_and_charges_their_first_pass():
    """record_space over a replay of a recording (an in-process stand-in for a device): the four
    fastest configs get three more rounds of samples, and a replay asking the first pass's sample
    count is still charged the first pass's device time for them."""
    rec = Recording.load(DATA / "lavapipe-vec4-64x64x64.json")
    again = record_space(rec.op, rec.template, rec.caps, ReplayRunner(rec), measure=rec.measure,
                         confirm_top=4, confirm_rounds=3)
    n = rec.measure.samples
    top4 = {k for _, k in sorted((r.median_ms, k) for k, r in rec.configs.items() if r.ok and r.median_ms is not None)[:4]}
    grown = {k for k, r in again.configs.items() if len(r.samples_ms) == 4 * n}
    assert grown == top4
    assert all(len(r.samples_ms) == n for k, r in again.configs.items() if k not in grown)
    tpl = get_template(again.template)
    for k in grown:
        r = again.configs[k]
        replay = ReplayRunner(again)
        kernel = tpl.render(again.op, Config.from_key(k))
        (res,) = replay.run_batch(make_batch(again.op, [("x", kernel)], seed=1, measure=again.measure, check_positions=[0]))
        assert res.ok and len(res.samples_ms) == n
        assert replay.clock() == pytest.approx(r.wall_s - 3 * n * r.reps * r.median_ms / 1e3)


def test_the_space_best_compares_samples_taken_at_the_same_time():
    """A machine twice as slow during the re-timing than during the first pass (another process
    took a core): the re-timed leaders are judged on their re-timed samples only, and a config that
    was not re-timed is judged against the best on the first pass."""
    rec = Recording.load(DATA / "lavapipe-vec4-64x64x64.json")
    n = rec.measure.samples
    a, b, c = [k for k, r in rec.configs.items() if r.ok][:3]

    def timed(first: float, again: float | None) -> object:
        return dataclasses.replace(rec.configs[a], samples_ms=[first] * n + ([again] * 3 * n if again else []))

    drifted = dataclasses.replace(rec, configs={a: timed(1.0, 3.0), b: timed(1.1, 2.0), c: timed(1.05, None)})
    assert drifted.best() == (b, 2.0)
    assert drifted.ratio(a) == pytest.approx(1.5) and drifted.ratio(b) == 1.0
    assert drifted.ratio(c) == pytest.approx(1.05 / 1.1)
    one_pass = dataclasses.replace(rec, configs={a: timed(1.0, None), b: timed(1.1, None)})
    assert one_pass.best() == (a, 1.0) and one_pass.ratio(b) == pytest.approx(1.1)
