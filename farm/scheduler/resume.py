"""What is left to do in a run: jobs without a successful record, and the attempt numbers to use.

A run whose driver process died may hold rows of an attempt that never got its ``jobs`` record
(the attempt in flight). Resuming closes such an attempt with a failed record (class infra,
"interrupted") and runs the job again as the next attempt, so (job_id, attempt) stays unique and
no row of the interrupted attempt is lost or mistaken for the new one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from farm.config.experiments import ExperimentSpec, JobSpec
from farm.store.parquet import ParquetStore


@dataclass
class ResumePlan:
    """``todo``: (job, attempt number to use) in plan order; ``done``: job ids with an ok record;
    ``interrupted``: jobs-table rows closing attempts that have rows but no jobs record."""

    todo: list[tuple[JobSpec, int]]
    done: set[str]
    interrupted: list[dict[str, Any]] = field(default_factory=list)


def _attempts(df: pd.DataFrame) -> dict[str, set[int]]:
    out: dict[str, set[int]] = {}
    if df.empty:
        return out
    for job_id, attempt in zip(df["job_id"], df["attempt"]):
        if pd.notna(attempt):
            out.setdefault(str(job_id), set()).add(int(attempt))
    return out


def plan_resume(store: ParquetStore, exp: ExperimentSpec) -> ResumePlan:
    """Read the run's tables and plan the jobs still to run."""
    jobs = store.read("jobs")
    done = set(jobs.loc[jobs["status"] == "ok", "job_id"]) if not jobs.empty else set()
    recorded = _attempts(jobs)
    seen: dict[str, set[int]] = {}
    for table in ("trials", "measurements", "jobs"):
        for job_id, attempts in _attempts(store.read(table)).items():
            seen.setdefault(job_id, set()).update(attempts)
    run_id = store.run_id
    todo: list[tuple[JobSpec, int]] = []
    interrupted: list[dict[str, Any]] = []
    for job in exp.jobs():
        attempts = seen.get(job.job_id, set())
        for attempt in sorted(attempts - recorded.get(job.job_id, set())):
            interrupted.append({
                "run_id": run_id, "job_id": job.job_id, "device_id": job.device_id, "op_key": job.op.key(),
                "op_label": job.label, "ts": time.time(), "attempt": attempt, "status": "failed",
                "error_class": "infra", "template": exp.tuner.template, "strategy": exp.tuner.strategy,
                "error": "interrupted: the run's driver process ended before this attempt finished"})
        if job.job_id not in done:
            todo.append((job, max(attempts, default=0) + 1))
    return ResumePlan(todo, done, interrupted)
