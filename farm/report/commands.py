"""`jitfarm runs | report | compare | regress | dashboard`: the result commands of the CLI."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console

from farm.config.errors import UserError


def _percent(text: str) -> float:
    """'5%' or '0.05' -> 0.05."""
    try:
        value = float(text[:-1]) / 100.0 if text.endswith("%") else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a percentage like 5% or 0.05") from None
    if not 0 <= value < 10:
        raise argparse.ArgumentTypeError(f"{text!r} is out of range; use e.g. 5%")
    return value


def _jsonable(df: pd.DataFrame) -> list[dict]:
    def fix(v):
        if isinstance(v, np.ndarray):
            return [fix(x) for x in v.tolist()]
        if isinstance(v, (list, tuple)):
            return [fix(x) for x in v]
        if isinstance(v, (np.floating, float)):
            return None if math.isnan(float(v)) else float(v)
        if isinstance(v, np.integer):
            return int(v)
        if isinstance(v, np.bool_):
            return bool(v)
        return v
    return [{k: fix(v) for k, v in row.items()} for row in df.to_dict(orient="records")]


def export_tables(tables: dict[str, pd.DataFrame], *, csv_dir: str | None, json_path: str | None,
                  err: Console) -> None:
    """Each table as ``<csv_dir>/<name>.csv`` and/or all of them as one JSON object of record lists."""
    if csv_dir:
        folder = Path(csv_dir)
        folder.mkdir(parents=True, exist_ok=True)
        for name, df in tables.items():
            out = df.copy()
            for col in out.columns:
                if out[col].map(lambda v: isinstance(v, (list, np.ndarray))).any():
                    out[col] = out[col].map(lambda v: ";".join(map(str, v)) if v is not None else "")
            out.to_csv(folder / f"{name}.csv", index=False)
        err.print(f"wrote {len(tables)} CSV files to {folder}")
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps({k: _jsonable(v) for k, v in tables.items()}, indent=1))
        err.print(f"wrote {json_path}")


def _runs(args, out: Console, err: Console) -> int:
    from farm.store.history import load_index, rebuild_index

    from .tables import runs_table

    results = Path(args.results_dir)
    entries = rebuild_index(results) if args.rebuild else load_index(results)
    if args.json:
        out.print_json(json.dumps([json.loads(e.to_json()) for e in entries]))
    elif not entries:
        out.print(f"no runs under {results}/ yet. Run one: jitfarm run experiments/quickstart.yaml")
    else:
        out.print(runs_table(entries))
    return 0


def _report(args, out: Console, err: Console) -> int:
    from farm.analysis.analyze import analyze_runs
    from farm.analysis.load import run_dirs
    from farm.analysis.model_latency import ModelOps
    from farm.analysis.overhead import run_overhead
    from farm.analysis.summary import summarize
    from farm.store.parquet import ParquetStore

    from . import tables as ct
    from .console import print_results

    store = ParquetStore(run_dirs(Path(args.results_dir), [args.run_id])[0])
    print_results(summarize(store), list(store.read_manifest()["experiment"].get("baselines", [])), out)
    for device in run_overhead(store):
        out.print(device.describe(), highlight=False, markup=False)
    a = analyze_runs(Path(args.results_dir), [args.run_id], models=[ModelOps.parse(m) for m in args.model or []],
                     at_s=args.at)
    if a.latency.empty:
        out.print(f"run {args.run_id} has no measurements yet (its jobs may have failed before comparing); "
                  f"see {args.results_dir}/{args.run_id}/jobs")
    else:
        out.print(ct.latency_table(a.latency))
        out.print(ct.speedup_table(a.speedups))
        out.print(ct.geomean_table(a.geomeans))
    if not a.models.empty:
        out.print(ct.model_table(a.models))
    if not a.tuning.empty:
        out.print(ct.tuning_table(a.tuning, args.at))
    export_tables(a.tables(), csv_dir=args.csv, json_path=args.json, err=err)
    return 0


def _compare(args, out: Console, err: Console) -> int:
    from farm.analysis.regress import CompareOptions, compare_runs

    from .tables import compare_table

    df = compare_runs(Path(args.results_dir), args.run_a, args.run_b,
                      CompareOptions(min_effect=args.min_effect, alpha=args.alpha))
    out.print(compare_table(df, args.run_a, args.run_b))
    counts = df["verdict"].value_counts().to_dict() if not df.empty else {}
    out.print(" · ".join(f"{v}: {n}" for v, n in sorted(counts.items())) or "no series in either run")
    export_tables({"compare": df}, csv_dir=args.csv, json_path=args.json, err=err)
    return 0


def _history_runs(results_dir: Path, last: int | None, experiment: str | None = None) -> list[tuple[str, str]]:
    from farm.store.history import load_index

    entries = [e for e in load_index(results_dir) if e.status != "running"
               and (experiment is None or e.experiment == experiment)]
    if last:
        entries = entries[-last:]
    return [(e.run_id, e.created) for e in entries]


def _regress(args, out: Console, err: Console) -> int:
    from farm.analysis.regress import findings, regressions_over, timeline
    from farm.analysis.steps import StepOptions

    from .tables import findings_table

    runs = _history_runs(Path(args.results_dir), args.last, args.experiment)
    if len(runs) < 2:
        out.print(f"{len(runs)} finished run(s) under {args.results_dir}/: a history needs at least 2")
        return 0
    tl, _ = timeline(Path(args.results_dir), runs, StepOptions(min_effect=args.min_effect))
    found = findings(tl, since=args.since)
    tracks = tl.table.groupby(["device_id", "impl", "op_key", "tuner"]).ngroups
    if found:
        out.print(findings_table(found, args.fail_on))
    bad = regressions_over(found, args.fail_on)
    out.print(f"{len(runs)} runs, {tracks} series: {len(found)} change(s) found, "
              f"{len(bad)} regression(s) of {args.fail_on:.0%} or more"
              + (f" since {args.since}" if args.since else ""))
    if args.json:
        Path(args.json).write_text(json.dumps([{**f.__dict__, "series": list(f.series)} for f in found],
                                              indent=1, default=float))
    return 1 if bad else 0


def _dashboard(args, out: Console, err: Console) -> int:
    from .dashboard import DashboardOptions, write_dashboard

    results = Path(args.results_dir)
    if args.run_ids:
        from farm.store.history import load_index
        known = {e.run_id: e.created for e in load_index(results)}
        for rid in args.run_ids:
            if rid not in known:
                raise UserError(f"no run {rid!r} under {results}/. Fix: pass a run id that `jitfarm runs` lists")
        runs = sorted(((r, known[r]) for r in args.run_ids), key=lambda x: x[1])
    else:
        runs = _history_runs(results, args.last, args.experiment)
    if not runs:
        raise UserError(f"no finished runs under {results}/. Fix: run one first: jitfarm run experiments/quickstart.yaml")
    path = write_dashboard(results, runs, Path(args.output or results / "dashboard.html"), DashboardOptions())
    out.print(f"dashboard of {len(runs)} run(s): {path}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the result commands to the ``jitfarm`` parser."""
    def results_dir(p):
        p.add_argument("--results-dir", default="results", help="folder of results/<run_id>/ (default: results)")

    p = sub.add_parser("runs", help="list the runs in the history index")
    results_dir(p)
    p.add_argument("--rebuild", action="store_true", help="rewrite results/index.jsonl from the run manifests")
    p.add_argument("--json", action="store_true", help="print the entries as JSON")
    p.set_defaults(func=_runs)

    p = sub.add_parser("report", help="tables of one run: latency and speedups with CIs, geomeans, tuning")
    p.add_argument("run_id")
    results_dir(p)
    p.add_argument("--csv", metavar="DIR", help="also write every table as DIR/<table>.csv")
    p.add_argument("--json", metavar="FILE", help="also write every table into one JSON file")
    p.add_argument("--model", action="append", metavar="NAME=OP*N,...",
                   help="model-level latency from an op list, e.g. tiny=matmul_f32_64x64x32*12,matmul_f32_1x128x128*2")
    p.add_argument("--at", type=float, default=30.0, help="tuning budget (s) for the speedup-at-budget column (default 30)")
    p.set_defaults(func=_report)

    p = sub.add_parser("compare", help="per series change between two runs, with CI and a verdict")
    p.add_argument("run_a")
    p.add_argument("run_b")
    results_dir(p)
    p.add_argument("--min-effect", type=_percent, default=0.02, help="smallest change called faster/slower (default 2%%)")
    p.add_argument("--alpha", type=float, default=0.05, help="Mann-Whitney significance level (default 0.05)")
    p.add_argument("--csv", metavar="DIR")
    p.add_argument("--json", metavar="FILE")
    p.set_defaults(func=_compare)

    p = sub.add_parser("regress", help="change points in every series' history; exit 1 on a regression")
    results_dir(p)
    p.add_argument("--since", help="only changes at or after this run id or ISO time (e.g. 2026-11-01)")
    p.add_argument("--fail-on", type=_percent, default=0.05, help="exit 1 when a series got this much slower (default 5%%)")
    p.add_argument("--min-effect", type=_percent, default=0.02, help="smallest change reported (default 2%%)")
    p.add_argument("--last", type=int, default=None, help="use only the last N finished runs")
    p.add_argument("--experiment", help="use only runs of this experiment (by name)")
    p.add_argument("--json", metavar="FILE", help="also write the findings as JSON")
    p.set_defaults(func=_regress)

    p = sub.add_parser("dashboard", help="one self-contained HTML file of runs (default: every finished run)")
    p.add_argument("run_ids", nargs="*")
    results_dir(p)
    p.add_argument("-o", "--output", help="HTML file to write (default: <results-dir>/dashboard.html)")
    p.add_argument("--last", type=int, default=None, help="without run ids: only the last N finished runs")
    p.add_argument("--experiment", help="without run ids: only runs of this experiment (by name)")
    p.set_defaults(func=_dashboard)
