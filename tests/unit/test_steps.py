"""Step detection over a series' run medians: planted steps are found at the right run, noise is not."""

from __future__ import annotations

import numpy as np
import pytest

from farm.analysis.steps import StepOptions, detect_steps


def _history(rng, runs: int, step_at: int | None, *, size=0.10, noise=0.03, run_jitter=0.01, n=15):
    medians, ses, samples = [], [], []
    for t in range(runs):
        level = (1.0 + size if step_at is not None and t >= step_at else 1.0) * np.exp(rng.normal(0.0, run_jitter))
        s = level * rng.lognormal(0.0, noise, n)
        samples.append(s)
        medians.append(np.log(np.median(s)))
        ses.append(1.2533 * noise / np.sqrt(n))  # standard error of a median of n lognormal samples
    return np.array(medians), np.array(ses), samples


@pytest.mark.parametrize("seed", range(10))
def test_planted_ten_percent_step_is_found_at_its_run(seed):
    steps = detect_steps(*_history(np.random.default_rng(seed), 20, 12))
    assert [s.index for s in steps] == [12]
    assert 1.06 < steps[0].ratio < 1.14 and steps[0].p < 0.01


def test_planted_speedup_and_two_steps_are_found():
    rng = np.random.default_rng(7)
    m, se, s = _history(rng, 24, 8, size=-0.10)
    assert [x.index for x in detect_steps(m, se, s)] == [8]
    m2, se2, s2 = _history(rng, 12, 6, size=0.15)
    both = detect_steps(np.concatenate([m, m2 + m[-1] - m2[0] + 0.0]), np.concatenate([se, se2]), s + s2)
    assert [x.index for x in both][:1] == [8] and 24 + 6 in [x.index for x in both]


def test_noise_alone_is_not_flagged():
    rng = np.random.default_rng(11)
    flagged = sum(bool(detect_steps(*_history(rng, 20, None))) for _ in range(100))
    assert flagged <= 2  # z >= 4.5 over all splits and a 2% minimum effect: rare by design


def test_step_at_the_latest_run_and_between_two_runs():
    rng = np.random.default_rng(3)
    assert [s.index for s in detect_steps(*_history(rng, 10, 9, size=0.15))] == [9]
    assert [s.index for s in detect_steps(*_history(rng, 2, 1, size=0.15))] == [1]
    assert detect_steps(*_history(rng, 2, None)) == []
    assert detect_steps(*_history(rng, 1, None)) == []


def test_small_changes_under_the_minimum_effect_are_not_reported():
    rng = np.random.default_rng(4)
    m, se, s = _history(rng, 20, 10, size=0.03, noise=0.005, run_jitter=0.001)
    assert [x.index for x in detect_steps(m, se, s)] == [10]
    assert detect_steps(m, se, s, StepOptions(min_effect=0.05)) == []
