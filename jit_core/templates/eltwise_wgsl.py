"""Elementwise ops in WGSL: add, mul, gelu (tanh form), silu and silu_mul (Llama's gated MLP).

Bindings: A (read), B (read; binary fns only), C (read_write), flat f32 arrays (vec4 arrays with
V=1, which needs n % 4 == 0). A workgroup of WG threads owns WG*EPT consecutive units (elements,
or vec4s); thread t handles units t, t + WG, ... (EPT of them), so each step of the workgroup
reads one contiguous run. A guard skips units past the end only when the launch overshoots n.
Launch: ceil(units / (WG*EPT)) workgroups, folded into y past 65535.
"""

from __future__ import annotations

import math
from typing import Callable

from ..caps import DeviceCaps
from ..ops import Eltwise
from ..protocol import KernelSource
from ..space import Config, Param, Rule, Space
from .wgsl_common import act_expr, cdiv, grid, limit_rules, linear_id, vec_type


def _units(op: Eltwise, v: int) -> int:
    return op.n // 4 if v else op.n


class EltwiseWGSL:
    """Template ``eltwise-wgsl``. Parameters: WG threads per workgroup, EPT units per thread, V=1
    vec4 units. Contract as ``MatmulWGSL``."""

    name = "eltwise-wgsl"
    version = "1"
    backend = "webgpu"
    op_kind = "eltwise"

    def params(self) -> tuple[Param, ...]:
        return (Param("WG", (32, 64, 128, 256)), Param("EPT", (1, 2, 4, 8)), Param("V", (0, 1)))

    def rules(self, op: Eltwise, caps: DeviceCaps) -> tuple[Rule, ...]:
        def workgroups(c: Config) -> int:
            return cdiv(_units(op, c["V"]), c["WG"] * c["EPT"])

        return (
            Rule("vec4-elements", "ours", lambda c: c["V"] == 0 or op.n % 4 == 0,
                 "V=1 (vec4 units) only when n % 4 == 0"),
            Rule("no-idle-workgroup-part", "ours",
                 lambda c: c["WG"] * c["EPT"] <= max(32, 2 * _units(op, c["V"])),
                 "a workgroup's units (WG*EPT) at most twice the op's units: no launch mostly idle"),
        ) + limit_rules(caps, lambda c: (c["WG"], 1), workgroups, 4 * op.n)

    def prior(self, op: Eltwise, caps: DeviceCaps) -> Callable[[Config], float]:
        """Lower first; an untuned guess: vec4, 256-thread workgroups and 1-2 units per thread on
        GPUs (enough workgroups in flight), more units per thread on CPU adapters."""
        ept_goal = 2.0 if caps.is_cpu else 0.5

        def score(c: Config) -> float:
            return (1 - c["V"]) * 2 + abs(math.log2(c["EPT"]) - ept_goal) * 0.5 + abs(math.log2(c["WG"]) - 7.5) * 0.25
        return score

    def space(self, op: Eltwise, caps: DeviceCaps) -> Space:
        if not isinstance(op, Eltwise):
            raise TypeError(f"{self.name} renders eltwise ops, not {type(op).__name__}")
        return Space.build(self.params(), self.rules(op, caps), prior=self.prior(op, caps))

    def render(self, op: Eltwise, config: Config) -> KernelSource:
        wg, ept, v = _check(op, config)
        return KernelSource(code=render_wgsl(op, config, header=f"{self.name} v{self.version}"), entry="main",
                            workgroups=grid(cdiv(_units(op, v), wg * ept)), workgroup_size=(wg, 1, 1))


def _check(op: Eltwise, config: Config) -> tuple[int, int, int]:
    try:
        wg, ept, v = (config[n] for n in ("WG", "EPT", "V"))
    except KeyError as e:
        raise ValueError(f"eltwise config misses parameter {e}") from None
    if wg < 1 or ept < 1 or v not in (0, 1):
        raise ValueError(f"bad eltwise config {config.key()}")
    if v and op.n % 4:
        raise ValueError(f"V=1 needs n % 4 == 0, got n={op.n}")
    return wg, ept, v


def fn_expr(fn: str, t: str) -> str:
    """WGSL of ``fn`` on ``a`` (and ``b``) of type ``t``; gelu and silu are MatMul's epilogue
    formulas (``wgsl_common.act_expr``)."""
    if fn == "add":
        return "a + b"
    if fn == "mul":
        return "a * b"
    if fn in ("gelu", "silu"):
        return act_expr(fn, "a", t)
    if fn == "silu_mul":
        return act_expr("silu", "a", t) + " * b"
    raise ValueError(f"unknown eltwise fn {fn!r}")


def render_wgsl(op: Eltwise, config: Config, *, header: str = "eltwise-wgsl") -> str:
    """WGSL source of ``config`` for ``op``; see the module docstring."""
    wg, ept, v = _check(op, config)
    t = vec_type(4 if v else 1)
    units = _units(op, v)
    nwg = cdiv(units, wg * ept)
    guard = grid(nwg)[0] * grid(nwg)[1] * wg * ept != units
    out = [f"// {header}: C = {op.fn}(A{', B' if op.binary else ''}), n={op.n}; {config.key()}",
           f"const UNITS = {units}u;",
           f"@group(0) @binding(0) var<storage, read> A: array<{t}>;"]
    if op.binary:
        out.append(f"@group(0) @binding(1) var<storage, read> B: array<{t}>;")
    out += [
        f"@group(0) @binding({2 if op.binary else 1}) var<storage, read_write> C: array<{t}>;",
        "",
        f"fn f(a: {t}{f', b: {t}' if op.binary else ''}) -> {t} {{",
        f"  return {fn_expr(op.fn, t)};",
        "}",
        "",
        f"@compute @workgroup_size({wg}, 1, 1)",
        "fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {",
        f"  let u0 = ({linear_id(nwg)}) * {wg * ept}u + lid.x;",
    ]
    call = "f(A[u], B[u])" if op.binary else "f(A[u])"
    for e in range(ept):
        out.append(f"  {{ let u = u0{f' + {e * wg}u' if e else ''};")
        out.append(f"    if (u < UNITS) {{ C[u] = {call}; }} }}" if guard else f"    C[u] = {call}; }}")
    out.append("}")
    return "\n".join(out) + "\n"
