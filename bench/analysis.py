"""Time the analysis on a large store: read 1M sample rows and compute every table.

    python bench/analysis.py                  # 20 runs x 5 devices x 25 ops x 2 impls x 200 samples = 1M
    python bench/analysis.py --repeat 5 --keep /tmp/big-store

It writes a synthetic history in the real store format (farm/store/synthetic.py; a planted 10%
step on one device) once, untimed, then times each phase ``--repeat`` times and prints the median
and range of each, and of the total:
- load: read every run's measurements (1M samples) and trials from Parquet;
- latency: median and 95% bootstrap CI (1000 replicates) of every (run, device, op, impl);
- speedups: ratio of medians with bootstrap CI and a Mann-Whitney U test per (run, device, op, baseline);
- geomeans: per device and across devices, with CIs;
- models: model-level latency of one 5-op model on every device and run;
- tuning: tuning curves and speedup at 30 s from the trials;
- regress: the timeline of every series across all runs and its change points, grouped;
- compare: the newest run against the one before.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from farm.analysis.curves import tuning_curves, tuning_summary  # noqa: E402
from farm.analysis.load import load_samples, load_trials  # noqa: E402
from farm.analysis.model_latency import ModelOps, model_table  # noqa: E402
from farm.analysis.regress import compare_groups, findings, timeline_of  # noqa: E402
from farm.analysis.tables import geomean_table, latency_groups, speedup_table  # noqa: E402
from farm.store.synthetic import PlantedStep, SyntheticDevice, write_history  # noqa: E402


def _phase_times(root: Path, ids: list[str], model: ModelOps) -> dict[str, float]:
    t: dict[str, float] = {}

    def timed(name, fn):
        t0, c0 = time.perf_counter(), time.process_time()
        value = fn()
        t[name] = time.perf_counter() - t0
        t["cpu:" + name] = time.process_time() - c0
        return value

    ss, trials = timed("load", lambda: (load_samples(root, ids), load_trials(root, ids)))
    lg = timed("latency", lambda: latency_groups(ss))
    sp, reps = timed("speedups", lambda: speedup_table(lg))
    timed("geomeans", lambda: geomean_table(sp, reps))
    timed("models", lambda: model_table(lg, [model]))
    timed("tuning", lambda: (tuning_curves(trials), tuning_summary(trials, sp)))
    found = timed("regress", lambda: findings(timeline_of(lg, {r: r for r in ids})))
    timed("compare", lambda: compare_groups(lg, ids[-2], ids[-1]))
    t["total"] = sum(v for k, v in t.items() if not k.startswith("cpu:"))
    t["cpu:total"] = sum(v for k, v in t.items() if k.startswith("cpu:"))
    t["_samples"] = float(ss.values.size)
    t["_findings"] = float(len(found))
    t["_groups"] = float(len(lg.table))
    return t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--devices", type=int, default=5)
    ap.add_argument("--ops", type=int, default=25)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--samples", type=int, default=40, help="samples per round (default 40: 200 per series and run)")
    ap.add_argument("--trials", type=int, default=25, help="tuning trials per job")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", type=Path, default=None, help="write the store here and keep it (default: a temp dir)")
    args = ap.parse_args()

    devices = tuple(SyntheticDevice(f"device-{i}", adapter=f"adapter {i}", fingerprint=f"fp{i}", vendor=f"vendor{i % 3}")
                    for i in range(args.devices))
    ops = tuple(f"matmul_f32_{16 * (i + 1)}x{16 * (i + 2)}x64" for i in range(args.ops))
    model = ModelOps.of("bench-model", [(op, 1 + i) for i, op in enumerate(ops[:5])])
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        t0 = time.perf_counter()
        ids = write_history(root, runs=args.runs, devices=devices, ops=ops, rounds=args.rounds, samples=args.samples,
                            trials=args.trials, step=PlantedStep(at=args.runs * 3 // 4, device_id="device-0"),
                            run_jitter=0.01, seed=1)
        print(f"wrote {args.runs} runs x {args.devices} devices x {args.ops} ops x 2 impls x "
              f"{args.rounds * args.samples} samples in {time.perf_counter() - t0:.1f} s (untimed)")
        results = [_phase_times(root, ids, model) for _ in range(args.repeat)]
    n = int(results[0]["_samples"])
    print(f"\nsample rows read: {n:,} in {int(results[0]['_groups']):,} series x run groups; change-point findings: {int(results[0]['_findings'])} "
          f"(planted: 1, at run {args.runs * 3 // 4})")
    print(f"{'phase':<10}{'wall s':>9}{'min':>7}{'max':>7}{'cpu s':>9}   (medians of n={args.repeat})")
    for phase in ("load", "latency", "speedups", "geomeans", "models", "tuning", "regress", "compare", "total"):
        xs = [r[phase] for r in results]
        cpu = statistics.median(r["cpu:" + phase] for r in results)
        print(f"{phase:<10}{statistics.median(xs):>9.2f}{min(xs):>7.2f}{max(xs):>7.2f}{cpu:>9.2f}")
    total = statistics.median(r["total"] for r in results)
    cpu = statistics.median(r["cpu:total"] for r in results)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nevery table from {n:,} samples: {total:.2f} s wall, {cpu:.2f} s CPU (medians of {args.repeat}; "
          f"load average {load:.1f} on {os.cpu_count()} cores); goal < 10 s wall: {'met' if total < 10 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
