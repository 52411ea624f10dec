"""The timer layer every driver shares (the harness's ``static/timing.js`` is the same in JS).

A sample is ``reps`` back-to-back runs timed together; ``reps`` is chosen so one sample spans at
least ``MeasureSpec.min_sample_ms`` and ``MeasureSpec.min_ticks`` ticks of the timer's measured
resolution. Samples are taken until the 95 % confidence interval of their median is narrower
than ``target_ci_rel`` x median, or a sample or time cap is hit (or exactly ``samples`` of them
when no target is set).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from .protocol import MeasureSpec

# A record whose median sample spans less than this fraction of the minimum span is flagged
# "short-samples" (max_reps reached first, or a busy machine made calibration overshoot).
SHORT_SAMPLE_FRACTION = 0.5


def median(xs: Sequence[float]) -> float:
    s = sorted(xs)
    n = len(s)
    if n == 0:
        raise ValueError("median of no samples")
    return s[(n - 1) // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def median_ci(xs: Sequence[float], level: float = 0.95) -> tuple[float, float] | None:
    """Distribution-free CI of the median from order statistics: the ranks (j, n-1-j) with the
    smallest j whose binomial coverage is still at least ``level``. None when n is too small
    (n < 6 at 95 %)."""
    n = len(xs)
    s = sorted(xs)
    alpha = 1.0 - level
    log_pmf = -n * math.log(2.0)  # P(B = 0), B ~ Binomial(n, 1/2)
    cdf = 0.0
    j = -1
    i = 0
    while i < n / 2:
        cdf += math.exp(log_pmf)
        if 2 * cdf > alpha:
            break
        j = i
        log_pmf += math.log((n - i) / (i + 1))
        i += 1
    if j < 0:
        return None
    return s[j], s[n - 1 - j]


def warm_up(run_reps: Callable[[int], None], measure: MeasureSpec, check: Callable[[], None] | None = None) -> None:
    """``measure.warmup`` single runs, then runs until ``measure.warmup_ms`` of wall time have
    passed, doubling the runs per round trip while one takes under 5 ms. ``run_reps(k)`` runs the
    candidate k times and waits for the device (the same as ``warmUp`` in static/timing.js)."""
    for _ in range(measure.warmup):
        run_reps(1)
        if check is not None:
            check()
    if measure.warmup_ms <= 0:
        return
    t0, reps = time.perf_counter(), 1
    while (time.perf_counter() - t0) * 1e3 < measure.warmup_ms:
        t = time.perf_counter()
        run_reps(reps)
        if (time.perf_counter() - t) * 1e3 < 5.0:
            reps = min(2 * reps, 1 << 16)
        if check is not None:
            check()


def min_sample_span_ms(measure: MeasureSpec, resolution_ms: float | None) -> float:
    """The shortest a sample may be: ``min_sample_ms`` and ``min_ticks`` timer ticks."""
    return max(measure.min_sample_ms, measure.min_ticks * (resolution_ms or 0.0))


def calibrate_reps(t_one_ms: float, min_ms: float, max_reps: int, resolution_ms: float,
                   sample: Callable[[int], float], *, refine: bool) -> int:
    """PROTOCOL.md step 4: reps from one wall-clock run, then refined (at most 5 times) with the
    timer the samples use until a sample spans ``min_ms``. ``sample(reps)`` returns the
    per-run time of one sample of ``reps`` runs."""
    floor = max(resolution_ms, 1e-6)
    reps = max(1, min(max_reps, math.ceil(min_ms / max(t_one_ms, floor))))
    if not refine:
        return reps
    for _ in range(5):
        if reps >= max_reps:
            break
        total = sample(reps) * reps
        if total >= min_ms:
            break
        # 10 % over the span, so run-to-run noise keeps the samples above it.
        reps = max(reps + 1, min(max_reps, math.ceil(reps * 1.1 * min_ms / max(total, floor))))
    return reps


@dataclass
class Samples:
    """Per-run times of each sample, why sampling stopped ('fixed', 'ci', 'max-samples',
    'max-time') and the 95 % CI of the median (None below 6 samples)."""

    samples_ms: list[float]
    stop: str
    ci_ms: tuple[float, float] | None


def collect_samples(sample: Callable[[int], float], reps: int, measure: MeasureSpec,
                    check: Callable[[], None] = lambda: None) -> Samples:
    """Take samples of ``reps`` runs; ``sample(reps)`` returns the per-run ms of one sample and
    ``check()`` may raise to abort (e.g. a timeout)."""
    out: list[float] = []
    target = measure.target_ci_rel
    if target is None:
        for _ in range(measure.samples):
            out.append(sample(reps))
            check()
        return Samples(out, "fixed", median_ci(out))
    max_samples = max(measure.samples, measure.max_samples)
    t0 = time.perf_counter()
    stop = "max-samples"
    while len(out) < max_samples:
        out.append(sample(reps))
        check()
        if len(out) < measure.samples:
            continue
        ci = median_ci(out)
        if ci is not None and ci[1] - ci[0] <= target * median(out):
            stop = "ci"
            break
        if (time.perf_counter() - t0) * 1e3 >= measure.max_time_ms:
            stop = "max-time"
            break
    return Samples(out, stop, median_ci(out))


@dataclass
class Spanning:
    """What ``sample_spanning`` kept: the dispatches per sample, the samples, their median, and
    whether that median still spans under ``SHORT_SAMPLE_FRACTION`` of the minimum."""

    reps: int
    samples: Samples
    median_ms: float
    short: bool


def sample_spanning(t_one_ms: float, min_ms: float, max_reps: int, resolution_ms: float,
                    sample: Callable[[int], float], measure: MeasureSpec, *, refine: bool,
                    check: Callable[[], None] = lambda: None) -> Spanning:
    """``calibrate_reps`` then ``collect_samples``. When the median sample spans under
    ``SHORT_SAMPLE_FRACTION`` of ``min_ms`` (calibration overshot on a busy machine) and reps may
    grow, reps is set again from that steady-state median and the samples are taken again, once.
    The same rule as timing.js's ``sampleSpanning``."""
    reps = calibrate_reps(t_one_ms, min_ms, max_reps, resolution_ms, sample, refine=refine)
    check()
    got = collect_samples(sample, reps, measure, check)
    med = median(got.samples_ms)
    if med * reps < SHORT_SAMPLE_FRACTION * min_ms and reps < max_reps:
        floor = max(resolution_ms, 1e-6)
        reps = max(reps + 1, min(max_reps, math.ceil(1.1 * min_ms / max(med, floor))))
        got = collect_samples(sample, reps, measure, check)
        med = median(got.samples_ms)
    return Spanning(reps, got, med, med * reps < SHORT_SAMPLE_FRACTION * min_ms)
