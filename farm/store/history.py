"""The history index across runs: ``results/index.jsonl``, one JSON object per line per run.

A line is appended when a run finishes (``record_run``); the latest line of a run id wins, so a
resumed run simply appends a newer line. Appends are single ``write`` calls on a file opened
with O_APPEND, so two runs finishing at once do not interleave. If the index is missing, or a
run folder is not in it (a run killed before its end), ``load_index`` rebuilds those entries from
``results/*/manifest.json`` and writes the index back. The manifest stays the source of truth.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .parquet import ParquetStore

INDEX_NAME = "index.jsonl"


def browser_version(versions: dict[str, Any]) -> str:
    """'chromium 156.0.7...' for browser devices; 'wgpu-native X' for native ones; '-' if unknown."""
    if versions.get("browser"):
        return str(versions["browser"])
    if versions.get("wgpu_native"):
        return f"wgpu-native {versions['wgpu_native']}"
    return "-"


@dataclass(frozen=True)
class RunEntry:
    """One run in the history: id, start time, status, git commit, experiment and its devices
    (id, adapter, fingerprint, browser version)."""

    run_id: str
    created: str
    status: str
    experiment: str
    commit: str | None
    dirty: bool | None
    devices: tuple[dict[str, Any], ...]
    wall_s: float | None
    format_version: int | None

    @staticmethod
    def from_manifest(m: dict[str, Any]) -> "RunEntry":
        devices = []
        for dev_id, info in sorted((m.get("devices") or {}).items()):
            devices.append({"id": dev_id, "adapter": info.get("adapter"), "fingerprint": info.get("fingerprint"),
                            "browser": browser_version(info.get("versions") or {}),
                            **({"error": info["error"]} if info.get("error") else {})})
        if not devices:  # a run that died before its devices opened: list the configured ones
            devices = [{"id": d} for d in (m.get("experiment") or {}).get("devices", [])]
        git = m.get("git") or {}
        return RunEntry(run_id=m.get("run_id", "?"), created=m.get("created", ""), status=m.get("status", "unknown"),
                        experiment=(m.get("experiment") or {}).get("name", "?"), commit=git.get("commit"),
                        dirty=git.get("dirty"), devices=tuple(devices), wall_s=m.get("wall_s"),
                        format_version=m.get("format_version"))

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, default=str)


def _manifest_entry(run_dir: Path) -> RunEntry | None:
    try:
        m = ParquetStore(run_dir).read_manifest()
    except (OSError, ValueError):
        return None
    m.setdefault("run_id", run_dir.name)
    return RunEntry.from_manifest(m)


def record_run(results_dir: Path, run_dir: Path) -> RunEntry | None:
    """Append the run's entry (from its manifest) to the index; called when a run ends."""
    entry = _manifest_entry(Path(run_dir))
    if entry is None:
        return None
    try:
        _append(Path(results_dir) / INDEX_NAME, [entry])
    except OSError:
        return None  # the next `jitfarm runs` rebuilds the entry from the manifest
    return entry


def _append(path: Path, entries: list[RunEntry]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(e.to_json() + "\n" for e in entries).encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _read(path: Path) -> dict[str, RunEntry]:
    out: dict[str, RunEntry] = {}
    if not path.is_file():
        return out
    for line in path.read_text().splitlines():
        try:
            raw = json.loads(line)
            raw["devices"] = tuple(raw.get("devices") or ())
            entry = RunEntry(**raw)
        except (ValueError, TypeError):
            continue  # a torn or foreign line: the manifest rebuild below covers its run
        out[entry.run_id] = entry
    return out


def load_index(results_dir: Path) -> list[RunEntry]:
    """Every run under ``results_dir``, oldest first; rebuilds missing entries from manifests."""
    results_dir = Path(results_dir)
    path = results_dir / INDEX_NAME
    entries = _read(path)
    on_disk = {p.parent.name for p in results_dir.glob("*/manifest.json")} if results_dir.is_dir() else set()
    stale = [rid for rid, e in entries.items() if rid in on_disk and e.status == "running"]
    missing = sorted((on_disk - set(entries)) | set(stale))
    added = [e for e in (_manifest_entry(results_dir / rid) for rid in missing)
             if e is not None and e != entries.get(e.run_id)]
    if added:
        _append(path, added)
        entries.update({e.run_id: e for e in added})
    # Runs whose folder was deleted drop out of the listing.
    kept = [e for rid, e in entries.items() if rid in on_disk]
    return sorted(kept, key=lambda e: (e.created, e.run_id))


def rebuild_index(results_dir: Path) -> list[RunEntry]:
    """Rewrite the index from the manifests alone (``jitfarm runs --rebuild``)."""
    results_dir = Path(results_dir)
    entries = [e for e in (_manifest_entry(p.parent) for p in sorted(results_dir.glob("*/manifest.json"))) if e]
    tmp = results_dir / f".{INDEX_NAME}.tmp"
    tmp.write_text("".join(e.to_json() + "\n" for e in entries))
    os.replace(tmp, results_dir / INDEX_NAME)
    return sorted(entries, key=lambda e: (e.created, e.run_id))
