"""The next job is sent to a device's worker while the current one runs; when the current one
fails, the job sent ahead is taken back, not run, and runs once, in plan order, after the retry."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from farm.config.experiments import load_experiment
from farm.procs import process_alive
from farm.scheduler.run import RunOptions, run_experiment

from .conftest import check_records, needs_lavapipe
from .spin_template import BROKEN_M, BrokenOnM5, register

EXPERIMENT = f"""\
name: take-back
devices: [native-lavapipe]
ops:
  - {{kind: matmul, M: 8, N: 16, K: 16, label: first}}
  - {{kind: matmul, M: {BROKEN_M}, N: 16, K: 16, label: broken}}
  - {{kind: matmul, M: 12, N: 16, K: 16, label: after}}
  - {{kind: matmul, M: 16, N: 16, K: 16, label: last}}
tuner: {{template: {BrokenOnM5.name}, budget_s: 30, max_evals: 2, batch_size: 2}}
measure: {{warmup: 0, samples: 2, min_sample_ms: 1, max_reps: 4}}
compare: {{rounds: 1, samples: 2}}
faults: {{retries: {{kernel: 1}}}}
"""


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.native
@needs_lavapipe
def test_job_sent_ahead_of_a_failing_job_is_taken_back_and_runs_once_after_the_retry(ray_session, workspace, tmp_path):
    register()
    exp = load_experiment(workspace("take-back", EXPERIMENT))
    outcome = run_experiment(exp, RunOptions(results_dir=tmp_path / "results", poll_s=0.2))
    jobs = check_records(outcome.run_dir, {j.job_id for j in exp.jobs()})
    attempts = {label: list(zip(rows["attempt"], rows["status"])) for label, rows in jobs.groupby("op_label")}
    assert attempts == {"first": [(1, "ok")], "broken": [(1, "failed"), (2, "failed")],
                        "after": [(1, "ok")], "last": [(1, "ok")]}, attempts
    assert set(jobs.loc[jobs["op_label"] == "broken", "error_class"]) == {"kernel"}
    # 'after' was sent ahead of both attempts of 'broken', taken back twice, then run after them
    ts = jobs.set_index(["op_label", "attempt"])["ts"]
    assert ts[("broken", 2)] < ts[("after", 1)] < ts[("last", 1)]
    timing = json.loads((outcome.run_dir / "manifest.json").read_text())["timing"]["devices"]["native-lavapipe"]
    assert timing["taken_back"] == 2 and timing["restarts"] == 0
    # where the device's open went: the driver's open and the probe, parts of the time to the first job
    phases = timing["open_phases"]
    assert set(phases) >= {"driver_s", "probe_s"} and phases["driver_s"] + phases["probe_s"] <= timing["open_s"]


def test_a_worker_starts_a_job_sent_ahead_only_while_the_driver_process_runs():
    assert process_alive(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    assert child.wait(30) == 0
    assert not process_alive(child.pid)  # reaped
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    os.waitid(os.P_PID, zombie.pid, os.WEXITED | os.WNOWAIT)  # ended, not reaped yet: a zombie
    assert not process_alive(zombie.pid)
    zombie.wait()


@pytest.mark.ray
@pytest.mark.native
@needs_lavapipe
def test_worker_runs_a_job_sent_ahead_only_after_an_ok_job_and_while_the_driver_runs(ray_session, workspace, tmp_path):
    """The DeviceWorker class called in this process (the driver's side of Ray is real, and so are
    the aggregator actor and the lavapipe device)."""
    import ray

    from farm.scheduler.actors import Aggregator, DeviceWorker
    from farm.scheduler.lanes import NOT_STARTED

    register()
    exp = load_experiment(workspace("ahead-guard", EXPERIMENT))
    first, broken, after, last = exp.jobs()
    agg = ray.remote(num_cpus=0)(Aggregator).remote(str(tmp_path / "run"))
    worker = DeviceWorker(exp.devices[0], exp, "run", agg)
    worker.open()
    try:
        gone = subprocess.Popen([sys.executable, "-c", "pass"])
        gone.wait(30)
        assert worker.run_job(first)["status"] == "ok"
        rows = ray.get(agg.flush.remote())
        assert worker.run_job(after, 1, ahead_of=gone.pid)["status"] == NOT_STARTED  # the driver is gone
        assert ray.get(agg.flush.remote()) == rows  # and nothing was recorded
        assert worker.run_job(after, 1, ahead_of=os.getpid())["status"] == "ok"
        assert worker.run_job(broken)["status"] == "failed"
        rows = ray.get(agg.flush.remote())
        assert worker.run_job(last, 1, ahead_of=os.getpid())["status"] == NOT_STARTED  # the job before failed
        assert ray.get(agg.flush.remote()) == rows
        assert worker.run_job(last)["status"] == "ok"  # a plain call always runs
    finally:
        worker.close()
        ray.kill(agg)
