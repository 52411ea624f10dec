"""Matmul and batched matmul kernels emitted straight to WebAssembly SIMD128 binary.

The module imports ``env.memory`` (shared when the kernel runs on several threads) and exports
``run(A, B, C, u0, u1, S)``: byte addresses of the row-major operands A [batch, M, K],
B [batch, K, N], C [batch, M, N], a half-open range of work units, and this thread's scratch
area (``scratch_bytes(...)`` bytes, used to pack B). A work unit is one mb x nb tile of C of one
batch item, numbered batch-major, then tile row, then tile column, so a contiguous range of
units is a band of rows: threads take contiguous chunks. Shapes are constants of the module.

Per unit, for each kb-slice of K (the A block mb x kb and the B block kb x nb stay in L1), each
band of mr rows is one call of the micro-kernel, which runs the band's mr x nr register tiles
left to right: accumulators are mr*nr/4 v128 locals, B is read
as nr/4 vectors per k, A as one splat per row and k (``v128.load32_splat``), multiply-add as
``f32x4.relaxed_madd`` (fma=1) or ``f32x4.mul`` + ``f32x4.add``. The first K slice starts
from zero, later ones load C. The k loop is unrolled ``unroll`` times (constant address
offsets), with a remainder loop. pack_b=1 copies the B block's full nr-wide column panels into
the scratch area (kc x nr contiguous per panel) so the micro-kernel streams B without L1 set
conflicts at power-of-two N. Ragged edges: rows left over from mr run 1-row micro-kernels,
columns left over from nr run 4-wide ones, and the last N % 4 columns a scalar loop.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..ops import MatMul
from .encoder import F32, I32, V128, Func, Module



@dataclass(frozen=True)
class WasmMatmulConfig:
    """Knobs of one kernel: register tile mr x nr (nr a multiple of 4), cache tile mb x nb x kb,
    k unroll, thread count (only decides whether the memory is shared), B packing, relaxed FMA."""

    mr: int
    nr: int
    mb: int
    nb: int
    kb: int
    unroll: int = 1
    threads: int = 1
    pack_b: int = 0
    fma: int = 0

    def __post_init__(self) -> None:
        if min(self.mr, self.nr, self.mb, self.nb, self.kb, self.unroll, self.threads) < 1:
            raise ValueError(f"wasm matmul sizes must be >= 1: {self}")
        if self.nr % 4:
            raise ValueError(f"nr must be a multiple of 4 (f32x4 lanes), got {self.nr}")
        if self.mr > self.mb or self.nr > self.nb:
            raise ValueError(f"register tile {self.mr}x{self.nr} larger than cache tile {self.mb}x{self.nb}")
        if self.pack_b not in (0, 1) or self.fma not in (0, 1):
            raise ValueError("pack_b and fma are 0 or 1")


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def work_units(op: MatMul, cfg: WasmMatmulConfig) -> int:
    """Number of work units ``run`` splits across threads."""
    return op.batch * _cdiv(op.M, cfg.mb) * _cdiv(op.N, cfg.nb)


def scratch_bytes(cfg: WasmMatmulConfig) -> int:
    """Scratch bytes one thread needs (the packed B block), 0 without packing."""
    return 4 * cfg.kb * cfg.nb if cfg.pack_b else 0


class _Emitter:
    def __init__(self, op: MatMul, cfg: WasmMatmulConfig):
        self.op, self.cfg = op, cfg
        self.mod = Module()
        self.mod.import_memory("env", "memory", min_pages=1, max_pages=65536 if cfg.threads > 1 else None,
                               shared=cfg.threads > 1)
        self._micro: dict[tuple[int, int, int], int] = {}
        self._scalar: int | None = None
        self._pack: int | None = None
        self.lda, self.ldb, self.ldc = 4 * op.K, 4 * op.N, 4 * op.N

    # ------------------------------------------------------------------------------ helpers
    @staticmethod
    def _addc(f: Func, loc: int, c: int) -> None:
        f.get(loc).i32(c).op("i32.add").set(loc)

    @staticmethod
    def _min(f: Func, a: int, b: int, dst: int) -> None:
        f.get(a).get(b).get(a).get(b).op("i32.lt_s").op("select").set(dst)

    # --------------------------------------------------------------------------- micro-kernel
    def micro(self, rows: int, nv: int, ldb: int) -> int:
        """Function index of the rows x (4*nv) micro-kernel ``(a, b, c, kc, init, panels, bstep)``
        reading B with row stride ``ldb`` bytes: it runs ``panels`` register tiles side by side
        (C advancing 16*nv bytes, B ``bstep`` bytes per tile), so the driver calls it once per
        row pass rather than once per tile."""
        key = (rows, nv, ldb)
        if key in self._micro:
            return self._micro[key]
        cfg, lda, ldc = self.cfg, self.lda, self.ldc
        f = Func((I32,) * 7)
        a0, b, c, kc0, init, panels, bstep = range(7)
        a, kc, bk = f.local(I32), f.local(I32), f.local(I32)
        acc = [[f.local(V128) for _ in range(nv)] for _ in range(rows)]
        bv = [f.local(V128) for _ in range(nv)]
        av = f.local(V128)
        f.block().loop()  # over panels
        f.get(panels).op("i32.eqz").br_if(1)
        f.get(init).if_()
        for r in range(rows):
            for v in range(nv):
                f.v128_zero().set(acc[r][v])
        f.else_()
        for r in range(rows):
            for v in range(nv):
                f.get(c).mem("v128.load", r * ldc + 16 * v).set(acc[r][v])
        f.end()
        f.get(a0).set(a)
        f.get(kc0).set(kc)
        f.get(b).set(bk)

        def steps(count: int) -> None:
            for u in range(count):
                for v in range(nv):
                    f.get(bk).mem("v128.load", u * ldb + 16 * v).set(bv[v])
                for r in range(rows):
                    f.get(a).mem("v128.load32_splat", r * lda + 4 * u).set(av)
                    for v in range(nv):
                        if cfg.fma:
                            f.get(av).get(bv[v]).get(acc[r][v]).simd("f32x4.relaxed_madd")
                        else:
                            f.get(av).get(bv[v]).simd("f32x4.mul").get(acc[r][v]).simd("f32x4.add")
                        f.set(acc[r][v])
            self._addc(f, a, 4 * count)
            self._addc(f, bk, ldb * count)
            self._addc(f, kc, -count)

        if cfg.unroll > 1:
            f.block().loop()
            f.get(kc).i32(cfg.unroll).op("i32.lt_s").br_if(1)
            steps(cfg.unroll)
            f.br(0).end().end()
        f.block().loop()
        f.get(kc).op("i32.eqz").br_if(1)
        steps(1)
        f.br(0).end().end()
        for r in range(rows):
            for v in range(nv):
                f.get(c).get(acc[r][v]).mem("v128.store", r * ldc + 16 * v)
        self._addc(f, c, 16 * nv)
        f.get(b).get(bstep).op("i32.add").set(b)
        self._addc(f, panels, -1)
        f.br(0).end().end()
        self._micro[key] = self.mod.add(f)
        return self._micro[key]

    def scalar(self) -> int:
        """``(a, b, c, kc, init, rows, cols)``: the plain loop for the last N % 4 columns."""
        if self._scalar is not None:
            return self._scalar
        lda, ldb, ldc = self.lda, self.ldb, self.ldc
        f = Func((I32,) * 7)
        a, b, c, kc, init, rows, cols = range(7)
        r, j, k, pa, pb, pc = (f.local(I32) for _ in range(6))
        s = f.local(F32)
        f.i32(0).set(r)
        f.block().loop()
        f.get(r).get(rows).op("i32.ge_s").br_if(1)
        f.i32(0).set(j)
        f.block().loop()
        f.get(j).get(cols).op("i32.ge_s").br_if(1)
        # pc = c + r*ldc + 4j
        f.get(c).get(r).i32(ldc).op("i32.mul").op("i32.add").get(j).i32(4).op("i32.mul").op("i32.add").set(pc)
        f.get(init).if_().f32(0.0).set(s).else_().get(pc).mem("f32.load").set(s).end()
        f.get(a).get(r).i32(lda).op("i32.mul").op("i32.add").set(pa)
        f.get(b).get(j).i32(4).op("i32.mul").op("i32.add").set(pb)
        f.i32(0).set(k)
        f.block().loop()
        f.get(k).get(kc).op("i32.ge_s").br_if(1)
        f.get(pa).mem("f32.load").get(pb).mem("f32.load").op("f32.mul").get(s).op("f32.add").set(s)
        self._addc(f, pa, 4)
        self._addc(f, pb, ldb)
        self._addc(f, k, 1)
        f.br(0).end().end()
        f.get(pc).get(s).mem("f32.store")
        self._addc(f, j, 1)
        f.br(0).end().end()
        self._addc(f, r, 1)
        f.br(0).end().end()
        self._scalar = self.mod.add(f)
        return self._scalar

    def pack(self) -> int:
        """``(src, dst, kc, panels)``: copy ``panels`` nr-wide column panels of kc rows of B
        (row stride ldb) to dst, panel after panel, each kc x nr contiguous."""
        if self._pack is not None:
            return self._pack
        nr, ldb = self.cfg.nr, self.ldb
        f = Func((I32,) * 4)
        src, dst, kc, panels = range(4)
        p, k, s = (f.local(I32) for _ in range(3))
        f.i32(0).set(p)
        f.block().loop()
        f.get(p).get(panels).op("i32.ge_s").br_if(1)
        f.get(src).get(p).i32(4 * nr).op("i32.mul").op("i32.add").set(s)
        f.get(kc).set(k)
        f.block().loop()
        f.get(k).op("i32.eqz").br_if(1)
        for v in range(nr // 4):
            f.get(dst).get(s).mem("v128.load", 16 * v).mem("v128.store", 16 * v)
        self._addc(f, dst, 4 * nr)
        self._addc(f, s, ldb)
        self._addc(f, k, -1)
        f.br(0).end().end()
        self._addc(f, p, 1)
        f.br(0).end().end()
        self._pack = self.mod.add(f)
        return self._pack

    # -------------------------------------------------------------------------------- driver
    def edges(self) -> tuple[bool, bool, bool]:
        """Which edge paths some tile needs: leftover rows, 4-wide column vectors, scalar columns."""
        op, cfg = self.op, self.cfg
        heights = {min(cfg.mb, op.M)} | ({op.M % cfg.mb} if op.M % cfg.mb else set())
        widths = {min(cfg.nb, op.N)} | ({op.N % cfg.nb} if op.N % cfg.nb else set())
        row_tail = any(h % cfg.mr for h in heights)
        vec_tail = any(w % cfg.nr >= 4 for w in widths)
        scalar_tail = any(w % 4 for w in widths)
        return row_tail, vec_tail, scalar_tail

    def run(self) -> None:
        op, cfg = self.op, self.cfg
        M, N, K = op.M, op.N, op.K
        mt, nt = _cdiv(M, cfg.mb), _cdiv(N, cfg.nb)
        row_tail, vec_tail, scalar_tail = self.edges()
        nv = cfg.nr // 4
        packed_ldb = 4 * cfg.nr if cfg.pack_b else self.ldb
        # Register every callee first: function indices must be known before run's body.
        full = self.micro(cfg.mr, nv, packed_ldb)
        one_row = self.micro(1, nv, packed_ldb) if row_tail else None
        vec_full = self.micro(cfg.mr, 1, self.ldb) if vec_tail else None
        vec_one = self.micro(1, 1, self.ldb) if vec_tail and row_tail else None
        scal = self.scalar() if scalar_tail else None
        pack = self.pack() if cfg.pack_b else None

        f = Func((I32,) * 6)
        A, B, C, u0, u1, S = range(6)
        (u, t, bi, ab, bb, cb, i0, iend, j0, jend, jfull, k0, kc, init, i, j, pa, pc, tmp) = (
            f.local(I32) for _ in range(19))
        f.get(u0).set(u)
        f.block().loop()
        f.get(u).get(u1).op("i32.ge_s").br_if(1)
        # unit -> (batch item, tile row, tile column)
        f.get(u).i32(nt).op("i32.rem_u").i32(cfg.nb).op("i32.mul").set(j0)
        f.get(u).i32(nt).op("i32.div_u").set(t)
        f.get(t).i32(mt).op("i32.rem_u").i32(cfg.mb).op("i32.mul").set(i0)
        f.get(t).i32(mt).op("i32.div_u").set(bi)
        for base, ptr, stride in ((ab, A, M * K * 4), (bb, B, K * N * 4), (cb, C, M * N * 4)):
            f.get(ptr).get(bi).i32(stride).op("i32.mul").op("i32.add").set(base)
        f.get(i0).i32(cfg.mb).op("i32.add").set(tmp)
        f.i32(M).set(iend)
        self._min(f, tmp, iend, iend)
        f.get(j0).i32(cfg.nb).op("i32.add").set(tmp)
        f.i32(N).set(jend)
        self._min(f, tmp, jend, jend)
        # jfull = j0 + ((jend - j0) / nr) * nr
        f.get(j0).get(jend).get(j0).op("i32.sub").i32(cfg.nr).op("i32.div_u").i32(cfg.nr).op("i32.mul")
        f.op("i32.add").set(jfull)
        f.i32(0).set(k0)
        f.loop()  # over K slices (K >= 1: at least one)
        f.i32(K).get(k0).op("i32.sub").set(tmp)
        f.i32(cfg.kb).set(kc)
        self._min(f, tmp, kc, kc)
        f.get(k0).op("i32.eqz").set(init)
        if pack is not None:
            # src = bb + (k0*N + j0)*4, dst = S, panels = (jfull - j0) / nr
            f.get(bb).get(k0).i32(4 * N).op("i32.mul").op("i32.add").get(j0).i32(4).op("i32.mul").op("i32.add")
            f.get(S).get(kc).get(jfull).get(j0).op("i32.sub").i32(cfg.nr).op("i32.div_u").call(pack)
        f.get(i0).set(i)

        def row_pass(rows: int, micro_full: int, micro_vec: int | None) -> None:
            # pa = ab + (i*K + k0)*4 ; pc = cb + i*N*4
            f.get(ab).get(i).i32(4 * K).op("i32.mul").op("i32.add").get(k0).i32(4).op("i32.mul").op("i32.add").set(pa)
            f.get(cb).get(i).i32(4 * N).op("i32.mul").op("i32.add").set(pc)
            # every full nr-wide panel in one call
            f.get(pa)
            if cfg.pack_b:
                f.get(S)
            else:
                self._b_ptr(f, bb, k0, j0)
            f.get(pc).get(j0).i32(4).op("i32.mul").op("i32.add").get(kc).get(init)
            f.get(jfull).get(j0).op("i32.sub").i32(cfg.nr).op("i32.div_u")
            if cfg.pack_b:
                f.get(kc).i32(4 * cfg.nr).op("i32.mul")
            else:
                f.i32(4 * cfg.nr)
            f.call(micro_full)
            f.get(jfull).set(j)
            if micro_vec is not None:  # 4-wide vectors left over, in one call
                f.get(jend).get(j).op("i32.sub").i32(4).op("i32.div_u").set(tmp)
                f.get(pa)
                self._b_ptr(f, bb, k0, j)
                f.get(pc).get(j).i32(4).op("i32.mul").op("i32.add").get(kc).get(init).get(tmp).i32(16).call(micro_vec)
                f.get(j).get(tmp).i32(4).op("i32.mul").op("i32.add").set(j)
            if scal is not None:
                f.get(j).get(jend).op("i32.lt_s").if_()
                f.get(pa)
                self._b_ptr(f, bb, k0, j)
                f.get(pc).get(j).i32(4).op("i32.mul").op("i32.add").get(kc).get(init).i32(rows)
                f.get(jend).get(j).op("i32.sub").call(scal)
                f.end()

        # full register-tile rows
        f.block().loop()
        f.get(i).i32(cfg.mr).op("i32.add").get(iend).op("i32.gt_s").br_if(1)
        row_pass(cfg.mr, full, vec_full)
        self._addc(f, i, cfg.mr)
        f.br(0).end().end()
        if one_row is not None:
            f.block().loop()
            f.get(i).get(iend).op("i32.ge_s").br_if(1)
            row_pass(1, one_row, vec_one)
            self._addc(f, i, 1)
            f.br(0).end().end()
        self._addc(f, k0, cfg.kb)
        f.get(k0).i32(K).op("i32.lt_s").br_if(0)
        f.end()  # K slices
        self._addc(f, u, 1)
        f.br(0).end().end()
        self.mod.add(f, export="run")

    def _b_ptr(self, f: Func, bb: int, k0: int, j: int) -> None:
        """Push bb + (k0*N + j)*4."""
        f.get(bb).get(k0).i32(4 * self.op.N).op("i32.mul").op("i32.add").get(j).i32(4).op("i32.mul").op("i32.add")


def emit_matmul(op: MatMul, cfg: WasmMatmulConfig) -> bytes:
    """The WebAssembly binary of ``cfg`` for ``op`` (see the module docstring for its contract)."""
    if not isinstance(op, MatMul):
        raise TypeError(f"emit_matmul renders matmul ops, not {type(op).__name__}")
    total = 4 * (op.batch * (op.M * op.K + op.K * op.N + op.M * op.N))
    if total >= 2**31:
        raise ValueError(f"{op.key()} needs {total} bytes: more than a wasm32 memory holds")
    em = _Emitter(op, cfg)
    em.run()
    return em.mod.encode()
