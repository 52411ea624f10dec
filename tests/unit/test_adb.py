"""adb: port set-up/tear-down, covariates and the cool-down wait, against a recorded transcript
replayed by an in-process stand-in (no phone here); one test uses a real adb and a real phone
and skips, saying why, when there is none."""

from __future__ import annotations

from pathlib import Path

import pytest

from farm.drivers.adb import Adb, AdbResult, parse_battery, parse_devices, parse_thermal_status
from farm.drivers.android_options import AndroidOptions, CooldownRule
from farm.drivers.base import DriverError

TRANSCRIPT = Path(__file__).resolve().parent / "data" / "adb_transcript_pixel5.txt"
SERIAL = "0A171FDD4000GK"


def load_transcript(path: Path) -> dict[tuple[str, ...], str]:
    """{argv after 'adb': output} of a transcript file ('$ adb ...' lines start a block)."""
    blocks: dict[tuple[str, ...], str] = {}
    argv: tuple[str, ...] | None = None
    lines: list[str] = []
    for line in path.read_text().splitlines():
        if line.startswith("#") and argv is None:
            continue
        if line.startswith("$ adb "):
            if argv is not None:
                blocks[argv] = "\n".join(lines).rstrip("\n") + "\n"
            rest = line[len("$ adb "):]
            if " shell " in f" {rest} ":
                head, command = rest.split(" shell ", 1)
                argv = (*head.split(), "shell", command)
            else:
                argv = tuple(rest.split())
            lines = []
        else:
            lines.append(line)
    if argv is not None:
        blocks[argv] = "\n".join(lines).rstrip("\n") + "\n"
    return blocks


class RecordedAdbStandIn:
    """An in-process stand-in for the adb executable: answers each command with the transcript's
    output for it (unknown commands fail as adb does), and records the calls it got."""

    def __init__(self, blocks: dict[tuple[str, ...], str], overrides: dict[tuple[str, ...], list[str]] | None = None):
        self.blocks = blocks
        self.overrides = {k: list(v) for k, v in (overrides or {}).items()}
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, argv: list[str], timeout_s: float) -> AdbResult:
        key = tuple(argv)
        self.calls.append(key)
        if key in self.overrides and self.overrides[key]:
            queue = self.overrides[key]
            return AdbResult(0, queue.pop(0) if len(queue) > 1 else queue[0])
        if key in self.blocks:
            return AdbResult(0, self.blocks[key])
        return AdbResult(1, "", f"error: unknown command {' '.join(argv)}")


@pytest.fixture
def transcript():
    return load_transcript(TRANSCRIPT)


def test_covariates_are_read_from_dumpsys_and_getprop(transcript):
    adb = Adb(AndroidOptions(), runner=RecordedAdbStandIn(transcript))
    cov = adb.covariates()
    assert adb.serial == SERIAL
    assert cov["battery_level"] == 78 and cov["battery_temp_c"] == pytest.approx(31.2)
    assert cov["battery_status"] == "charging"
    assert cov["thermal_status"] == "light"
    assert cov["chrome_version"] == "131.0.6778.135"  # the installed update, not the system image's
    assert cov["gpu_renderer"].startswith("Qualcomm, Adreno (TM) 620, OpenGL ES 3.2")
    assert cov["model"] == "Pixel 5" and cov["android_release"] == "14"


def test_reverse_and_forward_are_set_up_and_removed_on_the_resolved_device(transcript):
    stand_in = RecordedAdbStandIn(transcript)
    adb = Adb(AndroidOptions(), runner=stand_in)
    assert adb.reverse(41234) == 41234
    assert adb.forward(9333, "chrome_devtools_remote") == 9333
    adb.remove_reverse(41234)
    adb.remove_forward(9333)
    assert stand_in.calls == [
        ("devices",),
        ("-s", SERIAL, "reverse", "tcp:41234", "tcp:41234"),
        ("-s", SERIAL, "forward", "tcp:9333", "localabstract:chrome_devtools_remote"),
        ("-s", SERIAL, "reverse", "--remove", "tcp:41234"),
        ("-s", SERIAL, "forward", "--remove", "tcp:9333"),
    ]


def test_a_failing_reverse_is_an_infra_error_and_teardown_never_raises(transcript):
    adb = Adb(AndroidOptions(), runner=RecordedAdbStandIn(transcript))
    with pytest.raises(DriverError) as err:
        adb.reverse(5555)  # not in the transcript: adb fails
    assert err.value.error_class == "infra" and "adb reverse tcp:5555" in err.value.message
    adb.remove_reverse(5555)
    adb.remove_forward(5555)


@pytest.mark.parametrize("devices, serial, words", [
    ("List of devices attached\n\n", None, "no Android device attached"),
    ("List of devices attached\nAAA\tdevice\nBBB\tdevice\n", None, "set android.serial"),
    ("List of devices attached\nAAA\tunauthorized\n", "AAA", "accept the USB debugging prompt"),
    ("List of devices attached\nAAA\tdevice\n", "ZZZ", "no Android device 'ZZZ' attached (adb sees: AAA)"),
])
def test_device_resolution_errors_say_what_to_do(devices, serial, words):
    stand_in = RecordedAdbStandIn({("devices",): devices})
    adb = Adb(AndroidOptions(serial=serial), runner=stand_in)
    with pytest.raises(DriverError) as err:
        adb.serial
    assert err.value.error_class == "infra" and words in err.value.message


def _battery_at(temps_tenths: list[int]) -> list[str]:
    return [f"Current Battery Service state:\n  level: 80\n  temperature: {t}\n" for t in temps_tenths]


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def sleep(self, s: float) -> None:
        self.now += s

    def __call__(self) -> float:
        return self.now


def test_cooldown_waits_until_the_battery_is_under_the_threshold(transcript):
    clock = FakeClock()
    key = ("-s", SERIAL, "shell", "dumpsys battery")
    stand_in = RecordedAdbStandIn(transcript, {key: _battery_at([381, 365, 349])})
    adb = Adb(AndroidOptions(), runner=stand_in, sleep=clock.sleep, clock=clock)
    out = adb.wait_cool(CooldownRule(max_battery_temp_c=35.0, max_wait_s=120, poll_s=10))
    assert out == {"cooldown_wait_s": 20.0, "battery_temp_c": pytest.approx(34.9), "cooled": True}


def test_cooldown_is_bounded_and_says_the_device_stayed_warm(transcript):
    clock = FakeClock()
    key = ("-s", SERIAL, "shell", "dumpsys battery")
    stand_in = RecordedAdbStandIn(transcript, {key: _battery_at([420])})
    adb = Adb(AndroidOptions(), runner=stand_in, sleep=clock.sleep, clock=clock)
    out = adb.wait_cool(CooldownRule(max_battery_temp_c=35.0, max_wait_s=25, poll_s=10))
    assert out["cooled"] is False and out["cooldown_wait_s"] == 25.0 and out["battery_temp_c"] == 42.0


def test_parsers_tolerate_missing_fields():
    assert parse_battery("nothing here") == {}
    assert parse_thermal_status("no status") is None
    assert parse_thermal_status("Thermal Status: 9") == "9"
    assert parse_devices("List of devices attached\n* daemon started successfully\n") == []


@pytest.mark.appium
def test_real_adb_reads_covariates_of_an_attached_phone():
    from tests.appium_support import attached_phones

    ready = attached_phones()
    cov = Adb(AndroidOptions(serial=ready[0])).covariates()
    assert "battery_level" in cov and "chrome_version" in cov
