"""`jitfarm run` on an experiment naming the Appium device, as shipped: real Ray, the Appium server
the device's driver starts (and stops) inside the run's Ray worker, real headless Chromium. The
session's chromedriver is killed mid-job: the attempt is a classified `device` failure, the farm's
retry policy reopens the driver (a new Appium server and session) and the job's second attempt
lands in the store with the device covariates. The run is a `jitfarm` process of its own (its own
Ray instance with the device's resource), as a user starts it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from farm.drivers.appium_server import APPIUM_MAIN
from farm.procs import child_pids, cmdline, descendants, process_alive as alive
from tests.appium_support import require_appium, session_chromedriver
from tests.projects import make_project, run_folders

ROOT = Path(__file__).resolve().parents[2]
DEVICE = "local-appium-chromium"

pytestmark = [pytest.mark.appium, pytest.mark.browser, pytest.mark.ray]

EXPERIMENT = """\
name: kill-chromedriver
devices: [local-appium-chromium]
seed: 6
ops:
  - {kind: matmul, M: 32, N: 32, K: 32, label: square}
tuner: {budget_s: 120, max_evals: 8, batch_size: 2}
measure: {warmup: 1, samples: 3, min_sample_ms: 10, max_reps: 64}
compare: {rounds: 1, samples: 2}
baselines: [tfjs-webgpu]
faults: {retries: {device: 1}}
"""


def finish(proc: subprocess.Popen, timeout_s: float = 300) -> tuple[int, str]:
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        raise AssertionError(f"jitfarm run did not finish in {timeout_s} s:\n{out[-3000:]}")
    return proc.returncode, out


def test_a_chromedriver_killed_mid_job_is_a_device_failure_and_the_job_reruns_in_a_new_session(tmp_path):
    require_appium()
    path = make_project(tmp_path, "kill", EXPERIMENT)
    results = tmp_path / "results"
    proc = subprocess.Popen([sys.executable, "-m", "farm.cli", "run", str(path), "--results-dir", str(results)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    servers: list[int] = []
    orphans: list[int] = []
    try:
        deadline = time.monotonic() + 180
        while not list(results.glob("*/trials/part-*.parquet")):
            assert proc.poll() is None and time.monotonic() < deadline, "the job's first trials never landed"
            time.sleep(0.1)
        servers = [p for p in descendants(proc.pid) if str(APPIUM_MAIN) in cmdline(p)]
        assert len(servers) == 1, f"one Appium server below the run: {servers}"
        assert "127.0.0.1" in cmdline(servers[0])
        chromedriver = session_chromedriver(servers[0])
        orphans = child_pids(chromedriver)  # its browser outlives it: ended below, by PID
        os.kill(chromedriver, signal.SIGKILL)
        code, out = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in orphans:
            if alive(pid):
                os.kill(pid, signal.SIGTERM)
    assert code == 0, out[-3000:]
    assert not any(alive(p) for p in servers), "the driver stopped the Appium server it started"
    (run_dir,) = run_folders(results)

    jobs = pd.read_parquet(run_dir / "jobs").sort_values("attempt")
    assert list(jobs["attempt"]) == [1, 2] and list(jobs["status"]) == ["failed", "ok"], jobs[["status", "error"]]
    first = jobs.iloc[0]
    assert first["error_class"] == "device" and "Appium session lost" in first["error"], first["error"]
    trials = pd.read_parquet(run_dir / "trials")
    again = trials[trials["attempt"] == 2]
    assert 1 <= (again["phase"] == "search").sum() <= 8 and (again["ok"] & again["check_ok"]).any()
    meas = pd.read_parquet(run_dir / "measurements")
    assert set(meas["attempt"]) == {2} and sorted(meas["impl"].unique()) == ["jit", "tfjs-webgpu"]
    assert (meas["ok"] & meas["check_ok"]).all()

    manifest = json.loads((run_dir / "manifest.json").read_text())
    dev = manifest["devices"][DEVICE]
    assert dev["versions"]["appium"] == "3.8.0" and dev["versions"]["browser"].startswith("chrome ")
    assert manifest["device_configs"][DEVICE]["appium"]["platform"] == "desktop"
    state = pd.read_parquet(run_dir / "device_state").sort_values("attempt")
    assert list(state["attempt"]) == [1, 2]
    assert state["chrome_version"].notna().all() and state["gpu_renderer"].str.contains("SwiftShader").all()
    assert "software-adapter" in list(state["flags"].iloc[0])
