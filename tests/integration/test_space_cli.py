"""`jitfarm space` probes a real device (lavapipe) and prints sizes per rule and TVM's count."""

import re

import pytest

from farm.cli import main

pytestmark = pytest.mark.native


def test_space_command_prints_raw_pruned_per_rule_and_tvm_sizes(capsys):
    code = main(["space", "--device", "native-lavapipe", "--op", "384x3072x768", "--template", "matmul-wgsl-vec4"])
    out = capsys.readouterr().out
    assert code == 0
    sizes = re.search(r"matmul-wgsl-vec4 v\d+: ([\d,]+) raw -> ([\d,]+) after pruning", out)
    assert sizes and int(sizes[1].replace(",", "")) > 1000 > int(sizes[2].replace(",", "")) > 10
    for rule in ("min-4-threads-per-axis", "max-threads", "registers-per-thread", "workgroup-storage"):
        assert rule in out
    assert "nnJIT" in out and "WebGPU" in out and "3,079,296" in out


def test_space_command_rejects_unknown_template(capsys):
    assert main(["space", "--device", "native-lavapipe", "--op", "8x8x8", "--template", "nope"]) == 2
    assert "--template" in capsys.readouterr().err
