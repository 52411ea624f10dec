"""Android device YAMLs (appium, android-cdp), the Appium session capabilities built from them,
and the JSON answers of execute_async_script."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from farm.config.devices import load_device
from farm.config.errors import ConfigError
from farm.drivers.appium_driver import session_capabilities
from farm.drivers.base import BrowserOptions, DriverError
from farm.drivers.harness_page import ASYNC_SCRIPT, CALL_FUNCTION, decode_async_answer

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "device_configs"


def test_phone_templates_and_the_local_appium_device_are_valid():
    pixel = load_device(CONFIGS / "pixel-5-adreno.yaml")
    assert pixel.driver == "appium" and pixel.appium.platform == "android"
    assert pixel.android.cooldown.max_battery_temp_c == 35 and pixel.android.reverse
    galaxy = load_device(CONFIGS / "galaxy-a54-mali.yaml")
    assert galaxy.driver == "android-cdp" and galaxy.android.devtools_socket == "chrome_devtools_remote"
    local = load_device(CONFIGS / "local-appium-chromium.yaml")
    assert local.appium.platform == "desktop" and local.android is None
    assert local.appium.chromedriver_executable == "/usr/bin/chromedriver"
    json.dumps(local.to_dict())  # goes into the run manifest


def test_android_capabilities_ask_uiautomator2_for_chrome_on_the_device():
    pixel = load_device(CONFIGS / "pixel-5-adreno.yaml")
    caps = session_capabilities(pixel.appium, pixel.browser, udid="0A171FDD4000GK", chromedriver_port=9600)
    assert caps["platformName"] == "Android" and caps["browserName"] == "Chrome"
    assert caps["appium:automationName"] == "UiAutomator2"
    assert caps["appium:udid"] == "0A171FDD4000GK"
    assert caps["appium:chromedriverExecutableDir"] == "/opt/chromedrivers"
    assert caps["appium:chromedriverPort"] == 9600
    assert caps["appium:newCommandTimeout"] == 900  # the YAML's capabilities come last


def test_desktop_capabilities_are_the_chromium_driver_set():
    local = load_device(CONFIGS / "local-appium-chromium.yaml")
    caps = session_capabilities(local.appium, local.browser, udid=None, chromedriver_port=9601)
    assert caps["platformName"] == "linux" and caps["browserName"] == "chrome"
    assert caps["appium:automationName"] == "Chromium"
    assert caps["appium:executable"] == "/usr/bin/chromedriver"
    assert caps["appium:autodownloadEnabled"] is False and caps["appium:disableBuildCheck"] is True
    chrome = caps["goog:chromeOptions"]
    assert chrome["binary"] == local.browser.executable_path
    assert "--headless=new" in chrome["args"] and "--enable-unsafe-webgpu" in chrome["args"]


BASE = """\
id: phone
driver: appium
appium:
  platform: android
  chromedriver_executable: /opt/cd/chromedriver
android:
  serial: ABC
"""


@pytest.mark.parametrize("text, key, words", [
    (BASE.replace("platform: android", "platform: ios"), "appium.platform", "unknown value 'ios'"),
    (BASE.replace("platform: android", "platform: desktop").replace(
        "  chromedriver_executable: /opt/cd/chromedriver\n", ""), "appium.chromedriver_executable", "required"),
    (BASE + "  cooldown: {max_wait_s: 60}\n", "android.cooldown.max_battery_temp_c", "required key is missing"),
    (BASE + "  cooldown: {max_battery_temp_c: 35, max_wait_s: -1}\n", "android.cooldown.max_wait_s", "must be positive"),
    (BASE.replace("appium:\n", "appium:\n  server_url: localhost:4723\n"), "appium.server_url", "not an http URL"),
    (BASE + "  serial_number: X\n", "android.serial_number", "unknown key"),
    (BASE.replace("driver: appium", "driver: android-cdp").replace(
        "appium:\n  platform: android\n  chromedriver_executable: /opt/cd/chromedriver\n", ""), None, None),
])
def test_bad_android_yaml_names_the_key(tmp_path, text, key, words):
    path = tmp_path / "phone.yaml"
    path.write_text(text)
    if key is None:
        assert load_device(path).android.serial == "ABC"
        return
    with pytest.raises(ConfigError) as err:
        load_device(path)
    assert key in str(err.value) and words in str(err.value)


def test_async_script_answers_are_json_and_js_errors_are_harness_errors():
    assert CALL_FUNCTION in ASYNC_SCRIPT and "arguments[arguments.length - 1]" in ASYNC_SCRIPT
    assert decode_async_answer('[{"id": "c0", "ok": true}]') == [{"id": "c0", "ok": True}]
    for raw, words in [('{"__jitfarmCallError": "TypeError: x"}', "TypeError: x"), ("{oops", "malformed JSON"),
                       (None, "expected a JSON string")]:
        with pytest.raises(DriverError) as err:
            decode_async_answer(raw)
        assert err.value.error_class == "harness" and words in err.value.message


def test_phone_browser_section_has_no_executable():
    caps = session_capabilities(load_device(CONFIGS / "pixel-5-adreno.yaml").appium, BrowserOptions(executable_path=None),
                                udid=None, chromedriver_port=1)
    assert "goog:chromeOptions" not in caps and "appium:udid" not in caps
