"""PlaywrightDriver: one headless browser page running the harness, driven with Playwright's sync API."""

from __future__ import annotations

import logging
import os
import threading
import time
from importlib.metadata import PackageNotFoundError, version as package_version
from pathlib import Path
from typing import Any

from farm.drivers.base import BrowserOptions, DriverError
from farm.drivers.harness_page import (CALL_FUNCTION, LOAD_ERROR_FUNCTION, READY_FUNCTION, VERSION_FUNCTION,
                                       WEDGED_FUNCTION, HarnessPageDriver, page_url)
from farm.harness.server import HarnessServer
from farm.procs import cmdline

log = logging.getLogger(__name__)

BROWSERS = ("chromium", "firefox", "webkit")

# Flags that keep Chromium off the (closed) network; see PLATFORM.md.
QUIET_CHROMIUM_ARGS = (
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)

# Playwright 1.65's own `--enable-features=` default. Chromium keeps only the last
# `--enable-features=`, so the driver removes this one (ignore_default_args matches it exactly) and
# merges its features into the single flag it passes. If a future Playwright changes the list, its
# flag no longer matches and is simply overridden by ours (which comes last): our features still
# apply, and `command_line_problems()` reports the duplicate.
# The same holds for `--disable-features=`: merged the same way, but only when the device's flags
# have one (Playwright's list is then kept inside ours).
PLAYWRIGHT_ENABLE_FEATURES = ("CDPScreenshotNewSurface", "SkipListAccountsWithoutGaiaCookies")
PLAYWRIGHT_DISABLE_FEATURES = (
    "AvoidUnnecessaryBeforeUnloadCheckSync", "DestroyProfileOnBrowserClose", "HttpsUpgrades",
    "HttpsFirstBalancedModeAutoEnable", "LensOverlay", "MediaRouter", "PaintHolding",
    "ThirdPartyStoragePartitioning", "AvoidCorsURLLoaderRestartOnRedirect", "TcpPortRandomizationWin",
    "OptimizationHints", "NetworkTimeServiceQuerying", "AimEnabled", "PreconnectToSearch",
    "msForceBrowserSignIn", "msEdgeUpdateLaunchServicesPreferredVersion",
)
ENABLE_FEATURES = "--enable-features="
DISABLE_FEATURES = "--disable-features="


def merge_feature_flags(args: list[str] | tuple[str, ...], prefix: str = ENABLE_FEATURES,
                        defaults: tuple[str, ...] = ()) -> list[str]:
    """Return ``args`` with every ``prefix`` flag (``--enable-features=`` by default) folded into
    one flag at the end: ``defaults`` first, then features in order of first appearance, no
    duplicates. Without any feature at all, no flag is added."""
    features: list[str] = list(defaults)
    rest: list[str] = []
    for arg in args:
        if arg.startswith(prefix):
            features.extend(f.strip() for f in arg[len(prefix):].split(",") if f.strip())
        else:
            rest.append(arg)
    merged = list(dict.fromkeys(features))
    return rest + ([prefix + ",".join(merged)] if merged else [])


def chromium_launch_args(options: BrowserOptions) -> tuple[list[str], list[str]]:
    """(args, ignore_default_args) for a Chromium launch: the device's flags, the quiet flags, one
    merged ``--enable-features=`` that includes Playwright's defaults, and, when the device has
    one, one merged ``--disable-features=`` that includes Playwright's."""
    args = list(options.args) + [a for a in QUIET_CHROMIUM_ARGS if a not in options.args]
    ignore = [ENABLE_FEATURES + ",".join(PLAYWRIGHT_ENABLE_FEATURES)]
    args = merge_feature_flags(args, ENABLE_FEATURES, PLAYWRIGHT_ENABLE_FEATURES)
    if any(a.startswith(DISABLE_FEATURES) for a in args):
        args = merge_feature_flags(args, DISABLE_FEATURES, PLAYWRIGHT_DISABLE_FEATURES)
        ignore.append(DISABLE_FEATURES + ",".join(PLAYWRIGHT_DISABLE_FEATURES))
    return args, ignore


def command_line_problems(argv: list[str]) -> list[str]:
    """Problems with a browser's real command line (its process's argv, or chrome://version)."""
    problems = []
    for prefix in (ENABLE_FEATURES, DISABLE_FEATURES):
        n = sum(1 for a in argv if a.startswith(prefix))
        if n > 1:
            problems.append(f"{n} {prefix} flags: Chromium keeps only the last one")
    return problems


class PlaywrightDriver(HarnessPageDriver):
    """A device that is a browser page (headless Chromium here; Firefox/WebKit where installed)
    running the harness page served by a :class:`HarnessServer` on 127.0.0.1.

    Contract (see :class:`DeviceDriver`): ``open()`` launches the browser and loads
    ``index.html?featureLevel=...``, raising ``DriverError('infra', ...)`` when the browser cannot
    start and ``DriverError('harness', ...)`` when the page does not load; every call after that
    raises ``DriverError('device', ...)`` if the page crashed or the browser closed. Kernel failures
    are never exceptions. Uses Playwright's sync API: call it from one thread (a Ray actor with
    max_concurrency=1 is fine). Owns (and stops) its own server unless one is passed in.
    """

    kind = "playwright"

    def __init__(self, options: BrowserOptions, *, server: HarnessServer | None = None):
        if options.browser not in BROWSERS:
            raise ValueError(f"browser must be one of {BROWSERS}, got {options.browser!r}")
        if options.feature_level not in ("core", "compatibility"):
            raise ValueError(f"feature_level must be 'core' or 'compatibility', got {options.feature_level!r}")
        super().__init__()
        self.options = options
        self.call_timeout_s = options.call_timeout_s
        self._server = server
        self._owns_server = server is None
        self._pw: Any = None
        self._browser: Any = None
        self._context: Any = None
        self._page: Any = None
        self.console_errors: list[str] = []
        self.command_line: list[str] | None = None
        self._phases: dict[str, float] = {}

    # ----------------------------------------------------------------------------------- life cycle
    def open(self) -> None:
        if self._page is not None:
            return
        opts = self.options
        self._crashed = None
        self._closing = False
        if opts.executable_path and not Path(opts.executable_path).is_file():
            raise DriverError(
                "infra",
                f"{opts.browser.capitalize()} not found at {opts.executable_path}: run the README's setup command "
                "(installs Debian's chromium) or set browser.executable_path in the device YAML",
            )
        self._phases = {}
        try:
            self._launch()
            t0 = time.perf_counter()
            self._load_page()
            self._phases["page_s"] = time.perf_counter() - t0
        except DriverError:
            self.close()
            raise
        except Exception as e:  # noqa: BLE001 - anything from Playwright at start-up is infra
            self.close()
            raise DriverError("infra", f"could not start {opts.browser}: {e}") from e

    def _launch(self) -> None:
        opts = self.options
        if self._server is None:
            self._server = HarnessServer()
        self._server.start()
        t0 = time.perf_counter()
        self._pw = _acquire_playwright()
        t1 = time.perf_counter()
        self._browser, self._context = self._start_browser()
        self._browser.on("disconnected", lambda *_: self._mark_crashed("browser disconnected"))
        self._page = self._context.new_page()
        self._phases.update(playwright_s=t1 - t0, browser_s=time.perf_counter() - t1)
        self._page.set_default_timeout(opts.call_timeout_s * 1000)
        self._page.on("crash", lambda *_: self._mark_crashed("page crashed"))
        self._page.on("console", self._on_console)
        self._page.on("pageerror", lambda err: self._log_page_error(f"uncaught: {err}"))

    def _start_browser(self) -> tuple[Any, Any]:
        """(browser, context) the harness page opens in: here a freshly launched browser."""
        opts = self.options
        launch: dict[str, Any] = {
            "headless": opts.headless,
            "timeout": opts.launch_timeout_s * 1000,
            "env": {**os.environ, **dict(opts.env)},
        }
        if opts.executable_path:
            launch["executable_path"] = opts.executable_path
        if opts.channel:
            launch["channel"] = opts.channel
        if opts.browser == "chromium":
            launch["args"], launch["ignore_default_args"] = chromium_launch_args(opts)
        else:
            launch["args"] = list(opts.args)
        browser = getattr(self._pw, opts.browser).launch(**launch)
        self._browser, self._context = browser, browser.new_context()
        if opts.browser == "chromium":
            self._check_command_line()
        return browser, self._context

    def _check_command_line(self) -> None:
        """Record the browser's real command line and warn about flags that Chromium would silently
        drop. From the browser process itself where it can (10 ms), else from chrome://version
        (a page load: 0.5-0.7 s on 2 cores)."""
        self.command_line = self._process_command_line()
        page = None
        try:
            if self.command_line is None:
                page = self._context.new_page()
                page.goto("chrome://version", timeout=self.options.launch_timeout_s * 1000)
                self.command_line = page.inner_text("#command_line", timeout=5000).split()
        except Exception as e:  # noqa: BLE001 - informative only
            log.debug("could not read the browser command line: %s", e)
        finally:
            if page is not None:
                try:
                    page.close()
                except Exception:  # noqa: BLE001
                    pass
        for problem in command_line_problems(self.command_line or []):
            log.warning("browser command line: %s", problem)

    def _process_command_line(self) -> list[str] | None:
        """The browser process's argv, read from /proc (Linux; a launched browser runs on this
        machine) with its PID from CDP's ``SystemInfo.getProcessInfo``; None where either is missing."""
        try:
            session = self._browser.new_browser_cdp_session()
            try:
                info = session.send("SystemInfo.getProcessInfo")
            finally:
                session.detach()
            pids = [p["id"] for p in info.get("processInfo", []) if p.get("type") == "browser"]
        except Exception as e:  # noqa: BLE001 - the page-based fallback follows
            log.debug("browser process command line: %s", e)
            return None
        return (cmdline(pids[0]) if len(pids) == 1 else []) or None

    def _load_page(self) -> None:
        url = page_url(self._server.url, self.options.feature_level)
        page = self._page
        try:
            page.goto(url, wait_until="load", timeout=self.options.launch_timeout_s * 1000)
            page.wait_for_function(READY_FUNCTION, timeout=self.options.launch_timeout_s * 1000)
            load_error = page.evaluate(LOAD_ERROR_FUNCTION)
        except Exception as e:  # noqa: BLE001
            raise DriverError("harness", f"harness page {url} did not load: {e}") from e
        if load_error:
            raise DriverError("harness", f"harness page {url} failed to load: {load_error}")

    def open_phases(self) -> dict[str, float]:
        """Starting Playwright's driver (shared by the drivers of one thread: ~0 after the first),
        launching the browser with a new page, loading the harness page until it is ready."""
        return dict(self._phases)

    def close(self) -> None:
        self._closing = True
        for step in (self._close_browser, self._stop_playwright, self._stop_server):
            try:
                step()
            except Exception as e:  # noqa: BLE001 - close never raises
                log.debug("close: %s", e)

    def _close_browser(self) -> None:
        browser, self._browser, self._context, self._page = self._browser, None, None, None
        if browser is not None:
            browser.close()

    def _stop_playwright(self) -> None:
        pw, self._pw = self._pw, None
        if pw is not None:
            _release_playwright(pw)

    def _stop_server(self) -> None:
        if self._owns_server and self._server is not None:
            self._server.stop()

    # ---------------------------------------------------------------------------------- protocol
    def _is_open(self) -> bool:
        return self._page is not None

    def _page_wedged(self) -> bool:
        try:
            return bool(self._page.evaluate(WEDGED_FUNCTION))
        except Exception:  # noqa: BLE001 - a dead page is found by the next call
            return False

    def _restart(self, why: str) -> None:
        """Replace the browser (keeps the server): the only cure for a stuck GPU process."""
        log.warning("%s: restarting %s", why, self.options.browser)
        self._closing = True
        for step in (self._close_browser, self._stop_playwright):
            try:
                step()
            except Exception as e:  # noqa: BLE001
                log.debug("restart: %s", e)
        self._crashed = None
        self._closing = False
        try:
            self._launch()
            self._load_page()
        except Exception as e:  # noqa: BLE001
            self._mark_crashed(f"browser restart failed: {e}")
            raise DriverError("device", f"{self.options.browser} restart after a stuck GPU failed: {e}") from e

    def evaluate(self, expression: str, arg: Any = None) -> Any:
        """Evaluate a JS function expression in the harness page (tests and diagnostics)."""
        if self._page is None or self._crashed:
            raise DriverError("device", self._crashed or "driver is not open")
        try:
            return self._page.evaluate(expression, arg)
        except Exception as e:  # noqa: BLE001
            raise DriverError("harness", f"evaluate failed: {e}") from e

    def versions(self) -> dict[str, str]:
        out = {"playwright": _playwright_version()}
        if self._browser is not None:
            try:
                out["browser"] = f"{self.options.browser} {self._browser.version}"
            except Exception:  # noqa: BLE001
                pass
        if self._page is not None:
            try:
                out["harness"] = str(self._page.evaluate(VERSION_FUNCTION))
            except Exception:  # noqa: BLE001
                pass
        return out

    @property
    def page(self) -> Any:
        """The Playwright page (None before open / after close)."""
        return self._page

    # ---------------------------------------------------------------------------------- internals
    def _evaluate_call(self, method: str, arg: Any, timeout_ms: int) -> Any:
        try:
            return self._page.evaluate(CALL_FUNCTION, [method, arg, timeout_ms])
        except Exception as e:  # noqa: BLE001
            msg = str(e)
            if self._crashed or _looks_dead(msg) or self._page is None or self._page.is_closed():
                self._mark_crashed(self._crashed or "page or browser closed")
                raise DriverError("device", f"{self._crashed}: {msg.splitlines()[0] if msg else e!r}") from e
            raise DriverError("harness", f"harness call failed: {msg}") from e

    @property
    def label(self) -> str:
        return self.options.browser

    def _on_console(self, msg: Any) -> None:
        try:
            if msg.type == "error":
                self._log_page_error(msg.text)
        except Exception:  # noqa: BLE001 - a logging hook must never break the driver
            pass

    def _log_page_error(self, text: str) -> None:
        self.console_errors.append(text)
        del self.console_errors[:-100]
        log.warning("page console: %s", text)


# Playwright's sync API allows one running instance per thread: drivers in the same thread share it.
_shared = threading.local()


def node_compile_cache() -> Path | None:
    """Where Playwright's driver, a Node.js program, keeps the code it compiled, so that its next
    start skips compiling it again (Node's compile cache; bench/farm.py --open times the start with
    and without it): ``$NODE_COMPILE_CACHE`` if set, else ``<$XDG_CACHE_HOME or ~/.cache>/jitfarm/
    node-compile-cache``. None where Node's own switch ``NODE_DISABLE_COMPILE_CACHE`` is set."""
    if os.environ.get("NODE_DISABLE_COMPILE_CACHE"):
        return None
    if os.environ.get("NODE_COMPILE_CACHE"):
        return Path(os.environ["NODE_COMPILE_CACHE"])
    home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(home) / "jitfarm" / "node-compile-cache"


def _use_node_compile_cache() -> None:
    """Point Node.js at node_compile_cache() for the programs this process starts (Playwright's
    driver reads this process's environment). Nothing changes where the folder cannot be made."""
    cache = node_compile_cache()
    if cache is None or os.environ.get("NODE_COMPILE_CACHE"):
        return
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        log.debug("no Node.js compile cache at %s: %s", cache, e)
        return
    os.environ["NODE_COMPILE_CACHE"] = str(cache)


def _acquire_playwright() -> Any:
    from playwright.sync_api import sync_playwright

    if getattr(_shared, "users", 0) == 0:
        _use_node_compile_cache()
        _shared.pw = sync_playwright().start()
        _shared.users = 0
    _shared.users += 1
    return _shared.pw


def _release_playwright(pw: Any) -> None:
    if getattr(_shared, "pw", None) is not pw:
        return
    _shared.users -= 1
    if _shared.users == 0:
        _shared.pw = None
        pw.stop()


def _looks_dead(message: str) -> bool:
    m = message.lower()
    return any(s in m for s in ("target crashed", "target page, context or browser has been closed",
                                "browser has been closed", "page closed", "connection closed"))


def _playwright_version() -> str:
    try:
        return package_version("playwright")
    except PackageNotFoundError:
        return "unknown"
