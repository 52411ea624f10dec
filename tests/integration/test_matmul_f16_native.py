"""f16 matmuls on real WebGPU (wgpu-native on lavapipe, which has ``shader-f16``): every config of
matmul-wgsl-vec4's f16 space (and of matmul-wgsl-gemv's, at skinny shapes) is correct at every output position for tiny ragged, batched and
skinny shapes, with f32 and with f16 accumulation, and a sample covering every code path is for
127x129x65 and 1x768x3072; the GPU-only configs (prefetch, split-K over workgroups with a fused
epilogue) too. Half-float buffers travel through the native driver bit for bit (a kernel that
reads and writes them as packed u32 words, without ``enable f16``)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from jit_core.caps import DeviceCaps
from jit_core.ops import MatMul
from jit_core.protocol import KernelSource, make_batch
from jit_core.reference import check_outputs, check_positions, op_inputs
from jit_core.templates.matmul_gemv_wgsl import MatmulGemvWGSL
from jit_core.templates.matmul_vec4_wgsl import MatmulVec4WGSL
from tests.integration.test_matmul_vec4_native import covering_sample
from tests.template_checks import ONE_RUN, assert_all_correct

pytestmark = pytest.mark.native

SEED = 5
T = MatmulVec4WGSL()


@pytest.fixture(scope="module")
def f16_caps(lavapipe_caps) -> DeviceCaps:
    if "shader-f16" not in lavapipe_caps.features:
        pytest.skip("this lavapipe adapter does not offer shader-f16")
    return lavapipe_caps


@pytest.fixture(scope="module")
def gpu_like_f16_caps(f16_caps) -> DeviceCaps:
    """lavapipe's real limits and features under a GPU's name (see test_matmul_vec4_native)."""
    return dataclasses.replace(f16_caps, vendor="gpu", architecture="", device="gpu", description="", is_fallback=False)


def f16(M: int, N: int, K: int, acc: str, **kw) -> MatMul:
    return MatMul(M, N, K, dtype="f16", acc=acc, **kw)


@pytest.mark.parametrize("op", [f16(33, 17, 9, "f32"), f16(64, 32, 48, "f16", batch=2), f16(3, 37, 41, "f16", batch=2),
                                f16(1, 72, 100, "f32"), f16(20, 36, 24, "f16", bias=True, act="gelu")],
                         ids=lambda op: op.key())
def test_every_f16_config_of_tiny_ragged_batched_and_skinny_shapes_is_correct_everywhere(lavapipe_driver, f16_caps, op):
    configs = list(T.space(op, f16_caps))
    assert len(configs) >= 30
    assert_all_correct(lavapipe_driver, T, op, configs, seed=SEED, chunk=40)


@pytest.mark.parametrize("op", [f16(127, 129, 65, "f32"), f16(127, 129, 65, "f16"), f16(1, 768, 3072, "f32"),
                                f16(1, 768, 3072, "f16")], ids=lambda op: op.key())
def test_every_f16_code_path_is_correct_on_ragged_and_gemv_shapes(lavapipe_driver, f16_caps, op):
    configs = covering_sample(list(T.space(op, f16_caps)))
    assert_all_correct(lavapipe_driver, T, op, configs, count=0 if op.output_size() <= 20000 else 256, seed=SEED, chunk=40)


@pytest.mark.parametrize("op", [f16(127, 129, 65, "f16"), f16(40, 37, 521, "f32", bias=True, act="relu"),
                                f16(33, 20, 300, "f16", batch=2, bias=True, act="silu")], ids=lambda op: op.key())
def test_gpu_only_f16_configs_prefetch_and_split_k_are_correct(lavapipe_driver, gpu_like_f16_caps, op):
    space = list(T.space(op, gpu_like_f16_caps))
    picked: dict[tuple, object] = {}
    for c in space:
        if c["PF"] or c["SK"] > 1:
            picked.setdefault((c["PF"], c["SK"] > 1, c["TM"] % 4 == 0, c["BK"]), c)  # prefetch, split-K, vec4 or scalar A tile, K tails
    assert any(c["SK"] > 1 for c in picked.values()) or op.K < 300
    assert_all_correct(lavapipe_driver, T, op, list(picked.values()), seed=SEED, chunk=40)


@pytest.mark.parametrize("op", [f16(3, 37, 41, "f32", batch=2), f16(1, 72, 100, "f16"), f16(5, 130, 67, "f16"),
                                f16(1, 768, 3072, "f32"), f16(1, 768, 3072, "f16")], ids=lambda op: op.key())
def test_every_f16_gemv_config_is_correct(lavapipe_driver, f16_caps, op):
    """matmul-wgsl-gemv's f16 kernels: the whole space on the smallest skinny shapes (vec4 and
    scalar columns, K tails, batch), one config per (VN, WK, KU) at 5x130x67 and per (VN, WK) at
    1x768x3072 (the two-stage reduction)."""
    gemv = MatmulGemvWGSL()
    configs = list(gemv.space(op, f16_caps))
    if op.N > 100:
        picked: dict[tuple, object] = {}
        for c in configs:
            picked.setdefault((c["VN"], c["WK"]) + ((c["KU"],) if op.K < 3072 else ()), c)
        configs = list(picked.values())
    assert configs
    assert_all_correct(lavapipe_driver, gemv, op, configs, count=0 if op.output_size() <= 20000 else 256, seed=SEED, chunk=40)


PACKED_COPY = """
@group(0) @binding(0) var<storage, read> A: array<u32>;
@group(0) @binding(1) var<storage, read> B: array<u32>;
@group(0) @binding(2) var<storage, read_write> C: array<u32>;
@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  // C = A + 2 B elementwise over pairs of halves (M x N == M x K == K x N here)
  let i = gid.x;
  if (i >= arrayLength(&C)) { return; }
  C[i] = pack2x16float(unpack2x16float(A[i]) + 2.0 * unpack2x16float(B[i]));
}
"""


def test_half_float_buffers_travel_bit_for_bit_through_the_native_driver(lavapipe_driver):
    op = MatMul(10, 10, 10, dtype="f16")  # A, B and C all hold 100 halves: 50 words
    kernel = KernelSource(PACKED_COPY, "main", (1, 1, 1), (64, 1, 1))
    positions = list(range(100))
    (r,) = lavapipe_driver.run_batch(make_batch(op, [("c", kernel)], seed=SEED, measure=ONE_RUN, check_positions=positions))
    assert r.ok, r.error
    ins = op_inputs(op, SEED)
    want = (ins["A"].astype(np.float32) + 2 * ins["B"].astype(np.float32)).astype(np.float16).astype(np.float64)
    np.testing.assert_array_equal(np.asarray(r.values), want)
    assert not check_outputs(op, SEED, check_positions(op, 0, SEED), r.values).ok  # it is not a matmul
