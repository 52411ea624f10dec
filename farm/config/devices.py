"""Device configs: one YAML per device under ``device_configs/``."""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from farm.drivers.android_options import AndroidOptions, AppiumOptions
from farm.drivers.base import BrowserOptions, NativeOptions

from . import android

from .errors import ConfigError
from .reader import Reader, load_yaml

DRIVERS = ("playwright", "cdp", "native", "appium", "android-cdp")
BROWSERS = ("chromium", "firefox", "webkit")
FEATURE_LEVELS = ("core", "compatibility")


@dataclass(frozen=True)
class DeviceSpec:
    """A validated device config. ``browser`` is set for browser drivers, ``native`` for the
    native driver, ``appium`` for the Appium driver, ``android`` for a phone reached through adb
    (appium on Android, android-cdp); ``caps_overrides`` replace vendor-table facts."""

    id: str
    name: str
    driver: str
    file: str
    tags: dict[str, str] = field(default_factory=dict)
    browser: BrowserOptions | None = None
    native: NativeOptions | None = None
    caps_overrides: dict[str, Any] = field(default_factory=dict)
    appium: AppiumOptions | None = None
    android: AndroidOptions | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return d


def _browser_options(r: Reader, file: str) -> BrowserOptions:
    b = r.sub("browser", required=True)
    name = b.get("name", str, "chromium", choices=BROWSERS)
    channel = b.get("channel", str, None)
    exe = b.get("executable_path", str, None)
    if name == "chromium" and exe is None and channel is None:
        exe = BrowserOptions().executable_path
    if exe is not None and not Path(exe).exists():
        found = shutil.which("chromium") if name == "chromium" else None
        hint = f" (a {name} was found at {found})" if found else ""
        raise ConfigError(file, "browser.executable_path", f"no browser at {exe}{hint}",
                          "run the README's setup command (it installs Debian's chromium), "
                          "or point browser.executable_path at an installed browser")
    opts = BrowserOptions(
        browser=name,
        executable_path=exe,
        channel=channel,
        args=tuple(b.str_list("args", [])),
        env=tuple(sorted(b.str_map("env").items())),
        headless=b.get("headless", bool, True),
        feature_level=b.get("feature_level", str, "core", choices=FEATURE_LEVELS),
        launch_timeout_s=b.positive("launch_timeout_s", float, 60.0),
        call_timeout_s=b.positive("call_timeout_s", float, 600.0),
    )
    b.finish()
    return opts


def _native_options(r: Reader) -> NativeOptions:
    n = r.sub("native", required=True)
    opts = NativeOptions(
        power_preference=n.get("power_preference", str, "high-performance",
                               choices=("high-performance", "low-power")),
        adapter_match=n.get("adapter_match", str, None),
        backend=n.get("backend", str, None),
        env=tuple(sorted(n.str_map("env").items())),
    )
    n.finish()
    return opts


def load_device(path: Path) -> DeviceSpec:
    """Load and validate one device YAML; raises ConfigError naming the key and the fix."""
    file = str(path)
    r = Reader(load_yaml(path), file)
    dev_id = r.get("id", str)
    if not dev_id or any(c.isspace() for c in dev_id):
        raise r.error("id", f"invalid id {dev_id!r}", "use a single word like 'pixel-7'")
    driver = r.get("driver", str, choices=DRIVERS)
    if driver in ("appium", "android-cdp"):
        return _android_device(r, dev_id, driver, file)
    spec = DeviceSpec(
        id=dev_id,
        name=r.get("name", str, dev_id),
        driver=driver,
        file=file,
        tags=r.str_map("tags"),
        browser=_browser_options(r, file) if driver in ("playwright", "cdp") else None,
        native=_native_options(r) if driver == "native" else None,
        caps_overrides=dict(r.get("caps_overrides", dict, {})),
    )
    if driver in ("playwright", "cdp"):
        r.seen.add("native")
    r.finish()
    return spec


def _android_device(r: Reader, dev_id: str, driver: str, file: str) -> DeviceSpec:
    appium = android.appium_options(r) if driver == "appium" else None
    desktop = appium is not None and appium.platform == "desktop"
    spec = DeviceSpec(
        id=dev_id, name=r.get("name", str, dev_id), driver=driver, file=file, tags=r.str_map("tags"),
        browser=android.page_browser_options(r, file, desktop=desktop),
        appium=appium,
        android=android.android_options(r, required=driver == "android-cdp" or not desktop),
        caps_overrides=dict(r.get("caps_overrides", dict, {})),
    )
    r.finish()
    return spec


def device_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.yaml") if not p.name.startswith("_"))


def find_device(directory: Path, device_id: str, *, where: str, key: str) -> DeviceSpec:
    """The device with ``device_id`` in ``directory``. Only that device's file is validated, so a
    half-filled template elsewhere in the folder cannot block a run."""
    ids: dict[str, Path] = {}
    for path in device_files(directory):
        try:
            raw = load_yaml(path)
        except ConfigError:
            if path.stem == device_id:
                raise
            continue
        ids[str(raw.get("id", path.stem))] = path
    if device_id not in ids:
        known = ", ".join(sorted(ids)) or "none"
        raise ConfigError(where, key, f"unknown device id {device_id!r} (known in {directory}: {known})",
                          f"use one of the known ids, or add {directory}/{device_id}.yaml")
    return load_device(ids[device_id])


def list_devices(directory: Path) -> list[tuple[Path, DeviceSpec | ConfigError]]:
    out: list[tuple[Path, DeviceSpec | ConfigError]] = []
    for path in device_files(directory):
        try:
            out.append((path, load_device(path)))
        except ConfigError as exc:
            out.append((path, exc))
    return out
