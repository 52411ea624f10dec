"""matmul-wgsl-vec4 on real WebGPU (wgpu-native on lavapipe): every config of the space compiles
and computes the right result at every output position for tiny ragged and batched shapes, and a
sample covering every code path does for larger, ragged, K % BK != 0, K % 4 != 0 and M=1 shapes; the GPU-only
configs (prefetch, tiled at skinny M) are checked here too, within lavapipe's limits."""

from __future__ import annotations

import dataclasses

import pytest

from jit_core.caps import DeviceCaps
from jit_core.ops import MatMul
from jit_core.space import Config
from jit_core.templates.matmul_vec4_wgsl import MatmulVec4WGSL
from tests.template_checks import assert_all_correct

pytestmark = pytest.mark.native

SEED = 3
T = MatmulVec4WGSL()


@pytest.fixture(scope="module")
def gpu_like_caps(lavapipe_caps) -> DeviceCaps:
    """lavapipe's real limits under a GPU's name: the space a GPU would get (prefetch, tiled
    kernels at skinny M), restricted to what lavapipe can run."""
    return dataclasses.replace(lavapipe_caps, vendor="gpu", architecture="", device="gpu", description="", is_fallback=False)


def covering_sample(configs: list[Config]) -> list[Config]:
    """Every code path (SH, KS, PF, TM, TN, BK) once: each loader, unroll and epilogue variant."""
    picked: dict[tuple, Config] = {}
    for c in configs:
        picked.setdefault((c["SH"], c["KS"], c["PF"], c["TM"], c["TN"], c["BK"]), c)
    return list(picked.values())


@pytest.mark.parametrize("op", [MatMul(33, 17, 9), MatMul(64, 32, 48, batch=2)], ids=lambda op: op.shape_str())
def test_every_config_of_tiny_ragged_and_batched_shapes_is_correct_everywhere(lavapipe_driver, lavapipe_caps, op):
    configs = list(T.space(op, lavapipe_caps))
    assert len(configs) >= 30
    assert_all_correct(lavapipe_driver, T, op, configs, seed=SEED, chunk=32)


@pytest.mark.parametrize("op", [MatMul(3, 37, 41, batch=2), MatMul(1, 72, 100)], ids=lambda op: op.shape_str())
def test_every_skinny_m_config_is_correct_with_k_tails(lavapipe_driver, lavapipe_caps, op):
    """Split-K, direct and tiled kernels at M <= 8, with K not a multiple of BK (the tail goes to
    one thread row) and, for the first shape, N and K not multiples of 4."""
    configs = list(T.space(op, lavapipe_caps))
    assert {(c["SH"], c["KS"]) for c in configs} >= {(0, 0), (0, 1)}
    assert_all_correct(lavapipe_driver, T, op, configs, seed=SEED, chunk=32)


@pytest.mark.parametrize(
    "op",
    [MatMul(127, 129, 65), MatMul(1, 768, 3072), MatMul(128, 128, 128), MatMul(64, 64, 60), MatMul(64, 64, 62)],
    ids=lambda op: op.shape_str(),
)
def test_every_code_path_is_correct_on_larger_shapes(lavapipe_driver, lavapipe_caps, op):
    configs = covering_sample(list(T.space(op, lavapipe_caps)))
    assert_all_correct(lavapipe_driver, T, op, configs, count=0 if op.output_size() <= 20000 else 256, seed=SEED, chunk=32)


@pytest.mark.parametrize(
    "op",
    [MatMul(33, 17, 9), MatMul(64, 32, 48, batch=2), MatMul(127, 129, 65), MatMul(64, 64, 60), MatMul(6, 40, 36)],
    ids=lambda op: op.shape_str(),
)
def test_gpu_only_configs_are_correct(lavapipe_driver, gpu_like_caps, op):
    space = list(T.space(op, gpu_like_caps))
    gpu_only = [c for c in space if c["PF"] == 1 or (c["SH"] == 1 and op.M <= 8)]
    assert gpu_only, "the GPU space offers prefetch or skinny tiled configs"
    assert_all_correct(lavapipe_driver, T, op, covering_sample(gpu_only), seed=SEED, chunk=32)


@pytest.mark.parametrize("op", [MatMul(150, 70, 24), MatMul(70, 40, 12, batch=2)], ids=lambda op: op.shape_str())
def test_grouped_launch_order_is_correct_with_a_ragged_last_group(lavapipe_driver, op):
    # The rule swizzle-large-grids offers GS > 1 only on big grids; the remapping itself is
    # checked here on small ones, with a last group shorter than GS and ragged edges.
    configs = [Config(WX=4, WY=4, TM=4, TN=4, BK=8, SH=1, PF=pf, KS=0, GS=gs)
               for pf, gs in ((0, 8), (1, 8), (1, 3), (0, 2))]
    assert_all_correct(lavapipe_driver, T, op, configs, seed=SEED)


@pytest.mark.parametrize(
    "op",
    [MatMul(100, 36, 600), MatMul(33, 20, 300, batch=2, bias=True, act="gelu"), MatMul(40, 37, 521, bias=True, act="relu"),
     MatMul(512, 256, 260)],
    ids=lambda op: op.key(),
)
def test_split_k_over_workgroups_is_correct_with_ragged_slices_batches_and_epilogues(lavapipe_driver, gpu_like_caps, op):
    """SK > 1: two dispatches (partial products of each K slice into a scratch buffer, then their
    sum and the epilogue); the last slice is shorter, K % BK != 0, N % 4 != 0 in the last shape."""
    split = [c for c in T.space(op, gpu_like_caps) if c["SK"] > 1]
    assert split
    picked: dict[tuple, Config] = {}
    for c in split:
        picked.setdefault((c["SK"], c["PF"], c["TM"], c["TN"], c["BK"]), c)
    assert_all_correct(lavapipe_driver, T, op, list(picked.values()), seed=SEED, chunk=32)
    kernel = T.render(op, split[0])
    assert kernel.dispatches == 2 and kernel.scratch[0][0] == "P"


def test_split_k_is_offered_only_for_small_grids_on_gpus(gpu_like_caps, lavapipe_caps):
    ffn_down = MatMul(512, 768, 3072)
    assert any(c["SK"] > 1 for c in T.space(ffn_down, gpu_like_caps))
    assert all(c["SK"] == 1 for c in T.space(ffn_down, lavapipe_caps)), "CPU adapters have few cores to fill"
    assert all(c["SK"] == 1 for c in T.space(MatMul(2048, 2048, 2048), gpu_like_caps)), "big grids fill the GPU"
