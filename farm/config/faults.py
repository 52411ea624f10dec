"""The ``faults:`` section of an experiment: per-job timeout, retries per failure class, quarantine."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .reader import Reader

# infra: the browser or session could not start; device: crash, GPU device lost, hang, actor died;
# harness: protocol or page error; kernel: compile, validation or wrong result (no config passed).
ERROR_CLASSES = ("infra", "device", "harness", "kernel")
DEFAULT_RETRIES = {"infra": 1, "device": 1, "harness": 1, "kernel": 0}


@dataclass(frozen=True)
class FaultSpec:
    """How a run treats failures. ``job_timeout_s`` bounds one job attempt (the worker is killed
    and replaced when it passes); ``open_timeout_s`` bounds opening a device; ``retries[cls]`` is how
    many more attempts a job gets after a failure of class ``cls`` (each on the same device, after
    reopening its driver); a device whose jobs end failed (infra/device/harness, after retries)
    ``quarantine_after`` times in a row is quarantined for the rest of the run."""

    job_timeout_s: float = 1800.0
    open_timeout_s: float = 300.0
    quarantine_after: int = 3
    retries: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_RETRIES))

    def to_dict(self) -> dict[str, Any]:
        return {"job_timeout_s": self.job_timeout_s, "open_timeout_s": self.open_timeout_s,
                "quarantine_after": self.quarantine_after, "retries": dict(self.retries)}

    @staticmethod
    def from_dict(d: dict[str, Any]) -> "FaultSpec":
        return FaultSpec(job_timeout_s=float(d["job_timeout_s"]), open_timeout_s=float(d["open_timeout_s"]),
                         quarantine_after=int(d["quarantine_after"]),
                         retries={**DEFAULT_RETRIES, **{k: int(v) for k, v in d["retries"].items()}})


def read_faults(r: Reader) -> FaultSpec:
    """Parse an experiment's ``faults:`` mapping (all keys optional)."""
    f = r.sub("faults")
    retries = dict(DEFAULT_RETRIES)
    rr = f.sub("retries")
    for cls in ERROR_CLASSES:
        n = rr.get(cls, int, retries[cls])
        if n < 0:
            raise rr.error(cls, f"must be 0 or more, got {n}", "give the number of extra attempts, e.g. 1")
        retries[cls] = n
    rr.finish()
    spec = FaultSpec(
        job_timeout_s=f.positive("job_timeout_s", float, FaultSpec.job_timeout_s),
        open_timeout_s=f.positive("open_timeout_s", float, FaultSpec.open_timeout_s),
        quarantine_after=f.positive("quarantine_after", int, FaultSpec.quarantine_after),
        retries=retries,
    )
    f.finish()
    return spec
