"""Tiled f32 matmul in WGSL, one kernel per shape (shapes are baked in as constants).

Layout: bindings 0 = A [batch, M, K], 1 = B [batch, K, N] (read), 2 = C [batch, M, N] (read_write),
row-major f32 storage arrays; batch item in ``workgroup_id.z``; dispatch (ceil(N/BN), ceil(M/BM),
batch); workgroup (BN/TN, BM/TM). Thread (tx, ty) owns rows ``ty + i*(BM/TM)`` and columns
``tx + j*(BN/TN)`` of the block tile (strided: reads from the B tile are conflict-free and stores
coalesce), accumulated in named scalars ``acc_i_j`` (dynamically indexed local arrays spill).
SH=1 stages a BK slice of A (transposed, ``As[k][m]``) and of B (``Bs[k][n]``) in workgroup memory,
loaded cooperatively by all threads; UK=1 unrolls the loop over that slice (constant offsets into
the tiles), UK=0 keeps it a loop. SH=0 reads A and B from global memory (BK and UK are then unused
and canonicalized to 8 and 0). Dimensions that do not divide by their tile get clamped,
zero-filled loads and guarded stores; a shape that divides evenly gets no bounds checks at all.
"""

from __future__ import annotations

import math
from typing import Callable

from ..caps import DeviceCaps
from ..ops import MatMul
from ..protocol import KernelSource
from ..space import Config, Param, Rule, Space
from .dtype_rules import dtype_rules, require_f32

NNJIT_MAX_THREADS = 256
_UNROLL_LOADS = 8  # cooperative loads per thread up to which the load loop is unrolled in Python


# Weights of the prior per device class (see MatmulWGSL.prior).
_GPU_PRIOR = dict(sh=1, sh_cost=1.5, tm_cost=0.5, log2_tm=3.0, tile_cost=0.25, log2_tile=6.5, log2_bk=3.0,
                  threads=32768, workgroups=64)
_CPU_PRIOR = dict(sh=0, sh_cost=1.5, tm_cost=1.0, log2_tm=3.0, tile_cost=0.5, log2_tile=6.0, log2_bk=4.0,
                  threads=1, workgroups=16)


def _next_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


class MatmulWGSL:
    """Template ``matmul-wgsl``: ``space(op, caps)`` is the lite space for that op on that device
    and ``render(op, config)`` its WGSL kernel. Contract: every config of ``space()`` renders to a
    kernel that is correct for the op's shape and within the device's limits; ``render`` raises
    ValueError for a config outside ``params()``'s grid or with inconsistent tiles. ``version``
    goes into cache keys: bump it on any change to the generated code."""

    name = "matmul-wgsl"
    version = "2"  # 2: UK (unrolled BK loop) and the measured priors
    backend = "webgpu"
    op_kind = "matmul"
    dtypes = ("f32",)  # op dtypes with kernels here (dtype_rules.py)

    def params(self) -> tuple[Param, ...]:
        return (
            Param("BM", (16, 32, 64, 128)),
            Param("BN", (16, 32, 64, 128)),
            Param("BK", (8, 16, 32)),
            Param("TM", (1, 2, 4, 8)),
            Param("TN", (1, 2, 4, 8)),
            Param("SH", (0, 1)),
            Param("UK", (0, 1)),
        )

    def rules(self, op: MatMul, caps: DeviceCaps) -> tuple[Rule, ...]:
        """The lite space's rules. Each rule's ``key`` is every value its predicate reads besides
        the config (Space.build memoises the verdicts of keyed rules across ops and devices)."""
        def threads(c: Config) -> tuple[int, int]:
            return c["BN"] // c["TN"], c["BM"] // c["TM"]

        max_x, max_y, _ = caps.max_workgroup_size
        max_inv, max_storage, regs = caps.max_invocations, caps.max_workgroup_storage, caps.regs_per_thread
        is_cpu = caps.is_cpu
        bm_max, bn_max = max(16, _next_pow2(op.M)), max(16, _next_pow2(op.N))
        max_wg = caps.max_workgroups_per_dimension
        operand_bytes = 4 * max(op.batch * op.M * op.K, op.batch * op.K * op.N, op.batch * op.M * op.N)
        fits = operand_bytes <= caps.max_storage_buffer_binding_size
        return (
            Rule("tm-le-bm", "nnJIT", lambda c: c["TM"] <= c["BM"], "micro-tile rows fit in the block tile", key=()),
            Rule("tn-le-bn", "nnJIT", lambda c: c["TN"] <= c["BN"], "micro-tile columns fit in the block tile", key=()),
            Rule("square-micro-tile", "nnJIT", lambda c: c["TM"] == c["TN"], "micro-tile is square (TM == TN)", key=()),
            Rule(
                "min-4-threads-per-axis",
                "nnJIT",
                lambda c: min(threads(c)) >= 4,
                "at least 4 threads along each workgroup axis (BN/TN >= 4, BM/TM >= 4)",
                key=(),
            ),
            Rule(
                "max-256-threads",
                "nnJIT",
                lambda c: threads(c)[0] * threads(c)[1] <= NNJIT_MAX_THREADS,
                f"at most {NNJIT_MAX_THREADS} threads per workgroup",
                key=(),
            ),
            Rule(
                "max-invocations",
                "WebGPU",
                lambda c: threads(c)[0] * threads(c)[1] <= max_inv,
                f"threads per workgroup <= maxComputeInvocationsPerWorkgroup ({max_inv})",
                key=max_inv,
            ),
            Rule(
                "workgroup-size-dims",
                "WebGPU",
                lambda c: threads(c)[0] <= max_x and threads(c)[1] <= max_y,
                f"workgroup x <= maxComputeWorkgroupSizeX ({max_x}), y <= maxComputeWorkgroupSizeY ({max_y})",
                key=(max_x, max_y),
            ),
            Rule(
                "workgroup-storage",
                "WebGPU",
                lambda c: c["SH"] == 0 or (c["BM"] + c["BN"]) * c["BK"] * 4 <= max_storage,
                f"(BM*BK + BK*BN)*4 bytes <= maxComputeWorkgroupStorageSize ({max_storage}) when SH=1",
                key=max_storage,
            ),
            Rule(
                "registers-per-thread",
                "nnJIT",
                lambda c: c["TM"] + c["TN"] + c["TM"] * c["TN"] <= regs,
                f"TM + TN + TM*TN registers <= regs_per_thread ({regs})",
                key=regs,
            ),
            Rule(
                "unroll-k-by-device",
                "ours",
                lambda c: c["SH"] == 0 or c["UK"] == (0 if is_cpu else 1),
                "SH=1 BK loop fully unrolled (UK=1) on GPUs, kept a loop on CPU adapters (measured: "
                "unrolled 1.1-2.3x faster on an NVIDIA H200, 2-3x slower on llvmpipe)",
                key=is_cpu,
            ),
            Rule(
                "block-fits-problem",
                "ours",
                lambda c: c["BM"] <= bm_max and c["BN"] <= bn_max,
                "no block tile larger than the problem needs: BM <= max(16, next_pow2(M)), same for BN/N",
                key=(bm_max, bn_max),
            ),
            Rule(
                "dispatch-limit",
                "WebGPU",
                lambda c: max(_cdiv(op.N, c["BN"]), _cdiv(op.M, c["BM"]), op.batch) <= max_wg,
                f"workgroups per dispatch dimension <= maxComputeWorkgroupsPerDimension ({max_wg})",
            ),
            Rule(
                "operands-fit-binding",
                "WebGPU",
                lambda c: fits,
                f"each operand fits maxStorageBufferBindingSize ({caps.max_storage_buffer_binding_size} bytes)",
            ),
        )

    @staticmethod
    def canonicalize(config: Config) -> Config:
        """SH=0 has no BK tile loop: pin BK and UK to their first values so the space has no
        duplicates."""
        if config["SH"] == 0 and (config["BK"], config["UK"]) != (8, 0):
            return config.replace(BK=8, UK=0)
        return config

    def prior(self, op: MatMul, caps: DeviceCaps) -> Callable[[Config], float]:
        """Score (lower first), fitted to timings of the whole space on three devices. GPUs (NVIDIA
        H200, clocks held at 1980 MHz): SH=1, 8x8 micro-tiles, 64-128 tiles, BK 8, and enough
        threads doing real work (small M or N wants small micro-tiles); the prior's first 6 configs
        held one within 5% of the best for 2048^3, 384x3072x768 and 1x768x3072. CPU adapters
        (SwiftShader, llvmpipe): barriers are expensive and caches stage the operands, so SH=0 with
        8x8 micro-tiles first. Both: little padding waste, enough workgroups to fill the device."""
        w = _CPU_PRIOR if caps.is_cpu else _GPU_PRIOR

        def score(c: Config) -> float:
            bm, bn, bk, tm, tn, sh = c["BM"], c["BN"], c["BK"], c["TM"], c["TN"], c["SH"]
            s = 0.0 if sh == w["sh"] else w["sh_cost"]
            s += w["tm_cost"] * abs(math.log2(tm) - w["log2_tm"])
            s += w["tile_cost"] * (abs(math.log2(bm) - w["log2_tile"]) + abs(math.log2(bn) - w["log2_tile"]))
            if sh:
                s += 0.5 * abs(math.log2(bk) - w["log2_bk"])
            gm, gn = _cdiv(op.M, bm), _cdiv(op.N, bn)
            s += 4.0 * (1.0 - (op.M * op.N) / (gm * bm * gn * bn))
            busy = _cdiv(op.M, tm) * _cdiv(op.N, tn) * op.batch  # threads that own a real output
            if busy < w["threads"]:
                s += math.log2(w["threads"] / busy)
            nwg = gm * gn * op.batch
            if nwg < w["workgroups"]:
                s += 0.75 * math.log2(w["workgroups"] / nwg)
            return s

        return score

    def space(self, op: MatMul, caps: DeviceCaps) -> Space:
        if not isinstance(op, MatMul):
            raise TypeError(f"{self.name} renders matmul ops, not {type(op).__name__}")
        return Space.build(
            self.params(), dtype_rules(op, caps, self) + (no_epilogue_rule(op, self.name),) + tuple(self.rules(op, caps)),
            canonicalize=self.canonicalize, prior=self.prior(op, caps)
        )

    def render(self, op: MatMul, config: Config) -> KernelSource:
        return KernelSource(
            code=render_wgsl(op, config, header=f"{self.name} v{self.version}"),
            entry="main",
            workgroups=(_cdiv(op.N, config["BN"]), _cdiv(op.M, config["BM"]), op.batch),
            workgroup_size=(config["BN"] // config["TN"], config["BM"] // config["TM"], 1),
        )


def _check_config(config: Config) -> tuple[int, int, int, int, int, int, int]:
    try:
        bm, bn, bk, tm, tn, sh, uk = (config[n] for n in ("BM", "BN", "BK", "TM", "TN", "SH", "UK"))
    except KeyError as e:
        raise ValueError(f"matmul config misses parameter {e}") from None
    if min(bm, bn, bk, tm, tn) < 1 or sh not in (0, 1) or uk not in (0, 1):
        raise ValueError(f"bad matmul config {config.key()}")
    if bm % tm or bn % tn:
        raise ValueError(f"block tile must be a multiple of the micro-tile: {config.key()}")
    return bm, bn, bk, tm, tn, sh, uk


def render_wgsl(op: MatMul, config: Config, *, header: str = "matmul-wgsl") -> str:
    """WGSL source of ``config`` for ``op``; see the module docstring for the kernel's shape."""
    require_f32(op, "matmul-wgsl")
    bm, bn, bk, tm, tn, sh, uk = _check_config(config)
    M, N, K = op.M, op.N, op.K
    cs, rs = bn // tn, bm // tm  # threads along x (columns) and y (rows) = strides of owned cols/rows
    nt = cs * rs
    gm, gn = M % bm != 0, N % bn != 0
    gk = sh == 1 and K % bk != 0
    out: list[str] = [
        f"// {header}: C = A @ B, batch={op.batch} M={M} N={N} K={K}; {config.key()}",
        f"const M = {M}u;",
        f"const N = {N}u;",
        f"const K = {K}u;",
        "@group(0) @binding(0) var<storage, read> A: array<f32>;",
        "@group(0) @binding(1) var<storage, read> B: array<f32>;",
        "@group(0) @binding(2) var<storage, read_write> C: array<f32>;",
    ]
    if sh:
        out.append(f"var<workgroup> As: array<f32, {bk * bm}>;")
        out.append(f"var<workgroup> Bs: array<f32, {bk * bn}>;")
    out += [
        "",
        f"@compute @workgroup_size({cs}, {rs}, 1)",
        "fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {",
        "  let tx = lid.x;",
        "  let ty = lid.y;",
        f"  let row0 = wg.y * {bm}u;",
        f"  let col0 = wg.x * {bn}u;",
    ]
    if op.batch > 1:
        out += [f"  let a_base = wg.z * {M * K}u;", f"  let b_base = wg.z * {K * N}u;", f"  let c_base = wg.z * {M * N}u;"]
        a_base, b_base, c_base = "a_base + ", "b_base + ", "c_base + "
    else:
        a_base = b_base = c_base = ""
    for i in range(tm):
        for j in range(tn):
            out.append(f"  var acc_{i}_{j}: f32 = 0.0;")

    if sh:
        out.append(f"  let tid = ty * {cs}u + tx;")
        out.append(f"  for (var k0 = 0u; k0 < K; k0 = k0 + {bk}u) {{")
        out += _tile_load("a", "As", bm * bk, nt, row_len=bk, guard_outer=gm, guard_k=gk, a_base=a_base, bm=bm)
        out += _tile_load("b", "Bs", bk * bn, nt, row_len=bn, guard_outer=gn, guard_k=gk, a_base=b_base, bm=bm)
        out.append("    workgroupBarrier();")
        out += _tile_compute(bm, bn, bk, tm, tn, unrolled=bool(uk))
        out += ["    workgroupBarrier();", "  }"]
    else:
        for i in range(tm):
            r = f"row0 + ty{f' + {i * rs}u' if i else ''}"
            r = f"min({r}, {M - 1}u)" if gm else r
            out.append(f"  let ar_{i} = {a_base}({r}) * K;")
        for j in range(tn):
            c = f"col0 + tx{f' + {j * cs}u' if j else ''}"
            c = f"min({c}, {N - 1}u)" if gn else c
            out.append(f"  let bc_{j} = {b_base}{c};")
        out.append("  for (var k = 0u; k < K; k = k + 1u) {")
        out += [f"    let a_{i} = A[ar_{i} + k];" for i in range(tm)]
        out += [f"    let b_{j} = B[bc_{j} + k * N];" for j in range(tn)]
        out += [f"    acc_{i}_{j} = acc_{i}_{j} + a_{i} * b_{j};" for i in range(tm) for j in range(tn)]
        out.append("  }")

    for j in range(tn):
        out.append(f"  let c_{j} = col0 + tx{f' + {j * cs}u' if j else ''};")
    for i in range(tm):
        out.append(f"  let r_{i} = row0 + ty{f' + {i * rs}u' if i else ''};")
        ind = "  "
        if gm:
            out.append(f"  if (r_{i} < M) {{")
            ind = "    "
        out.append(f"{ind}let cr_{i} = {c_base}r_{i} * N;")
        for j in range(tn):
            store = f"C[cr_{i} + c_{j}] = acc_{i}_{j};"
            out.append(f"{ind}if (c_{j} < N) {{ {store} }}" if gn else f"{ind}{store}")
        if gm:
            out.append("  }")
    out.append("}")
    return "\n".join(out) + "\n"


def _tile_compute(bm: int, bn: int, bk: int, tm: int, tn: int, *, unrolled: bool) -> list[str]:
    """The multiply-accumulate over one BK slice of the staged tiles: a WGSL loop, or fully unrolled
    with one scope per k step and constant offsets into As and Bs."""
    rs, cs = bm // tm, bn // tn

    def index(k: int | str, stride: int, lane: str, extra: int) -> str:
        if isinstance(k, int):
            off = k * stride + extra
            return f"{lane} + {off}u" if off else lane
        return f"{k} * {stride}u + {lane}" + (f" + {extra}u" if extra else "")

    fma = [f"      acc_{i}_{j} = acc_{i}_{j} + a_{i} * b_{j};" for i in range(tm) for j in range(tn)]

    def step(k: int | str) -> list[str]:
        return (
            [f"      let a_{i} = As[{index(k, bm, 'ty', i * rs)}];" for i in range(tm)]
            + [f"      let b_{j} = Bs[{index(k, bn, 'tx', j * cs)}];" for j in range(tn)]
            + fma
        )

    if unrolled:
        return [line for kk in range(bk) for line in ["    {", *step(kk), "    }"]]
    return [f"    for (var k = 0u; k < {bk}u; k = k + 1u) {{", *step("k"), "    }"]


def _tile_load(
    which: str, dst: str, total: int, nt: int, *, row_len: int, guard_outer: bool, guard_k: bool, a_base: str, bm: int
) -> list[str]:
    """Cooperative load of one tile by all ``nt`` threads, consecutive threads reading consecutive
    global addresses. A tile: BM rows x BK, stored transposed As[k * BM + m]. B tile: BK rows x BN,
    stored Bs[k * BN + n]. Out-of-range elements read a clamped (valid) address and store 0."""
    loads = _cdiv(total, nt)
    partial = total % nt != 0
    lines: list[str] = []

    def body(idx: str, ind: str) -> list[str]:
        if which == "a":  # idx -> (m, k) with k fastest: A[(row0 + m) * K + k0 + k]
            outer, inner = f"{idx} / {row_len}u", f"{idx} % {row_len}u"
            grow, gcol = f"row0 + {outer}", f"k0 + {inner}"
            store = f"{dst}[({inner}) * {bm}u + {outer}]"
            rlim, clim, stride = "M", "K", "K"
            row_guard, col_guard = guard_outer, guard_k
        else:  # idx -> (k, n) with n fastest: B[(k0 + k) * N + col0 + n]
            outer, inner = f"{idx} / {row_len}u", f"{idx} % {row_len}u"
            grow, gcol = f"k0 + {outer}", f"col0 + {inner}"
            store = f"{dst}[{idx}]"
            rlim, clim, stride = "K", "N", "N"
            row_guard, col_guard = guard_k, guard_outer
        src = dict(a="A", b="B")[which]
        if not (row_guard or col_guard):
            return [f"{ind}{store} = {src}[{a_base}({grow}) * {stride} + {gcol}];"]
        res = [f"{ind}let gr_{idx} = {grow};", f"{ind}let gc_{idx} = {gcol};"]
        conds, r, c = [], f"gr_{idx}", f"gc_{idx}"
        if row_guard:
            conds.append(f"gr_{idx} < {rlim}")
            r = f"min(gr_{idx}, {rlim} - 1u)"
        if col_guard:
            conds.append(f"gc_{idx} < {clim}")
            c = f"min(gc_{idx}, {clim} - 1u)"
        res.append(f"{ind}{store} = select(0.0, {src}[{a_base}{r} * {stride} + {c}], {' && '.join(conds)});")
        return res

    if loads <= _UNROLL_LOADS:
        for e in range(loads):
            idx = f"{which}{e}"
            lines.append(f"    let {idx} = tid{f' + {e * nt}u' if e else ''};")
            if partial and (e + 1) * nt > total:
                lines.append(f"    if ({idx} < {total}u) {{")
                lines += body(idx, "      ")
                lines.append("    }")
            else:
                lines += body(idx, "    ")
    else:
        idx = f"{which}i"
        lines.append(f"    for (var e = 0u; e < {loads}u; e = e + 1u) {{")
        lines.append(f"      let {idx} = tid + e * {nt}u;")
        if partial:
            lines.append(f"      if ({idx} < {total}u) {{")
            lines += body(idx, "        ")
            lines.append("      }")
        else:
            lines += body(idx, "      ")
        lines.append("    }")
    return lines


def no_epilogue_rule(op: MatMul, name: str) -> Rule:
    """Templates without a fused epilogue offer no config for an op that has one."""
    plain = not op.has_epilogue
    return Rule("no-fused-epilogue", "ours", lambda c: plain,
                f"{name} has no fused bias/activation: ops with an epilogue use matmul-wgsl-vec4", key=plain)
