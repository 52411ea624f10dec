"""Console tables (rich) of the analysis: latency, speedups, geomeans, models, tuning, compare, regress."""

from __future__ import annotations

import math

import pandas as pd
from rich.table import Table

from farm.analysis.regress import Finding
from farm.store.history import RunEntry


def _f(x: float, fmt: str = "{:.3f}") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else fmt.format(x)


def _ci(lo: float, hi: float, fmt: str = "{:.3f}") -> str:
    return f"[{_f(lo, fmt)}, {_f(hi, fmt)}]"


def _flags(flags) -> str:
    return ", ".join(flags) if flags is not None and len(flags) else ""


def latency_table(df: pd.DataFrame) -> Table:
    t = Table(title="Latency per device, op and implementation (wall clock; median, 95% bootstrap CI)")
    for c in ("device", "op", "impl", "ms (median)", "95% CI", "n", "browser", "flags"):
        t.add_column(c, overflow="fold", justify="right" if c in ("ms (median)", "n") else "left")
    for _, r in df.iterrows():
        t.add_row(r["device_id"], f"{r['op_label']}\n[dim]{r['shape']}[/]", r["impl"], _f(r["median_ms"]),
                  _ci(r["ci_low_ms"], r["ci_high_ms"]), str(r["n"]), str(r["browser"]),
                  f"[yellow]{_flags(r['flags'])}[/]" if _flags(r["flags"]) else "")
    return t


def speedup_table(df: pd.DataFrame) -> Table:
    t = Table(title="Speedup of the tuned kernel = baseline median / tuned median (95% bootstrap CI)")
    for c in ("device", "op", "baseline", "tuned ms", "baseline ms", "speedup", "95% CI", "p (MWU)", "significant", "flags"):
        t.add_column(c, overflow="fold")
    for _, r in df.iterrows():
        sig = "[green]yes[/]" if r["significant"] else "no"
        t.add_row(r["device_id"], f"{r['op_label']}\n[dim]{r['shape']}[/]", r["baseline"], _f(r["jit_ms"]),
                  _f(r["baseline_ms"]), _f(r["speedup"], "{:.2f}x"), _ci(r["speedup_ci_low"], r["speedup_ci_high"], "{:.2f}"),
                  _f(r["p_value"], "{:.2g}"), sig, _flags(r["flags"]))
    return t


def geomean_table(df: pd.DataFrame) -> Table:
    t = Table(title="Geomean speedup (95% bootstrap CI)")
    for c in ("scope", "device", "baseline", "geomean", "95% CI", "ops", "failed"):
        t.add_column(c)
    for _, r in df.iterrows():
        t.add_row(r["scope"], str(r["device_id"]), r["baseline"], _f(r["geomean"], "{:.2f}x"),
                  _ci(r["ci_low"], r["ci_high"], "{:.2f}"), str(r["n_ops"]), str(r["n_failed"]))
    return t


def model_table(df: pd.DataFrame) -> Table:
    t = Table(title="Model latency = sum over its ops of count x op latency (95% CI)")
    for c in ("model", "device", "impl", "ms", "95% CI", "speedup", "95% CI ", "missing ops"):
        t.add_column(c, overflow="fold")
    for _, r in df.iterrows():
        t.add_row(r["model"], r["device_id"], r["impl"], _f(r["latency_ms"]), _ci(r["ci_low_ms"], r["ci_high_ms"]),
                  _f(r["speedup"], "{:.2f}x"), _ci(r["speedup_ci_low"], r["speedup_ci_high"], "{:.2f}")
                  if not math.isnan(r["speedup"]) else "", r["missing_ops"])
    return t


def tuning_table(df: pd.DataFrame, at_s: float = 30.0) -> Table:
    t = Table(title=f"Tuning: best-so-far (tuner's timer) and speedup at {int(at_s)} s of tuning")
    at_col = f"best_at_{int(at_s)}s_ms"
    sp_cols = [c for c in df.columns if c.startswith(f"speedup_at_{int(at_s)}s_vs_")]
    for c in ["device", "op", "trials (failed)", "tune s", "best ms", f"best at {int(at_s)} s", "to within 5% (s)"] + \
            [c.replace(f"speedup_at_{int(at_s)}s_vs_", f"speedup@{int(at_s)}s vs ") for c in sp_cols]:
        t.add_column(c, overflow="fold")
    for _, r in df.iterrows():
        t.add_row(r["device_id"], str(r["op_label"]), f"{r['trials']} ({r['failed_trials']})", _f(r["tune_s"], "{:.1f}"),
                  _f(r["best_ms"]), _f(r[at_col]), _f(r["time_to_5pct_s"], "{:.1f}"),
                  *[_f(r[c], "{:.2f}x") for c in sp_cols])
    return t


def runs_table(entries: list[RunEntry]) -> Table:
    t = Table(title="Runs (results/index.jsonl)")
    for c in ("run id", "started", "status", "experiment", "commit", "devices"):
        t.add_column(c, overflow="fold")
    for e in entries:
        devs = "\n".join(f"{d['id']}" + (f" · {d.get('adapter')}" if d.get("adapter") else "")
                         + (f" · {d.get('browser')}" if d.get("browser") not in (None, "-") else "") for d in e.devices)
        commit = (e.commit or "-")[:10] + ("+dirty" if e.dirty else "")
        color = {"finished": "green", "running": "yellow"}.get(e.status, "red")
        t.add_row(e.run_id, e.created[:19].replace("T", " "), f"[{color}]{e.status}[/]", e.experiment, commit, devs)
    return t


def compare_table(df: pd.DataFrame, run_a: str, run_b: str) -> Table:
    t = Table(title=f"{run_b} vs {run_a}: change = B / A - 1 (95% bootstrap CI), Mann-Whitney U")
    for c in ("device", "op", "impl", "A ms", "B ms", "change", "95% CI", "p", "verdict", "what changed"):
        t.add_column(c, overflow="fold")
    colors = {"faster": "green", "slower": "red", "same": "white", "not enough data": "yellow"}
    for _, r in df.iterrows():
        t.add_row(r["device_id"], str(r["op_label"]), r["impl"], _f(r["a_ms"]), _f(r["b_ms"]),
                  _f(r["change"], "{:+.1%}"), _ci(r["ci_low"], r["ci_high"], "{:+.1%}"), _f(r["p_value"], "{:.2g}"),
                  f"[{colors[r['verdict']]}]{r['verdict']}[/]", r["changed"])
    return t


def findings_table(found: list[Finding], threshold: float) -> Table:
    t = Table(title=f"Changes found in the history (regressions over {threshold:.0%} fail)")
    for c in ("at run", "direction", "vendor / browser", "worst", "series", "what changed"):
        t.add_column(c, overflow="fold")
    for f in found:
        color = "red" if f.direction == "slower" and f.worst >= threshold else ("yellow" if f.direction == "slower" else "green")
        series = "\n".join(f"{s['device_id']} {s['impl']} {s['op_label']}: {s['before_ms']:.3f} -> {s['after_ms']:.3f} ms "
                           f"({s['change']:+.1%})" for s in f.series[:8])
        if len(f.series) > 8:
            series += f"\n... and {len(f.series) - 8} more"
        changed = "\n".join(f"{k}: {a} -> {b}" for k, (a, b) in f.changed.items()) or "nothing recorded"
        t.add_row(f"{f.run_id}\n[dim]{f.created[:19]}[/]", f"[{color}]{f.direction}[/]", f"{f.vendor}\n{f.browser}",
                  f"[{color}]{f.worst:+.1%}[/]", series, changed)
    return t
