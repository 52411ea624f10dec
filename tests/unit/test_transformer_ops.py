"""The softmax, norm, eltwise and heads op kinds: validation, keys and round trips, their numpy
references, check positions and buffer layouts, their templates' spaces (within every adapter
profile's limits, render pure) and experiments that name them."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from farm.config.errors import ConfigError
from farm.config.experiments import load_experiment
from jit_core.ops import OP_KINDS, Eltwise, Heads, MatMul, Norm, Softmax, op_from_dict
from jit_core.protocol import op_buffers
from jit_core.reference import (
    INPUT_STREAMS, activation, check_positions, expected_values, op_inputs, reference, reference_heads,
)
from jit_core.templates import DEFAULT_TEMPLATES, TEMPLATES, get_template, templates_for
from tests.caps_profiles import COMPAT, LLVMPIPE, NVIDIA, SWIFTSHADER

OPS = [
    Softmax(3, 7, batch=2, causal=True, scale=0.5),
    Softmax(128, 128, batch=12, causal=True, scale=0.125),
    Norm(4, 6, residual=True),
    Norm(128, 768),
    Norm(1, 4096, norm="rmsnorm", residual=True, eps=1e-6),
    Eltwise(9, "silu_mul"),
    Eltwise(128 * 3072, "gelu"),
    Heads(3, 2, 4, mode="split_t", past=2, rotary=True, row_stride=24, col_offset=8),
    Heads(128, 12, 64, row_stride=2304, col_offset=768),
    Heads(1, 32, 128, mode="split_t", rotary=True, past=511, row_stride=3 * 4096, col_offset=4096),
    Heads(3, 2, 4, mode="merge"),
    Heads(128, 12, 64, mode="merge"),
]


@pytest.mark.parametrize("op", OPS, ids=lambda op: op.key())
def test_ops_round_trip_through_their_dict_and_keys_end_with_dtype_and_shape(op):
    assert op_from_dict(op.to_dict()) == op
    assert op.key().endswith(f"_f32_{op.shape_str()}")
    assert list(op.input_sizes()) == [b.name for b in op_buffers(op, 1)][:-1]


def test_op_keys_are_distinct():
    assert len({op.key() for op in OPS}) == len(OPS)


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda: Softmax(0, 4), "rows must be a positive integer"),
        (lambda: Softmax(5, 4, causal=True), "causal softmax needs rows <= cols"),
        (lambda: Softmax(2, 4, scale=float("nan")), "finite"),
        (lambda: Norm(2, 4, norm="batchnorm"), "norm must be one of"),
        (lambda: Norm(2, 4, eps=0), "eps must be > 0"),
        (lambda: Eltwise(4, "tanh"), "fn must be one of"),
        (lambda: Heads(2, 2, 4, mode="merge", past=1), "merge' takes no past"),
        (lambda: Heads(2, 2, 4, row_stride=6), "exceeds row_stride"),
        (lambda: Heads(2, 2, 5, rotary=True), "even head_dim"),
        (lambda: op_from_dict({"kind": "conv"}), "unknown op kind 'conv'"),
        (lambda: op_from_dict({"kind": "softmax", "rows": 2}), "softmax"),
        (lambda: op_from_dict({"kind": "norm", "rows": 2, "cols": 2, "colour": 1}), "no field(s) ['colour']"),
    ],
)
def test_bad_ops_raise_a_value_error_naming_the_problem(make, words):
    with pytest.raises(ValueError, match=None) as info:
        make()
    assert words in str(info.value)


def test_integer_floats_are_accepted_as_floats():
    assert Softmax(2, 4, scale=1).scale == 1.0 and isinstance(Heads(1, 1, 2, theta=500000).theta, float)


def test_softmax_reference_rows_sum_to_one_and_the_causal_mask_is_aligned_to_the_last_column():
    op = Softmax(3, 5, causal=True)
    out = reference(op, op_inputs(op, 1)).reshape(3, 5)
    assert np.allclose(out.sum(axis=1), 1.0)
    visible = np.array([[c <= r + 2 for c in range(5)] for r in range(3)])
    assert np.all(out[~visible] == 0) and np.all(out[visible] > 0)
    decode = Softmax(1, 5, causal=True)
    assert np.all(reference(decode, op_inputs(decode, 1)) > 0)


def test_norm_references_normalise_each_row():
    x = np.arange(12, dtype=np.float64).reshape(2, 6) ** 1.5
    ln = Norm(2, 6)
    out = reference(ln, {"X": x, "gamma": np.ones(6), "beta": np.zeros(6)}).reshape(2, 6)
    assert np.allclose(out.mean(axis=1), 0) and np.allclose(out.var(axis=1), 1, atol=1e-4)
    rms = Norm(2, 6, norm="rmsnorm", residual=True)
    out = reference(rms, {"X": x, "R": x, "gamma": np.full(6, 2.0)}).reshape(2, 6)
    assert np.allclose(np.sqrt((out ** 2).mean(axis=1)), 2.0, atol=1e-4)


def test_eltwise_reference_uses_the_matmul_epilogue_activations():
    a, b = np.linspace(-3, 3, 8), np.linspace(1, 2, 8)
    assert np.allclose(reference(Eltwise(8, "gelu"), {"A": a}), activation("gelu", a))
    assert np.allclose(reference(Eltwise(8, "silu_mul"), {"A": a, "B": b}), activation("silu", a) * b)


def test_heads_split_and_merge_are_inverse_and_split_t_is_the_transpose():
    seq, h, d = 5, 3, 4
    x = np.arange(seq * h * d, dtype=np.float64)
    split = reference(Heads(seq, h, d), {"X": x})
    assert np.array_equal(reference(Heads(seq, h, d, mode="merge"), {"X": split}), x)
    split_t = reference(Heads(seq, h, d, mode="split_t"), {"X": x})
    assert np.array_equal(split_t.reshape(h, d, seq), split.reshape(h, seq, d).transpose(0, 2, 1))


def test_split_with_past_writes_after_the_cache_and_keeps_it():
    op = Heads(2, 1, 4, past=3, row_stride=8, col_offset=4)
    x = np.arange(16, dtype=np.float64)
    cache = np.full(op.output_size(), 7.0)
    out = reference_heads(op, x, cache).reshape(1, 5, 4)
    assert np.all(out[0, :3] == 7.0) and np.array_equal(out[0, 3:], [[4, 5, 6, 7], [12, 13, 14, 15]])
    assert np.all(cache == 7.0)


def test_rotary_is_the_identity_at_position_zero_and_keeps_each_pair_norm():
    op = Heads(4, 2, 8, rotary=True, past=5)
    x = op_inputs(op, 1)["X"].astype(np.float64)
    out = reference(op, {"X": x}).reshape(2, 9, 8)[:, 5:]  # [head, token, dim]
    xin = x.reshape(4, 2, 8).transpose(1, 0, 2)
    assert np.allclose(out[..., :4] ** 2 + out[..., 4:] ** 2, xin[..., :4] ** 2 + xin[..., 4:] ** 2)
    first = Heads(1, 2, 8, rotary=True)
    assert np.allclose(reference(first, op_inputs(first, 1)), reference(Heads(1, 2, 8), op_inputs(first, 1)))


@pytest.mark.parametrize("op", OPS, ids=lambda op: op.key())
def test_expected_values_match_the_whole_reference_at_the_checked_positions(op):
    pos = check_positions(op, 32, 3)
    assert set(range(op.output_size() - 8, op.output_size())) <= set(pos)
    full = reference(op, op_inputs(op, 3))
    assert np.array_equal(expected_values(op, 3, pos), full[pos])


def test_the_kv_cache_part_of_a_split_is_checked():
    op = Heads(8, 2, 16, past=8)
    assert 0 in check_positions(op, 16, 1)  # position 0 of head 0: must still be zero


def test_buffers_bind_inputs_in_order_with_their_streams_and_the_output_last():
    bufs = op_buffers(Norm(4, 8, residual=True), 5)
    assert [(b.name, b.binding, b.size) for b in bufs] == [("X", 0, 32), ("R", 1, 32), ("gamma", 2, 8), ("beta", 3, 8), ("C", 4, 32)]
    assert [b.stream for b in bufs[:-1]] == [INPUT_STREAMS[n] for n in ("X", "R", "gamma", "beta")]
    assert bufs[-1].output and bufs[-1].init == "zero"
    assert len(set(INPUT_STREAMS.values())) == len(INPUT_STREAMS)


def test_every_kind_has_a_default_template_of_its_kind():
    assert set(DEFAULT_TEMPLATES) == set(OP_KINDS)
    for kind, name in DEFAULT_TEMPLATES.items():
        assert TEMPLATES[name].op_kind == kind and name in templates_for(kind)


NEW = ["softmax-wgsl", "norm-wgsl", "eltwise-wgsl", "heads-wgsl"]


@pytest.mark.parametrize("caps", [SWIFTSHADER, LLVMPIPE, NVIDIA, COMPAT], ids=["swiftshader", "llvmpipe", "nvidia", "compat"])
@pytest.mark.parametrize("op", [op for op in OPS if not isinstance(op, MatMul)], ids=lambda op: op.key())
def test_every_config_respects_the_adapter_limits_and_renders_purely(op, caps):
    tpl = get_template(DEFAULT_TEMPLATES[op.kind])
    space = tpl.space(op, caps)
    assert len(space) >= 1 and space.raw_size == len(space) + space.duplicates + sum(space.removed.values())
    assert all(r["source"] in ("ours", "WebGPU") and r["doc"] for r in space.report()["rules"])
    for c in space:
        k = tpl.render(op, c)
        x, y, z = k.workgroup_size
        assert x * y * z <= min(256, caps.max_invocations)
        assert x <= caps.max_workgroup_size[0] and y <= caps.max_workgroup_size[1]
        assert max(k.workgroups) <= caps.max_workgroups_per_dimension
        assert f"@workgroup_size({x}, {y}, {z})" in k.code
        assert tpl.render(op, c) == k


@pytest.mark.parametrize("name", NEW)
def test_templates_reject_ops_of_another_kind_and_configs_outside_their_grid(name):
    tpl = get_template(name)
    with pytest.raises(TypeError):
        tpl.space(MatMul(8, 8, 8), LLVMPIPE)
    op = next(op for op in OPS if op.kind == tpl.op_kind)
    c = next(iter(tpl.space(op, LLVMPIPE)))
    with pytest.raises(ValueError):
        tpl.render(op, c.replace(V=2))


def test_vec4_is_offered_only_where_rows_are_aligned():
    caps = LLVMPIPE
    assert {c["V"] for c in get_template("softmax-wgsl").space(Softmax(4, 37), caps)} == {0}
    assert {c["V"] for c in get_template("norm-wgsl").space(Norm(4, 64), caps)} == {0, 1}
    assert {c["V"] for c in get_template("heads-wgsl").space(Heads(4, 2, 8, row_stride=18, col_offset=2), caps)} == {0}
    assert {c["WF"] for c in get_template("norm-wgsl").space(Norm(4, 64, norm="rmsnorm"), caps)} == {0}


DEVICE = """\
id: dev-n
driver: native
native: {backend: vulkan, adapter_match: llvmpipe}
"""


def _experiment(tmp_path, ops: str, extra: str = ""):
    (tmp_path / "device_configs").mkdir()
    (tmp_path / "experiments").mkdir()
    (tmp_path / "device_configs" / "dev-n.yaml").write_text(DEVICE)
    path = tmp_path / "experiments" / "x.yaml"
    path.write_text(textwrap.dedent(f"name: t\ndevices: [dev-n]\nops:\n{ops}{extra}"))
    return path


ALL_KINDS = """\
  - {kind: matmul, M: 8, N: 8, K: 8}
  - {kind: softmax, rows: 4, cols: 8, batch: 2, causal: true, scale: 1}
  - {kind: norm, rows: 4, cols: 8, norm: rmsnorm, residual: true, eps: 1.0e-6}
  - {kind: eltwise, n: 64, fn: gelu, label: mlp}
  - {kind: heads, seq: 4, heads: 2, head_dim: 8, mode: split_t, rotary: true, past: 3}
"""


def test_an_experiment_lists_every_kind_and_tunes_each_with_a_template_of_its_kind(tmp_path):
    exp = load_experiment(_experiment(tmp_path, ALL_KINDS, "tuner: {template: matmul-wgsl-vec4}\n"))
    kinds = [op.kind for _, op in exp.ops]
    assert kinds == ["matmul", "softmax", "norm", "eltwise", "heads"]
    assert exp.ops[3][0] == "mlp" and exp.ops[2][1] == Norm(4, 8, norm="rmsnorm", residual=True, eps=1e-6)
    assert [exp.tuner.template_for(k) for k in kinds] == ["matmul-wgsl-vec4", "softmax-wgsl", "norm-wgsl",
                                                          "eltwise-wgsl", "heads-wgsl"]


@pytest.mark.parametrize(
    "ops, extra, key, words",
    [
        ("  - {kind: eltwise, n: 8, fn: tanh}\n", "", "ops[0].fn", "unknown value 'tanh'"),
        ("  - {kind: softmax, rows: 4}\n", "", "ops[0].cols", "required key is missing"),
        ("  - {kind: heads, seq: 0, heads: 1, head_dim: 4}\n", "", "ops[0].seq", "must be positive"),
        ("  - {kind: heads, seq: 2, heads: 1, head_dim: 4, past: -1}\n", "", "ops[0].past", "must be >= 0"),
        ("  - {kind: softmax, rows: 4, cols: 8, causal: yes please}\n", "", "ops[0].causal", "expected"),
        ("  - {kind: softmax, rows: 9, cols: 8, causal: true}\n", "", "ops[0]", "rows <= cols"),
        ("  - {kind: norm, rows: 4, cols: 8, colour: red}\n", "", "ops[0].colour", "unknown key"),
        ("  - {kind: conv, n: 8}\n", "", "ops[0].kind", "unknown value 'conv'"),
        ("  - {kind: eltwise, n: 8}\n", "tuner: {template: softmax-wgsl}\n", "tuner.template", "no op listed is one"),
        ("  - {kind: eltwise, n: 8}\n", "baselines: [ort-wasm]\n", "ops[0]", "baselines compare matmul ops only"),
    ],
)
def test_bad_ops_in_an_experiment_name_file_key_and_fix(tmp_path, ops, extra, key, words):
    path = _experiment(tmp_path, ops, extra)
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    assert info.value.key == key and words in str(info.value) and "Fix:" in str(info.value)
