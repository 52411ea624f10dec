"""Multi-dispatch candidates (bindings by name, scratch buffers, a chain run as one) and scaled
PRNG buffers, on native lavapipe and in headless Chromium (SwiftShader): the same protocol."""

from __future__ import annotations

import numpy as np
import pytest

from jit_core.ops import MatMul
from jit_core.protocol import Batch, BufferSpec, Candidate, Dispatch, KernelSource, MeasureSpec, make_batch
from jit_core.reference import check_outputs, check_positions, prng_buffer

FAST = MeasureSpec(warmup=1, samples=3, min_sample_ms=1.0, max_reps=16, timeout_ms=30000, warmup_ms=20.0)
OP = MatMul(M=19, N=13, K=37)
SEED = 3
SPLITS = 3

PARTIAL = """
@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<f32>;
@group(0) @binding(2) var<storage, read_write> P: array<f32>;
@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let row = gid.y; let col = gid.x; let s = gid.z;
  if (row >= %(M)du || col >= %(N)du) { return; }
  let k0 = s * %(KS)du;
  let k1 = min(k0 + %(KS)du, %(K)du);
  var acc = 0.0;
  for (var k = k0; k < k1; k++) { acc += A[row * %(K)du + k] * B[k * %(N)du + col]; }
  P[(s * %(M)du + row) * %(N)du + col] = acc;
}
"""

REDUCE = """
@group(0) @binding(0) var<storage, read> P: array<f32>;
@group(0) @binding(1) var<storage, read_write> C: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x;
  if (i >= %(MN)du) { return; }
  var acc = 0.0;
  for (var s = 0u; s < %(S)du; s++) { acc += P[s * %(MN)du + i]; }
  C[i] = acc;
}
"""

COPY = """
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> C: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) { if (gid.x < %(n)du) { C[gid.x] = X[gid.x]; } }
"""


def split_k_kernel(op: MatMul, splits: int) -> KernelSource:
    ks = -(-op.K // splits)
    mn = op.M * op.N
    return KernelSource(
        PARTIAL % {"M": op.M, "N": op.N, "K": op.K, "KS": ks}, "main",
        (-(-op.N // 8), -(-op.M // 8), splits), (8, 8, 1),
        bindings=(("A", "read"), ("B", "read"), ("P", "read_write")),
        then=(Dispatch(REDUCE % {"MN": mn, "S": splits}, "main", (-(-mn // 64), 1, 1), (64, 1, 1),
                       (("P", "read"), ("C", "read_write"))),),
        scratch=(("P", splits * mn),),
    )


@pytest.fixture(params=["native", "chromium"])
def driver(request):
    if request.param == "native":
        request.applymarker(pytest.mark.native)
        return request.getfixturevalue("lavapipe_driver")
    request.applymarker(pytest.mark.browser)
    return request.getfixturevalue("swiftshader_page")


def test_split_k_chain_of_two_dispatches_with_a_scratch_buffer_is_one_correct_run(driver):
    positions = check_positions(OP, count=0)
    bad = KernelSource(COPY % {"n": 1}, "main", (1, 1, 1), (64, 1, 1), bindings=(("nope", "read"), ("C", "read_write")))
    batch = make_batch(OP, [("split", split_k_kernel(OP, SPLITS)), ("unknown-buffer", bad),
                            ("split-again", split_k_kernel(OP, 2))],
                       seed=SEED, measure=FAST, check_positions=positions)
    res = {r.id: r for r in driver.run_batch(batch)}
    for cid in ("split", "split-again"):
        assert res[cid].ok, res[cid].error
        assert check_outputs(OP, SEED, positions, res[cid].values).ok
        assert len(res[cid].samples_ms) == FAST.samples
    assert not res["unknown-buffer"].ok
    assert res["unknown-buffer"].error_class == "harness"
    assert "nope" in res["unknown-buffer"].error


def test_scaled_prng_buffers_hold_the_same_bits_as_numpy_and_are_not_confused_across_batches(driver):
    n = 1000
    positions = tuple(range(0, n, 7))
    copy = KernelSource(COPY % {"n": n}, "main", (-(-n // 64), 1, 1), (64, 1, 1))
    for seed, scale, shift in ((1, 0.03125, 1.0), (1, 0.1, -2.5), (2, 0.1, -2.5), (2, 0.1, -2.5)):
        batch = Batch(
            op=OP,
            buffers=(BufferSpec("X", 0, n, "read", "prng", seed=seed, stream=9, scale=scale, shift=shift),
                     BufferSpec("C", 1, n, "read_write", "zero", output=True)),
            candidates=(Candidate("copy", copy),),
            measure=FAST, check_positions=positions)
        (r,) = driver.run_batch(batch)
        assert r.ok, r.error
        want = prng_buffer(seed, 9, n, scale=scale, shift=shift)[list(positions)]
        np.testing.assert_array_equal(np.asarray(r.values, dtype=np.float32), want)
