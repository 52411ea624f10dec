"""f16 in the harness page (headless Chromium, SwiftShader WebGPU, which has no ``shader-f16``):
the page's f32 -> f16 rounding is bit-identical to numpy's (ties to even, subnormals, overflow),
half-float buffers go up and come back bit for bit (a kernel that reads and writes them as packed
u32 words, so it needs no ``enable f16``), the page reports ``shader-f16`` exactly when it has it,
and on this adapter an f16 op's vec4 space is empty with the rule that says why."""

from __future__ import annotations

import numpy as np
import pytest

from jit_core.caps import DeviceCaps
from jit_core.ops import MatMul
from jit_core.protocol import KernelSource, make_batch
from jit_core.reference import op_inputs, prng_buffer
from jit_core.templates.matmul_vec4_wgsl import MatmulVec4WGSL
from tests.integration.test_matmul_f16_native import PACKED_COPY
from tests.template_checks import ONE_RUN

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def driver(swiftshader_page):
    return swiftshader_page


# (seed, stream, n, scale, shift): plain values (with exact ties), subnormal halves, overflow to
# infinity, and values near f16's largest finite number
CASES = [(1, 0, 40000, 1.0, 0.0), (7, 3, 5000, 2.0**-13, 0.0), (2, 1, 5000, 1e-7, 0.0),
         (3, 2, 3000, 70000.0, 0.0), (4, 5, 3000, 16.0, 65500.0), (5, 6, 3000, 0.001, -0.5)]


@pytest.mark.parametrize("seed, stream, n, scale, shift", CASES)
def test_page_f16_rounding_is_bit_identical_to_numpy(driver, seed, stream, n, scale, shift):
    page = np.asarray(driver.evaluate("([s, t, n, a, b]) => window.jitfarm.prngF16Bits(s, t, n, a, b)",
                                      [seed, stream, n, scale, shift]), dtype=np.uint16)
    ref = prng_buffer(seed, stream, n, scale=scale, shift=shift, dtype="f16").view(np.uint16)
    assert page.shape == ref.shape
    mismatch = np.flatnonzero(page != ref)
    assert mismatch.size == 0, f"{mismatch.size} differ, e.g. index {mismatch[:3]}: page {page[mismatch[:3]]}, numpy {ref[mismatch[:3]]}"


def test_half_float_buffers_travel_bit_for_bit_through_the_page(driver):
    op = MatMul(10, 10, 10, dtype="f16")
    kernel = KernelSource(PACKED_COPY, "main", (1, 1, 1), (64, 1, 1))
    (r,) = driver.run_batch(make_batch(op, [("c", kernel)], seed=5, measure=ONE_RUN, check_positions=list(range(100))))
    assert r.ok, r.error
    ins = op_inputs(op, 5)
    want = (ins["A"].astype(np.float32) + 2 * ins["B"].astype(np.float32)).astype(np.float16).astype(np.float64)
    np.testing.assert_array_equal(np.asarray(r.values), want)


def test_page_requests_shader_f16_exactly_when_the_adapter_has_it_and_f16_spaces_follow(driver):
    probe = driver.probe()
    assert ("shader-f16" in probe["features"]) == ("shader-f16" in probe["adapterFeatures"])
    assert "timestamp-query" in probe["features"]  # still requested next to it
    caps = DeviceCaps.from_probe(probe)
    space = MatmulVec4WGSL().space(MatMul(64, 64, 64, dtype="f16"), caps)
    if "shader-f16" in caps.features:
        assert len(space) > 0
    else:  # SwiftShader here
        assert len(space) == 0 and space.report()["rules"][0]["name"] == "shader-f16"
