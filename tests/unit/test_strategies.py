"""One test suite run against every registered search strategy, on device timings recorded on
lavapipe and replayed in-process (ReplayRunner: Kernel Tuner's simulation mode, not a device)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from farm.config.experiments import STRATEGIES as EXPERIMENT_STRATEGIES
from jit_core.replay import Recording, ReplayRunner
from jit_core.search import STRATEGIES, get_strategy
from jit_core.space import Config
from jit_core.templates import get_template
from jit_core.tuner import TuneOptions, tune

DATA = Path(__file__).resolve().parent.parent / "data" / "recordings"
RECORDINGS = sorted(DATA.glob("*.json"))
NAMES = sorted(STRATEGIES)


@pytest.fixture(scope="module", params=[p.name for p in RECORDINGS])
def recording(request) -> Recording:
    return Recording.load(DATA / request.param)


def _space(rec: Recording):
    return get_template(rec.template).space(rec.op, rec.caps)


def _replay(rec: Recording, strategy: str, **kw):
    runner = ReplayRunner(rec)
    opts = TuneOptions(**{"strategy": strategy, "budget_s": 1e6, "batch_size": 8, "measure": rec.measure, **kw})
    return tune(rec.op, rec.template, rec.caps, runner, options=opts, clock=runner.clock), runner


def test_recordings_cover_their_whole_space(recording):
    assert {c.key() for c in _space(recording)} == set(recording.configs)


def test_every_strategy_can_be_named_in_an_experiment():
    assert set(EXPERIMENT_STRATEGIES) == set(STRATEGIES)


@pytest.mark.parametrize("name", NAMES)
def test_ask_tell_contract(name, recording):
    space = _space(recording)
    s = get_strategy(name, space, seed=3, samples=5)
    seen: list[Config] = []
    with pytest.raises(ValueError, match="never asked"):
        s.tell(space.configs[0], 1.0)
    while True:
        batch = s.ask(5)
        if not batch:
            break
        assert len(batch) <= 5 and len(set(batch)) == len(batch)
        assert all(c in space for c in batch) and s.pending == batch
        if not s.remeasures:
            assert not set(batch) & set(seen)
        seen += batch
        for c in batch:
            rec = recording.configs[c.key()]
            s.tell(c, rec.median_ms if rec.ok else None)
        with pytest.raises(ValueError, match="told twice"):
            s.tell(batch[0], 1.0)
    assert s.done and s.ask(3) == []
    assert set(seen) <= set(space) and len(seen) >= 1


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_search(name, recording):
    a, _ = _replay(recording, name, seed=7, max_evals=40)
    b, _ = _replay(recording, name, seed=7, max_evals=40)
    assert [t.config_key for t in a.trials] == [t.config_key for t in b.trials]


@pytest.mark.parametrize("name", NAMES)
def test_unbounded_search_ends_near_the_best_of_the_whole_space(name, recording):
    res, _ = _replay(recording, name)
    best_key, best_ms = recording.best()
    assert res.stopped == "space-exhausted" and res.best is not None and res.best.ok
    found = recording.configs[res.best.config_key].median_ms
    if STRATEGIES[name].remeasures:  # it may drop the best on a one-sample time; never by much
        assert found <= 1.10 * best_ms
    else:
        assert res.best.config_key == best_key and len({t.config_key for t in res.trials}) == len(recording.configs)


@pytest.mark.parametrize("name", NAMES)
def test_eval_budget_stops_the_search(name, recording):
    res, _ = _replay(recording, name, max_evals=11)
    assert sum(t.phase == "search" for t in res.trials) == 11 and res.stopped == "eval-budget" and res.best is not None
    # the confirmation rounds re-time configs of those 11, nothing else
    searched = {t.config_key for t in res.trials if t.phase == "search"}
    assert {t.config_key for t in res.trials if t.phase == "confirm"} <= searched


@pytest.mark.parametrize("name", NAMES)
def test_time_budget_on_the_device_clock_stops_within_one_batch(name, recording):
    res, runner = _replay(recording, name, budget_s=3.0, batch_size=4, confirm_top=0)
    assert res.stopped == "time-budget"
    per_candidate = max(r.wall_s for r in recording.configs.values()) * 2
    assert 3.0 <= res.elapsed_s <= 3.0 + 4 * per_candidate
    assert res.elapsed_s == pytest.approx(runner.clock())


@pytest.mark.parametrize("name", NAMES)
def test_failed_and_wrong_configs_never_win(name, recording):
    ranked = sorted((r.median_ms, k) for k, r in recording.configs.items() if r.ok)
    broken = dict(recording.configs)
    broken[ranked[0][1]] = dataclasses.replace(broken[ranked[0][1]], ok=False, error_class="wrong-result")
    broken[ranked[1][1]] = dataclasses.replace(broken[ranked[1][1]], ok=False, error_class="compile", samples_ms=[])
    res, _ = _replay(dataclasses.replace(recording, configs=broken), name)
    bad = {ranked[0][1], ranked[1][1]}
    assert res.best is not None and res.best.config_key not in bad
    assert all(not t.ok for t in res.trials if t.config_key in bad)


@pytest.mark.parametrize("name", NAMES)
def test_warm_start_tries_the_given_configs_first(name, recording):
    space = _space(recording)
    start = (space.configs[-1], space.configs[len(space) // 2], Config({"nope": 1}))
    res, _ = _replay(recording, name, start=start, max_evals=12)
    assert [t.config_key for t in res.trials[:2]] == [start[0].key(), start[1].key()]
    assert res.start == [start[0].key(), start[1].key()]


@pytest.mark.parametrize("name", NAMES)
def test_trace_draws_best_so_far_against_device_time(name, recording):
    res, _ = _replay(recording, name, budget_s=8.0)
    elapsed = [t.elapsed_s for t in res.trials]
    assert elapsed == sorted(elapsed) and elapsed[-1] <= res.elapsed_s
    first_ok = next(i for i, t in enumerate(res.trials) if t.ok)
    assert all(t.best_so_far_ms is not None for t in res.trials[first_ok:])
    assert res.trials[-1].best_so_far_ms == res.best.median_ms


def test_successive_halving_times_survivors_again_with_more_samples(recording):
    res, _ = _replay(recording, "successive-halving", confirm_top=0)
    by_rung: dict[int, list[str]] = {}
    for t in res.trials:
        by_rung.setdefault(len(t.samples_ms), []).append(t.config_key)
    counts = sorted(by_rung)
    assert counts[0] == 1 and counts[-1] == recording.measure.samples and len(counts) >= 2
    assert len(by_rung[1]) == len(recording.configs)
    for lo, hi in zip(counts, counts[1:]):
        assert set(by_rung[hi]) <= set(by_rung[lo]) and len(by_rung[hi]) <= -(-len(by_rung[lo]) // 3)
    assert res.best.config_key in by_rung[counts[-1]] and len(res.best.samples_ms) == counts[-1]


def test_hill_climb_moves_to_a_better_neighbour(recording):
    space = _space(recording)
    s = get_strategy("hill-climb", space, seed=1)
    first = s.ask(4)
    assert first == list(space.configs[:4])
    for c in first:
        s.tell(c, recording.configs[c.key()].median_ms)
    centre = min(first, key=lambda c: recording.configs[c.key()].median_ms or 1e9)
    nxt = s.ask(4)
    assert nxt and all(s._distance(centre, c) <= 2 for c in nxt)


def test_replay_runner_cycles_recorded_samples_and_advances_its_clock(recording):
    key, rec = next((k, r) for k, r in recording.configs.items() if r.ok and len(r.samples_ms) >= 2)
    runner = ReplayRunner(recording)
    op, tpl = recording.op, get_template(recording.template)
    from jit_core.protocol import make_batch
    from jit_core.reference import check_positions

    kernel = tpl.render(op, Config.from_key(key))
    one = dataclasses.replace(recording.measure, samples=1)
    batch = make_batch(op, [("a", kernel)], seed=1, measure=one, check_positions=check_positions(op, 8, 1))
    first, second = runner.run_batch(batch)[0], runner.run_batch(batch)[0]
    assert first.samples_ms == rec.samples_ms[:1] and second.samples_ms == rec.samples_ms[1:2]
    assert 0 < runner.clock() < 2 * rec.wall_s
