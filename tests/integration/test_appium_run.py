"""`jitfarm run` on experiments naming the Appium device: real Ray, a real Appium server, real
headless Chromium; results and device covariates in the store; the session's chromedriver killed
mid-job. Each run is a `jitfarm` process of its own (its own Ray instance with the device's
resource), as a user starts it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.appium_support import (alive, appium_server, child_pids, require_appium,  # noqa: F401 (fixture)
                                  session_chromedriver)

ROOT = Path(__file__).resolve().parents[2]
JITFARM = [sys.executable, "-m", "farm.cli"]

pytestmark = [pytest.mark.appium, pytest.mark.browser, pytest.mark.ray]

EXPERIMENT = """\
name: appium-e2e
devices: [local-appium-chromium]
seed: 4
ops:
  - {kind: matmul, M: 40, N: 24, K: 32, label: small}
tuner: {budget_s: 120, max_evals: 6, batch_size: 3}
measure: {warmup: 1, samples: 3, min_sample_ms: 2, max_reps: 16}
compare: {rounds: 2, samples: 3}
baselines: [tfjs-webgpu]
"""


def workspace(tmp_path: Path, experiment: str, server_url: str | None = None) -> Path:
    shutil.copytree(ROOT / "device_configs", tmp_path / "device_configs")
    if server_url:
        yaml = tmp_path / "device_configs" / "local-appium-chromium.yaml"
        yaml.write_text(yaml.read_text().replace("  # server_url: http://127.0.0.1:4723", f"  server_url: {server_url}"))
    (tmp_path / "experiments").mkdir()
    path = tmp_path / "experiments" / "e2e.yaml"
    path.write_text(experiment)
    return path


def start_run(path: Path, results: Path) -> subprocess.Popen:
    return subprocess.Popen([*JITFARM, "run", str(path), "--results-dir", str(results)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen, timeout_s: float = 240) -> tuple[int, str]:
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        raise AssertionError(f"jitfarm run did not finish in {timeout_s} s:\n{out[-3000:]}")
    return proc.returncode, out


def test_jitfarm_run_through_appium_stores_results_and_device_state(tmp_path):
    require_appium()
    path = workspace(tmp_path, EXPERIMENT)  # no server_url: the driver starts and stops its own Appium
    code, out = finish(start_run(path, tmp_path / "results"))
    assert code == 0, out[-3000:]
    (run_dir,) = [p for p in (tmp_path / "results").iterdir() if p.is_dir()]  # beside index.jsonl

    manifest = json.loads((run_dir / "manifest.json").read_text())
    dev = manifest["devices"]["local-appium-chromium"]
    assert dev["versions"]["appium"] == "3.8.0" and dev["versions"]["browser"].startswith("chrome ")
    assert manifest["device_configs"]["local-appium-chromium"]["appium"]["platform"] == "desktop"
    assert dev["covariates"]["chrome_version"]

    jobs = pd.read_parquet(run_dir / "jobs")
    assert list(jobs["status"]) == ["ok"]
    trials = pd.read_parquet(run_dir / "trials")
    assert 1 <= len(trials) <= 6 and (trials["ok"] & trials["check_ok"]).any()
    meas = pd.read_parquet(run_dir / "measurements")
    assert sorted(meas["impl"].unique()) == ["jit", "tfjs-webgpu"] and (meas["ok"] & meas["check_ok"]).all()
    state = pd.read_parquet(run_dir / "device_state")
    assert list(state["job_id"]) == list(jobs["job_id"])
    assert state["chrome_version"].iloc[0] == dev["covariates"]["chrome_version"]
    assert "SwiftShader" in state["gpu_renderer"].iloc[0]


KILL_EXPERIMENT = """\
name: kill-chromedriver
devices: [local-appium-chromium]
seed: 6
ops:
  - {kind: matmul, M: 32, N: 32, K: 32, label: square}
tuner: {budget_s: 60, max_evals: 8, batch_size: 2}
measure: {warmup: 1, samples: 3, min_sample_ms: 10, max_reps: 64}
compare: {rounds: 1, samples: 2}
baselines: [tfjs-webgpu]
"""


def test_chromedriver_killed_mid_job_is_a_classified_device_failure(tmp_path, appium_server):
    path = workspace(tmp_path, KILL_EXPERIMENT, server_url=appium_server.url)
    results = tmp_path / "results"
    proc = start_run(path, results)
    orphans: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while not list(results.glob("*/trials/part-*.parquet")):
            assert proc.poll() is None and time.monotonic() < deadline, "the job's first trials never landed"
            time.sleep(0.1)
        chromedriver = session_chromedriver(appium_server.pid)  # the run's session is the only one
        orphans = child_pids(chromedriver)  # its browser outlives it: ended below, by PID
        os.kill(chromedriver, signal.SIGKILL)
        code, out = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in orphans:
            if alive(pid):
                os.kill(pid, signal.SIGTERM)
    (run_dir,) = [p for p in results.iterdir() if p.is_dir()]  # beside index.jsonl
    jobs = pd.read_parquet(run_dir / "jobs")
    first = jobs.sort_values("attempt").iloc[0]
    assert first["status"] == "failed" and first["error_class"] == "device", jobs[["status", "error"]]
    assert "Appium session lost" in first["error"]
    assert code == 1, out[-3000:]
