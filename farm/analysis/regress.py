"""Across runs: `compare` two runs series by series, and find regressions in each track's history.

A track is one device slot and workload, (device id, implementation, op key, tuner), followed
across runs; its series identity (device fingerprint, browser version, ...) may change along the
way, and such a change is exactly what a regression report must name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from .load import load_samples
from .stats import BootstrapOptions, mann_whitney, percentile_ci
from .steps import StepOptions, detect_steps
from .tables import AnalysisOptions, LatencyGroups, latency_groups

TRACK = ["device_id", "impl", "op_key", "tuner"]
# What may change between two runs of a track, as (label, latency-table column).
CHANGE_FIELDS = (("jitfarm commit", "commit"), ("browser", "browser"), ("adapter", "adapter"),
                 ("device fingerprint", "device_fingerprint"), ("baseline library", "library_version"),
                 ("backend used", "backend_used"))


@dataclass(frozen=True)
class CompareOptions:
    """Verdict rules: a change is 'faster'/'slower' when the Mann-Whitney p < ``alpha``, the CI of
    the ratio excludes 1 and the change is at least ``min_effect``; fewer than ``min_samples``
    good samples on either side is 'not enough data'."""

    alpha: float = 0.05
    min_effect: float = 0.02
    min_samples: int = 5
    bootstrap: BootstrapOptions = BootstrapOptions()


def _changes(before: pd.Series, after: pd.Series) -> dict[str, tuple[str, str]]:
    out = {}
    for label, col in CHANGE_FIELDS:
        a, b = before.get(col), after.get(col)
        a = None if a is None or (isinstance(a, float) and math.isnan(a)) else str(a)
        b = None if b is None or (isinstance(b, float) and math.isnan(b)) else str(b)
        if a != b:
            out[label] = (a or "-", b or "-")
    return out


def compare_runs(results_dir: Path, run_a: str, run_b: str, options: CompareOptions = CompareOptions()) -> pd.DataFrame:
    """Per track present in either run: medians, change (B / A - 1) with CI, p, verdict, and
    what changed between the two runs for it."""
    lg = latency_groups(load_samples(results_dir, [run_a, run_b]), AnalysisOptions(bootstrap=options.bootstrap))
    return compare_groups(lg, run_a, run_b, options)


def compare_groups(lg: LatencyGroups, run_a: str, run_b: str, options: CompareOptions = CompareOptions()) -> pd.DataFrame:
    """``compare_runs`` on latency groups already computed (which may hold more runs)."""
    t = lg.table.reset_index().rename(columns={"index": "_i"})
    a = t[t["run_id"] == run_a].set_index(TRACK)
    b = t[t["run_id"] == run_b].set_index(TRACK)
    rows = []
    for key in sorted(set(a.index) | set(b.index)):
        ra = a.loc[key] if key in a.index else None
        rb = b.loc[key] if key in b.index else None
        row = dict(zip(TRACK, key))
        row.update(op_label=(rb if rb is not None else ra)["op_label"],
                   a_ms=ra["median_ms"] if ra is not None else np.nan, n_a=int(ra["n"]) if ra is not None else 0,
                   b_ms=rb["median_ms"] if rb is not None else np.nan, n_b=int(rb["n"]) if rb is not None else 0,
                   change=np.nan, ci_low=np.nan, ci_high=np.nan, p_value=np.nan, verdict="not enough data",
                   changed="")
        if ra is not None and rb is not None:
            row["changed"] = "; ".join(f"{k}: {x} -> {y}" for k, (x, y) in _changes(ra, rb).items())
        if row["n_a"] >= options.min_samples and row["n_b"] >= options.min_samples:
            ia, ib = int(ra["_i"]), int(rb["_i"])
            with np.errstate(invalid="ignore", divide="ignore"):
                ratio = lg.replicates[ib] / lg.replicates[ia]
            lo, hi = percentile_ci(ratio[None, :], options.bootstrap.level)
            p = mann_whitney(lg.samples(ib), lg.samples(ia)).p
            change = row["b_ms"] / row["a_ms"] - 1.0
            verdict = "same"
            if p < options.alpha and abs(change) >= options.min_effect:
                if lo[0] > 1.0:
                    verdict = "slower"
                elif hi[0] < 1.0:
                    verdict = "faster"
            row.update(change=change, ci_low=lo[0] - 1.0, ci_high=hi[0] - 1.0, p_value=p, verdict=verdict)
        rows.append(row)
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------ history and steps
@dataclass
class Timeline:
    """Run-by-run medians (with CIs) of every track in some runs, oldest run first, and the
    steps found in each track (``steps``: track key -> list of (run position, Step))."""

    table: pd.DataFrame
    steps: dict[tuple, list] = field(default_factory=dict)


def timeline(results_dir: Path, runs: list[tuple[str, str]], options: StepOptions = StepOptions(),
             bootstrap: BootstrapOptions = BootstrapOptions()) -> tuple[Timeline, LatencyGroups]:
    """``runs``: (run id, created) pairs. Returns each track's points and steps."""
    lg = latency_groups(load_samples(results_dir, [r for r, _ in runs]), AnalysisOptions(bootstrap=bootstrap))
    return timeline_of(lg, dict(runs), options), lg


def timeline_of(lg: LatencyGroups, created: dict[str, str], options: StepOptions = StepOptions()) -> Timeline:
    """The timeline of latency groups already computed; ``created`` orders their runs."""
    t = lg.table.reset_index().rename(columns={"index": "_i"})
    t["created"] = t["run_id"].map(created)
    t = t.sort_values(["created", "run_id"]).reset_index(drop=True)
    z = 1.959964
    with np.errstate(invalid="ignore", divide="ignore"):
        t["log_se"] = (np.log(t["ci_high_ms"].astype(float)) - np.log(t["ci_low_ms"].astype(float))) / (2 * z)
    steps: dict[tuple, list] = {}
    good = t[t["n"] > 0]
    for key, grp in good.groupby(TRACK, sort=True):
        samples = [lg.samples(int(i)) for i in grp["_i"]]
        found = detect_steps(np.log(grp["median_ms"].to_numpy(dtype=float)), grp["log_se"].to_numpy(dtype=float),
                             samples, options)
        if found:
            steps[key] = [(grp.index[s.index], s) for s in found]
    return Timeline(t, steps)


@dataclass(frozen=True)
class Finding:
    """Series that changed together at one run: same direction, device vendor and browser build
    after the change. ``worst`` is the largest relative slowdown (or speedup, for improvements)."""

    run_id: str
    created: str
    direction: str             # "slower" | "faster"
    vendor: str
    browser: str
    worst: float
    series: tuple[dict, ...]
    changed: dict[str, tuple[str, str]]


def findings(tl: Timeline, *, since: str | None = None) -> list[Finding]:
    """Group the steps of a timeline into findings, newest first. ``since`` (ISO time or run id)
    keeps steps whose first run after the change is at or after it."""
    t = tl.table
    since_time = None
    if since:
        hit = t.loc[t["run_id"] == since, "created"]
        since_time = hit.iloc[0] if len(hit) else since
    groups: dict[tuple, list] = {}
    by_track = t[t["n"] > 0].groupby(TRACK).groups if tl.steps else {}
    for key, steps in tl.steps.items():
        for pos, step in steps:
            after = t.loc[pos]
            if since_time is not None and str(after["created"]) < str(since_time):
                continue
            rows = by_track[key]
            prev = t.loc[rows[rows < pos].max()]
            direction = "slower" if step.ratio > 1 else "faster"
            gkey = (after["run_id"], direction, after["vendor"], after["browser"])
            groups.setdefault(gkey, []).append((key, step, prev, after))
    out = []
    for (run_id, direction, vendor, browser), items in groups.items():
        changed: dict[str, tuple[str, str]] = {}
        series = []
        for key, step, prev, after in items:
            delta = _changes(prev, after)
            changed.update(delta)
            series.append({**dict(zip(TRACK, key)), "op_label": after["op_label"], "before_ms": prev["median_ms"],
                           "after_ms": after["median_ms"], "change": step.ratio - 1.0, "z": step.z, "p": step.p,
                           "before_run": prev["run_id"]})
        worst = max((s["change"] for s in series), key=abs)
        created = str(items[0][3]["created"])
        out.append(Finding(run_id, created, direction, str(vendor), str(browser), worst,
                           tuple(sorted(series, key=lambda s: -abs(s["change"]))), changed))
    return sorted(out, key=lambda f: (f.created, f.run_id), reverse=True)


def regressions_over(found: Iterable[Finding], threshold: float) -> list[Finding]:
    """Findings that made something slower by at least ``threshold`` (0.05 = 5%)."""
    return [f for f in found if f.direction == "slower" and f.worst >= threshold]
