"""NativeDriver on a real wgpu-native adapter (lavapipe's llvmpipe on Vulkan here), no browser."""

from __future__ import annotations

import statistics

import pytest

from tests.conftest import lavapipe_options
from farm.drivers.base import DriverError
from farm.drivers.native import NativeDriver, camel_limit
from jit_core.ops import MatMul
from jit_core.protocol import KernelSource, MeasureSpec, make_batch
from jit_core.reference import check_outputs, check_positions

pytestmark = pytest.mark.native

SEED = 5
FAST = MeasureSpec(warmup=1, samples=3, min_sample_ms=1.0, max_reps=64)

# Naive matmul: one thread per output element, batch index in workgroup_id.z.
NAIVE_WGSL = """
const M = {M}u;
const N = {N}u;
const K = {K}u;
@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<f32>;
@group(0) @binding(2) var<storage, read_write> C: array<f32>;

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {{
  let row = gid.y;
  let col = gid.x;
  let b = wid.z;
  if (row >= M || col >= N) {{ return; }}
  var acc = 0.0;
  for (var k = 0u; k < K; k = k + 1u) {{
    acc = acc + A[b * M * K + row * K + k] * B[b * K * N + k * N + col];
  }}
  C[b * M * N + row * N + col] = acc;
}}
"""

# Declares every binding but stores only under a condition that never holds.
WRITES_NOTHING_WGSL = """
@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<f32>;
@group(0) @binding(2) var<storage, read_write> C: array<f32>;

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  if (gid.x > 4000000000u) { C[0] = A[0] + B[0]; }
}
"""


def naive(op: MatMul) -> KernelSource:
    return KernelSource(
        code=NAIVE_WGSL.format(M=op.M, N=op.N, K=op.K),
        entry="main",
        workgroups=((op.N + 7) // 8, (op.M + 7) // 8, op.batch),
        workgroup_size=(8, 8, 1),
    )


@pytest.fixture(scope="module")
def driver(lavapipe_driver):
    return lavapipe_driver


def run(driver: NativeDriver, op: MatMul, kernels, measure: MeasureSpec = FAST, positions=None):
    positions = check_positions(op, count=0) if positions is None else positions
    return driver.run_batch(make_batch(op, kernels, seed=SEED, measure=measure, check_positions=positions))


def passes(op: MatMul, result) -> bool:
    return result.ok and check_outputs(op, SEED, check_positions(op, count=0), result.values).ok


def test_camel_limit_names_match_gpu_supported_limits():
    assert camel_limit("max-compute-workgroup-size-x") == "maxComputeWorkgroupSizeX"
    assert camel_limit("max-texture-dimension-1d") == "maxTextureDimension1D"
    assert camel_limit("min-storage-buffer-offset-alignment") == "minStorageBufferOffsetAlignment"


def test_probe_reports_camelcase_limits_and_cpu_fallback_adapter(driver):
    probe = driver.probe()
    assert probe["webgpu"] is True and probe["error"] is None
    assert probe["limits"]["maxComputeInvocationsPerWorkgroup"] >= 256
    for name in ("maxComputeWorkgroupStorageSize", "maxComputeWorkgroupSizeX", "maxComputeWorkgroupsPerDimension",
                 "maxStorageBufferBindingSize", "maxBufferSize"):
        assert probe["limits"][name] > 0
    assert not any("-" in k or "_" in k for k in probe["limits"])
    adapter = probe["adapter"]
    assert adapter["isFallbackAdapter"] is True and adapter["backend"] == "vulkan"
    assert adapter["featureLevel"] == "core" and "llvmpipe" in adapter["device"]
    assert probe["userAgent"].startswith("wgpu-native/") and "wgpu-py" in probe["userAgent"]
    assert probe["crossOriginIsolated"] is None
    res = probe["timerResolutionMs"]
    assert 0 < res["wall"] < 1
    assert ("timestamp-query" in probe["features"]) == (res["timestamp"] is not None)
    assert set(driver.versions()) == {"wgpu", "wgpu_native"}


@pytest.mark.parametrize("op", [MatMul(33, 17, 9), MatMul(16, 8, 4, batch=2)], ids=lambda o: o.shape_str())
def test_naive_matmul_matches_reference_at_every_position(driver, op):
    [result] = run(driver, op, [("naive", naive(op))])
    assert result.ok, result.error
    check = check_outputs(op, SEED, check_positions(op, count=0), result.values)
    assert check.ok and check.n_checked == op.output_size(), check.message
    assert result.compile_ms > 0 and result.first_run_ms > 0
    assert len(result.samples_ms) == FAST.samples and all(s >= 0 for s in result.samples_ms)


def test_wgsl_syntax_error_is_compile_class_and_next_candidate_still_passes(driver):
    op = MatMul(16, 16, 8)
    broken = KernelSource("@compute @workgroup_size(1) fn main() { let x = ; }", "main", (1, 1, 1), (1, 1, 1))
    bad, good = run(driver, op, [("broken", broken), ("naive", naive(op))])
    assert (bad.ok, bad.error_class) == (False, "compile")
    assert "expected expression" in bad.error
    assert passes(op, good)


def test_dispatch_over_the_workgroup_limit_is_validation_class_and_batch_goes_on(driver):
    op = MatMul(16, 16, 8)
    huge = KernelSource(naive(op).code, "main", (70000, 1, 1), (8, 8, 1))
    bad, good = run(driver, op, [("huge", huge), ("naive", naive(op))])
    assert (bad.ok, bad.error_class) == (False, "validation"), bad.error
    assert passes(op, good)


def test_kernel_that_writes_nothing_fails_the_check_after_a_correct_one(driver):
    # The correct candidate runs first: the output is cleared between candidates, so the
    # silent kernel cannot inherit its results.
    op = MatMul(16, 16, 8)
    silent = KernelSource(WRITES_NOTHING_WGSL, "main", (2, 2, 1), (8, 8, 1))
    good, nothing = run(driver, op, [("naive", naive(op)), ("nothing", silent)])
    assert passes(op, good)
    assert nothing.ok  # it ran; correctness is judged from its values
    assert not check_outputs(op, SEED, check_positions(op, count=0), nothing.values).ok


@pytest.mark.parametrize("timer,kind", [("wall", "wall"), ("auto", "timestamp")])
def test_reps_times_median_sample_respects_min_sample_ms(driver, timer, kind):
    if kind == "timestamp" and driver.probe()["timerResolutionMs"]["timestamp"] is None:
        pytest.skip("adapter has no timestamp-query")
    # About 6 ms per dispatch on lavapipe: far above the sync overhead and the scheduling jitter of
    # a 2-core machine, which a single calibration run is exposed to.
    op = MatMul(128, 128, 128)
    measure = MeasureSpec(warmup=1, samples=3, min_sample_ms=20.0, max_reps=256, timer=timer)
    [r] = run(driver, op, [("naive", naive(op))], measure, positions=[0])
    assert r.ok, r.error
    assert r.timer_kind == kind and r.timer_resolution_ms is not None and r.timer_resolution_ms > 0
    median = statistics.median(r.samples_ms)
    assert 0.4 * measure.min_sample_ms <= r.reps * median <= 3 * (measure.min_sample_ms + median)


def test_reps_are_clamped_to_max_reps(driver):
    op = MatMul(8, 8, 8)
    measure = MeasureSpec(warmup=0, samples=2, min_sample_ms=10_000.0, max_reps=3, timer="wall")
    [r] = run(driver, op, [("naive", naive(op))], measure)
    assert r.ok and r.reps == 3


def test_timeout_is_judged_after_the_fact_and_stops_sampling(driver):
    op = MatMul(16, 16, 8)
    measure = MeasureSpec(warmup=0, samples=50, min_sample_ms=5.0, timeout_ms=0.001)
    [r] = run(driver, op, [("naive", naive(op))], measure)
    assert (r.ok, r.error_class) == (False, "timeout")
    assert "cannot be interrupted" in r.error and len(r.samples_ms) < measure.samples


def test_lost_device_is_replaced_for_the_next_batch(driver):
    op = MatMul(16, 16, 8)
    driver._device.destroy()  # a real loss of the real device (reason: destroyed)
    [r] = run(driver, op, [("naive", naive(op))])
    assert passes(op, r)
    assert driver.probe()["limits"]["maxComputeInvocationsPerWorkgroup"] >= 256


def test_adapter_match_that_matches_nothing_raises_infra_listing_adapters(driver):
    other = NativeDriver(lavapipe_options(adapter_match="no-such-gpu-xyz"))
    with pytest.raises(DriverError) as info:
        other.open()
    assert info.value.error_class == "infra"
    assert "llvmpipe" in info.value.message and "mesa-vulkan-drivers" in info.value.message
    other.close()
    other.close()


def test_kernel_may_leave_a_declared_binding_unused(driver):
    # The bind group layout comes from the batch's buffers, not from the shader.
    op = MatMul(8, 8, 8)
    only_c = KernelSource(
        "@group(0) @binding(2) var<storage, read_write> C: array<f32>;\n"
        "@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3<u32>) { C[g.x] = 1.0; }",
        "main", (1, 1, 1), (64, 1, 1),
    )
    [r] = run(driver, op, [("only_c", only_c)], positions=[0, 63])
    assert r.ok, r.error
    assert r.values == [1.0, 1.0]


def test_check_positions_outside_the_output_answer_harness_for_every_candidate(driver):
    op = MatMul(8, 8, 8)
    results = run(driver, op, [("a", naive(op)), ("b", naive(op))], positions=[0, op.output_size()])
    assert [(r.ok, r.error_class) for r in results] == [(False, "harness"), (False, "harness")]
