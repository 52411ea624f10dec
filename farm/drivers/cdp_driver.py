"""CdpDriver: the harness page in a Chromium driven over its debugging pipe (standard library only).

The same protocol as PlaywrightDriver, for machines where Playwright cannot be installed: a GPU
server that reaches no package registry gets Debian's Chromium as a carried bundle
(bench/gpu/prepare_chromium.sh) and runs the tuner in it with nothing but Python's standard library.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from farm.drivers.base import BrowserOptions, DriverError
from farm.drivers.cdp_pipe import CdpError, CdpLaunch, CdpPipe
from farm.drivers.harness_page import (CALL_FUNCTION, LOAD_ERROR_FUNCTION, READY_FUNCTION, VERSION_FUNCTION,
                                       WEDGED_FUNCTION, HarnessPageDriver, page_url)
from farm.harness.server import HarnessServer

log = logging.getLogger(__name__)

# Headless, and off the (closed) network: PLATFORM.md.
BASE_ARGS = ("--headless=new", "--no-sandbox", "--no-first-run", "--disable-quic", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage")


class CdpDriver(HarnessPageDriver):
    """A Chromium page running the harness, driven over ``--remote-debugging-pipe``.

    Contract (see :class:`DeviceDriver` and :class:`HarnessPageDriver`): ``open()`` starts the
    browser (``browser.executable_path`` must be set: there is no channel lookup) and loads the page,
    raising DriverError('infra', ...) when the browser does not start and DriverError('harness', ...)
    when the page does not load; a browser that died later makes every call a DriverError('device', ...).
    ``browser.headless: false`` is not supported (GPU servers have no display).
    """

    kind = "cdp"

    def __init__(self, options: BrowserOptions, *, server: HarnessServer | None = None):
        if options.browser != "chromium":
            raise ValueError(f"the cdp driver drives Chromium only, not {options.browser!r}")
        if not options.executable_path:
            raise ValueError("the cdp driver needs browser.executable_path")
        super().__init__()
        self.options = options
        self.call_timeout_s = options.call_timeout_s
        self._server = server
        self._owns_server = server is None
        self._browser: CdpPipe | None = None
        self._session: str | None = None
        self._profile: tempfile.TemporaryDirectory | None = None

    # ----------------------------------------------------------------------------------- life cycle
    def open(self) -> None:
        if self._session is not None:
            return
        self._crashed, self._closing = None, False
        if not Path(self.options.executable_path or "").is_file():
            raise DriverError("infra", f"Chromium not found at {self.options.executable_path}: set "
                                       "browser.executable_path in the device YAML")
        try:
            self._launch()
        except DriverError:
            self.close()
            raise
        except Exception as e:  # noqa: BLE001 - anything at start-up is infra
            self.close()
            raise DriverError("infra", f"could not start Chromium: {e}") from e

    def _launch(self) -> None:
        opts = self.options
        if self._server is None:
            self._server = HarnessServer()
        self._server.start()
        self._profile = tempfile.TemporaryDirectory(prefix="jitfarm-cdp-")
        args = list(BASE_ARGS) + [a for a in opts.args if a not in BASE_ARGS]
        launch = CdpLaunch(executable=opts.executable_path or "", args=tuple(args), env=opts.env,
                           user_data_dir=self._profile.name, command_timeout_s=opts.launch_timeout_s)
        try:
            self._browser = CdpPipe(launch)
            self._browser.version()
        except CdpError as e:
            raise DriverError("infra", f"Chromium did not start: {e}") from e
        url = page_url(self._server.url, opts.feature_level)
        try:
            self._session = self._browser.open_page(url, timeout_s=opts.launch_timeout_s)
            deadline = time.monotonic() + opts.launch_timeout_s
            while not self._eval(f"({READY_FUNCTION})()"):
                if time.monotonic() > deadline:
                    raise DriverError("harness", f"harness page {url} not ready in {opts.launch_timeout_s:.0f} s")
                time.sleep(0.05)
            load_error = self._eval(f"({LOAD_ERROR_FUNCTION})()")
        except CdpError as e:
            raise DriverError("harness", f"harness page {url} did not load: {e}") from e
        if load_error:
            raise DriverError("harness", f"harness page failed to load: {load_error}")

    def _eval(self, expression: str, timeout_s: float | None = None) -> Any:
        assert self._browser is not None and self._session is not None
        return self._browser.evaluate(self._session, expression, timeout_s=timeout_s)

    def close(self) -> None:
        self._closing = True
        if self._browser is not None:
            self._browser.close()
        self._browser, self._session = None, None
        if self._profile is not None:
            self._profile.cleanup()
            self._profile = None
        if self._owns_server and self._server is not None:
            self._server.stop()
            self._server = None

    # ---------------------------------------------------------------------------------- protocol
    def _is_open(self) -> bool:
        return self._session is not None

    def _page_wedged(self) -> bool:
        try:
            return bool(self._eval(f"({WEDGED_FUNCTION})()", timeout_s=30))
        except Exception:  # noqa: BLE001 - a dead page is found by the next call
            return False

    def _restart(self, why: str) -> None:
        log.warning("%s: restarting Chromium", why)
        self._closing = True
        if self._browser is not None:
            self._browser.close()
        self._browser, self._session = None, None
        self._crashed, self._closing = None, False
        try:
            self._launch()
        except Exception as e:  # noqa: BLE001
            self._mark_crashed(f"browser restart failed: {e}")
            raise DriverError("device", f"Chromium restart after a stuck GPU failed: {e}") from e

    def _evaluate_call(self, method: str, arg: Any, timeout_ms: int) -> Any:
        expression = f"({CALL_FUNCTION})({json.dumps([method, arg, timeout_ms])})"
        try:
            # The page answers a timeout itself after timeout_ms; the pipe waits a little longer.
            return self._eval(expression, timeout_s=timeout_ms / 1000 + 30)
        except CdpError as e:
            msg = str(e)
            if self._browser is None or self._browser.proc.poll() is not None or "browser" in msg:
                self._mark_crashed(self._crashed or "browser exited")
                raise DriverError("device", f"{self._crashed}: {msg}") from e
            raise DriverError("harness", f"harness call failed: {msg}") from e

    def versions(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self._browser is not None:
            try:
                out["browser"] = str(self._browser.version().get("product"))
                out["harness"] = str(self._eval(f"({VERSION_FUNCTION})()", timeout_s=30))
            except Exception:  # noqa: BLE001
                pass
        return out

    @property
    def label(self) -> str:
        return f"chromium (cdp, pid {self._browser.proc.pid if self._browser else '-'})"

