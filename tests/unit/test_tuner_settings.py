"""Experiment tuner settings (strategy, kernel cache), `jitfarm space` input and TVM space counts."""

from __future__ import annotations

from pathlib import Path

import pytest

from farm.config.errors import ConfigError, UserError
from farm.config.experiments import load_experiment, resolve_cache
from farm.report.space import parse_op
from jit_core.ops import MatMul
from jit_core.tvm_space import ordered_factorizations, tvm_default_size
from tests.unit.test_config import EXPERIMENT, _tree


@pytest.mark.parametrize("strategy", ["exhaustive", "random", "successive-halving", "hill-climb"])
def test_every_strategy_is_accepted(tmp_path, strategy):
    exp = load_experiment(_tree(tmp_path, experiment=EXPERIMENT.replace("{budget_s: 5}", f"{{budget_s: 5, strategy: {strategy}}}")))
    assert exp.tuner.strategy == strategy


def test_unknown_strategy_lists_the_known_ones(tmp_path):
    with pytest.raises(ConfigError, match="hill-climb"):
        load_experiment(_tree(tmp_path, experiment=EXPERIMENT.replace("{budget_s: 5}", "{strategy: annealing}")))


@pytest.mark.parametrize("setting, expected", [(None, "auto"), ("off", "off"), ("caches/k.json", "caches/k.json")])
def test_cache_setting_and_where_it_resolves(tmp_path, setting, expected):
    tuner = "{budget_s: 5}" if setting is None else f"{{budget_s: 5, cache: {setting}}}"
    exp = load_experiment(_tree(tmp_path, experiment=EXPERIMENT.replace("{budget_s: 5}", tuner)))
    assert exp.tuner.cache == expected and exp.tuner.cache_retime == 3
    resolved = resolve_cache(exp, tmp_path / "results").tuner.cache
    if expected == "auto":
        assert resolved == str((tmp_path / "results" / "kernel-cache.json").resolve())
    elif expected == "off":
        assert resolved == "off"
    else:
        assert Path(resolved).is_absolute() and resolved.endswith("caches/k.json")


@pytest.mark.parametrize("tuner, expected", [("{budget_s: 5}", (4, 2)), ("{budget_s: 5, confirm_top: 0}", (0, 2)),
                                             ("{confirm_top: 6, confirm_rounds: 3}", (6, 3))])
def test_confirmation_rounds_are_on_by_default_and_can_be_set_or_turned_off(tmp_path, tuner, expected):
    exp = load_experiment(_tree(tmp_path, experiment=EXPERIMENT.replace("{budget_s: 5}", tuner)))
    assert (exp.tuner.confirm_top, exp.tuner.confirm_rounds) == expected


def test_negative_confirmation_rounds_are_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="confirm_rounds.*>= 0"):
        load_experiment(_tree(tmp_path, experiment=EXPERIMENT.replace("{budget_s: 5}", "{confirm_rounds: -1}")))


def test_parse_op_accepts_plain_and_batched_shapes():
    assert parse_op("384x3072x768") == MatMul(384, 3072, 768)
    assert parse_op("12x64x64x32") == MatMul(64, 64, 32, batch=12)
    for bad in ("384x3072", "0x4x4", "ax4x4"):
        with pytest.raises(UserError, match="--op"):
            parse_op(bad)


def test_tvm_default_space_reproduces_nnjits_figure():
    assert tvm_default_size(MatMul(384, 3072, 768)).total == 3_079_296
    assert ordered_factorizations(12, 2) == 6  # 1x12 2x6 3x4 4x3 6x2 12x1
    assert ordered_factorizations(7, 3) == 3 and ordered_factorizations(1, 3) == 1
