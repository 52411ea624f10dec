"""Per-run result tables: latency with CIs, speedups with CIs and significance, geomeans.

Every figure is computed from the raw wall-clock samples of the comparison (the ``measurements``
table): the median of all good samples of one implementation in one job, a 95% bootstrap CI, and
for speedups the ratio of medians (baseline / tuned) with a bootstrap CI of the ratio. A speedup
is *significant* when the Mann-Whitney U test rejects equality (p < alpha) and the CI excludes 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .load import JIT, SampleSet
from .stats import BootstrapOptions, geomean, geomean_replicates, grouped_medians, mann_whitney, percentile_ci

LATENCY_KEY = ["run_id", "device_id", "device_fingerprint", "browser", "vendor", "adapter", "impl", "op_key",
               "op", "shape", "tuner"]


@dataclass(frozen=True)
class AnalysisOptions:
    """Thresholds of the validity flags and the significance test."""

    bootstrap: BootstrapOptions = BootstrapOptions()
    alpha: float = 0.05
    few_samples: int = 10        # fewer good samples than this: flag 'few-samples'
    wide_ci: float = 0.2         # CI wider than this fraction of the median: flag 'wide-ci'


@dataclass
class LatencyGroups:
    """The latency table plus the bootstrap replicates of each row's median, and each row's
    samples (sorted values sliced by ``starts``/``counts``) for rank tests."""

    table: pd.DataFrame
    replicates: np.ndarray
    values: np.ndarray
    starts: np.ndarray
    counts: np.ndarray

    def samples(self, i: int) -> np.ndarray:
        return self.values[self.starts[i]:self.starts[i] + self.counts[i]]


@dataclass
class Analysis:
    """Every table of some runs. DataFrames, so they export to CSV/JSON as they are."""

    latency: pd.DataFrame
    speedups: pd.DataFrame
    geomeans: pd.DataFrame
    models: pd.DataFrame = field(default_factory=pd.DataFrame)
    tuning: pd.DataFrame = field(default_factory=pd.DataFrame)
    curves: pd.DataFrame = field(default_factory=pd.DataFrame)

    def tables(self) -> dict[str, pd.DataFrame]:
        return {"latency": self.latency, "speedups": self.speedups, "geomeans": self.geomeans,
                "models": self.models, "tuning": self.tuning, "curves": self.curves}


def latency_groups(ss: SampleSet, options: AnalysisOptions = AnalysisOptions()) -> LatencyGroups:
    """One row per (run, device, impl, op) with n, median, CI, versions and validity flags."""
    rows = ss.rows
    if rows.empty:
        empty = pd.DataFrame(columns=LATENCY_KEY + ["n", "median_ms", "ci_low_ms", "ci_high_ms", "flags"])
        return LatencyGroups(empty, np.empty((0, options.bootstrap.replicates)), np.empty(0),
                             np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64))
    keys = rows[LATENCY_KEY].fillna("-")
    gid = keys.groupby(LATENCY_KEY, sort=True, observed=True).ngroup().to_numpy()
    n_groups = int(gid.max()) + 1
    sample_gid = gid[ss.row_of_value]
    gm = grouped_medians(ss.values, sample_gid, n_groups, options.bootstrap)
    lo, hi = gm.ci(options.bootstrap.level)
    counts = gm.n

    frame = keys.assign(_g=gid, op_label=rows["op_label"], library_version=rows["library_version"],
                        backend_requested=rows["backend_requested"], backend_used=rows["backend_used"],
                        impl_adapter=rows["impl_adapter"], error=rows["error"], error_class=rows["error_class"],
                        good=rows["good"], commit=rows["commit"])
    grouped = frame.groupby("_g", sort=True)
    # GroupBy.first skips missing values: the first recorded version, adapter or error per group.
    agg = grouped[LATENCY_KEY + ["op_label", "library_version", "backend_requested", "backend_used",
                                 "impl_adapter", "error", "error_class", "commit"]].first()
    agg["rows"] = grouped["good"].size()
    agg["good_rows"] = grouped["good"].sum()
    stored = _stored_flags(rows, gid, n_groups)
    table = agg.reset_index(drop=True)
    table["n"] = counts
    table["median_ms"] = gm.median
    table["ci_low_ms"] = lo
    table["ci_high_ms"] = hi
    table["flags"] = _flags(table, stored, options)
    return LatencyGroups(table, gm.replicates, gm.sorted_values, gm.starts, counts)


def _stored_flags(rows: pd.DataFrame, gid: np.ndarray, n_groups: int) -> list[set[str]]:
    out: list[set[str]] = [set() for _ in range(n_groups)]
    if "flags" not in rows.columns:
        return out
    for g, flags in zip(gid, rows["flags"]):
        if flags is not None and len(flags):
            out[g].update(str(f) for f in flags)
    return out


def _flags(t: pd.DataFrame, stored: list[set[str]], o: AnalysisOptions) -> list[list[str]]:
    failed = t["n"].to_numpy() == 0
    few = (t["n"].to_numpy() < o.few_samples) & ~failed
    with np.errstate(invalid="ignore", divide="ignore"):
        wide = ((t["ci_high_ms"] - t["ci_low_ms"]) / t["median_ms"]).to_numpy() > o.wide_ci
    other = (t["impl_adapter"].notna() & (t["impl_adapter"] != t["adapter"])).to_numpy()
    fallback = (t["backend_used"].notna() & t["backend_requested"].notna()
                & (t["backend_used"] != t["backend_requested"])).to_numpy()
    partial = (t["good_rows"] < t["rows"]).to_numpy() & ~failed
    out = []
    for i in range(len(t)):
        f = set(stored[i])
        for cond, name in ((failed, "failed"), (few, "few-samples"), (wide, "wide-ci"),
                           (other, "adapter-mismatch"), (fallback, "backend-mismatch"), (partial, "some-rounds-failed")):
            if cond[i]:
                f.add(name)
        out.append(sorted(f))
    return out


def speedup_table(lg: LatencyGroups, options: AnalysisOptions = AnalysisOptions()) -> tuple[pd.DataFrame, np.ndarray]:
    """One row per (run, device, op, baseline): tuned and baseline medians with CIs, speedup =
    baseline median / tuned median with its bootstrap CI, Mann-Whitney p and significance.
    Also returns the bootstrap replicates of each speedup (rows aligned with the table)."""
    t = lg.table
    cols = ["run_id", "device_id", "device_fingerprint", "browser", "vendor", "adapter", "op_key", "op", "shape",
            "op_label", "baseline", "jit_ms", "jit_ci_low", "jit_ci_high", "n_jit", "baseline_ms",
            "baseline_ci_low", "baseline_ci_high", "n_baseline", "speedup", "speedup_ci_low", "speedup_ci_high",
            "p_value", "significant", "flags"]
    if t.empty:
        return pd.DataFrame(columns=cols), np.empty((0, options.bootstrap.replicates))
    idx = t.reset_index().rename(columns={"index": "_i"})
    jit = idx[idx["impl"] == JIT]
    base = idx[idx["impl"] != JIT]
    pair = base.merge(jit, on=["run_id", "device_id", "op_key"], suffixes=("_b", "_j"))
    if pair.empty:
        return pd.DataFrame(columns=cols), np.empty((0, options.bootstrap.replicates))
    bi, ji = pair["_i_b"].to_numpy(), pair["_i_j"].to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        reps = lg.replicates[bi] / lg.replicates[ji]
        speed = t["median_ms"].to_numpy()[bi] / t["median_ms"].to_numpy()[ji]
    lo, hi = percentile_ci(reps, options.bootstrap.level)
    pvals = np.full(len(pair), np.nan)
    for k, (b, j) in enumerate(zip(bi, ji)):
        if lg.counts[b] and lg.counts[j]:
            pvals[k] = mann_whitney(lg.samples(b), lg.samples(j)).p
    excl = (lo > 1.0) | (hi < 1.0)
    out = pd.DataFrame({
        "run_id": pair["run_id"], "device_id": pair["device_id"],
        "device_fingerprint": pair["device_fingerprint_j"], "browser": pair["browser_j"],
        "vendor": pair["vendor_j"], "adapter": pair["adapter_j"], "op_key": pair["op_key"],
        "op": pair["op_j"], "shape": pair["shape_j"], "op_label": pair["op_label_j"], "baseline": pair["impl_b"],
        "jit_ms": pair["median_ms_j"], "jit_ci_low": pair["ci_low_ms_j"], "jit_ci_high": pair["ci_high_ms_j"],
        "n_jit": pair["n_j"], "baseline_ms": pair["median_ms_b"], "baseline_ci_low": pair["ci_low_ms_b"],
        "baseline_ci_high": pair["ci_high_ms_b"], "n_baseline": pair["n_b"], "speedup": speed,
        "speedup_ci_low": lo, "speedup_ci_high": hi, "p_value": pvals,
        "significant": (pvals < options.alpha) & excl,
        "flags": [sorted(set(a) | set(b)) for a, b in zip(pair["flags_j"], pair["flags_b"])],
    }).reset_index(drop=True)
    return out, reps


def geomean_table(speedups: pd.DataFrame, reps: np.ndarray, level: float = 0.95) -> pd.DataFrame:
    """Geomean speedup with a bootstrap CI per (run, device, baseline) and per (run, baseline)
    across devices. Rows with a failed side are left out and counted in ``n_ops``'s complement."""
    out = []
    if speedups.empty:
        return pd.DataFrame(columns=["run_id", "scope", "device_id", "baseline", "geomean", "ci_low", "ci_high",
                                     "n_ops", "n_failed"])
    for by, scope in ((["run_id", "device_id", "baseline"], "device"), (["run_id", "baseline"], "all devices")):
        for key, grp in speedups.groupby(by, sort=True):
            key = dict(zip(by, key))
            ok = np.isfinite(grp["speedup"].to_numpy()) & (grp["speedup"].to_numpy() > 0)
            r = geomean_replicates(reps[grp.index.to_numpy()[ok]]) if ok.any() else np.full(reps.shape[1], np.nan)
            lo, hi = percentile_ci(r[None, :], level)
            v = grp["speedup"].to_numpy()[ok]
            out.append({"run_id": key["run_id"], "scope": scope, "device_id": key.get("device_id", "*"),
                        "baseline": key["baseline"], "geomean": geomean(v),
                        "ci_low": lo[0], "ci_high": hi[0], "n_ops": int(ok.sum()), "n_failed": int((~ok).sum())})
    return pd.DataFrame(out)
