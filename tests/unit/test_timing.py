"""The timer layer's arithmetic (jit_core/timing.py), without a device."""

from __future__ import annotations

import itertools

import pytest

from jit_core.protocol import MeasureSpec
from jit_core.timing import calibrate_reps, collect_samples, median, median_ci, min_sample_span_ms, sample_spanning


def test_median_ci_needs_six_samples_at_95_percent():
    assert median_ci([1.0] * 5) is None
    assert median_ci([3.0, 1.0, 2.0, 6.0, 5.0, 4.0]) == (1.0, 6.0)  # ranks 0 and n-1


def test_median_ci_narrows_to_inner_order_statistics_as_n_grows():
    xs = [float(i) for i in range(100)]
    lo, hi = median_ci(xs)
    # Binomial(100, 1/2): the 95 % interval of the median is about ranks 39..60.
    assert 38 <= lo <= 41 and 58 <= hi <= 61
    assert lo < median(xs) < hi


def test_min_span_is_the_larger_of_min_sample_ms_and_min_ticks_ticks():
    assert min_sample_span_ms(MeasureSpec(min_sample_ms=1.0, min_ticks=100), 0.1) == pytest.approx(10.0)
    assert min_sample_span_ms(MeasureSpec(min_sample_ms=20.0, min_ticks=100), 0.1) == 20.0
    assert min_sample_span_ms(MeasureSpec(min_sample_ms=2.0), None) == 2.0


def test_calibration_reaches_the_minimum_span_from_a_readback_dominated_first_run():
    per_run = 0.01  # ms on the sample's timer; the first wall run (with readback) says 1 ms
    reps = calibrate_reps(1.0, 5.0, 10_000, 0.001, lambda r: per_run, refine=True)
    assert reps * per_run >= 0.9 * 5.0


def test_without_a_target_exactly_samples_samples_are_taken():
    got = collect_samples(lambda reps: 1.0, 4, MeasureSpec(samples=7))
    assert len(got.samples_ms) == 7 and got.stop == "fixed"


def test_a_target_ci_stops_early_on_steady_samples_and_at_the_cap_on_noisy_ones():
    steady = collect_samples(lambda reps: 1.0, 1, MeasureSpec(samples=3, target_ci_rel=0.05, max_samples=40))
    assert steady.stop == "ci" and 6 <= len(steady.samples_ms) < 40
    noise = itertools.cycle([1.0, 3.0, 0.5, 2.0, 5.0])
    noisy = collect_samples(lambda reps: next(noise), 1, MeasureSpec(samples=3, target_ci_rel=0.01, max_samples=20))
    assert noisy.stop == "max-samples" and len(noisy.samples_ms) == 20


def test_a_target_ci_stops_at_the_time_cap():
    import time

    def slow(reps: int) -> float:
        time.sleep(0.01)
        return float(len(str(time.perf_counter_ns())) % 7 + 1)  # noisy on purpose

    got = collect_samples(slow, 1, MeasureSpec(samples=2, target_ci_rel=0.001, max_samples=10_000, max_time_ms=50))
    assert got.stop in ("max-time", "ci") and len(got.samples_ms) < 100


def test_measure_spec_json_carries_the_new_fields_with_defaults_of_a_fixed_count():
    j = MeasureSpec().to_json()
    assert j["targetCiRel"] is None and j["minTicks"] == 100 and j["maxSamples"] == 50
    with pytest.raises(ValueError):
        MeasureSpec(target_ci_rel=1.5)


def test_samples_that_fall_short_after_a_slow_calibration_are_taken_again_with_more_reps():
    # The first runs are slow (0.5 ms each), then the device settles at 0.1 ms a run: the reps
    # calibrated on the slow runs make samples of half the span; one re-calibration fixes it.
    calls = {"n": 0}

    def per_run(reps: int) -> float:
        calls["n"] += 1
        return 0.5 if calls["n"] <= 2 else 0.1

    got = sample_spanning(0.5, 4.0, 1000, 0.001, per_run, MeasureSpec(samples=5), refine=True)
    assert not got.short and got.median_ms * got.reps >= 4.0
    assert len(got.samples.samples_ms) == 5


def test_samples_capped_by_max_reps_stay_short_and_say_so():
    got = sample_spanning(0.01, 4.0, 8, 0.001, lambda reps: 0.01, MeasureSpec(samples=3), refine=True)
    assert got.reps == 8 and got.short


def test_warm_up_runs_the_count_then_doubles_runs_until_the_time_has_passed():
    from jit_core.protocol import MeasureSpec
    from jit_core.timing import warm_up

    calls: list[int] = []
    warm_up(calls.append, MeasureSpec(warmup=3, warmup_ms=30.0))
    assert calls[:3] == [1, 1, 1]
    rest = calls[3:]
    assert rest and rest[0] == 1 and all(b in (a, 2 * a) for a, b in zip(rest, rest[1:]))
    none: list[int] = []
    warm_up(none.append, MeasureSpec(warmup=0))
    assert none == []
