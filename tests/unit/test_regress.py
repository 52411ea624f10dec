"""`jitfarm compare` and `jitfarm regress` over synthetic histories written in the real store format."""

from __future__ import annotations

import datetime
import json

import pytest

from farm.analysis.regress import compare_runs, findings, timeline
from farm.cli import main
from farm.store.synthetic import PlantedStep, SyntheticDevice, write_history

OPS = ("matmul_f32_64x64x64", "matmul_f32_1x128x128", "matmul_f32_64x128x128")
DEVICES = (SyntheticDevice("laptop", adapter="intel gen12", fingerprint="fp-l", vendor="intel"),
           SyntheticDevice("phone", adapter="adreno 740", fingerprint="fp-p", vendor="qualcomm"))


@pytest.fixture(scope="module")
def stepped(tmp_path_factory):
    root = tmp_path_factory.mktemp("stepped")
    ids = write_history(root, runs=10, devices=DEVICES, ops=OPS, step=PlantedStep(at=6, device_id="laptop"),
                        run_jitter=0.01, trials=0, seed=1)
    return root, ids


def test_planted_step_is_one_finding_at_the_right_run_naming_what_changed(stepped):
    root, ids = stepped
    tl, _ = timeline(root, [(r, f"2026-01-{i + 1:02d}") for i, r in enumerate(ids)])
    found = findings(tl)
    assert len(found) == 1
    f = found[0]
    assert f.run_id == ids[6] and f.direction == "slower" and f.vendor == "intel"
    assert f.browser == "chromium 157.0.0.0"
    assert {(s["device_id"], s["impl"]) for s in f.series} == {("laptop", "jit")} and len(f.series) == 3
    assert 0.06 < f.worst < 0.14
    assert f.changed["browser"] == ("chromium 156.0.0.0", "chromium 157.0.0.0")
    assert f.changed["jitfarm commit"] == ("commit005", "commit006")


def test_regress_exits_1_over_the_threshold_and_0_otherwise(stepped, tmp_path, capsys):
    root, ids = stepped
    assert main(["regress", "--results-dir", str(root), "--json", str(tmp_path / "f.json")]) == 1
    out = capsys.readouterr().out
    assert ids[6] in out and "1 regression(s) of 5% or more" in out
    assert json.loads((tmp_path / "f.json").read_text())[0]["run_id"] == ids[6]
    assert main(["regress", "--results-dir", str(root), "--fail-on", "20%"]) == 0
    assert main(["regress", "--results-dir", str(root), "--since", ids[7]]) == 0
    assert main(["regress", "--results-dir", str(root), "--since", "2026-01-07"]) == 1
    assert main(["regress", "--results-dir", str(root), "--last", "5"]) == 1  # runs 5..9 still span the step


def test_noise_alone_is_not_a_regression(tmp_path, capsys):
    write_history(tmp_path, runs=10, devices=DEVICES, ops=OPS, run_jitter=0.01, trials=0, seed=2)
    assert main(["regress", "--results-dir", str(tmp_path)]) == 0
    assert "0 change(s) found" in capsys.readouterr().out


def test_compare_gives_verdicts_with_cis(stepped, tmp_path):
    root, ids = stepped
    df = compare_runs(root, ids[5], ids[6])
    assert len(df) == 12
    hit = df[(df["device_id"] == "laptop") & (df["impl"] == "jit")]
    assert set(hit["verdict"]) == {"slower"}
    assert ((hit["ci_low"] > 0) & (hit["change"] > 0.05)).all()
    assert hit["changed"].str.contains("browser: chromium 156.0.0.0 -> chromium 157.0.0.0").all()
    others = df.drop(hit.index)
    assert (others["verdict"] != "same").sum() <= 2  # 9 unchanged series, each tested at alpha 0.05
    assert main(["compare", ids[5], ids[6], "--results-dir", str(root), "--csv", str(tmp_path)]) == 0
    assert (tmp_path / "compare.csv").exists()


def test_compare_says_not_enough_data_for_missing_or_thin_series(tmp_path):
    (a,) = write_history(tmp_path, runs=1, devices=DEVICES[:1], ops=OPS[:2], trials=0, prefix="synthetic-a")
    (b,) = write_history(tmp_path, runs=1, devices=DEVICES[:1], ops=OPS[1:3], trials=0, rounds=1, samples=3,
                         start=datetime.datetime(2026, 2, 1, tzinfo=datetime.timezone.utc), prefix="synthetic-b")
    df = compare_runs(tmp_path, a, b).set_index(["impl", "op_key"])
    assert set(df["verdict"]) == {"not enough data"}  # each op is in one run only, or has 3 samples in b
    assert df.loc[("jit", OPS[0]), "n_b"] == 0 and df.loc[("jit", OPS[1]), "n_b"] == 3
