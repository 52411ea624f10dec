"""Which devices an experiment runs on: device ids, or tag selectors over ``device_configs/``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .devices import DeviceSpec, find_device, list_devices
from .errors import ConfigError


def matches(spec: DeviceSpec, selector: dict[str, str]) -> bool:
    """True when every ``key: value`` of ``selector`` is one of the device's tags (or its driver)."""
    facts = {**spec.tags, "driver": spec.driver}
    return all(facts.get(k) == v for k, v in selector.items())


def select_devices(entries: list[Any], directory: Path, *, file: str, key: str = "devices") -> tuple[DeviceSpec, ...]:
    """Resolve the experiment's ``devices:`` list. Each entry is a device id (``native-lavapipe``)
    or a mapping of tags that selects every valid device having all of them
    (``{vendor: arm, platform: phone}``; ``driver`` counts as a tag). The result keeps the order
    of the entries, each device once; an id or a selector that matches nothing is a ConfigError."""
    if not isinstance(entries, list) or not entries:
        raise ConfigError(file, key, "no devices named",
                          "list device ids or tag selectors, e.g. [native-lavapipe] or [{backend: webgpu}]")
    out: dict[str, DeviceSpec] = {}
    named: set[str] = set()
    catalog: list[DeviceSpec] | None = None
    for i, entry in enumerate(entries):
        where = f"{key}[{i}]"
        if isinstance(entry, str):
            if entry in named:
                raise ConfigError(file, key, f"device {entry!r} is listed twice", "list each device id once")
            named.add(entry)
            out.setdefault(entry, find_device(directory, entry, where=file, key=where))
        elif isinstance(entry, dict) and entry:
            selector = {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in entry.items()}
            if catalog is None:
                catalog = [s for _, s in list_devices(directory) if isinstance(s, DeviceSpec)]
            found = [s for s in catalog if matches(s, selector)]
            if not found:
                tags = sorted({f"{k}={v}" for s in catalog for k, v in {**s.tags, "driver": s.driver}.items()})
                raise ConfigError(file, where, f"no valid device in {directory} has tags {selector}",
                                  f"use tags that exist ({', '.join(tags) or 'none'}) or a device id")
            for s in found:
                out.setdefault(s.id, s)
        else:
            raise ConfigError(file, where, f"expected a device id or a mapping of tags, got {entry!r}",
                              "write an id like native-lavapipe or a selector like {vendor: mesa}")
    return tuple(out.values())
