"""Change-point (step) detection over one series' history of run medians.

Each run contributes one point: the log of its median latency and the standard error of that
log median (from its bootstrap CI). Greedy binary segmentation: in every current segment, the
split that best separates the means of its two sides (least squares) is scored as a z value
against one noise level for the whole series, the larger of (a) the run-to-run scatter of all
runs around their current segment means and (b) the typical within-run standard error, so
neither a short segment, a noisy history nor a single very precise run makes a step out of
noise. The best split is a step when its z passes ``z_threshold``, its size (ratio of the side
medians) passes ``min_effect``, and the raw samples of the runs next to it (up to ``window``
each side) differ by a Mann-Whitney U test at ``alpha``; then the search goes on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .stats import mann_whitney


@dataclass(frozen=True)
class StepOptions:
    """Detection thresholds: ``z_threshold`` on the scaled difference of side medians (it is a
    maximum over all splits, hence well above 2), ``min_effect`` the smallest relative change
    reported, ``alpha`` for the sample-level Mann-Whitney check, ``window`` runs per side in it."""

    z_threshold: float = 4.5
    min_effect: float = 0.02
    alpha: float = 0.01
    window: int = 3
    min_runs: int = 2


@dataclass(frozen=True)
class Step:
    """A change at run index ``index`` (the first run after it): ``ratio`` = median after /
    median before (> 1 means slower), with ``z`` and the Mann-Whitney ``p`` of the check."""

    index: int
    ratio: float
    z: float
    p: float


def _best_split(y: np.ndarray) -> tuple[int, float]:
    """(k, d): the split of ``y`` that best separates the means of its two sides (least squares)
    and the difference of those means, right minus left."""
    n = y.size
    k = np.arange(1, n)
    csum = np.cumsum(y)[:-1]
    left_mean = csum / k
    right_mean = (y.sum() - csum) / (n - k)
    gain = (right_mean - left_mean) ** 2 * k * (n - k) / n
    i = int(np.argmax(gain))
    return int(k[i]), float(right_mean[i] - left_mean[i])


def _noise(y: np.ndarray, bounds: list[int], se_floor: float) -> float:
    """Run-to-run noise: residuals around each segment's mean (the split under test included),
    over the whole series."""
    resid = np.concatenate([y[a:b] - y[a:b].mean() for a, b in zip(bounds, bounds[1:])])
    dof = y.size - (len(bounds) - 1)
    between = math.sqrt(float((resid ** 2).sum()) / dof) if dof >= 2 else 0.0
    return max(between, se_floor, 1e-12)


def detect_steps(log_medians: np.ndarray, log_se: np.ndarray, samples: list[np.ndarray],
                 options: StepOptions = StepOptions()) -> list[Step]:
    """Steps in one series; ``samples[i]`` are run i's raw samples (for the rank check)."""
    y = np.asarray(log_medians, dtype=float)
    se = np.asarray(log_se, dtype=float)
    if y.size < options.min_runs:
        return []
    finite_se = se[np.isfinite(se)]
    floor = float(np.median(finite_se)) if finite_se.size else 0.0
    bounds = [0, y.size]
    out: list[Step] = []
    rejected: set[tuple[int, int]] = set()
    while True:
        best: tuple[float, int, int, int] | None = None
        for a, b in zip(bounds, bounds[1:]):
            if b - a < 2 or (a, b) in rejected:
                continue
            k, d = _best_split(y[a:b])
            sigma = _noise(y, sorted(bounds + [a + k]), floor)
            z = abs(d) / (sigma * math.sqrt(1.0 / k + 1.0 / (b - a - k)))
            if best is None or z > best[0]:
                best = (z, a, b, a + k)
        if best is None:
            break
        z, a, b, at = best
        ratio = math.exp(float(np.median(y[at:b]) - np.median(y[a:at])))
        p = math.nan
        if z >= options.z_threshold and abs(ratio - 1.0) >= options.min_effect:
            before = np.concatenate(samples[max(a, at - options.window):at])
            after = np.concatenate(samples[at:min(b, at + options.window)])
            p = mann_whitney(after, before).p
        if not (p < options.alpha):
            rejected.add((a, b))
            continue
        out.append(Step(at, ratio, z, p))
        bounds = sorted(bounds + [at])
    return sorted(out, key=lambda s: s.index)
