"""matmul-wgsl-vec4 on real WebGPU (wgpu-native on lavapipe): every config of the space compiles
and computes the right result at every output position for tiny ragged and batched shapes, and a
sample covering every code path does for larger, ragged, K % BK != 0, K % 4 != 0 and M=1 shapes; the GPU-only
configs (prefetch, tiled at skinny M) are checked here too, within lavapipe's limits."""

from __future__ import annotations

import dataclasses

import pytest

from jit_core.caps import DeviceCaps
from jit_core.ops import MatMul
from jit_core.protocol import MeasureSpec, make_batch
from jit_core.reference import check_outputs, check_positions
from jit_core.space import Config
from jit_core.templates.matmul_vec4_wgsl import MatmulVec4WGSL

pytestmark = pytest.mark.native

SEED = 3
ONE_RUN = MeasureSpec(warmup=0, samples=1, min_sample_ms=0.0, max_reps=1)
T = MatmulVec4WGSL()


@pytest.fixture(scope="module")
def driver(lavapipe_driver):
    return lavapipe_driver


@pytest.fixture(scope="module")
def caps(driver) -> DeviceCaps:
    return DeviceCaps.from_probe(driver.probe())


@pytest.fixture(scope="module")
def gpu_like_caps(caps) -> DeviceCaps:
    """lavapipe's real limits under a GPU's name: the space a GPU would get (prefetch, tiled
    kernels at skinny M), restricted to what lavapipe can run."""
    return dataclasses.replace(caps, vendor="gpu", architecture="", device="gpu", description="", is_fallback=False)


def covering_sample(configs: list[Config]) -> list[Config]:
    """Every code path (SH, KS, PF, TM, TN, BK) once: each loader, unroll and epilogue variant."""
    picked: dict[tuple, Config] = {}
    for c in configs:
        picked.setdefault((c["SH"], c["KS"], c["PF"], c["TM"], c["TN"], c["BK"]), c)
    return list(picked.values())


def assert_all_correct(driver, op: MatMul, configs: list[Config], *, every_position: bool = True) -> None:
    positions = check_positions(op, 0 if every_position else 256, SEED)
    failures = []
    for start in range(0, len(configs), 32):
        chunk = configs[start : start + 32]
        kernels = [(f"c{start + i}", T.render(op, c)) for i, c in enumerate(chunk)]
        batch = make_batch(op, kernels, seed=SEED, measure=ONE_RUN, check_positions=positions)
        for c, res in zip(chunk, driver.run_batch(batch)):
            if not res.ok:
                failures.append(f"{c.key()}: {res.error_class}: {(res.error or '')[:300]}")
                continue
            check = check_outputs(op, SEED, positions, res.values)
            if not check.ok:
                failures.append(f"{c.key()}: wrong result: {check.message}")
    assert not failures, f"{len(failures)} of {len(configs)} configs failed on {op.key()}:\n" + "\n".join(failures)


@pytest.mark.parametrize("op", [MatMul(33, 17, 9), MatMul(64, 32, 48, batch=2)], ids=lambda op: op.shape_str())
def test_every_config_of_tiny_ragged_and_batched_shapes_is_correct_everywhere(driver, caps, op):
    configs = list(T.space(op, caps))
    assert len(configs) >= 30
    assert_all_correct(driver, op, configs)


@pytest.mark.parametrize("op", [MatMul(3, 37, 41, batch=2), MatMul(1, 72, 100)], ids=lambda op: op.shape_str())
def test_every_skinny_m_config_is_correct_with_k_tails(driver, caps, op):
    """Split-K, direct and tiled kernels at M <= 8, with K not a multiple of BK (the tail goes to
    one thread row) and, for the first shape, N and K not multiples of 4."""
    configs = list(T.space(op, caps))
    assert {(c["SH"], c["KS"]) for c in configs} >= {(0, 0), (0, 1)}
    assert_all_correct(driver, op, configs)


@pytest.mark.parametrize(
    "op",
    [MatMul(127, 129, 65), MatMul(1, 768, 3072), MatMul(128, 128, 128), MatMul(64, 64, 60), MatMul(64, 64, 62)],
    ids=lambda op: op.shape_str(),
)
def test_every_code_path_is_correct_on_larger_shapes(driver, caps, op):
    configs = covering_sample(list(T.space(op, caps)))
    assert_all_correct(driver, op, configs, every_position=op.output_size() <= 20000)


@pytest.mark.parametrize(
    "op",
    [MatMul(33, 17, 9), MatMul(64, 32, 48, batch=2), MatMul(127, 129, 65), MatMul(64, 64, 60), MatMul(6, 40, 36)],
    ids=lambda op: op.shape_str(),
)
def test_gpu_only_configs_are_correct(driver, gpu_like_caps, op):
    space = list(T.space(op, gpu_like_caps))
    gpu_only = [c for c in space if c["PF"] == 1 or (c["SH"] == 1 and op.M <= 8)]
    assert gpu_only, "the GPU space offers prefetch or skinny tiled configs"
    assert_all_correct(driver, op, covering_sample(gpu_only))
