"""Deterministic inputs and reference checks.

The PRNG is counter based, so element ``i`` of stream ``s`` under ``seed`` is the same value in
numpy here and in the browser (``farm/harness/static/prng.js`` implements the same function):

    x = (i * 0x9E3779B1 + stream * 0x85EBCA77 + seed * 0xC2B2AE3D + 0x27D4EB2F) mod 2^32
    x = fmix32(x)                                   # murmur3's finalizer
    value = (x >> 8) * 2^-23 - 1                    # exactly representable in f32, in [-1, 1)

No floating-point step rounds, so both sides produce bit-identical float32 arrays. An f16
buffer holds the same f32 values rounded to the nearest half float, ties to even (numpy's
``astype(float16)``; ``f32ToF16Bits`` in prng.js; overflow to infinity, subnormals kept), so
the three sides (numpy, page, native driver) hold the same 16-bit patterns.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .ops import Eltwise, Heads, MatMul, Norm, OpSpec, Softmax

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


def prng_buffer(seed: int, stream: int, n: int, *, scale: float = 1.0, shift: float = 0.0,
                dtype: str = "f32") -> np.ndarray:
    """A 'prng' buffer's contents: ``shift + scale * prng`` computed in double, stored as f32 (the
    harness computes the same in JavaScript numbers, so both sides hold the same bits); with
    ``dtype`` 'f16' those f32 values rounded to float16 (ties to even), as a float16 array."""
    x = prng_f32(seed, stream, n)
    if scale != 1.0 or shift != 0.0:
        x = (shift + scale * x.astype(np.float64)).astype(np.float32)
    if dtype == "f16":
        return _to_f16(x)
    if dtype != "f32":
        raise ValueError(f"buffer dtype must be 'f32' or 'f16', got {dtype!r}")
    return x


def _to_f16(x: np.ndarray) -> np.ndarray:
    """float32 values rounded to float16: nearest, ties to even, overflow to infinity."""
    with np.errstate(over="ignore"):  # overflow to infinity is the rounding's rule
        return np.asarray(x, dtype=np.float32).astype(np.float16)


def round_f16(x: np.ndarray) -> np.ndarray:
    """``x`` rounded to float16 (nearest, ties to even) and widened back to float32: the values
    an f16 buffer holds."""
    return _to_f16(x).astype(np.float32)


# Streams of each input of an op, by binding name; the harness uses the same numbers.
INPUT_STREAMS = {"A": 0, "B": 1, "bias": 2, "X": 3, "R": 4, "gamma": 5, "beta": 6}


def op_inputs(op: OpSpec, seed: int) -> dict[str, np.ndarray]:
    """The op's inputs as flat float32 arrays, by binding name; an f16 op's are rounded to f16
    (the values its buffers hold on the device)."""
    ins = {name: prng_f32(seed, INPUT_STREAMS[name], n) for name, n in op.input_sizes().items()}
    if op.dtype == "f16":
        ins = {name: round_f16(x) for name, x in ins.items()}
    return ins


def output_grid(op: OpSpec) -> tuple[int, int, int]:
    """The output as (items, rows, cols), row-major: where the edges of tiles and rows lie."""
    if isinstance(op, MatMul):
        return op.batch, op.M, op.N
    if isinstance(op, Softmax):
        return op.batch, op.rows, op.cols
    if isinstance(op, Norm):
        return 1, op.rows, op.cols
    if isinstance(op, Eltwise):
        return 1, 1, op.n
    if isinstance(op, Heads):
        if op.mode == "merge":
            return 1, op.seq, op.heads * op.head_dim
        if op.mode == "split":
            return op.heads, op.positions, op.head_dim
        return op.heads, op.head_dim, op.positions
    raise TypeError(f"no output layout for {type(op).__name__}")


def check_positions(op: OpSpec, count: int = 64, seed: int = 0) -> list[int]:
    """Output positions to verify: the four corners and centre of every item of the output grid
    (``output_grid``), its last row and column (where edge tiles live), the last 8 elements
    (vector and per-thread tails), and ``count`` positions spread pseudo-randomly over the
    output. ``count <= 0`` means every position."""
    total = op.output_size()
    if count <= 0 or count >= total:
        return list(range(total))
    items, M, N = output_grid(op)
    pos: set[int] = set(range(max(0, total - 8), total))
    for b in range(items):
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
    """Reference outputs (float64) at ``positions`` of ``op`` on its prng inputs under ``seed``
    (the output buffer starting at zero), computed only for the rows the positions touch so
    large shapes stay cheap."""
    if not isinstance(op, (MatMul, Softmax, Norm, Eltwise, Heads)):
        raise TypeError(f"no reference for {type(op).__name__}")
    return _expected_values(op, seed, tuple(int(p) for p in positions)).copy()


# The tuner checks every candidate of a tune against the same (op, seed, positions): without the
# cache a 1x768x3072 check regenerates 2.4M inputs each time (0.13 s per candidate).
@functools.lru_cache(maxsize=8)
def _expected_values(op: OpSpec, seed: int, positions: tuple[int, ...]) -> np.ndarray:
    ins = op_inputs(op, seed)
    p = np.asarray(positions, dtype=np.int64)
    if isinstance(op, MatMul):
        a = ins["A"].reshape(op.batch, op.M, op.K).astype(np.float64)
        b = ins["B"].reshape(op.batch, op.K, op.N).astype(np.float64)
        bi, rem = np.divmod(p, op.M * op.N)
        ri, ci = np.divmod(rem, op.N)
        out = np.einsum("pk,pk->p", a[bi, ri, :], b[bi, :, ci].reshape(len(p), op.K))
        if op.bias:
            out = out + ins["bias"].astype(np.float64)[ci]
        return activation(op.act, out)
    if isinstance(op, (Softmax, Norm)):  # row-wise: only the rows that hold a checked position
        cols = op.cols
        rows, ri = np.unique(p // cols, return_inverse=True)
        if isinstance(op, Softmax):
            x = ins["X"].reshape(-1, cols)[rows]
            out = softmax_rows(x, rows % op.rows, op.rows, causal=op.causal, scale=op.scale)
        else:
            sub = {k: (v.reshape(-1, cols)[rows] if k in ("X", "R") else v) for k, v in ins.items()}
            out = reference_norm(op, sub["X"], sub.get("R"), sub["gamma"], sub.get("beta"))
        return out[ri, p % cols]
    return reference(op, ins)[p]


def softmax_rows(x: np.ndarray, row_index: np.ndarray, rows: int, *, causal: bool, scale: float) -> np.ndarray:
    """Softmax of each row of ``x`` (float64), row ``i`` being row ``row_index[i]`` of a
    ``rows``-row matrix (what the causal mask depends on)."""
    z = scale * x.astype(np.float64)
    cols = z.shape[-1]
    if causal:
        visible = np.arange(cols)[None, :] <= (np.asarray(row_index)[:, None] + (cols - rows))
        z = np.where(visible, z, -np.inf)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def reference_matmul(op: MatMul, a: np.ndarray, b: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """``op`` on flat inputs, as a flat float64 array [batch*M*N]."""
    a3 = np.asarray(a, dtype=np.float64).reshape(op.batch, op.M, op.K)
    b3 = np.asarray(b, dtype=np.float64).reshape(op.batch, op.K, op.N)
    out = a3 @ b3
    if op.bias:
        out = out + np.asarray(bias, dtype=np.float64)
    return activation(op.act, out).reshape(-1)


def reference_softmax(op: Softmax, x: np.ndarray) -> np.ndarray:
    """``op`` on a flat X, as a flat float64 array."""
    rows = np.tile(np.arange(op.rows), op.batch)
    return softmax_rows(np.asarray(x).reshape(-1, op.cols), rows, op.rows, causal=op.causal, scale=op.scale).reshape(-1)


def reference_norm(op: Norm, x: np.ndarray, r: np.ndarray | None, gamma: np.ndarray,
                   beta: np.ndarray | None = None) -> np.ndarray:
    """``op`` on X (and R) given flat or as [rows, cols]; returns float64 of X's shape as [n, cols]
    (flat input: [rows, cols])."""
    h = np.asarray(x, dtype=np.float64).reshape(-1, op.cols)
    if op.residual:
        h = h + np.asarray(r, dtype=np.float64).reshape(-1, op.cols)
    g = np.asarray(gamma, dtype=np.float64)
    if op.norm == "rmsnorm":
        return h / np.sqrt((h * h).mean(axis=-1, keepdims=True) + op.eps) * g
    mean = h.mean(axis=-1, keepdims=True)
    var = ((h - mean) ** 2).mean(axis=-1, keepdims=True)
    return (h - mean) / np.sqrt(var + op.eps) * g + np.asarray(beta, dtype=np.float64)


def reference_eltwise(op: Eltwise, a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """``op`` on flat inputs, as a flat float64 array."""
    a = np.asarray(a, dtype=np.float64)
    if op.fn == "add":
        return a + np.asarray(b, dtype=np.float64)
    if op.fn == "mul":
        return a * np.asarray(b, dtype=np.float64)
    if op.fn == "silu_mul":
        return activation("silu", a) * np.asarray(b, dtype=np.float64)
    return activation(op.fn, a)


def rotary_angles(op: Heads) -> np.ndarray:
    """[past+seq, head_dim/2] angles p * theta^(-2i/head_dim) of output positions 0.., float64,
    where output position j is rotary position pos_offset + j."""
    half = op.head_dim // 2
    freq = op.theta ** (-2.0 * np.arange(half) / op.head_dim)
    return (op.pos_offset + np.arange(op.positions, dtype=np.float64))[:, None] * freq[None, :]


def reference_heads(op: Heads, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``op`` on a flat X, as a flat float64 array. ``out`` is C before the op (the KV cache a
    split writes after; zeros when None); it is not modified."""
    xd = np.asarray(x, dtype=np.float64)
    if op.mode == "merge":
        return xd.reshape(op.heads, op.seq, op.head_dim).transpose(1, 0, 2).reshape(-1)
    w = op.heads * op.head_dim
    t = xd.reshape(op.seq, op.stride)[:, op.col_offset:op.col_offset + w].reshape(op.seq, op.heads, op.head_dim)
    if op.rotary:
        half = op.head_dim // 2
        ang = rotary_angles(op)[op.past:][:, None, :]
        cos, sin = np.cos(ang), np.sin(ang)
        lo, hi = t[..., :half], t[..., half:]
        t = np.concatenate([lo * cos - hi * sin, hi * cos + lo * sin], axis=-1)
    c = np.zeros((op.heads, op.positions, op.head_dim)) if out is None else \
        np.array(out, dtype=np.float64).reshape(op.heads, op.positions, op.head_dim).copy()
    if op.mode == "split_t":
        c = c.reshape(op.heads, op.head_dim, op.positions)
        c[:, :, op.past:] = t.transpose(1, 2, 0)
    else:
        c[:, op.past:, :] = t.transpose(1, 0, 2)
    return c.reshape(-1)


def reference(op: OpSpec, inputs: dict[str, np.ndarray], out: np.ndarray | None = None) -> np.ndarray:
    """The whole output of ``op`` (flat float64) from its inputs by binding name; ``out`` is the
    output buffer's prior content where the op leaves some of it (a split's KV cache)."""
    if isinstance(op, MatMul):
        return reference_matmul(op, inputs["A"], inputs["B"], inputs.get("bias"))
    if isinstance(op, Softmax):
        return reference_softmax(op, inputs["X"])
    if isinstance(op, Norm):
        return reference_norm(op, inputs["X"], inputs.get("R"), inputs["gamma"], inputs.get("beta")).reshape(-1)
    if isinstance(op, Eltwise):
        return reference_eltwise(op, inputs["A"], inputs.get("B"))
    if isinstance(op, Heads):
        return reference_heads(op, inputs["X"], out)
    raise TypeError(f"no reference for {type(op).__name__}")


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


F16_UNIT_ROUNDOFF = 2.0**-11  # half an ulp of 1.0 in IEEE half precision


def tolerance(op: OpSpec) -> tuple[float, float]:
    """(atol, rtol) for an f32 result on inputs in [-1, 1): matmul accumulates K products; a
    softmax row sums ``cols`` terms into outputs of about 1/cols (relative error only); a norm
    row sums ``cols`` terms into outputs of about 1; rotary's angle p * f carries f32 rounding that grows
    with the position (and WGSL's sin/cos are only accurate to ~2^-11 after range reduction on
    some GPUs).

    An f16 matmul is compared with the float64 product of its f16-rounded inputs. With f32
    accumulation (``acc`` 'f32') the only extra error is the output's rounding to f16, at most
    u = 2^-11 relative: rtol grows by u. With f16 accumulation every one of the K additions
    rounds to f16: partial sums of K products of values in [-1, 1) grow like sqrt(k)/3, so the
    error is a random walk whose rms is about 0.1 u K (numpy simulation of serial f16
    accumulation on these PRNG inputs: rms 0.10-0.12 u K, max over 2000 sums 0.58-0.91 u K, for
    K from 9 to 11008); atol is 1.5 u K (beyond 12 rms), rtol 4 u covers the output's rounding and
    an epilogue (bias add, activation) evaluated in f16. Such an atol hides a wrong single term
    at large K (one product is below 1) but not a wrong tile, row or column (errors of order
    |C| ~ sqrt(K)/3)."""
    if isinstance(op, MatMul):
        if op.dtype == "f16" and op.acc == "f16":
            return 1.5 * F16_UNIT_ROUNDOFF * op.K + 1e-3, 4 * F16_UNIT_ROUNDOFF
        if op.dtype == "f16":
            return 1e-5 * op.K + 1e-4, 1e-3 + F16_UNIT_ROUNDOFF
        return 1e-5 * op.K + 1e-4, 1e-3
    if isinstance(op, Softmax):  # outputs scale as 1/cols: the relative error is what matters
        return 1e-6, 2e-3
    if isinstance(op, Norm):
        return 1e-4 + 2e-7 * op.cols, 1e-3
    if isinstance(op, Heads) and op.rotary:
        return 1e-3 + 2e-7 * op.positions, 1e-3
    return 1.1e-4, 1e-3


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
