"""Tuning curves: best-so-far latency vs elapsed tuning seconds, per run, device and op.

``best_so_far_ms`` and ``elapsed_s`` come from the ``trials`` table (one row per candidate, in
the order the tuner evaluated them). Tuning latencies use the tuner's timer (GPU timestamps when
the device has them) while the final comparison is wall clock; so the speedup at a time budget
is the measured final speedup scaled by a ratio of the same timer:
``speedup_at(t) = speedup_final * best_final / best_at(t)``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

CURVE_COLUMNS = ["run_id", "device_id", "op_key", "op_label", "elapsed_s", "best_so_far_ms"]


def tuning_curves(trials: pd.DataFrame) -> pd.DataFrame:
    """The points where best-so-far improved (plus the last trial), per (run, device, op)."""
    if trials.empty:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    t = trials[np.isfinite(trials["best_so_far_ms"].astype(float))].sort_values(
        ["run_id", "device_id", "op_key", "elapsed_s", "trial_index"])
    if t.empty:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    keys = ["run_id", "device_id", "op_key"]
    prev = t.groupby(keys, sort=False)["best_so_far_ms"].shift(1)
    last = ~t.duplicated(keys, keep="last")
    keep = prev.isna() | (t["best_so_far_ms"] < prev) | last
    return t.loc[keep, CURVE_COLUMNS].reset_index(drop=True)


def best_at(curve: pd.DataFrame, seconds: float) -> float:
    """Best-so-far latency of one curve at ``seconds`` of tuning (NaN if nothing had passed yet)."""
    before = curve[curve["elapsed_s"] <= seconds]
    return float(before["best_so_far_ms"].min()) if not before.empty else float("nan")


def tuning_summary(trials: pd.DataFrame, speedups: pd.DataFrame, at_s: float = 30.0) -> pd.DataFrame:
    """Per (run, device, op): trials, tuning seconds, final best, best at ``at_s``, the time to
    get within 5% of the final best, and per baseline the speedup at ``at_s``."""
    cols = ["run_id", "device_id", "op_key", "op_label", "trials", "failed_trials", "tune_s", "best_ms",
            f"best_at_{int(at_s)}s_ms", "time_to_5pct_s"]
    if trials.empty:
        return pd.DataFrame(columns=cols)
    curves = tuning_curves(trials)
    rows = []
    for (run_id, device_id, op_key), grp in trials.groupby(["run_id", "device_id", "op_key"], sort=True):
        c = curves[(curves["run_id"] == run_id) & (curves["device_id"] == device_id) & (curves["op_key"] == op_key)]
        best = float(c["best_so_far_ms"].min()) if not c.empty else float("nan")
        at = best_at(c, at_s)
        within = c[c["best_so_far_ms"] <= best * 1.05]
        good = (grp["ok"].fillna(False) & grp["check_ok"].fillna(False))
        row = {"run_id": run_id, "device_id": device_id, "op_key": op_key,
               "op_label": grp["op_label"].dropna().iloc[0] if grp["op_label"].notna().any() else op_key,
               "trials": len(grp), "failed_trials": int((~good).sum()),
               "tune_s": float(grp["elapsed_s"].max()), "best_ms": best, f"best_at_{int(at_s)}s_ms": at,
               "time_to_5pct_s": float(within["elapsed_s"].min()) if not within.empty else float("nan")}
        if not speedups.empty:
            sp = speedups[(speedups["run_id"] == run_id) & (speedups["device_id"] == device_id)
                          & (speedups["op_key"] == op_key)]
            for _, s in sp.iterrows():
                row[f"speedup_at_{int(at_s)}s_vs_{s['baseline']}"] = s["speedup"] * best / at if at > 0 else np.nan
        rows.append(row)
    return pd.DataFrame(rows)
