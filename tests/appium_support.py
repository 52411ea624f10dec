"""What the Appium tests share: a test-owned Appium server and the processes it starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from farm.drivers.appium_server import APPIUM_MAIN, AppiumServer, AppiumServerOptions, installed_drivers
from farm.procs import child_pids, cmdline

CHROMEDRIVER = "/usr/bin/chromedriver"


def session_chromedriver(server_pid: int, port: int | None = None) -> int:
    """The chromedriver the Appium server started (for the session on ``port`` when given)."""
    pids = [p for p in child_pids(server_pid, "chromedriver")
            if port is None or f"--port={port}" in cmdline(p)]
    assert len(pids) == 1, f"one chromedriver (port {port}) under Appium {server_pid}: {pids}"
    return pids[0]


def require_appium() -> None:
    """Skip, saying what to run, unless Appium, its Chromium driver and chromedriver are installed."""
    if not APPIUM_MAIN.is_file() or "chromium" not in installed_drivers():
        pytest.skip("Appium or its Chromium driver is not installed: run `bash scripts/setup.sh`")
    if not Path(CHROMEDRIVER).is_file():
        pytest.skip("no chromedriver: run `bash scripts/setup.sh` (installs Debian's chromium-driver)")


@pytest.fixture(scope="module")
def appium_server():
    """A real Appium server from farm/appium/ on 127.0.0.1, owned (and stopped) by the test module."""
    require_appium()
    server = AppiumServer(AppiumServerOptions(needs_driver="chromium"))
    server.start()
    yield server
    server.stop()


def attached_phones() -> list[str]:
    """Serials `adb devices` lists as ready. The adb server daemon that the call starts is killed
    again when no phone is attached, so a test run without phones leaves no process behind."""
    import shutil
    import socket
    import subprocess

    from farm.drivers.adb import Adb
    from farm.drivers.android_options import AndroidOptions

    if shutil.which("adb") is None:
        pytest.skip("adb is not installed: `bash scripts/setup.sh --android` installs it")
    with socket.socket() as s:
        daemon_was_up = s.connect_ex(("127.0.0.1", 5037)) == 0
    ready = [s for s, state in Adb(AndroidOptions()).devices() if state == "device"]
    if not ready and not daemon_was_up:
        subprocess.run(["adb", "kill-server"], capture_output=True, timeout=30)
    if not ready:
        pytest.skip("no Android device attached (`adb devices` lists none ready): plug a phone in with USB debugging on")
    return ready
