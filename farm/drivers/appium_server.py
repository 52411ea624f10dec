"""The Appium server an AppiumDriver talks to: one already running at a URL, or a local one.

The local one is the npm-installed Appium of ``farm/appium/`` (package.json + lockfile, installed
by scripts/setup.sh) with ``APPIUM_HOME=farm/appium/home`` (its drivers, also installed by setup).
It listens on 127.0.0.1 only and is stopped by its PID.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from farm.drivers.base import DriverError

log = logging.getLogger(__name__)

APPIUM_DIR = Path(__file__).resolve().parent.parent / "appium"
APPIUM_HOME = APPIUM_DIR / "home"
APPIUM_MAIN = APPIUM_DIR / "node_modules" / "appium" / "index.js"
SETUP_HINT = "run `bash scripts/setup.sh` (add --android for phones) to install Appium and its drivers"


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_status(url: str, timeout_s: float = 3.0) -> dict | None:
    """The JSON of ``GET {url}/status`` when an Appium server answers there, else None."""
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/status", timeout=timeout_s) as resp:
            return json.loads(resp.read().decode("utf-8"))
    except (urllib.error.URLError, OSError, ValueError):
        return None


def installed_drivers(appium_home: Path = APPIUM_HOME) -> dict[str, str]:
    """{automation name: version} of the Appium drivers installed under ``appium_home``."""
    pkg = appium_home / "package.json"
    if not pkg.is_file():
        return {}
    manifest = json.loads(pkg.read_text())
    out: dict[str, str] = {}
    for name in {**manifest.get("dependencies", {}), **manifest.get("devDependencies", {})}:
        meta = appium_home / "node_modules" / name / "package.json"
        if meta.is_file():
            info = json.loads(meta.read_text())
            ext = info.get("appium") or {}
            if "driverName" in ext:
                out[str(ext.get("automationName") or ext["driverName"]).lower()] = str(info.get("version"))
    return out


@dataclass(frozen=True)
class AppiumServerOptions:
    """``url``: a running server to use (never started or stopped here); None starts a local one.
    ``needs_driver``: the automation name the sessions need (checked before a local start)."""

    url: str | None = None
    needs_driver: str | None = None
    start_timeout_s: float = 60.0
    log_level: str = "warn"


class AppiumServer:
    """One Appium server for one driver.

    Contract: ``start()`` returns the server URL once ``/status`` answers; it raises
    DriverError('infra', ...) naming the fix when a given URL does not answer, or when the local
    server is not installed, does not start, or lacks the needed driver. ``stop()`` ends only a
    server this object started (SIGTERM to its PID, SIGKILL after 10 s); it is idempotent and never
    raises. ``pid`` is the local server's PID while it runs.
    """

    def __init__(self, options: AppiumServerOptions = AppiumServerOptions()):
        self.options = options
        self._proc: subprocess.Popen | None = None
        self._url: str | None = None
        self._log_file: Path | None = None

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("AppiumServer is not started")
        return self._url

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def owned(self) -> bool:
        return self._proc is not None

    def start(self) -> str:
        if self._url is not None:
            return self._url
        if self.options.url:
            url = self.options.url.rstrip("/")
            if server_status(url) is None:
                raise DriverError("infra", f"no Appium server answers at {url}/status: start it there, "
                                           "or remove appium.server_url from the device YAML to start a local one")
            self._url = url
            return url
        return self._start_local()

    def _start_local(self) -> str:
        node = shutil.which("node")
        if node is None or not APPIUM_MAIN.is_file():
            raise DriverError("infra", f"Appium is not installed in {APPIUM_DIR.name}/: {SETUP_HINT}")
        need = self.options.needs_driver
        if need and need.lower() not in installed_drivers():
            raise DriverError("infra", f"the Appium driver {need!r} is not installed in APPIUM_HOME: {SETUP_HINT}")
        port = free_port()
        fd, log_name = tempfile.mkstemp(prefix="jitfarm-appium-", suffix=".log")
        os.close(fd)
        self._log_file = Path(log_name)
        env = {**os.environ, "APPIUM_HOME": str(APPIUM_HOME)}
        cmd = [node, str(APPIUM_MAIN), "server", "--address", "127.0.0.1", "--port", str(port),
               "--log-level", self.options.log_level, "--log-no-colors", "--log", str(self._log_file)]
        with open(os.devnull, "wb") as devnull:
            self._proc = subprocess.Popen(cmd, env=env, stdout=devnull, stderr=devnull, stdin=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + self.options.start_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                tail = self.log_tail()
                self.stop()
                raise DriverError("infra", f"the local Appium server exited at start (code {self._proc_code}): "
                                           f"{tail or 'no log'}")
            if server_status(url, timeout_s=1.0) is not None:
                self._url = url
                log.info("local Appium server at %s (pid %s)", url, self.pid)
                return url
            time.sleep(0.2)
        tail = self.log_tail()
        self.stop()
        raise DriverError("infra", f"the local Appium server did not answer within "
                                   f"{self.options.start_timeout_s} s: {tail or 'no log'}")

    _proc_code: int | None = None

    def build_version(self) -> str | None:
        """The server's Appium version from ``/status`` (None when it does not answer)."""
        if self._url is None:
            return None
        status = server_status(self._url, timeout_s=2.0) or {}
        return ((status.get("value") or {}).get("build") or {}).get("version")

    def log_tail(self, lines: int = 5) -> str:
        """The last warnings/errors of the local server's log ('' when there are none)."""
        if self._log_file is None or not self._log_file.is_file():
            return ""
        text = self._log_file.read_text(errors="replace").strip().splitlines()
        return " | ".join(text[-lines:])

    def stop(self) -> None:
        proc, self._proc, self._url = self._proc, None, None
        try:
            if proc is not None:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        proc.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait(timeout=10)
                self._proc_code = proc.returncode
            if self._log_file is not None:
                self._log_file.unlink(missing_ok=True)
                self._log_file = None
        except Exception as e:  # noqa: BLE001 - stop never raises
            log.debug("stopping Appium: %s", e)

    def __enter__(self) -> "AppiumServer":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
