"""Experiment and device YAMLs load into validated specs; every bad input names file, key and fix."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from farm.cli import main
from farm.config.devices import load_device
from farm.config.errors import ConfigError
from farm.config.experiments import load_experiment

ROOT = Path(__file__).resolve().parents[2]

DEVICE = """\
id: dev-a
driver: playwright
tags: {platform: laptop}
browser:
  name: chromium
  executable_path: {exe}
  args: [--enable-unsafe-webgpu]
"""

EXPERIMENT = """\
name: t
devices: [dev-a]
ops:
  - {kind: matmul, M: 8, N: 8, K: 8}
tuner: {budget_s: 5}
baselines: [tfjs-webgpu]
"""


def _tree(tmp_path: Path, device: str = DEVICE, experiment: str = EXPERIMENT, exe: str | None = None) -> Path:
    (tmp_path / "device_configs").mkdir()
    (tmp_path / "experiments").mkdir()
    exe = exe or str(Path(__file__).resolve())  # any existing file stands for the browser binary here
    (tmp_path / "device_configs" / "dev-a.yaml").write_text(device.replace("{exe}", exe))
    path = tmp_path / "experiments" / "x.yaml"
    path.write_text(textwrap.dedent(experiment))
    return path


def test_shipped_quickstart_and_device_configs_are_valid():
    exp = load_experiment(ROOT / "experiments" / "quickstart.yaml")
    assert [d.id for d in exp.devices] == ["local-chromium-swiftshader"]
    assert all(max(op.M, op.N, op.K) <= 128 for _, op in exp.ops)
    assert exp.baselines == ("tfjs-webgpu", "tfjs-wasm", "ort-webgpu", "ort-wasm")
    assert len(exp.jobs()) == len(exp.ops)


def test_experiment_resolves_devices_and_defaults(tmp_path):
    exp = load_experiment(_tree(tmp_path))
    assert exp.devices[0].browser.args == ("--enable-unsafe-webgpu",)
    assert exp.tuner.budget_s == 5.0 and exp.tuner.strategy == "exhaustive"
    assert exp.jobs()[0].job_id == "dev-a/matmul_f32_8x8x8"


@pytest.mark.parametrize(
    "experiment, key, words",
    [
        (EXPERIMENT.replace("[dev-a]", "[dev-zz]"), "devices[0]", "unknown device id 'dev-zz'"),
        (EXPERIMENT.replace("M: 8", "M: eight"), "ops[0].M", "expected an integer"),
        (EXPERIMENT.replace("M: 8", "M: -8"), "ops[0].M", "must be positive"),
        (EXPERIMENT.replace("budget_s: 5", "budget_s: soon"), "tuner.budget_s", "expected a number"),
        (EXPERIMENT.replace("tfjs-webgpu", "tfjs-quantum"), "baselines[0]", "unknown baseline"),
        (EXPERIMENT + "colour: blue\n", "colour", "unknown key"),
        (EXPERIMENT.replace("name: t\n", ""), "name", "required key is missing"),
    ],
)
def test_bad_experiment_names_file_key_and_fix(tmp_path, experiment, key, words):
    path = _tree(tmp_path, experiment=experiment)
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    msg = str(info.value)
    assert info.value.key == key
    assert msg.startswith(str(path)) and words in msg and "Fix:" in msg


def test_malformed_yaml_reports_line(tmp_path):
    path = _tree(tmp_path, experiment="name: t\ndevices: [dev-a\nops: []\n")
    with pytest.raises(ConfigError, match=r"malformed YAML at line \d+"):
        load_experiment(path)


def test_wrong_type_in_device_file_names_device_file(tmp_path):
    path = _tree(tmp_path, device=DEVICE.replace("args: [--enable-unsafe-webgpu]", "args: 3"))
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    assert info.value.file.endswith("dev-a.yaml") and info.value.key == "browser.args"


def test_missing_browser_is_a_config_error_with_setup_fix(tmp_path):
    path = _tree(tmp_path, exe="/nonexistent/chromium")
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    assert info.value.key == "browser.executable_path"
    assert "setup" in info.value.fix


def test_native_device_config(tmp_path):
    p = tmp_path / "gpu.yaml"
    p.write_text("id: gpu\ndriver: native\nnative: {adapter_match: llvmpipe, env: {VK_ICD_FILENAMES: x.json}}\n")
    spec = load_device(p)
    assert spec.native.adapter_match == "llvmpipe" and spec.native.env == (("VK_ICD_FILENAMES", "x.json"),)


@pytest.mark.parametrize("mutate", [
    lambda e: e.replace("[dev-a]", "[nope]"),
    lambda e: e.replace("M: 8", "M: [8]"),
    lambda e: "name: t\n  devices: : :\n",
])
def test_cli_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, mutate):
    path = _tree(tmp_path, experiment=mutate(EXPERIMENT))
    results = tmp_path / "results"
    code = main(["run", str(path), "--results-dir", str(results)])
    err = capsys.readouterr().err
    assert code == 2
    assert "error:" in err and "Fix:" in err and len(err.strip().splitlines()) <= 3
    assert not results.exists() or not any(results.iterdir())


def test_cli_missing_browser_exits_2(tmp_path, capsys):
    path = _tree(tmp_path, exe="/nonexistent/chromium")
    assert main(["run", str(path), "--results-dir", str(tmp_path / "r")]) == 2
    assert "browser.executable_path" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
