"""DeviceCaps from Probe JSON: limits, vendor facts, overrides, fingerprint."""

import json

import pytest

from jit_core.caps import DeviceCaps, VendorFacts, vendor_facts

SWIFTSHADER_PROBE = {
    "webgpu": True,
    "error": None,
    "adapter": {
        "vendor": "google",
        "architecture": "swiftshader",
        "device": "",
        "description": "",
        "isFallbackAdapter": True,
        "featureLevel": "core",
    },
    "limits": {
        "maxComputeInvocationsPerWorkgroup": 256,
        "maxComputeWorkgroupStorageSize": 32768,
        "maxComputeWorkgroupSizeX": 256,
        "maxComputeWorkgroupSizeY": 256,
        "maxComputeWorkgroupSizeZ": 64,
        "maxStorageBufferBindingSize": 134217728,
        "maxComputeWorkgroupsPerDimension": 65535,
    },
    "features": ["timestamp-query", "depth-clip-control"],
}

# wgpu-py reports limits in kebab-case; the native driver may pass them through unchanged.
LLVMPIPE_PROBE = {
    "webgpu": True,
    "adapter": {"vendor": "llvmpipe", "architecture": "", "device": "llvmpipe (LLVM 15.0.6, 256 bits)",
                "description": "Mesa 22.3.6 (LLVM 15.0.6)", "isFallbackAdapter": False},
    "limits": {"max-compute-invocations-per-workgroup": 1024, "max-compute-workgroup-storage-size": 32768,
               "max-compute-workgroup-size-x": 1024, "max-compute-workgroup-size-y": 1024,
               "max-compute-workgroup-size-z": 1024, "max-compute-workgroups-per-dimension": 65535},
    "features": ["timestamp-query", "shader-f16"],
}


def test_from_probe_reads_adapter_limits_and_features():
    caps = DeviceCaps.from_probe(SWIFTSHADER_PROBE)
    assert (caps.vendor, caps.architecture, caps.is_fallback, caps.feature_level) == ("google", "swiftshader", True, "core")
    assert caps.max_invocations == 256
    assert caps.max_workgroup_size == (256, 256, 64)
    assert caps.max_workgroup_storage == 32768
    assert caps.max_storage_buffer_binding_size == 134217728
    assert caps.max_workgroups_per_dimension == 65535
    assert caps.features == frozenset({"timestamp-query", "depth-clip-control"})


def test_from_probe_accepts_kebab_case_limits_of_wgpu():
    caps = DeviceCaps.from_probe(LLVMPIPE_PROBE)
    assert caps.max_invocations == 1024
    assert caps.max_workgroup_size == (1024, 1024, 1024)
    assert caps.max_storage_buffer_binding_size == 134217728  # missing: WebGPU's guaranteed minimum


def test_missing_limits_default_to_webgpu_minimums_by_feature_level():
    core = DeviceCaps.from_probe({"adapter": {"vendor": "x"}, "limits": {}})
    compat = DeviceCaps.from_probe({"adapter": {"vendor": "x", "featureLevel": "compatibility"}})
    assert (core.max_invocations, core.max_workgroup_storage) == (256, 16384)
    assert (compat.max_invocations, compat.feature_level) == (128, "compatibility")


def test_probe_without_webgpu_is_a_clear_error():
    with pytest.raises(ValueError, match="no WebGPU: adapter is null"):
        DeviceCaps.from_probe({"webgpu": False, "error": "adapter is null"})


def test_vendor_table_gives_facts_and_safe_defaults():
    assert vendor_facts("NVIDIA", "ampere") == VendorFacts(255, 32, "simt")
    assert vendor_facts("intel", "gen-12lp").execution_model == "simd"
    assert vendor_facts("amd", "rdna-3").subgroup_width == 32
    assert vendor_facts("amd", "gcn-5").subgroup_width == 64
    assert vendor_facts("unknown-vendor", "") == VendorFacts(255, 32, "simt")
    caps = DeviceCaps.from_probe(SWIFTSHADER_PROBE)
    assert (caps.regs_per_thread, caps.execution_model) == (255, "simd")


def test_overrides_replace_table_values():
    caps = DeviceCaps.from_probe(SWIFTSHADER_PROBE, {"regs_per_thread": 64, "execution_model": "simt"})
    assert (caps.regs_per_thread, caps.execution_model) == (64, "simt")


def test_unknown_override_keys_are_named_in_the_error():
    with pytest.raises(ValueError, match=r"\['max_regs', 'warp'\]"):
        DeviceCaps.from_probe(SWIFTSHADER_PROBE, {"warp": 32, "max_regs": 1, "regs_per_thread": 64})


def test_bad_override_values_are_rejected():
    with pytest.raises(ValueError, match="execution_model"):
        DeviceCaps.from_probe(SWIFTSHADER_PROBE, {"execution_model": "vliw"})
    with pytest.raises(ValueError, match="regs_per_thread"):
        DeviceCaps.from_probe(SWIFTSHADER_PROBE, {"regs_per_thread": 0})


def test_fingerprint_is_stable_short_hex_and_sensitive_to_limits_and_features():
    a = DeviceCaps.from_probe(SWIFTSHADER_PROBE)
    b = DeviceCaps.from_probe(json.loads(json.dumps(SWIFTSHADER_PROBE)))
    assert a.fingerprint() == b.fingerprint()
    assert len(a.fingerprint()) == 16 and int(a.fingerprint(), 16) >= 0
    other_limit = json.loads(json.dumps(SWIFTSHADER_PROBE))
    other_limit["limits"]["maxComputeWorkgroupStorageSize"] = 16384
    assert DeviceCaps.from_probe(other_limit).fingerprint() != a.fingerprint()
    other_feat = json.loads(json.dumps(SWIFTSHADER_PROBE))
    other_feat["features"] = ["depth-clip-control"]
    assert DeviceCaps.from_probe(other_feat).fingerprint() != a.fingerprint()
    assert DeviceCaps.from_probe(LLVMPIPE_PROBE).fingerprint() != a.fingerprint()


def test_fingerprint_ignores_feature_order_and_vendor_overrides():
    shuffled = json.loads(json.dumps(SWIFTSHADER_PROBE))
    shuffled["features"].reverse()
    a = DeviceCaps.from_probe(SWIFTSHADER_PROBE)
    assert DeviceCaps.from_probe(shuffled).fingerprint() == a.fingerprint()
    assert DeviceCaps.from_probe(SWIFTSHADER_PROBE, {"regs_per_thread": 64}).fingerprint() == a.fingerprint()


def test_to_dict_is_json_ready_and_round_trips():
    caps = DeviceCaps.from_probe(LLVMPIPE_PROBE, {"subgroup_width": 16})
    d = json.loads(json.dumps(caps.to_dict()))
    assert d["fingerprint"] == caps.fingerprint()
    assert d["features"] == sorted(caps.features)
    assert DeviceCaps.from_dict(d) == caps


def test_software_adapters_are_recognised_as_cpus():
    assert DeviceCaps.from_probe(SWIFTSHADER_PROBE).is_cpu  # isFallbackAdapter
    assert DeviceCaps.from_probe(LLVMPIPE_PROBE).is_cpu  # by name, even when not flagged fallback
    gpu = DeviceCaps.from_probe({"adapter": {"vendor": "nvidia", "architecture": "hopper", "device": "NVIDIA H200"}})
    assert not gpu.is_cpu


def test_identity_overrides_name_a_blank_adapter_and_take_its_vendor_facts():
    blank = json.loads(json.dumps(SWIFTSHADER_PROBE))
    blank["adapter"].update(vendor="", architecture="", isFallbackAdapter=False, featureLevel="compatibility")
    plain = DeviceCaps.from_probe(blank)
    assert not plain.is_cpu and plain.execution_model == "simt"
    named = DeviceCaps.from_probe(blank, {"vendor": "mesa", "architecture": "llvmpipe"})
    assert (named.vendor, named.architecture) == ("mesa", "llvmpipe")
    assert named.is_cpu and (named.execution_model, named.subgroup_width) == ("simd", 8)
    # facts given next to the identity win over the table's
    assert DeviceCaps.from_probe(blank, {"vendor": "mesa", "architecture": "llvmpipe",
                                         "subgroup_width": 16}).subgroup_width == 16
