"""adb for the Android drivers: port reverse/forward set-up and tear-down, device covariates
(battery, thermal status, Chrome version, GPU renderer) and the cool-down wait.

Every adb call goes through one ``runner`` (a subprocess by default), so the parsing and the
command sequence are unit-tested against a recorded transcript without a phone.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from typing import Any, Callable

from farm.drivers.android_options import AndroidOptions, CooldownRule
from farm.drivers.base import DriverError

log = logging.getLogger(__name__)

THERMAL_STATUS = ("none", "light", "moderate", "severe", "critical", "emergency", "shutdown")


@dataclass(frozen=True)
class AdbResult:
    returncode: int
    stdout: str
    stderr: str = ""


# argv (without the adb executable) and a timeout in seconds -> the result
AdbRunner = Callable[[list[str], float], AdbResult]


def subprocess_runner(adb_path: str) -> AdbRunner:
    """The runner that calls the real adb executable."""

    def run(argv: list[str], timeout_s: float) -> AdbResult:
        exe = shutil.which(adb_path)
        if exe is None:
            raise DriverError("infra", f"adb not found ({adb_path!r}): install it (`bash scripts/setup.sh --android` "
                                       "installs Debian's adb) or set android.adb_path in the device YAML")
        try:
            out = subprocess.run([exe, *argv], capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired as e:
            raise DriverError("device", f"adb {' '.join(argv)} did not answer within {timeout_s} s") from e
        return AdbResult(out.returncode, out.stdout, out.stderr)

    return run


def parse_devices(text: str) -> list[tuple[str, str]]:
    """(serial, state) pairs of ``adb devices`` output."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("List of devices", "*")):
            continue
        parts = line.split()
        if len(parts) >= 2:
            out.append((parts[0], parts[1]))
    return out


def parse_battery(text: str) -> dict[str, Any]:
    """Level (%) and temperature (deg C) from ``dumpsys battery`` (it prints tenths of a degree)."""
    out: dict[str, Any] = {}
    if m := re.search(r"^\s*level:\s*(\d+)", text, re.M):
        out["battery_level"] = int(m.group(1))
    if m := re.search(r"^\s*temperature:\s*(-?\d+)", text, re.M):
        out["battery_temp_c"] = int(m.group(1)) / 10.0
    if m := re.search(r"^\s*status:\s*(\d+)", text, re.M):
        out["battery_status"] = {"2": "charging", "3": "discharging", "4": "not-charging",
                                 "5": "full"}.get(m.group(1), "unknown")
    return out


def parse_thermal_status(text: str) -> str | None:
    """The thermal status name from ``dumpsys thermalservice`` ('Thermal Status: 2' -> 'moderate')."""
    m = re.search(r"Thermal Status:\s*(\d+)", text)
    if not m:
        return None
    n = int(m.group(1))
    return THERMAL_STATUS[n] if 0 <= n < len(THERMAL_STATUS) else str(n)


def parse_package_version(text: str) -> str | None:
    """The first ``versionName=`` of ``dumpsys package <pkg>``."""
    m = re.search(r"versionName=(\S+)", text)
    return m.group(1) if m else None


def parse_gles(text: str) -> str | None:
    """The GLES line of ``dumpsys SurfaceFlinger``: vendor, renderer and driver version."""
    m = re.search(r"^GLES:\s*(.+)$", text, re.M)
    return m.group(1).strip() if m else None


class Adb:
    """adb bound to one device.

    Contract: ``serial`` resolves the device at the first call (the configured serial must be
    attached and in state ``device``; with none configured exactly one device must be), else
    DriverError('infra', ...) saying what to do. ``reverse``/``forward`` return the port they set
    up and are undone by ``remove_reverse``/``remove_forward`` (which never raise).
    ``covariates()`` never raises: what it cannot read is left out.
    """

    def __init__(self, options: AndroidOptions, *, runner: AdbRunner | None = None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic):
        self.options = options
        self._runner = runner or subprocess_runner(options.adb_path)
        self._serial: str | None = None
        self._sleep, self._clock = sleep, clock

    def _run(self, argv: list[str]) -> AdbResult:
        return self._runner(argv, self.options.adb_timeout_s)

    def devices(self) -> list[tuple[str, str]]:
        res = self._run(["devices"])
        if res.returncode != 0:
            raise DriverError("infra", f"`adb devices` failed: {res.stderr.strip() or res.stdout.strip()}")
        return parse_devices(res.stdout)

    @property
    def serial(self) -> str:
        if self._serial is None:
            self._serial = self._resolve_serial()
        return self._serial

    def _resolve_serial(self) -> str:
        devices = self.devices()
        ready = [s for s, state in devices if state == "device"]
        want = self.options.serial
        if want is not None:
            state = dict(devices).get(want)
            if state == "device":
                return want
            if state is None:
                raise DriverError("infra", f"no Android device {want!r} attached (adb sees: "
                                           f"{', '.join(s for s, _ in devices) or 'none'}): plug it in with USB "
                                           "debugging on, or fix android.serial in the device YAML")
            raise DriverError("infra", f"Android device {want!r} is {state!r}: accept the USB debugging prompt "
                                       "on the phone (unauthorized) or reconnect it (offline)")
        if len(ready) == 1:
            return ready[0]
        if not ready:
            raise DriverError("infra", "no Android device attached (`adb devices` lists none ready): plug one in "
                                       "with USB debugging on")
        raise DriverError("infra", f"{len(ready)} Android devices attached ({', '.join(ready)}): "
                                   "set android.serial in the device YAML")

    def shell(self, command: str) -> str:
        res = self._run(["-s", self.serial, "shell", command])
        if res.returncode != 0:
            raise DriverError("device", f"adb shell {command!r} failed: {res.stderr.strip() or res.stdout.strip()}")
        return res.stdout

    # ---------------------------------------------------------------------------------- ports
    def reverse(self, port: int) -> int:
        """Make the host's 127.0.0.1:port reachable as 127.0.0.1:port on the phone."""
        res = self._run(["-s", self.serial, "reverse", f"tcp:{port}", f"tcp:{port}"])
        if res.returncode != 0:
            raise DriverError("infra", f"adb reverse tcp:{port} failed: {res.stderr.strip() or res.stdout.strip()}")
        return port

    def remove_reverse(self, port: int) -> None:
        self._quietly(["-s", self.serial, "reverse", "--remove", f"tcp:{port}"])

    def forward(self, local_port: int, socket_name: str) -> int:
        """Make the phone's abstract socket (Chrome's DevTools) reachable at host 127.0.0.1:local_port."""
        res = self._run(["-s", self.serial, "forward", f"tcp:{local_port}", f"localabstract:{socket_name}"])
        if res.returncode != 0:
            raise DriverError("infra", f"adb forward to {socket_name} failed: {res.stderr.strip() or res.stdout.strip()}")
        return local_port

    def remove_forward(self, local_port: int) -> None:
        self._quietly(["-s", self.serial, "forward", "--remove", f"tcp:{local_port}"])

    def _quietly(self, argv: list[str]) -> None:
        try:
            res = self._run(argv)
            if res.returncode != 0:
                log.debug("adb %s: %s", " ".join(argv), res.stderr.strip())
        except Exception as e:  # noqa: BLE001 - tear-down never raises
            log.debug("adb %s: %s", " ".join(argv), e)

    # ----------------------------------------------------------------------------- covariates
    def covariates(self) -> dict[str, Any]:
        """Battery level/temperature, thermal status, Chrome version, GPU renderer, model."""
        out: dict[str, Any] = {"serial": self._serial or self.options.serial}
        readers: list[tuple[str, Callable[[str], Any]]] = [
            ("dumpsys battery", parse_battery),
            ("dumpsys thermalservice", lambda t: {"thermal_status": parse_thermal_status(t)}),
            (f"dumpsys package {self.options.chrome_package}", lambda t: {"chrome_version": parse_package_version(t)}),
            ("dumpsys SurfaceFlinger", lambda t: {"gpu_renderer": parse_gles(t)}),
            ("getprop ro.product.model", lambda t: {"model": t.strip() or None}),
            ("getprop ro.build.version.release", lambda t: {"android_release": t.strip() or None}),
        ]
        for command, parse in readers:
            try:
                out.update({k: v for k, v in parse(self.shell(command)).items() if v is not None})
            except Exception as e:  # noqa: BLE001 - a covariate we cannot read is left out
                log.debug("covariate %r: %s", command, e)
        return out

    def battery_temp_c(self) -> float | None:
        try:
            return parse_battery(self.shell("dumpsys battery")).get("battery_temp_c")
        except DriverError:
            return None

    def wait_cool(self, rule: CooldownRule) -> dict[str, Any]:
        """Wait (bounded by rule.max_wait_s) until the battery is under the threshold.
        Returns {cooldown_wait_s, battery_temp_c, cooled} for the record."""
        t0 = self._clock()
        temp = self.battery_temp_c()
        while temp is not None and temp >= rule.max_battery_temp_c:
            waited = self._clock() - t0
            if waited >= rule.max_wait_s:
                log.warning("battery still %.1f C (limit %.1f C) after %.0f s: going on",
                            temp, rule.max_battery_temp_c, waited)
                return {"cooldown_wait_s": waited, "battery_temp_c": temp, "cooled": False}
            self._sleep(min(rule.poll_s, rule.max_wait_s - waited))
            temp = self.battery_temp_c()
        return {"cooldown_wait_s": self._clock() - t0, "battery_temp_c": temp, "cooled": temp is not None}


class AndroidDeviceState:
    """Mixin of the drivers of an Android phone (Appium, android-cdp): before each job, wait for the
    device YAML's cool-down rule, then report the phone's state. The driver sets ``adb`` (None
    without a phone), ``android`` (its AndroidOptions or None) and ``last_cooldown`` ({}), and
    builds ``covariates()`` on ``_adb_covariates()``."""

    adb: Adb | None
    android: AndroidOptions | None
    last_cooldown: dict[str, Any]

    def _cool_down(self) -> None:
        rule = self.android.cooldown if self.android is not None else None
        if self.adb is not None and rule is not None:
            self.last_cooldown = self.adb.wait_cool(rule)

    def _adb_covariates(self) -> dict[str, Any]:
        out: dict[str, Any] = self.adb.covariates() if self.adb is not None else {}
        out.update(self.last_cooldown)
        return out

    def before_job(self) -> dict[str, Any]:
        self._cool_down()
        return self.covariates()  # type: ignore[attr-defined] - the driver's
