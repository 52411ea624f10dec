"""`jitfarm run` end to end: real Ray, real headless Chromium, real TF.js, results on disk."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from farm.cli import main
from tests.projects import make_project, run_cli

pytestmark = [pytest.mark.browser, pytest.mark.ray, pytest.mark.slow]

EXPERIMENT = """\
name: e2e
devices: [local-chromium-swiftshader]
seed: 3
ops:
  - {kind: matmul, M: 33, N: 40, K: 24, label: ragged}
  - {kind: matmul, M: 1, N: 64, K: 64, label: gemv}
tuner: {budget_s: 15, max_evals: 10, batch_size: 5}
measure: {warmup: 1, samples: 3, min_sample_ms: 2, max_reps: 16}
compare: {rounds: 2, samples: 3}
baselines: [tfjs-webgpu]
"""


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    return run_cli(make_project(tmp, "e2e", EXPERIMENT), tmp / "results")


def test_run_succeeds_and_writes_manifest(finished_run):
    code, run_dir = finished_run
    assert code == 0
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "finished"
    assert manifest["experiment"]["name"] == "e2e"
    assert "ray" in manifest["versions"] and "npm:@tensorflow/tfjs" in manifest["versions"]
    dev = manifest["devices"]["local-chromium-swiftshader"]
    assert dev["probe"]["adapter"]["architecture"] == "swiftshader"
    assert dev["versions"].get("browser")


def test_every_trial_is_recorded_and_parquet_opens(finished_run):
    _, run_dir = finished_run
    trials = pd.read_parquet(run_dir / "trials")
    assert set(trials["op_key"]) == {"matmul_f32_33x40x24", "matmul_f32_1x64x64"}
    per_op = trials[trials["phase"] == "search"].groupby("op_key").size()
    assert (per_op <= 10).all() and (per_op >= 1).all()
    # the confirmation rounds re-time at most 4 of each op's configs, twice
    assert (trials[trials["phase"] == "confirm"].groupby("op_key").size() <= 8).all()
    good = trials[trials["ok"] & trials["check_ok"]]
    assert not good.empty and (good["median_ms"] > 0).all()


def test_winner_and_tfjs_are_compared_interleaved_on_webgpu(finished_run):
    _, run_dir = finished_run
    jobs = pd.read_parquet(run_dir / "jobs")
    assert set(jobs["status"]) == {"ok"}
    meas = pd.read_parquet(run_dir / "measurements")
    for op_key, rows in meas.groupby("op_key"):
        assert sorted(rows["impl"].unique()) == ["jit", "tfjs-webgpu"]
        assert (rows["ok"] & rows["check_ok"]).all(), rows[["impl", "error"]]
        assert list(rows.sort_values("ts")["round"]) == [0, 0, 1, 1]
        tf = rows[rows["impl"] == "tfjs-webgpu"]
        assert set(tf["backend_used"]) == {"webgpu"} and set(tf["timer_kind"]) == {"wall"}
        jit = rows[rows["impl"] == "jit"]
        assert set(jit["timer_kind"]) == {"wall"}
        best = jobs.loc[jobs["op_key"] == op_key, "best_config"].iloc[0]
        assert set(jit["config"]) == {best}


def test_report_reprints_the_table(finished_run, capsys):
    _, run_dir = finished_run
    assert main(["report", run_dir.name, "--results-dir", str(run_dir.parent)]) == 0
    out = capsys.readouterr().out
    assert "speedup vs tfjs-webgpu" in out and "ragged" in out


def test_report_says_how_much_of_the_run_was_orchestration(finished_run, capsys):
    """The figures `jitfarm run` prints at its end, from the run's manifest and jobs table: the
    device's busy time inside the run's wall time, Ray's start and the device's open."""
    _, run_dir = finished_run
    manifest = json.loads((run_dir / "manifest.json").read_text())
    busy = pd.read_parquet(run_dir / "jobs")["device_busy_s"].sum()
    assert 0 < busy < manifest["wall_s"]
    assert main(["report", run_dir.name, "--results-dir", str(run_dir.parent)]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if "orchestration overhead" in ln)
    assert line.startswith("local-chromium-swiftshader: ")
    assert f"{busy:.1f} s of device work in a {manifest['wall_s']:.1f} s run" in line
    assert f"Ray start {manifest['timing']['ray_init_s']:.1f} s" in line and "device open" in line
    assert f"overhead {100 * (manifest['wall_s'] - busy) / manifest['wall_s']:.1f}%" in line
