"""A driver wrapper that counts the time spent inside device calls (device busy time)."""

from __future__ import annotations

import time
from typing import Any

from jit_core.protocol import Batch, CandidateResult

from farm.drivers.base import DeviceDriver


class BusyTimer:
    """Wraps a DeviceDriver; ``busy_s`` is the wall time spent in run_batch/run_baseline, the
    denominator of the orchestration-overhead figure."""

    def __init__(self, driver: DeviceDriver):
        self.driver = driver
        self.busy_s = 0.0
        self.calls = 0

    def run_batch(self, batch: Batch) -> list[CandidateResult]:
        t0 = time.perf_counter()
        try:
            return self.driver.run_batch(batch)
        finally:
            self.busy_s += time.perf_counter() - t0
            self.calls += 1

    def run_baseline(self, spec: dict[str, Any]) -> dict[str, Any]:
        t0 = time.perf_counter()
        try:
            return self.driver.run_baseline(spec)
        finally:
            self.busy_s += time.perf_counter() - t0
            self.calls += 1
