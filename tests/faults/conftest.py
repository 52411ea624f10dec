"""Helpers for the fault tests: a workspace per test, process lookups through /proc, record checks."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Callable

import pandas as pd
import pytest

from farm.config.faults import ERROR_CLASSES
from tests.projects import make_project

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/lib/chromium/chromium"
LAVAPIPE_ICD = "/usr/share/vulkan/icd.d/lvp_icd.x86_64.json"

needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason=f"no Chromium at {CHROMIUM}")
needs_lavapipe = pytest.mark.skipif(not Path(LAVAPIPE_ICD).is_file(), reason="lavapipe is not installed")


@pytest.fixture
def workspace(tmp_path: Path) -> Callable[[str, str], Path]:
    """``make(name, yaml)`` writes ``experiments/<name>.yaml`` beside a copy of device_configs/."""
    return lambda name, text: make_project(tmp_path, name, text)


# ------------------------------------------------------------------------------------ processes
def kill_pids(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def wait_for(predicate: Callable[[], object], timeout_s: float, what: str) -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def in_background(fn: Callable[[], None]) -> threading.Thread:
    """Run ``fn`` in a daemon thread; its exception (if any) is kept on ``thread.error``."""
    def body() -> None:
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            thread.error = exc  # type: ignore[attr-defined]

    thread = threading.Thread(target=body, daemon=True)
    thread.error = None  # type: ignore[attr-defined]
    thread.start()
    return thread


def parts(run_dir: Path, table: str) -> list[Path]:
    return sorted((run_dir / table).glob("part-*.parquet")) if (run_dir / table).is_dir() else []


# -------------------------------------------------------------------------------------- records
def run_dir_of(results: Path, timeout_s: float = 120) -> Path:
    """The folder of the run writing under ``results``, once its manifest exists."""
    return wait_for(lambda: next(iter(results.glob("*/manifest.json")), None), timeout_s, "the run's manifest").parent


def run_while(exp, results: Path, fault: Callable[[], None]):
    """Run ``exp`` with ``fault`` in a background thread (it waits for its moment, then breaks
    something); the fault must have run without error. Returns the outcome and the checked jobs."""
    from farm.scheduler.run import RunOptions, run_experiment

    thread = in_background(fault)
    outcome = run_experiment(exp, RunOptions(results_dir=results, poll_s=0.2))
    thread.join(5)
    assert thread.error is None, thread.error
    return outcome, check_records(outcome.run_dir, {j.job_id for j in exp.jobs()})


def check_records(run_dir: Path, job_ids: set[str]) -> pd.DataFrame:
    """Records are complete (every job has a final record), unique (one row per attempt, per
    trial, per measurement) and classified (every failure names one of the four classes); no
    stray temporary file is left. Returns the jobs table."""
    jobs = pd.read_parquet(run_dir / "jobs")
    assert set(jobs["job_id"]) == job_ids, (set(jobs["job_id"]), job_ids)
    assert not jobs.duplicated(["job_id", "attempt"]).any(), jobs[["job_id", "attempt", "status"]]
    for job_id, rows in jobs.groupby("job_id"):
        attempts = sorted(rows["attempt"])
        assert attempts == list(range(1, len(attempts) + 1)), (job_id, attempts)
        assert (rows["status"] == "ok").sum() <= 1, rows
    failed = jobs[jobs["status"] != "ok"]
    assert failed["error_class"].isin(ERROR_CLASSES).all(), failed[["job_id", "error_class", "error"]]
    assert failed["error"].notna().all()
    keys = {"trials": ["job_id", "attempt", "trial_index"], "measurements": ["job_id", "attempt", "impl", "round"]}
    for table, key in keys.items():
        if parts(run_dir, table):
            df = pd.read_parquet(run_dir / table)
            assert df["attempt"].notna().all()
            assert not df.duplicated(key).any(), df[df.duplicated(key, keep=False)][key]
            # Every attempt that left rows has its jobs record.
            made = set(zip(df["job_id"], df["attempt"]))
            assert made <= set(zip(jobs["job_id"], jobs["attempt"])), made - set(zip(jobs["job_id"], jobs["attempt"]))
    assert not list(run_dir.glob("*/.part-*")), "a temporary part file was left behind"
    return jobs


# Device ids the fault tests use, each a custom resource of the session's Ray instance.
DEVICE_IDS = ("local-chromium-swiftshader", "native-lavapipe", "broken-chromium")


@pytest.fixture(scope="package")
def ray_session():
    """One local Ray instance for the in-process fault tests of this package (starting Ray costs seconds to tens of
    seconds on a busy 2-core machine); run_experiment uses it and leaves it running. Workers
    register the test-only template (spin_template.register) when they start."""
    import logging

    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING,
             resources={f"device:{d}": 1 for d in DEVICE_IDS},
             runtime_env={"worker_process_setup_hook": "tests.faults.spin_template.register",
                          "env_vars": {"PYTHONPATH": str(ROOT)}})
    try:
        yield ray
    finally:
        ray.shutdown()
