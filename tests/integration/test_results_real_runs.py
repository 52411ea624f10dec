"""The result commands on real runs: two short `jitfarm run`s on lavapipe (real Ray, wgpu-native),
then runs / report / compare / regress / dashboard read what they stored."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from farm.cli import main
from farm.store.history import INDEX_NAME
from tests.dashboard_browser import CHROMIUM, render_offline
from tests.projects import make_project, run_folders

pytestmark = [pytest.mark.native, pytest.mark.ray, pytest.mark.slow]

# The native driver has no TF.js: the baseline is recorded as failed, which the tables must carry.
EXPERIMENT = """\
name: results-e2e
devices: [native-lavapipe]
seed: 5
ops:
  - {kind: matmul, M: 32, N: 32, K: 32, label: tiny}
tuner: {budget_s: 10, max_evals: 6, batch_size: 3}
measure: {warmup: 1, samples: 3, min_sample_ms: 1, max_reps: 8}
compare: {rounds: 2, samples: 3}
baselines: [tfjs-webgpu]
"""


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("real")
    exp = make_project(tmp, "results-e2e", EXPERIMENT)
    results = tmp / "results"
    index_lines = []
    for _ in range(2):
        assert main(["run", str(exp), "--results-dir", str(results)]) == 0
        index_lines.append(len((results / INDEX_NAME).read_text().splitlines()))
    runs = [p.name for p in run_folders(results)]
    assert len(runs) == 2
    return results, runs, index_lines


def test_each_finished_run_is_appended_to_the_index_and_listed(two_runs, capsys):
    results, runs, index_lines = two_runs
    assert index_lines == [1, 2]  # the run itself appended its entry when it ended
    assert main(["runs", "--results-dir", str(results), "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert [e["run_id"] for e in entries] == runs
    for e in entries:
        assert e["status"] == "finished" and e["experiment"] == "results-e2e" and e["commit"]
        (dev,) = e["devices"]
        assert dev["id"] == "native-lavapipe" and "llvmpipe" in dev["adapter"]
        assert dev["browser"].startswith("wgpu-native") and dev["fingerprint"]


def test_report_of_a_real_run_has_cis_tuning_and_a_failed_baseline(two_runs, tmp_path, capsys):
    results, runs, _ = two_runs
    assert main(["report", runs[0], "--results-dir", str(results), "--csv", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Latency per device" in out and "Tuning" in out
    lat = pd.read_csv(tmp_path / "latency.csv").set_index("impl")
    jit = lat.loc["jit"]
    assert jit["n"] == 6 and jit["ci_low_ms"] <= jit["median_ms"] <= jit["ci_high_ms"]
    assert "failed" in lat.loc["tfjs-webgpu", "flags"]
    tuning = pd.read_csv(tmp_path / "tuning.csv").iloc[0]
    assert 1 <= tuning["trials"] <= 6 and tuning["best_ms"] > 0
    curves = pd.read_csv(tmp_path / "curves.csv")
    # the curve falls through the search; its last point is the tuner's answer (after the
    # confirmation rounds: the winner's median over all its samples), the job's best
    assert not curves.empty and (curves["best_so_far_ms"].iloc[:-1].diff().dropna() <= 0).all()
    jobs = pd.read_parquet(results / runs[0] / "jobs")
    assert curves["best_so_far_ms"].iloc[-1] == pytest.approx(jobs["best_tune_ms"].iloc[0])
    assert tuning["best_ms"] == pytest.approx(jobs["best_tune_ms"].iloc[0])


def test_compare_and_regress_read_the_real_history(two_runs, tmp_path, capsys):
    results, runs, _ = two_runs
    assert main(["compare", runs[0], runs[1], "--results-dir", str(results), "--json", str(tmp_path / "c.json")]) == 0
    rows = {r["impl"]: r for r in json.loads((tmp_path / "c.json").read_text())["compare"]}
    assert rows["jit"]["verdict"] in ("faster", "slower", "same") and rows["jit"]["n_a"] == 6
    assert rows["jit"]["ci_low"] <= rows["jit"]["change"] <= rows["jit"]["ci_high"]
    assert rows["tfjs-webgpu"]["verdict"] == "not enough data"
    code = main(["regress", "--results-dir", str(results), "--json", str(tmp_path / "r.json")])
    out = capsys.readouterr().out
    assert "2 runs, 2 series" in out
    found = json.loads((tmp_path / "r.json").read_text())
    # Two real runs may or may not differ: what is certain is that the JSON is the list of findings,
    # that any finding names the second run, and that the exit code follows the 5% rule. Detection
    # itself is proven on a planted step (tests/unit/test_regress.py).
    assert isinstance(found, list) and code in (0, 1)
    assert all(f["run_id"] == runs[1] for f in found)
    assert code == (1 if any(f["direction"] == "slower" and f["worst"] >= 0.05 for f in found) else 0)


@pytest.mark.browser
@pytest.mark.skipif(not (CHROMIUM and Path(CHROMIUM).is_file()), reason=f"no Chromium at {CHROMIUM}")
def test_dashboard_of_real_runs_renders_offline(two_runs, tmp_path):
    results, runs, _ = two_runs
    out = tmp_path / "real.html"
    assert main(["dashboard", *runs, "--results-dir", str(results), "-o", str(out)]) == 0
    r = render_offline(out, tmp_path / "real.png")
    marks = {}
    for kind, n, _ in r.charts:
        marks.setdefault(kind, []).append(n)
    # The tuning curve and the tuned kernel's timeline carry data; the failed baseline's timeline
    # says so, and the only speedup cell is grey.
    assert all(n > 3 for n in marks["lines"]) and sorted(marks["timeline"])[-1] > 3 and marks["heatmap"] == [1]
    assert r.outside_requests == [] and "failed" in r.text and r.screenshot.stat().st_size > 10_000
