"""`jitfarm devices probe ID`: open one device, probe it, print what it really offers."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table

from farm.config.devices import DeviceSpec
from farm.drivers import DriverError, make_driver
from farm.validity import probe_flags


def probe_device(device: DeviceSpec) -> dict[str, Any]:
    """Open ``device``, probe it, close it. Raises DriverError when it cannot be opened."""
    driver = make_driver(device)
    try:
        driver.open()
        probe = driver.probe()
        probe["versions"] = driver.versions()
    finally:
        driver.close()
    probe["flags"] = probe_flags(probe, device.tags)
    return probe


def _ms(x: Any) -> str:
    return "-" if x is None else f"{float(x) * 1e3:.3f} us"


def _bracket(check: dict[str, Any] | None) -> str:
    if not check:
        return "-"
    spans = ", ".join(f"{x:.4f}" for x in check.get("spansMs") or [])
    verdict = "yes" if check.get("bracketsWork") else "[red]no: kernels are timed by the wall clock[/]"
    return f"{verdict} (1 vs 256 dispatches: {spans} ms)"


def print_probe(device: DeviceSpec, probe: dict[str, Any], out: Console, *, as_json: bool = False) -> None:
    if as_json:
        out.print_json(json.dumps(probe, default=str))
        return
    a = probe.get("adapter") or {}
    web = probe.get("web") or {}
    gl = web.get("webgl2") or {}
    res = probe.get("timerResolutionMs") or {}
    t = Table(title=f"{device.id}: {device.name}", show_header=False)
    t.add_column("what", style="bold")
    t.add_column("value")
    rows = [
        ("WebGPU", "yes" if probe.get("webgpu") else f"[red]no[/]: {probe.get('error')}"),
        ("adapter", " / ".join(str(a.get(k) or "-") for k in ("vendor", "architecture", "device", "description"))),
        ("feature level", str(a.get("featureLevel", "-"))),
        ("fallback adapter", str(a.get("isFallbackAdapter", "-"))),
        ("features", ", ".join(probe.get("features") or []) or "-"),
        ("timer resolution", f"timestamp {_ms(res.get('timestamp'))}, wall {_ms(res.get('wall'))}"),
        ("timestamps bracket work", _bracket(probe.get("timestampCheck"))),
        ("cross-origin isolated", str(probe.get("crossOriginIsolated", "-"))),
        ("cores", str(probe.get("hardwareConcurrency", "-"))),
    ]
    if web:
        rows += [
            ("WASM SIMD", str(web.get("wasmSimd"))),
            ("WASM threads", f"{web.get('wasmThreads')} (atomics {web.get('wasmThreadsValidate')}, "
                             f"SharedArrayBuffer {web.get('sharedArrayBuffer')})"),
            ("WebGL2", f"{gl.get('available')}: {gl.get('renderer') or '-'} "
                       f"(timer query {gl.get('timerQuery')}, max texture {gl.get('maxTextureSize')})"),
        ]
    rows += [
        ("flags", ", ".join(probe.get("flags") or []) or "none"),
        ("versions", ", ".join(f"{k} {v}" for k, v in (probe.get("versions") or {}).items()) or "-"),
        ("user agent", str(probe.get("userAgent", "-"))),
    ]
    for k, v in rows:
        t.add_row(k, v)
    out.print(t)
    limits = probe.get("limits") or {}
    if limits:
        lt = Table(title="limits")
        lt.add_column("limit")
        lt.add_column("value", justify="right")
        for k in sorted(limits):
            lt.add_row(k, str(limits[k]))
        out.print(lt)


__all__ = ["probe_device", "print_probe", "DriverError"]
