"""One call from run ids to every table (latency, speedups, geomeans, models, tuning)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import pandas as pd

from .curves import tuning_curves, tuning_summary
from .load import load_samples, load_trials
from .model_latency import ModelOps, model_table
from .tables import Analysis, AnalysisOptions, geomean_table, latency_groups, speedup_table


def analyze_runs(results_dir: Path, run_ids: Iterable[str], *, models: Iterable[ModelOps] = (),
                 options: AnalysisOptions = AnalysisOptions(), at_s: float = 30.0) -> Analysis:
    """Every table of ``run_ids`` under ``results_dir``. Missing runs are a UserError."""
    run_ids = list(run_ids)
    ss = load_samples(results_dir, run_ids)
    lg = latency_groups(ss, options)
    speedups, reps = speedup_table(lg, options)
    geomeans = geomean_table(speedups, reps, options.bootstrap.level)
    models = list(models)
    mt = model_table(lg, models, options.bootstrap.level) if models else pd.DataFrame()
    if models and not mt.empty:
        geo = mt[mt["impl"] != "jit"].dropna(subset=["op_geomean_speedup"])
        extra = pd.DataFrame({"run_id": geo["run_id"], "scope": "model:" + geo["model"],
                              "device_id": geo["device_id"], "baseline": geo["impl"],
                              "geomean": geo["op_geomean_speedup"], "ci_low": geo["op_geomean_ci_low"],
                              "ci_high": geo["op_geomean_ci_high"], "n_ops": geo["model"].map({m.name: len(m.ops) for m in models}),
                              "n_failed": 0})
        geomeans = pd.concat([geomeans, extra], ignore_index=True)
    trials = load_trials(results_dir, run_ids)
    curves = tuning_curves(trials)
    return Analysis(latency=lg.table.drop(columns=["good_rows", "rows"], errors="ignore"), speedups=speedups,
                    geomeans=geomeans, models=mt, tuning=tuning_summary(trials, speedups, at_s, curves),
                    curves=curves)
