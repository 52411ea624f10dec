"""A browser killed mid-job and a worker process killed mid-job: the attempt is a classified
record, the job runs again on the same device after the driver is reopened, nothing is lost."""

from __future__ import annotations

import json
import os
import signal

import pytest

from farm.config.experiments import load_experiment
from farm.procs import cmdline, descendants

from .conftest import (CHROMIUM, needs_chromium, needs_lavapipe, parts, run_dir_of, run_while,
                       wait_for)

pytestmark = [pytest.mark.ray, pytest.mark.slow]

BROWSER_EXPERIMENT = """\
name: kill-browser
devices: [local-chromium-swiftshader]
ops:
  - {kind: matmul, M: 16, N: 16, K: 16}
  - {kind: matmul, M: 8, N: 16, K: 16}
tuner: {budget_s: 60, max_evals: 6, batch_size: 2}
measure: {warmup: 0, samples: 2, min_sample_ms: 1, max_reps: 8}
compare: {rounds: 1, samples: 2}
faults: {job_timeout_s: 120}
"""

NATIVE_EXPERIMENT = """\
name: kill-worker
devices: [native-lavapipe]
ops:
  - {kind: matmul, M: 32, N: 32, K: 32}
  - {kind: matmul, M: 16, N: 32, K: 16}
tuner: {budget_s: 60, max_evals: 16, batch_size: 2}
measure: {warmup: 1, samples: 3, min_sample_ms: 5, max_reps: 64}
compare: {rounds: 1, samples: 2}
faults: {job_timeout_s: 120}
"""


def _retried_once(jobs, error_class: str) -> None:
    failed = jobs[jobs["status"] == "failed"]
    assert len(failed) == 1, jobs[["job_id", "attempt", "status", "error_class", "error"]]
    row = failed.iloc[0]
    assert row["error_class"] == error_class and row["attempt"] == 1, row["error"]
    again = jobs[(jobs["job_id"] == row["job_id"]) & (jobs["attempt"] == 2)]
    assert list(again["status"]) == ["ok"]
    assert set(jobs.groupby("job_id")["status"].last()) == {"ok"}


@pytest.mark.browser
@needs_chromium
def test_browser_killed_mid_job_is_a_device_failure_and_the_job_reruns_after_reopening(ray_session, workspace, tmp_path):
    exp = load_experiment(workspace("kill-browser", BROWSER_EXPERIMENT))
    results = tmp_path / "results"
    killed: list[int] = []

    def kill_browser() -> None:
        run_dir = run_dir_of(results)
        wait_for(lambda: parts(run_dir, "trials"), 120, "the first trials of the first job")
        browsers = [p for p in descendants(os.getpid())
                    if (cmd := cmdline(p)) and cmd[0] == CHROMIUM and not any(a.startswith("--type=") for a in cmd)]
        assert len(browsers) == 1, browsers
        os.kill(browsers[0], signal.SIGKILL)
        killed.append(browsers[0])

    outcome, jobs = run_while(exp, results, kill_browser)
    assert killed
    _retried_once(jobs, "device")
    assert "disconnected" in jobs.loc[jobs["status"] == "failed", "error"].iloc[0] or \
           "closed" in jobs.loc[jobs["status"] == "failed", "error"].iloc[0]


@pytest.mark.native
@needs_lavapipe
def test_worker_process_killed_mid_job_is_recorded_and_a_new_worker_finishes_the_run(ray_session, workspace, tmp_path):
    exp = load_experiment(workspace("kill-worker", NATIVE_EXPERIMENT))
    results = tmp_path / "results"
    killed: list[int] = []

    def kill_worker() -> None:
        run_dir = run_dir_of(results)
        wait_for(lambda: parts(run_dir, "trials"), 120, "the first trials of the first job")
        pid = json.loads((run_dir / "manifest.json").read_text())["devices"]["native-lavapipe"]["pid"]
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    outcome, jobs = run_while(exp, results, kill_worker)
    assert killed
    _retried_once(jobs, "device")
    assert "worker process died" in jobs.loc[jobs["status"] == "failed", "error"].iloc[0]
    manifest = json.loads((outcome.run_dir / "manifest.json").read_text())
    assert manifest["devices"]["native-lavapipe"]["pid"] != killed[0]  # a new worker finished the run
