"""Shared fixtures: one native WebGPU device on lavapipe for the whole test session."""

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
