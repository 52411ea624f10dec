"""numpy references of the transformer op kinds, for checking a whole block graph (blocks.py).

``reference_op(op, inputs, out)`` computes one op in float64 from its inputs (flat arrays by
binding name) and returns the flat output; ``out`` is the output buffer's current contents, which
a ``heads`` split keeps at the positions it does not write (the KV cache).
"""

from __future__ import annotations

import numpy as np

from .ops import Eltwise, Heads, MatMul, Norm, OpSpec, Softmax
from .reference import activation


def _matmul(op: MatMul, x: dict[str, np.ndarray]) -> np.ndarray:
    a = x["A"].reshape(op.batch, op.M, op.K)
    b = x["B"].reshape(op.batch, op.K, op.N)
    c = a @ b
    if op.bias:
        c = c + x["bias"]
    return activation(op.act, c)


def causal_mask(rows: int, cols: int) -> np.ndarray:
    """True where column c of row r is masked: c > r + (cols - rows)."""
    r = np.arange(rows)[:, None]
    c = np.arange(cols)[None, :]
    return c > r + (cols - rows)


def _softmax(op: Softmax, x: dict[str, np.ndarray]) -> np.ndarray:
    s = x["X"].reshape(op.batch, op.rows, op.cols) * op.scale
    if op.causal:
        s = np.where(causal_mask(op.rows, op.cols), -np.inf, s)
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _norm(op: Norm, x: dict[str, np.ndarray]) -> np.ndarray:
    y = x["X"].reshape(op.rows, op.cols)
    if op.residual:
        y = y + x["R"].reshape(op.rows, op.cols)
    if op.norm == "rmsnorm":
        return y / np.sqrt((y * y).mean(axis=-1, keepdims=True) + op.eps) * x["gamma"]
    mu = y.mean(axis=-1, keepdims=True)
    var = ((y - mu) ** 2).mean(axis=-1, keepdims=True)
    return (y - mu) / np.sqrt(var + op.eps) * x["gamma"] + x["beta"]


def _eltwise(op: Eltwise, x: dict[str, np.ndarray]) -> np.ndarray:
    a = x["A"]
    if op.fn == "add":
        return a + x["B"]
    if op.fn == "mul":
        return a * x["B"]
    if op.fn == "gelu":
        return activation("gelu", a)
    if op.fn == "silu":
        return activation("silu", a)
    return activation("silu", a) * x["B"]


def rotary(t: np.ndarray, first_pos: int, theta: float) -> np.ndarray:
    """Rotate-half RoPE of t[heads, seq, head_dim], token s at position first_pos + s."""
    d = t.shape[-1]
    half = d // 2
    f = theta ** (-2.0 * np.arange(half) / d)
    ang = (first_pos + np.arange(t.shape[1]))[:, None] * f[None, :]
    cos, sin = np.cos(ang), np.sin(ang)
    x1, x2 = t[..., :half], t[..., half:]
    return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)


def _heads(op: Heads, x: dict[str, np.ndarray], out: np.ndarray | None) -> np.ndarray:
    nh, d, s, p = op.heads, op.head_dim, op.seq, op.past
    if op.mode == "merge":
        return x["X"].reshape(nh, s, d).transpose(1, 0, 2)
    cols = x["X"].reshape(s, op.stride)[:, op.col_offset:op.col_offset + op.width]
    t = cols.reshape(s, nh, d).transpose(1, 0, 2)  # [heads, seq, head_dim]
    if op.rotary:
        t = rotary(t, p, op.theta)
    c = np.zeros(op.output_size()) if out is None else np.array(out, dtype=np.float64)
    if op.mode == "split":
        c = c.reshape(nh, p + s, d)
        c[:, p:, :] = t
    else:
        c = c.reshape(nh, d, p + s)
        c[:, :, p:] = t.transpose(0, 2, 1)
    return c


def reference_op(op: OpSpec, inputs: dict[str, np.ndarray], out: np.ndarray | None = None) -> np.ndarray:
    """The op's output (flat, float64) from its inputs by binding name."""
    x = {k: np.asarray(v, dtype=np.float64) for k, v in inputs.items()}
    if isinstance(op, MatMul):
        y = _matmul(op, x)
    elif isinstance(op, Softmax):
        y = _softmax(op, x)
    elif isinstance(op, Norm):
        y = _norm(op, x)
    elif isinstance(op, Eltwise):
        y = _eltwise(op, x)
    elif isinstance(op, Heads):
        y = _heads(op, x, out)
    else:
        raise TypeError(f"no block reference for {type(op).__name__}")
    return np.ascontiguousarray(y).reshape(-1)
