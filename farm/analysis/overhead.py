"""How much of a run was orchestration: (run wall time - device busy time) / run wall time, per
device, from the run's manifest and its jobs table. Device busy time is the time spent inside the
driver's run_batch/run_baseline (``jobs.device_busy_s``); the run's wall time spans Ray's start,
the devices' open, the jobs and the devices' close (the manifest's ``wall_s``, summed over a
resumed run's invocations)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # this module imports nothing of farm: bench/farm.py loads it beside an older tree's code
    import pandas as pd

    from farm.store.parquet import ParquetStore


@dataclass
class DeviceOverhead:
    device: str
    jobs_ok: int
    attempts: int
    wall_s: float
    busy_s: float
    ray_init_s: float | None  # None for a resumed run (each invocation starts Ray again)
    open_s: float | None  # spawning the device's worker to its first job; None: it never opened
    # (or the run was resumed: the manifest keeps the last invocation's timing only)
    open_phases: dict[str, float]
    jobs_wall_s: float | None  # first job sent to the last one done (None for a resumed run)

    @property
    def overhead_run(self) -> float:
        return (self.wall_s - self.busy_s) / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def overhead_jobs(self) -> float | None:
        return (self.jobs_wall_s - self.busy_s) / self.jobs_wall_s if self.jobs_wall_s else None

    @property
    def outside_ms_per_job(self) -> float | None:
        """Milliseconds per attempt of the jobs phase spent outside the device."""
        return (self.jobs_wall_s - self.busy_s) / max(self.attempts, 1) * 1000 if self.jobs_wall_s else None

    def describe(self) -> str:
        start = ", ".join(part for part in (
            f"Ray start {self.ray_init_s:.1f} s" if self.ray_init_s is not None else "",
            f"device open {self.open_s:.1f} s" if self.open_s is not None else "") if part)
        return (f"{self.device}: {self.busy_s:.1f} s of device work in a {self.wall_s:.1f} s run"
                + (f" ({start})" if start else "") + f": orchestration overhead {100 * self.overhead_run:.1f}%")


def run_overhead(store: ParquetStore) -> list[DeviceOverhead]:
    """device_overheads() of the run in ``store``."""
    manifest = store.read_manifest()
    return device_overheads(manifest, store.read("jobs")) if manifest.get("timing") else []


def device_overheads(manifest: dict[str, Any], jobs: pd.DataFrame) -> list[DeviceOverhead]:
    """One entry per device the run timed, from its manifest and its jobs table ([] for a run that
    ended before its timing was written, e.g. one that failed or was interrupted)."""
    timing = manifest.get("timing") or {}
    wall = manifest.get("wall_s")
    if not timing.get("devices") or not wall:
        return []
    resumed = bool(manifest.get("resumed"))
    out = []
    for dev, t in sorted(timing["devices"].items()):
        rows = jobs[jobs["device_id"] == dev]
        out.append(DeviceOverhead(
            device=dev, jobs_ok=int((rows["status"] == "ok").sum()), attempts=len(rows), wall_s=float(wall),
            busy_s=float(rows["device_busy_s"].fillna(0).sum()),
            ray_init_s=None if resumed else timing.get("ray_init_s"), open_s=None if resumed else t.get("open_s"),
            open_phases={} if resumed else dict(t.get("open_phases") or {}),
            jobs_wall_s=None if resumed else t.get("jobs_wall_s")))
    return out
