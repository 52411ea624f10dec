"""Matmul ops with a fused epilogue: keys, inputs, reference values, template code."""

import numpy as np
import pytest

from jit_core.ops import MatMul, op_from_dict
from jit_core.protocol import op_buffers
from jit_core.reference import activation, expected_values, op_inputs
from jit_core.templates.matmul_vec4_wgsl import MatmulVec4WGSL
from tests.caps_profiles import NVIDIA


def test_epilogue_is_part_of_the_key_and_round_trips():
    op = MatMul(8, 12, 16, batch=2, bias=True, act="silu")
    assert op.key() == "matmul_f32_b2_8x12x16_bias_silu" and op_from_dict(op.to_dict()) == op
    with pytest.raises(ValueError, match="act"):
        MatMul(1, 2, 3, act="tanh")


def test_bias_is_an_input_bound_before_the_output():
    names = [(b.name, b.binding, b.size) for b in op_buffers(MatMul(4, 12, 8, bias=True), seed=1)]
    assert names == [("A", 0, 32), ("B", 1, 96), ("bias", 2, 12), ("C", 3, 48)]


@pytest.mark.parametrize("act", ["none", "relu", "gelu", "silu"])
def test_reference_applies_bias_then_activation(act):
    op = MatMul(5, 7, 9, batch=2, bias=True, act=act)
    ins = op_inputs(op, 3)
    a = ins["A"].reshape(2, 5, 9).astype(np.float64)
    b = ins["B"].reshape(2, 9, 7).astype(np.float64)
    full = activation(act, a @ b + ins["bias"].astype(np.float64))
    assert np.allclose(expected_values(op, 3, list(range(70))), full.ravel())


def test_activation_formulas():
    x = np.array([-3.0, -0.5, 0.0, 0.5, 3.0])
    assert np.allclose(activation("relu", x), [0, 0, 0, 0.5, 3])
    assert np.allclose(activation("silu", x), x / (1 + np.exp(-x)))
    assert np.allclose(activation("gelu", x), [-0.00363739, -0.15428599, 0.0, 0.34571401, 2.99636261])


def test_vec4_template_emits_the_epilogue_only_when_asked():
    t = MatmulVec4WGSL()
    op = MatMul(64, 64, 64)
    c = next(c for c in t.space(op, NVIDIA).configs if c["SK"] == 1)
    plain = t.render(op, c).code
    fused = t.render(MatMul(64, 64, 64, bias=True, act="gelu"), c).code
    assert "epi(" not in plain and "@binding(2) var<storage, read_write> C" in plain
    assert "fn epi(" in fused and "tanh(" in fused and "@binding(3) var<storage, read_write> C" in fused


def test_split_k_applies_the_epilogue_once_in_its_reduction_not_to_the_partial_products():
    t = MatmulVec4WGSL()
    op = MatMul(512, 512, 2048, bias=True, act="gelu")  # T5-small's FFN-down at 512 tokens
    c = next(c for c in t.space(op, NVIDIA).configs if c["SK"] > 1)
    k = t.render(op, c)
    assert "epi(" not in k.code and "bias" not in k.code
    assert "tanh(" in k.then[0].code and "bias[" in k.then[0].code
    assert [n for n, _ in k.then[0].bindings] == ["P", "bias", "C"]
