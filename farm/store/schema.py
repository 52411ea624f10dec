"""Record schemas of a run's Parquet tables. Bump FORMAT_VERSION on any incompatible change.

Tables (one folder of part files each under ``results/<run_id>/``):
- ``trials``: one row per tuning candidate evaluated on a device (failures included).
- ``measurements``: the final comparison; one row per (job, implementation, round).
- ``jobs``: one row per job attempt with its outcome and best config.
- ``device_state``: one row per device before each job: the covariates its driver reads
  (phones: battery, thermal status, Chrome version, GPU renderer) and the cool-down wait.

Every table has ``flags`` (list of strings): the validity flags of farm/validity.py (the device's,
from its probe, plus the record's own), so analysis can exclude or group by them.
Format 2 added ``flags`` everywhere and the cold numbers and sampling outcome of measurements.
Every row carries the job ``attempt`` that made it: (job_id, attempt) names one attempt.

Documented column by column, with the history index and series identity, in farm/store/SCHEMA.md.
"""

from __future__ import annotations

import pyarrow as pa

FORMAT_VERSION = 2

_common = [
    ("run_id", pa.string()),
    ("job_id", pa.string()),
    ("device_id", pa.string()),
    ("device_fingerprint", pa.string()),
    ("adapter", pa.string()),
    ("op_key", pa.string()),
    ("op_label", pa.string()),
    ("ts", pa.float64()),
    ("flags", pa.list_(pa.string())),
    ("attempt", pa.int64()),          # the job attempt (1, 2, ...) that made the row
]

SCHEMAS: dict[str, pa.Schema] = {
    "trials": pa.schema(_common + [
        ("template", pa.string()),
        ("template_version", pa.string()),
        ("strategy", pa.string()),
        ("trial_index", pa.int64()),
        ("config", pa.string()),
        ("ok", pa.bool_()),
        ("check_ok", pa.bool_()),
        ("error_class", pa.string()),
        ("error", pa.string()),
        ("compile_ms", pa.float64()),
        ("first_run_ms", pa.float64()),
        ("samples_ms", pa.list_(pa.float64())),
        ("median_ms", pa.float64()),
        ("reps", pa.int64()),
        ("timer_kind", pa.string()),
        ("timer_resolution_ms", pa.float64()),
        ("max_abs_err", pa.float64()),
        ("elapsed_s", pa.float64()),
        ("best_so_far_ms", pa.float64()),
        ("phase", pa.string()),           # "search", or "confirm": a leader timed again at the end
    ]),
    "measurements": pa.schema(_common + [
        ("impl", pa.string()),            # "jit" or a baseline name such as "tfjs-webgpu"
        ("library", pa.string()),
        ("library_version", pa.string()),
        ("backend_requested", pa.string()),
        ("backend_used", pa.string()),
        ("impl_adapter", pa.string()),    # adapter the implementation actually ran on
        ("config", pa.string()),
        ("round", pa.int64()),
        ("ok", pa.bool_()),
        ("check_ok", pa.bool_()),
        ("error_class", pa.string()),
        ("error", pa.string()),
        ("samples_ms", pa.list_(pa.float64())),
        ("median_ms", pa.float64()),
        ("reps", pa.int64()),
        ("timer_kind", pa.string()),
        ("timer_resolution_ms", pa.float64()),
        ("compile_ms", pa.float64()),     # cold: kernel compile / library init + model build
        ("first_run_ms", pa.float64()),   # cold: first run with readback
        ("stop", pa.string()),            # why sampling stopped: fixed | ci | max-samples | max-time
        ("ci_low_ms", pa.float64()),      # 95 % CI of the median (order statistics), None below 6 samples
        ("ci_high_ms", pa.float64()),
        ("gpu_ms", pa.list_(pa.float64())),  # GPU-timestamp times where the implementation has them
    ]),
    "jobs": pa.schema(_common + [
        ("status", pa.string()),          # "ok" | "failed" | "skipped" (not run: device quarantined)
        ("error_class", pa.string()),
        ("error", pa.string()),
        ("template", pa.string()),
        ("strategy", pa.string()),
        ("space_size", pa.int64()),
        ("raw_space_size", pa.int64()),
        ("trials", pa.int64()),
        ("stopped", pa.string()),
        ("best_config", pa.string()),
        ("best_tune_ms", pa.float64()),
        ("tune_s", pa.float64()),
        ("cache", pa.string()),           # kernel cache use: "reuse" | "warm-start" | "cold"; null when off
        ("device_busy_s", pa.float64()),
    ]),
    "device_state": pa.schema([
        ("run_id", pa.string()),
        ("job_id", pa.string()),
        ("device_id", pa.string()),
        ("ts", pa.float64()),
        ("attempt", pa.int64()),
        ("battery_level", pa.int64()),
        ("battery_temp_c", pa.float64()),
        ("thermal_status", pa.string()),
        ("chrome_version", pa.string()),
        ("gpu_renderer", pa.string()),
        ("cooldown_wait_s", pa.float64()),
        ("cooled", pa.bool_()),
        ("covariates", pa.string()),      # every covariate the driver read, as JSON
        ("flags", pa.list_(pa.string())),
    ]),
}


def device_state_row(run_id: str, job_id: str, device_id: str, ts: float, covariates: dict,
                     flags: list[str]) -> dict:
    """A ``device_state`` row from a driver's covariates dict."""
    import json

    row = {"run_id": run_id, "job_id": job_id, "device_id": device_id, "ts": ts, "flags": flags,
           "covariates": json.dumps(covariates, sort_keys=True, default=str)}
    for name in ("battery_level", "battery_temp_c", "thermal_status", "chrome_version", "gpu_renderer",
                 "cooldown_wait_s", "cooled"):
        row[name] = covariates.get(name)
    return row


def to_table(table: str, rows: list[dict]) -> pa.Table:
    """Rows as an Arrow table of ``table``'s schema; missing keys are nulls, unknown keys are an error."""
    schema = SCHEMAS[table]
    names = set(schema.names)
    for row in rows:
        extra = set(row) - names
        if extra:
            raise KeyError(f"{table}: unknown columns {sorted(extra)}")
    cols = {name: [row.get(name) for row in rows] for name in schema.names}
    return pa.Table.from_pydict(cols, schema=schema)
