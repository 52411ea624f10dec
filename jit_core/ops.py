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


OpSpec = MatMul


def op_from_dict(d: dict[str, Any]) -> OpSpec:
    """Build an op spec from its dict form (as written by ``to_dict`` or an experiment YAML)."""
    kind = d.get("kind", "matmul")
    if kind == "matmul":
        return MatMul.from_dict(d)
    raise ValueError(f"unknown op kind {kind!r}; known: matmul")
