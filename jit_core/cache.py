"""Kernel cache: the winning configs per (op, template name and version, device fingerprint).

A small JSON file (or memory only). A template version bump or a different adapter/driver
(fingerprint) is a different key, so stale winners are never reused for new code or devices.
``plan_tune`` turns a cache into tuning options: the same device re-times only the cached winner
and runners-up; a device of the same vendor and architecture warm-starts its search from them.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Iterator

from .caps import DeviceCaps
from .ops import OpSpec
from .space import Config
from .tuner import TuneOptions, TuneResult

FORMAT_VERSION = 2
TOP_KEPT = 4  # configs kept per entry: the winner and its runners-up


def cache_key(op: OpSpec, template: str, template_version: str, fingerprint: str) -> str:
    return f"{op.key()}|{template}@{template_version}|{fingerprint}"


@dataclass(frozen=True)
class CacheEntry:
    """A cached winner: its config key, median cost, how it was timed and when (unix seconds),
    the device's vendor and architecture (for warm starts of similar devices) and ``top``: the
    best ``TOP_KEPT`` distinct ok configs of the tune as [config key, median ms], winner first."""

    config_key: str
    median_ms: float
    timer_kind: str | None
    trials: int
    stopped: str
    saved_at: float
    vendor: str = ""
    architecture: str = ""
    top: list[list[Any]] = field(default_factory=list)

    @property
    def config(self) -> Config:
        return Config.from_key(self.config_key)

    def configs(self) -> list[Config]:
        """The winner, then the runners-up."""
        keys = [self.config_key] + [k for k, _ in self.top if k != self.config_key]
        return [Config.from_key(k) for k in keys]


class TuneCache:
    """Maps (op, template, template version, fingerprint) to the last tune's winners.

    Contract: ``put(result, caps)`` stores ``result.best`` and its runners-up (a result without a
    winner changes nothing) and, with a ``path``, merges into the file under an exclusive lock
    and rewrites it atomically, so several devices of one run can share a file; ``get`` returns
    the exact entry or None; ``similar`` the newest entry of another device with the same vendor
    and architecture. A file of another format version is ignored (treated as empty).
    """

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else None
        self._entries: dict[str, CacheEntry] = self._read()

    def _read(self) -> dict[str, CacheEntry]:
        if self.path is None or not self.path.exists():
            return {}
        try:
            raw = self.path.read_bytes()
        except OSError:
            return {}
        seen = _PARSED.get(str(self.path))
        if seen is not None and seen[0] == raw:  # a run reads the file before and after every job
            return dict(seen[1])
        try:
            data = json.loads(raw)
        except ValueError:
            return {}
        if data.get("format") != FORMAT_VERSION:
            return {}
        entries = {k: CacheEntry(**v) for k, v in data.get("entries", {}).items()}
        _remember(self.path, raw, entries)
        return entries

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, op: OpSpec, template: str, template_version: str, fingerprint: str) -> CacheEntry | None:
        return self._entries.get(cache_key(op, template, template_version, fingerprint))

    def similar(self, op: OpSpec, template: str, template_version: str, caps: DeviceCaps) -> CacheEntry | None:
        """Newest entry for the same op and template version from another device of the same
        (non-empty) vendor and architecture."""
        prefix = f"{op.key()}|{template}@{template_version}|"
        vendor, arch = caps.vendor.lower(), caps.architecture.lower()
        if not vendor:
            return None
        found = [e for k, e in self._entries.items() if k.startswith(prefix) and k != prefix + caps.fingerprint()
                 and e.vendor.lower() == vendor and e.architecture.lower() == arch]
        return max(found, key=lambda e: e.saved_at, default=None)

    def put(self, result: TuneResult, caps: DeviceCaps | None = None) -> CacheEntry | None:
        if result.best is None or result.best.median_ms is None:
            return None
        latest: dict[str, float] = {}
        for t in result.trials:  # a config timed again (successive halving) counts with its last time
            if t.ok and t.median_ms is not None:
                latest[t.config_key] = float(t.median_ms)
            else:
                latest.pop(t.config_key, None)
        top = sorted(latest.items(), key=lambda kv: kv[1])
        top = [[result.best.config_key, float(result.best.median_ms)]] + [[k, ms] for k, ms in top if k != result.best.config_key]
        entry = CacheEntry(
            config_key=result.best.config_key,
            median_ms=float(result.best.median_ms),
            timer_kind=result.best.timer_kind,
            trials=len(result.trials),
            stopped=result.stopped,
            saved_at=time.time(),
            vendor=caps.vendor if caps else "",
            architecture=caps.architecture if caps else "",
            top=top[:TOP_KEPT],
        )
        key = cache_key(result.op, result.template, result.template_version, result.caps_fingerprint)
        with self._locked():
            self._entries = {**self._entries, **self._read()}  # other writers' entries win but ours
            self._entries[key] = entry
            self._save()
        return entry

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if self.path is None:
            yield
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _save(self) -> None:
        if self.path is None:
            return
        # One entry per line, each encoded by json's C encoder: a run rewrites the file after every
        # job, and the pure-Python encoder that ``indent`` selects made that quadratic in practice.
        lines = [_entry_line(k, v) for k, v in sorted(self._entries.items())]
        raw = (f'{{"format": {FORMAT_VERSION}, "entries": {{\n' + ",\n".join(lines) + "\n}}\n").encode()
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        os.replace(tmp, self.path)
        _remember(self.path, raw, self._entries)


# The last bytes read or written per cache file and their entries, and each entry's encoded line:
# a run reads the whole file before each job and rewrites it after, so without these a run of n
# jobs parses and encodes O(n^2) entries. Entries are immutable, so sharing them is safe.
_PARSED: dict[str, tuple[bytes, dict[str, CacheEntry]]] = {}
_LINES: dict[str, tuple[CacheEntry, str]] = {}
_MAX_FILES = 8
_MAX_LINES = 100_000


def _remember(path: Path, raw: bytes, entries: dict[str, CacheEntry]) -> None:
    if str(path) not in _PARSED and len(_PARSED) >= _MAX_FILES:
        del _PARSED[next(iter(_PARSED))]
    _PARSED[str(path)] = (raw, dict(entries))


def _entry_line(key: str, entry: CacheEntry) -> str:
    hit = _LINES.get(key)
    if hit is not None and hit[0] is entry:
        return hit[1]
    fields_ = {f.name: getattr(entry, f.name) for f in fields(entry)}  # asdict without its deep copies
    line = f"{json.dumps(key)}: {json.dumps(fields_)}"
    if len(_LINES) >= _MAX_LINES:
        _LINES.clear()
    _LINES[key] = (entry, line)
    return line


CACHE_MODES = ("reuse", "warm-start", "cold")


@dataclass(frozen=True)
class CachePlan:
    """How a tune uses the cache: ``mode`` 'reuse' (same device: re-time ``start`` only),
    'warm-start' (a similar device's winners are tried first, then the search goes on) or 'cold'
    (no entry); ``options`` are the tuning options to use; ``entry`` the entry used, if any."""

    mode: str
    options: TuneOptions
    entry: CacheEntry | None = None

    def __post_init__(self) -> None:
        if self.mode not in CACHE_MODES:
            raise ValueError(f"cache plan mode must be one of {CACHE_MODES}, got {self.mode!r}")


def plan_tune(cache: TuneCache | None, op: OpSpec, template: str, template_version: str, caps: DeviceCaps,
              options: TuneOptions, *, retime: int = 3) -> CachePlan:
    """The tuning options a cache implies for ``op`` on the device ``caps`` describes: on an exact
    hit, the cached winner and up to ``retime - 1`` runners-up, and nothing else (``max_evals``);
    on a similar device's hit, the same configs first and then the usual search; else ``options``."""
    if cache is None:
        return CachePlan("cold", options)
    entry = cache.get(op, template, template_version, caps.fingerprint())
    if entry is not None:
        start = tuple(entry.configs()[:max(1, retime)])
        return CachePlan("reuse", replace(options, start=start, max_evals=len(start)), entry)
    entry = cache.similar(op, template, template_version, caps)
    if entry is not None:
        return CachePlan("warm-start", replace(options, start=tuple(entry.configs()[:max(1, retime)])), entry)
    return CachePlan("cold", options)
