"""Device drivers behind one protocol (``base.DeviceDriver``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import BrowserOptions, DeviceDriver, DriverError, NativeOptions

if TYPE_CHECKING:
    from farm.config.devices import DeviceSpec

__all__ = ["BrowserOptions", "DeviceDriver", "DriverError", "NativeOptions", "make_driver"]


def make_driver(device: "DeviceSpec") -> DeviceDriver:
    """The driver for a validated device spec (imported lazily: each pulls in heavy libraries)."""
    if device.driver == "playwright":
        from .playwright_driver import PlaywrightDriver

        assert device.browser is not None
        return PlaywrightDriver(device.browser)
    if device.driver == "cdp":
        from .cdp_driver import CdpDriver

        assert device.browser is not None
        return CdpDriver(device.browser)
    if device.driver == "native":
        from .native import NativeDriver

        assert device.native is not None
        return NativeDriver(device.native)
    if device.driver == "appium":
        from .appium_driver import AppiumDriver

        assert device.appium is not None and device.browser is not None
        return AppiumDriver(device.appium, device.browser, device.android)
    if device.driver == "android-cdp":
        from .android_cdp import AndroidCdpDriver

        assert device.browser is not None and device.android is not None
        return AndroidCdpDriver(device.browser, device.android)
    raise ValueError(f"unknown driver {device.driver!r}")
