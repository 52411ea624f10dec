"""Kernel templates: one module per op x backend, looked up by name.

A template turns (op, device caps) into a ``Space`` of configs and renders a config into a
``KernelSource``. Register a new one by adding it to ``TEMPLATES``.
"""

from __future__ import annotations

from typing import Protocol, Sequence

from ..caps import DeviceCaps
from ..ops import OpSpec
from ..protocol import KernelSource
from ..space import Config, Param, Space
from .eltwise_wgsl import EltwiseWGSL
from .heads_wgsl import HeadsWGSL
from .matmul_gemv_wgsl import MatmulGemvWGSL
from .matmul_vec4_wgsl import MatmulVec4WGSL
from .matmul_wasm_simd import MatmulWasmSimd
from .matmul_wgsl import MatmulWGSL
from .norm_wgsl import NormWGSL
from .softmax_wgsl import SoftmaxWGSL


class Template(Protocol):
    """What the tuner needs from a template. Contract: ``space(op, caps)`` holds only configs that
    ``render`` turns into a kernel that is correct for ``op`` and within ``caps``' limits;
    ``render`` is pure and fast (well under a millisecond); ``version`` changes whenever the
    generated code changes (it is part of every cache key)."""

    name: str
    version: str
    backend: str
    op_kind: str

    def params(self) -> Sequence[Param]: ...

    def space(self, op: OpSpec, caps: DeviceCaps) -> Space: ...

    def render(self, op: OpSpec, config: Config) -> KernelSource: ...


TEMPLATES: dict[str, type] = {
    MatmulWGSL.name: MatmulWGSL,
    MatmulVec4WGSL.name: MatmulVec4WGSL,
    MatmulGemvWGSL.name: MatmulGemvWGSL,
    MatmulWasmSimd.name: MatmulWasmSimd,
    SoftmaxWGSL.name: SoftmaxWGSL,
    NormWGSL.name: NormWGSL,
    EltwiseWGSL.name: EltwiseWGSL,
    HeadsWGSL.name: HeadsWGSL,
}

# The template an op of each kind is tuned with unless the experiment names another of that kind.
DEFAULT_TEMPLATES: dict[str, str] = {
    "matmul": "matmul-wgsl",
    "softmax": "softmax-wgsl",
    "norm": "norm-wgsl",
    "eltwise": "eltwise-wgsl",
    "heads": "heads-wgsl",
}


def get_template(name: str) -> Template:
    """A fresh instance of the template registered as ``name``; ValueError lists the known ones."""
    try:
        return TEMPLATES[name]()
    except KeyError:
        raise ValueError(f"unknown template {name!r}; known: {sorted(TEMPLATES)}") from None


# The templates with f16 kernels (their ``dtypes`` name f16): f16 matmuls are tuned with these.
F16_TEMPLATES: tuple[str, ...] = tuple(sorted(
    n for n, cls in TEMPLATES.items() if "f16" in getattr(cls, "dtypes", ("f32",))))


def templates_for(kind: str) -> list[str]:
    """Names of the registered templates of op kind ``kind``, sorted."""
    return sorted(name for name, cls in TEMPLATES.items() if cls.op_kind == kind)


__all__ = ["EltwiseWGSL", "HeadsWGSL", "MatmulGemvWGSL", "MatmulVec4WGSL", "MatmulWasmSimd", "MatmulWGSL", "NormWGSL", "SoftmaxWGSL", "DEFAULT_TEMPLATES", "F16_TEMPLATES", "TEMPLATES", "Template", "get_template", "templates_for"]
