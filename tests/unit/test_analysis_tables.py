"""Per-run tables from the store: latency and speedup CIs, significance, geomeans, models, tuning, export."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from farm.analysis.analyze import analyze_runs
from farm.analysis.model_latency import ModelOps
from farm.cli import main
from farm.config.errors import UserError
from farm.store.synthetic import SyntheticDevice, SyntheticRun, write_history, write_run

A, B = "matmul_f32_64x64x64", "matmul_f32_1x128x128"
DEVICES = (SyntheticDevice("laptop", vendor="intel"), SyntheticDevice("phone", fingerprint="fp-phone", vendor="arm"))


@pytest.fixture(scope="module")
def one_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    (run_id,) = write_history(root, runs=1, devices=DEVICES, ops=(A, B), trials=20, rounds=4, samples=10)
    return root, run_id


def test_latency_and_speedup_have_cis_that_cover_the_planted_values(one_run):
    root, run_id = one_run
    a = analyze_runs(root, [run_id])
    assert len(a.latency) == 2 * 2 * 2 and set(a.latency["n"]) == {40}
    lat = a.latency
    true = np.where(lat["impl"] == "jit", 2.0, 3.0) * np.where(lat["op_key"] == A, 1.0, 1.25)
    covered = (lat["ci_low_ms"] < true) & (true < lat["ci_high_ms"])
    assert covered.sum() >= 6  # 95% intervals: most of the 8 cover their true median
    assert ((lat["median_ms"] / true - 1).abs() < 0.03).all()
    assert len(a.speedups) == 4 and a.speedups["significant"].all()
    assert ((a.speedups["speedup_ci_low"] < 1.5) & (1.5 < a.speedups["speedup_ci_high"])).sum() >= 3
    assert (a.speedups["p_value"] < 1e-6).all()
    g = a.geomeans.set_index(["scope", "device_id"])
    assert g.loc[("all devices", "*"), "n_ops"] == 4
    assert g.loc[("device", "laptop"), "ci_low"] < g.loc[("device", "laptop"), "geomean"] < g.loc[("device", "laptop"), "ci_high"]
    assert abs(g.loc[("all devices", "*"), "geomean"] / 1.5 - 1) < 0.03


def test_model_latency_is_the_count_weighted_sum_with_ci(one_run):
    root, run_id = one_run
    model = ModelOps.parse(f"tiny={A}*3,{B}*2")
    a = analyze_runs(root, [run_id], models=[model, ModelOps.of("partial", [(A, 1), ("matmul_f32_9x9x9", 1)])])
    m = a.models.set_index(["model", "device_id", "impl"])
    lat = a.latency.set_index(["device_id", "impl", "op_key"])["median_ms"]
    expect = 3 * lat[("laptop", "jit", A)] + 2 * lat[("laptop", "jit", B)]
    row = m.loc[("tiny", "laptop", "jit")]
    assert row["latency_ms"] == pytest.approx(expect) and row["ci_low_ms"] < expect < row["ci_high_ms"]
    base = m.loc[("tiny", "laptop", "tfjs-webgpu")]
    assert base["speedup_ci_low"] < base["speedup"] < base["speedup_ci_high"]
    assert base["speedup"] == pytest.approx(base["latency_ms"] / row["latency_ms"])
    assert "model:tiny" in set(a.geomeans["scope"])
    assert np.isnan(m.loc[("partial", "laptop", "jit"), "latency_ms"])
    assert m.loc[("partial", "laptop", "jit"), "missing_ops"] == "matmul_f32_9x9x9"
    with pytest.raises(UserError):
        ModelOps.parse("no-ops-given")


def test_tuning_curves_and_speedup_at_30_seconds(one_run):
    root, run_id = one_run
    a = analyze_runs(root, [run_id])
    c = a.curves[(a.curves["device_id"] == "laptop") & (a.curves["op_key"] == A)]
    assert (np.diff(c["best_so_far_ms"]) <= 0).all() and c["elapsed_s"].is_monotonic_increasing
    t = a.tuning.set_index(["device_id", "op_key"]).loc[("laptop", A)]
    assert t["trials"] == 20 and t["tune_s"] == 40.0  # synthetic trials are 2 s apart
    sp = a.speedups.set_index(["device_id", "op_key"]).loc[("laptop", A), "speedup"]
    assert t["speedup_at_30s_vs_tfjs-webgpu"] == pytest.approx(sp * t["best_ms"] / t["best_at_30s_ms"])


def test_failed_baseline_and_stored_flags_become_validity_flags(tmp_path):
    run = SyntheticRun("synthetic-f", dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc), "c", DEVICES[:1], (A,),
                       lambda d, i, o: 1.0, rounds=1, samples=4)
    run_dir = write_run(tmp_path, run)
    meas = pq.read_table(run_dir / "measurements").to_pandas()
    base = meas[meas["impl"] != "jit"].copy()
    base["ok"], base["samples_ms"], base["error_class"], base["error"] = False, [[]], "harness", "no baselines here"
    base["op_key"] = base["job_id"] = "matmul_f32_8x8x8"
    # A format-2 writer sets flags; the analysis reads them where present.
    flagged = meas[meas["impl"] == "jit"].copy()
    flagged["op_key"] = "matmul_f32_8x8x8"
    flagged["flags"] = [["timer-quantized"]] * len(flagged)
    # A part from a format-1 writer has no `flags` column at all.
    pq.write_table(pa.Table.from_pandas(base.drop(columns=["flags"]), preserve_index=False),
                   run_dir / "measurements" / "part-000001.parquet")
    pq.write_table(pa.Table.from_pandas(flagged, preserve_index=False), run_dir / "measurements" / "part-000002.parquet")
    a = analyze_runs(tmp_path, ["synthetic-f"])
    lat = a.latency.set_index(["impl", "op_key"])
    assert lat.loc[("tfjs-webgpu", "matmul_f32_8x8x8"), "flags"] == ["failed"]
    assert "timer-quantized" in lat.loc[("jit", "matmul_f32_8x8x8"), "flags"]
    assert "few-samples" in lat.loc[("jit", A), "flags"]
    sp = a.speedups.set_index("op_key").loc["matmul_f32_8x8x8"]
    assert np.isnan(sp["speedup"]) and not sp["significant"] and "failed" in sp["flags"]
    g = a.geomeans[a.geomeans["scope"] == "device"].iloc[0]
    assert g["n_ops"] == 1 and g["n_failed"] == 1


def test_report_prints_tables_and_exports_csv_and_json(one_run, tmp_path, capsys):
    root, run_id = one_run
    code = main(["report", run_id, "--results-dir", str(root), "--csv", str(tmp_path / "csv"),
                 "--json", str(tmp_path / "all.json"), "--model", f"tiny={A}*3,{B}"])
    assert code == 0
    out = capsys.readouterr().out
    for title in ("Latency per device", "Speedup of the tuned kernel", "Geomean speedup", "Model latency", "Tuning"):
        assert title in out
    assert {p.name for p in (tmp_path / "csv").iterdir()} == {f"{t}.csv" for t in
                                                            ("latency", "speedups", "geomeans", "models", "tuning", "curves")}
    sp = pd.read_csv(tmp_path / "csv" / "speedups.csv")
    assert len(sp) == 4 and {"speedup", "speedup_ci_low", "speedup_ci_high", "p_value"} <= set(sp.columns)
    data = json.loads((tmp_path / "all.json").read_text())
    assert len(data["latency"]) == 8 and isinstance(data["latency"][0]["flags"], list)
    assert main(["report", "nope", "--results-dir", str(root)]) == 2


def test_only_the_latest_attempt_of_a_retried_job_counts(tmp_path):
    run = SyntheticRun("synthetic-r", dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc), "c", DEVICES[:1], (A,),
                       lambda d, i, o: 1.0, rounds=2, samples=6)
    run_dir = write_run(tmp_path, run)
    meas = pq.read_table(run_dir / "measurements").to_pandas()
    meas["attempt"] = 2
    first = meas.copy()
    first["attempt"] = 1
    first["samples_ms"] = [[50.0] * 6] * len(first)  # the attempt that was retried: must not count
    pq.write_table(pa.Table.from_pandas(first, preserve_index=False), run_dir / "measurements" / "part-000000.parquet")
    pq.write_table(pa.Table.from_pandas(meas, preserve_index=False), run_dir / "measurements" / "part-000001.parquet")
    jobs = pq.read_table(run_dir / "jobs").to_pandas()
    jobs["attempt"] = 2
    pq.write_table(pa.Table.from_pandas(jobs, preserve_index=False), run_dir / "jobs" / "part-000000.parquet")
    lat = analyze_runs(tmp_path, ["synthetic-r"]).latency
    assert set(lat["n"]) == {12} and (lat["median_ms"] < 2.0).all()


def test_op_keys_split_into_op_and_shape_wherever_the_shape_stands():
    from farm.analysis.load import split_op_key
    from jit_core.ops import Eltwise, MatMul, Softmax

    assert split_op_key(MatMul(64, 128, 128).key()) == ("matmul_f32", "64x128x128")
    assert split_op_key(MatMul(64, 64, 64, bias=True, act="gelu").key()) == ("matmul_f32_bias_gelu", "64x64x64")
    assert split_op_key(MatMul(32, 32, 64, batch=12).key()) == ("matmul_f32_b12", "32x32x64")
    assert split_op_key(Softmax(12, 32, causal=True).key()) == ("softmax_causal_f32", "12x32")
    assert split_op_key(Eltwise(4096, "add").key()) == ("eltwise_add_f32", "4096")
