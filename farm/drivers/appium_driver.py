"""AppiumDriver: the harness page in Chrome on an Android phone (or a desktop Chromium), driven
through a W3C session on an Appium server with ``execute_async_script``."""

from __future__ import annotations

import logging
import time
from importlib.metadata import PackageNotFoundError, version as package_version
from typing import Any

from farm.drivers.adb import Adb, AndroidDeviceState
from farm.drivers.android_options import AndroidOptions, AppiumOptions
from farm.drivers.appium_server import AppiumServer, AppiumServerOptions, free_port
from farm.drivers.base import BrowserOptions, DriverError
from farm.drivers.harness_page import (ASYNC_SCRIPT, GPU_RENDERER_FUNCTION, LOAD_ERROR_FUNCTION, READY_FUNCTION, VERSION_FUNCTION,
                                       WEDGED_FUNCTION, HarnessPageDriver, decode_async_answer, page_url)
from farm.harness.server import HarnessServer

log = logging.getLogger(__name__)

# Chromium flags for the desktop platform; Chrome on a phone takes its flags from the device.
DESKTOP_ARGS = ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync")

# Seconds WebDriver waits for an async script beyond the page's own call timeout.
SCRIPT_TIMEOUT_MARGIN_S = 30.0


def session_capabilities(appium: AppiumOptions, browser: BrowserOptions, *, udid: str | None,
                         chromedriver_port: int) -> dict[str, Any]:
    """The W3C capabilities of one session: UiAutomator2 + Chrome for ``android``, the Chromium
    driver + a desktop Chromium for ``desktop``; ``appium.capabilities`` are applied last."""
    caps: dict[str, Any] = {
        "appium:chromedriverPort": chromedriver_port,
        "appium:newCommandTimeout": int(browser.call_timeout_s + 2 * SCRIPT_TIMEOUT_MARGIN_S),
    }
    if appium.platform == "android":
        caps.update({"platformName": "Android", "browserName": "Chrome",
                     "appium:automationName": "UiAutomator2"})
        if udid:
            caps["appium:udid"] = udid
        if appium.chromedriver_executable:
            caps["appium:chromedriverExecutable"] = appium.chromedriver_executable
        if appium.chromedriver_executable_dir:
            caps["appium:chromedriverExecutableDir"] = appium.chromedriver_executable_dir
        if browser.args:
            caps["goog:chromeOptions"] = {"args": list(browser.args)}
    else:
        chrome: dict[str, Any] = {"args": list(DESKTOP_ARGS) + [a for a in browser.args if a not in DESKTOP_ARGS]}
        if browser.executable_path:
            chrome["binary"] = browser.executable_path
        caps.update({"platformName": "linux", "browserName": "chrome", "appium:automationName": "Chromium",
                     "appium:autodownloadEnabled": False, "appium:disableBuildCheck": True,
                     "goog:chromeOptions": chrome})
        if appium.chromedriver_executable:
            caps["appium:executable"] = appium.chromedriver_executable
        if appium.chromedriver_executable_dir:
            caps["appium:executableDir"] = appium.chromedriver_executable_dir
    caps.update(appium.capabilities)
    return caps


class AppiumDriver(AndroidDeviceState, HarnessPageDriver):
    """A device that is Chrome on an Android phone (``appium.platform: android``), or a desktop
    Chromium (``desktop``), running the harness page, driven through one Appium W3C session.

    Contract (see :class:`DeviceDriver`): ``open()`` starts the harness server on the host's
    127.0.0.1 (on a phone made reachable with ``adb reverse``), waits for the device's cool-down
    rule, starts or reaches the Appium server, opens the session and loads the page; it raises
    DriverError('infra', ...) when the server, adb or the session cannot be had and
    DriverError('harness', ...) when the page does not load. Batches and baselines run through
    ``execute_async_script``. A lost session (browser or chromedriver gone, Appium gone, a call
    past its timeout) raises DriverError('device', ...) and every later call does the same until
    the driver is closed and reopened. ``close()`` ends the session, the local Appium server it
    started (by PID), the adb reverse and the harness server; it never raises.
    """

    kind = "appium"

    def __init__(self, appium: AppiumOptions, browser: BrowserOptions, android: AndroidOptions | None = None,
                 *, server: HarnessServer | None = None, adb: Adb | None = None):
        super().__init__()
        if appium.platform == "android" and android is None:
            android = AndroidOptions()
        self.appium, self.browser, self.android = appium, browser, android
        self.call_timeout_s = browser.call_timeout_s
        self._server = server
        self._owns_server = server is None
        self.adb = adb if adb is not None else (Adb(android) if android is not None and appium.platform == "android" else None)
        self.appium_server = AppiumServer(AppiumServerOptions(
            url=appium.server_url, start_timeout_s=appium.server_start_timeout_s,
            needs_driver="uiautomator2" if appium.platform == "android" else "chromium"))
        self._session: Any = None
        self._reversed_port: int | None = None
        self.capabilities: dict[str, Any] = {}
        self.session_capabilities: dict[str, Any] = {}
        self.last_cooldown: dict[str, Any] = {}

    # ----------------------------------------------------------------------------------- life cycle
    def open(self) -> None:
        if self._session is not None:
            return
        self._crashed = None
        self._closing = False
        try:
            if self._server is None:
                self._server = HarnessServer()
            self._server.start()
            if self.adb is not None:
                if self.android is not None and self.android.reverse:
                    self._reversed_port = self.adb.reverse(self._server.port)
                self._cool_down()
            self.appium_server.start()
            self._new_session()
            self._load_page()
        except DriverError:
            self.close()
            raise
        except Exception as e:  # noqa: BLE001 - anything else at start-up is infra
            self.close()
            raise DriverError("infra", f"could not open an Appium session: {e}") from e

    def _new_session(self) -> None:
        from appium import webdriver
        from appium.options.common import AppiumOptions as W3COptions
        from appium.webdriver.client_config import AppiumClientConfig

        udid = self.adb.serial if self.adb is not None else None
        port = self.appium.chromedriver_port or free_port()
        self.capabilities = session_capabilities(self.appium, self.browser, udid=udid, chromedriver_port=port)
        options = W3COptions()
        for name, value in self.capabilities.items():
            options.set_capability(name, value)
        # Every HTTP call to Appium is bounded: a hung server or phone becomes a device failure.
        http_timeout = max(self.appium.session_timeout_s, self.call_timeout_s + 2 * SCRIPT_TIMEOUT_MARGIN_S)
        config = AppiumClientConfig(self.appium_server.url, timeout=int(http_timeout))
        try:
            session = webdriver.Remote(self.appium_server.url, options=options, client_config=config)
        except Exception as e:  # noqa: BLE001
            tail = self.appium_server.log_tail() if self.appium_server.owned else ""
            log_tail = f" (Appium log: {tail})" if tail else ""
            raise DriverError("infra", f"Appium refused the session at {self.appium_server.url}: "
                                       f"{_first_line(e)}{log_tail}") from e
        self._session = session
        session.set_script_timeout(self.call_timeout_s + SCRIPT_TIMEOUT_MARGIN_S)
        session.set_page_load_timeout(self.browser.launch_timeout_s)
        self.session_capabilities = dict(session.capabilities or {})

    def _load_page(self) -> None:
        url = page_url(self._server.url, self.browser.feature_level)
        try:
            self._session.get(url)
            deadline = time.monotonic() + self.browser.launch_timeout_s
            while not self._session.execute_script(f"return ({READY_FUNCTION})();"):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"window.jitfarmReady not set within {self.browser.launch_timeout_s} s")
                time.sleep(0.1)
            load_error = self._session.execute_script(f"return ({LOAD_ERROR_FUNCTION})();")
        except Exception as e:  # noqa: BLE001
            raise DriverError("harness", f"harness page {url} did not load: {_first_line(e)}") from e
        if load_error:
            raise DriverError("harness", f"harness page {url} failed to load: {load_error}")

    def close(self) -> None:
        self._closing = True
        for step in (self._quit_session, self.appium_server.stop, self._undo_reverse, self._stop_server):
            try:
                step()
            except Exception as e:  # noqa: BLE001 - close never raises
                log.debug("close: %s", e)

    def _quit_session(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            session.quit()

    def _undo_reverse(self) -> None:
        port, self._reversed_port = self._reversed_port, None
        if port is not None and self.adb is not None:
            self.adb.remove_reverse(port)

    def _stop_server(self) -> None:
        if self._owns_server and self._server is not None:
            self._server.stop()

    # ---------------------------------------------------------------------------------- protocol
    def _is_open(self) -> bool:
        return self._session is not None

    def _evaluate_call(self, method: str, arg: Any, timeout_ms: int) -> Any:
        from selenium.common.exceptions import JavascriptException

        try:
            raw = self._session.execute_async_script(ASYNC_SCRIPT, method, arg, timeout_ms)
        except JavascriptException as e:
            raise DriverError("harness", f"harness call {method} failed: {_first_line(e)}") from e
        except Exception as e:  # noqa: BLE001 - session, browser, chromedriver or Appium gone
            self._mark_crashed(f"Appium session lost: {_first_line(e)}")
            raise DriverError("device", f"{self._crashed}; reopen the driver") from e
        return decode_async_answer(raw)

    def _page_wedged(self) -> bool:
        try:
            return bool(self._session.execute_script(f"return ({WEDGED_FUNCTION})();"))
        except Exception:  # noqa: BLE001 - a dead session is found by the next call
            return False

    def _restart(self, why: str) -> None:
        """A new session (keeps the Appium and harness servers): the cure for a stuck GPU process."""
        log.warning("%s: restarting the Appium session", why)
        self._closing = True
        try:
            self._quit_session()
        except Exception as e:  # noqa: BLE001
            log.debug("restart: %s", e)
        self._crashed = None
        self._closing = False
        try:
            self._new_session()
            self._load_page()
        except Exception as e:  # noqa: BLE001
            self._mark_crashed(f"session restart failed: {e}")
            raise DriverError("device", f"Appium session restart after a stuck GPU failed: {e}") from e

    # -------------------------------------------------------------------------------- device state
    def covariates(self) -> dict[str, Any]:
        out = self._adb_covariates()
        version = self.session_capabilities.get("browserVersion")
        if version:
            out.setdefault("chrome_version", version)
        if "gpu_renderer" not in out and self._session is not None and not self._crashed:
            try:
                out["gpu_renderer"] = self._session.execute_script(f"return ({GPU_RENDERER_FUNCTION})();")
            except Exception:  # noqa: BLE001 - a covariate we cannot read is left out
                pass
        return out

    def versions(self) -> dict[str, str]:
        out = {"appium-python-client": _dist_version("appium-python-client")}
        caps = self.session_capabilities
        if caps.get("browserName"):
            out["browser"] = f"{caps.get('browserName')} {caps.get('browserVersion', '?')}"
        driver_info = (caps.get("chrome") or {}).get("chromedriverVersion")
        if driver_info:
            out["chromedriver"] = str(driver_info).split(" ")[0]
        status = self.appium_server.build_version()
        if status:
            out["appium"] = status
        if self._session is not None and not self._crashed:
            try:
                out["harness"] = str(self._session.execute_script(f"return ({VERSION_FUNCTION})();"))
            except Exception:  # noqa: BLE001
                pass
        return out

    def evaluate(self, script: str, *args: Any) -> Any:
        """Run ``script`` (a WebDriver sync script body) in the harness page (tests, diagnostics)."""
        if self._session is None or self._crashed:
            raise DriverError("device", self._crashed or "driver is not open")
        try:
            return self._session.execute_script(script, *args)
        except Exception as e:  # noqa: BLE001
            raise DriverError("harness", f"evaluate failed: {_first_line(e)}") from e

    @property
    def label(self) -> str:
        return f"appium/{self.appium.platform}"


def _first_line(e: BaseException) -> str:
    text = (getattr(e, "msg", None) or str(e) or repr(e)).strip()
    return text.splitlines()[0] if text else repr(e)


def _dist_version(name: str) -> str:
    try:
        return package_version(name)
    except PackageNotFoundError:
        return "unknown"
