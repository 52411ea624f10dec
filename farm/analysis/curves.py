"""Tuning curves: best-so-far latency vs elapsed tuning seconds, per run, device and op.

``best_so_far_ms`` and ``elapsed_s`` come from the ``trials`` table (one row per candidate, in
the order the tuner evaluated them). A curve falls while the search finds faster configs; its
last point is the tuner's answer, which after the confirmation rounds (rows of ``phase``
'confirm') is the winner's median over all its samples and may lie above the luckiest single
measurement of the search. Tuning latencies use the tuner's timer (GPU timestamps when
the device has them) while the final comparison is wall clock; so the speedup at a time budget
is the measured final speedup scaled by a ratio of the same timer:
``speedup_at(t) = speedup_final * best_final / best_at(t)``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

CURVE_COLUMNS = ["run_id", "device_id", "op_key", "op_label", "elapsed_s", "best_so_far_ms"]


def _is_search(trials: pd.DataFrame) -> pd.Series:
    """Rows of candidates the search asked for (not the confirmation rounds' re-timings); tables
    written before the ``phase`` column existed hold search rows only."""
    return trials["phase"] != "confirm" if "phase" in trials else pd.Series(True, index=trials.index)


def tuning_curves(trials: pd.DataFrame) -> pd.DataFrame:
    """The points where the search's best-so-far improved, plus the last trial (the tuner's answer),
    per (run, device, op). Confirmation rounds add only that last point: between rounds their
    pooled medians may go up and down, which is no step of the search."""
    if trials.empty:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    t = trials[np.isfinite(trials["best_so_far_ms"].astype(float))].sort_values(
        ["run_id", "device_id", "op_key", "elapsed_s", "trial_index"])
    if t.empty:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    keys = ["run_id", "device_id", "op_key"]
    prev = t.groupby(keys, sort=False)["best_so_far_ms"].shift(1)
    last = ~t.duplicated(keys, keep="last")
    keep = (_is_search(t) & (prev.isna() | (t["best_so_far_ms"] < prev))) | last
    return t.loc[keep, CURVE_COLUMNS].reset_index(drop=True)


def tuning_summary(trials: pd.DataFrame, speedups: pd.DataFrame, at_s: float = 30.0,
                   curves: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per (run, device, op): trials (candidates the search tried; the confirmation rounds'
    re-timings are not counted), tuning seconds, final best (the tuner's answer: the curve's last
    point), best at ``at_s`` (the curve's last point by then), the time to get within 5% of the
    final best, and per baseline the speedup at ``at_s``. ``curves``: ``tuning_curves(trials)``
    when the caller has it already."""
    keys = ["run_id", "device_id", "op_key"]
    at_col = f"best_at_{int(at_s)}s_ms"
    cols = keys + ["op_label", "trials", "failed_trials", "tune_s", "best_ms", at_col, "time_to_5pct_s"]
    if trials.empty:
        return pd.DataFrame(columns=cols)
    t = trials.assign(_bad=~(trials["ok"].fillna(False).astype(bool) & trials["check_ok"].fillna(False).astype(bool)),
                      _search=_is_search(trials))
    t = t.assign(_bad=t["_bad"] & t["_search"])
    g = t.groupby(keys, sort=True)
    out = pd.DataFrame({"op_label": g["op_label"].first(), "trials": g["_search"].sum(), "failed_trials": g["_bad"].sum(),
                        "tune_s": g["elapsed_s"].max()})
    curves = tuning_curves(trials) if curves is None else curves
    cg = curves.groupby(keys, sort=True)  # curves are sorted by time within each key
    out["best_ms"] = cg["best_so_far_ms"].last()
    out[at_col] = curves[curves["elapsed_s"] <= at_s].groupby(keys)["best_so_far_ms"].last()
    near = curves.join(out["best_ms"], on=keys)
    out["time_to_5pct_s"] = near[near["best_so_far_ms"] <= near["best_ms"] * 1.05].groupby(keys)["elapsed_s"].min()
    out = out.reset_index()
    out["op_label"] = out["op_label"].fillna(out["op_key"])
    if not speedups.empty:
        wide = speedups.pivot_table(index=keys, columns="baseline", values="speedup", aggfunc="first", dropna=False)
        wide.columns = [f"speedup_at_{int(at_s)}s_vs_{b}" for b in wide.columns]
        out = out.join(wide, on=keys)
        scale = out["best_ms"] / out[at_col]
        for c in wide.columns:
            out[c] = out[c] * scale
    return out
