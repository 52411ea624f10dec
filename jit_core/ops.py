"""Operator specs: frozen, hashable descriptions of one operator instance at one shape.

Kinds: matmul (with batch and a fused bias/activation epilogue), softmax, norm (layernorm,
rmsnorm), eltwise and heads (attention layout). Row-major, contiguous; inputs are bound in
``input_sizes()`` order and the output ``C`` last. Every kind is f32; a matmul may also be f16
(``MATMUL_DTYPES``: its buffers hold IEEE half floats, run where the adapter has ``shader-f16``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Union

DTYPES = ("f32",)
MATMUL_DTYPES = ("f32", "f16")
ACCUMULATORS = ("f32", "f16")
# A matmul's precision by name (keys, labels, bench options): its dtype and accumulation type.
MATMUL_PRECISIONS = {"f32": {"dtype": "f32", "acc": "f32"}, "f16": {"dtype": "f16", "acc": "f32"},
                     "f16acc16": {"dtype": "f16", "acc": "f16"}}
ACTIVATIONS = ("none", "relu", "gelu", "silu")


@dataclass(frozen=True)
class MatMul:
    """C[b, M, N] = act(A[b, M, K] @ B[b, K, N] + bias[N]), row-major, dense.

    The epilogue is optional: ``bias`` adds a per-column vector (shared by the batch items),
    ``act`` applies 'relu', 'gelu' (tanh approximation) or 'silu' elementwise; the defaults are a
    plain matmul. Batched matmuls (``batch`` > 1) are attention's AV product.
    ``dtype`` 'f16' stores A, B, bias and C as half floats; ``acc`` is the precision the caller
    accepts for the sums over K: 'f32' (default; the output's only extra error is its rounding
    to f16) or 'f16' (kernels may accumulate in half precision: faster where f16 math is, and
    checked with a tolerance that grows with K, see ``reference.tolerance``). ``acc`` 'f16'
    needs ``dtype`` 'f16'; it is part of the key ('f16acc16'), since it changes what is correct.
    Contract: immutable and hashable; ``key()`` is a stable string that identifies the op in
    caches, records and result tables (a plain matmul's key has no epilogue part);
    ``to_dict()``/``from_dict()`` round-trip through JSON.
    """

    M: int
    N: int
    K: int
    batch: int = 1
    dtype: str = "f32"
    kind: str = "matmul"
    bias: bool = False
    act: str = "none"
    acc: str = "f32"

    def __post_init__(self) -> None:
        for name in ("M", "N", "K", "batch"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"matmul {name} must be a positive integer, got {value!r}")
        if self.dtype not in MATMUL_DTYPES:
            raise ValueError(f"matmul dtype must be one of {MATMUL_DTYPES}, got {self.dtype!r}")
        if self.acc not in ACCUMULATORS:
            raise ValueError(f"matmul acc must be one of {ACCUMULATORS}, got {self.acc!r}")
        if self.acc == "f16" and self.dtype != "f16":
            raise ValueError("matmul acc 'f16' needs dtype 'f16' (an f32 matmul accumulates in f32)")
        if self.kind != "matmul":
            raise ValueError("MatMul.kind is always 'matmul'")
        if not isinstance(self.bias, bool):
            raise ValueError(f"matmul bias must be true or false, got {self.bias!r}")
        if self.act not in ACTIVATIONS:
            raise ValueError(f"matmul act must be one of {ACTIVATIONS}, got {self.act!r}")

    @property
    def has_epilogue(self) -> bool:
        return self.bias or self.act != "none"

    @property
    def precision(self) -> str:
        """'f32', 'f16' or 'f16acc16': the name of (dtype, acc) in ``MATMUL_PRECISIONS``."""
        return next(n for n, kw in MATMUL_PRECISIONS.items() if kw == {"dtype": self.dtype, "acc": self.acc})

    def key(self) -> str:
        b = f"b{self.batch}_" if self.batch != 1 else ""
        epi = ("_bias" if self.bias else "") + (f"_{self.act}" if self.act != "none" else "")
        return f"matmul_{self.precision}_{b}{self.M}x{self.N}x{self.K}{epi}"

    def shape_str(self) -> str:
        b = f"{self.batch}x" if self.batch != 1 else ""
        return f"{b}{self.M}x{self.N}x{self.K}"

    def flops(self) -> int:
        return 2 * self.batch * self.M * self.N * self.K

    def input_sizes(self) -> dict[str, int]:
        """Number of elements of each input, by binding name."""
        sizes = {"A": self.batch * self.M * self.K, "B": self.batch * self.K * self.N}
        if self.bias:
            sizes["bias"] = self.N
        return sizes

    def output_size(self) -> int:
        return self.batch * self.M * self.N

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if self.acc == "f32":  # the default: f32 ops keep the dict (and JSON) they always had
            del d["acc"]
        return d

    @staticmethod
    def from_dict(d: dict[str, Any]) -> "MatMul":
        d = dict(d)
        kind = d.pop("kind", "matmul")
        if kind != "matmul":
            raise ValueError(f"not a matmul: kind={kind!r}")
        return MatMul(**d)


def _positive_ints(kind: str, obj: Any, names: tuple[str, ...]) -> None:
    for name in names:
        value = getattr(obj, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{kind} {name} must be a positive integer, got {value!r}")


def _float_field(kind: str, obj: Any, name: str, *, positive: bool = False) -> None:
    """Coerce an int (as YAML writes 1 for 1.0) to float and check it is finite (and > 0)."""
    value = getattr(obj, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{kind} {name} must be a finite number, got {value!r}")
    if positive and value <= 0:
        raise ValueError(f"{kind} {name} must be > 0, got {value!r}")
    object.__setattr__(obj, name, float(value))


def _bool_field(kind: str, obj: Any, name: str) -> None:
    if not isinstance(getattr(obj, name), bool):
        raise ValueError(f"{kind} {name} must be true or false, got {getattr(obj, name)!r}")


def _common(kind: str, obj: Any) -> None:
    if obj.dtype not in DTYPES:
        only = " (f16 is offered for matmul only)" if obj.dtype == "f16" else ""
        raise ValueError(f"{kind} dtype must be one of {DTYPES}, got {obj.dtype!r}{only}")
    if obj.kind != kind:
        raise ValueError(f"{type(obj).__name__}.kind is always {kind!r}")


def _num(x: float) -> str:
    """A float for keys: shortest form ('0.125', '1e-06')."""
    return repr(float(x))


def _from_dict(cls: type, kind: str, d: dict[str, Any]) -> Any:
    d = dict(d)
    got = d.pop("kind", kind)
    if got != kind:
        raise ValueError(f"not a {kind}: kind={got!r}")
    names = {f.name for f in fields(cls)} - {"kind"}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ValueError(f"{kind} has no field(s) {unknown}; fields: {sorted(names)}")
    return cls(**d)


@dataclass(frozen=True)
class Softmax:
    """C[b, r, :] = softmax(scale * X[b, r, :]) over the last axis, numerically stable.

    With ``causal``, column c of row r is masked (weight 0, output 0) iff c > r + (cols - rows):
    prefill (rows == cols) is the usual lower-triangular mask, decode (rows = 1) sees every
    column; ``rows <= cols`` is required so every row sees at least one column.
    ``flops()`` counts 5 operations per element (scale, max, exp, sum, divide): the op is memory
    bound, the figure only orders ops by work. Contract as ``MatMul``.
    """

    rows: int
    cols: int
    batch: int = 1
    causal: bool = False
    scale: float = 1.0
    dtype: str = "f32"
    kind: str = "softmax"

    def __post_init__(self) -> None:
        _positive_ints("softmax", self, ("rows", "cols", "batch"))
        _bool_field("softmax", self, "causal")
        _float_field("softmax", self, "scale")
        if self.scale == 0.0:
            raise ValueError("softmax scale must be non-zero")
        _common("softmax", self)
        if self.causal and self.rows > self.cols:
            raise ValueError(f"causal softmax needs rows <= cols (row 0 would see no column), got {self.rows}x{self.cols}")

    def key(self) -> str:
        extra = ("_causal" if self.causal else "") + (f"_s{_num(self.scale)}" if self.scale != 1.0 else "")
        return f"softmax{extra}_{self.dtype}_{self.shape_str()}"

    def shape_str(self) -> str:
        b = f"{self.batch}x" if self.batch != 1 else ""
        return f"{b}{self.rows}x{self.cols}"

    def flops(self) -> int:
        return 5 * self.output_size()

    def input_sizes(self) -> dict[str, int]:
        return {"X": self.output_size()}

    def output_size(self) -> int:
        return self.batch * self.rows * self.cols

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> "Softmax":
        return _from_dict(Softmax, "softmax", d)


NORMS = ("layernorm", "rmsnorm")


@dataclass(frozen=True)
class Norm:
    """Row-wise normalisation of H = X (+ R when ``residual``), both [rows, cols]:
    'layernorm': C = (H - mean) / sqrt(var + eps) * gamma + beta (biased variance);
    'rmsnorm':   C = H / sqrt(mean(H^2) + eps) * gamma (no beta binding).
    Inputs in binding order: X, R (residual only), gamma [cols], beta [cols] (layernorm only).
    ``flops()`` counts 8 operations per element (approximate, memory bound). Contract as ``MatMul``.
    """

    rows: int
    cols: int
    norm: str = "layernorm"
    residual: bool = False
    eps: float = 1e-5
    dtype: str = "f32"
    kind: str = "norm"

    def __post_init__(self) -> None:
        _positive_ints("norm", self, ("rows", "cols"))
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")
        _bool_field("norm", self, "residual")
        _float_field("norm", self, "eps", positive=True)
        _common("norm", self)

    def key(self) -> str:
        extra = ("_res" if self.residual else "") + (f"_eps{_num(self.eps)}" if self.eps != 1e-5 else "")
        return f"{self.norm}{extra}_{self.dtype}_{self.shape_str()}"

    def shape_str(self) -> str:
        return f"{self.rows}x{self.cols}"

    def flops(self) -> int:
        return 8 * self.output_size()

    def input_sizes(self) -> dict[str, int]:
        n = self.rows * self.cols
        sizes = {"X": n}
        if self.residual:
            sizes["R"] = n
        sizes["gamma"] = self.cols
        if self.norm == "layernorm":
            sizes["beta"] = self.cols
        return sizes

    def output_size(self) -> int:
        return self.rows * self.cols

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> "Norm":
        return _from_dict(Norm, "norm", d)


ELTWISE_FNS = ("add", "mul", "gelu", "silu", "silu_mul")
BINARY_FNS = ("add", "mul", "silu_mul")


@dataclass(frozen=True)
class Eltwise:
    """C[i] = fn(A[i] (, B[i])) over ``n`` elements: 'add' A+B, 'mul' A*B, 'gelu' (the tanh form of
    ``MatMul``'s epilogue), 'silu' A*sigmoid(A), 'silu_mul' silu(A)*B (the gated MLP of Llama).
    B is bound only for binary fns. ``flops()`` is one per element (approximate). Contract as
    ``MatMul``."""

    n: int
    fn: str = "add"
    dtype: str = "f32"
    kind: str = "eltwise"

    def __post_init__(self) -> None:
        _positive_ints("eltwise", self, ("n",))
        if self.fn not in ELTWISE_FNS:
            raise ValueError(f"eltwise fn must be one of {ELTWISE_FNS}, got {self.fn!r}")
        _common("eltwise", self)

    @property
    def binary(self) -> bool:
        return self.fn in BINARY_FNS

    def key(self) -> str:
        return f"eltwise_{self.fn}_{self.dtype}_{self.shape_str()}"

    def shape_str(self) -> str:
        return str(self.n)

    def flops(self) -> int:
        return self.n

    def input_sizes(self) -> dict[str, int]:
        return {"A": self.n, "B": self.n} if self.binary else {"A": self.n}

    def output_size(self) -> int:
        return self.n

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> "Eltwise":
        return _from_dict(Eltwise, "eltwise", d)


HEADS_MODES = ("split", "split_t", "merge")


@dataclass(frozen=True)
class Heads:
    """Attention layout changes, with optional rotary position embedding (RoPE).

    'split': X is [seq, row_stride] (row_stride 0 means heads*head_dim) and head h's slice starts
    at column col_offset + h*head_dim; C is [heads, past+seq, head_dim] and token s goes to
    position past+s (positions < past are the KV cache: never written).
    'split_t': the same, C is [heads, head_dim, past+seq] (K transposed for Q @ K^T).
    'merge': X is [heads, seq, head_dim], C is [seq, heads*head_dim] (past 0, no rotary, no
    stride or offset).
    ``rotary`` (split modes, even head_dim): rotate-half RoPE at position p = pos_offset + past + s
    (``pos_offset`` places tokens written without a cache, such as a decode step's query, after
    the cached ones): for
    i < head_dim/2 and f = theta^(-2i/head_dim), (x_i, x_{i+half}) -> (x_i cos(pf) -
    x_{i+half} sin(pf), x_{i+half} cos(pf) + x_i sin(pf)). ``flops()`` counts the elements moved
    (6 per element with rotary). Contract as ``MatMul``.
    """

    seq: int
    heads: int
    head_dim: int
    mode: str = "split"
    row_stride: int = 0
    col_offset: int = 0
    past: int = 0
    rotary: bool = False
    theta: float = 10000.0
    dtype: str = "f32"
    kind: str = "heads"
    pos_offset: int = 0

    def __post_init__(self) -> None:
        _positive_ints("heads", self, ("seq", "heads", "head_dim"))
        if self.mode not in HEADS_MODES:
            raise ValueError(f"heads mode must be one of {HEADS_MODES}, got {self.mode!r}")
        for name in ("row_stride", "col_offset", "past", "pos_offset"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"heads {name} must be an integer >= 0, got {value!r}")
        if self.pos_offset and not self.rotary:
            raise ValueError("heads pos_offset only moves rotary positions: it needs rotary: true")
        _bool_field("heads", self, "rotary")
        _float_field("heads", self, "theta", positive=True)
        _common("heads", self)
        width = self.heads * self.head_dim
        if self.mode == "merge":
            if self.past or self.rotary or self.row_stride or self.col_offset:
                raise ValueError("heads mode 'merge' takes no past, rotary, row_stride or col_offset")
        elif self.col_offset + width > self.stride:
            raise ValueError(f"heads col_offset + heads*head_dim ({self.col_offset + width}) exceeds row_stride ({self.stride})")
        if self.rotary and self.head_dim % 2:
            raise ValueError(f"rotary needs an even head_dim, got {self.head_dim}")

    @property
    def width(self) -> int:
        """heads * head_dim: the elements of one token's heads."""
        return self.heads * self.head_dim

    @property
    def stride(self) -> int:
        """Elements per input row of a split (``row_stride``, or heads*head_dim when 0)."""
        return self.row_stride or self.width

    @property
    def positions(self) -> int:
        """Token positions in a split's output (past + seq)."""
        return self.past + self.seq

    def key(self) -> str:
        extra = ""
        if self.row_stride and self.row_stride != self.heads * self.head_dim:
            extra += f"_rs{self.row_stride}"
        extra += f"_off{self.col_offset}" if self.col_offset else ""
        extra += f"_past{self.past}" if self.past else ""
        if self.rotary:
            extra += "_rope" + (f"{_num(self.theta)}" if self.theta != 10000.0 else "")
            extra += f"_pos{self.pos_offset}" if self.pos_offset else ""
        return f"heads_{self.mode}{extra}_{self.dtype}_{self.shape_str()}"

    def shape_str(self) -> str:
        return f"{self.seq}x{self.heads}x{self.head_dim}"

    def flops(self) -> int:
        n = self.seq * self.heads * self.head_dim
        return 6 * n if self.rotary else n

    def input_sizes(self) -> dict[str, int]:
        if self.mode == "merge":
            return {"X": self.heads * self.seq * self.head_dim}
        return {"X": self.seq * self.stride}

    def output_size(self) -> int:
        if self.mode == "merge":
            return self.seq * self.heads * self.head_dim
        return self.heads * self.positions * self.head_dim

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> "Heads":
        return _from_dict(Heads, "heads", d)


# Keys of these kinds end with "_<dtype>_<shape_str>" (options before the dtype), so analysis can
# split the shape off the last "_".
OpSpec = Union[MatMul, Softmax, Norm, Eltwise, Heads]
OP_KINDS: dict[str, type] = {"matmul": MatMul, "softmax": Softmax, "norm": Norm, "eltwise": Eltwise, "heads": Heads}


def op_from_dict(d: dict[str, Any]) -> OpSpec:
    """Build an op spec from its dict form (as written by ``to_dict`` or an experiment YAML),
    dispatching on ``kind`` (default 'matmul'). ValueError names the kind or field at fault."""
    kind = d.get("kind", "matmul")
    cls = OP_KINDS.get(kind)
    if cls is None:
        raise ValueError(f"unknown op kind {kind!r}; known: {', '.join(OP_KINDS)}")
    try:
        return cls.from_dict(d)
    except TypeError as e:  # a missing required field
        raise ValueError(f"{kind}: {e}") from None
