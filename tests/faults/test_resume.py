"""Kill the driver (the `jitfarm run` process) mid-run; `jitfarm run --resume RUN_ID` completes
the run: every job ends with exactly one successful record, nothing is lost or duplicated."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pandas as pd
import pytest

from farm.cli import main
from farm.config.experiments import load_experiment
from farm.procs import cmdline, descendants, process_alive as alive
from tests.projects import run_folders

from .conftest import ROOT, check_records, kill_pids, needs_lavapipe, parts, run_dir_of, wait_for

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.native]

MAX_EVALS = 10
EXPERIMENT = """\
name: resume
devices: [native-lavapipe]
ops:
  - {kind: matmul, M: 16, N: 16, K: 16}
  - {kind: matmul, M: 32, N: 32, K: 32}
  - {kind: matmul, M: 8, N: 32, K: 16}
tuner: {budget_s: 30, max_evals: 10, batch_size: 1}
measure: {warmup: 1, samples: 3, min_sample_ms: 5, max_reps: 64}
compare: {rounds: 2, samples: 2}
"""


def _mid_job(run_dir) -> bool:
    """True while some job has trials on disk, fewer than max_evals, and no jobs record yet."""
    if not parts(run_dir, "trials"):
        return False
    trials = pd.read_parquet(run_dir / "trials", columns=["job_id"])
    jobs = pd.read_parquet(run_dir / "jobs", columns=["job_id"])
    counts = trials[~trials["job_id"].isin(jobs["job_id"])].groupby("job_id").size()
    return bool(((counts >= 2) & (counts < MAX_EVALS)).any())


@needs_lavapipe
def test_driver_killed_mid_run_then_resume_completes_it_without_loss_or_duplicates(ray_session, workspace, tmp_path):
    path = workspace("resume", EXPERIMENT)
    exp = load_experiment(path)
    results = tmp_path / "results"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    driver = subprocess.Popen([sys.executable, "-m", "farm.cli", "run", str(path), "--results-dir", str(results)],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started: list[int] = []
    try:
        run_dir = run_dir_of(results)
        wait_for(lambda: parts(run_dir, "jobs"), 180, "the first finished job")
        wait_for(lambda: _mid_job(run_dir), 120, "a job with some of its trials on disk")
        started = descendants(driver.pid)
        driver.send_signal(signal.SIGKILL)
        driver.wait(30)
        # Ray's GCS and raylet share the driver's fate and the run's workers follow within seconds
        # (they may still flush a record or two meanwhile). Its dashboard and runtime-env agents
        # outlive it: those are ended here, by PID.
        writers = [p for p in started if any(n in " ".join(cmdline(p)) for n in ("DeviceWorker", "Aggregator"))]
        assert writers
        wait_for(lambda: not any(alive(p) for p in writers), 60, "the killed run's workers to end")
        kill_pids([p for p in started if alive(p)])
    finally:
        if driver.poll() is None:
            driver.kill()
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "running"
    before = pd.read_parquet(run_dir / "jobs")
    assert 1 <= (before["status"] == "ok").sum() < len(exp.jobs())

    assert main(["run", "--resume", run_dir.name, "--results-dir", str(results)]) == 0
    jobs = check_records(run_dir, {j.job_id for j in exp.jobs()})
    assert (jobs.groupby("job_id")["status"].apply(lambda s: (s == "ok").sum()) == 1).all()
    # An attempt that left rows but no jobs record (in flight when the run died) is closed by an
    # 'interrupted' record and the job ran again as the next attempt.
    interrupted = jobs[jobs["error"].fillna("").str.startswith("interrupted")]
    assert set(interrupted["error_class"]) <= {"infra"}
    for _, row in interrupted.iterrows():
        again = jobs[(jobs["job_id"] == row["job_id"]) & (jobs["status"] == "ok")]
        assert again["attempt"].iloc[0] == row["attempt"] + 1
    # Every ok record written before the kill is still there, unchanged.
    kept = before[before["status"] == "ok"].set_index(["job_id", "attempt"])["best_config"]
    assert kept.equals(jobs.set_index(["job_id", "attempt"]).loc[kept.index, "best_config"])
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "finished" and len(manifest["resumed"]) == 1


@needs_lavapipe
def test_replay_runs_the_recorded_experiment_again_as_a_new_run(ray_session, workspace, tmp_path):
    one_op = EXPERIMENT.replace("max_evals: 10", "max_evals: 2").replace("  - {kind: matmul, M: 32, N: 32, K: 32}\n", "")
    path = workspace("replay", one_op.replace("  - {kind: matmul, M: 8, N: 32, K: 16}\n", ""))
    results = tmp_path / "results"
    assert main(["run", str(path), "--results-dir", str(results)]) == 0
    (first,) = run_folders(results)
    path.unlink()  # the replay needs only the manifest
    assert main(["run", "--replay", first.name, "--results-dir", str(results)]) == 0
    (second,) = [d for d in run_folders(results) if d != first]
    old, new = (json.loads((d / "manifest.json").read_text()) for d in (first, second))
    assert new["replay_of"] == first.name and new["experiment"] == old["experiment"]
    assert new["device_configs"] == old["device_configs"]
    assert set(pd.read_parquet(second / "jobs")["status"]) == {"ok"}
