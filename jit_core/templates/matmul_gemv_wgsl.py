"""Skinny f32 matmul (decode GEMV, M <= 8) in WGSL, one kernel per shape (shapes baked in).

Layout: bindings 0 = A [batch, M, K], 1 = B [batch, K, N] (read), 2 = C [batch, M, N] (read_write),
row-major; batch item in ``workgroup_id.z``; dispatch (ceil(N/BN), 1, batch) with BN = WX*VN
columns per workgroup; workgroup (WX, WK). Every thread computes all M rows for VN columns, over
its share of K: thread (tx, ky) reads rows ``k = (it*WK + ky)*KU + u`` (u < KU) of B, so one step of
the workgroup streams WK*KU consecutive rows, and along a row consecutive threads read consecutive
columns (coalesced). When N % 4 == 0 and VN % 4 == 0, B and C are ``array<vec4<f32>>`` and a
thread owns VN/4 vec4 columns strided by WX vec4s; otherwise they are scalar and a thread owns VN
columns strided by WX. A is read straight from global memory (it is small and every thread of a
K-slice reads the same values, so caches broadcast it), as vec4 when K % 4 == 0 and KU % 4 == 0.
Accumulators are named variables ``acc_m_j`` (dynamically indexed local arrays spill).

With WK > 1 the WK partial sums are reduced in workgroup memory: every thread writes its partials,
a barrier, then all WX*WK threads share the M*BN outputs, each summing WK partials and storing one
output (coalesced). For WK > 8 a first stage adds groups of about sqrt(WK) partials in place
behind a second barrier, so no thread sums more than about 2*sqrt(WK) values in a row. Every
barrier is at function level and no thread returns early, so control flow is uniform there. K is
never split across workgroups: WGSL has no f32 atomics and the protocol runs one kernel per
candidate, so a cross-workgroup reduction would need a second kernel.

K rows that do not fill a whole step (K % (WK*KU)) are done by a guarded tail loop, row by row;
columns past N (N % BN) read a clamped column and skip the store. A shape that divides evenly gets
no tail, no clamp and no guard.

An f16 op (``op.dtype`` 'f16', the device needs ``shader-f16``) declares ``enable f16;`` and f16
bindings; its sums (accumulators, workgroup partials) are in ``op.acc``: values are widened as they
are loaded and sums narrowed as they are stored when that is f32. An f32 op's code does not change.
"""

from __future__ import annotations

import math
from typing import Callable

from ..caps import DeviceCaps
from ..ops import MatMul
from ..protocol import KernelSource
from ..space import Config, Param, Rule, Space
from .dtype_rules import dtype_rules
from .matmul_wgsl import no_epilogue_rule
from .wgsl_common import convert, enable_f16

NNJIT_MAX_THREADS = 256
MAX_ROWS = 8  # largest M this template takes; larger M is the tiled templates' job
GPU_MAX_COLUMNS = 64  # measured on an H200: time grows linearly with WX*VN past 32 (too few workgroups)
CPU_MAX_WK = 16
GPU_TARGET_WORKGROUPS = 256  # two per SM of a 132-SM H200; fewer leave bandwidth unused (measured)
MIN_THREADS = 64  # two warps: at most 32 workgroups are resident per SM, so fewer threads cap occupancy
_UNROLL_REDUCE = 8  # partial sums per output up to which the reduction is unrolled in Python
_COMP = "xyzw"


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _next_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


class MatmulGemvWGSL:
    """Template ``matmul-wgsl-gemv``: matmuls with M <= 8 (LLM decode, batch-of-few decode).
    ``space(op, caps)`` is empty for M > 8 (rule 'gemv-rows') and otherwise holds dozens of
    configs within the device's limits, ordered so that configs launching enough workgroups to
    fill a big GPU come first; ``render(op, config)`` is a kernel correct for any shape with
    M <= 8 (ragged N and K, N smaller than a workgroup's columns, batch > 1). ``render`` raises
    ValueError for a config that misses a parameter or has non-positive values, or for M > 8.
    ``version`` goes into cache keys: bump it on any change to the generated code."""

    name = "matmul-wgsl-gemv"
    version = "1"
    backend = "webgpu"
    op_kind = "matmul"
    dtypes = ("f32", "f16")  # op dtypes with kernels here (dtype_rules.py)

    def params(self) -> tuple[Param, ...]:
        return (
            Param("VN", (1, 2, 4, 8)),
            Param("WX", (2, 4, 8, 16, 32, 64, 128, 256)),
            Param("WK", (1, 2, 4, 8, 16, 32, 64, 128)),
            Param("KU", (2, 4, 8)),
        )

    def rules(self, op: MatMul, caps: DeviceCaps) -> tuple[Rule, ...]:
        max_x, max_y, _ = caps.max_workgroup_size
        max_wg = caps.max_workgroups_per_dimension
        vec = op.N % 4 == 0
        operand_bytes = 4 * max(op.batch * op.M * op.K, op.batch * op.K * op.N, op.batch * op.M * op.N)

        def threads(c: Config) -> int:
            return c["WX"] * c["WK"]

        def spans_n(c: Config) -> bool:
            return c["WX"] * c["VN"] >= max(16, _next_pow2(op.N))

        return (
            Rule("gemv-rows", "ours", lambda c: op.M <= MAX_ROWS,
                 f"the template applies to M <= {MAX_ROWS} only (larger M: tiled templates)"),
            Rule("vec4-columns", "ours", lambda c: (c["VN"] in (4, 8)) if vec else (c["VN"] in (1, 2, 4)),
                 "N % 4 == 0: VN in {4, 8} as vec4 loads; else VN in {1, 2, 4} scalar columns"),
            Rule("max-256-threads", "nnJIT", lambda c: threads(c) <= NNJIT_MAX_THREADS,
                 f"at most {NNJIT_MAX_THREADS} threads per workgroup (WX*WK)"),
            Rule("max-invocations", "WebGPU", lambda c: threads(c) <= caps.max_invocations,
                 f"WX*WK <= maxComputeInvocationsPerWorkgroup ({caps.max_invocations})"),
            Rule("workgroup-size-dims", "WebGPU", lambda c: c["WX"] <= max_x and c["WK"] <= max_y,
                 f"WX <= maxComputeWorkgroupSizeX ({max_x}), WK <= maxComputeWorkgroupSizeY ({max_y})"),
            Rule("min-threads", "ours",
                 lambda c: threads(c) >= MIN_THREADS or (spans_n(c) and 2 * c["WK"] * c["KU"] > op.K),
                 f"at least {MIN_THREADS} threads per workgroup, unless it spans all of N and twice WK would pass K"),
            Rule("workgroup-storage", "WebGPU",
                 lambda c: c["WK"] == 1 or c["WK"] * op.M * c["WX"] * c["VN"] * 4 <= caps.max_workgroup_storage,
                 f"WK*M*WX*VN*4 bytes of partial sums <= maxComputeWorkgroupStorageSize "
                 f"({caps.max_workgroup_storage})"),
            Rule("registers-per-thread", "ours",
                 lambda c: op.M * c["VN"] + c["KU"] * c["VN"] + op.M * c["KU"] <= caps.regs_per_thread,
                 f"M*VN accumulators + KU*VN B values + M*KU A values <= regs_per_thread "
                 f"({caps.regs_per_thread})"),
            Rule("k-split-fits", "ours", lambda c: c["WK"] * c["KU"] <= max(op.K, 2),
                 "WK*KU <= max(K, 2): every thread along K gets at least one step of rows"),
            Rule("columns-fit-problem", "ours", lambda c: c["WX"] * c["VN"] <= max(16, _next_pow2(op.N)),
                 "WX*VN <= max(16, next_pow2(N)): no workgroup wider than the problem needs"),
            Rule("gpu-narrow-workgroups", "ours", lambda c: caps.is_cpu or c["WX"] * c["VN"] <= GPU_MAX_COLUMNS,
                 f"GPUs: WX*VN <= {GPU_MAX_COLUMNS} columns per workgroup (wider ones launch too few workgroups)"),
            Rule("cpu-short-k-split", "ours", lambda c: not caps.is_cpu or c["WK"] <= CPU_MAX_WK,
                 f"CPU adapters: WK <= {CPU_MAX_WK} (a workgroup runs on one core: K threads add reduction, "
                 "not bandwidth)"),
            Rule("dispatch-limit", "WebGPU",
                 lambda c: max(_cdiv(op.N, c["WX"] * c["VN"]), op.batch) <= max_wg,
                 f"workgroups per dispatch dimension <= maxComputeWorkgroupsPerDimension ({max_wg})"),
            Rule("operands-fit-binding", "WebGPU", lambda c: operand_bytes <= caps.max_storage_buffer_binding_size,
                 f"each operand fits maxStorageBufferBindingSize ({caps.max_storage_buffer_binding_size} bytes)"),
        )

    def prior(self, op: MatMul, caps: DeviceCaps) -> Callable[[Config], float]:
        """Score (lower first). GPUs (measured on an H200, 1x4096x4096 .. 1x4096x11008): at least
        256 workgroups (time grew linearly with fewer), 256 threads, KU 4 (vec4 A), rows of at least
        16 columns per workgroup (64-byte segments); the best config was 4 threads x 4 columns x
        64 along K. CPU adapters (llvmpipe, SwiftShader): a few wide workgroups and little K split,
        VN 8."""
        cpu = caps.is_cpu

        def score(c: Config) -> float:
            vn, wx, wk, ku = c["VN"], c["WX"], c["WK"], c["KU"]
            nwg = _cdiv(op.N, wx * vn) * op.batch
            s = 0.5 * (1.0 - op.N / (_cdiv(op.N, wx * vn) * wx * vn))  # idle columns of the last workgroup
            s += 0.5 * abs(math.log2(ku) - 2)
            if cpu:  # measured on llvmpipe: all within 2x; wide rows (VN 8) and a few big workgroups lead
                s += 0.5 * abs(math.log2(nwg) - 3) + 0.5 * math.log2(wk) + (0.0 if vn >= 8 else 1.0)
                return s
            if nwg < GPU_TARGET_WORKGROUPS:
                s += 1.5 * math.log2(GPU_TARGET_WORKGROUPS / nwg)
            s += 0.25 * abs(math.log2(wx * wk) - 8)
            if wx * vn < 16:
                s += 0.5 * math.log2(16 / (wx * vn))
            return s

        return score

    def space(self, op: MatMul, caps: DeviceCaps) -> Space:
        if not isinstance(op, MatMul):
            raise TypeError(f"{self.name} renders matmul ops, not {type(op).__name__}")
        return Space.build(self.params(), dtype_rules(op, caps, self) + (no_epilogue_rule(op, self.name),)
                           + tuple(self.rules(op, caps)), prior=self.prior(op, caps))

    def render(self, op: MatMul, config: Config) -> KernelSource:
        vn, wx, wk, _ = _check_config(op, config)
        return KernelSource(
            code=render_wgsl(op, config, header=f"{self.name} v{self.version}"),
            entry="main",
            workgroups=(_cdiv(op.N, wx * vn), 1, op.batch),
            workgroup_size=(wx, wk, 1),
        )


def _check_config(op: MatMul, config: Config) -> tuple[int, int, int, int]:
    try:
        vn, wx, wk, ku = (config[n] for n in ("VN", "WX", "WK", "KU"))
    except KeyError as e:
        raise ValueError(f"gemv config misses parameter {e}") from None
    if min(vn, wx, wk, ku) < 1:
        raise ValueError(f"bad gemv config {config.key()}")
    if op.M > MAX_ROWS:
        raise ValueError(f"matmul-wgsl-gemv handles M <= {MAX_ROWS}, got M={op.M}")
    return vn, wx, wk, ku


def _plus(expr: str, n: int) -> str:
    return f"{expr} + {n}u" if n else expr


def render_wgsl(op: MatMul, config: Config, *, header: str = "matmul-wgsl-gemv") -> str:
    """WGSL source of ``config`` for ``op``; see the module docstring for the kernel's shape."""
    vn, wx, wk, ku = _check_config(op, config)
    M, N, K, batch = op.M, op.N, op.K, op.batch
    vec = N % 4 == 0 and vn % 4 == 0
    w = 4 if vec else 1  # columns per B/C element
    cols = vn // w  # B/C elements (vec4 or scalar) per thread
    ne = N // w  # B/C elements per row
    bne = wx * cols  # B/C elements per workgroup row
    a_vec = K % 4 == 0 and ku % 4 == 0
    step = wk * ku
    nit, tail = divmod(K, step)
    gn = N % (wx * vn) != 0
    nt = wx * wk
    # element types: sd of the op's buffers, t of the sums (both f32 for an f32 op)
    sd, t = op.dtype, op.acc
    ty = f"vec4<{t}>" if vec else t
    sty = f"vec4<{sd}>" if vec else sd
    zero = f"{ty}(0.0)"

    def ld(expr: str, v: bool) -> str:  # a value read from a binding, in the sums' type
        return convert(expr, sd, t, v)

    def narrow(expr: str) -> str:  # a sum stored into C
        return convert(expr, t, sd, vec)

    out: list[str] = [
        *enable_f16(sd, t),
        f"// {header}: C = A @ B, batch={batch} M={M} N={N} K={K}; {config.key()}",
        f"const M = {M}u;",
        f"const N = {N}u;",
        f"const K = {K}u;",
        f"@group(0) @binding(0) var<storage, read> A: array<{f'vec4<{sd}>' if a_vec else sd}>;",
        f"@group(0) @binding(1) var<storage, read> B: array<{sty}>;",
        f"@group(0) @binding(2) var<storage, read_write> C: array<{sty}>;",
    ]
    if wk > 1:
        out.append(f"var<workgroup> R: array<{ty}, {wk * M * bne}>;")
    out += [
        "",
        f"@compute @workgroup_size({wx}, {wk}, 1)",
        "fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {",
        "  let tx = lid.x;",
        "  let ky = lid.y;",
        f"  let e0 = wg.x * {bne}u;",
    ]
    if batch > 1:
        out += [
            f"  let a_base = wg.z * {M * K // (4 if a_vec else 1)}u;",
            f"  let b_base = wg.z * {K * ne}u;",
            f"  let c_base = wg.z * {M * ne}u;",
        ]
        a_base, b_base, c_base = "a_base + ", "b_base + ", "c_base + "
    else:
        a_base = b_base = c_base = ""
    # Column element of each owned column j; loads use a clamped copy when the last workgroup overhangs N.
    for j in range(cols):
        out.append(f"  let e_{j} = e0 + tx{f' + {j * wx}u' if j else ''};")
        out.append(f"  let be_{j} = {b_base}{f'min(e_{j}, {ne - 1}u)' if gn else f'e_{j}'};")
    for m in range(M):
        for j in range(cols):
            out.append(f"  var acc_{m}_{j} = {zero};")

    if nit:
        out.append(f"  for (var it = 0u; it < {nit}u; it = it + 1u) {{")
        out.append(f"    let k = (it * {wk}u + ky) * {ku}u;")
        out.append(f"    let bk = k * {ne}u;")
        for u in range(ku):
            for j in range(cols):
                b = f"B[{_plus('bk', u * ne)} + be_{j}]"
                out.append(f"    let b_{u}_{j} = {ld(b, vec)};")
        for m in range(M):
            if a_vec:
                for q in range(ku // 4):
                    a = f"A[{a_base}{_plus('k / 4u', m * K // 4 + q)}]"
                    out.append(f"    let a4_{m}_{q} = {ld(a, True)};")
            else:
                for u in range(ku):
                    a = f"A[{a_base}{_plus('k', m * K + u)}]"
                    out.append(f"    let a_{m}_{u} = {ld(a, False)};")
        # One statement per accumulator, the KU products summed in k order (fewer lines to emit
        # and to compile than one statement per product).
        for m in range(M):
            a = [f"a4_{m}_{u // 4}.{_COMP[u % 4]}" if a_vec else f"a_{m}_{u}" for u in range(ku)]
            for j in range(cols):
                terms = " + ".join(f"{a[u]} * b_{u}_{j}" for u in range(ku))
                out.append(f"    acc_{m}_{j} = acc_{m}_{j} + {terms};")
        out.append("  }")
    if tail:
        # Rows nit*step .. K-1, one at a time, interleaved over ky; no barrier inside.
        out.append(f"  for (var k = {nit * step}u + ky; k < K; k = k + {wk}u) {{")
        out.append(f"    let bk = k * {ne}u;")
        for j in range(cols):
            out.append(f"    let b_{j} = {ld(f'B[bk + be_{j}]', vec)};")
        for m in range(M):
            src = f"A[{a_base}{_plus('k / 4u', m * K // 4)}][k % 4u]" if a_vec else f"A[{a_base}{_plus('k', m * K)}]"
            out.append(f"    let a_{m} = {ld(src, False)};")
            for j in range(cols):
                out.append(f"    acc_{m}_{j} = acc_{m}_{j} + a_{m} * b_{j};")
        out.append("  }")

    if wk == 1:
        for m in range(M):
            for j in range(cols):
                store = f"C[{c_base}{_plus(f'e_{j}', m * ne)}] = {narrow(f'acc_{m}_{j}')};"
                out.append(f"  if (e_{j} < {ne}u) {{ {store} }}" if gn else f"  {store}")
    else:
        out += _reduce_and_store(M=M, ne=ne, bne=bne, wk=wk, wx=wx, nt=nt, cols=cols, gn=gn, c_base=c_base, narrow=narrow)
    out.append("}")
    return "\n".join(out) + "\n"


def _reduce_and_store(*, M: int, ne: int, bne: int, wk: int, wx: int, nt: int, cols: int, gn: bool,
                      c_base: str, narrow: Callable[[str], str]) -> list[str]:
    """Partial sums to R[ky*per + m*bne + j*wx + tx] (per = M*bne outputs of the workgroup); a
    barrier; for WK > 8, a first stage where per*(WK/G) tasks each add G consecutive partials of
    one output in place, and another barrier (so no thread adds more than about 2*sqrt(WK) values
    in a row); then output o is summed by thread ``tid + e*nt`` and stored. Every barrier is at
    function level, reached by every thread."""
    per = M * bne
    lines = [f"  let r0 = ky * {per}u + tx;"]
    for m in range(M):
        for j in range(cols):
            lines.append(f"  R[{_plus('r0', m * bne + j * wx)}] = acc_{m}_{j};")
    lines.append("  workgroupBarrier();")
    lines.append(f"  let tid = ky * {wx}u + tx;")
    g = _group_size(wk)
    stride = per
    if g > 1:
        tasks = per * (wk // g)
        for e in range(_cdiv(tasks, nt)):
            q, x = f"q_{e}", f"x_{e}"
            terms = " + ".join(f"R[{_plus(x, r * per)}]" for r in range(g))
            first = f"{q} * {g}u" if per == 1 else f"({q} / {per}u) * {g * per}u + {q} % {per}u"
            body = [f"let {x} = {first};", f"R[{x}] = {terms};"]
            lines.append(f"  let {q} = {_plus('tid', e * nt)};")
            lines += _guarded(body, f"{q} < {tasks}u" if (e + 1) * nt > tasks else None)
        lines.append("  workgroupBarrier();")
        wk, stride = wk // g, g * per
    for e in range(_cdiv(per, nt)):
        o = f"o_{e}"
        lines.append(f"  let {o} = {_plus('tid', e * nt)};")
        if wk <= 16:
            terms = " + ".join(f"R[{_plus(o, r * stride)}]" for r in range(wk))
            body = [f"let s_{e} = {terms};"]
        else:
            body = [f"var s_{e} = R[{o}];",
                    f"for (var r = 1u; r < {wk}u; r = r + 1u) {{ s_{e} = s_{e} + R[{o} + r * {stride}u]; }}"]
        if M > 1:
            body.append(f"let ec_{e} = e0 + {o} % {bne}u;")
            body.append(f"let ci_{e} = {c_base}({o} / {bne}u) * {ne}u + ec_{e};")
        else:
            body.append(f"let ec_{e} = e0 + {o};")
            body.append(f"let ci_{e} = {c_base}ec_{e};")
        store = f"C[ci_{e}] = {narrow(f's_{e}')};"
        body.append(f"if (ec_{e} < {ne}u) {{ {store} }}" if gn else store)
        lines += _guarded(body, f"{o} < {per}u" if (e + 1) * nt > per else None)
    return lines


def _group_size(wk: int) -> int:
    """Partials per first-stage group: the largest divisor g of WK with g*g <= WK, for WK > 8;
    1 (single stage) otherwise."""
    if wk <= _UNROLL_REDUCE:
        return 1
    return max(d for d in range(1, math.isqrt(wk) + 1) if wk % d == 0)


def _guarded(body: list[str], cond: str | None) -> list[str]:
    if cond is None:
        return [f"  {b}" for b in body]
    return [f"  if ({cond}) {{", *[f"    {b}" for b in body], "  }"]


