"""Deterministic inputs and reference checks.

The PRNG is counter based, so element ``i`` of stream ``s`` under ``seed`` is the same value in
numpy here and in the browser (``farm/harness/static/prng.js`` implements the same function):

    x = (i * 0x9E3779B1 + stream * 0x85EBCA77 + seed * 0xC2B2AE3D + 0x27D4EB2F) mod 2^32
    x = fmix32(x)                                   # murmur3's finalizer
    value = (x >> 8) * 2^-23 - 1                    # exactly representable in f32, in [-1, 1)

No floating-point step rounds, so both sides produce bit-identical float32 arrays.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .ops import MatMul, OpSpec

_M32 = np.uint64(0xFFFFFFFF)


def _mul32(a: np.ndarray, b: int) -> np.ndarray:
    return (a.astype(np.uint64) * np.uint64(b)) & _M32


def hash32(seed: int, stream: int, index: np.ndarray) -> np.ndarray:
    """fmix32 of the mixed counter; returns uint32 values."""
    i = index.astype(np.uint64) & _M32
    base = (stream * 0x85EBCA77 + seed * 0xC2B2AE3D + 0x27D4EB2F) & 0xFFFFFFFF
    x = (_mul32(i, 0x9E3779B1) + np.uint64(base)) & _M32
    x ^= x >> np.uint64(16)
    x = _mul32(x, 0x85EBCA6B)
    x ^= x >> np.uint64(13)
    x = _mul32(x, 0xC2B2AE35)
    x ^= x >> np.uint64(16)
    return x.astype(np.uint32)


def prng_f32(seed: int, stream: int, n: int, offset: int = 0) -> np.ndarray:
    """``n`` float32 values in [-1, 1), identical to ``prngF32(seed, stream, n)`` in the harness."""
    idx = np.arange(offset, offset + n, dtype=np.uint64)
    h = hash32(seed, stream, idx)
    return ((h >> np.uint32(8)).astype(np.float64) * 2.0**-23 - 1.0).astype(np.float32)


def prng_buffer(seed: int, stream: int, n: int, *, scale: float = 1.0, shift: float = 0.0) -> np.ndarray:
    """A 'prng' buffer's contents: ``shift + scale * prng`` computed in double, stored as f32 (the
    harness computes the same in JavaScript numbers, so both sides hold the same bits)."""
    x = prng_f32(seed, stream, n)
    if scale == 1.0 and shift == 0.0:
        return x
    return (shift + scale * x.astype(np.float64)).astype(np.float32)


# Streams of each input of an op; the harness uses the same numbers.
INPUT_STREAMS = {"A": 0, "B": 1, "bias": 2}


def op_inputs(op: OpSpec, seed: int) -> dict[str, np.ndarray]:
    """The op's inputs as flat float32 arrays, by binding name."""
    return {name: prng_f32(seed, INPUT_STREAMS[name], n) for name, n in op.input_sizes().items()}


def check_positions(op: OpSpec, count: int = 64, seed: int = 0) -> list[int]:
    """Output positions to verify: the four corners of every batch item, the last row and column
    (where edge tiles live), and ``count`` positions spread pseudo-randomly over the output.
    ``count <= 0`` means every position."""
    if not isinstance(op, MatMul):
        raise TypeError(f"no check positions for {type(op).__name__}")
    total = op.output_size()
    if count <= 0 or count >= total:
        return list(range(total))
    M, N = op.M, op.N
    pos: set[int] = set()
    for b in range(op.batch):
        base = b * M * N
        for r, c in ((0, 0), (0, N - 1), (M - 1, 0), (M - 1, N - 1), (M // 2, N // 2)):
            pos.add(base + r * N + c)
        for c in np.linspace(0, N - 1, num=min(N, 8), dtype=np.int64):
            pos.add(base + (M - 1) * N + int(c))
        for r in np.linspace(0, M - 1, num=min(M, 8), dtype=np.int64):
            pos.add(base + int(r) * N + N - 1)
    h = hash32(seed, 7, np.arange(count, dtype=np.uint64)).astype(np.int64) % total
    pos.update(int(p) for p in h)
    return sorted(pos)


def expected_values(op: OpSpec, seed: int, positions: list[int]) -> np.ndarray:
    """Reference outputs (float64) at ``positions``, computed row by row so large shapes stay cheap."""
    if not isinstance(op, MatMul):
        raise TypeError(f"no reference for {type(op).__name__}")
    return _expected_values(op, seed, tuple(int(p) for p in positions)).copy()


# The tuner checks every candidate of a tune against the same (op, seed, positions): without the
# cache a 1x768x3072 check regenerates 2.4M inputs each time (0.13 s per candidate).
@functools.lru_cache(maxsize=8)
def _expected_values(op: OpSpec, seed: int, positions: tuple[int, ...]) -> np.ndarray:
    ins = op_inputs(op, seed)
    a = ins["A"].reshape(op.batch, op.M, op.K).astype(np.float64)
    b = ins["B"].reshape(op.batch, op.K, op.N).astype(np.float64)
    p = np.asarray(positions, dtype=np.int64)
    bi, rem = np.divmod(p, op.M * op.N)
    ri, ci = np.divmod(rem, op.N)
    out = np.einsum("pk,pk->p", a[bi, ri, :], b[bi, :, ci].reshape(len(p), op.K))
    if op.bias:
        out = out + ins["bias"].astype(np.float64)[ci]
    return activation(op.act, out)


GELU_C = 0.7978845608028654  # sqrt(2 / pi)


def activation(act: str, x: np.ndarray) -> np.ndarray:
    """The epilogue activations of ``MatMul.act``; GELU is the tanh approximation templates emit."""
    if act == "none":
        return x
    if act == "relu":
        return np.maximum(x, 0.0)
    if act == "gelu":
        return 0.5 * x * (1.0 + np.tanh(GELU_C * (x + 0.044715 * x**3)))
    if act == "silu":
        return x / (1.0 + np.exp(-x))
    raise ValueError(f"unknown activation {act!r}")


@dataclass(frozen=True)
class CheckResult:
    """Outcome of comparing device outputs with the reference at the checked positions."""

    ok: bool
    max_abs_err: float
    max_rel_err: float
    n_checked: int
    message: str = ""


def tolerance(op: OpSpec) -> tuple[float, float]:
    """(atol, rtol) for an f32 result accumulated over K products of values in [-1, 1)."""
    k = op.K if isinstance(op, MatMul) else 1
    return 1e-5 * k + 1e-4, 1e-3


def check_outputs(op: OpSpec, seed: int, positions: list[int], values: list[float] | None) -> CheckResult:
    """Compare device ``values`` at ``positions`` with the reference."""
    if values is None or len(values) != len(positions):
        got = "none" if values is None else str(len(values))
        return CheckResult(False, float("inf"), float("inf"), 0, f"expected {len(positions)} values, got {got}")
    got_arr = np.asarray(values, dtype=np.float64)
    exp = expected_values(op, seed, positions)
    if not np.all(np.isfinite(got_arr)):
        return CheckResult(False, float("inf"), float("inf"), len(positions), "non-finite output")
    err = np.abs(got_arr - exp)
    rel = err / np.maximum(np.abs(exp), 1e-6)
    atol, rtol = tolerance(op)
    bad = err > atol + rtol * np.abs(exp)
    msg = ""
    if bad.any():
        i = int(np.argmax(bad))
        msg = f"{int(bad.sum())} of {len(positions)} wrong; e.g. position {positions[i]}: got {got_arr[i]:.6g}, expected {exp[i]:.6g}"
    return CheckResult(not bad.any(), float(err.max()), float(rel.max()), len(positions), msg)
