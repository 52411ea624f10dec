"""`jitfarm dashboard`: one self-contained HTML file (inline CSS and SVG, no script, no network).

Sections: runs; speedup heatmap (device x workload, per baseline) from each device's latest run;
per-device speedup bars with 95% CI whiskers; tuning curves; the latency table with CIs; the
validity flags; and the timeline of every series across the runs with detected changes marked.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from html import escape
from pathlib import Path

import pandas as pd

from farm.analysis.curves import tuning_curves
from farm.analysis.load import load_trials
from farm.analysis.regress import TRACK, findings, timeline
from farm.analysis.steps import StepOptions
from farm.analysis.tables import AnalysisOptions, geomean_table, speedup_table

from . import svg

CSS = """
body{font-family:sans-serif;margin:20px;color:#222;max-width:1400px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:12px;margin:8px 0}
td,th{border:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f4f4f4}.num{text-align:right;font-variant-numeric:tabular-nums}
.flag{background:#fff3cd;border-radius:3px;padding:0 4px;margin-right:3px;font-size:11px}
.grid{display:flex;flex-wrap:wrap;gap:14px}.grid>div{border:1px solid #eee;padding:4px}
.note{color:#666;font-size:12px}.bad{color:#c00}.good{color:#080}
"""


@dataclass(frozen=True)
class DashboardOptions:
    """Limits that keep the page readable: at most ``max_timelines`` series (changed ones first)."""

    max_timelines: int = 60
    curve_at_s: float = 30.0
    steps: StepOptions = StepOptions()
    analysis: AnalysisOptions = AnalysisOptions()


def _table(df: pd.DataFrame, columns: list[tuple[str, str]], num: set[str] = frozenset()) -> str:
    head = "".join(f"<th>{escape(label)}</th>" for label, _ in columns)
    rows = []
    for _, r in df.iterrows():
        cells = []
        for _, col in columns:
            v = r[col]
            cls = ' class="num"' if col in num else ""
            cells.append(f"<td{cls}>{v if isinstance(v, _Raw) else escape(_fmt(v))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


class _Raw(str):
    """Already-escaped HTML for a table cell."""


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _flags_html(flags) -> _Raw:
    return _Raw("".join(f'<span class="flag">{escape(str(f))}</span>' for f in (flags if flags is not None else [])))


def _workload(labels: pd.Series, keys: pd.Series, shapes: pd.Series) -> list[str]:
    """'attn proj 64x128x128', or just the op key when the op has no label of its own."""
    return [k if not isinstance(lab, str) or lab in ("", k) else f"{lab} {sh}" for lab, k, sh in zip(labels, keys, shapes)]


def _latest(df: pd.DataFrame, keys: list[str], created: dict[str, str]) -> pd.DataFrame:
    """Rows of each key's latest run."""
    if df.empty:
        return df
    d = df.assign(_created=df["run_id"].map(created)).sort_values(["_created", "run_id"])
    return d.groupby(keys, sort=True).tail(1).drop(columns="_created")


def write_dashboard(results_dir: Path, runs: list[tuple[str, str]], output: Path,
                    options: DashboardOptions = DashboardOptions()) -> Path:
    """Write the dashboard of ``runs`` ((run id, created) pairs) to ``output``; returns its path."""
    created = dict(runs)
    tl, lg = timeline(results_dir, runs, options.steps, options.analysis.bootstrap)
    speedups, reps = speedup_table(lg, options.analysis)
    latest_sp = _latest(speedups, ["device_id", "op_key", "baseline"], created)
    geo = geomean_table(latest_sp.reset_index(drop=True), reps[latest_sp.index.to_numpy()] if len(latest_sp) else reps,
                        options.analysis.bootstrap.level)
    latency = _latest(lg.table, ["device_id", "impl", "op_key"], created)
    sections = [_runs_section(runs, tl.table), _heatmap_section(latest_sp), _bars_section(latest_sp, geo),
                _curves_section(results_dir, runs, created, options.curve_at_s), _latency_section(latency),
                _flags_section(latency), _timeline_section(tl, options.max_timelines)]
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    html = (f'<!doctype html><html><head><meta charset="utf-8"><title>jitfarm dashboard</title>'
            f'<style>{CSS}</style></head><body><h1>jitfarm results</h1>'
            f'<p class="note">{len(runs)} run(s), written {stamp}. Speedup = baseline median / tuned median '
            f'(wall clock, same page, interleaved rounds); intervals are 95% bootstrap CIs. Hover a mark for '
            f'its value.</p>' + "".join(sections) + "</body></html>")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(html)
    return output


def _runs_section(runs: list[tuple[str, str]], table: pd.DataFrame) -> str:
    info = table.groupby("run_id").agg(devices=("device_id", lambda s: ", ".join(sorted(set(s)))),
                                       commit=("commit", "first"))
    df = pd.DataFrame([{"run_id": r, "created": c[:19].replace("T", " "),
                        "devices": info["devices"].get(r, "-") if r in info.index else "-",
                        "commit": str(info["commit"].get(r, "-"))[:10] if r in info.index else "-"}
                       for r, c in reversed(runs)])
    return "<h2>Runs</h2>" + _table(df, [("run id", "run_id"), ("started", "created"), ("commit", "commit"),
                                          ("devices", "devices")])


def _heatmap_section(sp: pd.DataFrame) -> str:
    if sp.empty:
        return "<h2>Speedup heatmap</h2><p>No comparisons yet.</p>"
    out = ["<h2>Speedup heatmap (device x workload, latest run of each device)</h2><div class='grid'>"]
    for baseline, grp in sp.groupby("baseline", sort=True):
        rows = sorted(grp["device_id"].unique())
        grp = grp.assign(workload=_workload(grp["op_label"], grp["op_key"], grp["shape"]))
        cols = sorted(grp["workload"].unique())
        cells = {}
        for _, r in grp.iterrows():
            tip = (f"{r['device_id']} · {r['workload']}: {r['speedup']:.3g}x [{r['speedup_ci_low']:.3g}, "
                   f"{r['speedup_ci_high']:.3g}], p={r['p_value']:.2g}"
                   + (" · significant" if r["significant"] else " · not significant")
                   + (f" · flags: {', '.join(r['flags'])}" if len(r["flags"]) else ""))
            cells[(r["device_id"], r["workload"])] = (r["speedup"], tip)
        out.append(f"<div>{svg.heatmap(rows, cols, cells, title=f'speedup vs {baseline}')}</div>")
    return "".join(out) + "</div>"


def _bars_section(sp: pd.DataFrame, geo: pd.DataFrame) -> str:
    if sp.empty:
        return ""
    out = ["<h2>Speedup per device (95% CI whiskers; dashed line: 1x)</h2><div class='grid'>"]
    for (device, baseline), grp in sp.groupby(["device_id", "baseline"], sort=True):
        g = geo[(geo["scope"] == "device") & (geo["device_id"] == device) & (geo["baseline"] == baseline)]
        labels = _workload(grp["op_label"], grp["op_key"], grp["shape"])
        values, lows, highs = list(grp["speedup"]), list(grp["speedup_ci_low"]), list(grp["speedup_ci_high"])
        if not g.empty:
            labels.append("geomean")
            values.append(g["geomean"].iloc[0])
            lows.append(g["ci_low"].iloc[0])
            highs.append(g["ci_high"].iloc[0])
        out.append("<div>" + svg.bars(labels, values, lows, highs, title=f"{device} vs {baseline}") + "</div>")
    return "".join(out) + "</div>"


def _curves_section(results_dir: Path, runs: list[tuple[str, str]], created: dict[str, str], at_s: float) -> str:
    curves = tuning_curves(load_trials(results_dir, [r for r, _ in runs]))
    if curves.empty:
        return "<h2>Tuning curves</h2><p>No tuning trials recorded.</p>"
    latest = _latest(curves.drop_duplicates(["run_id", "device_id", "op_key"]), ["device_id", "op_key"], created)
    keep = set(zip(latest["run_id"], latest["device_id"], latest["op_key"]))
    curves = curves[[k in keep for k in zip(curves["run_id"], curves["device_id"], curves["op_key"])]]
    out = [f"<h2>Tuning curves: best-so-far latency vs tuning seconds (dashed: {at_s:g} s)</h2><div class='grid'>"]
    for device, grp in curves.groupby("device_id", sort=True):
        series = [(str(lab if isinstance(lab, str) and lab else key), list(g["elapsed_s"]), list(g["best_so_far_ms"]))
                  for (key, lab), g in grp.groupby(["op_key", "op_label"], sort=True, dropna=False)]
        out.append("<div>" + svg.lines(series, title=f"{device}", x_label="tuning time (s)",
                                       y_label="best so far (ms)", marker_x=at_s) + "</div>")
    return "".join(out) + "</div>"


def _latency_section(lat: pd.DataFrame) -> str:
    if lat.empty:
        return ""
    df = lat.assign(ci=[f"[{a:.4g}, {b:.4g}]" if math.isfinite(a) else "-" for a, b in zip(lat["ci_low_ms"], lat["ci_high_ms"])],
                    flag_html=[_flags_html(f) for f in lat["flags"]])
    return "<h2>Latency (median ms, 95% CI, latest run per series)</h2>" + _table(
        df.sort_values(["device_id", "op_key", "impl"]),
        [("device", "device_id"), ("op", "op_label"), ("shape", "shape"), ("impl", "impl"), ("median ms", "median_ms"),
         ("95% CI", "ci"), ("n", "n"), ("browser", "browser"), ("adapter", "adapter"), ("run", "run_id"),
         ("flags", "flag_html")], num={"median_ms", "n"})


def _flags_section(lat: pd.DataFrame) -> str:
    flagged = lat[[len(f) > 0 for f in lat["flags"]]] if not lat.empty else lat
    head = "<h2>Validity flags</h2>"
    if flagged.empty:
        return head + "<p class='good'>No series flagged.</p>"
    df = flagged.assign(flag_html=[_flags_html(f) for f in flagged["flags"]],
                        detail=[(e or "") for e in flagged["error"]])
    return head + "<p class='note'>Flagged figures should not be trusted as they are.</p>" + _table(
        df, [("device", "device_id"), ("op", "op_label"), ("impl", "impl"), ("flags", "flag_html"), ("error", "detail")])


def _timeline_section(tl, max_series: int) -> str:
    t = tl.table
    if t.empty:
        return ""
    found = findings(tl)
    head = "<h2>Timeline of every series across runs (red: detected change)</h2>"
    if found:
        items = "".join(f"<li class='{'bad' if f.direction == 'slower' else 'good'}'>{escape(f.run_id)}: "
                        f"{len(f.series)} series {f.direction} (worst {f.worst:+.1%}), {escape(f.vendor)} / "
                        f"{escape(f.browser)}; changed: "
                        f"{escape('; '.join(f'{k}: {a} -> {b}' for k, (a, b) in f.changed.items()) or 'nothing recorded')}"
                        f"</li>" for f in found)
        head += f"<ul>{items}</ul>"
    by_track = t.groupby(TRACK).groups
    keys = sorted(by_track, key=lambda k: (k not in tl.steps, k))[:max_series]
    out = [head, "<div class='grid'>"]
    for key in keys:
        grp = t.loc[by_track[key]]
        points = [(r["run_id"], r["median_ms"], r["ci_low_ms"], r["ci_high_ms"]) for _, r in grp.iterrows()]
        positions = list(grp.index)
        steps = [positions.index(pos) for pos, _ in tl.steps.get(key, []) if pos in positions]
        label = grp["op_label"].dropna().iloc[0] if grp["op_label"].notna().any() else key[2]
        out.append("<div>" + svg.timeline(points, steps, title=f"{key[0]} · {key[1]} · {label}") + "</div>")
    return "".join(out) + "</div>"
