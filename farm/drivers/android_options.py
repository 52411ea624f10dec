"""Options of the Android drivers (Appium, and Playwright over adb-forwarded CDP), as read from a
device YAML's ``appium:`` and ``android:`` sections."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

APPIUM_PLATFORMS = ("android", "desktop")


@dataclass(frozen=True)
class CooldownRule:
    """Before the device is used (at open and before each job), wait while the battery is at or
    above ``max_battery_temp_c``, polling every ``poll_s``, for at most ``max_wait_s``; then go on
    and record that the device was still warm."""

    max_battery_temp_c: float
    max_wait_s: float = 300.0
    poll_s: float = 10.0


@dataclass(frozen=True)
class AndroidOptions:
    """A phone reached through adb. ``serial`` is its adb serial (``adb devices``); None means the
    only attached device. ``reverse`` makes the host's harness port reachable on the phone's
    127.0.0.1 (``adb reverse``) so the harness server never leaves the host's loopback."""

    serial: str | None = None
    adb_path: str = "adb"
    reverse: bool = True
    chrome_package: str = "com.android.chrome"
    devtools_socket: str = "chrome_devtools_remote"
    cooldown: CooldownRule | None = None
    adb_timeout_s: float = 30.0


@dataclass(frozen=True)
class AppiumOptions:
    """One W3C session on an Appium server.

    ``server_url``: a running server; None starts the local npm-installed one for this driver.
    ``platform``: ``android`` (UiAutomator2 + Chrome on the phone of the ``android:`` section) or
    ``desktop`` (the Chromium driver + a desktop Chromium: the same protocol path, used where no
    phone is attached). ``chromedriver_executable`` / ``chromedriver_executable_dir``: the
    chromedriver matching the browser (on Android it must match Chrome's major version).
    ``chromedriver_port``: None picks a free port per session, so parallel sessions never share
    one. ``capabilities``: extra W3C capabilities, applied last (they override the defaults).
    ``session_timeout_s``: the longest any HTTP call to Appium may take (creating a session on a
    phone installs UiAutomator2's server first); calls that run the harness get at least the
    browser's ``call_timeout_s`` plus a margin.
    """

    server_url: str | None = None
    platform: str = "android"
    chromedriver_executable: str | None = None
    chromedriver_executable_dir: str | None = None
    chromedriver_port: int | None = None
    capabilities: dict[str, Any] = field(default_factory=dict)
    session_timeout_s: float = 120.0
    server_start_timeout_s: float = 60.0
