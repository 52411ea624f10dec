"""Failure classes, the retry decision and device quarantine. Driver-agnostic: a driver only has
to raise ``DriverError(error_class, message)`` (or die) and this policy decides what happens next.

Classes (farm/config/faults.py): infra (browser or session could not start), device (crash, GPU
device lost, hang, worker process died), harness (protocol or page error), kernel (no config
passed on the device: compile, validation, wrong result).
"""

from __future__ import annotations

from dataclasses import dataclass

from farm.config.faults import ERROR_CLASSES, FaultSpec


@dataclass(frozen=True)
class Decision:
    """What to do after a job attempt failed: ``retry`` it (as attempt + 1) after reopening the
    device's driver when ``reopen``; the device is ``quarantine``d when its streak reached the limit."""

    retry: bool
    reopen: bool
    quarantine: bool


def classify_exception(exc: BaseException) -> tuple[str, str]:
    """(error class, one-line message) for an exception that came out of a Ray call on a DeviceWorker."""
    import ray.exceptions as rex

    from farm.drivers.base import DriverError

    cause = getattr(exc, "cause", None)
    if isinstance(cause, DriverError):
        return _known(cause.error_class), cause.message
    if isinstance(exc, DriverError):
        return _known(exc.error_class), exc.message
    if isinstance(exc, rex.ActorUnschedulableError):
        return "infra", f"no Ray node can host the device: {_last_line(exc)}"
    if isinstance(exc, (rex.RayActorError, rex.WorkerCrashedError, rex.NodeDiedError, rex.LocalRayletDiedError)):
        return "device", f"the device's worker process died: {_last_line(exc)}"
    return "harness", f"{type(cause or exc).__name__}: {_last_line(cause or exc)}"


def _known(error_class: str) -> str:
    return error_class if error_class in ERROR_CLASSES else "harness"


def _last_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    line = lines[-1] if lines else type(exc).__name__
    # Ray's death notices run to a paragraph; the first sentences say what happened.
    return line if len(line) <= 240 else line[:240] + "..."


class DeviceHealth:
    """Counts a device's jobs that ended failed in a row (after their retries). Failures of class
    kernel do not count and end a streak: the device answered, the kernels were wrong."""

    def __init__(self, policy: FaultSpec):
        self.policy = policy
        self.streak = 0
        self.quarantined: str | None = None  # why, once quarantined

    def decide(self, error_class: str, attempt: int) -> Decision:
        """After ``attempt`` (1-based) of a job failed with ``error_class``."""
        retries = self.policy.retries.get(error_class, 0)
        if attempt <= retries:
            return Decision(retry=True, reopen=error_class != "kernel", quarantine=False)
        if error_class == "kernel":
            self.streak = 0
            return Decision(retry=False, reopen=False, quarantine=False)
        self.streak += 1
        return Decision(retry=False, reopen=error_class in ("device", "harness", "infra"),
                        quarantine=self.streak >= self.policy.quarantine_after)

    def succeeded(self) -> None:
        self.streak = 0

    def quarantine(self, why: str) -> None:
        self.quarantined = self.quarantined or why
