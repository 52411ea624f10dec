"""Row-wise layernorm and RMSNorm in WGSL, with an optional fused residual add.

Bindings: X [rows, cols], R [rows, cols] (residual only), gamma [cols], beta [cols] (layernorm
only), all read; C last (read_write). H = X (+ R) is recomputed on each pass rather than stored.
The thread layout is softmax-wgsl's: a workgroup of (TPR, RPW) threads owns RPW rows, the TPR
threads of a row stride over its columns (vec4s with V=1) and combine their partials by a tree
reduction in workgroup memory. Layernorm with WF=0 is two-pass (the mean, then the centred sum of
squares: no cancellation), WF=1 one pass of Welford's update per element, merged across threads
with Chan's formula. RMSNorm needs one reduction (the sum of squares); WF is pinned to 0 for it.
Rows past the end compute a clamped row and store nothing.
"""

from __future__ import annotations

import math
from typing import Callable

from ..caps import DeviceCaps
from ..ops import Norm
from ..protocol import KernelSource
from ..space import Config, Param, Rule, Space
from .wgsl_common import cdiv, check_row_config, f32, grid, linear_id, row_kernel_rules, row_params, tree_reduce, vec_type


class NormWGSL:
    """Template ``norm-wgsl`` (op kind norm: layernorm or rmsnorm). Parameters: TPR threads per row
    (power of 2), RPW rows per workgroup, V=1 vec4 loads/stores, WF=1 Welford (layernorm only).
    Contract as ``MatmulWGSL``."""

    name = "norm-wgsl"
    version = "1"
    backend = "webgpu"
    op_kind = "norm"

    def params(self) -> tuple[Param, ...]:
        return row_params("WF")

    def rules(self, op: Norm, caps: DeviceCaps) -> tuple[Rule, ...]:
        return row_kernel_rules(op.rows, op.cols, caps, op.output_size())

    def canonicalize(self, op: Norm) -> Callable[[Config], Config]:
        return lambda c: c.replace(WF=0) if op.norm == "rmsnorm" and c["WF"] else c

    def prior(self, op: Norm, caps: DeviceCaps) -> Callable[[Config], float]:
        """Lower first; softmax-wgsl's layout preferences. On GPUs (a guess) two-pass before
        Welford, whose division per element costs more than a second read that hits the cache;
        on lavapipe the two were within 15 % of each other."""
        def score(c: Config) -> float:
            s = (1 - c["V"]) + (0.0 if caps.is_cpu else 0.5 * c["WF"])
            if caps.is_cpu:
                s += abs(math.log2(c["TPR"]) - 3) * 0.5 + abs(math.log2(c["TPR"] * c["RPW"]) - 7) * 0.25
            else:
                s += abs(math.log2(max(op.cols / c["TPR"], 1.0)) - 3) * 0.5 + abs(math.log2(c["TPR"] * c["RPW"]) - 7.5) * 0.25
            return s
        return score

    def space(self, op: Norm, caps: DeviceCaps) -> Space:
        if not isinstance(op, Norm):
            raise TypeError(f"{self.name} renders norm ops, not {type(op).__name__}")
        return Space.build(self.params(), self.rules(op, caps), canonicalize=self.canonicalize(op), prior=self.prior(op, caps))

    def render(self, op: Norm, config: Config) -> KernelSource:
        tpr, rpw, _, _ = _check(op, config)
        return KernelSource(code=render_wgsl(op, config, header=f"{self.name} v{self.version}"), entry="main",
                            workgroups=grid(cdiv(op.rows, rpw)), workgroup_size=(tpr, rpw, 1))


def _check(op: Norm, config: Config) -> tuple[int, int, int, int]:
    return check_row_config("norm", op.cols, config, "WF")


def render_wgsl(op: Norm, config: Config, *, header: str = "norm-wgsl") -> str:
    """WGSL source of ``config`` for ``op``; see the module docstring."""
    tpr, rpw, v, wf = _check(op, config)
    wf = wf if op.norm == "layernorm" else 0
    w = 4 if v else 1
    t = vec_type(w)
    cv = op.cols // w
    nwg = cdiv(op.rows, rpw)
    red = tpr > 1
    names = list(op.input_sizes()) + ["C"]
    out = [
        f"// {header}: C = {op.norm}(X{' + R' if op.residual else ''}), rows={op.rows} cols={op.cols} "
        f"eps={op.eps!r}; {config.key()}",
        f"const ROWS = {op.rows}u;",
        f"const CV = {cv}u;",
        f"const INV_COLS = {f32(1.0 / op.cols)};",
        f"const EPS = {f32(op.eps)};",
    ]
    for b, name in enumerate(names):
        access = "read_write" if name == "C" else "read"
        out.append(f"@group(0) @binding({b}) var<storage, {access}> {name}: array<{t}>;")
    arrays = ("red_a", "red_b", "red_n")[: (3 if wf else 1)]
    if red:
        out += [f"var<workgroup> {a}: array<f32, {tpr * rpw}>;" for a in arrays]
    h = "X[base + u] + R[base + u]" if op.residual else "X[base + u]"
    hsum = (lambda e: f"dot({e}, vec4<f32>(1.0))") if v else (lambda e: e)
    loop = f"for (var u = t; u < CV; u = u + {tpr}u) {{"
    out += [
        "",
        f"@compute @workgroup_size({tpr}, {rpw}, 1)",
        "fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {",
        "  let t = lid.x;",
        f"  let grow = ({linear_id(nwg)}) * {rpw}u + lid.y;",
        "  let row = min(grow, ROWS - 1u);",
        "  let base = row * CV;",
    ]
    if red:
        out.append(f"  let slot = lid.y * {tpr}u + t;")
        first = f"lid.y * {tpr}u"

    def reduce_sum(var: str) -> list[str]:
        if not red:
            return []
        return [f"  red_a[slot] = {var};", *tree_reduce(tpr, ("red_a",), lambda i, j: [f"red_a[{i}] = red_a[{i}] + red_a[{j}];"]),
                f"  {var} = red_a[{first}];", "  workgroupBarrier();"]  # red_a is reused next

    if op.norm == "rmsnorm":
        out += ["  var ss = 0.0;", f"  {loop}", f"    let h = {h};", f"    ss = ss + {hsum('h * h')};", "  }"]
        out += reduce_sum("ss")
        out += ["  let rstd = inverseSqrt(ss * INV_COLS + EPS);", "  let mean = 0.0;"]
    elif not wf:
        out += ["  var sum = 0.0;", f"  {loop}", f"    sum = sum + {hsum(h)};", "  }"]
        out += reduce_sum("sum")
        out += ["  let mean = sum * INV_COLS;", "  var sq = 0.0;", f"  {loop}", f"    let d = {h} - mean;",
                f"    sq = sq + {hsum('d * d')};", "  }"]
        out += reduce_sum("sq")
        out += ["  let rstd = inverseSqrt(sq * INV_COLS + EPS);"]
    else:  # Welford per element, then Chan's merge of (n, mean, M2) across threads
        out += ["  var n = 0.0;", "  var mu = 0.0;", "  var m2 = 0.0;", f"  {loop}", f"    let h = {h};"]
        for lane in (("h.x", "h.y", "h.z", "h.w") if v else ("h",)):
            out += ["    n = n + 1.0;", f"    let d_{lane[-1]} = {lane} - mu;", f"    mu = mu + d_{lane[-1]} / n;",
                    f"    m2 = m2 + d_{lane[-1]} * ({lane} - mu);"]
        out.append("  }")
        if red:
            out += ["  red_n[slot] = n;", "  red_a[slot] = mu;", "  red_b[slot] = m2;"]
            out += tree_reduce(tpr, arrays, lambda i, j: [
                f"let na = red_n[{i}];", f"let nb = red_n[{j}];", "let nn = max(na + nb, 1.0);",
                f"let dm = red_a[{j}] - red_a[{i}];",
                f"red_a[{i}] = red_a[{i}] + dm * (nb / nn);",
                f"red_b[{i}] = red_b[{i}] + red_b[{j}] + dm * dm * (na * nb / nn);",
                f"red_n[{i}] = na + nb;"])
            out += [f"  mu = red_a[{first}];", f"  m2 = red_b[{first}];"]
        out += ["  let mean = mu;", "  let rstd = inverseSqrt(m2 * INV_COLS + EPS);"]
    out += ["  if (grow < ROWS) {", f"    for (var u = t; u < CV; u = u + {tpr}u) {{"]
    cidx = "u"
    if op.norm == "rmsnorm":
        out.append(f"      C[base + u] = ({h}) * rstd * gamma[{cidx}];")
    else:
        out.append(f"      C[base + u] = (({h}) - mean) * rstd * gamma[{cidx}] + beta[{cidx}];")
    out += ["    }", "  }", "}"]
    return "\n".join(out) + "\n"
