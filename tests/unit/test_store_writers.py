"""ParquetStore under crashes and concurrent writers: whole parts only, none replaced."""

from __future__ import annotations

from farm.store.parquet import ParquetStore


def _row(i: int) -> dict:
    return {"run_id": "r", "job_id": f"j{i}", "attempt": 1, "status": "ok", "ts": float(i)}


def test_two_writers_of_one_run_never_replace_each_others_parts(tmp_path):
    a, b = ParquetStore(tmp_path), ParquetStore(tmp_path)
    for i in range(10):
        (a if i % 2 else b).append("jobs", [_row(i)])
    assert sorted(ParquetStore(tmp_path).read("jobs")["job_id"]) == sorted(f"j{i}" for i in range(10))


def test_a_part_cut_off_mid_write_is_never_read(tmp_path):
    store = ParquetStore(tmp_path)
    store.append("jobs", [_row(0)])
    # What a writer killed before its rename leaves: a hidden, truncated temporary file.
    (tmp_path / "jobs" / ".part-123-456.parquet.tmp").write_bytes(b"PAR1\x00\x01")
    assert list(ParquetStore(tmp_path).read("jobs")["job_id"]) == ["j0"]
    store.append("jobs", [_row(1)])
    assert sorted(p.name for p in (tmp_path / "jobs").glob("part-*")) == ["part-000000.parquet", "part-000001.parquet"]
