"""Orchestration overhead of the farm (goal: under 5%) and the round trips it pays per batch.

    python bench/farm.py                      # quickstart (Chromium) + 200 tiny jobs (lavapipe) + round trips
    python bench/farm.py --jobs 50 --skip-quickstart

Overhead = (wall - device busy) / wall, per device, where device busy is the time spent inside the
driver's run_batch/run_baseline (jobs.device_busy_s) and wall is either the whole run (Ray start,
device open and all jobs) or the jobs phase only (first job sent to the last job done). Host work
of the tuner itself (space build, codegen, checks) counts as overhead there, so the same jobs also
run without Ray in this process, side by side: the difference is what the farm adds. Round
trips: an actor call through Ray (the farm pays one per job), submitting one batch of
trial records to the aggregator (one per batch, not awaited), and a one-candidate batch through each
driver minus the time the device reports for it (compile + first run + samples).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

from farm.config.experiments import load_experiment  # noqa: E402
from farm.scheduler.run import RunOptions, run_experiment  # noqa: E402
from farm.store.parquet import ParquetStore  # noqa: E402

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


def overhead(run_dir: Path) -> list[dict]:
    manifest = ParquetStore(run_dir).read_manifest()
    jobs = pd.read_parquet(run_dir / "jobs")
    out = []
    for dev, timing in manifest["timing"]["devices"].items():
        rows = jobs[jobs["device_id"] == dev]
        busy = float(rows["device_busy_s"].fillna(0).sum())
        wall, phase = manifest["wall_s"], timing["jobs_wall_s"]
        out.append({"device": dev, "jobs": int((rows["status"] == "ok").sum()), "attempts": len(rows),
                    "wall_s": wall, "ray_init_s": manifest["timing"]["ray_init_s"], "open_s": timing["open_s"],
                    "jobs_wall_s": phase, "busy_s": busy,
                    "overhead_run": (wall - busy) / wall, "overhead_jobs": (phase - busy) / phase if phase else None})
    return out


def print_overhead(name: str, rows: list[dict]) -> None:
    for r in rows:
        per_job = (r["jobs_wall_s"] - r["busy_s"]) / max(r["attempts"], 1) * 1000
        print(f"{name:<12} {r['device']:<28} jobs {r['jobs']:>3}/{r['attempts']:<3} wall {r['wall_s']:7.1f} s "
              f"(Ray start {r['ray_init_s']:5.1f}, open {r['open_s']:5.1f}, jobs {r['jobs_wall_s']:7.1f}) "
              f"busy {r['busy_s']:7.1f} s | overhead: whole run {100 * r['overhead_run']:5.1f}%, "
              f"jobs phase {100 * r['overhead_jobs']:5.1f}% ({per_job:.1f} ms per job)")


def direct(exp_path: Path, results: Path) -> dict:
    """The same jobs with JobRunner called in this process on an opened driver: no Ray, no records,
    the same kernel cache setting as the farm (a file under ``results``). What the farm adds per
    job is the difference between its jobs phase and this loop."""
    from farm.config.experiments import resolve_cache
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
    return {"jobs": ok, "n": len(exp.jobs()), "wall_s": wall, "busy_s": runner.timer.busy_s}


def run(exp_path: Path, results: Path) -> Path:
    outcome = run_experiment(load_experiment(exp_path), RunOptions(results_dir=results))
    return outcome.run_dir


def round_trips(n: int) -> None:
    import ray

    from farm.config.devices import find_device
    from farm.scheduler.actors import Aggregator

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

    from farm.drivers import make_driver

    op = MatMul(M=8, N=8, K=8)
    template = get_template("matmul-wgsl")
    measure = MeasureSpec(warmup=0, samples=1, min_sample_ms=0.1, max_reps=1)
    for dev_id in ("native-lavapipe", "local-chromium-swiftshader"):
        spec = find_device(ROOT / "device_configs", dev_id, where="bench", key="device")
        with make_driver(spec) as drv:
            from jit_core.caps import DeviceCaps

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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=200, help="jobs in the tiny-op experiment (default 200)")
    ap.add_argument("--skip-quickstart", action="store_true")
    ap.add_argument("--n", type=int, default=200, help="repetitions of each round trip (default 200)")
    args = ap.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "results"
        figures = []
        if not args.skip_quickstart:
            figures.append(("quickstart", overhead(run(ROOT / "experiments" / "quickstart.yaml", results))))
        ops = "\n".join(f"  - {{kind: matmul, M: {m}, N: 8, K: 8}}" for m in range(1, args.jobs + 1))
        exp = Path(tmp) / "experiments" / "tiny.yaml"
        exp.parent.mkdir()
        exp.write_text(TINY.format(n=args.jobs, ops=ops) + f"device_configs: {ROOT / 'device_configs'}\n")
        # the reference runs before and after the farm (load drifts on a shared machine), each with
        # a kernel cache file of its own, as a run has
        before = direct(exp, Path(tmp) / "direct-before")
        figures.append((f"{args.jobs} tiny", overhead(run(exp, results))))
        after = direct(exp, Path(tmp) / "direct-after")
    print()
    for name, rows in figures:
        print_overhead(name, rows)
    farm = figures[-1][1][0]
    farm_host = (farm["jobs_wall_s"] - farm["busy_s"]) / farm["attempts"] * 1000
    for name, alone in (("before", before), ("after", after)):
        host = (alone["wall_s"] - alone["busy_s"]) / alone["n"] * 1000
        print(f"same {alone['n']} jobs without Ray or records, {name} the farm: {alone['wall_s'] / alone['n'] * 1000:.1f} ms "
              f"per job, {host:.1f} ms of it outside the device (space build, codegen, checks)")
    host = statistics.mean((a["wall_s"] - a["busy_s"]) / a["n"] * 1000 for a in (before, after))
    print(f"outside the device per job: farm {farm_host:.1f} ms vs {host:.1f} ms alone (mean of both): Ray, records "
          f"and scheduling add {farm_host - host:.1f} ms per job = {100 * (farm_host - host) / (farm['jobs_wall_s'] / farm['attempts'] * 1000):.1f}% "
          "of the farm's jobs phase")
    round_trips(args.n)
    print("load average (1, 5, 15 min) at start {:.1f} {:.1f} {:.1f}, at end {:.1f} {:.1f} {:.1f}".format(*load0, *os.getloadavg()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
