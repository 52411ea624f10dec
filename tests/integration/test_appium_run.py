"""`jitfarm run` on an experiment naming the Appium device: real Ray, real Appium server (started
and stopped by the device's driver), real headless Chromium, results and covariates in the store."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from farm.cli import main
from tests.appium_support import CHROMEDRIVER

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.appium, pytest.mark.browser, pytest.mark.ray]

EXPERIMENT = """\
name: appium-e2e
devices: [local-appium-chromium]
seed: 4
ops:
  - {kind: matmul, M: 40, N: 24, K: 32, label: small}
tuner: {budget_s: 20, max_evals: 6, batch_size: 3}
measure: {warmup: 1, samples: 3, min_sample_ms: 2, max_reps: 16}
compare: {rounds: 2, samples: 3}
baselines: [tfjs-webgpu]
"""


def test_jitfarm_run_through_appium_stores_results_and_device_state(tmp_path):
    from farm.drivers.appium_server import APPIUM_MAIN, installed_drivers

    if not APPIUM_MAIN.is_file() or "chromium" not in installed_drivers() or not Path(CHROMEDRIVER).is_file():
        pytest.skip("Appium, its Chromium driver or chromedriver is not installed: run `bash scripts/setup.sh`")
    (tmp_path / "experiments").mkdir()
    shutil.copytree(ROOT / "device_configs", tmp_path / "device_configs")
    exp = tmp_path / "experiments" / "e2e.yaml"
    exp.write_text(EXPERIMENT)
    assert main(["run", str(exp), "--results-dir", str(tmp_path / "results")]) == 0
    (run_dir,) = list((tmp_path / "results").iterdir())

    manifest = json.loads((run_dir / "manifest.json").read_text())
    dev = manifest["devices"]["local-appium-chromium"]
    assert dev["versions"]["appium"] == "3.8.0" and dev["versions"]["browser"].startswith("chrome ")
    assert manifest["device_configs"]["local-appium-chromium"]["appium"]["platform"] == "desktop"
    assert dev["covariates"]["chrome_version"]

    jobs = pd.read_parquet(run_dir / "jobs")
    assert list(jobs["status"]) == ["ok"]
    trials = pd.read_parquet(run_dir / "trials")
    assert len(trials) == 6 and (trials["ok"] & trials["check_ok"]).any()
    meas = pd.read_parquet(run_dir / "measurements")
    assert sorted(meas["impl"].unique()) == ["jit", "tfjs-webgpu"] and (meas["ok"] & meas["check_ok"]).all()
    state = pd.read_parquet(run_dir / "device_state")
    assert list(state["job_id"]) == list(jobs["job_id"])
    assert state["chrome_version"].iloc[0] == dev["covariates"]["chrome_version"]
    assert "SwiftShader" in state["gpu_renderer"].iloc[0]
