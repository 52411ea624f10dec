"""matmul-wgsl on real WebGPU (wgpu-native on lavapipe): every config the space offers compiles and
computes the right result, for even, ragged, M=1 and batched shapes; the tuner runs end to end."""

from __future__ import annotations


import pytest

from jit_core.ops import MatMul
from jit_core.protocol import MeasureSpec
from jit_core.space import Config
from jit_core.templates import MatmulWGSL
from jit_core.tuner import TuneOptions, tune
from tests.template_checks import assert_all_correct
from tests.tuning_checks import assert_confirmed_winner

pytestmark = pytest.mark.native

SEED = 3
T = MatmulWGSL()


def with_gpu_variants(configs: list[Config]) -> list[Config]:
    """The space for this CPU adapter plus, for every SH=1 config, its GPU-class twin (UK=1, the
    unrolled BK loop a GPU's space holds), so both code paths run on this device."""
    return configs + [c.replace(UK=1) for c in configs if c["SH"] == 1 and c["UK"] == 0]


def covering_sample(configs: list[Config]) -> list[Config]:
    """Every block-tile shape once and every (SH, BK, TM, UK) code path once: all codegen branches."""
    picked: dict[Config, None] = {}
    seen: set[tuple] = set()
    for c in with_gpu_variants(configs):
        for key in (("tile", c["BM"], c["BN"]), ("path", c["SH"], c["BK"], c["TM"], c["UK"])):
            if key not in seen:
                seen.add(key)
                picked[c] = None
    return list(picked)


def test_every_config_of_a_tiny_ragged_shape_is_correct(lavapipe_driver, lavapipe_caps):
    op = MatMul(33, 17, 9)
    configs = with_gpu_variants(list(T.space(op, lavapipe_caps)))
    assert len(configs) >= 90
    assert_all_correct(lavapipe_driver, T, op, configs, seed=SEED)


@pytest.mark.parametrize(
    "op",
    [MatMul(127, 129, 65), MatMul(64, 32, 48, batch=2)],
    ids=lambda op: op.shape_str(),
)
def test_every_tile_shape_and_code_path_is_correct(lavapipe_driver, lavapipe_caps, op):
    configs = covering_sample(list(T.space(op, lavapipe_caps)))
    assert {c["SH"] for c in configs} == {0, 1} and {c["TM"] for c in configs} == {1, 2, 4, 8}
    assert {c["UK"] for c in configs} == {0, 1}
    assert_all_correct(lavapipe_driver, T, op, configs, seed=SEED)


@pytest.mark.slow
def test_m1_gemv_shape_configs_are_correct(lavapipe_driver, lavapipe_caps):
    op = MatMul(1, 768, 3072)
    configs = covering_sample(list(T.space(op, lavapipe_caps)))
    assert {c["BM"] for c in configs} == {16}
    assert_all_correct(lavapipe_driver, T, op, configs, seed=SEED)


def test_tuner_end_to_end_on_lavapipe_picks_a_checked_winner(lavapipe_driver, lavapipe_caps):
    op = MatMul(64, 64, 64)
    measure = MeasureSpec(warmup=1, samples=3, min_sample_ms=1.0, max_reps=16)
    seen = []
    res = tune(op, T, lavapipe_caps, lavapipe_driver, options=TuneOptions(max_evals=6, batch_size=3, measure=measure), on_trial=seen.append)
    search = [t for t in res.trials if t.phase == "search"]
    assert res.stopped == "eval-budget" and len(search) == 6 and seen == res.trials
    assert all(t.ok and t.check_ok for t in res.trials), [t.error for t in res.trials if not t.ok]
    # then the 4 fastest of the 6 were timed twice more, interleaved: 3 samples each time
    assert [t.phase for t in res.trials[6:]] == ["confirm"] * 8
    assert_confirmed_winner(res)
    assert res.caps_fingerprint == lavapipe_caps.fingerprint() and len(res.best.samples_ms) == 3 * 3


@pytest.mark.slow
@pytest.mark.parametrize(
    "op, gpu_twins",
    [(MatMul(128, 128, 128), False), (MatMul(1, 768, 3072), False), (MatMul(127, 129, 65), True),
     (MatMul(33, 17, 9), True), (MatMul(64, 32, 48, batch=2), True)],
    ids=lambda v: v.shape_str() if isinstance(v, MatMul) else ("with-gpu-twins" if v else "device-space"),
)
def test_whole_space_is_correct(lavapipe_driver, lavapipe_caps, op, gpu_twins):
    """The device's whole space; for the ragged shapes also every GPU-class (UK=1) twin (llvmpipe
    compiles the unrolled kernels slowly, so not for the big even shapes)."""
    configs = list(T.space(op, lavapipe_caps))
    configs = with_gpu_variants(configs) if gpu_twins else configs
    assert_all_correct(lavapipe_driver, T, op, configs, count=0 if op.output_size() <= 20000 else 256, seed=SEED)
