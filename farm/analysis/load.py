"""Read runs from the store into flat arrays for analysis: one row per measurement, one value per sample.

Series identity (see farm/store/SCHEMA.md): (device fingerprint, browser version, backend, op,
shape, tuner). A *track* follows one device slot and workload across runs, (device id, backend,
op, shape, tuner), so a browser update or a driver change shows up as a change on the track.
"""

from __future__ import annotations

import re

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from farm.config.errors import UserError
from farm.store.history import browser_version
from farm.store.parquet import ParquetStore

SERIES_KEY = ("device_fingerprint", "browser", "impl", "op", "shape", "tuner")
TRACK_KEY = ("device_id", "impl", "op", "shape", "tuner")
JIT = "jit"

_MEAS_COLUMNS = ("run_id", "job_id", "device_id", "device_fingerprint", "adapter", "op_key", "op_label", "ts",
                 "impl", "library", "library_version", "backend_requested", "backend_used", "impl_adapter",
                 "round", "ok", "check_ok", "error_class", "error", "samples_ms", "flags", "attempt")


@dataclass(frozen=True)
class RunInfo:
    """What the manifest says about one run, flattened for analysis and the history index."""

    run_id: str
    created: str
    status: str
    experiment: str
    commit: str | None
    dirty: bool | None
    tuner: str
    baselines: tuple[str, ...]
    devices: dict[str, dict[str, Any]]
    versions: dict[str, str]
    format_version: int | None

    @staticmethod
    def from_manifest(m: dict[str, Any]) -> "RunInfo":
        exp = m.get("experiment") or {}
        tuner = exp.get("tuner") or {}
        devices: dict[str, dict[str, Any]] = {}
        for dev_id, info in (m.get("devices") or {}).items():
            versions = info.get("versions") or {}
            probe = info.get("probe") or {}
            adapter_info = probe.get("adapter") or {}
            cfg = (m.get("device_configs") or {}).get(dev_id) or {}
            devices[dev_id] = {
                "adapter": info.get("adapter"), "fingerprint": info.get("fingerprint"),
                "browser": browser_version(versions),
                "vendor": adapter_info.get("vendor") or (cfg.get("tags") or {}).get("vendor") or "unknown",
                "driver": cfg.get("driver"), "versions": versions, "error": info.get("error"),
            }
        return RunInfo(
            run_id=m.get("run_id", "?"), created=m.get("created", ""), status=m.get("status", "unknown"),
            experiment=exp.get("name", "?"), commit=(m.get("git") or {}).get("commit"),
            dirty=(m.get("git") or {}).get("dirty"),
            tuner=f"{tuner.get('template', '?')}/{tuner.get('strategy', '?')}",
            baselines=tuple(exp.get("baselines") or ()), devices=devices,
            versions=m.get("versions") or {}, format_version=m.get("format_version"),
        )


def run_dirs(results_dir: Path, run_ids: Iterable[str]) -> list[Path]:
    """The folders of ``run_ids`` under ``results_dir``; a UserError naming the fix if one is missing."""
    out = []
    for rid in run_ids:
        d = Path(results_dir) / rid
        if not (d / "manifest.json").is_file():
            raise UserError(f"no run {rid!r} under {results_dir}/. Fix: pass a run id that `jitfarm runs "
                            f"--results-dir {results_dir}` lists")
        out.append(d)
    return out


def read_table(run_dir: Path, table: str, columns: Iterable[str]) -> pa.Table:
    """The wanted columns of one table of one run that exist there (an optional column such as
    ``flags`` may be missing in older runs); empty when the table has no parts yet."""
    folder = run_dir / table
    parts = sorted(folder.glob("part-*.parquet")) if folder.is_dir() else []
    if not parts:
        return pa.table({})
    # Parts written by different versions may differ in optional columns: unify their schemas.
    schema = pa.unify_schemas([pq.read_schema(p) for p in parts], promote_options="permissive")
    dataset = pads.dataset([str(p) for p in parts], format="parquet", schema=schema)
    names = set(schema.names)
    return dataset.to_table(columns=[c for c in columns if c in names])


def latest_attempt(run_dir: Path, table: pa.Table) -> pa.Table:
    """Only the rows of each job's latest attempt (the one its last ``jobs`` record describes, else
    the highest attempt in ``table``): a retried or resumed job is counted once. Tables of runs
    without an ``attempt`` column are returned as they are."""
    if not table.num_rows or "attempt" not in table.column_names or "job_id" not in table.column_names:
        return table
    top = pc.max(table.column("attempt")).as_py()
    if top is None or top <= 1:
        return table  # no job was retried: nothing to drop
    rows = pd.DataFrame({"job_id": table.column("job_id").to_numpy(zero_copy_only=False),
                         "attempt": table.column("attempt").to_pandas().fillna(1).to_numpy()})
    wanted = rows.groupby("job_id")["attempt"].max()
    jobs = read_table(run_dir, "jobs", ("job_id", "attempt", "ts"))
    if jobs.num_rows and "attempt" in jobs.column_names:
        j = jobs.to_pandas()
        j["attempt"] = j["attempt"].fillna(1)
        last = j.sort_values(["attempt", "ts"]).groupby("job_id").tail(1).set_index("job_id")["attempt"]
        wanted.update(last[last.index.isin(wanted.index)])
    keep = rows["attempt"].to_numpy() == rows["job_id"].map(wanted).to_numpy()
    return table.filter(pa.array(keep))


_SHAPE = re.compile(r"^\d+(?:x\d+)*$")


def split_op_key(op_key: str) -> tuple[str, str]:
    """'matmul_f32_64x128x128' -> ('matmul_f32', '64x128x128'); the shape is the last
    'AxBx...' part wherever it stands: 'matmul_f32_64x64x64_bias_gelu' -> ('matmul_f32_bias_gelu',
    '64x64x64'), 'matmul_f32_b12_32x32x64' -> ('matmul_f32_b12', '32x32x64')."""
    parts = op_key.split("_")
    for i in range(len(parts) - 1, -1, -1):
        if _SHAPE.match(parts[i]):
            return "_".join(parts[:i] + parts[i + 1:]), parts[i]
    return op_key, ""


@dataclass
class SampleSet:
    """Measurements of some runs: ``rows`` (one per measurement row, with run, device, browser,
    tuner and validity columns) and every wall-clock sample of the good rows as ``values`` with
    ``row_of_value`` pointing back into ``rows``."""

    rows: pd.DataFrame
    values: np.ndarray
    row_of_value: np.ndarray
    runs: dict[str, RunInfo]


def load_samples(results_dir: Path, run_ids: Iterable[str]) -> SampleSet:
    tables = []
    runs: dict[str, RunInfo] = {}
    for run_dir in run_dirs(results_dir, run_ids):
        info = RunInfo.from_manifest(ParquetStore(run_dir).read_manifest())
        runs[run_dir.name] = info
        t = latest_attempt(run_dir, read_table(run_dir, "measurements", _MEAS_COLUMNS))
        if t.num_rows:
            t = t.append_column("_run", pa.array([run_dir.name] * t.num_rows))
            if "flags" not in t.column_names:
                t = t.append_column("flags", pa.nulls(t.num_rows, pa.list_(pa.string())))
            tables.append(t.select(sorted(t.column_names)))
    if not tables:
        empty = pd.DataFrame({c: pd.Series(dtype=object) for c in _MEAS_COLUMNS + SERIES_KEY + TRACK_KEY})
        return SampleSet(empty, np.empty(0), np.empty(0, dtype=np.int64), runs)
    table = pa.concat_tables(tables, promote_options="permissive")
    samples = table.column("samples_ms").combine_chunks()
    good = pc.and_(pc.fill_null(table.column("ok"), False), pc.fill_null(table.column("check_ok"), False))
    good_np = good.to_numpy(zero_copy_only=False)
    parents = pc.list_parent_indices(samples).to_numpy()
    values = pc.list_flatten(samples).to_numpy(zero_copy_only=False).astype(np.float64)
    keep = good_np[parents]
    rows = table.drop_columns(["samples_ms"]).to_pandas()
    rows["run_id"] = rows.pop("_run")
    _add_identity(rows, runs)
    rows["good"] = good_np
    return SampleSet(rows, values[keep], parents[keep].astype(np.int64), runs)


def _add_identity(rows: pd.DataFrame, runs: dict[str, RunInfo]) -> None:
    """Add browser, vendor, tuner, op and shape columns (by category, not per row, for speed)."""
    grouped = rows.groupby(["run_id", "device_id"], sort=False)
    codes = grouped.ngroup().to_numpy()  # numbered in order of first appearance, like drop_duplicates
    uniques = rows[["run_id", "device_id"]].drop_duplicates().itertuples(index=False)
    looked_up = []
    for rid, dev in uniques:
        info = runs[rid]
        d = info.devices.get(dev, {})
        looked_up.append((d.get("browser", "-"), d.get("vendor", "unknown"), info.tuner, info.commit or "-"))
    cols = np.array(looked_up, dtype=object).reshape(len(looked_up), 4)
    rows["browser"] = cols[codes, 0]
    rows["vendor"] = cols[codes, 1]
    # A baseline is not tuned: its 'tuner' is its library (the version is a changing attribute).
    rows["tuner"] = np.where(rows["impl"].to_numpy() == JIT, cols[codes, 2], rows["library"].fillna("-").to_numpy())
    rows["commit"] = cols[codes, 3]
    op_codes, op_uniques = pd.factorize(rows["op_key"])
    split = np.array([split_op_key(k) for k in op_uniques], dtype=object).reshape(len(op_uniques), 2)
    rows["op"] = split[op_codes, 0]
    rows["shape"] = split[op_codes, 1]
    rows["device_fingerprint"] = rows["device_fingerprint"].fillna("-")


def load_trials(results_dir: Path, run_ids: Iterable[str]) -> pd.DataFrame:
    """Tuning trials of some runs (curve columns only): run, device, op, elapsed, best-so-far."""
    cols = ("run_id", "device_id", "op_key", "op_label", "trial_index", "elapsed_s", "best_so_far_ms",
            "median_ms", "ok", "check_ok", "template_version", "job_id", "attempt", "phase")
    frames = []
    for run_dir in run_dirs(results_dir, run_ids):
        t = latest_attempt(run_dir, read_table(run_dir, "trials", cols))
        if t.num_rows:
            df = t.to_pandas()
            df["run_id"] = run_dir.name
            frames.append(df)
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
    return pd.concat(frames, ignore_index=True)
