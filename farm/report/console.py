"""Console tables of a run's results."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from farm.analysis.summary import JobSummary, Latency


def _ms(lat: Latency | None) -> str:
    if lat is None:
        return "-"
    if lat.median_ms is None:
        return f"[red]failed[/] ({lat.error[:60]})" if lat.error else "-"
    return f"{lat.median_ms:.3f} (n={lat.n})"


def results_table(summaries: list[JobSummary], baselines: list[str]) -> Table:
    """device, adapter, op and shape, best config, tuned ms (median, n), each baseline's ms, speedup."""
    table = Table(title="JIT-tuned kernels vs baselines (wall clock, same page, interleaved)")
    for col in ("device", "adapter", "op (M x N x K)", "best config", "tuned ms (median, n)"):
        table.add_column(col, overflow="fold")
    for b in baselines:
        table.add_column(f"{b} ms (median, n)", overflow="fold")
        table.add_column(f"speedup vs {b}", justify="right")
    for s in summaries:
        shape = s.op_key.split("_")[-1]
        row = [s.device_id, s.adapter, f"{s.op_label}\n{shape}",
               s.best_config or (f"[red]{s.status}[/]: {(s.error or '')[:80]}"), _ms(s.tuned)]
        for b in baselines:
            lat = s.baselines.get(b)
            row.append(_ms(lat) + (f"\n[dim]on {lat.adapter}[/]" if lat and lat.adapter and lat.adapter != s.adapter else ""))
            sp = s.speedup(b)
            row.append(f"{sp:.2f}x" if sp is not None else "-")
        table.add_row(*row)
    return table


def print_results(summaries: list[JobSummary], baselines: list[str], console: Console | None = None) -> None:
    (console or Console()).print(results_table(summaries, baselines))
