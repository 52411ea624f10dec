"""Ray actors: one DeviceWorker per device (here), one Aggregator per run (farm/scheduler/aggregator.py)."""

from __future__ import annotations

import dataclasses
import os
import socket
import time
import traceback
from typing import Any

import ray

from farm.config.devices import DeviceSpec
from farm.config.experiments import ExperimentSpec, JobSpec
from farm.drivers import DriverError, make_driver
from farm.procs import process_alive
from farm.store.schema import SCHEMAS, device_state_row
from farm.validity import merge
from jit_core.templates import get_template

from .aggregator import Aggregator  # noqa: F401 - re-exported: the run starts both from here
from .job import DeviceContext, JobRunner
from .lanes import NOT_STARTED
from .outbox import Outbox


def job_context(ctx: DeviceContext, state: dict[str, Any]) -> DeviceContext:
    """The device context for one job: with the ``device-warm`` flag on every record of the job
    when the device's cool-down rule gave up waiting (``state['cooled'] is False``)."""
    if state.get("cooled") is False:
        return dataclasses.replace(ctx, flags=tuple(merge(ctx.flags, ["device-warm"])))
    return ctx


class DeviceWorker:
    """Owns one device for the whole run: opens its driver, probes it, runs its jobs one at a
    time (one measurement at a time per device), closes it.

    Contract: ``open()`` returns the device context as a dict (``open_timing``: seconds in the
    driver's open, its phases and the probe) or raises DriverError; ``reopen()``
    closes and opens the driver again; ``run_job(job, attempt)`` returns the job's summary row (a
    failed one when the driver raised); every record it made carries ``attempt`` and reaches the
    aggregator in order (the job's ``jobs`` row last, sent with the records still in the outbox),
    and all are on disk once ``close()`` returns. Records go out coalesced: at the latest with the
    job's ``jobs`` row, else every ``Outbox.interval_s`` (a worker killed mid-job loses at most that
    much of its trials). Retries, timeouts and quarantine are the caller's (farm/scheduler/lanes.py).

    ``run_job(job, attempt, ahead_of=PID)`` is a job sent ahead, queued while the one before it ran:
    it starts only if the job before it in this worker ended ok and process PID (the driver, on this
    node) still runs; otherwise it returns ``{"status": "not-started"}`` and records nothing.
    """

    def __init__(self, device: DeviceSpec, experiment: ExperimentSpec, run_id: str, aggregator: Any):
        self.device, self.exp, self.run_id, self.aggregator = device, experiment, run_id, aggregator
        self.driver = None
        self.runner: JobRunner | None = None
        self.attempt = 1
        self.ctx: DeviceContext | None = None
        self.last_ok = False  # did the last job run here end ok (a job sent ahead starts only then)
        # records and progress go out coalesced (one Ray call per job for short jobs), in order
        self.outbox = Outbox(self._send)

    def ping(self) -> int:
        return os.getpid()

    def reopen(self) -> dict[str, Any]:
        self.close()
        return self.open()

    def open(self) -> dict[str, Any]:
        self.aggregator.report.remote(self.device.id, {"phase": "opening"})
        t0 = time.perf_counter()
        self.driver = make_driver(self.device)
        self.driver.open()
        t1 = time.perf_counter()
        probe = self.driver.probe()
        timing = {"driver_s": t1 - t0, **self.driver.open_phases(), "probe_s": time.perf_counter() - t1}
        if get_template(self.exp.tuner.template).backend == "wasm":
            if not (probe.get("wasm") or {}).get("simd"):
                raise DriverError("device", f"no WebAssembly SIMD128 on {self.device.id}: {probe.get('wasm')}")
        elif not probe.get("webgpu", True) or probe.get("error"):
            raise DriverError("device", f"no WebGPU on {self.device.id}: {probe.get('error')}")
        ctx = DeviceContext.from_probe(self.device.id, probe, self.device.caps_overrides, self.device.tags)
        self.ctx = ctx
        self.runner = JobRunner(self.driver, ctx, self.exp, self.run_id, self._emit, self._progress)
        self.last_ok = True
        self.aggregator.report.remote(self.device.id, {"phase": "ready", "adapter": ctx.adapter})
        return {"device_id": self.device.id, "adapter": ctx.adapter, "fingerprint": ctx.fingerprint,
                "probe": probe, "caps": ctx.caps.to_dict(), "versions": self.driver.versions(),
                "covariates": self.driver.covariates(), "open_timing": timing,
                "pid": os.getpid(), "host": socket.gethostname(), "node_id": ray.get_runtime_context().get_node_id()}

    def _emit(self, table: str, rows: list[dict[str, Any]]) -> None:
        if "attempt" in SCHEMAS[table].names:
            rows = [{**row, "attempt": self.attempt} for row in rows]
        self.outbox.add(table, rows)

    def _progress(self, info: dict[str, Any]) -> None:
        self.outbox.progress(info)

    def _send(self, batches: list[tuple[str, list[dict[str, Any]]]], progress: dict[str, Any] | None) -> None:
        self.aggregator.append_many.remote(batches, self.device.id, progress)

    def run_job(self, job: JobSpec, attempt: int = 1, ahead_of: int | None = None) -> dict[str, Any]:
        assert self.runner is not None, "open() first"
        if ahead_of is not None and not (self.last_ok and process_alive(ahead_of)):
            return {"job_id": job.job_id, "attempt": attempt, "status": NOT_STARTED}
        self.last_ok = False
        self.attempt = attempt
        try:
            state = self.driver.before_job()
            self.runner.ctx = job_context(self.ctx, state)
            if state:
                self._emit("device_state", [device_state_row(self.run_id, job.job_id, self.device.id, time.time(),
                                                             state, list(self.runner.ctx.flags))])
            summary = self.runner.run(job, attempt)
        except DriverError as exc:
            summary = self._failed(job, exc.error_class, exc.message)
        except Exception as exc:  # a bug or an unexpected device failure: a record, not a dead run
            summary = self._failed(job, "harness", f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}")
        # Not awaited: Ray runs one caller's actor tasks in order, so the job's record lands after
        # its trials and measurements; a record of a job that is on disk has all its rows on disk.
        self.last_ok = summary.get("status") == "ok"
        return summary

    def _failed(self, job: JobSpec, error_class: str, message: str) -> dict[str, Any]:
        assert self.runner is not None
        row = {**self.runner._common(job), "attempt": self.attempt, "status": "failed", "error_class": error_class,
               "error": message, "template": self.exp.tuner.template, "strategy": self.exp.tuner.strategy}
        self.outbox.flush()  # the attempt's records first, then its jobs row
        ray.get(self.aggregator.append.remote("jobs", [row]))
        return row

    def close(self) -> None:
        """Close the driver; returns once every record this worker made is on disk."""
        self.outbox.flush()
        ray.get(self.aggregator.flush.remote())
        if self.driver is not None:
            driver, self.driver, self.runner = self.driver, None, None
            driver.close()
