"""The on-device protocol: what the tuner sends to a device and what the device answers.

Every driver (Playwright, Appium, native wgpu) implements ``Runner.run_batch`` with exactly these
messages; their JSON form is documented in ``farm/harness/PROTOCOL.md``. jit_core builds batches and
reads results; it never knows which driver ran them.
"""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, Sequence

from .ops import OpSpec
from .reference import INPUT_STREAMS

ERROR_CLASSES = ("compile", "validation", "runtime", "timeout", "device-lost", "wrong-result", "harness", "fallback")


KERNEL_KINDS = ("wgsl", "wasm")
ACCESS = ("read", "read_write")
BUFFER_DTYPES = {"f32": 4, "f16": 2}  # bytes per element


@dataclass(frozen=True)
class Dispatch:
    """One more WGSL dispatch of a multi-dispatch kernel (see ``KernelSource.then``): its source,
    entry point, grid and workgroup size, and the buffers bound at bindings 0.. of group 0, by name
    (a batch buffer or one of the kernel's scratch buffers) with the access the shader declares."""

    code: str
    entry: str
    workgroups: tuple[int, int, int]
    workgroup_size: tuple[int, int, int]
    bindings: tuple[tuple[str, str], ...]

    def __post_init__(self) -> None:
        _check_bindings(self.bindings)

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "entry": self.entry, "workgroups": list(self.workgroups),
                "workgroupSize": list(self.workgroup_size), "bindings": [list(b) for b in self.bindings]}


def _check_bindings(bindings: tuple[tuple[str, str], ...]) -> None:
    for b in bindings:
        if len(b) != 2 or b[1] not in ACCESS:
            raise ValueError(f"a binding is (buffer name, one of {ACCESS}), got {b!r}")


@dataclass(frozen=True)
class KernelSource:
    """One rendered kernel. ``kind`` 'wgsl': WGSL source in ``code``, entry point, dispatch grid
    and workgroup size. ``kind`` 'wasm': a WebAssembly binary in ``binary`` that imports
    ``env.memory`` and exports ``entry(A, B, C, u0, u1, scratch)`` (byte addresses, a range of
    ``units`` work units, this thread's scratch area); the page splits the units over ``threads``
    threads sharing the memory and gives each ``scratch_bytes`` of scratch; ``code`` is a one-line
    description for records; workgroups and workgroup_size are unused (1, 1, 1).

    A WGSL kernel may be several dispatches run in order, one run being all of them (split-K's
    partial products then their reduction; a transformer block's chain of kernels): ``bindings``
    names the buffers of the first dispatch (empty: the batch's buffers in binding order), ``then``
    holds the next dispatches, and ``scratch`` declares (name, elements) buffers that live as long as
    the candidate, zero-initialised, bindable by name like the batch's buffers."""

    code: str
    entry: str
    workgroups: tuple[int, int, int]
    workgroup_size: tuple[int, int, int]
    kind: str = "wgsl"
    binary: bytes = b""
    threads: int = 1
    units: int = 0
    scratch_bytes: int = 0
    bindings: tuple[tuple[str, str], ...] = ()
    then: tuple[Dispatch, ...] = ()
    scratch: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KERNEL_KINDS:
            raise ValueError(f"kernel kind must be one of {KERNEL_KINDS}, got {self.kind!r}")
        if self.kind == "wasm" and (not self.binary or self.threads < 1 or self.units < 1):
            raise ValueError("a wasm kernel needs a binary, threads >= 1 and units >= 1")
        if self.kind == "wasm" and (self.bindings or self.then or self.scratch):
            raise ValueError("a wasm kernel is one call: no bindings, then or scratch")
        _check_bindings(self.bindings)
        if self.then and not self.bindings:
            raise ValueError("a multi-dispatch kernel names the bindings of its first dispatch")
        for name, size in self.scratch:
            if not name or not isinstance(size, int) or size < 1:
                raise ValueError(f"a scratch buffer is (name, elements >= 1), got {(name, size)!r}")

    @property
    def dispatches(self) -> int:
        return 1 + len(self.then)

    def full_text(self) -> str:
        """Every dispatch's source, in order: what identifies the kernel (replay, records)."""
        if not self.then:
            return self.code
        return "\n// ---- next dispatch\n".join([self.code, *(d.code for d in self.then)])

    def to_json(self, cid: str) -> dict[str, Any]:
        """The candidate's form in a batch JSON (see farm/harness/PROTOCOL.md)."""
        d: dict[str, Any] = {
            "id": cid,
            "kind": self.kind,
            "code": self.code,
            "entry": self.entry,
            "workgroups": list(self.workgroups),
            "workgroupSize": list(self.workgroup_size),
        }
        if self.bindings:
            d["bindings"] = [list(b) for b in self.bindings]
        if self.then:
            d["then"] = [t.to_json() for t in self.then]
        if self.scratch:
            d["scratch"] = [{"name": n, "size": size} for n, size in self.scratch]
        if self.kind == "wasm":
            d.update(wasm=base64.b64encode(self.binary).decode("ascii"), threads=self.threads,
                     units=self.units, scratchBytes=self.scratch_bytes)
        return d


@dataclass(frozen=True)
class BufferSpec:
    """A storage buffer bound at ``binding`` of group 0. ``init`` is 'prng' (from seed and stream:
    ``shift + scale * prng``, computed in double and stored as f32, see
    ``reference.prng_buffer``) or 'zero'; ``output`` marks the buffer the check reads. ``dtype``
    'f32' (4 bytes per element) or 'f16' (2 bytes, the f32 values rounded to half, ties to even;
    the buffer's byte size is rounded up to a multiple of 4; the check reads the output widened
    to float)."""

    name: str
    binding: int
    size: int  # elements
    access: str  # "read" | "read_write"
    init: str  # "prng" | "zero"
    seed: int = 0
    stream: int = 0
    dtype: str = "f32"
    output: bool = False
    scale: float = 1.0
    shift: float = 0.0

    def __post_init__(self) -> None:
        if self.dtype not in BUFFER_DTYPES:
            raise ValueError(f"buffer {self.name!r}: dtype must be one of {BUFFER_DTYPES}, got {self.dtype!r}")

    @property
    def nbytes(self) -> int:
        """Bytes of the device buffer: 4 at least, a multiple of 4 (what copies need)."""
        return max(4, -(-self.size * BUFFER_DTYPES[self.dtype] // 4) * 4)


@dataclass(frozen=True)
class MeasureSpec:
    """How to time each candidate: ``warmup`` untimed runs, then untimed runs until ``warmup_ms``
    of wall time have passed (a GPU that idled while the host compiled runs at low clocks for a
    while: measured on an H200, a 0.2 ms block timed 2.7-4x slower without it), then a calibration run that sets the
    dispatches per sample (``reps``) so a sample lasts at least ``min_sample_ms`` and
    ``min_ticks`` ticks of the timer's measured resolution (at most ``max_reps``), then samples.
    ``timer`` is 'auto' (GPU timestamps when the adapter has them, else wall clock) or 'wall'
    (dispatch, queue sync and readback, timed in the page).

    Without ``target_ci_rel`` exactly ``samples`` samples are taken. With it, at least
    ``samples``, then until the 95 % CI of the median is narrower than ``target_ci_rel`` x median,
    or ``max_samples`` samples, or ``max_time_ms`` of sampling (jit_core/timing.py)."""

    warmup: int = 1
    samples: int = 5
    min_sample_ms: float = 10.0
    max_reps: int = 256
    timer: str = "auto"
    timeout_ms: float = 30000.0
    min_ticks: int = 100
    target_ci_rel: float | None = None
    max_samples: int = 50
    max_time_ms: float = 10000.0
    warmup_ms: float = 0.0

    def __post_init__(self) -> None:
        if self.warmup_ms < 0:
            raise ValueError(f"measure.warmup_ms must be >= 0, got {self.warmup_ms!r}")
        if self.timer not in ("auto", "wall"):
            raise ValueError(f"measure.timer must be 'auto' or 'wall', got {self.timer!r}")
        if self.samples < 1 or self.warmup < 0 or self.max_reps < 1:
            raise ValueError("measure needs samples >= 1, warmup >= 0, max_reps >= 1")
        if self.min_ticks < 1 or self.max_samples < 1 or self.max_time_ms <= 0:
            raise ValueError("measure needs min_ticks >= 1, max_samples >= 1, max_time_ms > 0")
        if self.target_ci_rel is not None and not 0 < self.target_ci_rel < 1:
            raise ValueError(f"measure.target_ci_rel must be in (0, 1), got {self.target_ci_rel!r}")

    def to_json(self) -> dict[str, Any]:
        """The ``measure`` object of PROTOCOL.md."""
        return {
            "warmup": self.warmup, "samples": self.samples, "minSampleMs": self.min_sample_ms,
            "maxReps": self.max_reps, "timer": self.timer, "timeoutMs": self.timeout_ms,
            "minTicks": self.min_ticks, "targetCiRel": self.target_ci_rel,
            "maxSamples": self.max_samples, "maxTimeMs": self.max_time_ms, "warmupMs": self.warmup_ms,
        }


@dataclass(frozen=True)
class Candidate:
    id: str
    kernel: KernelSource


@dataclass(frozen=True)
class Batch:
    """A batch of candidates for one op, compiled and timed on the device in one round trip."""

    op: OpSpec
    buffers: tuple[BufferSpec, ...]
    candidates: tuple[Candidate, ...]
    measure: MeasureSpec
    check_positions: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "op": self.op.to_dict(),
            "buffers": [asdict(b) for b in self.buffers],
            "candidates": [c.kernel.to_json(c.id) for c in self.candidates],
            "measure": self.measure.to_json(),
            "check": {"positions": list(self.check_positions)},
        }


@dataclass
class CandidateResult:
    """The device's answer for one candidate. ``ok`` means it compiled and ran; the correctness
    verdict is added by the tuner (``check_ok``) from ``values`` at the batch's check positions."""

    id: str
    ok: bool
    error_class: str | None = None
    error: str | None = None
    compile_ms: float | None = None
    first_run_ms: float | None = None
    samples_ms: list[float] = field(default_factory=list)
    reps: int = 0
    timer_kind: str = "wall"
    timer_resolution_ms: float | None = None
    values: list[float] | None = None
    stop: str | None = None  # why sampling stopped: fixed | ci | max-samples | max-time
    ci_ms: tuple[float, float] | None = None  # 95 % CI of the median per-run time
    flags: list[str] = field(default_factory=list)  # e.g. "short-samples"

    @staticmethod
    def from_json(d: dict[str, Any]) -> "CandidateResult":
        timer = d.get("timer") or {}
        err_class = d.get("errorClass")
        if err_class is not None and err_class not in ERROR_CLASSES:
            err_class = "harness"
        return CandidateResult(
            id=str(d.get("id")),
            ok=bool(d.get("ok")),
            error_class=err_class,
            error=d.get("error"),
            compile_ms=d.get("compileMs"),
            first_run_ms=d.get("firstRunMs"),
            samples_ms=[float(x) for x in d.get("samplesMs") or []],
            reps=int(d.get("reps") or 0),
            timer_kind=str(timer.get("kind", "wall")),
            timer_resolution_ms=timer.get("resolutionMs"),
            values=d.get("values"),
            stop=d.get("stop"),
            ci_ms=tuple(d["ciMs"]) if d.get("ciMs") else None,
            flags=[str(f) for f in d.get("flags") or []],
        )


class Runner(Protocol):
    """Anything that can compile and time a batch of candidates on one device.

    Contract: returns one ``CandidateResult`` per candidate, in order; a candidate that fails to
    compile, validate, finish in time or run is a result with ``ok=False`` and an error class, never
    an exception. An exception means the device itself is unusable (browser gone, device lost for
    good), which the farm handles.
    """

    def run_batch(self, batch: Batch) -> list[CandidateResult]: ...


def op_buffers(op: OpSpec, seed: int) -> tuple[BufferSpec, ...]:
    """Buffer layout every template of ``op`` binds: inputs first (bindings 0..), output last,
    all of the op's dtype."""
    specs = []
    dt = op.dtype
    for binding, (name, n) in enumerate(op.input_sizes().items()):
        specs.append(BufferSpec(name, binding, n, "read", "prng", seed=seed, stream=INPUT_STREAMS[name], dtype=dt))
    specs.append(BufferSpec("C", len(specs), op.output_size(), "read_write", "zero", dtype=dt, output=True))
    return tuple(specs)


def make_batch(
    op: OpSpec,
    kernels: Sequence[tuple[str, KernelSource]],
    *,
    seed: int,
    measure: MeasureSpec,
    check_positions: Sequence[int],
) -> Batch:
    return Batch(
        op=op,
        buffers=op_buffers(op, seed),
        candidates=tuple(Candidate(cid, k) for cid, k in kernels),
        measure=measure,
        check_positions=tuple(check_positions),
    )
