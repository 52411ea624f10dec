"""AppiumDriver against a real Appium server (npm, farm/appium/) with its Chromium driver and
Debian's chromedriver driving headless Chromium: the phone's protocol path, other capabilities."""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from farm.config.devices import load_device
from farm.config.experiments import JobSpec, load_experiment
from farm.drivers.appium_driver import AppiumDriver
from farm.drivers.base import DriverError
from farm.procs import child_pids, process_alive as alive
from farm.scheduler.job import DeviceContext, JobRunner
from jit_core.ops import MatMul
from jit_core.protocol import MeasureSpec, make_batch
from jit_core.reference import check_outputs, check_positions
from jit_core.space import Config
from jit_core.templates import get_template
from tests.appium_support import appium_server, session_chromedriver  # noqa: F401 (fixture)

ROOT = Path(__file__).resolve().parents[2]
DEVICE_YAML = ROOT / "device_configs" / "local-appium-chromium.yaml"

pytestmark = [pytest.mark.appium, pytest.mark.browser]


def device(server_url: str | None):
    spec = load_device(DEVICE_YAML)
    appium = spec.appium if server_url is None else dataclasses.replace(spec.appium, server_url=server_url)
    return spec, appium


@pytest.fixture(scope="module")
def driver(appium_server):
    spec, appium = device(appium_server.url)
    drv = AppiumDriver(appium, spec.browser)
    drv.open()
    yield drv
    drv.close()


def test_probe_and_a_tuned_batch_run_through_execute_async_script(driver):
    probe = driver.probe()
    assert probe["webgpu"] and probe["adapter"]["architecture"] == "swiftshader"
    op = MatMul(M=32, N=24, K=16)
    template = get_template("matmul-wgsl")
    from jit_core.caps import DeviceCaps

    configs = template.space(op, DeviceCaps.from_probe(probe)).configs[:3]
    positions = check_positions(op, 16, 5)
    batch = make_batch(op, [(f"c{i}", template.render(op, Config(c))) for i, c in enumerate(configs)], seed=5,
                       measure=MeasureSpec(warmup=1, samples=3, min_sample_ms=2.0, max_reps=16),
                       check_positions=positions)
    results = driver.run_batch(batch)
    assert [r.id for r in results] == ["c0", "c1", "c2"]
    for r in results:
        assert r.ok, r.error
        assert check_outputs(op, 5, positions, r.values).ok
        assert len(r.samples_ms) == 3 and all(s > 0 for s in r.samples_ms)


def test_versions_and_covariates_name_what_ran(driver):
    v = driver.versions()
    assert v["appium"] == "3.8.0" and v["browser"].startswith("chrome 156")
    assert v["chromedriver"].startswith("156") and v["harness"]
    cov = driver.covariates()
    assert cov["chrome_version"].startswith("156") and "SwiftShader" in cov["gpu_renderer"]
    caps = driver.capabilities
    assert caps["appium:chromedriverPort"] > 0 and caps["appium:automationName"] == "Chromium"


def test_a_runaway_kernel_times_out_and_the_batch_goes_on_in_a_new_session(driver):
    from tests.integration.test_harness_chromium import SPINS, naive_kernel

    op = MatMul(M=33, N=17, K=9)
    positions = check_positions(op)
    measure = MeasureSpec(warmup=0, samples=2, min_sample_ms=1.0, max_reps=8, timeout_ms=1500)
    batch = make_batch(op, [("spin", SPINS), ("after", naive_kernel(op))], seed=11, measure=measure,
                       check_positions=positions)
    port = driver.capabilities["appium:chromedriverPort"]
    spin, after = driver.run_batch(batch)
    assert not spin.ok and spin.error_class == "timeout"
    assert after.ok and check_outputs(op, 11, positions, after.values).ok
    assert driver.capabilities["appium:chromedriverPort"] != port  # a new session, on its own port
    assert driver.probe()["webgpu"]


def test_a_local_appium_server_is_started_on_loopback_and_stopped_by_pid():
    spec, appium = device(None)
    drv = AppiumDriver(appium, spec.browser)
    drv.open()
    try:
        pid = drv.appium_server.pid
        assert pid and alive(pid) and drv.appium_server.url.startswith("http://127.0.0.1:")
        chromedriver = session_chromedriver(pid, drv.capabilities["appium:chromedriverPort"])
        browsers = child_pids(chromedriver)
        assert drv.probe()["webgpu"]
    finally:
        drv.close()
    assert not alive(pid) and not alive(chromedriver)
    deadline = time.monotonic() + 10
    while any(alive(b) for b in browsers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(b) for b in browsers), "closing the session ends its browser"
    assert drv.appium_server.pid is None
    drv.close()  # idempotent


def test_a_wrong_server_url_is_an_infra_error_naming_the_fix():
    spec, appium = device("http://127.0.0.1:9")
    with pytest.raises(DriverError) as err:
        AppiumDriver(appium, spec.browser).open()
    assert err.value.error_class == "infra" and "appium.server_url" in err.value.message


def test_a_refused_session_is_an_infra_error_with_appiums_reason(appium_server):
    spec, appium = device(appium_server.url)
    appium = dataclasses.replace(appium, chromedriver_executable="/nonexistent/chromedriver")
    drv = AppiumDriver(appium, spec.browser)
    with pytest.raises(DriverError) as err:
        drv.open()
    assert err.value.error_class == "infra" and "/nonexistent/chromedriver" in err.value.message
    drv.close()


def _job_runner(drv: AppiumDriver, exp, job: JobSpec, records: dict):
    probe = drv.probe()
    ctx = DeviceContext.from_probe(job.device_id, probe, None)

    def emit(table, rows):
        records.setdefault(table, []).extend(rows)

    return JobRunner(drv, ctx, exp, "test-run", emit, lambda info: records.setdefault("progress", []).append(info))


EXPERIMENT = """\
name: appium-kill
devices: [local-appium-chromium]
seed: 2
ops:
  - {kind: matmul, M: 48, N: 48, K: 48, label: square}
tuner: {budget_s: 60, max_evals: 12, batch_size: 2, cache: "off"}
measure: {warmup: 1, samples: 3, min_sample_ms: 20, max_reps: 64}
compare: {rounds: 1, samples: 2}
baselines: []
"""


def test_killing_chromedriver_mid_job_is_a_device_failure_and_a_reopened_driver_reruns_the_job(appium_server, tmp_path):
    (tmp_path / "experiments").mkdir()
    (tmp_path / "device_configs").mkdir()
    spec_text = DEVICE_YAML.read_text().replace("  # server_url: http://127.0.0.1:4723",
                                                f"  server_url: {appium_server.url}")
    (tmp_path / "device_configs" / DEVICE_YAML.name).write_text(spec_text)
    exp_path = tmp_path / "experiments" / "kill.yaml"
    exp_path.write_text(EXPERIMENT)
    exp = load_experiment(exp_path)
    spec = exp.devices[0]
    assert spec.appium.server_url == appium_server.url
    job = exp.jobs()[0]
    drv = AppiumDriver(spec.appium, spec.browser)
    drv.open()
    records: dict = {}
    outcome: dict = {}
    try:
        runner = _job_runner(drv, exp, job, records)
        chromedriver = session_chromedriver(appium_server.pid, drv.capabilities["appium:chromedriverPort"])
        browsers = child_pids(chromedriver)  # orphaned by the kill: ended below, by PID
        assert browsers

        def run():
            try:
                outcome["summary"] = runner.run(job)
            except DriverError as exc:
                outcome["error"] = exc

        worker = threading.Thread(target=run)
        worker.start()
        deadline = time.monotonic() + 60
        while not records.get("trials") and worker.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert records.get("trials"), "the first batch of the job finished"
        os.kill(chromedriver, signal.SIGKILL)
        worker.join(120)
        assert not worker.is_alive()
    finally:
        drv.close()
        for pid in browsers:
            if alive(pid):
                os.kill(pid, signal.SIGTERM)
    err = outcome.get("error")
    assert isinstance(err, DriverError), outcome
    assert err.error_class == "device" and "Appium session lost" in err.message
    assert 0 < len(records["trials"]) < 12

    # The farm's answer to a device failure: reopen the driver, run the job again.
    again: dict = {}
    drv = AppiumDriver(spec.appium, spec.browser)
    drv.open()
    try:
        summary = _job_runner(drv, exp, job, again).run(job, attempt=2)
    finally:
        drv.close()
    assert summary["status"] == "ok" and summary["attempt"] == 2 and summary["trials"] == len(again["trials"])
    assert sum(r["phase"] == "search" for r in again["trials"]) == 12
    assert {r["ok"] and r["check_ok"] for r in again["trials"]} == {True}


def test_a_session_on_an_attached_phone_runs_the_harness():
    """Chrome on a real phone through UiAutomator2; skips, saying what is missing, without one."""
    from farm.drivers.android_options import AndroidOptions
    from farm.drivers.appium_server import installed_drivers
    from tests.appium_support import attached_phones

    ready = attached_phones()
    if "uiautomator2" not in installed_drivers():
        pytest.skip("Appium's UiAutomator2 driver is not installed: `bash scripts/setup.sh --android`")
    chromedrivers = os.environ.get("JITFARM_CHROMEDRIVER_DIR")
    if not chromedrivers:
        pytest.skip("set JITFARM_CHROMEDRIVER_DIR to a folder with a chromedriver matching the phone's Chrome")
    spec = load_device(Path(__file__).resolve().parents[2] / "device_configs" / "pixel-5-adreno.yaml")
    appium = dataclasses.replace(spec.appium, chromedriver_executable_dir=chromedrivers)
    drv = AppiumDriver(appium, spec.browser, AndroidOptions(serial=ready[0]))
    drv.open()
    try:
        assert drv.probe()["webgpu"]
        cov = drv.covariates()
        assert "battery_temp_c" in cov and "chrome_version" in cov
    finally:
        drv.close()
