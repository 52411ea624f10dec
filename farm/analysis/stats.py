"""Statistics for timing samples: medians with bootstrap CIs, ratios of medians, Mann-Whitney U.

Bootstrap of the median, fast and exact in distribution: resampling ``n`` values with
replacement and taking the k-th smallest is the same as taking the sorted sample at index
``ceil(n * U_(k)) - 1`` where ``U_(k)`` is the k-th order statistic of ``n`` uniforms, which is
Beta(k, n - k + 1). So each bootstrap replicate of a median costs O(1) instead of O(n), and a
million samples in thousands of groups take well under a second. For even ``n`` the median is
the mean of the two middle order statistics; the next one is drawn from its conditional
distribution (the minimum of the ``n - k`` uniforms above ``U_(k)``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np

DEFAULT_REPLICATES = 1000
DEFAULT_SEED = 20261121


@dataclass(frozen=True)
class BootstrapOptions:
    """How bootstrap CIs are computed: ``replicates`` resamples, a two-sided ``level`` interval
    from the percentiles of the replicates, ``seed`` for reproducible intervals."""

    replicates: int = DEFAULT_REPLICATES
    level: float = 0.95
    seed: int = DEFAULT_SEED


@dataclass(frozen=True)
class GroupedMedians:
    """Medians of many groups of samples, with bootstrap replicates of each median.

    ``median[g]``, ``n[g]``: the sample median and size of group ``g`` (NaN and 0 when empty);
    ``replicates[g, b]``: bootstrap replicate ``b`` of that median (NaN rows for empty groups);
    ``sorted_values[starts[g]:starts[g] + n[g]]``: group ``g``'s samples, sorted.
    """

    median: np.ndarray
    n: np.ndarray
    replicates: np.ndarray
    sorted_values: np.ndarray
    starts: np.ndarray

    def ci(self, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        return percentile_ci(self.replicates, level)


def percentile_ci(replicates: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of each row of ``replicates`` (NaN where a row has no finite value)."""
    reps = np.atleast_2d(replicates)
    alpha = (1.0 - level) / 2.0
    out_lo = np.full(reps.shape[0], np.nan)
    out_hi = np.full(reps.shape[0], np.nan)
    finite = np.isfinite(reps).all(axis=1)
    if finite.any():
        lo, hi = np.quantile(reps[finite], [alpha, 1.0 - alpha], axis=1)
        out_lo[finite], out_hi[finite] = lo, hi
    return out_lo, out_hi


def grouped_medians(values: np.ndarray, groups: np.ndarray, n_groups: int,
                    options: BootstrapOptions = BootstrapOptions()) -> GroupedMedians:
    """Median and bootstrap replicates of the median of ``values`` per group id in ``groups``
    (ints in ``[0, n_groups)``). NaN values are dropped first."""
    values = np.asarray(values, dtype=np.float64)
    groups = np.asarray(groups, dtype=np.int64)
    keep = np.isfinite(values)
    values, groups = values[keep], groups[keep]
    order = sort_within_groups(values, groups)
    sorted_vals = values[order]
    counts = np.bincount(groups, minlength=n_groups).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    median = np.full(n_groups, np.nan)
    has = counts > 0
    lo_idx = starts + (counts - 1) // 2
    hi_idx = starts + counts // 2
    median[has] = 0.5 * (sorted_vals[lo_idx[has]] + sorted_vals[hi_idx[has]])
    reps = np.full((n_groups, options.replicates), np.nan)
    rng = np.random.default_rng(options.seed)
    # Groups of one size share the Beta parameters: draw per size with scalar parameters.
    for size in np.unique(counts[has]):
        g = np.flatnonzero(counts == size)
        reps[g] = _median_replicates(rng, sorted_vals, starts[g], int(size), options.replicates)
    return GroupedMedians(median, counts, reps, sorted_vals, starts)


def sort_within_groups(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Indices that sort by group, then by value (two sorts; much faster than np.lexsort)."""
    by_value = np.argsort(values, kind="stable")
    return by_value[np.argsort(groups[by_value], kind="stable")]


def _median_replicates(rng: np.random.Generator, sorted_vals: np.ndarray, starts: np.ndarray, n: int,
                       replicates: int) -> np.ndarray:
    """Bootstrap replicates of the medians of groups of ``n`` sorted values starting at ``starts``."""
    k = (n + 1) // 2  # rank of the lower middle value
    shape = (starts.size, replicates)
    u_k = rng.beta(k, n - k + 1, size=shape)
    # ceil(u * n) - 1 == floor(u * n) but where u * n is an integer, which has probability 0.
    first = np.minimum((u_k * n).astype(np.int64), n - 1)
    first += starts[:, None]
    if n % 2:
        return sorted_vals[first]
    # Minimum of the n-k uniforms that lie above U_(k): U_(k) + (1-U_(k)) * Beta(1, n-k).
    u_next = u_k + (1.0 - u_k) * (1.0 - rng.random(shape) ** (1.0 / (n - k)))
    second = np.minimum((u_next * n).astype(np.int64), n - 1)
    second += starts[:, None]
    return 0.5 * (sorted_vals[first] + sorted_vals[second])


def median_ci(samples: np.ndarray, options: BootstrapOptions = BootstrapOptions()) -> tuple[float, float, float]:
    """(median, ci_low, ci_high) of one sample."""
    gm = grouped_medians(np.asarray(samples, dtype=float), np.zeros(len(samples), dtype=np.int64), 1, options)
    lo, hi = gm.ci(options.level)
    return float(gm.median[0]), float(lo[0]), float(hi[0])


def geomean_replicates(ratio_reps: np.ndarray) -> np.ndarray:
    """Bootstrap replicates of the geometric mean over the rows of ``ratio_reps`` (rows: ratios,
    columns: replicates). Rows with a non-finite or non-positive replicate are left out."""
    reps = np.atleast_2d(ratio_reps)
    ok = np.isfinite(reps).all(axis=1) & (reps > 0).all(axis=1)
    if not ok.any():
        return np.full(reps.shape[1], np.nan)
    return np.exp(np.log(reps[ok]).mean(axis=0))


def geomean(values: np.ndarray) -> float:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    return float(np.exp(np.log(v).mean())) if v.size else math.nan


def pooled_samples(rows: Iterable[Mapping[str, Any]]) -> dict[str, list[float]]:
    """The samples of each implementation's correct measurement rows (``ok`` and ``check_ok``),
    pooled over the rows (rounds) in order, by ``impl``."""
    pooled: dict[str, list[float]] = {}
    for r in rows:
        if r["ok"] and r["check_ok"]:
            pooled.setdefault(r["impl"], []).extend(r["samples_ms"])
    return pooled


# ------------------------------------------------------------------------------- Mann-Whitney U
@dataclass(frozen=True)
class MannWhitney:
    """Two-sided Mann-Whitney U test of ``x`` vs ``y``: ``u`` is U of ``x``, ``p`` the two-sided
    p-value (exact for small samples without ties, else normal approximation with tie and
    continuity correction); ``effect`` is the common-language effect size P(x > y) + P(x = y) / 2."""

    u: float
    p: float
    effect: float
    n_x: int
    n_y: int


_EXACT_LIMIT = 400  # n_x * n_y up to which the exact null distribution is enumerated


def _midranks(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(values, kind="mergesort")
    sorted_v = values[order]
    boundaries = np.flatnonzero(np.diff(sorted_v)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(values)]])
    tie_sizes = ends - starts
    avg = (starts + ends + 1) / 2.0  # ranks are 1-based
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(avg, tie_sizes)
    return ranks, tie_sizes


def _exact_u_cdf(n_x: int, n_y: int) -> np.ndarray:
    """P(U <= u) for u = 0..n_x*n_y under the null, no ties (counting by recursion on sizes)."""
    # counts[i][j] = distribution of U for sizes (i, j); built up row by row.
    prev = [np.ones(1)] + [None] * n_y  # i = 0: U is always 0
    for j in range(1, n_y + 1):
        prev[j] = np.ones(1)
    for i in range(1, n_x + 1):
        cur: list[np.ndarray] = [np.ones(1)]  # j = 0
        for j in range(1, n_y + 1):
            size = i * j + 1
            dist = np.zeros(size)
            a = prev[j]            # last element is from x: it is larger than all j y's -> U + j
            dist[j:j + a.size] += a
            b = cur[j - 1]         # last element is from y: U unchanged
            dist[:b.size] += b
            cur.append(dist)
        prev = cur
    counts = prev[n_y]
    return np.cumsum(counts) / counts.sum()


def mann_whitney(x: np.ndarray, y: np.ndarray) -> MannWhitney:
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    n_x, n_y = len(x), len(y)
    if n_x == 0 or n_y == 0:
        return MannWhitney(math.nan, math.nan, math.nan, n_x, n_y)
    ranks, ties = _midranks(np.concatenate([x, y]))
    u = float(ranks[:n_x].sum() - n_x * (n_x + 1) / 2.0)
    effect = u / (n_x * n_y)
    mean_u = n_x * n_y / 2.0
    if n_x * n_y <= _EXACT_LIMIT and (ties == 1).all():
        cdf = _exact_u_cdf(n_x, n_y)
        lo = min(u, n_x * n_y - u)
        p = min(1.0, 2.0 * float(cdf[int(round(lo))]))
        return MannWhitney(u, p, effect, n_x, n_y)
    n = n_x + n_y
    tie_term = float(((ties ** 3) - ties).sum()) / (n * (n - 1))
    var = n_x * n_y / 12.0 * ((n + 1) - tie_term)
    if var <= 0:
        return MannWhitney(u, 1.0, effect, n_x, n_y)
    z = (abs(u - mean_u) - 0.5) / math.sqrt(var)
    p = math.erfc(max(z, 0.0) / math.sqrt(2.0))
    return MannWhitney(u, min(1.0, p), effect, n_x, n_y)
