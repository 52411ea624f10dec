"""Validity flags: what makes a probe or a timing less than a clean measurement on real hardware.

Flags travel with every record (the ``flags`` column of every table in farm/store/schema.py), so
analysis can exclude or group by them. They describe; they never stop a run.

Device flags (from the probe, on every record of that device):
- ``software-adapter``: WebGPU runs on a CPU rasterizer (SwiftShader, llvmpipe/lavapipe, WARP).
- ``fallback-adapter``: the adapter says ``isFallbackAdapter``.
- ``compat-adapter``: a WebGPU compatibility-mode adapter (fewer features and limits).
- ``not-isolated``: the page is not cross-origin isolated (no WASM threads, coarse timers).
Record flags:
- ``backend-mismatch``: a library ran another backend than the one asked for (a failed baseline).
- ``adapter-mismatch``: an implementation ran on another adapter than our kernels.
- ``short-samples``: samples stayed under half the minimum span even after one re-calibration
  (max_reps reached first).
- ``single-thread``: a WASM baseline ran one thread on a multi-core, isolated page.
- ``device-warm``: the device's cool-down rule gave up waiting (the battery was still above its
  threshold when the job started); on every record of that job.
- ``gpu-timestamps-implausible``: a library's GPU-timestamp time exceeds its wall time (its
  timestamps do not bracket the work on this adapter; ``gpu_ms`` is then not to be trusted).
"""

from __future__ import annotations

from typing import Any, Iterable

SOFTWARE_NAMES = ("swiftshader", "llvmpipe", "lavapipe", "softpipe", "microsoft basic render", "warp")


def _has_software_name(*texts: Any) -> bool:
    joined = " ".join(str(t).lower() for t in texts if t)
    return any(n in joined for n in SOFTWARE_NAMES)


def probe_flags(probe: dict[str, Any], tags: dict[str, str] | None = None) -> list[str]:
    """Device flags of one probe (PROTOCOL.md's Probe JSON; the native driver's is the same shape).
    ``tags`` of the device config may say ``software: "true"`` where the adapter reports nothing
    (a compatibility adapter on lavapipe reports empty adapter info)."""
    flags: list[str] = []
    adapter = probe.get("adapter") or {}
    webgl = ((probe.get("web") or {}).get("webgl2") or {})
    names = (adapter.get("vendor"), adapter.get("architecture"), adapter.get("device"), adapter.get("description"))
    info_empty = not any(names)
    software = _has_software_name(*names) or (tags or {}).get("software") == "true"
    if info_empty and _has_software_name(webgl.get("renderer")):
        software = True  # the page's GPU stack is a CPU one (seen through WebGL's renderer)
    if software or str(adapter.get("adapterType", "")).upper() == "CPU":
        flags.append("software-adapter")
    if adapter.get("isFallbackAdapter"):
        flags.append("fallback-adapter")
    if adapter.get("featureLevel") == "compatibility":
        flags.append("compat-adapter")
    if probe.get("crossOriginIsolated") is False:
        flags.append("not-isolated")
    return flags


def merge(*groups: Iterable[str]) -> list[str]:
    """Flags of all groups, first appearance first, no duplicates."""
    return list(dict.fromkeys(f for g in groups for f in (g or ())))


def baseline_flags(result: dict[str, Any], our_adapter: str, their_adapter: str | None,
                   probe: dict[str, Any]) -> list[str]:
    """Record flags of one runBaseline answer, beyond those the page set itself."""
    flags = list(result.get("flags") or [])
    if result.get("errorClass") == "fallback" or (
            result.get("backendUsed") and result.get("backendUsed") != result.get("backendRequested")):
        flags.append("backend-mismatch")
    if result.get("backendRequested") == "webgpu" and their_adapter and their_adapter != our_adapter:
        flags.append("adapter-mismatch")
    cores = probe.get("hardwareConcurrency") or 1
    if (result.get("backendRequested") == "wasm" and result.get("threads") == 1 and cores > 1
            and probe.get("crossOriginIsolated")):
        flags.append("single-thread")
    return merge(flags)
