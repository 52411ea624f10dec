"""One lane per device: its DeviceWorker actor, its queue of job attempts, its health.

The run loop (farm/scheduler/run.py) waits on every lane's in-flight Ray call and hands each lane
the calls that finished; the lane applies the fault policy (farm/scheduler/faults.py): per-job
timeout (the worker is killed and replaced), retries per failure class on the same device after
reopening its driver, quarantine after a streak of failed jobs. Every attempt leaves one record
in the ``jobs`` table, written by the worker or, when the worker could not, by the lane.

While a job runs, the lane sends the next one ahead, so the worker starts it without waiting for a
round trip through this process. A job sent ahead starts only if the job before it ended ok and
the driver process still runs (the worker checks both; farm/scheduler/actors.py); otherwise it
returns "not-started" without a record. The lane takes such a job back (to the front of its
queue, after any retry) whenever the job before it failed, hung or lost its worker, so a job sent
ahead is either run once as planned or not at all. Jobs are sent ahead only to a worker on the
driver's own node, where it can see the driver's process.
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass
from typing import Any, Callable

import ray

from farm.config.devices import DeviceSpec
from farm.config.experiments import ExperimentSpec, JobSpec

from .faults import DeviceHealth, classify_exception

Record = Callable[[list[dict[str, Any]]], None]


@dataclass
class _InFlight:
    kind: str  # "open" | "job"
    ref: Any
    t0: float
    job: JobSpec | None = None
    attempt: int = 0


NOT_STARTED = "not-started"  # the status a job sent ahead returns when it was not run


class DeviceLane:
    """Drives one device through its jobs. Contract: ``start()`` once; then ``step(ready, now)``
    after every wait with the set of refs that finished (``refs()`` lists the ones to wait on)
    until ``finished``; ``close()`` at the end. ``done`` counts jobs with a final outcome; every
    job given to the lane ends with at least one ``jobs`` record (status ok, failed or skipped)."""

    def __init__(self, device: DeviceSpec, exp: ExperimentSpec, run_id: str, plan: list[tuple[JobSpec, int]],
                 make_actor: Callable[[DeviceSpec], Any], record: Record, *,
                 driver: tuple[str, int] | None = None):
        self.device, self.exp, self.run_id = device, exp, run_id
        self.queue: collections.deque[tuple[JobSpec, int]] = collections.deque(plan)
        self.total = len(plan)
        self.make_actor, self.record = make_actor, record
        self.policy = exp.faults
        self.health = DeviceHealth(self.policy)
        self.actor: Any = None
        self.flight: _InFlight | None = None
        # the next job, sent while ``flight`` runs; only to a worker on ``driver``'s node (node id, PID)
        self.ahead: _InFlight | None = None
        self.driver = driver
        self.taken_back = 0
        self.info: dict[str, Any] = {}
        self.open_failures = 0
        self.done = 0
        self.failed_attempts = 0
        self.restarts = 0
        self.finished = not plan
        # monotonic times: worker spawned, first job sent, lane finished (for the overhead figure)
        self.t_spawn: float | None = None
        self.t_first_job: float | None = None
        self.t_end: float | None = None
        self.first_open: dict[str, float] = {}  # the worker's open_timing of the open before the first job

    # ------------------------------------------------------------------------------ life cycle
    def start(self, unavailable: str | None = None) -> None:
        """Start the worker and open the device, or quarantine the lane at once (``unavailable``:
        why no Ray node can host the device)."""
        if self.finished:
            return
        if unavailable:
            self._quarantine("infra", unavailable)
            return
        self._spawn()

    def _spawn(self) -> None:
        self.t_spawn = self.t_spawn or time.monotonic()
        self.actor = self.make_actor(self.device)
        self.flight = _InFlight("open", self.actor.open.remote(), time.monotonic())

    def refs(self) -> list[Any]:
        return [self.flight.ref] if self.flight is not None else []

    def close(self) -> None:
        actor, self.actor = self.actor, None
        if actor is None:
            return
        try:
            ray.get(actor.close.remote(), timeout=60)
        except Exception:  # noqa: BLE001 - closing is best effort; the kill below ends it
            pass
        ray.kill(actor, no_restart=True)

    def _kill(self) -> None:
        actor, self.actor = self.actor, None
        if actor is not None:
            ray.kill(actor, no_restart=True)
        self.restarts += 1

    # ------------------------------------------------------------------------------------ steps
    def step(self, ready: set[Any], now: float) -> None:
        flight = self.flight
        if flight is None or self.finished:
            return
        if flight.ref in ready:
            self.flight = None
            (self._opened if flight.kind == "open" else self._job_returned)(flight)
        elif flight.kind == "open" and now - flight.t0 > self.policy.open_timeout_s:
            self.flight = None
            self._kill()
            self._open_failed("infra", f"the device did not open within faults.open_timeout_s={self.policy.open_timeout_s:g} s")
        elif flight.kind == "job" and now - flight.t0 > self.policy.job_timeout_s:
            self.flight = None
            self._kill()
            self._take_back()
            assert flight.job is not None
            self._attempt_failed(flight.job, flight.attempt, "device",
                                 f"hang: the job ran past faults.job_timeout_s={self.policy.job_timeout_s:g} s; "
                                 "its worker was killed", written=False, actor_dead=True)

    def _opened(self, flight: _InFlight) -> None:
        try:
            self.info = ray.get(flight.ref)
        except Exception as exc:  # noqa: BLE001 - any failure to open is classified, never raised
            cls, msg = classify_exception(exc)
            self._kill()
            self._open_failed(cls, msg)
            return
        self.info.pop("error", None)
        self.open_failures = 0
        if self.t_first_job is None:
            self.first_open = dict(self.info.get("open_timing") or {})
        self._next()

    def _open_failed(self, cls: str, msg: str) -> None:
        self.open_failures += 1
        self.info = {**self.info, "device_id": self.device.id, "error": msg, "error_class": cls}
        if self.open_failures <= self.policy.retries.get(cls, 0):
            self._spawn()
        else:
            self._quarantine(cls, f"could not open the device ({self.open_failures}x): {msg}")

    def _next(self) -> None:
        if self.ahead is not None:  # already sent; it started when the job before it ended
            self.flight, self.ahead = self.ahead, None
            self.flight.t0 = time.monotonic()
        elif not self.queue:
            self.finished = True
            self.t_end = time.monotonic()
            return
        else:
            job, attempt = self.queue.popleft()
            self.t_first_job = self.t_first_job or time.monotonic()
            self.flight = _InFlight("job", self.actor.run_job.remote(job, attempt), time.monotonic(), job, attempt)
        self._send_ahead()

    def _send_ahead(self) -> None:
        if (self.ahead is not None or not self.queue or self.driver is None
                or self.info.get("node_id") != self.driver[0]):
            return
        job, attempt = self.queue.popleft()
        ref = self.actor.run_job.remote(job, attempt, ahead_of=self.driver[1])
        self.ahead = _InFlight("job", ref, time.monotonic(), job, attempt)

    def _take_back(self) -> None:
        """The job before the one sent ahead did not end ok: the worker will not start (or, its
        process gone, cannot run) the one sent ahead; it goes back to the front of the queue."""
        if self.ahead is not None:
            assert self.ahead.job is not None
            self.queue.appendleft((self.ahead.job, self.ahead.attempt))
            self.ahead = None
            self.taken_back += 1

    def _job_returned(self, flight: _InFlight) -> None:
        assert flight.job is not None
        try:
            summary = ray.get(flight.ref)
        except Exception as exc:  # noqa: BLE001 - the worker died: a record, then a new worker
            cls, msg = classify_exception(exc)
            self._kill()
            self._take_back()
            self._attempt_failed(flight.job, flight.attempt, cls, msg, written=False, actor_dead=True)
            return
        if summary.get("status") == NOT_STARTED:  # sent ahead, not run: send it again, as a plain call
            self._take_back()
            self.queue.appendleft((flight.job, flight.attempt))
            self._next_plain()
            return
        if summary.get("status") == "ok":
            self.health.succeeded()
            self.done += 1
            self._next()
            return
        self._take_back()
        self._attempt_failed(flight.job, flight.attempt, summary.get("error_class") or "harness",
                             summary.get("error") or "failed", written=True, actor_dead=False)

    def _next_plain(self) -> None:
        job, attempt = self.queue.popleft()
        self.flight = _InFlight("job", self.actor.run_job.remote(job, attempt), time.monotonic(), job, attempt)

    def _attempt_failed(self, job: JobSpec, attempt: int, cls: str, msg: str, *, written: bool,
                        actor_dead: bool) -> None:
        self.failed_attempts += 1
        if not written:
            self.record([self._row(job, attempt, "failed", cls, msg)])
        decision = self.health.decide(cls, attempt)
        if decision.retry:
            self.queue.appendleft((job, attempt + 1))
        else:
            self.done += 1
        if decision.quarantine:
            self._quarantine(cls, f"{self.health.streak} jobs in a row failed; last: {cls}: {msg.splitlines()[0][:200]}")
        elif actor_dead:
            self._spawn()
        elif decision.reopen:
            self.flight = _InFlight("open", self.actor.reopen.remote(), time.monotonic())
        else:
            self._next()

    def _quarantine(self, cls: str, why: str) -> None:
        self.health.quarantine(why)
        self.info = {**self.info, "device_id": self.device.id, "quarantined": why}
        rows = [self._row(job, attempt, "skipped", cls, f"not run: device quarantined: {why}")
                for job, attempt in self.queue]
        if rows:
            self.record(rows)
        self.done += len(self.queue)
        self.queue.clear()
        self.finished = True
        self.t_end = time.monotonic()
        if self.actor is not None:
            self.close()

    def _row(self, job: JobSpec, attempt: int, status: str, cls: str, msg: str) -> dict[str, Any]:
        return {"run_id": self.run_id, "job_id": job.job_id, "device_id": self.device.id,
                "device_fingerprint": self.info.get("fingerprint"), "adapter": self.info.get("adapter"),
                "op_key": job.op.key(), "op_label": job.label, "ts": time.time(), "attempt": attempt,
                "status": status, "error_class": cls, "error": msg, "template": self.exp.tuner.template,
                "strategy": self.exp.tuner.strategy}

    def timing(self) -> dict[str, Any]:
        """Seconds from spawning the worker to the first job (``open_s``; ``open_phases``: where the
        worker's open went, the rest of ``open_s`` is the worker's start and the calls), and from
        the first job to the end."""
        def span(a: float | None, b: float | None) -> float | None:
            return b - a if a is not None and b is not None else None

        return {"open_s": span(self.t_spawn, self.t_first_job), "open_phases": self.first_open,
                "jobs_wall_s": span(self.t_first_job, self.t_end),
                "restarts": self.restarts, "failed_attempts": self.failed_attempts, "taken_back": self.taken_back}

    # -------------------------------------------------------------------------------- progress
    def describe(self, live: dict[str, Any]) -> str:
        if self.health.quarantined:
            return f"[red]quarantined[/]: {self.health.quarantined[:120]}"
        if self.finished:
            return "done" + (f" · {self.failed_attempts} failed attempts" if self.failed_attempts else "")
        extra = f" · [yellow]{self.failed_attempts} failed attempts[/]" if self.failed_attempts else ""
        if self.flight is not None and self.flight.kind == "open":
            return ("reopening" if self.restarts or self.info else "opening") + extra
        phase = live.get("phase", "waiting")
        trials = live.get("trials", 0)
        attempt = f" (attempt {self.flight.attempt})" if self.flight is not None and self.flight.attempt > 1 else ""
        return f"{phase} {live.get('op', '')}{attempt} · {trials} trials" + extra
