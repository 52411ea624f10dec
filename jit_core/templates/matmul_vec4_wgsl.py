"""Vec4 f32 matmul in WGSL (template ``matmul-wgsl-vec4``), one kernel per shape, built for speed.

Bindings and layout as ``matmul-wgsl``: 0 = A [batch, M, K], 1 = B [batch, K, N] (read-only
storage), 2 = C [batch, M, N] (read_write storage), row-major f32; batch item in ``workgroup_id.z``;
dispatch (ceil(N/BN), ceil(M/BM), batch); workgroup (WX, WY). A is declared ``array<vec4<f32>>``
when K % 4 == 0, B and C when N % 4 == 0; otherwise ``array<f32>``, read 4 scalars at a time.

Thread (tx, ty) owns rows ``ty*TM + i`` of the block tile (contiguous, so the transposed A tile
hands them over as vec4) and the vec4 columns ``tx + j*WX`` (strided: B-tile reads are
conflict-free, global reads and stores coalesce), accumulated in named ``acc_i_j: vec4<f32>``
(dynamically indexed local arrays spill). Every loop over k inside a tile is unrolled in Python
into straight-line WGSL. Three kernels, chosen by SH and KS:

- SH=1, tiled: BM = WY*TM, BN = WX*TN. Each BK slice of A is staged transposed, ``As[k][m]``
  (rows padded by 4 floats against bank conflicts of the transposing stores), and of B as vec4,
  ``Bs[k][n/4]``, by cooperative loads in which consecutive threads read consecutive addresses.
  With TM % 4 == 0 As holds vec4 (4 rows of one k): a thread loads a 4x4 block of A (4 rows x 4 k)
  and transposes it in registers, so every workgroup store is a whole vec4 (no stores to vector
  components); otherwise As is scalar. PF=1 double-buffers both tiles and prefetches the next slice
  into named registers while the current one is computed: one barrier per slice instead of two.
- SH=0, KS=0, direct: A and B straight from global memory (the caches stage them: best on CPU
  rasterizers, measured); BK is the unroll depth of the k loop.
- SH=0, KS=1, split-K for skinny M (decode GEMV): BM = TM; the WY threads of a column split K in
  BK chunks and their partial sums are added through workgroup memory at the end.

An f16 op (``op.dtype`` 'f16', the device needs ``shader-f16``) declares ``enable f16;`` and its
bindings as f16 (``vec4<f16>`` or ``f16``); ``op.acc`` picks the compute type of the tiles,
registers and accumulators: 'f16' keeps everything in f16 (half the workgroup memory), 'f32'
widens each value as it is loaded from global memory and narrows each result as it is stored
(split-K's scratch P stays in the compute type). An f32 op's code does not depend on any of this.

A fused epilogue (``op.bias``: binding 2 = bias [N], C moves to binding 3; ``op.act``: relu, gelu
in its tanh form, silu) is applied to each vec4 of results as it is stored, by one WGSL function
``epi``; a plain matmul's code is unchanged.

Only the k dimension of a tile is ever zero-filled: rows past M and columns past N read clamped
(valid) addresses, compute values nobody stores, and the stores are masked. A shape whose M, N
(and, tiled, K) divide by the tile gets no bounds check at all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..caps import DeviceCaps
from ..ops import MatMul
from ..protocol import BUFFER_DTYPES, Dispatch, KernelSource
from ..space import Config, Param, Rule, Space
from .dtype_rules import dtype_rules
from .wgsl_common import act_expr, convert, enable_f16

NNJIT_MAX_THREADS = 256
MIN_THREADS = 32  # one NVIDIA warp; the widest common subgroup
SWIZZLE_MIN_WORKGROUPS = 512  # grid size from which the grouped launch order (GS) is offered
SPLIT_K_MAX_WORKGROUPS = 128  # grid size below which split-K across workgroups (SK) is offered
SPLIT_K_MAX = 8
SKINNY_M = 8  # M up to which the split-K and direct kernels are offered on GPUs
A_PAD = 4  # floats added to each row of the transposed A tile (keeps vec4 alignment)
_UNROLL_LOADS = 8  # cooperative loads per thread up to which the load loop is unrolled in Python
_COMP = "xyzw"


def _next_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def slice_k(K: int, sk: int, bk: int) -> int:
    """K range of one split-K slice: K / SK rounded up to whole BK tiles."""
    return _cdiv(K, sk * bk) * bk


def _u(n: int) -> str:
    return f" + {n}u" if n else ""


@dataclass(frozen=True)
class _Plan:
    """A config, checked and with its derived tile sizes."""

    wx: int
    wy: int
    tm: int
    tn: int
    bk: int
    sh: int
    pf: int
    ks: int
    gs: int = 1
    sk: int = 1

    @property
    def bm(self) -> int:
        return self.tm if self.ks else self.wy * self.tm

    @property
    def bn(self) -> int:
        return self.wx * self.tn

    @property
    def nt(self) -> int:
        return self.wx * self.wy

    @property
    def bmp(self) -> int:
        return self.bm + A_PAD

    @property
    def a_rows(self) -> int:
        """Rows of A per tiled load unit: 4 when TM % 4 == 0 (As holds vec4 of 4 rows; the unit is
        a 4x4 block transposed in registers, so every workgroup store is a whole vec4), else 1."""
        return 4 if self.tm % 4 == 0 else 1

    def load_units(self) -> tuple[int, int]:
        """Load units per thread and tile slice (rounded up) of A and of B; 0 when not tiled."""
        if not self.sh:
            return 0, 0
        return _cdiv(self.bm * self.bk // (4 * self.a_rows), self.nt), _cdiv(self.bk * self.bn // 4, self.nt)

    def registers(self) -> int:
        """nnJIT's TM*TN + TM + TN, plus 4 per prefetched vec4 (ours)."""
        ua, ub = self.load_units()
        return self.tm * self.tn + self.tm + self.tn + (4 * (ua * self.a_rows + ub) if self.pf else 0)

    def workgroup_bytes(self, elem: int = 4) -> int:
        """Workgroup memory of the tiles (or split-K partials) of ``elem``-byte values."""
        if self.sh:
            return (self.bk * self.bmp + self.bk * self.bn) * elem * (2 if self.pf else 1)
        return self.nt * self.tm * self.tn * elem if self.ks else 0


_NAMES = ("WX", "WY", "TM", "TN", "BK", "SH", "PF", "KS")


def _plan(config: Config) -> _Plan:
    try:
        p = _Plan(*(int(config[n]) for n in _NAMES), gs=int(config.get("GS", 1)), sk=int(config.get("SK", 1)))
    except KeyError as e:
        raise ValueError(f"matmul-vec4 config misses parameter {e}") from None
    if min(p.wx, p.wy, p.tm, p.tn, p.bk) < 1 or not {p.sh, p.pf, p.ks} <= {0, 1}:
        raise ValueError(f"bad matmul-vec4 config {config.key()}")
    if p.tn % 4 or p.bk % 4:
        raise ValueError(f"TN and BK must be multiples of 4 (vec4): {config.key()}")
    if p.ks and p.sh or p.pf and not p.sh:
        raise ValueError(f"KS=1 needs SH=0 and PF=1 needs SH=1: {config.key()}")
    if p.gs < 1 or p.gs > 1 and not p.sh:
        raise ValueError(f"GS must be >= 1, and 1 unless SH=1: {config.key()}")
    if p.sk < 1 or p.sk > 1 and not p.sh:
        raise ValueError(f"SK must be >= 1, and 1 unless SH=1: {config.key()}")
    if p.pf and max(p.load_units()) > _UNROLL_LOADS:
        raise ValueError(f"PF=1 prefetches at most {_UNROLL_LOADS} load units per operand and thread: {config.key()}")
    return p


class MatmulVec4WGSL:
    """Template ``matmul-wgsl-vec4``: ``space(op, caps)`` is the lite space of the vec4 kernels for
    that op on that device and ``render(op, config)`` its WGSL. Contract: every config of
    ``space()`` renders to a kernel that is correct for the op's shape (any M, N, K, batch) and
    within the device's limits; ``render`` is deterministic and raises ValueError for a config
    outside ``params()``'s names or with inconsistent values. ``max_threads`` is the thread cap of
    rule max-threads (nnJIT's 256 by default). ``version`` goes into cache keys: bump it on any
    change to the generated code."""

    name = "matmul-wgsl-vec4"
    version = "4"  # 4: nested workgroup tile arrays; 3: GS (grouped launch order); 2: unused col0 dropped
    backend = "webgpu"
    op_kind = "matmul"
    dtypes = ("f32", "f16")  # op dtypes with kernels here (dtype_rules.py)

    def __init__(self, *, max_threads: int = NNJIT_MAX_THREADS) -> None:
        if max_threads < 1:
            raise ValueError(f"max_threads must be >= 1, got {max_threads}")
        self.max_threads = max_threads

    def params(self) -> tuple[Param, ...]:
        return (
            Param("WX", (4, 8, 16, 32)),
            Param("WY", (1, 2, 4, 8, 16, 32)),
            Param("TM", (1, 2, 4, 8)),
            Param("TN", (4, 8)),
            Param("BK", (8, 16, 32)),
            Param("SH", (1, 0)),
            Param("PF", (0, 1)),
            Param("KS", (0, 1)),
            Param("GS", (1, 8)),
            Param("SK", (1, 2, 4, SPLIT_K_MAX)),
        )

    @staticmethod
    def canonicalize(config: Config) -> Config:
        """KS is only read by SH=0 and PF only by SH=1: pin the unused one to 0."""
        if config["SH"] and config["KS"]:
            return config.replace(KS=0)
        if not config["SH"] and (config["PF"] or config.get("GS", 1) != 1 or config.get("SK", 1) != 1):
            return config.replace(PF=0, GS=1, SK=1)
        return config

    def rules(self, op: MatMul, caps: DeviceCaps) -> tuple[Rule, ...]:
        max_x, max_y, _ = caps.max_workgroup_size
        max_wg = caps.max_workgroups_per_dimension
        operand_bytes = BUFFER_DTYPES[op.dtype] * max(op.batch * op.M * op.K, op.batch * op.K * op.N, op.batch * op.M * op.N)
        elem = BUFFER_DTYPES[op.acc]  # bytes of a workgroup tile value (the compute type)
        skinny = op.M <= SKINNY_M
        cap = self.max_threads

        def plan(c: Config) -> _Plan:
            return _Plan(*(c[n] for n in _NAMES))

        def bm(c: Config) -> int:
            return c["TM"] if c["KS"] else c["WY"] * c["TM"]

        def bn(c: Config) -> int:
            return c["WX"] * c["TN"]

        min_area = min(64 * 64, _cdiv(op.M * op.N * op.batch, 64))
        min_work = 32 if caps.is_cpu else 16
        min_threads = MIN_THREADS if caps.is_cpu else 2 * MIN_THREADS

        def grid(c: Config) -> int:
            return _cdiv(op.M, bm(c)) * _cdiv(op.N, bn(c)) * op.batch

        def split_ok(c: Config) -> bool:
            kc = slice_k(op.K, c["SK"], c["BK"])
            return (c["SH"] == 1 and c["PF"] == 1 and c["TM"] * c["TN"] >= 32 and not caps.is_cpu
                    and grid(c) * c["SK"] // 2 < SPLIT_K_MAX_WORKGROUPS
                    and (grid(c) * c["SK"] >= SPLIT_K_MAX_WORKGROUPS or c["SK"] == SPLIT_K_MAX)
                    and (c["SK"] - 1) * kc < op.K and kc >= 4 * c["BK"])

        return (
            Rule("split-k-small-grids", "ours", lambda c: c["SK"] == 1 or split_ok(c),
                 f"SK > 1 (K split over SK workgroups, partial products summed by a second dispatch) only for "
                 f"prefetching tiled kernels (PF=1, TM*TN >= 32: the fast ones) on GPUs whose grid has fewer than {SPLIT_K_MAX_WORKGROUPS} workgroups, and "
                 "only up to the first SK that reaches that many; every slice non-empty and at least 4 BK tiles deep (H200: K-heavy FFN-down shapes of 16-24 "
                 "workgroups left most of its 132 SMs idle)"),
            Rule("split-k-for-skinny-m", "ours", lambda c: not c["KS"] or skinny,
                 f"KS=1 only when M <= {SKINNY_M}: with more rows, rows give the parallelism and tiles the reuse"),
            Rule("direct-on-cpu-or-skinny-m", "ours", lambda c: c["SH"] or caps.is_cpu or skinny,
                 f"SH=0 on GPUs only when M <= {SKINNY_M}: big GEMMs need workgroup-memory reuse "
                 "(PLATFORM.md: the tiled vec4 kernel is the one at 8-25 TFLOP/s on an H200)"),
            Rule("prefetch-on-gpus", "ours", lambda c: not c["PF"] or not caps.is_cpu,
                 "PF=1 only on GPUs: it hides global-memory latency behind compute, which CPU rasterizers "
                 "leave to their caches; there the direct kernels lead anyway (lavapipe 256^3: 6.8 GFLOP/s, "
                 "best tiled 4.2)"),
            Rule("micro-tile-work", "ours", lambda c: c["TM"] * c["TN"] >= min_work or op.M <= bm(c),
                 f"TM*TN >= {min_work} unless one block row covers M. GPUs: fewer outputs per thread make the "
                 "inner loop bound by workgroup-memory loads; CPU rasterizers (32) run invocations in SIMD lanes, "
                 "so each needs much work (lavapipe 256^3: the best TM*TN < 32 config was 2.2x slower)"),
            Rule("tm1-only-for-gemv", "ours", lambda c: c["TM"] > 1 or op.M == 1,
                 "TM=1 (no reuse of B across rows) only when M == 1"),
            Rule("micro-tile-aspect", "ours", lambda c: 2 * c["TM"] >= c["TN"] or op.M <= bm(c),
                 "TM >= TN/2 (nnJIT's square micro-tile, relaxed since TN counts vec4 lanes) unless one "
                 "block row covers all of M"),
            Rule("tiled-needs-row-reuse", "ours", lambda c: not c["SH"] or c["WY"] >= 2,
                 "SH=1 needs WY >= 2: a B tile read by a single thread row only adds barriers"),
            Rule("min-4-threads-per-axis", "nnJIT",
                 lambda c: c["WX"] >= 4 and (c["WY"] >= 4 or (not c["KS"] and op.M <= bm(c))),
                 "at least 4 threads along each workgroup axis; WY < 4 allowed (ours) only when one "
                 "block row covers all of M"),
            Rule("min-threads", "ours", lambda c: c["WX"] * c["WY"] >= min_threads or (skinny and c["WX"] * c["WY"] >= MIN_THREADS),
                 f"at least {min_threads} threads per workgroup ({MIN_THREADS} on CPU rasterizers and for M <= "
                 f"{SKINNY_M}): one warp of {MIN_THREADS} idles the other schedulers of a GPU's core"),
            Rule("max-threads", "nnJIT", lambda c: c["WX"] * c["WY"] <= cap,
                 f"at most {cap} threads per workgroup (nnJIT's cap is {NNJIT_MAX_THREADS}; "
                 "MatmulVec4WGSL(max_threads=...) changes it)"),
            Rule("max-invocations", "WebGPU", lambda c: c["WX"] * c["WY"] <= caps.max_invocations,
                 f"threads per workgroup <= maxComputeInvocationsPerWorkgroup ({caps.max_invocations})"),
            Rule("workgroup-size-dims", "WebGPU", lambda c: c["WX"] <= max_x and c["WY"] <= max_y,
                 f"WX <= maxComputeWorkgroupSizeX ({max_x}), WY <= maxComputeWorkgroupSizeY ({max_y})"),
            Rule("workgroup-storage", "WebGPU", lambda c: plan(c).workgroup_bytes(elem) <= caps.max_workgroup_storage,
                 f"tiles ((BK*(BM+4) + BK*BN)*{elem} bytes, twice with PF=1) or the split-K partial sums "
                 f"(WX*WY*TM*TN*{elem} bytes) <= maxComputeWorkgroupStorageSize ({caps.max_workgroup_storage})"),
            Rule("prefetch-named-registers", "ours", lambda c: not c["PF"] or max(plan(c).load_units()) <= _UNROLL_LOADS,
                 f"PF=1 only when each thread prefetches at most {_UNROLL_LOADS} load units of A and of B "
                 "(named registers; a dynamically indexed array would spill)"),
            Rule("registers-per-thread", "nnJIT", lambda c: plan(c).registers() <= caps.regs_per_thread,
                 f"TM*TN + TM + TN registers (+ 4 per prefetched vec4, ours) <= regs_per_thread ({caps.regs_per_thread})"),
            Rule("block-fits-problem", "ours",
                 lambda c: bm(c) <= _next_pow2(op.M) and c["WX"] * c["TN"] <= max(16, _next_pow2(op.N)),
                 "no block tile larger than the problem needs: BM <= next_pow2(M), BN <= max(16, next_pow2(N))"),
            Rule("block-aspect", "ours",
                 lambda c: max(bm(c), bn(c)) <= 4 * min(bm(c), bn(c)) or op.M <= bm(c) or op.N <= bn(c),
                 "block tile sides within 4x of each other (a thin tile reuses little), unless the problem "
                 "is itself that thin (BM >= M or BN >= N)"),
            Rule("min-block-area", "ours", lambda c: c["KS"] or bm(c) * bn(c) >= min_area,
                 f"BM*BN >= min(64*64, M*N*batch/64) = {min_area}: tiles under 64x64 only where 64x64 tiles "
                 "would leave fewer than 64 workgroups (split-K is exempt)"),
            Rule("swizzle-large-grids", "ours",
                 lambda c: c["GS"] == 1 or (c["SH"] and c["TM"] * c["TN"] >= 64 and _cdiv(op.M, bm(c)) > c["GS"]
                                            and _cdiv(op.M, bm(c)) * _cdiv(op.N, bn(c)) >= SWIZZLE_MIN_WORKGROUPS),
                 f"GS > 1 (block rows swept in groups of GS, for L2 reuse) only for grids of more than GS block "
                 f"rows and at least {SWIZZLE_MIN_WORKGROUPS} workgroups, and only for the kernels fast enough to "
                 "feel L2 misses (tiled, TM*TN >= 64: every H200 winner at 2048^3 and up)"),
            Rule("dispatch-limit", "WebGPU",
                 lambda c: max(_cdiv(op.N, c["WX"] * c["TN"]), _cdiv(op.M, bm(c)), op.batch * c["SK"]) <= max_wg
                 and (c["SK"] == 1 or _cdiv(op.batch * op.M * op.N, 4 * REDUCE_THREADS) <= max_wg),
                 f"workgroups per dispatch dimension <= maxComputeWorkgroupsPerDimension ({max_wg})"),
            Rule("operands-fit-binding", "WebGPU", lambda c: operand_bytes <= caps.max_storage_buffer_binding_size,
                 f"each operand fits maxStorageBufferBindingSize ({caps.max_storage_buffer_binding_size} bytes)"),
        )

    def prior(self, op: MatMul, caps: DeviceCaps):
        """Score (lower first). GPUs: tiled, 16x8 workgroup, 8x8 micro-tile, BK 16 (PLATFORM.md's
        best on an H200), prefetch a close second (GS is not scored: each config's GS=8 twin, where
        the rules offer it, comes right after it); skinny M: split-K first. CPU adapters (measured
        on lavapipe at 256^3 and 128x768x768): direct kernels with 8x8 micro-tiles first. Both:
        little padding waste and enough workgroups to keep the device busy, which puts smaller
        tiles first for small problems."""
        cpu = caps.is_cpu
        skinny = op.M <= SKINNY_M
        target_wg = 8 if cpu else 128
        lg = math.log2

        def mode_rank(c: Config) -> float:
            if skinny:
                order = ((0, 1), (0, 0), (1, 0)) if not cpu else ((0, 0), (0, 1), (1, 0))
            else:
                order = ((1, 0), (0, 0)) if not cpu else ((0, 0), (1, 0))
            return 3.0 * order.index((c["SH"], c["KS"]))

        def score(c: Config) -> float:
            p = _Plan(*(c[n] for n in _NAMES), sk=c.get("SK", 1))
            s = mode_rank(c)
            if cpu:
                s += abs(lg(p.tm) - 3) + abs(lg(p.tn) - 3) + 0.5 * abs(lg(p.nt) - 7.5) + 0.25 * abs(lg(p.bk) - 4)
            elif p.ks:
                s += abs(lg(p.wx) - 4) + 0.5 * abs(lg(p.wy) - 3) + abs(lg(p.tn) - 2) + 0.25 * abs(lg(p.bk) - 4)
            else:
                s += abs(lg(p.wx) - 4) + abs(lg(p.wy) - 3) + abs(lg(p.tm) - 3) + abs(lg(p.tn) - 3)
                s += 0.5 * abs(lg(p.bk) - 4) + 0.25 * p.pf
            gm, gn = _cdiv(op.M, p.bm), _cdiv(op.N, p.bn)
            s += 4.0 * (1.0 - (op.M * op.N) / (gm * p.bm * gn * p.bn))
            nwg = gm * gn * op.batch * p.sk
            s += 0.5 * lg(p.sk)  # the reduction's extra pass
            if nwg < target_wg:
                s += 1.5 * lg(target_wg / nwg)
            return s

        return score

    def space(self, op: MatMul, caps: DeviceCaps) -> Space:
        if not isinstance(op, MatMul):
            raise TypeError(f"{self.name} renders matmul ops, not {type(op).__name__}")
        return Space.build(self.params(), dtype_rules(op, caps, self) + self.rules(op, caps),
                           canonicalize=self.canonicalize, prior=self.prior(op, caps))

    def render(self, op: MatMul, config: Config) -> KernelSource:
        p = _plan(config)
        code = _Gen(op, p, config.key(), f"{self.name} v{self.version}").code()
        grid = (_cdiv(op.N, p.bn), _cdiv(op.M, p.bm), op.batch * p.sk)
        if p.sk == 1:
            return KernelSource(code=code, entry="main", workgroups=grid, workgroup_size=(p.wx, p.wy, 1))
        # split-K: partial products of the SK slices into scratch P [batch, SK, M, N], then one
        # thread per output vec4 (or float) adds them up and applies the epilogue into C
        n_out = op.batch * op.M * op.N // (4 if op.N % 4 == 0 else 1)
        inputs = (("A", "read"), ("B", "read"))
        return KernelSource(
            code=code, entry="main", workgroups=grid, workgroup_size=(p.wx, p.wy, 1),
            bindings=(*inputs, ("P", "read_write")),
            then=(Dispatch(_reduce_code(op, p.sk, f"{self.name} v{self.version}: {config.key()}"), "main",
                           (_cdiv(n_out, REDUCE_THREADS), 1, 1), (REDUCE_THREADS, 1, 1),
                           (("P", "read"), *((("bias", "read"),) if op.bias else ()), ("C", "read_write"))),),
            scratch=(("P", op.batch * p.sk * op.M * op.N),),
        )


REDUCE_THREADS = 256


def _act_lines(act: str, t: str) -> list[str]:
    """``x = act(x)`` for ``x`` of type ``t``, or nothing."""
    return [] if act == "none" else [f"  x = {act_expr(act, 'x', t)};"]


def _reduce_code(op: MatMul, sk: int, header: str) -> str:
    """Split-K's second dispatch: C[i] = epilogue(sum over the SK slices of P), one thread per
    output vec4 (N % 4 == 0) or float; P is [batch, SK, M, N]."""
    vec = op.N % 4 == 0
    t = f"vec4<{op.acc}>" if vec else op.acc  # P and the sums: the compute type
    s = f"vec4<{op.dtype}>" if vec else op.dtype  # bias and C: the op's dtype
    per = op.M * op.N // (4 if vec else 1)  # outputs per batch item
    total = op.batch * per
    col = f"e % {op.N // 4 if vec else op.N}u"
    lines = [
        *enable_f16(op.dtype, op.acc),
        f"// {header}: split-K reduction of {sk} slices, then the epilogue",
        f"@group(0) @binding(0) var<storage, read> P: array<{t}>;",
        *([f"@group(0) @binding(1) var<storage, read> bias: array<{s}>;"] if op.bias else []),
        f"@group(0) @binding({2 if op.bias else 1}) var<storage, read_write> C: array<{s}>;",
        "",
        f"@compute @workgroup_size({REDUCE_THREADS}, 1, 1)",
        "fn main(@builtin(global_invocation_id) gid: vec3<u32>) {",
        "  let i = gid.x;",
        f"  if (i >= {total}u) {{ return; }}",
        f"  let e = i % {per}u;",
        f"  let base = (i / {per}u) * {sk * per}u + e;",
        "  var x = " + " + ".join(f"P[base{_u(s * per)}]" for s in range(sk)) + ";",
        *([f"  x = x + {convert(f'bias[{col}]', op.dtype, op.acc, vec)};"] if op.bias else []),
        *_act_lines(op.act, t),
        f"  C[i] = {convert('x', op.acc, op.dtype, vec)};",
        "}",
    ]
    return "\n".join(lines) + "\n"


def render_wgsl(op: MatMul, config: Config, *, header: str = "matmul-wgsl-vec4") -> str:
    """WGSL source of ``config`` for ``op``; see the module docstring for the kernels' shape."""
    return _Gen(op, _plan(config), config.key(), header).code()


class _Gen:
    """Emits one kernel; methods append lines to ``self.out``."""

    def __init__(self, op: MatMul, p: _Plan, key: str, header: str) -> None:
        self.op, self.p, self.key, self.header = op, p, key, header
        M, N, K = op.M, op.N, op.K
        self.va, self.vb = K % 4 == 0, N % 4 == 0  # A as vec4 along k; B and C as vec4 along n
        self.gm, self.gn = M % p.bm != 0, N % p.bn != 0
        self.gk = p.sh == 1 and K % p.bk != 0
        self.a_vec = p.a_rows == 4  # tiled: As holds vec4 (4 rows of one k)
        # batch item offsets (in elements of each binding's type), prefixed to every index
        self.ab, self.bb = ("a_base + ", "b_base + ") if op.batch > 1 else ("", "")
        self.cb = "c_base + " if op.batch > 1 or p.sk > 1 else ""
        # split-K (SK > 1): this dispatch stores the plain partial product of its K slice into
        # binding 2 (scratch P [batch, SK, M, N], called C here); the reduction applies the epilogue
        self.epi = op.has_epilogue and p.sk == 1
        # element types: s of the op's buffers, t of the math (tiles, registers, accumulators);
        # both f32 for an f32 op. Split-K's partial products are stored in t.
        self.s, self.t = op.dtype, op.acc
        self.v4 = f"vec4<{self.t}>"
        self.out: list[str] = []

    def ld(self, expr: str, vec: bool) -> str:
        """A value read from a binding, in the compute type."""
        return convert(expr, self.s, self.t, vec)

    # ----- pieces shared by the kernels

    def code(self) -> str:
        p, op, o = self.p, self.op, self.out
        M, N, K = op.M, op.N, op.K
        s, v4 = self.s, self.v4
        ta, tb = (f"vec4<{s}>" if self.va else s), (f"vec4<{s}>" if self.vb else s)
        tc = tb if p.sk == 1 else (v4 if self.vb else self.t)  # split-K: C is the scratch P
        o += [
            *enable_f16(self.s, self.t),
            f"// {self.header}: C = A @ B, batch={op.batch} M={M} N={N} K={K}; {self.key}",
            f"const M = {M}u;",
            f"const N = {N}u;",
            f"const K = {K}u;",
            *([f"const K4 = {K // 4}u;"] if self.va else []),
            *([f"const N4 = {N // 4}u;"] if self.vb else []),
            f"@group(0) @binding(0) var<storage, read> A: array<{ta}>;",
            f"@group(0) @binding(1) var<storage, read> B: array<{tb}>;",
            *([f"@group(0) @binding(2) var<storage, read> bias: array<{tb}>;"] if self.epi and op.bias else []),
            f"@group(0) @binding({3 if self.epi and op.bias else 2}) var<storage, read_write> C: array<{tc}>;",
            *(self._epilogue_fn() if self.epi else []),
        ]
        if p.sh:
            # [buffer][k][m or n4]: with k a literal in the unrolled compute, each inner index is
            # the same expression at every k, so the bounds clamps WebGPU compilers add to dynamic
            # indices are computed once per thread (a flat index needs an add and a clamp per load)
            a_t = f"array<array<{v4 if self.a_vec else self.t}, {p.bmp // (4 if self.a_vec else 1)}>, {p.bk}>"
            b_t = f"array<array<{v4}, {p.bn // 4}>, {p.bk}>"
            o.append(f"var<workgroup> As: {f'array<{a_t}, 2>' if p.pf else a_t};")
            o.append(f"var<workgroup> Bs: {f'array<{b_t}, 2>' if p.pf else b_t};")
        elif p.ks:
            o.append(f"var<workgroup> red: array<{v4}, {p.nt * p.tm * p.tn // 4}>;")
        o += [
            "",
            f"@compute @workgroup_size({p.wx}, {p.wy}, 1)",
            "fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {",
            "  let tx = lid.x;",
            "  let ty = lid.y;",
            f"  let tid = ty * {p.wx}u + tx;",
            *self._block_origin(),
        ]
        sa, sb = (4 if self.va else 1), (4 if self.vb else 1)
        bz = "wg.z" if p.sk == 1 else f"(wg.z / {p.sk}u)"
        if op.batch > 1:
            o += [f"  let a_base = {bz} * {M * K // sa}u;", f"  let b_base = {bz} * {K * N // sb}u;"]
        if self.cb:
            o.append(f"  let c_base = wg.z * {M * N // sb}u;")
        if p.sk > 1:
            kc = slice_k(K, p.sk, p.bk)
            o.append(f"  let kbeg = (wg.z % {p.sk}u) * {kc}u;")
            o.append(f"  let kend = kbeg + {kc}u;" if p.sk * kc == K else f"  let kend = min(kbeg + {kc}u, K);")
        o += [f"  var acc_{i}_{j} = {v4}(0.0);" for i in range(p.tm) for j in range(p.tn // 4)]
        if p.sh:
            self._tiled()
        else:
            self._direct()
        o.append("}")
        return "\n".join(o) + "\n"

    def _epilogue_fn(self) -> list[str]:
        """``fn epi(v, c4)``: bias of the 4 columns from 4*c4 and the activation, or nothing."""
        op = self.op
        if not op.has_epilogue:
            return []
        v4 = self.v4
        lines = [f"fn epi(v: {v4}, c4: u32) -> {v4} {{", "  var x = v;"]
        if op.bias and self.vb:
            lines.append(f"  x = x + {self.ld('bias[c4]', True)};")  # only called for c4 < N4
        elif op.bias:  # columns past N read the last bias; their results are never stored
            lines.append(f"  x = x + {v4}(" + ", ".join(self.ld(f"bias[min(c4 * 4u{_u(c)}, N - 1u)]", False) for c in range(4)) + ");")
        lines += _act_lines(op.act, v4)
        return lines + ["  return x;", "}"]

    def _block_origin(self) -> list[str]:
        """row0 and c40, the block tile's first row and vec4 column. GS=1: straight from the
        workgroup id. GS>1: workgroups, launched x fastest, sweep GS block rows per block column
        before moving right, so a wave of them shares B columns and A rows in the cache."""
        p, op = self.p, self.op
        if p.gs == 1:
            return [f"  let row0 = wg.y * {p.bm}u;", f"  let c40 = wg.x * {p.bn // 4}u;"]
        gx, gy = _cdiv(op.N, p.bn), _cdiv(op.M, p.bm)
        per = p.gs * gx
        return [
            f"  let lin = wg.y * {gx}u + wg.x;",
            f"  let g0 = (lin / {per}u) * {p.gs}u;",
            f"  let gsz = min({gy}u - g0, {p.gs}u);",
            f"  let loc = lin % {per}u;",
            f"  let row0 = (g0 + loc % gsz) * {p.bm}u;",
            f"  let c40 = (loc / gsz) * {p.bn // 4}u;",
        ]

    def _fmas(self, a_of, ind: str) -> str:
        """acc_i_j += a_i * b_j for one k, as one block of lines (the same for every k, so callers
        build it once); ``a_of(i)`` is the scalar A expression of row i."""
        tn4 = self.p.tn // 4
        return "\n".join(f"{ind}acc_{i}_{j} = fma({self.v4}({a_of(i)}), b{j}, acc_{i}_{j});"
                         for i in range(self.p.tm) for j in range(tn4))

    def _store(self, row: str, col4: str, val: str, ind: str) -> None:
        """C[row, 4*col4 .. +3] = val, masked where the shape needs it."""
        conds = [f"{row} < M"] if self.gm else []
        if self.epi:
            val = f"epi({val}, {col4})"
        c_type = self.s if self.p.sk == 1 else self.t  # C holds the op's dtype; split-K's P the compute type
        if self.vb:
            if self.gn:
                conds.append(f"{col4} < N4")
            stmts = [f"C[{self.cb}{row} * N4 + {col4}] = {convert(val, self.t, c_type, True)};"]
        else:
            stmts = [f"let cc = {self.cb}{row} * N + {col4} * 4u;"]
            if self.epi:
                stmts.append(f"let ev = {val};")
                val = "ev"
            stmts += [f"if ({col4} * 4u{_u(c)} < N) {{ C[cc{_u(c)}] = {convert(f'{val}.{_COMP[c]}', self.t, c_type, False)}; }}"
                      for c in range(4)]
        if conds:
            self.out.append(f"{ind}if ({' && '.join(conds)}) {{")
            self.out += [f"{ind}  {s}" for s in stmts]
            self.out.append(f"{ind}}}")
        elif len(stmts) == 1:
            self.out.append(f"{ind}{stmts[0]}")
        else:
            self.out += [f"{ind}{{"] + [f"{ind}  {s}" for s in stmts] + [f"{ind}}}"]

    def _store_tile(self) -> None:
        p = self.p
        tn4 = p.tn // 4
        self.out += [f"  let sc{j} = c40 + tx{_u(j * p.wx)};" for j in range(tn4)]
        for i in range(p.tm):
            self.out.append(f"  let sr{i} = row0 + ty * {p.tm}u{_u(i)};")
            for j in range(tn4):
                self._store(f"sr{i}", f"sc{j}", f"acc_{i}_{j}", "  ")

    # ----- SH=1: tiled

    def _a_unit(self, u: str, e: str) -> tuple[list[str], list[str]]:
        """Global A loads of unit ``u``: rows ``am*R .. +R-1`` (R = ``a_rows``, am = u / (BK/4))
        at the k quad ``ak`` (u % (BK/4)) of the slice at k0: (statements, one vec4 per row).
        Rows past M read a clamped row, k past K reads zero."""
        K, q = self.op.K, self.p.bk // 4
        st = [f"let am{e} = {u} / {q}u;", f"let ak{e} = k0 + ({u} % {q}u) * 4u;"]
        rows = self.p.a_rows
        vals = []
        for rr in range(rows):
            r = f"row0 + am{e}{f' * {rows}u' if rows > 1 else ''}{_u(rr)}"
            r = f"min({r}, {self.op.M - 1}u)" if self.gm else f"({r})"
            if self.va:
                idx = f"{self.ab}{r} * K4 + " + (f"min(ak{e}, {K - 4}u) / 4u" if self.gk else f"ak{e} / 4u")
                v = self.ld(f"A[{idx}]", True)
                vals.append(f"select({self.v4}(0.0), {v}, ak{e} < K)" if self.gk else v)
            else:
                st.append(f"let ar{e}_{rr} = {self.ab}{r} * K;")
                parts = [f"select(0.0, {self.ld(f'A[ar{e}_{rr} + min(ak{e}{_u(c)}, {K - 1}u)]', False)}, ak{e}{_u(c)} < K)"
                         for c in range(4)]
                vals.append(f"{self.v4}({', '.join(parts)})")
        return st, vals

    def _b_unit(self, u: str, e: str) -> tuple[list[str], list[str]]:
        """Global B load of unit ``u`` (k row u / (BN/4), vec4 column u % (BN/4)): (stmts, [vec4])."""
        p, N, K = self.p, self.op.N, self.op.K
        q = p.bn // 4
        st = [f"let bk{e} = k0 + {u} / {q}u;", f"let bq{e} = c40 + {u} % {q}u;"]
        k = f"min(bk{e}, {K - 1}u)" if self.gk else f"bk{e}"
        if self.vb:
            c = f"min(bq{e}, {N // 4 - 1}u)" if self.gn else f"bq{e}"
            v = self.ld(f"B[{self.bb}{k} * N4 + {c}]", True)
            return st, [f"select({self.v4}(0.0), {v}, bk{e} < K)" if self.gk else v]
        st.append(f"let br{e} = {self.bb}{k} * N;")
        parts = [self.ld(f"B[br{e} + min(bq{e} * 4u{_u(c)}, {N - 1}u)]", False) for c in range(4)]
        v = f"{self.v4}({', '.join(parts)})"
        return st, [f"select({self.v4}(0.0), {v}, bk{e} < K)" if self.gk else v]

    def _a_store(self, e: str, vals: list[str], buf: str) -> list[str]:
        """Transposed store into As[k][m] (``buf``: '' or the buffer subscript '[nxt]'): a_vec: one
        vec4 (4 rows) per k; else 4 scalars."""
        if self.a_vec:
            return [f"As{buf}[ak{e} - k0{_u(c)}][am{e}] = "
                    f"{self.v4}({', '.join(f'{v}.{_COMP[c]}' for v in vals)});" for c in range(4)]
        return [f"As{buf}[ak{e} - k0{_u(c)}][am{e}] = {vals[0]}.{_COMP[c]};" for c in range(4)]

    def _load_total(self, which: str) -> int:
        """Load units of one A or B slice."""
        p = self.p
        if which == "a":
            return p.bm * p.bk // (4 * self.p.a_rows)
        return p.bk * p.bn // 4

    def _tile_loads(self, which: str, ind: str, buf: str, phase: str) -> None:
        """Cooperative load of the A or B slice at k0 by all threads. ``phase``: 'all' (global ->
        workgroup memory), 'load' (global -> prefetch registers p<which><unit>_<row>), 'store'
        (registers -> workgroup memory; ``buf`` is '' or the buffer subscript, e.g. '[nxt]')."""
        p, o = self.p, self.out
        total = self._load_total(which)
        units = _cdiv(total, p.nt)
        partial = total % p.nt != 0
        unit_fn = self._a_unit if which == "a" else self._b_unit

        def body(u: str, e: str, ind2: str) -> None:
            st, vals = unit_fn(u, e)
            regs = [f"p{which}{e}_{r}" for r in range(len(vals))]
            if phase == "load":
                o.extend(f"{ind2}{s}" for s in st)
                o.extend(f"{ind2}{reg} = {v};" for reg, v in zip(regs, vals))
                return
            if phase == "store":
                vals = regs
                if which == "a":  # the store needs the unit's (row, k): recompute them (cheap integer ops)
                    o.extend(f"{ind2}{s}" for s in st[:2])
            else:
                o.extend(f"{ind2}{s}" for s in st)
                if len(vals) > 1:
                    o.extend(f"{ind2}let x{r} = {v};" for r, v in enumerate(vals))
                    vals = [f"x{r}" for r in range(len(vals))]
            if which == "a":
                o.extend(f"{ind2}{s}" for s in self._a_store(e, vals, buf))
            else:
                bn4 = p.bn // 4
                o.append(f"{ind2}Bs{buf}[{u} / {bn4}u][{u} % {bn4}u] = {vals[0]};")

        if units <= _UNROLL_LOADS:
            for n in range(units):
                u = f"(tid{_u(n * p.nt)})" if n else "tid"
                if partial and (n + 1) * p.nt > total:
                    o.append(f"{ind}if ({u} < {total}u) {{")
                    body(u, str(n), ind + "  ")
                    o.append(f"{ind}}}")
                else:
                    o.append(f"{ind}{{")
                    body(u, str(n), ind + "  ")
                    o.append(f"{ind}}}")
        else:
            o.append(f"{ind}for (var n = 0u; n < {units}u; n = n + 1u) {{")
            u = f"(tid + n * {p.nt}u)"
            if partial:
                o.append(f"{ind}  if ({u} < {total}u) {{")
                body(u, "", ind + "    ")
                o.append(f"{ind}  }}")
            else:
                body(u, "", ind + "  ")
            o.append(f"{ind}}}")

    def _tile_compute(self, buf: str, arow: str, ind: str) -> None:
        """The FMAs of one BK slice from As{buf} and Bs{buf}; thread rows from ``arow``."""
        p, o = self.p, self.out
        tn4 = p.tn // 4
        if self.a_vec:
            na = p.tm // 4
            fmas = self._fmas(lambda i: f"a{i // 4}.{_COMP[i % 4]}", ind + "  ")
        else:
            na = p.tm
            fmas = self._fmas(lambda i: f"a{i}", ind + "  ")
        for k in range(p.bk):
            o.append(f"{ind}{{")
            o += [f"{ind}  let a{q} = As{buf}[{k}u][{arow}{_u(q)}];" for q in range(na)]
            o += [f"{ind}  let b{j} = Bs{buf}[{k}u][tx{_u(j * p.wx)}];" for j in range(tn4)]
            o.append(fmas)
            o.append(f"{ind}}}")

    def _tiled(self) -> None:
        p, o = self.p, self.out
        nk = _cdiv(self.op.K, p.bk)
        a_step = p.tm // 4 if self.a_vec else p.tm
        a_row = f"ty * {a_step}u" if a_step > 1 else "ty"
        if not p.pf:
            if p.sk > 1:
                o.append(f"  for (var k0 = kbeg; k0 < kend; k0 = k0 + {p.bk}u) {{")
            else:
                o.append(f"  for (var k0 = 0u; k0 < K; k0 = k0 + {p.bk}u) {{")
            self._tile_loads("a", "    ", "", "all")
            self._tile_loads("b", "    ", "", "all")
            o.append("    workgroupBarrier();")
            self._tile_compute("", a_row, "    ")
            o += ["    workgroupBarrier();", "  }"]
        else:
            ua, ub = p.load_units()
            o += [f"  var pa{e}_{r}: {self.v4};" for e in range(ua) for r in range(self.p.a_rows)]
            o += [f"  var pb{e}_0: {self.v4};" for e in range(ub)]
            if p.sk > 1:
                o.append(f"  let nks = (kend - kbeg + {p.bk - 1}u) / {p.bk}u;")
            o.append("  {")
            o.append("    let k0 = kbeg;" if p.sk > 1 else "    let k0 = 0u;")
            self._tile_loads("a", "    ", "[0]", "all")
            self._tile_loads("b", "    ", "[0]", "all")
            o += ["  }", "  workgroupBarrier();"]
            n_tiles = "nks" if p.sk > 1 else f"{nk}u"
            o.append(f"  for (var t = 0u; t < {n_tiles}; t = t + 1u) {{")
            o.append("    let cur = t & 1u;")
            o.append(f"    let k0 = {'kbeg + ' if p.sk > 1 else ''}(t + 1u) * {p.bk}u;")
            o.append(f"    let more = t + 1u < {n_tiles};")
            o.append("    if (more) {")
            self._tile_loads("a", "      ", "", "load")
            self._tile_loads("b", "      ", "", "load")
            o.append("    }")
            self._tile_compute("[cur]", a_row, "    ")
            o.append("    if (more) {")
            o.append("      let nxt = 1u - cur;")
            self._tile_loads("a", "      ", "[nxt]", "store")
            self._tile_loads("b", "      ", "[nxt]", "store")
            o.append("    }")
            o += ["    workgroupBarrier();", "  }"]
        self._store_tile()

    # ----- SH=0: direct and split-K

    def _k_block(self, kb: str, n: int, ind: str) -> None:
        """Straight-line code for k = kb .. kb + n - 1 (``kb`` a multiple of 4 when A is vec4)."""
        p, o, N = self.p, self.out, self.op.N
        tn4 = p.tn // 4
        o.append(f"{ind}{{")
        i2 = ind + "  "
        o.append(f"{i2}let ka = {kb} / 4u;" if self.va else f"{i2}let ka = {kb};")
        o.append(f"{i2}let kr = {kb} * {'N4' if self.vb else 'N'};")
        bstride = N // 4 if self.vb else N
        if self.va:
            fmas = [self._fmas(lambda i, c=c: f"a{i}.{c}", i2 + "    ") for c in _COMP]
        else:
            fmas = [self._fmas(lambda i: f"a{i}", i2 + "    ")]
        for k in range(n):
            if self.va and k % 4 == 0:
                if k:
                    o.append(f"{i2}}}")
                o.append(f"{i2}{{")
                o += [f"{i2}  let a{i} = {self.ld(f'A[ar{i} + ka{_u(k // 4)}]', True)};" for i in range(p.tm)]
            elif not self.va:
                if k:
                    o.append(f"{i2}}}")
                o.append(f"{i2}{{")
                o += [f"{i2}  let a{i} = {self.ld(f'A[ar{i} + ka{_u(k)}]', False)};" for i in range(p.tm)]
            o.append(f"{i2}  {{")
            if self.vb:
                o += [f"{i2}    let b{j} = {self.ld(f'B[kr + bc{j}{_u(k * bstride)}]', True)};" for j in range(tn4)]
            else:
                o += [f"{i2}    let b{j} = {self.v4}({', '.join(self.ld(f'B[kr + bc{j}_{c}{_u(k * bstride)}]', False) for c in range(4))});"
                      for j in range(tn4)]
            o.append(fmas[k % 4] if self.va else fmas[0])
            o.append(f"{i2}  }}")
        if n:
            o.append(f"{i2}}}")
        o.append(f"{ind}}}")

    def _direct(self) -> None:
        p, o, op = self.p, self.out, self.op
        M, N, K = op.M, op.N, op.K
        tn4 = p.tn // 4
        for i in range(p.tm):
            r = f"row0 + ty * {p.tm}u{_u(i)}" if not p.ks else f"row0{_u(i)}"
            r = f"min({r}, {M - 1}u)" if self.gm else r
            o.append(f"  let ar{i} = {self.ab}({r}) * {'K4' if self.va else 'K'};")
        for j in range(tn4):
            c4 = f"c40 + tx{_u(j * p.wx)}"
            if self.vb:
                o.append(f"  let bc{j} = {self.bb}{f'min({c4}, {N // 4 - 1}u)' if self.gn else c4};")
            else:
                o += [f"  let bc{j}_{c} = {self.bb}min(({c4}) * 4u{_u(c)}, {N - 1}u);" for c in range(4)]
        kmain, rem = K - K % p.bk, K % p.bk
        if p.ks:
            if kmain:
                o.append(f"  for (var kb = ty * {p.bk}u; kb < {kmain}u; kb = kb + {p.wy * p.bk}u) {{")
                self._k_block("kb", p.bk, "    ")
                o.append("  }")
            if rem:
                o.append(f"  if (ty == {(kmain // p.bk) % p.wy}u) {{")
                self._k_block(f"{kmain}u", rem, "    ")
                o.append("  }")
            self._reduce()
            return
        if kmain:
            o.append(f"  for (var kb = 0u; kb < {kmain}u; kb = kb + {p.bk}u) {{")
            self._k_block("kb", p.bk, "    ")
            o.append("  }")
        if rem:
            self._k_block(f"{kmain}u", rem, "  ")
        self._store_tile()

    def _reduce(self) -> None:
        """Split-K epilogue: partial sums -> workgroup memory, then each thread adds up WY partials
        of some outputs and stores them."""
        p, o = self.p, self.out
        tn4 = p.tn // 4
        plane = p.nt  # one (i, j) accumulator of every thread
        o += [f"  red[tid{_u((i * tn4 + j) * plane)}] = acc_{i}_{j};" for i in range(p.tm) for j in range(tn4)]
        o.append("  workgroupBarrier();")
        outs = p.tm * tn4 * p.wx
        for n in range(_cdiv(outs, p.nt)):
            u = f"tid{_u(n * p.nt)}"
            guarded = (n + 1) * p.nt > outs
            o.append(f"  if ({u} < {outs}u) {{" if guarded else "  {")
            o.append(f"    let ij = ({u}) / {p.wx}u;")
            o.append(f"    let ox = ({u}) % {p.wx}u;")
            o.append(f"    let base = ij * {plane}u + ox;")
            o.append("    let s = " + " + ".join(f"red[base{_u(y * p.wx)}]" for y in range(p.wy)) + ";")
            o.append(f"    let sr = row0 + ij / {tn4}u;")
            o.append(f"    let sc = c40 + ox + (ij % {tn4}u) * {p.wx}u;")
            self._store("sr", "sc", "s", "    ")
            o.append("  }")
