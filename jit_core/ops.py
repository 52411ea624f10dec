"""Operator specs: frozen, hashable descriptions of one operator instance at one shape."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

DTYPES = ("f32",)
ACTIVATIONS = ("none", "relu", "gelu", "silu")


@dataclass(frozen=True)
class MatMul:
    """C[b, M, N] = act(A[b, M, K] @ B[b, K, N] + bias[N]), row-major, dense.

    The epilogue is optional: ``bias`` adds a per-column vector (shared by the batch items),
    ``act`` applies 'relu', 'gelu' (tanh approximation) or 'silu' elementwise; the defaults are a
    plain matmul. Batched matmuls (``batch`` > 1) are attention's AV product.
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

    def __post_init__(self) -> None:
        for name in ("M", "N", "K", "batch"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"matmul {name} must be a positive integer, got {value!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"matmul dtype must be one of {DTYPES}, got {self.dtype!r}")
        if self.kind != "matmul":
            raise ValueError("MatMul.kind is always 'matmul'")
        if not isinstance(self.bias, bool):
            raise ValueError(f"matmul bias must be true or false, got {self.bias!r}")
        if self.act not in ACTIVATIONS:
            raise ValueError(f"matmul act must be one of {ACTIVATIONS}, got {self.act!r}")

    @property
    def has_epilogue(self) -> bool:
        return self.bias or self.act != "none"

    def key(self) -> str:
        b = f"b{self.batch}_" if self.batch != 1 else ""
        epi = ("_bias" if self.bias else "") + (f"_{self.act}" if self.act != "none" else "")
        return f"matmul_{self.dtype}_{b}{self.M}x{self.N}x{self.K}{epi}"

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
        return asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> "MatMul":
        d = dict(d)
        kind = d.pop("kind", "matmul")
        if kind != "matmul":
            raise ValueError(f"not a matmul: kind={kind!r}")
        return MatMul(**d)


# --- Transformer op kinds besides matmul (softmax, norm, eltwise, heads); see each docstring. ---

NORMS = ("layernorm", "rmsnorm")
ELTWISE_FNS = ("add", "mul", "gelu", "silu", "silu_mul")
HEADS_MODES = ("split", "split_t", "merge")


def _positive(kind: str, obj: Any, names: tuple[str, ...]) -> None:
    for name in names:
        value = getattr(obj, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{kind} {name} must be a positive integer, got {value!r}")


def _num(x: float) -> str:
    return f"{x:g}".replace("-", "m").replace(".", "p")


def _from_dict(cls: type, kind: str, d: dict[str, Any]) -> Any:
    d = dict(d)
    got = d.pop("kind", kind)
    if got != kind:
        raise ValueError(f"not a {kind}: kind={got!r}")
    return cls(**d)


@dataclass(frozen=True)
class Softmax:
    """C[b, r, :] = softmax(scale * X[b, r, :]) over the last axis. With ``causal``, column c of row r
    gets weight 0 iff c > r + (cols - rows): prefill (rows == cols) is the usual causal mask and a
    decode row (rows == 1) sees every column. ``flops()`` counts about 5 operations per element."""

    rows: int
    cols: int
    batch: int = 1
    causal: bool = False
    scale: float = 1.0
    kind: str = "softmax"

    def __post_init__(self) -> None:
        _positive("softmax", self, ("rows", "cols", "batch"))
        if not isinstance(self.causal, bool):
            raise ValueError(f"softmax causal must be true or false, got {self.causal!r}")
        if not isinstance(self.scale, (int, float)) or isinstance(self.scale, bool) or not self.scale > 0:
            raise ValueError(f"softmax scale must be a positive number, got {self.scale!r}")
        if self.kind != "softmax":
            raise ValueError("Softmax.kind is always 'softmax'")

    def key(self) -> str:
        b = f"b{self.batch}_" if self.batch != 1 else ""
        extra = ("_causal" if self.causal else "") + (f"_s{_num(self.scale)}" if self.scale != 1.0 else "")
        return f"softmax_f32_{b}{self.rows}x{self.cols}{extra}"

    def shape_str(self) -> str:
        return (f"{self.batch}x" if self.batch != 1 else "") + f"{self.rows}x{self.cols}"

    def flops(self) -> int:
        return 5 * self.batch * self.rows * self.cols

    def input_sizes(self) -> dict[str, int]:
        return {"X": self.batch * self.rows * self.cols}

    def output_size(self) -> int:
        return self.batch * self.rows * self.cols

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> "Softmax":
        return _from_dict(Softmax, "softmax", d)


@dataclass(frozen=True)
class Norm:
    """Row-wise normalisation of X[rows, cols] (+ R when ``residual``): 'layernorm' gives
    (Y - mean) / sqrt(var + eps) * gamma + beta, 'rmsnorm' Y / sqrt(mean(Y^2) + eps) * gamma, with
    Y = X (+ R). ``flops()`` counts about 8 operations per element."""

    rows: int
    cols: int
    norm: str = "layernorm"
    residual: bool = False
    eps: float = 1e-5
    kind: str = "norm"

    def __post_init__(self) -> None:
        _positive("norm", self, ("rows", "cols"))
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")
        if not isinstance(self.residual, bool):
            raise ValueError(f"norm residual must be true or false, got {self.residual!r}")
        if not isinstance(self.eps, (int, float)) or isinstance(self.eps, bool) or not self.eps > 0:
            raise ValueError(f"norm eps must be a positive number, got {self.eps!r}")
        if self.kind != "norm":
            raise ValueError("Norm.kind is always 'norm'")

    def key(self) -> str:
        res = "_res" if self.residual else ""
        eps = f"_eps{_num(self.eps)}" if self.eps != 1e-5 else ""
        return f"{self.norm}_f32_{self.rows}x{self.cols}{res}{eps}"

    def shape_str(self) -> str:
        return f"{self.rows}x{self.cols}"

    def flops(self) -> int:
        return 8 * self.rows * self.cols

    def input_sizes(self) -> dict[str, int]:
        sizes = {"X": self.rows * self.cols}
        if self.residual:
            sizes["R"] = self.rows * self.cols
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


@dataclass(frozen=True)
class Eltwise:
    """C[n] = A + B, A * B, gelu(A) (tanh approximation, as MatMul's epilogue), silu(A) or
    silu(A) * B ('silu_mul', Llama's gated MLP). ``flops()`` counts one operation per element."""

    n: int
    fn: str = "add"
    kind: str = "eltwise"

    def __post_init__(self) -> None:
        _positive("eltwise", self, ("n",))
        if self.fn not in ELTWISE_FNS:
            raise ValueError(f"eltwise fn must be one of {ELTWISE_FNS}, got {self.fn!r}")
        if self.kind != "eltwise":
            raise ValueError("Eltwise.kind is always 'eltwise'")

    @property
    def binary(self) -> bool:
        return self.fn in ("add", "mul", "silu_mul")

    def key(self) -> str:
        return f"eltwise_f32_{self.fn}_{self.n}"

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


@dataclass(frozen=True)
class Heads:
    """Attention layout changes. 'split': X[seq, row_stride] columns col_offset.. of each row ->
    C[heads, past+seq, head_dim] (token s at position past+s; positions < past, the KV cache, are
    left as they are); 'split_t': the same into C[heads, head_dim, past+seq] (K transposed);
    'merge': X[heads, seq, head_dim] -> C[seq, heads*head_dim]. ``rotary`` (split modes) applies
    rotate-half RoPE at position past+s with frequencies theta^(-2i/head_dim). ``row_stride`` 0
    means heads*head_dim. ``flops()`` counts the elements moved."""

    seq: int
    heads: int
    head_dim: int
    mode: str = "split"
    row_stride: int = 0
    col_offset: int = 0
    past: int = 0
    rotary: bool = False
    theta: float = 10000.0
    kind: str = "heads"

    def __post_init__(self) -> None:
        _positive("heads", self, ("seq", "heads", "head_dim"))
        if self.mode not in HEADS_MODES:
            raise ValueError(f"heads mode must be one of {HEADS_MODES}, got {self.mode!r}")
        for name in ("row_stride", "col_offset", "past"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"heads {name} must be a non-negative integer, got {value!r}")
        if not isinstance(self.rotary, bool):
            raise ValueError(f"heads rotary must be true or false, got {self.rotary!r}")
        if self.mode == "merge" and (self.past or self.rotary or self.row_stride or self.col_offset):
            raise ValueError("heads merge takes no past, rotary, row_stride or col_offset")
        if self.col_offset + self.width > self.stride:
            raise ValueError(f"heads col_offset {self.col_offset} + heads*head_dim {self.width} exceeds "
                             f"row_stride {self.stride}")
        if self.rotary and self.head_dim % 2:
            raise ValueError(f"heads rotary needs an even head_dim, got {self.head_dim}")
        if not isinstance(self.theta, (int, float)) or isinstance(self.theta, bool) or not self.theta > 0:
            raise ValueError(f"heads theta must be a positive number, got {self.theta!r}")
        if self.kind != "heads":
            raise ValueError("Heads.kind is always 'heads'")

    @property
    def width(self) -> int:
        return self.heads * self.head_dim

    @property
    def stride(self) -> int:
        return self.row_stride or self.width

    def key(self) -> str:
        extra = ""
        if self.mode != "merge":
            extra = f"_rs{self.stride}_o{self.col_offset}" + (f"_p{self.past}" if self.past else "")
            extra += f"_rope{_num(self.theta)}" if self.rotary else ""
        return f"heads_{self.mode}_f32_{self.seq}x{self.heads}x{self.head_dim}{extra}"

    def shape_str(self) -> str:
        return f"{self.seq}x{self.heads}x{self.head_dim}"

    def flops(self) -> int:
        return self.seq * self.width

    def input_sizes(self) -> dict[str, int]:
        if self.mode == "merge":
            return {"X": self.heads * self.seq * self.head_dim}
        return {"X": self.seq * self.stride}

    def output_size(self) -> int:
        return self.heads * (self.past + self.seq) * self.head_dim

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> "Heads":
        return _from_dict(Heads, "heads", d)


_KINDS: dict[str, Any] = {"softmax": Softmax, "norm": Norm, "eltwise": Eltwise, "heads": Heads}


OpSpec = MatMul | Softmax | Norm | Eltwise | Heads


def op_from_dict(d: dict[str, Any]) -> OpSpec:
    """Build an op spec from its dict form (as written by ``to_dict`` or an experiment YAML)."""
    kind = d.get("kind", "matmul")
    if kind == "matmul":
        return MatMul.from_dict(d)
    if kind in _KINDS:
        return _KINDS[kind].from_dict(d)
    raise ValueError(f"unknown op kind {kind!r}; known: matmul, {', '.join(_KINDS)}")
