"""Template ``matmul-wasm-simd``: matmul and batched matmul as WebAssembly SIMD128, emitted straight
to binary by ``jit_core.wasm.matmul`` (no LLVM, no Emscripten), run by the page on ``T`` threads
sharing one memory.

Parameters: register tile MR x NR, cache tile MB x NB x KB, k unroll UK, threads T, B packing PB,
relaxed FMA. The lite space applies nnJIT's CPU rules: SIMD registers used
``MR*NR/4 + MR + NR/4`` within the target's budget (16 on x86-64, 32 on ARM64; ``caps.simd_registers``)
and above 80 % of it; cache tiles ``(MB*KB + KB*NB)*4`` bytes within L1 (``caps.l1_bytes``) and
above 90 % of the largest tile that fits both L1 and the problem (tiles clipped to the problem: a
skinny M holds only M rows of A); square cache tiles (MB == NB) unless MB covers every row of M.
"""

from __future__ import annotations

import itertools
import math
from typing import Callable

from ..caps import DeviceCaps
from ..ops import MatMul
from ..protocol import KernelSource
from ..space import Config, Param, Rule, Space
from ..space_staged import build_staged
from ..wasm.matmul import WasmMatmulConfig, emit_matmul, scratch_bytes, work_units
from .dtype_rules import dtype_rules, require_f32

TILES = (16, 32, 64, 128, 256)
THREADS = (1, 2, 4, 8, 16)


def _p2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def simd_registers_used(mr: int, nr: int) -> int:
    """nnJIT's count of SIMD128 registers a mr x nr register tile holds: accumulators, A splats,
    B vectors."""
    return mr * nr // 4 + mr + nr // 4


def tile_bytes(mb: int, nb: int, kb: int) -> int:
    """Bytes of the A block (mb x kb) and B block (kb x nb) that one cache tile keeps in L1."""
    return (mb * kb + kb * nb) * 4


def to_wasm_config(c: Config) -> WasmMatmulConfig:
    try:
        return WasmMatmulConfig(mr=c["MR"], nr=c["NR"], mb=c["MB"], nb=c["NB"], kb=c["KB"], unroll=c["UK"],
                                threads=c["T"], pack_b=c["PB"], fma=c["FMA"])
    except KeyError as e:
        raise ValueError(f"wasm matmul config misses parameter {e}") from None


class MatmulWasmSimd:
    """Template ``matmul-wasm-simd``. Contract: every config of ``space(op, caps)`` renders to a
    module the page can run correctly for the op on that CPU (SIMD128 present, threads only where
    the page is cross-origin isolated, relaxed FMA only where the engine has it); ``render`` raises
    ValueError for a config with inconsistent tiles. ``version`` goes into cache keys."""

    name = "matmul-wasm-simd"
    version = "2"  # 2: one micro-kernel call per band of rows
    backend = "wasm"
    op_kind = "matmul"
    dtypes = ("f32",)  # op dtypes with kernels here (dtype_rules.py)

    # Enumerated stage by stage (see ``space``): the rules of a stage read only its params and
    # those of earlier stages.
    STAGES: tuple[tuple[str, ...], ...] = (("MR", "NR"), ("MB", "NB", "KB"), ("UK", "T", "PB", "FMA"))

    def params(self) -> tuple[Param, ...]:
        return (
            Param("MR", (1, 2, 4, 8)),
            Param("NR", (4, 8, 16, 32)),
            Param("MB", TILES),
            Param("NB", TILES),
            Param("KB", TILES),
            Param("UK", (1, 2, 4)),
            Param("T", THREADS),
            Param("PB", (0, 1)),
            Param("FMA", (0, 1)),
        )

    def rules(self, op: MatMul, caps: DeviceCaps) -> tuple[Rule, ...]:
        budget, l1 = caps.simd_registers, caps.l1_bytes
        lim_m, lim_n, lim_k = max(16, _p2(op.M)), max(16, _p2(op.N)), max(16, _p2(op.K))

        def problem_tile(c: Config) -> bool:
            return c["MB"] <= lim_m and c["NB"] <= lim_n and c["KB"] <= lim_k

        def held(mb: int, nb: int, kb: int) -> int:  # the tile's bytes, clipped to the problem
            return tile_bytes(min(mb, op.M), min(nb, op.N), min(kb, op.K))

        def square(mb: int, nb: int) -> bool:  # a tile covering every row of a skinny M need not be
            return mb == nb or mb >= op.M

        fitting = [held(mb, nb, kb) for mb, nb, kb in itertools.product(TILES, TILES, TILES)
                   if square(mb, nb) and mb <= lim_m and nb <= lim_n and kb <= lim_k and held(mb, nb, kb) <= l1]
        fill = max(fitting, default=0)

        def units(c: Config) -> int:
            return op.batch * _cdiv(op.M, c["MB"]) * _cdiv(op.N, c["NB"])

        return (
            Rule("simd128", "WebAssembly", lambda c: caps.wasm_simd,
                 "the engine validates WebAssembly SIMD128 (probe wasm.simd)"),
            Rule("simd-registers", "nnJIT", lambda c: simd_registers_used(c["MR"], c["NR"]) <= budget,
                 f"MR*NR/4 + MR + NR/4 SIMD registers <= the CPU's budget ({budget})"),
            Rule("simd-registers-80pct", "nnJIT", lambda c: simd_registers_used(c["MR"], c["NR"]) >= 0.8 * budget,
                 f"MR*NR/4 + MR + NR/4 SIMD registers >= 80% of the budget ({0.8 * budget:g})"),
            Rule("register-tile-in-cache-tile", "nnJIT", lambda c: c["MR"] <= c["MB"] and c["NR"] <= c["NB"],
                 "the register tile fits in the cache tile (MR <= MB, NR <= NB)"),
            Rule("square-cache-tile", "nnJIT", lambda c: square(c["MB"], c["NB"]),
                 "cache tile is square (MB == NB), unless MB covers all M rows (skinny M: wide NB streams B)"),
            Rule("tile-in-l1", "nnJIT", lambda c: held(c["MB"], c["NB"], c["KB"]) <= l1,
                 f"(MB*KB + KB*NB)*4 bytes, tiles clipped to the problem, <= L1 ({l1})"),
            Rule("tile-within-problem", "ours", problem_tile,
                 "no cache tile beyond the problem: MB <= max(16, next_pow2(M)), same for NB/N and KB/K"),
            Rule("tile-fills-l1", "nnJIT", lambda c: held(c["MB"], c["NB"], c["KB"]) >= 0.9 * fill,
                 f"(MB*KB + KB*NB)*4 bytes >= 90% of the largest tile that fits L1 and the problem ({fill})"),
            Rule("unroll-within-kb", "ours", lambda c: c["UK"] <= c["KB"], "the k unroll fits the K slice (UK <= KB)"),
            Rule("threads-available", "WebAssembly", lambda c: c["T"] == 1 or caps.wasm_threads,
                 "T > 1 only where the page can share a WebAssembly.Memory with workers (cross-origin isolated)"),
            Rule("threads-le-cores", "ours", lambda c: c["T"] <= caps.hardware_concurrency,
                 f"T <= navigator.hardwareConcurrency ({caps.hardware_concurrency})"),
            Rule("threads-le-units", "ours", lambda c: c["T"] <= units(c), "no more threads than cache tiles of C"),
            Rule("fma-where-available", "ours", lambda c: c["FMA"] == int(caps.wasm_relaxed_simd),
                 "f32x4.relaxed_madd where the engine has relaxed SIMD, mul+add elsewhere"),
        )

    def prior(self, op: MatMul, caps: DeviceCaps) -> Callable[[Config], float]:
        """Score (lower first), from timings of 512^3 in headless Chromium on an x86-64 VM: as
        many threads as keep each busy with work worth a wake-up (about 4 MFLOP), B packed when
        its block is reused by enough rows (packed 2x faster at 512^3: unpacked B rows 2 KiB apart
        fall into few L1 sets), no k unroll (the engine's loop is as fast; unrolled code is
        larger), 64x64 tiles (the widest NB for skinny M), the 4x8 register tile (fewer B loads
        per FMA than 2x16)."""
        flops = op.flops()
        pack = op.K >= 64 and min(op.M, 64) >= 16

        def score(c: Config) -> float:
            s = 0.0
            tiles = op.batch * _cdiv(op.M, c["MB"]) * _cdiv(op.N, c["NB"])
            want_t = max(1, min(caps.hardware_concurrency, flops // 4_000_000 or 1, tiles))
            s += abs(math.log2(c["T"]) - math.log2(want_t))
            s += 0.5 * abs(c["PB"] - int(pack))
            s += 0.25 * math.log2(c["UK"])
            if op.M < 16:  # skinny: wide tiles stream B rows (2.6x faster at 1x768x768)
                s += 0.25 * abs(math.log2(c["NB"]) - 8)
            else:
                s += 0.25 * abs(math.log2(c["MB"]) - 6)
            s += 0.1 * (c["MR"] < 4)
            return s

        return score

    def space(self, op: MatMul, caps: DeviceCaps) -> Space:
        if not isinstance(op, MatMul):
            raise TypeError(f"{self.name} renders matmul ops, not {type(op).__name__}")
        return build_staged(self.params(), dtype_rules(op, caps, self) + tuple(self.rules(op, caps)),
                            self.STAGES, prior=self.prior(op, caps))

    def render(self, op: MatMul, config: Config) -> KernelSource:
        require_f32(op, self.name)
        cfg = to_wasm_config(config)
        binary = emit_matmul(op, cfg)
        return KernelSource(
            code=f";; {self.name} v{self.version}: {op.key()} {config.key()} ({len(binary)} bytes)",
            entry="run",
            workgroups=(1, 1, 1),
            workgroup_size=(1, 1, 1),
            kind="wasm",
            binary=binary,
            threads=cfg.threads,
            units=work_units(op, cfg),
            scratch_bytes=scratch_bytes(cfg),
        )
