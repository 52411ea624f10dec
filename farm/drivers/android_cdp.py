"""AndroidCdpDriver: Chrome on an Android phone without Appium, through Chrome's DevTools socket.

``adb forward tcp:X localabstract:chrome_devtools_remote`` exposes the phone's Chrome on the
host's 127.0.0.1:X; Playwright attaches with ``chromium.connect_over_cdp`` and opens the harness
page in a new tab. The harness server stays on the host's loopback, reached from the phone
through ``adb reverse``. Everything after the connection is PlaywrightDriver's.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import urllib.request
from typing import Any

from farm.drivers.adb import Adb, AndroidDeviceState
from farm.drivers.android_options import AndroidOptions
from farm.drivers.appium_server import free_port
from farm.drivers.base import BrowserOptions, DriverError
from farm.drivers.harness_page import GPU_RENDERER_FUNCTION
from farm.drivers.playwright_driver import PlaywrightDriver
from farm.harness.server import HarnessServer

log = logging.getLogger(__name__)

CHROME_ACTIVITY = "com.google.android.apps.chrome.Main"


class AndroidCdpDriver(AndroidDeviceState, PlaywrightDriver):
    """A device that is a tab in an already installed Chrome, attached over CDP.

    Contract: as :class:`PlaywrightDriver`, except that ``open()`` attaches instead of launching:
    with ``android`` options it sets up ``adb reverse`` (harness port) and ``adb forward`` (the
    DevTools socket), starts Chrome on the phone if needed and waits for the cool-down rule;
    with ``endpoint_url`` it attaches to that DevTools endpoint (a desktop Chromium started with
    ``--remote-debugging-port``: the same path without a phone). ``close()`` closes only the tab
    it opened and removes the adb ports; the phone's Chrome keeps running.
    """

    kind = "android-cdp"

    def __init__(self, browser: BrowserOptions, android: AndroidOptions | None = None, *,
                 endpoint_url: str | None = None, server: HarnessServer | None = None, adb: Adb | None = None):
        if (android is None) == (endpoint_url is None):
            raise ValueError("give exactly one of android options or endpoint_url")
        super().__init__(dataclasses.replace(browser, executable_path=None, channel=None), server=server)
        self.android = android
        self.endpoint_url = endpoint_url
        self.adb = adb if adb is not None else (Adb(android) if android is not None else None)
        self._forwarded: int | None = None
        self._reversed: int | None = None
        self.last_cooldown: dict[str, Any] = {}

    def _start_browser(self) -> tuple[Any, Any]:
        endpoint = self.endpoint_url or self._android_endpoint()
        browser = self._pw.chromium.connect_over_cdp(endpoint, timeout=self.options.launch_timeout_s * 1000)
        context = browser.contexts[0] if browser.contexts else browser.new_context()
        return browser, context

    def _android_endpoint(self) -> str:
        assert self.adb is not None and self.android is not None
        if self.android.reverse and self._reversed is None:
            self._reversed = self.adb.reverse(self._server.port)
        self._cool_down()
        self.adb.shell(f"am start -n {self.android.chrome_package}/{CHROME_ACTIVITY} -d about:blank")
        if self._forwarded is None:
            self._forwarded = self.adb.forward(free_port(), self.android.devtools_socket)
        endpoint = f"http://127.0.0.1:{self._forwarded}"
        deadline = time.monotonic() + self.options.launch_timeout_s
        while not _devtools_answers(endpoint):
            if time.monotonic() > deadline:
                raise DriverError("infra", f"Chrome's DevTools socket did not answer at {endpoint}: enable USB "
                                           "debugging and open Chrome on the phone once")
            time.sleep(0.5)
        return endpoint

    def _close_browser(self) -> None:
        page, browser = self._page, self._browser
        self._browser, self._context, self._page = None, None, None
        try:
            if page is not None and not page.is_closed():
                page.close()
        finally:
            if browser is not None:
                browser.close()  # disconnects; the browser was not launched by us and keeps running

    def close(self) -> None:
        super().close()
        if self.adb is not None:
            if self._forwarded is not None:
                self.adb.remove_forward(self._forwarded)
                self._forwarded = None
            if self._reversed is not None:
                self.adb.remove_reverse(self._reversed)
                self._reversed = None

    def covariates(self) -> dict[str, Any]:
        out = self._adb_covariates()
        if self._browser is not None:
            try:
                out.setdefault("chrome_version", self._browser.version)
                if "gpu_renderer" not in out and self._page is not None:
                    out["gpu_renderer"] = self._page.evaluate(GPU_RENDERER_FUNCTION)
            except Exception:  # noqa: BLE001 - a covariate we cannot read is left out
                pass
        return out


def _devtools_answers(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/json/version", timeout=2) as resp:
            return bool(json.loads(resp.read().decode("utf-8")))
    except (OSError, ValueError):
        return False
