"""Shared fixtures: one native WebGPU device on lavapipe for the whole test session, and a
headless Chromium harness page per test module."""

from __future__ import annotations

import glob
import os

import pytest

from farm.drivers.base import DriverError, NativeOptions


def lavapipe_options(adapter_match: str = "llvmpipe") -> NativeOptions:
    """Native options that select Mesa's lavapipe (CPU Vulkan) through its ICD file."""
    icds = sorted(glob.glob("/usr/share/vulkan/icd.d/lvp_icd*.json"))
    env = (("VK_ICD_FILENAMES", icds[0]),) if icds else ()
    return NativeOptions(adapter_match=adapter_match, backend="vulkan", env=env)


@pytest.fixture(scope="session")
def lavapipe_driver():
    """A NativeDriver on lavapipe, opened once per session; skips when there is no llvmpipe adapter.
    The environment the driver sets is restored right after opening: wgpu reads it only when it
    first looks for adapters, and browsers started by later tests must not inherit it."""
    from farm.drivers.native import NativeDriver

    options = lavapipe_options()
    saved = {k: os.environ.get(k) for k, _ in options.env}
    drv = NativeDriver(options)
    try:
        try:
            drv.open()
        except DriverError as e:
            pytest.skip(f"no llvmpipe Vulkan adapter (install mesa-vulkan-drivers): {e.message}")
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        yield drv
    finally:
        drv.close()


@pytest.fixture(scope="session")
def lavapipe_caps(lavapipe_driver):
    """DeviceCaps of the session's lavapipe device, from its probe."""
    from jit_core.caps import DeviceCaps

    return DeviceCaps.from_probe(lavapipe_driver.probe())


CHROMIUM_FLAGS = ("--enable-unsafe-webgpu", "--enable-webgpu-developer-features", "--enable-features=SharedArrayBuffer")


@pytest.fixture(scope="module")
def swiftshader_page():
    """A PlaywrightDriver on headless Chromium (WebGPU on SwiftShader) and its loopback harness
    server, opened once per test module; skips when the README's setup has not installed Chromium."""
    from pathlib import Path

    from farm.drivers.base import BrowserOptions
    from farm.drivers.playwright_driver import PlaywrightDriver
    from farm.harness.server import HarnessServer

    chromium = BrowserOptions().executable_path
    if not (chromium and Path(chromium).is_file()):
        pytest.skip(f"no Chromium at {chromium}: run the README's setup command")
    with HarnessServer() as server:
        drv = PlaywrightDriver(BrowserOptions(args=CHROMIUM_FLAGS, call_timeout_s=180), server=server)
        drv.open()
        try:
            yield drv
        finally:
            drv.close()
