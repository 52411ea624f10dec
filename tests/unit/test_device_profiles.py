"""The shipped browser profiles: lavapipe through a compatibility adapter, and the laptop template."""

from __future__ import annotations

from pathlib import Path

from farm.config.devices import list_devices, load_device
from farm.validity import probe_flags

ROOT = Path(__file__).resolve().parents[2]
SOFTWARE_FLAGS = ("--enable-unsafe-swiftshader", "--use-webgpu-adapter", "--disable-gpu", "--use-angle=swiftshader")


def test_lavapipe_profile_asks_for_a_compatibility_adapter_on_the_lavapipe_icd():
    d = load_device(ROOT / "device_configs" / "local-chromium-lavapipe.yaml")
    assert d.browser.feature_level == "compatibility"
    assert "--use-webgpu-adapter=opengles" in d.browser.args and "--use-angle=vulkan" in d.browser.args
    assert dict(d.browser.env)["VK_ICD_FILENAMES"].endswith("lvp_icd.x86_64.json")
    # Its adapter reports empty info: the software flag comes from the device's tags.
    assert "software-adapter" in probe_flags({"adapter": {"featureLevel": "compatibility"}}, d.tags)


def test_laptop_template_is_valid_uses_an_installed_channel_and_no_software_flags():
    d = load_device(ROOT / "device_configs" / "_template-laptop-gpu.yaml")
    assert d.browser.channel in ("chrome", "msedge") and d.browser.executable_path is None
    assert not any(a.startswith(f) for a in d.browser.args for f in SOFTWARE_FLAGS)
    # A template is not a device until copied: `devices list` and runs do not see it.
    assert "laptop-gpu" not in [s.id for _, s in list_devices(ROOT / "device_configs") if not isinstance(s, Exception)]
