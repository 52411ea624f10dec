"""Tuning curves drawn from a run's trials table (best-so-far against elapsed seconds)."""

from pathlib import Path

from farm.analysis.curves import tuning_curves
from farm.scheduler.job import trial_row
from farm.store.parquet import ParquetStore
from jit_core.replay import Recording, ReplayRunner
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
               options=TuneOptions(strategy="exhaustive", max_evals=30, measure=rec.measure),
               on_trial=lambda t: store.append("trials", [trial_row(common, t, tpl, "exhaustive")]))
    curve = tuning_curves(store.read("trials"))
    assert len(res.trials) == 30 and 1 <= len(curve) <= 30  # the steps, plus the last trial
    assert curve["elapsed_s"].is_monotonic_increasing and curve["best_so_far_ms"].is_monotonic_decreasing
    assert curve["best_so_far_ms"].iloc[-1] == res.best.median_ms
