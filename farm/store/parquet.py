"""A run's result folder: a manifest and append-only Parquet part files per table."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.parquet as pq

from .schema import FORMAT_VERSION, SCHEMAS, to_table

if TYPE_CHECKING:
    import pandas as pd


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class ParquetStore:
    """Writes and reads ``results/<run_id>/``.

    Contract: ``append(table, rows)`` writes one new part file ``<table>/part-NNNNNN.parquet``
    atomically (temporary name, fsync, hard link to a free part name), so a crash leaves whole parts
    only (and at most a hidden ``.part-*.tmp`` that readers ignore), every row appended before it is
    on disk, and concurrent writers in several processes never replace each other's parts. ``read(table)`` returns all parts as one DataFrame (empty with
    the table's columns when there are none). Thread-safe within one process.
    """

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self._lock = threading.Lock()
        self._next: dict[str, int] = {}

    @property
    def run_id(self) -> str:
        return self.run_dir.name

    def _next_index(self, table: str) -> int:
        if table not in self._next:
            folder = self.run_dir / table
            existing = [int(p.stem.split("-")[1]) for p in folder.glob("part-*.parquet")] if folder.exists() else []
            self._next[table] = max(existing, default=-1) + 1
        idx = self._next[table]
        self._next[table] = idx + 1
        return idx

    def append(self, table: str, rows: list[dict[str, Any]]) -> Path | None:
        if table not in SCHEMAS:
            raise KeyError(f"unknown table {table!r}; known: {sorted(SCHEMAS)}")
        if not rows:
            return None
        arrow = to_table(table, rows)
        with self._lock:
            folder = self.run_dir / table
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".part-{os.getpid()}-{threading.get_ident()}.parquet.tmp"
            pq.write_table(arrow, tmp)
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            while True:
                path = folder / f"part-{self._next_index(table):06d}.parquet"
                try:
                    # link, not rename: never replaces a part that another writer of the same run
                    # (a resumed run while the old one's last worker still flushes) just made.
                    os.link(tmp, path)
                    break
                except FileExistsError:
                    self._next.pop(table, None)
            os.unlink(tmp)
        return path

    def read(self, table: str) -> pd.DataFrame:
        import pandas as pd  # here, not at the top: the aggregator only appends (pandas costs seconds to import)

        folder = self.run_dir / table
        parts = sorted(folder.glob("part-*.parquet")) if folder.exists() else []
        if not parts:
            return SCHEMAS[table].empty_table().to_pandas()
        return pd.concat([pq.read_table(p, schema=SCHEMAS[table]).to_pandas() for p in parts], ignore_index=True)

    # -- manifest -----------------------------------------------------------------------------
    def write_manifest(self, manifest: dict[str, Any]) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        body = {"format_version": FORMAT_VERSION, **manifest}
        _atomic_write_bytes(self.run_dir / "manifest.json", json.dumps(body, indent=2, sort_keys=True, default=str).encode())

    def read_manifest(self) -> dict[str, Any]:
        return json.loads((self.run_dir / "manifest.json").read_text())

    def update_manifest(self, **changes: Any) -> dict[str, Any]:
        with self._lock:
            manifest = self.read_manifest()
            manifest.update(changes)
            _atomic_write_bytes(self.run_dir / "manifest.json",
                                json.dumps(manifest, indent=2, sort_keys=True, default=str).encode())
        return manifest
