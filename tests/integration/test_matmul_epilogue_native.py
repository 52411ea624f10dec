"""Fused epilogues (bias, ReLU, GELU, SiLU) and batched matmuls of attention shapes in
matmul-wgsl-vec4, on real WebGPU (wgpu-native on lavapipe), checked against the numpy reference."""

from __future__ import annotations

import pytest

from jit_core.ops import MatMul
from jit_core.templates import get_template
from jit_core.templates.matmul_vec4_wgsl import MatmulVec4WGSL
from tests.template_checks import assert_all_correct

pytestmark = pytest.mark.native

SEED = 5
T = MatmulVec4WGSL()


def sample(configs):
    """One config per kernel kind (tiled, direct, split-K) and vec4-or-scalar micro-tile width."""
    picked = {}
    for c in configs:
        picked.setdefault((c["SH"], c["KS"], c["TN"]), c)
    return list(picked.values())


@pytest.mark.parametrize("act", ["none", "relu", "gelu", "silu"])
def test_bias_and_activation_are_fused_correctly(lavapipe_driver, lavapipe_caps, act):
    """Ragged (N, K not multiples of 4: scalar stores, clamped bias reads) and vec4 shapes."""
    for dims in ((33, 17, 9), (16, 48, 64)):
        op = MatMul(*dims, bias=True, act=act)
        assert_all_correct(lavapipe_driver, T, op, sample(T.space(op, lavapipe_caps)), seed=SEED, chunk=32)


def test_split_k_and_activation_without_bias(lavapipe_driver, lavapipe_caps):
    for op in (MatMul(1, 72, 100, bias=True, act="gelu"), MatMul(45, 37, 29, act="silu")):
        assert_all_correct(lavapipe_driver, T, op, sample(T.space(op, lavapipe_caps))[:4], seed=SEED, chunk=32)


@pytest.mark.parametrize("op", [MatMul(32, 32, 16, batch=4), MatMul(32, 16, 32, batch=4), MatMul(25, 25, 16, batch=3)],
                         ids=["QK^T 4 heads s32 d16 (K pre-transposed)", "AV 4 heads", "ragged 3 heads"])
def test_batched_attention_shapes(lavapipe_driver, lavapipe_caps, op):
    assert_all_correct(lavapipe_driver, T, op, sample(T.space(op, lavapipe_caps))[:3], seed=SEED, chunk=32)


def test_templates_without_epilogue_offer_no_config(lavapipe_caps):
    op = MatMul(1, 64, 64, bias=True, act="relu")
    assert len(get_template("matmul-wgsl").space(op, lavapipe_caps)) == 0
    assert len(get_template("matmul-wgsl-gemv").space(op, lavapipe_caps)) == 0
    assert op.key() == "matmul_f32_1x64x64_bias_relu" and MatMul(1, 64, 64).key() == "matmul_f32_1x64x64"
