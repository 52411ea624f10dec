"""Orchestration overhead of a run, per device, from its manifest and jobs table."""

from __future__ import annotations

import pytest

from farm.analysis.overhead import run_overhead
from farm.store.parquet import ParquetStore


def _store(tmp_path, **manifest) -> ParquetStore:
    store = ParquetStore(tmp_path / "run")
    store.write_manifest({"run_id": "run", **manifest})
    rows = [("a", "ok", 30.0), ("a", "ok", 40.0), ("a", "failed", None), ("b", "ok", 10.0)]
    store.append("jobs", [{"run_id": "run", "job_id": f"{dev}/{i}", "device_id": dev, "attempt": 1,
                           "status": status, "device_busy_s": busy} for i, (dev, status, busy) in enumerate(rows)])
    return store


TIMING = {"ray_init_s": 4.0, "devices": {
    "a": {"open_s": 2.0, "open_phases": {"driver_s": 1.5, "probe_s": 0.1}, "jobs_wall_s": 73.5},
    "b": {"open_s": None, "open_phases": None, "jobs_wall_s": 12.0}}}


def test_overhead_is_the_runs_wall_time_outside_each_devices_work(tmp_path):
    a, b = run_overhead(_store(tmp_path, wall_s=80.0, timing=TIMING))
    assert (a.device, a.jobs_ok, a.attempts, a.busy_s) == ("a", 2, 3, 70.0)
    assert a.overhead_run == pytest.approx(10.0 / 80.0)
    assert a.overhead_jobs == pytest.approx(3.5 / 73.5)
    assert a.outside_ms_per_job == pytest.approx(3.5 / 3 * 1000)
    assert a.describe() == ("a: 70.0 s of device work in a 80.0 s run (Ray start 4.0 s, device open 2.0 s): "
                            "orchestration overhead 12.5%")
    assert b.busy_s == 10.0 and b.open_s is None
    assert b.describe() == "b: 10.0 s of device work in a 80.0 s run (Ray start 4.0 s): orchestration overhead 87.5%"


def test_a_resumed_run_counts_all_its_work_but_names_no_start_up_figures(tmp_path):
    """The manifest keeps the last invocation's start-up timing, while wall_s and the jobs span
    every invocation: only the totals are comparable."""
    (a, _) = run_overhead(_store(tmp_path, wall_s=100.0, timing=TIMING, resumed=[1.0]))
    assert a.overhead_run == pytest.approx(0.3)
    assert a.ray_init_s is None and a.open_s is None and a.jobs_wall_s is None and a.overhead_jobs is None
    assert a.describe() == "a: 70.0 s of device work in a 100.0 s run: orchestration overhead 30.0%"


def test_a_run_without_timing_has_no_overhead_to_report(tmp_path):
    assert run_overhead(_store(tmp_path, status="failed")) == []
    assert run_overhead(_store(tmp_path / "x", wall_s=5.0, timing={"ray_init_s": 3.0, "devices": {}})) == []
