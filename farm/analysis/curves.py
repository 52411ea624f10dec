"""Tuning curves: best-so-far latency against tuning time, per (device, op, strategy), from a run's trials."""

from __future__ import annotations

import pandas as pd

from farm.store.parquet import ParquetStore

CURVE_COLUMNS = ["device_id", "op_key", "template", "strategy", "trial_index", "elapsed_s", "best_so_far_ms",
                 "speedup_vs_first"]


def tuning_curves(trials: pd.DataFrame | ParquetStore) -> pd.DataFrame:
    """One row per trial, in tuning order, with ``elapsed_s`` (x) and ``best_so_far_ms`` (y) of a
    step curve, and ``speedup_vs_first``: the first passing config's cost over best-so-far (nnJIT's
    "8.2x within 30 s" reads off this column). Trials before the first passing config have no y."""
    df = trials.read("trials") if isinstance(trials, ParquetStore) else trials
    if df.empty:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    df = df.sort_values(["device_id", "op_key", "template", "strategy", "ts", "trial_index"], kind="stable")
    keys = ["device_id", "op_key", "template", "strategy"]
    first_ok = df["median_ms"].where(df["ok"].fillna(False).astype(bool)).groupby([df[k] for k in keys]).transform("first")
    out = df[keys + ["trial_index", "elapsed_s", "best_so_far_ms"]].copy()
    out["speedup_vs_first"] = first_ok / out["best_so_far_ms"]
    return out.reset_index(drop=True)[CURVE_COLUMNS]
