"""Every search strategy tunes for real on lavapipe (native wgpu), and `jitfarm run` reuses and
warm-starts from the kernel cache: real Ray, real device, results and cache on disk."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from jit_core.ops import MatMul
from jit_core.protocol import MeasureSpec
from jit_core.search import STRATEGIES
from jit_core.templates import get_template
from jit_core.tuner import TuneOptions, tune
from tests.projects import make_project, run_cli
from tests.tuning_checks import assert_confirmed_winner

OP = MatMul(16, 16, 16)  # six vec4 configs on lavapipe: every strategy finishes its search
MEASURE = MeasureSpec(warmup=1, samples=3, min_sample_ms=1, max_reps=16)


@pytest.mark.native
@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_strategy_tunes_on_lavapipe_and_its_winner_passed_the_check(name, lavapipe_driver, lavapipe_caps):
    tpl = get_template("matmul-wgsl-vec4")
    space = tpl.space(OP, lavapipe_caps)
    res = tune(OP, tpl, lavapipe_caps, lavapipe_driver,
               options=TuneOptions(strategy=name, budget_s=60, batch_size=4, measure=MEASURE))
    assert res.stopped == "space-exhausted" and res.best is not None
    assert res.best.ok and res.best.check_ok and res.best.timer_kind
    assert {t.config_key for t in res.trials} == {c.key() for c in space}
    assert_confirmed_winner(res)
    search = [t for t in res.trials if t.phase == "search"]
    if STRATEGIES[name].remeasures:
        assert len(search) > len(space)
    else:
        assert len(search) == len(space)


EXPERIMENT = """\
name: cache
devices: [native-lavapipe]
seed: 2
ops:
  - {kind: matmul, M: 40, N: 36, K: 20, label: ragged}
tuner: {template: matmul-wgsl-vec4, strategy: hill-climb, budget_s: 20, max_evals: 6, batch_size: 3, cache_retime: 2}
measure: {warmup: 1, samples: 3, min_sample_ms: 1, max_reps: 16}
compare: {rounds: 1, samples: 3}
"""


def _run(tmp: Path) -> tuple[int, pd.DataFrame, pd.DataFrame]:
    code, run_dir = run_cli(tmp / "experiments" / "cache.yaml", tmp / "results")
    return code, pd.read_parquet(run_dir / "jobs"), pd.read_parquet(run_dir / "trials")


@pytest.mark.native
@pytest.mark.ray
@pytest.mark.slow
def test_second_run_reuses_the_cache_and_a_similar_device_warm_starts(tmp_path):
    make_project(tmp_path, "cache", EXPERIMENT)
    cache_file = tmp_path / "results" / "kernel-cache.json"

    code, jobs, trials = _run(tmp_path)
    assert code == 0 and jobs["cache"].tolist() == ["cold"] and (trials["phase"] == "search").sum() == 6
    entries = json.loads(cache_file.read_text())["entries"]
    (key, entry), = entries.items()
    assert key.startswith(MatMul(40, 36, 20).key() + "|matmul-wgsl-vec4@")
    assert entry["config_key"] == jobs["best_config"][0]

    code, jobs, trials = _run(tmp_path)  # same device: only the cached winner and one runner-up
    assert code == 0 and jobs["cache"].tolist() == ["reuse"]
    searched = trials[trials["phase"] == "search"]["config"].tolist()
    assert searched == [entry["top"][0][0], entry["top"][1][0]]
    assert set(trials[trials["phase"] == "confirm"]["config"]) <= set(searched)

    # The same cache as written by another lavapipe build (other fingerprint, same vendor and
    # architecture): this device starts its search from that build's winner.
    other = dict(entry, config_key=entry["top"][1][0], top=[entry["top"][1], entry["top"][0]])
    cache_file.write_text(json.dumps({"format": 2, "entries": {key.rsplit("|", 1)[0] + "|0123456789abcdef": other}}))
    code, jobs, trials = _run(tmp_path)
    assert code == 0 and jobs["cache"].tolist() == ["warm-start"] and (trials["phase"] == "search").sum() == 6
    assert trials["config"].tolist()[:2] == [entry["top"][1][0], entry["top"][0][0]]
