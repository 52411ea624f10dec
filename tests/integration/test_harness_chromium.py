"""The harness page in real headless Chromium (SwiftShader WebGPU), driven by PlaywrightDriver."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from farm.drivers.base import BrowserOptions, DriverError
from farm.drivers.playwright_driver import (
    ENABLE_FEATURES,
    PLAYWRIGHT_ENABLE_FEATURES,
    PlaywrightDriver,
    chromium_launch_args,
    command_line_problems,
    merge_feature_flags,
    node_compile_cache,
)
from farm.harness.server import HarnessServer
from jit_core.ops import MatMul
from jit_core.protocol import KernelSource, MeasureSpec, make_batch, op_buffers
from jit_core.reference import check_outputs, check_positions, prng_f32

CHROMIUM = BrowserOptions().executable_path
FLAGS = ("--enable-unsafe-webgpu", "--enable-webgpu-developer-features", "--enable-features=SharedArrayBuffer")
needs_chromium = pytest.mark.skipif(
    not (CHROMIUM and Path(CHROMIUM).is_file()),
    reason=f"no Chromium at {CHROMIUM}: run the README's setup command",
)

NAIVE_MATMUL = """
@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<f32>;
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
const M = {M}u;
const N = {N}u;
const K = {K}u;
@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let row = gid.y;
  let col = gid.x;
  if (row >= M || col >= N) { return; }
  var acc = 0.0;
  for (var k = 0u; k < K; k++) {
    acc += A[row * K + k] * B[k * N + col];
  }
  C[row * N + col] = acc;
}
"""

BINDINGS = """
@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<f32>;
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
"""


def naive_kernel(op: MatMul) -> KernelSource:
    code = NAIVE_MATMUL.replace("{M}", str(op.M)).replace("{N}", str(op.N)).replace("{K}", str(op.K))
    return KernelSource(code, "main", ((op.N + 7) // 8, (op.M + 7) // 8, 1), (8, 8, 1))


SYNTAX_ERROR = KernelSource("fn main( {", "main", (1, 1, 1), (1, 1, 1))
WRITES_NOTHING = KernelSource(BINDINGS + "@compute @workgroup_size(1) fn main() { }", "main", (1, 1, 1), (1, 1, 1))
# Never finishes: A[0] is in [-1, 1). Only a timeout (and a browser restart) gets past it.
SPINS = KernelSource(
    BINDINGS + "@compute @workgroup_size(1) fn main() { var i = 0u; "
    "loop { i = i + 1u; C[i % 4u] = f32(i); if (A[0] > 2.0) { break; } } }",
    "main", (1, 1, 1), (1, 1, 1))

OP = MatMul(M=33, N=17, K=9)
SEED = 11
FAST = MeasureSpec(warmup=1, samples=3, min_sample_ms=2.0, max_reps=64, timeout_ms=20000)


@pytest.fixture(scope="module")
def server():
    with HarnessServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def driver(server):
    if not (CHROMIUM and Path(CHROMIUM).is_file()):
        pytest.skip(f"no Chromium at {CHROMIUM}")
    drv = PlaywrightDriver(BrowserOptions(args=FLAGS, call_timeout_s=120), server=server)
    drv.open()
    yield drv
    drv.close()


@pytest.fixture(scope="module")
def probe(driver):
    return driver.probe()


@pytest.fixture(scope="module")
def mixed_batch(driver):
    """One batch: good, syntax error, good, writes nothing, dispatch over the limit, good."""
    too_many_groups = KernelSource(naive_kernel(OP).code, "main", (70000, 1, 1), (8, 8, 1))
    kernels = [("good0", naive_kernel(OP)), ("syntax", SYNTAX_ERROR), ("good1", naive_kernel(OP)),
               ("nothing", WRITES_NOTHING), ("too_many_groups", too_many_groups), ("good2", naive_kernel(OP))]
    positions = check_positions(OP, count=0)
    batch = make_batch(OP, kernels, seed=SEED, measure=FAST, check_positions=positions)
    return {r.id: r for r in driver.run_batch(batch)}, positions


# ------------------------------------------------------------------------------------ no browser
def test_enable_features_flags_are_merged_into_one_with_playwrights():
    args, ignore = chromium_launch_args(BrowserOptions(args=(
        "--enable-unsafe-webgpu", "--enable-features=Vulkan", "--enable-features=Foo,Vulkan")))
    features = [a for a in args if a.startswith(ENABLE_FEATURES)]
    assert features == [ENABLE_FEATURES + ",".join(PLAYWRIGHT_ENABLE_FEATURES + ("Vulkan", "Foo"))]
    assert args[-1] == features[0]
    assert ignore == [ENABLE_FEATURES + ",".join(PLAYWRIGHT_ENABLE_FEATURES)]
    for quiet in ("--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"):
        assert args.count(quiet) == 1
    assert merge_feature_flags(["--a"]) == ["--a"]


def test_missing_executable_raises_infra_error_naming_the_fix(tmp_path):
    drv = PlaywrightDriver(BrowserOptions(executable_path=str(tmp_path / "no-chromium")))
    with pytest.raises(DriverError) as info:
        drv.open()
    assert info.value.error_class == "infra"
    assert str(tmp_path / "no-chromium") in info.value.message
    assert "setup" in info.value.message and "executable_path" in info.value.message
    drv.close()  # never raises, also when nothing was opened


def test_node_compile_cache_folder_follows_nodes_variables_then_the_xdg_cache(monkeypatch, tmp_path):
    for name in ("NODE_COMPILE_CACHE", "NODE_DISABLE_COMPILE_CACHE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert node_compile_cache() == tmp_path / "jitfarm" / "node-compile-cache"
    monkeypatch.setenv("NODE_COMPILE_CACHE", str(tmp_path / "mine"))
    assert node_compile_cache() == tmp_path / "mine"
    monkeypatch.setenv("NODE_DISABLE_COMPILE_CACHE", "1")
    assert node_compile_cache() is None


def test_playwrights_node_driver_fills_the_compile_cache_for_its_next_start(tmp_path):
    """A fresh process (Playwright's driver is shared per thread) starts and stops Playwright with
    only XDG_CACHE_HOME pointing here: Node has written compiled code under jitfarm's folder."""
    env = {k: v for k, v in os.environ.items() if k not in ("NODE_COMPILE_CACHE", "NODE_DISABLE_COMPILE_CACHE")}
    env["XDG_CACHE_HOME"] = str(tmp_path)
    code = ("from farm.drivers.playwright_driver import _acquire_playwright, _release_playwright\n"
            "_release_playwright(_acquire_playwright())\n")
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=120,
                   cwd=Path(__file__).resolve().parents[2])
    cache = tmp_path / "jitfarm" / "node-compile-cache"
    assert [f for f in cache.rglob("*") if f.is_file() and f.stat().st_size > 0]


# ------------------------------------------------------------------------------------ browser
@pytest.mark.browser
@needs_chromium
def test_browser_gets_exactly_one_merged_enable_features_flag(driver):
    line = driver.command_line
    assert line, "chrome://version did not give the command line"
    flags = [a for a in line if a.startswith(ENABLE_FEATURES)]
    assert len(flags) == 1 and command_line_problems(line) == []
    features = flags[0][len(ENABLE_FEATURES):].split(",")
    assert "SharedArrayBuffer" in features and set(PLAYWRIGHT_ENABLE_FEATURES) <= set(features)
    assert "--disable-quic" in line


@pytest.mark.browser
@needs_chromium
def test_command_line_is_read_from_the_browser_process_without_a_page(driver):
    """The browser's own argv (its PID from CDP, /proc), not a chrome://version page load."""
    assert driver.command_line and driver.command_line == driver._process_command_line()
    assert Path(driver.command_line[0]).name.startswith("chrom")


@pytest.mark.browser
@needs_chromium
def test_open_says_where_its_time_went(driver):
    """Playwright's start, the browser with its first page, the harness page: each timed, for the
    run's start-up figures."""
    phases = driver.open_phases()
    assert set(phases) == {"playwright_s", "browser_s", "page_s"} and all(v >= 0 for v in phases.values())


@pytest.mark.browser
@needs_chromium
def test_probe_reports_webgpu_adapter_limits_features_and_timer_resolutions(probe, driver):
    assert probe["webgpu"] is True and probe["error"] is None
    assert probe["crossOriginIsolated"] is True
    adapter = probe["adapter"]
    assert set(adapter) >= {"vendor", "architecture", "device", "description", "isFallbackAdapter", "featureLevel"}
    assert adapter["featureLevel"] == "core"
    limits = probe["limits"]
    assert limits["maxComputeInvocationsPerWorkgroup"] >= 64
    assert limits["maxComputeWorkgroupStorageSize"] >= 16384
    assert all(isinstance(v, (int, float)) for v in limits.values())
    assert isinstance(probe["features"], list)
    res = probe["timerResolutionMs"]
    assert 0 < res["wall"] <= 0.1  # cross-origin isolated: 5 us in Chromium
    if "timestamp-query" in probe["features"]:
        assert res["timestamp"] is not None and 0 < res["timestamp"] < 0.1  # developer features: not quantized
    assert probe["hardwareConcurrency"] >= 1
    versions = driver.versions()
    assert versions["browser"].startswith("chromium ") and versions["playwright"]


@pytest.mark.browser
@needs_chromium
def test_page_prng_is_bit_identical_to_reference(driver):
    for seed, stream, n, offset in [(0, 0, 257, 0), (1, 1, 100, 0), (123456789, 2, 64, 1000), (2**32 - 1, 7, 33, 2**31)]:
        page = np.asarray(driver.evaluate("([s, t, n, o]) => window.jitfarm.prng(s, t, n, o)", [seed, stream, n, offset]),
                          dtype=np.float64).astype(np.float32)
        ref = prng_f32(seed, stream, n, offset)
        assert np.array_equal(page.view(np.uint32), ref.view(np.uint32)), (seed, stream, offset)


@pytest.mark.browser
@needs_chromium
def test_naive_matmul_passes_the_check_at_every_position(mixed_batch):
    results, positions = mixed_batch
    assert len(positions) == OP.output_size()
    for cid in ("good0", "good1", "good2"):
        r = results[cid]
        assert r.ok and r.error_class is None, r.error
        check = check_outputs(OP, SEED, positions, r.values)
        assert check.ok, check.message
        assert r.compile_ms is not None and r.compile_ms >= 0 and r.first_run_ms > 0


@pytest.mark.browser
@needs_chromium
def test_compile_error_is_reported_and_the_next_candidate_still_runs(mixed_batch):
    results, positions = mixed_batch
    bad = results["syntax"]
    assert not bad.ok and bad.error_class == "compile"
    assert "error" in bad.error.lower() and bad.samples_ms == [] and bad.values is None
    assert results["good1"].ok and check_outputs(OP, SEED, positions, results["good1"].values).ok


@pytest.mark.browser
@needs_chromium
def test_dispatch_over_the_limit_is_a_validation_error(mixed_batch):
    r = mixed_batch[0]["too_many_groups"]
    assert not r.ok and r.error_class == "validation" and "70000" in r.error
    assert mixed_batch[0]["good2"].ok


@pytest.mark.browser
@needs_chromium
def test_output_is_cleared_so_a_kernel_that_writes_nothing_fails_the_check(mixed_batch):
    results, positions = mixed_batch
    r = results["nothing"]
    assert r.ok  # it ran; correctness is judged in Python
    assert not check_outputs(OP, SEED, positions, r.values).ok
    assert all(v == 0.0 for v in r.values)


@pytest.mark.browser
@needs_chromium
@pytest.mark.parametrize("timer", ["auto", "wall"])
def test_samples_are_positive_and_reps_cover_min_sample_ms(driver, probe, timer):
    measure = MeasureSpec(warmup=1, samples=5, min_sample_ms=4.0, max_reps=256, timer=timer)
    (r,) = driver.run_batch(make_batch(OP, [("c", naive_kernel(OP))], seed=SEED, measure=measure,
                                       check_positions=check_positions(OP)))
    assert r.ok, r.error
    expected_kind = "timestamp" if timer == "auto" and "timestamp-query" in probe["features"] else "wall"
    assert r.timer_kind == expected_kind
    assert r.timer_resolution_ms == probe["timerResolutionMs"][expected_kind]
    assert len(r.samples_ms) == 5 and all(s > 0 for s in r.samples_ms)
    assert 1 <= r.reps <= 256
    # One sample is `reps` dispatches: together they last about minSampleMs of the sample's timer.
    assert statistics.median(r.samples_ms) * r.reps >= 0.5 * measure.min_sample_ms or r.reps == 256


@pytest.mark.browser
@needs_chromium
def test_reps_never_exceed_max_reps(driver):
    measure = MeasureSpec(warmup=0, samples=2, min_sample_ms=10_000.0, max_reps=3, timer="wall")
    (r,) = driver.run_batch(make_batch(OP, [("c", naive_kernel(OP))], seed=SEED, measure=measure,
                                       check_positions=[0]))
    assert r.ok and r.reps == 3


@pytest.mark.browser
@needs_chromium
def test_tfjs_webgpu_baseline_runs_on_webgpu_and_is_correct(driver, probe):
    op = MatMul(M=64, N=48, K=32)
    positions = check_positions(op)
    spec = {
        "library": "tfjs", "backend": "webgpu", "op": op.to_dict(),
        "buffers": [asdict(b) for b in op_buffers(op, SEED)],
        "measure": {"warmup": 1, "samples": 3, "minSampleMs": 2.0, "maxReps": 32, "timer": "wall", "timeoutMs": 60000},
        "check": {"positions": positions},
    }
    r = driver.run_baseline(spec)
    assert r["ok"], r["error"]
    assert r["backendRequested"] == "webgpu" and r["backendUsed"] == "webgpu"
    assert r["libraryVersion"] == "4.22.0"
    assert r["timer"]["kind"] == "wall" and r["timer"]["resolutionMs"] > 0
    assert len(r["samplesMs"]) == 3 and all(s > 0 for s in r["samplesMs"]) and r["reps"] >= 1
    assert r["firstRunMs"] > 0
    assert r["adapter"] is not None and r["adapter"]["architecture"] == probe["adapter"]["architecture"]
    check = check_outputs(op, SEED, positions, r["values"])
    assert check.ok, check.message


@pytest.mark.browser
@pytest.mark.slow
@needs_chromium
def test_runaway_kernel_times_out_and_the_batch_goes_on_after_a_browser_restart(driver):
    measure = MeasureSpec(warmup=0, samples=2, min_sample_ms=1.0, max_reps=8, timeout_ms=1500)
    positions = check_positions(OP)
    batch = make_batch(OP, [("spin", SPINS), ("after", naive_kernel(OP))], seed=SEED, measure=measure,
                       check_positions=positions)
    spin, after = driver.run_batch(batch)
    assert not spin.ok and spin.error_class == "timeout"
    assert after.ok, after.error
    assert check_outputs(OP, SEED, positions, after.values).ok
    assert driver.probe()["webgpu"] is True  # the driver is usable afterwards


LAVAPIPE_ICD = "/usr/share/vulkan/icd.d/lvp_icd.x86_64.json"


@pytest.mark.browser
@needs_chromium
@pytest.mark.skipif(not Path(LAVAPIPE_ICD).is_file(), reason="lavapipe is not installed (mesa-vulkan-drivers)")
def test_compatibility_feature_level_reaches_lavapipe_and_runs_a_kernel(server):
    options = BrowserOptions(
        args=("--enable-unsafe-webgpu", "--use-angle=vulkan", "--ignore-gpu-blocklist",
              "--use-webgpu-adapter=opengles", "--disable-gpu-driver-bug-workarounds"),
        env=(("VK_ICD_FILENAMES", LAVAPIPE_ICD),), feature_level="compatibility")
    with PlaywrightDriver(options, server=server) as drv:
        probe = drv.probe()
        assert probe["webgpu"] is True and probe["adapter"]["featureLevel"] == "compatibility", probe
        assert probe["requestedFeatureLevel"] == "compatibility"
        positions = check_positions(OP)
        (r,) = drv.run_batch(make_batch(OP, [("c", naive_kernel(OP))], seed=SEED, measure=FAST,
                                        check_positions=positions))
        assert r.ok, r.error
        assert r.timer_kind == ("timestamp" if "timestamp-query" in probe["features"] else "wall")
        assert check_outputs(OP, SEED, positions, r.values).ok


@pytest.mark.browser
@needs_chromium
def test_crashed_page_raises_device_error(server):
    drv = PlaywrightDriver(BrowserOptions(args=FLAGS), server=server)
    drv.open()
    try:
        try:
            drv.page.goto("chrome://crash", timeout=10_000)
        except Exception:  # noqa: BLE001 - the navigation itself fails when the renderer dies
            pass
        with pytest.raises(DriverError) as info:
            drv.probe()
        assert info.value.error_class == "device"
    finally:
        drv.close()
        drv.close()
    assert server.running  # a driver never stops a server it does not own
