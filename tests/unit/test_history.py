"""The history index lists every run, is appended when a run ends, and rebuilds from manifests."""

from __future__ import annotations

import datetime as dt
import json

from farm.cli import main
from farm.store.history import INDEX_NAME, load_index, rebuild_index, record_run
from farm.store.parquet import ParquetStore
from farm.store.synthetic import SyntheticDevice, write_history

DEVICES = (SyntheticDevice("laptop", adapter="intel gen12", vendor="intel"),)
OPS = ("matmul_f32_16x16x16",)


def test_runs_are_rebuilt_from_manifests_when_the_index_is_missing(tmp_path, capsys):
    ids = write_history(tmp_path, runs=3, devices=DEVICES, ops=OPS, trials=0)
    assert not (tmp_path / INDEX_NAME).exists()
    entries = load_index(tmp_path)
    assert [e.run_id for e in entries] == ids
    assert (tmp_path / INDEX_NAME).exists()
    e = entries[0]
    assert e.commit == "commit000" and e.experiment == "synthetic" and e.status == "finished"
    assert e.devices[0]["id"] == "laptop" and e.devices[0]["browser"] == "chromium 156.0.0.0"
    assert main(["runs", "--results-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert all(i in out for i in ids) and "intel gen12" in out


def test_record_run_appends_and_latest_line_wins(tmp_path):
    store = ParquetStore(tmp_path / "r1")
    store.write_manifest({"run_id": "r1", "created": dt.datetime(2026, 1, 1).isoformat(), "status": "running",
                          "experiment": {"name": "x", "devices": ["d"]}, "git": {"commit": "abc", "dirty": True}})
    record_run(tmp_path, store.run_dir)
    store.update_manifest(status="finished", wall_s=3.5,
                          devices={"d": {"adapter": "a", "fingerprint": "f", "versions": {"wgpu_native": "1.0"}}})
    record_run(tmp_path, store.run_dir)
    lines = (tmp_path / INDEX_NAME).read_text().splitlines()
    assert len(lines) == 2
    (entry,) = load_index(tmp_path)
    assert entry.status == "finished" and entry.wall_s == 3.5 and entry.dirty is True
    assert entry.devices[0]["browser"] == "wgpu-native 1.0"


def test_runs_missing_from_the_index_are_added_and_deleted_runs_dropped(tmp_path, capsys):
    ids = write_history(tmp_path, runs=2, devices=DEVICES, ops=OPS, trials=0)
    record_run(tmp_path, tmp_path / ids[0])  # only the first one made it into the index
    with open(tmp_path / INDEX_NAME, "a") as fh:
        fh.write('{"torn line\n')
    assert [e.run_id for e in load_index(tmp_path)] == ids
    import shutil
    shutil.rmtree(tmp_path / ids[0])
    assert [e.run_id for e in load_index(tmp_path)] == ids[1:]
    assert [e.run_id for e in rebuild_index(tmp_path)] == ids[1:]
    assert main(["runs", "--results-dir", str(tmp_path), "--json"]) == 0
    assert [r["run_id"] for r in json.loads(capsys.readouterr().out)] == ids[1:]
