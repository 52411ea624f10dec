"""The rule that keeps a template's space empty for an op dtype it cannot run.

Each matmul template lists the op dtypes it has kernels for in its ``dtypes`` attribute. An f32
op gets no extra rule (its space and report are what they always were). An f16 op gets
one rule, first in the list, so an empty space says why: the template has no f16 kernels, or the
adapter lacks the ``shader-f16`` feature that WGSL's ``enable f16;`` needs.
"""

from __future__ import annotations

from typing import Any

from ..caps import DeviceCaps
from ..ops import OpSpec
from ..space import Rule

SHADER_F16 = "shader-f16"


def has_shader_f16(caps: DeviceCaps) -> bool:
    """Whether the device offers WGSL f16 (its probe listed the ``shader-f16`` feature)."""
    return SHADER_F16 in caps.features


def dtype_rules(op: OpSpec, caps: DeviceCaps, template: Any) -> tuple[Rule, ...]:
    """() for an f32 op; for an f16 op, one rule keeping every config or none: none when the
    template has no f16 kernels (its ``dtypes`` lack 'f16') or the device lacks ``shader-f16``."""
    if op.dtype == "f32":
        return ()
    if op.dtype not in template.dtypes:
        return (Rule("f16-kernels", "ours", lambda c: False,
                     f"{template.name} has no f16 kernels: f16 matmuls use matmul-wgsl-vec4 (or -gemv for M <= 8)",
                     key=False),)
    ok = has_shader_f16(caps)
    return (Rule("shader-f16", "WebGPU", lambda c: ok,
                 "f16 kernels need the adapter feature shader-f16 (WGSL `enable f16;`)", key=ok),)


def require_f32(op: OpSpec, template: str) -> None:
    """ValueError unless ``op`` is f32: for the renderers of templates without f16 kernels."""
    if op.dtype != "f32":
        raise ValueError(f"{template} renders f32 ops only, got dtype {op.dtype!r}: use matmul-wgsl-vec4")
