"""DeviceCaps: what a WebGPU adapter reports (limits, features) plus known per-vendor facts.

The adapter part comes from the Probe JSON of ``farm/harness/PROTOCOL.md``; the vendor part (register
budget per thread, subgroup width, execution model) comes from a small table keyed by vendor and
architecture, with safe defaults, and can be overridden from a device YAML. The CPU part (for WASM
kernels: SIMD128 availability, relaxed SIMD, threads, core count from the probe; SIMD registers and
L1 data cache from ``CPU_TABLE`` keyed by architecture and platform) works the same way.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, replace
from typing import Any, Mapping

EXECUTION_MODELS = ("simt", "simd")

# WebGPU's guaranteed minimum limits, used when a probe leaves a limit out.
_CORE_DEFAULTS = {
    "maxComputeInvocationsPerWorkgroup": 256,
    "maxComputeWorkgroupSizeX": 256,
    "maxComputeWorkgroupSizeY": 256,
    "maxComputeWorkgroupSizeZ": 64,
    "maxComputeWorkgroupStorageSize": 16384,
    "maxStorageBufferBindingSize": 134217728,
    "maxComputeWorkgroupsPerDimension": 65535,
}
_COMPAT_DEFAULTS = {
    **_CORE_DEFAULTS,
    "maxComputeInvocationsPerWorkgroup": 128,
    "maxComputeWorkgroupSizeX": 128,
    "maxComputeWorkgroupSizeY": 128,
}


@dataclass(frozen=True)
class VendorFacts:
    """Facts an adapter does not report: registers one thread may use before occupancy or spills
    suffer, the width of a warp/subgroup/SIMD group, and whether threads run as SIMT lanes or the
    compiler vectorizes them ('simd': CPU rasterizers, Intel)."""

    regs_per_thread: int = 255
    subgroup_width: int = 32
    execution_model: str = "simt"


# Keyed by (vendor, architecture) in lower case; architecture "" is the vendor-wide entry.
VENDOR_TABLE: dict[tuple[str, str], VendorFacts] = {
    ("nvidia", ""): VendorFacts(255, 32, "simt"),
    ("amd", ""): VendorFacts(255, 64, "simt"),
    ("amd", "rdna-1"): VendorFacts(255, 32, "simt"),
    ("amd", "rdna-2"): VendorFacts(255, 32, "simt"),
    ("amd", "rdna-3"): VendorFacts(255, 32, "simt"),
    ("apple", ""): VendorFacts(255, 32, "simt"),
    ("intel", ""): VendorFacts(255, 16, "simd"),
    ("arm", ""): VendorFacts(64, 16, "simt"),
    ("qualcomm", ""): VendorFacts(128, 64, "simt"),
    ("google", "swiftshader"): VendorFacts(255, 4, "simd"),
    ("llvmpipe", ""): VendorFacts(255, 8, "simd"),
    ("mesa", "llvmpipe"): VendorFacts(255, 8, "simd"),
}



@dataclass(frozen=True)
class CpuFacts:
    """Facts a browser does not report about its CPU: SIMD128 registers the wasm engine can
    allocate (the nnJIT register budget) and the L1 data cache of one core, in bytes."""

    simd_registers: int = 16
    l1_bytes: int = 32768


# Keyed by (architecture, platform) as the probe's wasm section reports them, lower case; platform
# "" is the architecture-wide entry. x86-64 has 16 xmm registers; AArch64 has 32 NEON registers;
# Apple's performance cores have a 128 KiB L1D, Cortex-A7x cores 64 KiB, x86 laptops 32-48 KiB.
CPU_TABLE: dict[tuple[str, str], CpuFacts] = {
    ("x86-64", ""): CpuFacts(16, 32768),
    ("x86", ""): CpuFacts(8, 32768),
    ("arm64", ""): CpuFacts(32, 65536),
    ("arm64", "macos"): CpuFacts(32, 131072),
    ("arm64", "android"): CpuFacts(32, 65536),
    ("arm", ""): CpuFacts(16, 32768),
}


def cpu_facts(arch: str, platform: str) -> CpuFacts:
    """Table entry for (arch, platform), else the architecture-wide one, else x86-64's."""
    a, p = arch.lower(), platform.lower()
    return CPU_TABLE.get((a, p)) or CPU_TABLE.get((a, "")) or CpuFacts()


_CPU_NAMES = ("swiftshader", "llvmpipe", "lavapipe", "microsoft basic render")
_OVERRIDE_KEYS = ("regs_per_thread", "subgroup_width", "execution_model", "simd_registers", "l1_bytes")
# The adapter's identity, for browsers that report none (Chromium's compatibility adapters): the
# vendor table is looked up again with it, before the facts above are overridden.
_IDENTITY_KEYS = ("vendor", "architecture")


def vendor_facts(vendor: str, architecture: str) -> VendorFacts:
    """Table entry for (vendor, architecture), else the vendor-wide one, else the defaults."""
    v, a = vendor.lower(), architecture.lower()
    return VENDOR_TABLE.get((v, a)) or VENDOR_TABLE.get((v, "")) or VendorFacts()


def _camel(name: str) -> str:
    """'max-compute-workgroup-size-x' (wgpu-py) -> 'maxComputeWorkgroupSizeX' (JS)."""
    if "-" not in name and "_" not in name:
        return name
    parts = re.split(r"[-_]", name)
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


@dataclass(frozen=True)
class DeviceCaps:
    """Limits and features of one WebGPU adapter, plus vendor facts from ``VENDOR_TABLE``, and the
    CPU the page runs on for WASM kernels (the probe's ``wasm`` section plus ``CPU_TABLE``).

    Contract: immutable; ``fingerprint()`` is a short hex hash that stays the same for the same
    adapter, driver description, feature level, limits and features, and (when the probe had a
    wasm section) CPU architecture, platform, core count and wasm features (vendor facts and overrides
    are not part of it: they steer the search space, not what the device is); ``to_dict()`` and
    ``from_dict()`` round-trip through JSON.
    """

    vendor: str
    architecture: str
    device: str
    description: str
    is_fallback: bool
    feature_level: str
    max_invocations: int
    max_workgroup_size: tuple[int, int, int]
    max_workgroup_storage: int
    max_storage_buffer_binding_size: int
    max_workgroups_per_dimension: int
    features: frozenset[str]
    regs_per_thread: int = 255
    subgroup_width: int = 32
    execution_model: str = "simt"
    webgpu: bool = True
    cpu_arch: str = ""
    cpu_platform: str = ""
    hardware_concurrency: int = 1
    wasm_simd: bool = False
    wasm_relaxed_simd: bool = False
    wasm_threads: bool = False
    simd_registers: int = 16
    l1_bytes: int = 32768

    def __post_init__(self) -> None:
        if self.execution_model not in EXECUTION_MODELS:
            raise ValueError(f"execution_model must be one of {EXECUTION_MODELS}, got {self.execution_model!r}")
        for name in ("regs_per_thread", "subgroup_width", "max_invocations", "max_workgroup_storage",
                     "hardware_concurrency", "simd_registers", "l1_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")

    @staticmethod
    def from_probe(probe: Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> "DeviceCaps":
        """Build caps from a Probe JSON (keys ``adapter``, ``limits``, ``features``); limit names may
        be camelCase (browser) or kebab-case (wgpu-py). ``overrides`` (from a device YAML) replace
        the vendor-table values (``with_overrides``); keys other than vendor, architecture,
        regs_per_thread, subgroup_width, execution_model, simd_registers and l1_bytes raise ValueError. A probe without WebGPU is
        accepted only when its ``wasm`` section reports SIMD128 (caps for WASM kernels only)."""
        wasm = probe.get("wasm") or {}
        has_webgpu = probe.get("webgpu") is not False
        if not has_webgpu and not wasm.get("simd"):
            raise ValueError(f"probe reports no WebGPU: {probe.get('error') or 'no adapter'}")
        adapter = probe.get("adapter") or {}
        level = str(adapter.get("featureLevel") or "core")
        limits = dict(_COMPAT_DEFAULTS if level == "compatibility" else _CORE_DEFAULTS)
        limits.update({_camel(k): v for k, v in (probe.get("limits") or {}).items()})
        vendor = str(adapter.get("vendor") or "")
        arch = str(adapter.get("architecture") or "")
        facts = vendor_facts(vendor, arch)
        cpu_arch, cpu_platform = str(wasm.get("arch") or ""), str(wasm.get("platform") or "")
        cpu = cpu_facts(cpu_arch, cpu_platform)
        caps = DeviceCaps(
            vendor=vendor,
            architecture=arch,
            device=str(adapter.get("device") or ""),
            description=str(adapter.get("description") or ""),
            is_fallback=bool(adapter.get("isFallbackAdapter", False)),
            feature_level=level,
            max_invocations=int(limits["maxComputeInvocationsPerWorkgroup"]),
            max_workgroup_size=(
                int(limits["maxComputeWorkgroupSizeX"]),
                int(limits["maxComputeWorkgroupSizeY"]),
                int(limits["maxComputeWorkgroupSizeZ"]),
            ),
            max_workgroup_storage=int(limits["maxComputeWorkgroupStorageSize"]),
            max_storage_buffer_binding_size=int(limits["maxStorageBufferBindingSize"]),
            max_workgroups_per_dimension=int(limits["maxComputeWorkgroupsPerDimension"]),
            features=frozenset(str(f) for f in probe.get("features") or ()),
            regs_per_thread=facts.regs_per_thread,
            subgroup_width=facts.subgroup_width,
            execution_model=facts.execution_model,
            webgpu=has_webgpu,
            cpu_arch=cpu_arch,
            cpu_platform=cpu_platform,
            hardware_concurrency=max(1, int(probe.get("hardwareConcurrency") or 1)),
            wasm_simd=bool(wasm.get("simd")),
            wasm_relaxed_simd=bool(wasm.get("relaxedSimd")),
            wasm_threads=bool(wasm.get("threads")),
            simd_registers=cpu.simd_registers,
            l1_bytes=cpu.l1_bytes,
        )
        return caps.with_overrides(overrides) if overrides else caps

    def with_overrides(self, overrides: Mapping[str, Any]) -> "DeviceCaps":
        """A copy with vendor facts replaced; ``vendor`` / ``architecture`` replace the adapter's
        identity and take that vendor-table entry's facts first. Unknown keys raise ValueError naming
        them."""
        allowed = _IDENTITY_KEYS + _OVERRIDE_KEYS
        unknown = sorted(set(overrides) - set(allowed))
        if unknown:
            raise ValueError(f"unknown caps override key(s) {unknown}; allowed: {list(allowed)}")
        caps = self
        identity = {k: str(v) for k, v in overrides.items() if k in _IDENTITY_KEYS}
        if identity:
            caps = replace(caps, **identity)
            facts = vendor_facts(caps.vendor, caps.architecture)
            caps = replace(caps, regs_per_thread=facts.regs_per_thread, subgroup_width=facts.subgroup_width,
                           execution_model=facts.execution_model)
        return replace(caps, **{k: v for k, v in overrides.items() if k in _OVERRIDE_KEYS})

    @property
    def is_cpu(self) -> bool:
        """True for software rasterizers (SwiftShader, llvmpipe/lavapipe, WARP): caches stand in for
        workgroup memory there and barriers are expensive, which templates' priors take into account."""
        if self.is_fallback:
            return True
        names = f"{self.vendor} {self.architecture} {self.device} {self.description}".lower()
        return any(n in names for n in _CPU_NAMES)

    def _identity(self) -> dict[str, Any]:
        return {
            "vendor": self.vendor,
            "architecture": self.architecture,
            "device": self.device,
            "description": self.description,
            "feature_level": self.feature_level,
            "limits": {
                "max_invocations": self.max_invocations,
                "max_workgroup_size": list(self.max_workgroup_size),
                "max_workgroup_storage": self.max_workgroup_storage,
                "max_storage_buffer_binding_size": self.max_storage_buffer_binding_size,
                "max_workgroups_per_dimension": self.max_workgroups_per_dimension,
            },
            "features": sorted(self.features),
        } | self._cpu_identity()

    def _cpu_identity(self) -> dict[str, Any]:
        # Only probes with a wasm section have a CPU identity, so older fingerprints do not move.
        if not (self.wasm_simd or self.cpu_arch):
            return {}
        return {"cpu": {"arch": self.cpu_arch, "platform": self.cpu_platform,
                        "hardware_concurrency": self.hardware_concurrency, "wasm_simd": self.wasm_simd,
                        "wasm_relaxed_simd": self.wasm_relaxed_simd, "wasm_threads": self.wasm_threads}}

    def fingerprint(self) -> str:
        """16 hex digits identifying the adapter as far as kernels are concerned."""
        blob = json.dumps(self._identity(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["max_workgroup_size"] = list(self.max_workgroup_size)
        d["features"] = sorted(self.features)
        d["fingerprint"] = self.fingerprint()
        return d

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> "DeviceCaps":
        d = {k: v for k, v in d.items() if k != "fingerprint"}
        d["max_workgroup_size"] = tuple(d["max_workgroup_size"])
        d["features"] = frozenset(d.get("features") or ())
        return DeviceCaps(**d)
