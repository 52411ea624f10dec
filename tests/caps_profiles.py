"""Representative adapters for unit tests of spaces and templates, as their probes report them."""

from __future__ import annotations

from jit_core.caps import DeviceCaps

SWIFTSHADER = DeviceCaps.from_probe({
    "adapter": {"vendor": "google", "architecture": "swiftshader", "isFallbackAdapter": True},
    "limits": {"maxComputeInvocationsPerWorkgroup": 256, "maxComputeWorkgroupStorageSize": 32768,
               "maxComputeWorkgroupSizeX": 256, "maxComputeWorkgroupSizeY": 256, "maxComputeWorkgroupSizeZ": 64},
})
LLVMPIPE = DeviceCaps.from_probe({
    "adapter": {"vendor": "llvmpipe", "device": "llvmpipe (LLVM 15.0.6, 256 bits)"},
    "limits": {"maxComputeInvocationsPerWorkgroup": 1024, "maxComputeWorkgroupStorageSize": 32768,
               "maxComputeWorkgroupSizeX": 1024, "maxComputeWorkgroupSizeY": 1024, "maxComputeWorkgroupSizeZ": 1024},
})
NVIDIA = DeviceCaps.from_probe({
    "adapter": {"vendor": "nvidia", "architecture": "hopper", "device": "NVIDIA H200"},
    "limits": {"maxComputeInvocationsPerWorkgroup": 1024, "maxComputeWorkgroupStorageSize": 49152,
               "maxComputeWorkgroupSizeX": 1024, "maxComputeWorkgroupSizeY": 1024, "maxComputeWorkgroupSizeZ": 64,
               "maxStorageBufferBindingSize": 2147483647},
})
COMPAT = DeviceCaps.from_probe({"adapter": {"vendor": "google", "featureLevel": "compatibility"}})
ALL_CAPS = [SWIFTSHADER, LLVMPIPE, NVIDIA, COMPAT]
