"""The run's Aggregator actor, in a module of its own: its worker process imports only this, the
store and pyarrow (not the tuner, numpy or the drivers), so it starts quickly beside the devices."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from farm.store.parquet import ParquetStore


class Aggregator:
    """Receives records from every DeviceWorker and appends them to the run's Parquet store as
    they arrive (one part per call). Also holds each device's live progress for the console.
    Runs on the driver's node so results land where the user ran ``jitfarm run``."""

    def __init__(self, run_dir: str):
        self.store = ParquetStore(Path(run_dir))
        self.progress: dict[str, dict[str, Any]] = {}
        self.rows = 0

    def append(self, table: str, rows: list[dict[str, Any]]) -> int:
        self.store.append(table, rows)
        self.rows += len(rows)
        return self.rows

    def append_many(self, batches: list[tuple[str, list[dict[str, Any]]]], device_id: str | None = None,
                    progress: dict[str, Any] | None = None) -> int:
        """``append`` each (table, rows) in order, then ``report`` the progress: what a worker's
        outbox (farm/scheduler/outbox.py) sends in one call."""
        for table, rows in batches:
            self.append(table, rows)
        if device_id is not None and progress:
            self.report(device_id, progress)
        return self.rows

    def report(self, device_id: str, info: dict[str, Any]) -> None:
        self.progress.setdefault(device_id, {}).update(info)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {k: dict(v) for k, v in self.progress.items()}

    def flush(self) -> int:
        """Returns once every append sent before it by the same caller is on disk."""
        return self.rows
