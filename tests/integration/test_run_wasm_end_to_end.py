"""`jitfarm run` end to end with the WASM template: real Ray, real headless Chromium, records on disk."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.projects import make_project, run_cli

pytestmark = [pytest.mark.browser, pytest.mark.ray, pytest.mark.slow]

EXPERIMENT = """\
name: e2e-wasm
devices: [local-chromium-swiftshader]
seed: 4
ops:
  - {kind: matmul, M: 33, N: 40, K: 24, label: ragged}
  - {kind: matmul, M: 16, N: 32, K: 24, batch: 3, label: batched}
tuner: {template: matmul-wasm-simd, budget_s: 20, max_evals: 4, batch_size: 4}
measure: {warmup: 1, samples: 3, min_sample_ms: 2, max_reps: 32}
compare: {rounds: 2, samples: 3}
"""


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e-wasm")
    return run_cli(make_project(tmp, "e2e-wasm", EXPERIMENT), tmp / "results")


def test_wasm_run_finishes_with_cpu_caps_in_the_manifest(finished_run):
    code, run_dir = finished_run
    assert code == 0
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "finished"
    dev = manifest["devices"]["local-chromium-swiftshader"]
    assert dev["probe"]["wasm"]["simd"] is True and dev["caps"]["wasm_simd"] is True


def test_wasm_trials_and_winner_are_checked_records(finished_run):
    _, run_dir = finished_run
    trials = pd.read_parquet(run_dir / "trials")
    assert set(trials["template"]) == {"matmul-wasm-simd"}
    assert set(trials["op_key"]) == {"matmul_f32_33x40x24", "matmul_f32_b3_16x32x24"}
    assert (trials["ok"] & trials["check_ok"]).all(), trials[["config", "error"]]
    jobs = pd.read_parquet(run_dir / "jobs")
    assert set(jobs["status"]) == {"ok"}
    meas = pd.read_parquet(run_dir / "measurements")
    assert set(meas["impl"]) == {"jit"} and set(meas["backend_used"]) == {"wasm"}
    assert (meas["ok"] & meas["check_ok"]).all() and len(meas) == 2 * 2
    assert all(a.startswith("wasm ") for a in meas["impl_adapter"]) and all(a.startswith("wasm ") for a in trials["adapter"])
