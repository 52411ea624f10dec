"""Row-wise softmax in WGSL: C[row, :] = softmax(scale * X[row, :]), with an optional causal mask.

Bindings: 0 = X [batch*rows, cols] (read), 1 = C (read_write). A workgroup of (TPR, RPW) threads
owns RPW consecutive rows; the TPR threads of a row stride over its columns (vec4s with V=1), so
neighbouring threads read neighbouring addresses. The result is numerically stable: the row's
maximum is subtracted before exp. ON=0 makes three passes over the row (max, sum of exp, write);
ON=1 two (an online max and rescaled sum, then write). Partials of the TPR threads are combined
by a tree reduction in workgroup memory (no subgroup operations); TPR=1 needs none. Causal: row r
of each batch item sees columns c <= r + (cols - rows); masked columns are written as 0. Rows
past the end of the last workgroup compute a clamped row (so every thread reaches every barrier)
and store nothing. Launch: ceil(batch*rows / RPW) workgroups, folded into y past 65535.
"""

from __future__ import annotations

import math
from typing import Callable

from ..caps import DeviceCaps
from ..ops import Softmax
from ..protocol import KernelSource
from ..space import Config, Param, Rule, Space
from .wgsl_common import NEG, cdiv, check_row_config, f32, grid, linear_id, row_kernel_rules, row_params, tree_reduce, vec_type


class SoftmaxWGSL:
    """Template ``softmax-wgsl``. Parameters: TPR threads per row (power of 2), RPW rows per
    workgroup, V=1 vec4 loads/stores, ON=1 online (max and sum in one pass). Contract as
    ``MatmulWGSL``: every config of ``space()`` renders a correct kernel within the caps; render
    raises ValueError outside the grid."""

    name = "softmax-wgsl"
    version = "1"
    backend = "webgpu"
    op_kind = "softmax"

    def params(self) -> tuple[Param, ...]:
        return row_params("ON")

    def rules(self, op: Softmax, caps: DeviceCaps) -> tuple[Rule, ...]:
        return row_kernel_rules(op.batch * op.rows, op.cols, caps, op.output_size())

    def prior(self, op: Softmax, caps: DeviceCaps) -> Callable[[Config], float]:
        """Lower first: vec4 and the online pass first. CPU adapters: about 8 threads per row and
        128 per workgroup (lavapipe runs a workgroup's invocations as SIMD lanes: one thread per
        row makes every lane walk its own row; loosely fitted to one lavapipe run of
        experiments/transformer-ops.yaml). GPUs, a guess not yet measured: about 8 elements per
        thread and 128-256 threads."""
        def score(c: Config) -> float:
            per_thread = op.cols / c["TPR"]
            s = (1 - c["V"]) + 0.5 * (1 - c["ON"])
            if caps.is_cpu:
                s += abs(math.log2(c["TPR"]) - 3) * 0.5 + abs(math.log2(c["TPR"] * c["RPW"]) - 7) * 0.25
            else:
                s += abs(math.log2(max(per_thread, 1.0)) - 3) * 0.5 + abs(math.log2(c["TPR"] * c["RPW"]) - 7.5) * 0.25
            return s
        return score

    def space(self, op: Softmax, caps: DeviceCaps) -> Space:
        if not isinstance(op, Softmax):
            raise TypeError(f"{self.name} renders softmax ops, not {type(op).__name__}")
        return Space.build(self.params(), self.rules(op, caps), prior=self.prior(op, caps))

    def render(self, op: Softmax, config: Config) -> KernelSource:
        tpr, rpw, v, on = _check(op, config)
        nwg = cdiv(op.batch * op.rows, rpw)
        return KernelSource(code=render_wgsl(op, config, header=f"{self.name} v{self.version}"), entry="main",
                            workgroups=grid(nwg), workgroup_size=(tpr, rpw, 1))


def _check(op: Softmax, config: Config) -> tuple[int, int, int, int]:
    return check_row_config("softmax", op.cols, config, "ON")


def render_wgsl(op: Softmax, config: Config, *, header: str = "softmax-wgsl") -> str:
    """WGSL source of ``config`` for ``op``; see the module docstring."""
    tpr, rpw, v, on = _check(op, config)
    w = 4 if v else 1
    t = vec_type(w)
    total = op.batch * op.rows
    nwg = cdiv(total, rpw)
    cv = op.cols // w if v else op.cols
    red = tpr > 1
    out = [
        f"// {header}: C = softmax({op.scale!r} * X) row-wise, batch={op.batch} rows={op.rows} cols={op.cols}"
        f"{' causal' if op.causal else ''}; {config.key()}",
        f"const ROWS = {op.rows}u;",
        f"const COLS = {op.cols}u;",
        f"const TOTAL = {total}u;",
        f"const CV = {cv}u;",
        f"const SCALE = {f32(op.scale)};",
        f"const NEG = {NEG};",
        f"@group(0) @binding(0) var<storage, read> X: array<{t}>;",
        f"@group(0) @binding(1) var<storage, read_write> C: array<{t}>;",
    ]
    if red:
        out.append(f"var<workgroup> red_m: array<f32, {tpr * rpw}>;")
        out.append(f"var<workgroup> red_s: array<f32, {tpr * rpw}>;")
    hmax = "max(max(z.x, z.y), max(z.z, z.w))" if v else "z"
    hsum = "dot(e, vec4<f32>(1.0))" if v else "e"
    out += [
        "",
        f"@compute @workgroup_size({tpr}, {rpw}, 1)",
        "fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {",
        "  let t = lid.x;",
        f"  let grow = ({linear_id(nwg)}) * {rpw}u + lid.y;",
        "  let row = min(grow, TOTAL - 1u);",
        "  let base = row * CV;",
    ]
    if red:
        out.append(f"  let slot = lid.y * {tpr}u + t;")
    # z: the scaled (and masked) values of unit u
    if op.causal:
        out.append("  let vis = min(COLS, row % ROWS + (COLS - ROWS) + 1u);")
        if v:
            out.append("  let vis_u = (vis + 3u) / 4u;")
            zdef = ("let z = select(vec4<f32>(NEG), X[base + u] * SCALE, "
                    "vec4<u32>(u * 4u) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(vis));")
        else:
            out.append("  let vis_u = vis;")
            zdef = "let z = select(NEG, X[base + u] * SCALE, u < vis);"
        bound = "vis_u"
    else:
        zdef = "let z = X[base + u] * SCALE;"
        bound = "CV"
    loop = f"for (var u = t; u < {bound}; u = u + {tpr}u) {{"
    if on:
        out += [
            "  var m = NEG;",
            "  var s = 0.0;",
            f"  {loop}",
            f"    {zdef}",
            f"    let mn = max(m, {hmax});",
            "    let e = exp(z - mn);",
            f"    s = s * exp(m - mn) + {hsum};",
            "    m = mn;",
            "  }",
        ]
        if red:
            out += ["  red_m[slot] = m;", "  red_s[slot] = s;"]
            out += tree_reduce(tpr, ("red_m", "red_s"), lambda i, j: [
                f"let m1 = red_m[{i}];", f"let m2 = red_m[{j}];", "let mm = max(m1, m2);",
                f"red_s[{i}] = red_s[{i}] * exp(m1 - mm) + red_s[{j}] * exp(m2 - mm);", f"red_m[{i}] = mm;"])
            out += [f"  m = red_m[lid.y * {tpr}u];", f"  s = red_s[lid.y * {tpr}u];"]
    else:
        out += ["  var m = NEG;", f"  {loop}", f"    {zdef}", f"    m = max(m, {hmax});", "  }"]
        if red:
            out.append("  red_m[slot] = m;")
            out += tree_reduce(tpr, ("red_m",), lambda i, j: [f"red_m[{i}] = max(red_m[{i}], red_m[{j}]);"])
            out.append(f"  m = red_m[lid.y * {tpr}u];")
        out += ["  var s = 0.0;", f"  {loop}", f"    {zdef}", "    let e = exp(z - m);", f"    s = s + {hsum};", "  }"]
        if red:
            out.append("  red_s[slot] = s;")
            out += tree_reduce(tpr, ("red_s",), lambda i, j: [f"red_s[{i}] = red_s[{i}] + red_s[{j}];"])
            out.append(f"  s = red_s[lid.y * {tpr}u];")
    out += [
        "  let inv = 1.0 / s;",
        "  if (grow < TOTAL) {",
        f"    for (var u = t; u < CV; u = u + {tpr}u) {{",
        f"      {zdef}",
        "      C[base + u] = exp(z - m) * inv;",
        "    }",
        "  }",
        "}",
    ]
    return "\n".join(out) + "\n"
