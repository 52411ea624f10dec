"""softmax-wgsl, norm-wgsl, eltwise-wgsl and heads-wgsl on real WebGPU (wgpu-native on lavapipe):
every config of each space computes the right result at every output position on small shapes,
ragged ones included (cols not a multiple of 4 or of the threads per row, one row, causal with
rows < cols, KV cache positions left untouched); launches folded into two grid dimensions are
correct; and tune() finds a correct best config for one shape of each kind."""

from __future__ import annotations

import pytest

from jit_core.ops import Eltwise, Heads, Norm, Softmax
from jit_core.protocol import MeasureSpec
from jit_core.space import Config
from jit_core.templates import DEFAULT_TEMPLATES, get_template
from jit_core.tuner import TuneOptions, tune
from tests.template_checks import assert_all_correct
from tests.tuning_checks import assert_confirmed_winner

pytestmark = pytest.mark.native

SEED = 3

SHAPES = [
    Softmax(3, 37),  # cols neither a multiple of 4 nor of the threads per row
    Softmax(5, 20, batch=2, causal=True, scale=0.3),  # causal with rows < cols, batched
    Softmax(1, 64, causal=True),  # decode: one row sees every column
    Softmax(7, 7, causal=True),  # prefill: lower triangle, rows not a multiple of RPW
    Norm(3, 37),
    Norm(5, 20, residual=True),
    Norm(1, 64, norm="rmsnorm", residual=True),
    Norm(2, 13, norm="rmsnorm", eps=1e-6),
    Eltwise(37, "add"),
    Eltwise(100, "gelu"),
    Eltwise(1000, "silu_mul"),
    Eltwise(44, "silu"),
    Eltwise(3, "mul"),
    Heads(3, 2, 8),
    Heads(5, 3, 6, mode="split_t", row_stride=30, col_offset=6, past=2),
    Heads(3, 2, 8, mode="merge"),
    Heads(3, 2, 8, rotary=True, past=4, row_stride=48, col_offset=16),
    Heads(4, 2, 16, mode="split_t", rotary=True, past=3),
    Heads(2, 2, 6, rotary=True, past=1),
    Heads(1, 4, 8, rotary=True, row_stride=96, pos_offset=37),  # a decode query placed after 37 cached tokens
    Heads(2, 1, 8, rotary=True, past=3000, theta=500000.0),  # large angles: range reduction
]


@pytest.mark.parametrize("op", SHAPES, ids=lambda op: op.key())
def test_every_config_is_correct_everywhere(lavapipe_driver, lavapipe_caps, op):
    tpl = get_template(DEFAULT_TEMPLATES[op.kind])
    configs = list(tpl.space(op, lavapipe_caps))
    assert configs
    assert_all_correct(lavapipe_driver, tpl, op, configs, seed=SEED, chunk=32)


def test_every_code_path_is_correct_at_transformer_sizes(lavapipe_driver, lavapipe_caps):
    """One config per (vec4, variant) at GPT-2-like sizes, checked at 256 positions and the edges."""
    for op in (Softmax(32, 128, batch=4, causal=True, scale=0.125), Norm(16, 768, residual=True),
               Eltwise(32 * 3072, "gelu"), Heads(16, 12, 64, mode="split_t", row_stride=2304, col_offset=768,
                                                    past=5, rotary=True)):
        tpl = get_template(DEFAULT_TEMPLATES[op.kind])
        picked: dict[tuple, Config] = {}
        for c in tpl.space(op, lavapipe_caps):
            picked.setdefault(tuple(v for k, v in c.items() if k in ("V", "ON", "WF", "ORD")) + (c.get("TPR", 0) > 1,), c)
        assert_all_correct(lavapipe_driver, tpl, op, list(picked.values()), seed=SEED, count=256, chunk=32)


def test_launches_past_65535_workgroups_fold_into_y(lavapipe_driver):
    cases = [(Softmax(70000, 3), Config(TPR=1, RPW=1, V=0, ON=0)),
             (Eltwise(2_100_001, "add"), Config(WG=32, EPT=1, V=0))]
    for op, c in cases:
        tpl = get_template(DEFAULT_TEMPLATES[op.kind])
        assert tpl.render(op, c).workgroups[1] == 2
        assert_all_correct(lavapipe_driver, tpl, op, [c], seed=SEED, count=256)


FAST = MeasureSpec(warmup=1, samples=3, min_sample_ms=1.0, max_reps=16)


@pytest.mark.parametrize(
    "op",
    [Softmax(16, 64, batch=2, causal=True, scale=0.125), Norm(8, 256, residual=True),
     Eltwise(4096, "silu_mul"), Heads(8, 4, 32, mode="split_t", rotary=True, past=2)],
    ids=lambda op: op.key(),
)
def test_tune_finds_a_correct_best_config(lavapipe_driver, lavapipe_caps, op):
    result = tune(op, DEFAULT_TEMPLATES[op.kind], lavapipe_caps, lavapipe_driver,
                  options=TuneOptions(max_evals=6, batch_size=6, measure=FAST, budget_s=60))
    assert sum(t.phase == "search" for t in result.trials) == 6 and all(t.ok and t.check_ok for t in result.trials), \
        [(t.config_key, t.error) for t in result.trials if not t.ok]
    assert_confirmed_winner(result)
