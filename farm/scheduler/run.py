"""Plan a run, start the Ray actors, stream records, show progress."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from farm.config.experiments import ExperimentSpec, JobSpec, resolve_cache
from farm.store.history import record_run
from farm.store.parquet import ParquetStore

from .actors import Aggregator, DeviceWorker
from .lanes import DeviceLane
from .manifest import initial_manifest, new_run_id
from .resume import plan_resume


@dataclass(frozen=True)
class RunOptions:
    """``address``: None for local embedded Ray, else 'auto' or a cluster address ('ray://host:10001',
    'host:6379'). ``send_ahead``: send each device's next job while one runs (farm/scheduler/lanes.py).
    ``resume``: the id of a run under ``results_dir`` to complete instead of starting a
    new one. ``replay_of``: the run this one replays (recorded in the manifest). ``runtime_env``:
    passed to ``ray.init`` (e.g. a ``worker_process_setup_hook``)."""

    results_dir: Path = Path("results")
    address: str | None = None
    poll_s: float = 0.5
    resume: str | None = None
    replay_of: str | None = None
    runtime_env: dict[str, Any] | None = None
    send_ahead: bool = True


@dataclass
class RunOutcome:
    run_id: str
    run_dir: Path
    devices: dict[str, dict[str, Any]]
    wall_s: float


def init_ray(device_ids: Iterable[str], options: RunOptions, **overrides: Any) -> None:
    """Start Ray as a run does: join the cluster at ``options.address``, or start a local instance
    offering the custom resource ``device:<id>`` for each of ``device_ids``. ``overrides``: more
    arguments for ``ray.init`` (bench/farm.py tries Ray's start-up settings with them)."""
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    kwargs: dict[str, Any] = dict(include_dashboard=False, logging_level=logging.WARNING,
                                  configure_logging=True, log_to_driver=True)
    if options.runtime_env:
        kwargs["runtime_env"] = options.runtime_env
    kwargs.update(overrides)
    if options.address:
        kwargs.pop("include_dashboard")
        ray.init(address=options.address, **kwargs)
    else:
        # A new local instance even if a `ray start` cluster runs on this machine. Each device is a
        # custom resource so its actor lands where the device is attached.
        ray.init(address="local", resources={f"device:{d}": 1 for d in device_ids}, **kwargs)


def _cluster_facts() -> dict[str, Any]:
    nodes = [{"node_id": n["NodeID"], "ip": n.get("NodeManagerAddress"), "alive": n.get("Alive"),
              "devices": sorted(k[len("device:"):] for k in n.get("Resources", {}) if k.startswith("device:"))}
             for n in ray.nodes()]
    return {"nodes": nodes, "driver_node_id": ray.get_runtime_context().get_node_id()}


def _prepare(exp: ExperimentSpec, options: RunOptions, console: Console) -> tuple[str, ParquetStore, list[tuple[JobSpec, int]]]:
    if options.resume:
        run_id = options.resume
        store = ParquetStore(options.results_dir / run_id)
        plan = plan_resume(store, exp)
        for tmp in store.run_dir.glob("*/.part-*.tmp"):
            tmp.unlink()  # a part that was being written when the driver died; never renamed, never read
        if plan.interrupted:
            store.append("jobs", plan.interrupted)
        resumed = list(store.read_manifest().get("resumed", [])) + [time.time()]
        store.update_manifest(status="running", resumed=resumed)
        console.print(f"[bold]resume {run_id}[/] · {len(plan.done)} jobs already ok · {len(plan.todo)} to run"
                      + (f" · {len(plan.interrupted)} interrupted attempt(s) recorded" if plan.interrupted else ""))
        return run_id, store, plan.todo
    run_id = new_run_id(exp.name)
    store = ParquetStore(options.results_dir / run_id)
    manifest = initial_manifest(exp, run_id)
    if options.replay_of:
        manifest["replay_of"] = options.replay_of
    store.write_manifest(manifest)
    console.print(f"[bold]run {run_id}[/] · {len(exp.jobs())} jobs on {len(exp.devices)} device(s) · results in {store.run_dir}")
    return run_id, store, [(job, 1) for job in exp.jobs()]


def run_experiment(exp: ExperimentSpec, options: RunOptions = RunOptions(), *,
                   console: Console | None = None) -> RunOutcome:
    """Run every job of ``exp`` (or, with ``options.resume``, every job of that run without an ok
    record); records land under ``results_dir/<run_id>/`` as they are made."""
    console = console or Console(stderr=True)
    exp = resolve_cache(exp, options.results_dir)
    run_id, store, plan = _prepare(exp, options, console)
    run_dir = store.run_dir
    t_start = time.perf_counter()
    lanes: dict[str, DeviceLane] = {}
    status = "failed"
    # Inside a program that already started Ray (a notebook, a test session) the run uses that
    # instance and leaves it running; otherwise it starts and stops its own.
    owns_ray = not ray.is_initialized()
    agg = None
    try:
        if owns_ray:
            init_ray([d.id for d in exp.devices], options)
        ray_ready_s = time.perf_counter() - t_start
        cluster = _cluster_facts()
        store.update_manifest(ray={"address": options.address or ("local" if owns_ray else "existing"), **cluster})
        here = ray.get_runtime_context().get_node_id()
        agg = ray.remote(num_cpus=0, max_concurrency=1)(Aggregator).options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False)).remote(str(run_dir.resolve()))
        worker_cls = ray.remote(num_cpus=0, max_concurrency=1, max_restarts=0)(DeviceWorker)

        def make_actor(dev: Any) -> Any:
            return worker_cls.options(resources={f"device:{dev.id}": 1}).remote(dev, exp, run_id, agg)

        def record(rows: list[dict[str, Any]]) -> None:
            ray.get(agg.append.remote("jobs", rows))

        offered = {d for n in cluster["nodes"] if n["alive"] for d in n["devices"]}
        # jobs go ahead only to workers that can see this process (not through a ray:// client)
        client = (options.address or "").startswith("ray://")
        driver = (here, os.getpid()) if options.send_ahead and not client else None
        for dev in exp.devices:
            lanes[dev.id] = DeviceLane(dev, exp, run_id, [p for p in plan if p[0].device_id == dev.id],
                                       make_actor, record, driver=driver)
        with Progress(TextColumn("{task.fields[device]}"), BarColumn(bar_width=20), MofNCompleteColumn(),
                      TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                      transient=False) as progress:
            tasks = {d: progress.add_task("opening", total=lane.total, device=d) for d, lane in lanes.items()}
            for dev_id, lane in lanes.items():
                lane.start(None if dev_id in offered else
                           f"no Ray node offers the resource device:{dev_id}. Fix: on the host the device is "
                           f"attached to, run `ray start --address <head> --resources '{{\"device:{dev_id}\": 1}}'`")
            devices_seen: dict[str, Any] = {}
            snap: dict[str, Any] = {}
            snap_at = 0.0
            while not all(lane.finished for lane in lanes.values()):
                refs = [r for lane in lanes.values() for r in lane.refs()]
                ready: list[Any] = []
                if refs:
                    ready, _ = ray.wait(refs, num_returns=1, timeout=options.poll_s)
                    if ready:  # take every call that is already done, not just the first
                        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
                now = time.monotonic()
                for lane in lanes.values():
                    lane.step(set(ready), now)
                # the live text at most every poll_s (a call to the aggregator each); counts at once
                if now - snap_at >= options.poll_s or all(lane.finished for lane in lanes.values()):
                    snap_at, snap = now, ray.get(agg.snapshot.remote())
                for dev_id, lane in lanes.items():
                    progress.update(tasks[dev_id], completed=lane.done, description=lane.describe(snap.get(dev_id, {})))
                devices_now = {d: lane.info for d, lane in lanes.items() if lane.info}
                if devices_now != devices_seen:
                    store.update_manifest(devices=devices_now)
                    devices_seen = {k: dict(v) for k, v in devices_now.items()}
        status = "finished"
        store.update_manifest(timing={"ray_init_s": ray_ready_s, "devices": {d: lane.timing() for d, lane in lanes.items()}})
    finally:
        for lane in lanes.values():
            try:
                lane.close()
            except Exception:  # noqa: BLE001 - Ray's shutdown ends what is left
                pass
        wall_s = time.perf_counter() - t_start
        devices = {d: lane.info for d, lane in lanes.items() if lane.info}
        manifest = store.read_manifest()
        store.update_manifest(status=status, wall_s=manifest.get("wall_s", 0.0) + wall_s if options.resume else wall_s,
                              devices={**manifest.get("devices", {}), **devices})
        record_run(options.results_dir, run_dir)
        if agg is not None and not owns_ray:
            ray.kill(agg)
        if owns_ray and ray.is_initialized():
            ray.shutdown()
    return RunOutcome(run_id, run_dir, devices, wall_s)
