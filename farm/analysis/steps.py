"""Change-point (step) detection over one series' history of run medians.

Each run contributes one point: the log of its median latency and the standard error of that
log median (from its bootstrap CI). Binary segmentation: in a segment, the split that best
separates the means of its two sides (least squares) is scored as a z value against a noise
level that is the larger of (a) the run-to-run scatter around the two side means and (b) the
typical within-run standard error, so neither a noisy history nor a single very precise run
makes a step out of noise. Its size is the ratio of the side medians. A split is a step when its z passes ``z_threshold``, its size passes
``min_effect``, and the raw samples of the runs next to it (up to ``window`` each side) differ by
a Mann-Whitney U test at ``alpha``. Accepted splits recurse into both sides.
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


def _best_split(y: np.ndarray, se_floor: float) -> tuple[int, float]:
    """(k, z) of the split that best separates the means of the two sides (least squares); z is
    the difference of the means over its standard error, with the noise taken from the residuals
    around the two side means (never below the typical within-run standard error)."""
    n = y.size
    k = np.arange(1, n)
    csum = np.cumsum(y)[:-1]
    left_mean = csum / k
    right_mean = (y.sum() - csum) / (n - k)
    gain = (right_mean - left_mean) ** 2 * k * (n - k) / n
    i = int(np.argmax(gain))
    kk = int(k[i])
    resid = np.concatenate([y[:kk] - left_mean[i], y[kk:] - right_mean[i]])
    between = math.sqrt(float((resid ** 2).sum()) / (n - 2)) if n >= 4 else 0.0
    sigma = max(between, se_floor, 1e-12)
    return kk, abs(float(right_mean[i] - left_mean[i])) / (sigma * math.sqrt(1.0 / kk + 1.0 / (n - kk)))


def detect_steps(log_medians: np.ndarray, log_se: np.ndarray, samples: list[np.ndarray],
                 options: StepOptions = StepOptions()) -> list[Step]:
    """Steps in one series; ``samples[i]`` are run i's raw samples (for the rank check)."""
    y = np.asarray(log_medians, dtype=float)
    se = np.asarray(log_se, dtype=float)
    if y.size < options.min_runs:
        return []
    out: list[Step] = []
    stack = [(0, y.size)]
    while stack:
        a, b = stack.pop()
        if b - a < 2:
            continue
        seg_se = se[a:b][np.isfinite(se[a:b])]
        floor = float(np.median(seg_se)) if seg_se.size else 0.0
        k, z = _best_split(y[a:b], floor)
        at = a + k
        d = float(np.median(y[at:b]) - np.median(y[a:at]))
        if z < options.z_threshold or abs(math.exp(d) - 1.0) < options.min_effect:
            continue
        before = np.concatenate(samples[max(a, at - options.window):at])
        after = np.concatenate(samples[at:min(b, at + options.window)])
        p = mann_whitney(after, before).p
        if not (p < options.alpha):
            continue
        out.append(Step(at, math.exp(d), z, p))
        stack.append((a, at))
        stack.append((at, b))
    return sorted(out, key=lambda s: s.index)
