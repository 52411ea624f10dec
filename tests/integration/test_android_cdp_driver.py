"""AndroidCdpDriver's path after the adb forward: Playwright connect_over_cdp to a running Chrome,
a new tab with the harness, the protocol through it. Here the Chrome is a headless Chromium the
test starts with a DevTools port (what `adb forward ... localabstract:chrome_devtools_remote`
gives on a phone); the adb half is unit-tested with the transcript in tests/unit/test_adb.py."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from farm.drivers.android_cdp import AndroidCdpDriver
from farm.drivers.android_options import AndroidOptions
from farm.drivers.base import BrowserOptions, DriverError
from farm.drivers.playwright_driver import QUIET_CHROMIUM_ARGS
from jit_core.ops import MatMul
from jit_core.protocol import MeasureSpec, make_batch
from jit_core.reference import check_outputs, check_positions
from jit_core.space import Config
from jit_core.templates import get_template

CHROMIUM = BrowserOptions().executable_path

pytestmark = [pytest.mark.browser]


@pytest.fixture(scope="module")
def devtools_endpoint(tmp_path_factory):
    if not (CHROMIUM and Path(CHROMIUM).is_file()):
        pytest.skip(f"no Chromium at {CHROMIUM}: run the README's setup command")
    profile = tmp_path_factory.mktemp("cdp-profile")
    proc = subprocess.Popen(
        [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--enable-unsafe-webgpu",
         "--enable-unsafe-swiftshader", *QUIET_CHROMIUM_ARGS, "--remote-debugging-address=127.0.0.1",
         "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.is_file() and port_file.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert port_file.is_file(), "Chromium did not open its DevTools port"
        yield f"http://127.0.0.1:{port_file.read_text().split()[0]}", proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


def test_connect_over_cdp_runs_the_harness_in_a_new_tab_and_leaves_the_browser_running(devtools_endpoint):
    endpoint, proc = devtools_endpoint
    drv = AndroidCdpDriver(BrowserOptions(call_timeout_s=120), endpoint_url=endpoint)
    drv.open()
    try:
        probe = drv.probe()
        assert probe["adapter"]["architecture"] == "swiftshader"
        op = MatMul(M=16, N=16, K=16)
        template = get_template("matmul-wgsl")
        from jit_core.caps import DeviceCaps

        config = template.space(op, DeviceCaps.from_probe(probe)).configs[0]
        positions = check_positions(op, 8, 3)
        batch = make_batch(op, [("c0", template.render(op, Config(config)))], seed=3,
                           measure=MeasureSpec(warmup=1, samples=2, min_sample_ms=1.0, max_reps=8),
                           check_positions=positions)
        (res,) = drv.run_batch(batch)
        assert res.ok and check_outputs(op, 3, positions, res.values).ok
        cov = drv.covariates()
        assert cov["chrome_version"].startswith("156") and "SwiftShader" in cov["gpu_renderer"]
    finally:
        drv.close()
    assert proc.poll() is None, "closing the driver closes its tab, not the phone's browser"


def test_android_options_or_endpoint_exactly_one():
    with pytest.raises(ValueError):
        AndroidCdpDriver(BrowserOptions(), AndroidOptions(), endpoint_url="http://127.0.0.1:1")
    with pytest.raises(ValueError):
        AndroidCdpDriver(BrowserOptions())


def test_unreachable_endpoint_is_an_infra_error():
    drv = AndroidCdpDriver(BrowserOptions(launch_timeout_s=5), endpoint_url="http://127.0.0.1:9")
    with pytest.raises(DriverError) as err:
        drv.open()
    assert err.value.error_class == "infra"
