"""The ``appium:``, ``android:`` and (page-only) ``browser:`` sections of Android device YAMLs."""

from __future__ import annotations

from pathlib import Path

from farm.drivers.android_options import APPIUM_PLATFORMS, AndroidOptions, AppiumOptions, CooldownRule
from farm.drivers.base import BrowserOptions

from .reader import Reader

FEATURE_LEVELS = ("core", "compatibility")


def appium_options(r: Reader) -> AppiumOptions:
    a = r.sub("appium", required=True)
    url = a.get("server_url", str, None)
    if url is not None and not url.startswith(("http://", "https://")):
        raise a.error("server_url", f"not an http URL: {url!r}",
                      "write it like http://127.0.0.1:4723, or remove it to start a local Appium server")
    exe = a.get("chromedriver_executable", str, None)
    exe_dir = a.get("chromedriver_executable_dir", str, None)
    platform = a.get("platform", str, "android", choices=APPIUM_PLATFORMS)
    if platform == "desktop" and exe is None and exe_dir is None:
        raise a.error("chromedriver_executable", "required for platform: desktop",
                      "point it at a chromedriver matching the browser (Debian: /usr/bin/chromedriver)")
    port = a.get("chromedriver_port", int, None)
    if port is not None and not 0 < port < 65536:
        raise a.error("chromedriver_port", f"not a TCP port: {port}", "use 1-65535, or remove it for a free port")
    opts = AppiumOptions(
        server_url=url,
        platform=platform,
        chromedriver_executable=exe,
        chromedriver_executable_dir=exe_dir,
        chromedriver_port=port,
        capabilities=dict(a.get("capabilities", dict, {})),
        session_timeout_s=a.positive("session_timeout_s", float, 120.0),
        server_start_timeout_s=a.positive("server_start_timeout_s", float, 60.0),
    )
    a.finish()
    return opts


def android_options(r: Reader, *, required: bool) -> AndroidOptions | None:
    if not required and r.data.get("android") is None:
        r.seen.add("android")
        return None
    a = r.sub("android", required=required)
    cooldown = None
    if a.data.get("cooldown") is not None:
        c = a.sub("cooldown")
        cooldown = CooldownRule(
            max_battery_temp_c=c.get("max_battery_temp_c", float,
                                     fix="add 'max_battery_temp_c:' (e.g. 35) or remove 'cooldown:'"),
            max_wait_s=c.positive("max_wait_s", float, 300.0),
            poll_s=c.positive("poll_s", float, 10.0),
        )
        c.finish()
    else:
        a.seen.add("cooldown")
    serial = a.get("serial", (str, int), None)
    opts = AndroidOptions(
        serial=str(serial) if serial is not None else None,
        adb_path=a.get("adb_path", str, "adb"),
        reverse=a.get("reverse", bool, True),
        chrome_package=a.get("chrome_package", str, "com.android.chrome"),
        devtools_socket=a.get("devtools_socket", str, "chrome_devtools_remote"),
        cooldown=cooldown,
        adb_timeout_s=a.positive("adb_timeout_s", float, 30.0),
    )
    a.finish()
    return opts


def page_browser_options(r: Reader, file: str, *, desktop: bool) -> BrowserOptions:
    """The ``browser:`` section of an Appium or CDP device: only what a page driver that does not
    launch the browser itself can use (``executable_path`` only for the desktop platform)."""
    b = r.sub("browser")
    exe = b.get("executable_path", str, None) if desktop else None
    if exe is not None and not Path(exe).exists():
        raise b.error("executable_path", f"no browser at {exe}",
                      "run the README's setup command (it installs Debian's chromium), or fix the path")
    opts = BrowserOptions(
        browser="chromium",
        executable_path=exe,
        args=tuple(b.str_list("args", [])),
        feature_level=b.get("feature_level", str, "core", choices=FEATURE_LEVELS),
        launch_timeout_s=b.positive("launch_timeout_s", float, 60.0),
        call_timeout_s=b.positive("call_timeout_s", float, 600.0),
    )
    b.finish()
    return opts
