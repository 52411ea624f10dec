"""matmul-wgsl-gemv on real WebGPU (wgpu-native on lavapipe): every config the space offers
compiles and computes the right result at every output position for small decode shapes (M=1,
ragged M/N/K with the scalar path, batch 2, N smaller than a workgroup's columns), and a covering
sample of configs (lavapipe's space and the space a GPU with lavapipe's limits would get) is right
on BART/Llama-sized decode shapes and on M=8."""

from __future__ import annotations

import dataclasses

import pytest

from jit_core.caps import DeviceCaps
from jit_core.ops import MatMul
from jit_core.space import Config
from jit_core.templates.matmul_gemv_wgsl import MatmulGemvWGSL
from tests.template_checks import assert_all_correct

pytestmark = pytest.mark.native

SEED = 5
T = MatmulGemvWGSL()


def covering_sample(configs: list[Config]) -> list[Config]:
    """A few configs that together hold every VN, WX, WK and KU value of ``configs`` and every
    reduction path (none: WK=1; one stage: WK <= 8; two stages: WK > 8): greedy set cover."""

    def keys(c: Config) -> set[tuple]:
        path = "none" if c["WK"] == 1 else "one" if c["WK"] <= 8 else "two"
        return {("VN", c["VN"]), ("WX", c["WX"]), ("WK", c["WK"]), ("KU", c["KU"]), ("path", path)}

    todo = set().union(*(keys(c) for c in configs)) if configs else set()
    picked: list[Config] = []
    while todo:
        best = max(configs, key=lambda c: len(keys(c) & todo))
        picked.append(best)
        todo -= keys(best)
    return picked


def gpu_like(caps: DeviceCaps) -> DeviceCaps:
    """lavapipe's limits, but not marked as a CPU adapter: the space a GPU of these limits gets."""
    return dataclasses.replace(caps, vendor="gpu-like", architecture="", device="gpu-like", description="",
                               is_fallback=False)


@pytest.mark.parametrize(
    "op",
    [MatMul(1, 64, 64), MatMul(3, 37, 50), MatMul(1, 32, 40, batch=2)],
    ids=lambda op: op.shape_str(),
)
def test_every_config_is_correct_at_every_position(lavapipe_driver, lavapipe_caps, op):
    configs = list(T.space(op, lavapipe_caps))
    assert len(configs) >= 8
    assert_all_correct(lavapipe_driver, T, op, configs, seed=SEED)


def test_ragged_shape_covers_scalar_path_k_tail_and_overhanging_workgroups(lavapipe_driver, lavapipe_caps):
    """3x37x50: N % 4 != 0 (scalar columns), K % (WK*KU) != 0 for most configs (tail loop), and
    every workgroup wider than N. Checked at every position by the test above; here we make sure
    the space really exercises those paths."""
    op = MatMul(3, 37, 50)
    configs = list(T.space(op, lavapipe_caps))
    assert {c["VN"] for c in configs} == {1, 2, 4}
    assert any(op.K % (c["WK"] * c["KU"]) for c in configs)
    assert all(c["WX"] * c["VN"] > 0 for c in configs) and any(c["WX"] * c["VN"] > op.N for c in configs)
    assert_all_correct(lavapipe_driver, T, MatMul(2, 5, 3), list(T.space(MatMul(2, 5, 3), lavapipe_caps)), seed=SEED)


def test_off_space_configs_render_correct_kernels(lavapipe_driver):
    """render() is correct beyond the space too: scalar columns on a vec4-able shape, K smaller
    than one workgroup step, A rows not vec4-aligned, non-power-of-2 WX/WK/KU, WK=256."""
    op = MatMul(5, 44, 7, batch=2)
    configs = [Config(VN=1, WX=16, WK=4, KU=2), Config(VN=4, WX=8, WK=16, KU=4), Config(VN=8, WX=4, WK=2, KU=8),
               Config(VN=4, WX=64, WK=1, KU=8), Config(VN=2, WX=1, WK=3, KU=1), Config(VN=4, WX=1, WK=256, KU=1),
               Config(VN=8, WX=3, WK=12, KU=3)]
    assert_all_correct(lavapipe_driver, T, op, configs, seed=SEED)


@pytest.mark.parametrize(
    "op",
    [MatMul(1, 768, 3072), MatMul(8, 1000, 300)],
    ids=lambda op: op.shape_str(),
)
def test_covering_sample_is_correct_on_decode_shapes(lavapipe_driver, lavapipe_caps, op):
    """Every parameter value and reduction path, of the CPU space (lavapipe) and of the GPU space
    (wide K splits, narrow workgroups), at 64 spread positions plus the edges."""
    assert not gpu_like(lavapipe_caps).is_cpu
    cpu, gpu = list(T.space(op, lavapipe_caps)), list(T.space(op, gpu_like(lavapipe_caps)))
    configs = list(dict.fromkeys(covering_sample(cpu) + covering_sample(gpu)))
    assert {c["WK"] for c in configs} == {c["WK"] for c in cpu + gpu} and max(c["WK"] for c in configs) == 128
    assert len(configs) <= 16  # one batch: inputs are generated once per batch
    assert_all_correct(lavapipe_driver, T, op, configs, count=64, seed=SEED)


def test_llama_decode_shape_is_correct_for_the_gpu_space_and_the_cpu_pick(lavapipe_driver, lavapipe_caps):
    """1x4096x4096 (64 MiB of B, ~0.3-1 s per config on lavapipe): the GPU space's covering sample
    and the first config of lavapipe's own space."""
    op = MatMul(1, 4096, 4096)
    configs = list(dict.fromkeys([T.space(op, lavapipe_caps).configs[0], *covering_sample(list(T.space(op, gpu_like(lavapipe_caps))))]))
    assert {c["WK"] for c in configs} >= {1, 64, 128}
    assert_all_correct(lavapipe_driver, T, op, configs, count=64, seed=SEED)
