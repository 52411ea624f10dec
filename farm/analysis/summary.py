"""Per-job summary of a run: tuned latency vs each baseline, from the comparison samples."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from farm.store.parquet import ParquetStore


@dataclass
class Latency:
    """Pooled wall-clock samples of one implementation in one job."""

    median_ms: float | None
    n: int
    error: str | None = None
    adapter: str | None = None
    backend_used: str | None = None


@dataclass
class JobSummary:
    device_id: str
    adapter: str
    op_key: str
    op_label: str
    status: str
    best_config: str | None
    tuned: Latency
    baselines: dict[str, Latency] = field(default_factory=dict)
    error: str | None = None

    def speedup(self, baseline: str) -> float | None:
        b = self.baselines.get(baseline)
        if b is None or b.median_ms is None or self.tuned.median_ms in (None, 0):
            return None
        return b.median_ms / self.tuned.median_ms


def _latency(rows: pd.DataFrame) -> Latency:
    good = rows[rows["ok"] & rows["check_ok"]]
    samples = [x for lst in good["samples_ms"] for x in lst]
    errors = rows.loc[~(rows["ok"] & rows["check_ok"]), "error"].dropna()
    err = None
    if good.empty and not rows.empty:
        cls = rows["error_class"].dropna()
        err = (f"{cls.iloc[0]}: " if not cls.empty else "") + (errors.iloc[0] if not errors.empty else "failed")
    adapter = rows["impl_adapter"].dropna()
    backend = rows["backend_used"].dropna()
    return Latency(float(np.median(samples)) if samples else None, len(samples), err,
                   adapter.iloc[0] if not adapter.empty else None, backend.iloc[0] if not backend.empty else None)


def summarize(store: ParquetStore) -> list[JobSummary]:
    """One JobSummary per job of the run, in the order the jobs finished; the latest attempt wins."""
    jobs = store.read("jobs")
    meas = store.read("measurements")
    out: list[JobSummary] = []
    if jobs.empty:
        return out
    latest = jobs.sort_values(["attempt", "ts"]).groupby("job_id", sort=False).tail(1).sort_values("ts")
    for _, job in latest.iterrows():
        # Only the rows of the attempt that the job record describes: a failed earlier attempt
        # may have left measurements too.
        m = meas[(meas["job_id"] == job["job_id"]) & (meas["attempt"] == job["attempt"])] if not meas.empty else meas
        tuned = _latency(m[m["impl"] == "jit"]) if not m.empty else Latency(None, 0)
        baselines = {impl: _latency(rows) for impl, rows in m[m["impl"] != "jit"].groupby("impl")} if not m.empty else {}
        out.append(JobSummary(
            device_id=job["device_id"], adapter=job["adapter"] if isinstance(job["adapter"], str) else "?",
            op_key=job["op_key"], op_label=job["op_label"] or job["op_key"], status=job["status"],
            best_config=job["best_config"] if isinstance(job["best_config"], str) else None,
            tuned=tuned, baselines=baselines,
            error=job["error"] if isinstance(job["error"], str) else None,
        ))
    return out
