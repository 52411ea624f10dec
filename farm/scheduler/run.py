"""Plan a run, start the Ray actors, stream records, show progress."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from farm.config.experiments import ExperimentSpec
from farm.store.history import record_run
from farm.store.parquet import ParquetStore

from .actors import Aggregator, DeviceWorker
from .manifest import initial_manifest, new_run_id


@dataclass(frozen=True)
class RunOptions:
    results_dir: Path = Path("results")
    address: str | None = None  # None: local embedded Ray
    poll_s: float = 0.5


@dataclass
class RunOutcome:
    run_id: str
    run_dir: Path
    jobs: list[dict[str, Any]]
    devices: dict[str, dict[str, Any]]
    wall_s: float


def _init_ray(exp: ExperimentSpec, address: str | None) -> None:
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    kwargs: dict[str, Any] = dict(include_dashboard=False, logging_level=logging.WARNING,
                                  configure_logging=True, log_to_driver=True)
    if address:
        ray.init(address=address, **kwargs)
    else:
        # Each device is a custom resource so its actor lands where the device is attached.
        ray.init(resources={f"device:{d.id}": 1 for d in exp.devices}, **kwargs)


def _describe(info: dict[str, Any]) -> str:
    phase = info.get("phase", "waiting")
    if phase in ("opening", "ready", "waiting", "closed"):
        return phase + (f" · {info['adapter']}" if info.get("adapter") else "")
    trials = info.get("trials", 0)
    failed = info.get("failed", 0)
    return f"{phase} {info.get('op', '')} · {trials} trials" + (f" · {failed} failed" if failed else "")


def run_experiment(exp: ExperimentSpec, options: RunOptions = RunOptions(), *,
                   console: Console | None = None) -> RunOutcome:
    """Run every job of ``exp``; records land under ``results_dir/<run_id>/`` as they are made."""
    console = console or Console(stderr=True)
    run_id = new_run_id(exp.name)
    run_dir = options.results_dir / run_id
    store = ParquetStore(run_dir)
    store.write_manifest(initial_manifest(exp, run_id))
    t_start = time.perf_counter()
    console.print(f"[bold]run {run_id}[/] · {len(exp.jobs())} jobs on {len(exp.devices)} device(s) · results in {run_dir}")
    workers: dict[str, Any] = {}
    device_info: dict[str, dict[str, Any]] = {}
    summaries: list[dict[str, Any]] = []
    status = "failed"
    try:
        _init_ray(exp, options.address)
        here = ray.get_runtime_context().get_node_id()
        agg = ray.remote(num_cpus=0, max_concurrency=1)(Aggregator).options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False)).remote(str(run_dir.resolve()))
        worker_cls = ray.remote(num_cpus=0, max_concurrency=1, max_restarts=0)(DeviceWorker)
        for dev in exp.devices:
            workers[dev.id] = worker_cls.options(resources={f"device:{dev.id}": 1}).remote(dev, exp, run_id, agg)
        open_refs = {dev_id: w.open.remote() for dev_id, w in workers.items()}
        job_refs: dict[Any, tuple[str, Any]] = {}
        jobs_by_device: dict[str, list] = {d.id: [j for j in exp.jobs() if j.device_id == d.id] for d in exp.devices}
        with Progress(TextColumn("{task.fields[device]}"), BarColumn(bar_width=20), MofNCompleteColumn(),
                      TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                      transient=False) as progress:
            tasks = {d.id: progress.add_task("opening", total=len(jobs_by_device[d.id]), device=d.id)
                     for d in exp.devices}
            for dev_id, ref in open_refs.items():
                try:
                    device_info[dev_id] = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - the device is unusable; its jobs fail
                    message = str(getattr(exc, "cause", None) or exc).strip().splitlines()[-1]
                    device_info[dev_id] = {"device_id": dev_id, "error": message}
                    progress.update(tasks[dev_id], description=f"[red]failed to open: {message}")
                    rows = [{"run_id": run_id, "job_id": j.job_id, "device_id": dev_id, "op_key": j.op.key(),
                             "op_label": j.label, "ts": time.time(), "attempt": 1, "status": "failed",
                             "error_class": "infra", "error": message} for j in jobs_by_device[dev_id]]
                    ray.get(agg.append.remote("jobs", rows))
                    summaries.extend(rows)
                    continue
                for job in jobs_by_device[dev_id]:
                    job_refs[workers[dev_id].run_job.remote(job)] = (dev_id, job)
            store.update_manifest(devices=device_info)
            pending = list(job_refs)
            while pending:
                done, pending = ray.wait(pending, num_returns=len(pending), timeout=options.poll_s)
                for ref in done:
                    dev_id, job = job_refs[ref]
                    try:
                        summaries.append(ray.get(ref))
                    except Exception as exc:  # noqa: BLE001 - actor died; record it
                        row = {"run_id": run_id, "job_id": job.job_id, "device_id": dev_id, "op_key": job.op.key(),
                               "op_label": job.label, "ts": time.time(), "attempt": 1, "status": "failed",
                               "error_class": "device", "error": str(exc).strip().splitlines()[-1]}
                        ray.get(agg.append.remote("jobs", [row]))
                        summaries.append(row)
                    progress.advance(tasks[dev_id])
                snap = ray.get(agg.snapshot.remote())
                for dev_id, info in snap.items():
                    if dev_id in tasks and "error" not in device_info.get(dev_id, {}):
                        progress.update(tasks[dev_id], description=_describe(info))
            for dev_id in tasks:
                if "error" not in device_info.get(dev_id, {}):
                    progress.update(tasks[dev_id], description="done")
        status = "finished"
    finally:
        for w in workers.values():
            try:
                ray.get(w.close.remote(), timeout=60)
            except Exception:  # noqa: BLE001 - closing is best effort; Ray kills the actor next
                pass
        wall_s = time.perf_counter() - t_start
        store.update_manifest(status=status, wall_s=wall_s, devices=device_info)
        record_run(options.results_dir, run_dir)
        if ray.is_initialized():
            ray.shutdown()
    return RunOutcome(run_id, run_dir, summaries, device_info, wall_s)
