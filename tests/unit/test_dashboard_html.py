"""The dashboard page is written for any store state, with every section, and names failed runs' lack of data."""

from __future__ import annotations

import datetime as dt

from farm.cli import main
from farm.store.parquet import ParquetStore
from farm.store.synthetic import SyntheticDevice, write_history


def test_dashboard_of_a_run_without_measurements_still_writes_a_page(tmp_path):
    store = ParquetStore(tmp_path / "r-empty")
    store.write_manifest({"run_id": "r-empty", "created": dt.datetime(2026, 1, 1).isoformat(), "status": "finished",
                          "experiment": {"name": "x", "devices": ["d"]}, "git": {"commit": "abc"}})
    store.append("jobs", [{"run_id": "r-empty", "job_id": "d/op", "device_id": "d", "op_key": "matmul_f32_8x8x8",
                           "status": "failed", "error_class": "infra", "error": "browser did not start"}])
    out = tmp_path / "d.html"
    assert main(["dashboard", "--results-dir", str(tmp_path), "-o", str(out)]) == 0
    html = out.read_text()
    assert "r-empty" in html and "No comparisons yet." in html and "No tuning trials recorded." in html


def test_dashboard_sections_and_run_selection(tmp_path):
    ids = write_history(tmp_path, runs=3, devices=(SyntheticDevice("laptop"),), ops=("matmul_f32_16x16x16",), trials=4)
    out = tmp_path / "two.html"
    assert main(["dashboard", ids[0], ids[2], "--results-dir", str(tmp_path), "-o", str(out)]) == 0
    html = out.read_text()
    assert ids[0] in html and ids[2] in html and ids[1] not in html
    for kind in ("heatmap", "bars", "lines", "timeline"):
        assert f'data-chart="{kind}"' in html
    assert main(["dashboard", "--results-dir", str(tmp_path), "--last", "1", "-o", str(out)]) == 0
    assert ids[2] in out.read_text() and ids[0] not in out.read_text()
