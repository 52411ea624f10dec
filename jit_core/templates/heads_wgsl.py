"""Attention layout kernels in WGSL: split heads (optionally transposed for K, with rotary
position embedding) and merge heads. See ``jit_core.ops.Heads`` for the layouts.

Bindings: 0 = X (read), 1 = C (read_write). The work is a list of units, each one run of W
consecutive elements of a head's row (W = 4 with V=1, else 1); with rotary a unit is a pair of
runs (i and i + head_dim/2) rotated together. ORD picks the order units are numbered in, and so
which side of the copy neighbouring threads touch contiguously: ORD=0 input order (token, head,
dim), ORD=1 (split_t only) output order (head, dim, token), where each thread moves one element
(V=0) and writes coalesce along the token axis. A workgroup of WG threads owns WG*EPT units,
thread t the units t, t + WG, ... Rotary angles are position * f with f = theta^(-2i/head_dim)
from a table computed in float64 (baked into the kernel) and range-reduced to [-pi, pi] before
sin/cos. Positions below ``past`` (the KV cache) are never written.
"""

from __future__ import annotations

import math
from typing import Callable

from ..caps import DeviceCaps
from ..ops import Heads
from ..protocol import KernelSource
from ..space import Config, Param, Rule, Space
from .wgsl_common import cdiv, f32, grid, limit_rules, linear_id, vec_type


def _vec_ok(op: Heads) -> bool:
    """Every run of 4 starts on a 16-byte boundary of X (and of C for split/merge)."""
    run = op.head_dim // 2 if op.rotary else op.head_dim
    if op.mode == "merge":
        return op.head_dim % 4 == 0
    return run % 4 == 0 and op.head_dim % 4 == 0 and op.stride % 4 == 0 and op.col_offset % 4 == 0


def _units(op: Heads, v: int) -> int:
    run = op.head_dim // 2 if op.rotary else op.head_dim
    return op.seq * op.heads * (run // 4 if v else run)


class HeadsWGSL:
    """Template ``heads-wgsl``. Parameters: WG threads per workgroup, EPT units per thread, V=1
    vec4 runs, ORD=1 output-ordered units (split_t only). Contract as ``MatmulWGSL``."""

    name = "heads-wgsl"
    version = "1"
    backend = "webgpu"
    op_kind = "heads"

    def params(self) -> tuple[Param, ...]:
        return (Param("WG", (32, 64, 128, 256)), Param("EPT", (1, 2, 4)), Param("V", (0, 1)), Param("ORD", (0, 1)))

    def rules(self, op: Heads, caps: DeviceCaps) -> tuple[Rule, ...]:
        operand = 4 * max(op.input_sizes()["X"], op.output_size())
        return (
            Rule("vec4-runs", "ours", lambda c: c["V"] == 0 or _vec_ok(op),
                 "V=1 only when every 4-element run is 16-byte aligned (head_dim, half of it with rotary, "
                 "row_stride and col_offset multiples of 4)"),
            Rule("output-order-split-t", "ours", lambda c: c["ORD"] == 0 or (op.mode == "split_t" and c["V"] == 0),
                 "ORD=1 (output order) only for split_t, one element per unit"),
            Rule("no-idle-workgroup-part", "ours",
                 lambda c: c["WG"] * c["EPT"] <= max(32, 2 * _units(op, c["V"])),
                 "a workgroup's units (WG*EPT) at most twice the op's units"),
        ) + limit_rules(caps, lambda c: (c["WG"], 1), lambda c: cdiv(_units(op, c["V"]), c["WG"] * c["EPT"]), operand)

    def prior(self, op: Heads, caps: DeviceCaps) -> Callable[[Config], float]:
        """Lower first; an untuned guess: vec4, output order for split_t on GPUs (scattered
        writes cost more than scattered reads there), 128-256 threads, 1-2 units per thread."""
        def score(c: Config) -> float:
            s = (1 - c["V"]) + abs(math.log2(c["WG"]) - 7.5) * 0.25 + math.log2(c["EPT"]) * (0.1 if caps.is_cpu else 0.5)
            if op.mode == "split_t" and not caps.is_cpu:
                s += 1.5 * (1 - c["ORD"])
            return s
        return score

    def space(self, op: Heads, caps: DeviceCaps) -> Space:
        if not isinstance(op, Heads):
            raise TypeError(f"{self.name} renders heads ops, not {type(op).__name__}")
        return Space.build(self.params(), self.rules(op, caps), prior=self.prior(op, caps))

    def render(self, op: Heads, config: Config) -> KernelSource:
        wg, ept, v, _ = _check(op, config)
        return KernelSource(code=render_wgsl(op, config, header=f"{self.name} v{self.version}"), entry="main",
                            workgroups=grid(cdiv(_units(op, v), wg * ept)), workgroup_size=(wg, 1, 1))


def _check(op: Heads, config: Config) -> tuple[int, int, int, int]:
    try:
        wg, ept, v, order = (config[n] for n in ("WG", "EPT", "V", "ORD"))
    except KeyError as e:
        raise ValueError(f"heads config misses parameter {e}") from None
    if wg < 1 or ept < 1 or v not in (0, 1) or order not in (0, 1):
        raise ValueError(f"bad heads config {config.key()}")
    if v and not _vec_ok(op):
        raise ValueError(f"V=1 needs 16-byte aligned runs: {op.key()}")
    if order and (op.mode != "split_t" or v):
        raise ValueError("ORD=1 is for split_t with V=0")
    return wg, ept, v, order


def render_wgsl(op: Heads, config: Config, *, header: str = "heads-wgsl") -> str:
    """WGSL source of ``config`` for ``op``; see the module docstring."""
    wg, ept, v, order = _check(op, config)
    w = 4 if v else 1
    D, H, S, P = op.head_dim, op.heads, op.seq, op.past
    T = op.positions
    half = D // 2
    run = half if op.rotary else D
    rv = run // w  # units per head row
    units = _units(op, v)
    nwg = cdiv(units, wg * ept)
    guard = grid(nwg)[0] * grid(nwg)[1] * wg * ept != units
    tx = vec_type(w)
    # C is vec4 only where a run of 4 is contiguous in C too (not split_t)
    vc = v and op.mode != "split_t"
    out = [
        f"// {header}: {op.mode}{' rotary' if op.rotary else ''} seq={S} heads={H} head_dim={D} stride={op.stride} "
        f"offset={op.col_offset} past={P}{f' pos_offset={op.pos_offset}' if op.pos_offset else ''}; {config.key()}",
        f"@group(0) @binding(0) var<storage, read> X: array<{tx}>;",
        f"@group(0) @binding(1) var<storage, read_write> C: array<{vec_type(4) if vc else 'f32'}>;",
    ]
    if op.rotary:
        freqs = [op.theta ** (-2.0 * i / D) for i in range(half)]
        out.append(f"var<private> FREQ: array<f32, {half}> = array<f32, {half}>({', '.join(f32(f) for f in freqs)});")
    out += [
        "",
        f"@compute @workgroup_size({wg}, 1, 1)",
        "fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {",
        f"  let u0 = ({linear_id(nwg)}) * {wg * ept}u + lid.x;",
    ]
    body: list[str] = []
    # decompose unit u into (s, h, i): i the run index within the head row (in units of w)
    if order:
        body += [f"let s = u % {S}u;", f"let hi = u / {S}u;", f"let h = hi / {rv}u;", f"let i = hi % {rv}u;"]
    else:  # (token, head, run): X's order for a split, C's order for a merge
        body += [f"let i = u % {rv}u;", f"let sh = u / {rv}u;", f"let h = sh % {H}u;", f"let s = sh / {H}u;"]
    # source index (in X's units) of the run's first element; d = i * w is the dim within the head
    if op.mode == "merge":
        body.append(f"let src = (h * {S}u + s) * {D // w}u + i;")
    else:
        body.append(f"let src = (s * {op.stride // w}u + {op.col_offset // w}u + h * {D // w}u) + i;")
    if op.rotary:
        body += [f"let lo = X[src];", f"let hi_ = X[src + {half // w}u];", f"let pos = f32(s + {P + op.pos_offset}u);"]
        if w == 4:
            body.append("let f = vec4<f32>(FREQ[i * 4u], FREQ[i * 4u + 1u], FREQ[i * 4u + 2u], FREQ[i * 4u + 3u]);")
        else:
            body.append("let f = FREQ[i];")
        body += [
            "let a = pos * f;",
            f"let r = a - {f32(2 * math.pi)} * round(a * {f32(1 / (2 * math.pi))});",
            "let cs = cos(r);",
            "let sn = sin(r);",
            "let v0 = lo * cs - hi_ * sn;",
            "let v1 = hi_ * cs + lo * sn;",
        ]
        vals = [("v0", "0u"), ("v1", f"{half}u")]
    else:
        body.append("let v0 = X[src];")
        vals = [("v0", "0u")]
    for val, doff in vals:
        if op.mode == "merge":
            body.append(f"C[(s * {H}u + h) * {D // w}u + i] = {val};")
        elif op.mode == "split":
            body.append(f"C[(h * {T}u + s + {P}u) * {D // w}u + i + {doff} / {w}u] = {val};")
        else:  # split_t: C[h, d, p], one scalar store per lane
            lanes = ("x", "y", "z", "w") if w == 4 else ("",)
            for k, lane in enumerate(lanes):
                d = f"i * {w}u + {k}u + {doff}" if w == 4 else f"i + {doff}"
                body.append(f"C[(h * {D}u + {d}) * {T}u + s + {P}u] = {val}{'.' + lane if lane else ''};")
    for e in range(ept):
        out.append(f"  {{ let u = u0{f' + {e * wg}u' if e else ''};")
        ind = "    "
        if guard:
            out.append(f"    if (u < {units}u) {{")
            ind = "      "
        out += [ind + line for line in body]
        if guard:
            out.append("    }")
        out.append("  }")
    out.append("}")
    return "\n".join(out) + "\n"
