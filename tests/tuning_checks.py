"""What every tune's answer must satisfy, for tests that tune on a real device."""

from __future__ import annotations

import statistics

from jit_core.tuner import TuneResult


def assert_confirmed_winner(res: TuneResult) -> None:
    """The winner passed every run it had, and is the fastest by the tuner's own rule: with
    confirmation rounds, the lowest median of all samples among the leaders that passed every
    round (its ``samples_ms`` are all of them); without, the lowest median of the search."""
    assert res.best is not None and res.best.ok and res.best.check_ok
    confirm = [t for t in res.trials if t.phase == "confirm"]
    mine = [t for t in res.trials if t.config_key == res.best.config_key]
    assert all(t.ok for t in mine), [t.error for t in mine if not t.ok]
    if not confirm:
        assert res.best.median_ms == min(t.median_ms for t in res.trials if t.ok)
        return
    out = {t.config_key for t in confirm if not t.ok}
    pooled: dict[str, list[float]] = {}
    for t in res.trials:
        if t.ok:
            pooled.setdefault(t.config_key, []).extend(t.samples_ms)
    leaders = {t.config_key for t in confirm} - out
    assert res.best.config_key in leaders
    assert sorted(res.best.samples_ms) == sorted(pooled[res.best.config_key])
    assert res.best.median_ms == statistics.median(pooled[res.best.config_key])
    assert res.best.median_ms == min(statistics.median(pooled[k]) for k in leaders)
