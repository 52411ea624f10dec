"""softmax-wgsl, norm-wgsl, eltwise-wgsl and heads-wgsl in real headless Chromium (SwiftShader
WebGPU) through the harness page: the prior's first configs of ragged shapes (the vec4 and the
scalar kernel where both exist) compile under Tint and are correct at every output position."""

from __future__ import annotations

import pytest

from jit_core.caps import DeviceCaps
from jit_core.ops import Eltwise, Heads, Norm, Softmax
from jit_core.templates import DEFAULT_TEMPLATES, get_template
from tests.template_checks import assert_all_correct

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def driver(swiftshader_page):
    return swiftshader_page


@pytest.mark.parametrize(
    "op",
    [Softmax(5, 36, batch=2, causal=True, scale=0.3), Norm(3, 36, residual=True), Norm(2, 37, norm="rmsnorm"),
     Eltwise(1000, "silu_mul"), Heads(3, 2, 8, mode="split_t", rotary=True, past=2, row_stride=24, col_offset=8),
     Heads(3, 2, 8, mode="merge")],
    ids=lambda op: op.key(),
)
def test_first_configs_are_correct_in_chromium(driver, op):
    caps = DeviceCaps.from_probe(driver.probe())
    tpl = get_template(DEFAULT_TEMPLATES[op.kind])
    space = list(tpl.space(op, caps))
    picked = {}
    for c in space:  # the best-ranked config of each vec4 / variant combination, at most 4
        picked.setdefault(tuple(c[k] for k in ("V", "ON", "WF", "ORD") if k in c), c)
    assert_all_correct(driver, tpl, op, list(picked.values())[:4], seed=5)
