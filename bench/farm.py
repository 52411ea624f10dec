"""Orchestration overhead of the farm (goal: under 5%) and the round trips it pays per batch.

    python bench/farm.py                                  # all cases + round trips, this tree
    python bench/farm.py --cases tiny real --jobs 50      # some cases, fewer jobs
    python bench/farm.py --compare-with ../other-tree     # each case on that tree, then on this one
    python bench/farm.py --cases --n 0 --ray-start 5      # only Ray's own start, 5 times per setting
    python bench/farm.py --cases --n 0 --open 8           # only the device's open, 8 times per setting

Cases: ``quickstart`` (experiments/quickstart.yaml: SwiftShader in Chromium, 3 jobs), ``tiny``
(200 tiny matmuls on lavapipe, ~100 ms of device time each: a stress case for the per-job cost)
and ``real`` (200 transformer-shaped matmuls on lavapipe with a short tuning budget, ~1 s of
device time each).

Overhead = (wall - device busy) / wall, per device, where device busy is the time spent inside the
driver's run_batch/run_baseline (jobs.device_busy_s) and wall is either the whole run (Ray start,
device open and all jobs) or the jobs phase only (first job sent to the last job done). Host work
of the tuner itself (space build, codegen, checks) counts as overhead there, so the tiny jobs also
run without Ray in this process, side by side: the difference is what the farm adds. Round
trips: an actor call through Ray (the farm pays one per job), submitting one batch of
trial records to the aggregator (one per batch, not awaited), and a one-candidate batch through each
driver minus the time the device reports for it (compile + first run + samples).

With ``--compare-with DIR`` every case runs twice in turn, in a fresh process each: first with the
code of DIR (another checkout of this repository, e.g. the main branch), then with this tree's, so
both see the same load; ratios are printed per case.

``--ray embedded`` (default) starts Ray inside each run, as `jitfarm run` does by default;
``--ray cluster`` first starts a local Ray head (127.0.0.1, offering the cases' devices, stopped at
the end) and runs each case against it (`jitfarm run --address`), as on a farm whose Ray runs
already; ``--ray both`` runs each case both ways, in turn. Each case also prints where its device's
open went (the worker's start, the driver's open and its steps, the probe).

``--ray-start N`` times Ray's own start as a run does it, then with each start-up setting Ray
offers that could make it shorter (no worker prestart, ``num_cpus=0``, a shorter retry when the
raylet connects to its object store), N times each in fresh processes, with the CPU seconds of
each of Ray's programs and the steps ``ray.init`` waits on (the dashboard's API server, the raylet
registering, the driver's connection): the floor under a run's overhead. ``--open N`` times the
quickstart device's open (Playwright's start, the browser, the harness page) N times with Node's
compile cache for Playwright's driver and N times without, in turn, each in a fresh process.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
CASES = ("quickstart", "tiny", "real")

TINY = """\
name: farm-bench-{n}
description: {n} tiny matmuls on lavapipe, to measure what the farm costs per job
devices: [native-lavapipe]
ops:
{ops}
tuner: {{budget_s: 10, max_evals: 2, batch_size: 2}}
measure: {{warmup: 0, samples: 1, min_sample_ms: 0.1, max_reps: 1}}
compare: {{rounds: 1, samples: 1}}
"""

# Transformer-shaped matmuls (tokens x model width / head / FFN sizes), scaled so lavapipe on a
# busy 2-core machine spends about a second of device time on each job.
REAL = """\
name: farm-bench-real-{n}
description: {n} transformer-shaped matmuls on lavapipe with a short tuning budget
devices: [native-lavapipe]
ops:
{ops}
tuner: {{strategy: random, budget_s: 30, max_evals: 6, batch_size: 3}}
measure: {{warmup: 1, samples: 3, min_sample_ms: 5, max_reps: 32}}
compare: {{rounds: 2, samples: 3}}
"""
REAL_M = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64)
REAL_NK = ((32, 32), (32, 64), (64, 32), (64, 64), (64, 96), (96, 64), (96, 96), (64, 128), (128, 64), (96, 128),
           (128, 96), (128, 128), (32, 128), (128, 32), (48, 64), (64, 48), (48, 96), (96, 48), (48, 128), (128, 48))


def experiment_text(case: str, n: int, device_configs: Path) -> str:
    if case == "tiny":
        ops = [f"  - {{kind: matmul, M: {m}, N: 8, K: 8}}" for m in range(1, n + 1)]
        text = TINY.format(n=n, ops="\n".join(ops))
    else:
        shapes = [(m, nn, k) for nn, k in REAL_NK for m in REAL_M][:n]
        ops = [f"  - {{kind: matmul, M: {m}, N: {nn}, K: {k}}}" for m, nn, k in shapes]
        text = REAL.format(n=n, ops="\n".join(ops))
    return text + f"device_configs: {device_configs}\n"


# ----------------------------------------------------------------------------- one case, in-process
def overhead(run_dir: Path) -> list[dict]:
    """Each device's overhead in a run, computed by this tree's farm/analysis/overhead.py, also when
    the run was made by another checkout's code (``--compare-with``, which may predate that file)."""
    import dataclasses
    import importlib.util

    import pandas as pd

    spec = importlib.util.spec_from_file_location("jitfarm_bench_overhead", HERE / "farm" / "analysis" / "overhead.py")
    mod = sys.modules[spec.name] = importlib.util.module_from_spec(spec)  # its dataclass looks itself up there
    spec.loader.exec_module(mod)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    return [{**dataclasses.asdict(d), "overhead_run": d.overhead_run, "overhead_jobs": d.overhead_jobs,
             "outside_ms": d.outside_ms_per_job}
            for d in mod.device_overheads(manifest, pd.read_parquet(run_dir / "jobs"))]


def direct(exp_path: Path, results: Path) -> dict:
    """The same jobs with JobRunner called in this process on an opened driver: no Ray, no records,
    the same kernel cache setting as the farm (a file under ``results``). What the farm adds per
    job is the difference between its jobs phase and this loop."""
    from farm.config.experiments import load_experiment, resolve_cache
    from farm.drivers import make_driver
    from farm.scheduler.job import DeviceContext, JobRunner

    exp = resolve_cache(load_experiment(exp_path), results)
    dev = exp.devices[0]
    with make_driver(dev) as drv:
        ctx = DeviceContext.from_probe(dev.id, drv.probe(), dev.caps_overrides)
        runner = JobRunner(drv, ctx, exp, "direct", lambda table, rows: None)
        runner.run(exp.jobs()[0])  # warm-up, as the farm's first job comes after the device's open and probe
        if exp.tuner.cache != "off":  # the warm-up's cache entry would turn the first job into a re-time
            Path(exp.tuner.cache).unlink(missing_ok=True)
        runner.timer.busy_s = 0.0
        t0 = time.perf_counter()
        ok = sum(runner.run(job)["status"] == "ok" for job in exp.jobs())
        wall = time.perf_counter() - t0
    return {"jobs": ok, "n": len(exp.jobs()), "wall_s": wall, "busy_s": runner.timer.busy_s,
            "outside_ms": (wall - runner.timer.busy_s) / len(exp.jobs()) * 1000}


CASE_DEVICES = {"quickstart": "local-chromium-swiftshader", "tiny": "native-lavapipe", "real": "native-lavapipe"}


def one_case(root: Path, case: str, n: int, address: str | None = None) -> dict:
    """Run one case with the code under ``root`` (already first on sys.path), on the Ray cluster at
    ``address`` or on one of its own."""
    from farm.config.experiments import load_experiment
    from farm.scheduler.run import RunOptions, run_experiment

    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "results"
        if case == "quickstart":
            exp = root / "experiments" / "quickstart.yaml"
        else:
            exp = Path(tmp) / "experiments" / f"{case}.yaml"
            exp.parent.mkdir()
            exp.write_text(experiment_text(case, n, root / "device_configs"))
        out: dict = {"case": case, "load_start": os.getloadavg()[0]}
        # the tiny jobs also run without Ray, before and after the farm (load drifts on a shared
        # machine), each with a kernel cache file of its own, as a run has
        if case == "tiny":
            out["direct_before"] = direct(exp, Path(tmp) / "direct-before")
        outcome = run_experiment(load_experiment(exp), RunOptions(results_dir=results, address=address))
        out["devices"] = overhead(outcome.run_dir)
        if case == "tiny":
            out["direct_after"] = direct(exp, Path(tmp) / "direct-after")
        out["load_end"] = os.getloadavg()[0]
    return out


# ------------------------------------------------------------------------------------ reporting
def print_case(label: str, res: dict) -> None:
    for r in res["devices"]:
        print(f"{label:<24} jobs {r['jobs_ok']:>3}/{r['attempts']:<3} wall {r['wall_s']:6.1f} s (Ray start "
              f"{r['ray_init_s']:4.1f}, open {r['open_s']:4.1f}, jobs {r['jobs_wall_s']:6.1f}) busy {r['busy_s']:6.1f} s"
              f" | overhead: run {100 * r['overhead_run']:5.1f}%, jobs phase {100 * r['overhead_jobs']:5.1f}% "
              f"| {r['outside_ms']:6.1f} ms/job outside the device | load {res['load_start']:.1f}->{res['load_end']:.1f}")
        phases = r.get("open_phases") or {}
        if phases:
            inner = {k: v for k, v in phases.items() if k not in ("driver_s", "probe_s")}
            rest = r["open_s"] - phases.get("driver_s", 0.0) - phases.get("probe_s", 0.0)
            print(f"{'':<24} open {r['open_s']:.2f} s: worker start and calls {rest:.2f}, driver "
                  f"{phases.get('driver_s', 0.0):.2f}" + (" (" + ", ".join(f"{k[:-2]} {v:.2f}" for k, v in inner.items())
                                                           + ")" if inner else "") + f", probe {phases.get('probe_s', 0.0):.2f}")
    if "direct_before" in res:
        alone = statistics.mean(res[k]["outside_ms"] for k in ("direct_before", "direct_after"))
        farm = res["devices"][0]["outside_ms"]
        print(f"{'':<24} same jobs without Ray or records: {res['direct_before']['outside_ms']:.1f} / "
              f"{res['direct_after']['outside_ms']:.1f} ms outside the device (before / after the farm): "
              f"the farm adds {farm - alone:.1f} ms per job")


def print_ratios(case: str, before: dict, after: dict) -> None:
    b, a = before["devices"][0], after["devices"][0]
    keys = (("wall_s", "wall"), ("ray_init_s", "Ray start"), ("open_s", "device open"),
            ("jobs_wall_s", "jobs phase"), ("outside_ms", "outside/job"))
    print(f"{case:<24} after/before: " + ", ".join(f"{name} {a[k] / b[k]:.2f}" for k, name in keys if b[k]))


def round_trips(n: int) -> None:
    import ray

    from farm.config.devices import find_device
    from farm.drivers import make_driver
    from farm.scheduler.actors import Aggregator
    from jit_core.caps import DeviceCaps
    from jit_core.ops import MatMul
    from jit_core.protocol import MeasureSpec, make_batch
    from jit_core.reference import check_positions
    from jit_core.templates import get_template

    ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            agg = ray.remote(num_cpus=0)(Aggregator).remote(tmp)
            ray.get(agg.flush.remote())
            call = []
            for _ in range(n):
                t0 = time.perf_counter()
                ray.get(agg.flush.remote())
                call.append((time.perf_counter() - t0) * 1000)
            rows = [{"run_id": "b", "job_id": "j", "attempt": 1, "trial_index": i, "samples_ms": [1.0] * 5}
                    for i in range(8)]
            submit = []
            for _ in range(n):
                t0 = time.perf_counter()
                agg.append.remote("trials", rows)
                submit.append((time.perf_counter() - t0) * 1000)
            ray.get(agg.flush.remote())
    finally:
        ray.shutdown()
    print(f"ray actor call round trip        median {statistics.median(call):6.2f} ms (n={n})")
    print(f"submit one batch of 8 trial rows median {statistics.median(submit):6.3f} ms (n={n}, not awaited)")

    op = MatMul(M=8, N=8, K=8)
    template = get_template("matmul-wgsl")
    measure = MeasureSpec(warmup=0, samples=1, min_sample_ms=0.1, max_reps=1)
    for dev_id in ("native-lavapipe", "local-chromium-swiftshader"):
        spec = find_device(HERE / "device_configs", dev_id, where="bench", key="device")
        with make_driver(spec) as drv:
            caps = DeviceCaps.from_probe(drv.probe())
            kernel = template.render(op, template.space(op, caps).configs[0])
            batch = make_batch(op, [("c", kernel)], seed=1, measure=measure, check_positions=check_positions(op))
            drv.run_batch(batch)
            total, extra = [], []
            for _ in range(max(n // 4, 10)):
                t0 = time.perf_counter()
                (res,) = drv.run_batch(batch)
                wall = (time.perf_counter() - t0) * 1000
                device = (res.compile_ms or 0) + (res.first_run_ms or 0) + sum(res.samples_ms or [])
                total.append(wall)
                extra.append(wall - device)
            print(f"driver batch round trip {dev_id:<28} median {statistics.median(total):7.2f} ms, of which not "
                  f"reported by the device {statistics.median(extra):6.2f} ms (n={len(total)})")

    harness_file_round_trip(n)


def harness_file_round_trip(n: int) -> None:
    """A harness module fetched again and again over one kept-alive connection, as a browser loads
    the page, with the server as it is (Nagle's algorithm off) and with Nagle on, in turn."""
    import http.client

    from farm.harness import server as harness_server

    ms: dict[bool, list[float]] = {True: [], False: []}  # by Nagle's algorithm on
    try:
        with harness_server.HarnessServer() as srv:
            for _ in range(max(n // 10, 5)):
                for nagle in (False, True):
                    harness_server._Handler.disable_nagle_algorithm = not nagle
                    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
                    try:
                        for _ in range(10):
                            t0 = time.perf_counter()
                            conn.request("GET", "/harness.js")
                            conn.getresponse().read()
                            ms[nagle].append((time.perf_counter() - t0) * 1000)
                    finally:
                        conn.close()
    finally:
        harness_server._Handler.disable_nagle_algorithm = True
    now, before = statistics.median(ms[False]), statistics.median(ms[True])
    print(f"harness module over a kept-alive connection median {now:6.2f} ms (Nagle's algorithm on: {before:.2f} ms, "
          f"ratio {now / before:.3f}; n={len(ms[False])})")


# ------------------------------------------------------------------------------- Ray's own start
RAY_START_VARIANTS = {
    "as a run": {},
    "no worker prestart": {"_system_config": {"prestart_worker_first_driver": False}},
    "num_cpus 0": {"num_cpus": 0},
    # the raylet connects to its own object store's socket with retries a second apart; when the
    # store is not listening yet, its start waits a whole second
    "socket retry 20 ms": {"_system_config": {"raylet_client_connect_timeout_milliseconds": 20,
                                              "raylet_client_num_connect_attempts": 1500}},
}

# Steps of ray.init the driver waits on, by the Ray function it waits in (Ray 2.60; a step whose
# function is missing in another version is left out): the dashboard's API server, which ray.init
# starts (even with include_dashboard=False) and waits for before it starts the raylet; the raylet
# registering with the GCS (Ray's C++ loop looks once a second); the driver's own connection.
RAY_INIT_STEPS = (("API server", "ray._private.node", "Node", "start_api_server"),
                  ("raylet registers", "ray._private.services", None, "get_node"),
                  ("driver connects", "ray._private.worker", None, "connect"))


def time_ray_init_steps() -> dict[str, float]:
    """Wrap the functions of RAY_INIT_STEPS so that each call adds its seconds to the dict returned
    (only the timing is added: each wrapper calls the function it replaces)."""
    import functools
    import importlib

    spent: dict[str, float] = {}
    for label, module, cls, name in RAY_INIT_STEPS:
        owner = importlib.import_module(module)
        owner = getattr(owner, cls, None) if cls else owner
        fn = getattr(owner, name, None) if owner is not None else None
        if fn is None:
            continue

        @functools.wraps(fn)
        def timed(*a, _fn=fn, _label=label, **kw):
            t = time.perf_counter()
            try:
                return _fn(*a, **kw)
            finally:
                spent[_label] = spent.get(_label, 0.0) + time.perf_counter() - t
        setattr(owner, name, timed)
    return spent


def process_tree_cpu() -> dict[str, float]:
    """CPU seconds (user + system) of this process and of every process under it, by program:
    with embedded Ray, all of Ray's (GCS, raylet, dashboard, monitors, agents, workers)."""
    from farm.procs import cmdline, descendants, stat_fields

    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for pid in [os.getpid(), *descendants(os.getpid())]:
        stat, argv = stat_fields(pid), cmdline(pid)
        if stat is None:
            continue
        if pid == os.getpid():
            program = "this process (the run's driver)"
        elif argv and argv[0].startswith("ray::"):  # a Ray worker's title: ray::<actor or state>
            program = argv[0].split()[0]
        else:  # a Python program by its script, else the executable
            program = next((Path(a).name for a in argv[1:] if a.endswith(".py")), Path(argv[0]).name if argv else stat[0])
        out[program] = out.get(program, 0.0) + (int(stat[1][11]) + int(stat[1][12])) / tick
    return out


def one_ray_start(root: Path, variant: str) -> dict:
    """Ray started as `jitfarm run` starts it (plus the variant's settings), then the run's two
    actors (its aggregator and the quickstart device's worker, not opened) answering a call: all
    that comes before the device's open."""
    import ray

    from farm.config.experiments import load_experiment
    from farm.scheduler.actors import Aggregator, DeviceWorker
    from farm.scheduler.run import RunOptions, init_ray

    exp = load_experiment(root / "experiments" / "quickstart.yaml")
    dev = exp.devices[0]
    steps = time_ray_init_steps()
    cpu0 = process_tree_cpu()
    t0 = time.perf_counter()
    init_ray([dev.id], RunOptions(), **RAY_START_VARIANTS[variant])
    t1 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        agg = ray.remote(num_cpus=0)(Aggregator).remote(tmp)
        worker = ray.remote(num_cpus=0)(DeviceWorker).options(resources={f"device:{dev.id}": 1}).remote(
            dev, exp, "bench", agg)
        ray.get([agg.flush.remote(), worker.ping.remote()])
        t2 = time.perf_counter()
        time.sleep(2.0)  # what Ray's processes go on spending right after, while a device would open
        cpu = process_tree_cpu()
        ray.shutdown()
    cpu = {k: v - cpu0.get(k, 0.0) for k, v in cpu.items()}
    return {"variant": variant, "init_s": t1 - t0, "actors_s": t2 - t1, "shutdown_s": time.perf_counter() - t2 - 2.0,
            "cpu": cpu, "steps": steps}


def ray_start(root: Path, n: int) -> None:
    """Each variant n times, in turn, each start in a fresh process: medians and CPU by program."""
    runs: dict[str, list[dict]] = {v: [] for v in RAY_START_VARIANTS}
    for _ in range(n):
        for variant in RAY_START_VARIANTS:
            with tempfile.NamedTemporaryFile(suffix=".json") as fh:
                env = {**os.environ, "PYTHONPATH": str(root), "RAY_USAGE_STATS_ENABLED": "0"}
                subprocess.run([sys.executable, str(Path(__file__).resolve()), "--root", str(root), "--one-ray-start",
                                variant, "--json", fh.name], check=True, cwd=root, env=env, stdout=subprocess.DEVNULL)
                runs[variant].append(json.loads(Path(fh.name).read_text()))
    print(f"\nRay's own start, {n} fresh processes per variant, in turn (load {os.getloadavg()[0]:.1f}):")
    for variant, rs in runs.items():
        med = {k: statistics.median(r[k] for r in rs) for k in ("init_s", "actors_s", "shutdown_s")}
        print(f"  {variant:<20} ray.init {med['init_s']:4.2f} s, then the run's two actors answer "
              f"{med['actors_s']:4.2f} s: {med['init_s'] + med['actors_s']:4.2f} s before a device can open "
              f"(shutdown {med['shutdown_s']:4.2f} s) | runs: "
              + ", ".join(f"{r['init_s'] + r['actors_s']:.2f}" for r in rs))
        programs = sorted({p for r in rs for p in r["cpu"]}, key=lambda p: -statistics.median(r["cpu"].get(p, 0) for r in rs))
        cpu = {p: statistics.median(r["cpu"].get(p, 0.0) for r in rs) for p in programs}
        labels = [step[0] for step in RAY_INIT_STEPS if any(step[0] in r.get("steps", {}) for r in rs)]
        waits = {lb: statistics.median(r["steps"].get(lb, 0.0) for r in rs) for lb in labels}
        print(f"  {'':<20} ray.init waits on: " + ", ".join(f"{lb} {w:.2f} s" for lb, w in waits.items())
              + f", the rest {med['init_s'] - sum(waits.values()):.2f} s (medians)")
        print(f"  {'':<20} CPU {sum(cpu.values()):4.1f} s on {os.cpu_count()} cores: "
              + ", ".join(f"{p} {c:.2f}" for p, c in cpu.items() if c >= 0.05))
    base = statistics.median(r["init_s"] + r["actors_s"] for r in runs["as a run"])
    print(f"  so a run needs {base / 0.05:.0f} s of device work for Ray's start alone to stay under 5% of it")


# ------------------------------------------------------------------------------ the device's open
OPEN_VARIANTS = {  # environment for the process that opens the device, by setting
    "Node compile cache": {"NODE_COMPILE_CACHE": None},  # None: a folder of the bench's own, filled once first
    "no compile cache": {"NODE_DISABLE_COMPILE_CACHE": "1"},
}


def one_open(root: Path) -> dict:
    """Open and close the quickstart's device once, in this (fresh) process, as its worker does."""
    from farm.config.experiments import load_experiment
    from farm.drivers import make_driver

    dev = load_experiment(root / "experiments" / "quickstart.yaml").devices[0]
    drv = make_driver(dev)
    t0 = time.perf_counter()
    drv.open()
    open_s = time.perf_counter() - t0
    phases = drv.open_phases()
    drv.close()
    return {"open_s": open_s, "phases": phases}


def device_open(root: Path, n: int) -> None:
    """The quickstart device's open n times per setting of OPEN_VARIANTS, in turn, each in a fresh
    process: medians of the open and of its steps."""
    runs: dict[str, list[dict]] = {v: [] for v in OPEN_VARIANTS}
    with tempfile.TemporaryDirectory() as cache:
        def run_one(variant: str) -> dict:
            env = {**os.environ, "PYTHONPATH": str(root)}
            for k in ("NODE_COMPILE_CACHE", "NODE_DISABLE_COMPILE_CACHE"):
                env.pop(k, None)
            env.update({k: v if v is not None else cache for k, v in OPEN_VARIANTS[variant].items()})
            with tempfile.NamedTemporaryFile(suffix=".json") as fh:
                subprocess.run([sys.executable, str(Path(__file__).resolve()), "--root", str(root), "--one-open",
                                "--json", fh.name], check=True, cwd=root, env=env, stdout=subprocess.DEVNULL)
                return json.loads(Path(fh.name).read_text())

        run_one("Node compile cache")  # fills the cache, as the first open on a machine does
        for _ in range(n):
            for variant in OPEN_VARIANTS:
                runs[variant].append(run_one(variant))
    print(f"\nThe quickstart device's open, {n} fresh processes per setting, in turn (load {os.getloadavg()[0]:.1f}):")
    med = {}
    for variant, rs in runs.items():
        med[variant] = statistics.median(r["open_s"] for r in rs)
        steps = {k: statistics.median(r["phases"].get(k, 0.0) for r in rs) for k in rs[0]["phases"]}
        print(f"  {variant:<20} open {med[variant]:4.2f} s (" + ", ".join(f"{k[:-2]} {v:.2f}" for k, v in steps.items())
              + ") | runs: " + ", ".join(f"{r['open_s']:.2f}" for r in rs))
    first, second = list(OPEN_VARIANTS)
    print(f"  ratio {first} / {second}: {med[first] / med[second]:.3f}")


def in_subprocess(root: Path, case: str, n: int, address: str | None = None) -> dict:
    """One case in a fresh Python process with ``root``'s code first on the path (Ray's workers
    inherit PYTHONPATH)."""
    with tempfile.NamedTemporaryFile(suffix=".json") as fh:
        env = {**os.environ, "PYTHONPATH": str(root), "RAY_USAGE_STATS_ENABLED": "0"}
        subprocess.run([sys.executable, str(Path(__file__).resolve()), "--root", str(root), "--one", case,
                        "--jobs", str(n), "--json", fh.name, *(["--address", address] if address else [])],
                       check=True, cwd=root, env=env, stdout=subprocess.DEVNULL)
        res = json.loads(Path(fh.name).read_text())
        res["ray"] = "cluster" if address else "embedded"
        return res


class LocalCluster:
    """A Ray head on 127.0.0.1 offering ``devices`` (``ray start --head --block`` in a temp folder of
    its own), for runs that join a running cluster; stopped with SIGTERM, which ends its processes."""

    def __init__(self, devices: set[str]) -> None:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.temp = tempfile.mkdtemp(prefix="jfb", dir="/tmp")  # short: Ray's socket paths must fit
        self.address = f"127.0.0.1:{self.port}"
        ray_bin = Path(sys.executable).parent / "ray"
        self.proc = subprocess.Popen(
            [str(ray_bin), "start", "--head", "--block", "--port", str(self.port), "--node-ip-address", "127.0.0.1",
             "--temp-dir", self.temp, "--include-dashboard", "false", "--disable-usage-stats",
             "--resources", json.dumps({f"device:{d}": 1 for d in sorted(devices)})],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while not list(Path(self.temp).glob("session_*/sockets/raylet")):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"ray start --head did not come up (exit {self.proc.poll()})")
            time.sleep(0.2)
        time.sleep(1.0)  # the raylet's socket comes before the node registers

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        import shutil

        shutil.rmtree(self.temp, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="*", choices=CASES, default=list(CASES), help="(none: no case)")
    ap.add_argument("--jobs", type=int, default=200, help="jobs in the tiny and real cases (default 200)")
    ap.add_argument("--n", type=int, default=200, help="repetitions of each round trip (default 200; 0: skip)")
    ap.add_argument("--compare-with", type=Path, help="another checkout: run each case there first, then here")
    ap.add_argument("--ray", choices=("embedded", "cluster", "both"), default="embedded",
                    help="Ray started by each run (embedded), a local Ray head started once (cluster), or both")
    ap.add_argument("--address", help=argparse.SUPPRESS)
    ap.add_argument("--root", type=Path, default=HERE, help=argparse.SUPPRESS)
    ap.add_argument("--one", choices=CASES, help=argparse.SUPPRESS)
    ap.add_argument("--ray-start", type=int, default=0, metavar="N",
                    help="also time Ray's own start N times per start-up setting, in fresh processes (default 0)")
    ap.add_argument("--one-ray-start", choices=tuple(RAY_START_VARIANTS), help=argparse.SUPPRESS)
    ap.add_argument("--open", type=int, default=0, metavar="N",
                    help="also time the quickstart device's open N times per setting (Node's compile cache for "
                         "Playwright's driver on and off), in fresh processes (default 0)")
    ap.add_argument("--one-open", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--json", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    root = args.root.resolve()
    sys.path.insert(0, str(root))
    if args.one:
        args.json.write_text(json.dumps(one_case(root, args.one, args.jobs, args.address)))
        return 0
    if args.one_ray_start:
        args.json.write_text(json.dumps(one_ray_start(root, args.one_ray_start)))
        return 0
    if args.one_open:
        args.json.write_text(json.dumps(one_open(root)))
        return 0
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # the local head and the runs that join it
    load0 = os.getloadavg()
    t0 = time.time()
    results: list[tuple[str, dict, dict | None]] = []
    modes = ["embedded", "cluster"] if args.ray == "both" else [args.ray]
    cluster = LocalCluster({CASE_DEVICES[c] for c in args.cases}) if "cluster" in modes else None
    try:
        for case in args.cases:
            for mode in modes:
                address = cluster.address if mode == "cluster" and cluster else None
                before = in_subprocess(args.compare_with.resolve(), case, args.jobs, address) if args.compare_with else None
                after = in_subprocess(root, case, args.jobs, address)
                results.append((f"{case}, {mode} Ray" if len(modes) > 1 else case, after, before))
    finally:
        if cluster is not None:
            cluster.stop()
    print(f"\n{time.strftime('%Y-%m-%d %H:%M', time.localtime(t0))} to {time.strftime('%H:%M')}, "
          f"jobs per case: {args.jobs}" + (f", before: {args.compare_with}" if args.compare_with else ""))
    for case, after, before in results:
        if before is not None:
            print_case(f"{case} (before)", before)
        print_case(f"{case}" + (" (after)" if before is not None else ""), after)
        if before is not None:
            print_ratios(case, before, after)
    if args.n:
        round_trips(args.n)
    if args.ray_start:
        ray_start(root, args.ray_start)
    if args.open:
        device_open(root, args.open)
    print("load average (1, 5, 15 min) at start {:.1f} {:.1f} {:.1f}, at end {:.1f} {:.1f} {:.1f}".format(*load0, *os.getloadavg()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
