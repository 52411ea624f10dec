"""The Parquet store appends whole part files that pandas opens, and keeps the manifest."""

from __future__ import annotations

import pandas as pd
import pytest

from farm.store.parquet import ParquetStore
from farm.store.schema import FORMAT_VERSION


def _row(i: int, **kw):
    return {"run_id": "r", "job_id": f"d/op{i}", "device_id": "d", "op_key": f"op{i}", "ts": float(i),
            "trial_index": i, "config": f"BM={i}", "ok": True, "check_ok": i % 2 == 0,
            "samples_ms": [1.0, 2.0 + i], "median_ms": 1.5, **kw}


def test_parts_append_and_read_back_with_pandas(tmp_path):
    store = ParquetStore(tmp_path / "run")
    store.append("trials", [_row(0), _row(1)])
    store.append("trials", [_row(2, error_class="compile", error="boom", ok=False)])
    parts = sorted((tmp_path / "run" / "trials").glob("part-*.parquet"))
    assert [p.name for p in parts] == ["part-000000.parquet", "part-000001.parquet"]
    df = pd.read_parquet(tmp_path / "run" / "trials")
    assert len(df) == 3 and sorted(df["trial_index"]) == [0, 1, 2]
    assert list(store.read("trials")["samples_ms"].iloc[2]) == [1.0, 4.0]
    assert not list((tmp_path / "run" / "trials").glob(".*tmp"))


def test_new_store_on_same_folder_continues_numbering(tmp_path):
    ParquetStore(tmp_path / "run").append("jobs", [{"job_id": "a", "status": "ok"}])
    ParquetStore(tmp_path / "run").append("jobs", [{"job_id": "b", "status": "failed"}])
    assert list(ParquetStore(tmp_path / "run").read("jobs")["job_id"]) == ["a", "b"]


def test_unknown_column_or_table_is_rejected(tmp_path):
    store = ParquetStore(tmp_path / "run")
    with pytest.raises(KeyError):
        store.append("trials", [{"nonsense": 1}])
    with pytest.raises(KeyError):
        store.append("nope", [{}])


def test_empty_table_reads_as_empty_frame_with_columns(tmp_path):
    df = ParquetStore(tmp_path / "run").read("measurements")
    assert df.empty and "samples_ms" in df.columns


def test_manifest_round_trip_and_update(tmp_path):
    store = ParquetStore(tmp_path / "run")
    store.write_manifest({"run_id": "run", "status": "running"})
    store.update_manifest(status="finished")
    m = store.read_manifest()
    assert m["status"] == "finished" and m["format_version"] == FORMAT_VERSION
