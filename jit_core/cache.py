"""Kernel cache: the winning config per (op, template name and version, device fingerprint).

A small JSON file (or memory only). A template version bump or a different adapter/driver
(fingerprint) is a different key, so stale winners are never reused for new code or devices.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .ops import OpSpec
from .space import Config
from .tuner import TuneResult

FORMAT_VERSION = 1


def cache_key(op: OpSpec, template: str, template_version: str, fingerprint: str) -> str:
    return f"{op.key()}|{template}@{template_version}|{fingerprint}"


@dataclass(frozen=True)
class CacheEntry:
    """A cached winner: its config key, median cost, how it was timed and when (unix seconds)."""

    config_key: str
    median_ms: float
    timer_kind: str | None
    trials: int
    stopped: str
    saved_at: float

    @property
    def config(self) -> Config:
        return Config.from_key(self.config_key)


class TuneCache:
    """Maps (op, template, template version, fingerprint) to the last tune's winner.

    Contract: ``put(result)`` stores ``result.best`` (a result without a winner changes nothing)
    and, with a ``path``, rewrites the file atomically; ``get`` returns the entry or None. A file
    of another format version is ignored (treated as empty) rather than misread.
    """

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else None
        self._entries: dict[str, CacheEntry] = {}
        if self.path is not None and self.path.exists():
            data = json.loads(self.path.read_text())
            if data.get("format") == FORMAT_VERSION:
                self._entries = {k: CacheEntry(**v) for k, v in data.get("entries", {}).items()}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, op: OpSpec, template: str, template_version: str, fingerprint: str) -> CacheEntry | None:
        return self._entries.get(cache_key(op, template, template_version, fingerprint))

    def put(self, result: TuneResult) -> CacheEntry | None:
        if result.best is None or result.best.median_ms is None:
            return None
        entry = CacheEntry(
            config_key=result.best.config_key,
            median_ms=float(result.best.median_ms),
            timer_kind=result.best.timer_kind,
            trials=len(result.trials),
            stopped=result.stopped,
            saved_at=time.time(),
        )
        key = cache_key(result.op, result.template, result.template_version, result.caps_fingerprint)
        self._entries[key] = entry
        self._save()
        return entry

    def _save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data: dict[str, Any] = {"format": FORMAT_VERSION, "entries": {k: asdict(v) for k, v in sorted(self._entries.items())}}
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1)
        os.replace(tmp, self.path)
