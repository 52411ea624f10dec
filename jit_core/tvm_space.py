"""The size of a TVM-default-like matmul space for one shape: what nnJIT's lite space is compared to.

TVM's default GPU matmul template splits each spatial axis (M, N) into 3 tiling levels (block,
virtual thread, thread) and the reduction axis K into 2 (outer, inner); every ordered
factorization of an axis length into that many factors is a candidate split; on top come 8
unroll variants (``auto_unroll_max_step`` in 4 values x ``unroll_explicit`` on/off). Counted this
way, 384x3072x768 gives 108 * 198 * 18 * 8 = 3,079,296: the figure nnJIT quotes for TVM's
default space of that GEMM ("millions to dozens").
"""

from __future__ import annotations

from dataclasses import dataclass
from math import comb

from .ops import MatMul

SPATIAL_LEVELS = 3
REDUCTION_LEVELS = 2
UNROLL_VARIANTS = 8


def ordered_factorizations(n: int, parts: int) -> int:
    """Ways to write ``n`` as an ordered product of ``parts`` positive integers (1s allowed):
    for n = prod p_i^e_i it is prod C(e_i + parts - 1, parts - 1)."""
    if n < 1 or parts < 1:
        raise ValueError(f"need n >= 1 and parts >= 1, got {n}, {parts}")
    count, m, p = 1, n, 2
    while p * p <= m:
        e = 0
        while m % p == 0:
            m //= p
            e += 1
        count *= comb(e + parts - 1, parts - 1)
        p += 1
    if m > 1:
        count *= parts
    return count


@dataclass(frozen=True)
class TvmSpaceSize:
    """Split counts per axis and the total (splits of M x N x K x unroll variants)."""

    m_splits: int
    n_splits: int
    k_splits: int
    unroll_variants: int

    @property
    def total(self) -> int:
        return self.m_splits * self.n_splits * self.k_splits * self.unroll_variants


def tvm_default_size(op: MatMul) -> TvmSpaceSize:
    return TvmSpaceSize(ordered_factorizations(op.M, SPATIAL_LEVELS), ordered_factorizations(op.N, SPATIAL_LEVELS),
                        ordered_factorizations(op.K, REDUCTION_LEVELS), UNROLL_VARIANTS)
