"""Experiments can name models: each entry expands to the ops of one inference (deduplicated jobs),
with every op's count kept in the experiment (and the run manifest)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from farm.config.errors import ConfigError
from farm.config.experiments import load_experiment
from farm.config.lock import experiment_from_manifest
from farm.config.model_workloads import plain
from jit_core.models import model_ops
from jit_core.ops import MatMul

DEVICE = """\
id: dev-a
driver: playwright
browser: {name: chromium, executable_path: EXE, args: [--enable-unsafe-webgpu]}
"""

EXPERIMENT = """\
name: m
devices: [dev-a]
ops:
  - {kind: matmul, M: 32, N: 2304, K: 768}
models:
  - {name: gpt2, seq: 32, phase: prefill}
  - {name: gpt2, seq: 32, phase: decode}
tuner: {budget_s: 5}
"""


def _path(tmp_path: Path, experiment: str) -> Path:
    (tmp_path / "device_configs").mkdir()
    (tmp_path / "experiments").mkdir()
    (tmp_path / "device_configs" / "dev-a.yaml").write_text(DEVICE.replace("EXE", str(Path(__file__).resolve())))
    path = tmp_path / "experiments" / "x.yaml"
    path.write_text(textwrap.dedent(experiment))
    return path


def test_models_expand_to_deduplicated_matmul_jobs_and_keep_every_op_count(tmp_path):
    exp = load_experiment(_path(tmp_path, EXPERIMENT))
    keys = [op.key() for _, op in exp.ops]
    assert len(keys) == len(set(keys)) and keys[0] == "matmul_f32_32x2304x768"  # explicit op kept, not repeated
    pre = [plain(op) for op, _ in model_ops("gpt2", 1, 32, "prefill") if isinstance(op, MatMul)]
    dec = [plain(op) for op, _ in model_ops("gpt2", 1, 32, "decode") if isinstance(op, MatMul)]
    assert {op.key() for op in pre + dec} | {keys[0]} == set(keys)
    # the kind the tuner template tunes, without the epilogue the baselines do not compute
    assert all(op.kind == "matmul" and not op.has_epilogue for _, op in exp.ops)
    labels = dict((op.key(), label) for label, op in exp.ops)
    assert labels["matmul_f32_32x3072x768"] == "gpt2 prefill s32 mlp.up x12"
    gpt_pre, gpt_dec = exp.models
    assert gpt_pre.label == "gpt2 prefill s32" and dict(gpt_pre.ops)["matmul_f32_32x2304x768_bias"] == 12
    assert sum(n for _, n in gpt_dec.ops) == sum(n for _, n in model_ops("gpt2", 1, 32, "decode"))
    assert set(gpt_dec.tuned) == {op.key() for op in dec}
    # the manifest carries the models and rebuilds the same experiment
    d = json.loads(json.dumps(exp.to_dict()))
    manifest = {"experiment": d, "device_configs": {"dev-a": exp.devices[0].to_dict()}}
    again = experiment_from_manifest(manifest)
    assert again.models == exp.models and again.ops == exp.ops


def test_an_experiment_may_name_only_models(tmp_path):
    text = EXPERIMENT.replace("ops:\n  - {kind: matmul, M: 32, N: 2304, K: 768}\n", "")
    exp = load_experiment(_path(tmp_path, text))
    assert len(exp.jobs()) == len(exp.ops) > 5


@pytest.mark.parametrize("entry,key,words", [
    ("{name: gpt-9, seq: 8}", "models[0].name", "unknown model 'gpt-9'. Fix: use one of ['bart-base', 'gpt2'"),
    ("{name: gpt2, seq: 0}", "models[0].seq", "must be positive"),
    ("{name: gpt2, seq: 8, phase: train}", "models[0].phase", "unknown value 'train'"),
    ("{name: roberta-base, seq: 8, phase: decode}", "models[0]", "encoder"),
    ("{name: gpt2, seq: 8, layers: 2}", "models[0].layers", "unknown key"),
    ("gpt2", "models[0]", "expected a mapping"),
])
def test_a_bad_model_entry_names_the_file_the_key_and_the_fix(tmp_path, entry, key, words):
    text = EXPERIMENT.split("models:")[0] + f"models:\n  - {entry}\n"
    path = _path(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    assert info.value.key == key and words in str(info.value) and "Fix:" in str(info.value)
