"""Time until each search strategy's answer is within 5% of the best config of the whole space.

    python bench/tuning_curve.py --device native-lavapipe
    python bench/tuning_curve.py --load-recordings DIR            # replay only, no device
    python bench/tuning_curve.py --device native-lavapipe --live  # also live tunes on the device

1. Recording (on the device): every config of each op's space is timed once, in batches as the
   tuner runs them (``jit_core.replay.record_space``): the best config of the whole space and each
   config's device time (compile, warm-up, calibration, samples, share of its batch) come from it.
   Then the ``--confirm-top`` fastest configs are timed ``--confirm-rounds`` more times,
   interleaved, and the whole space's best is the one with the lowest median of those samples,
   not the luckiest single measurement of the first pass.
2. Replay (in-process, Kernel Tuner's simulation mode): each strategy tunes each op for several
   seeds and for each budget of ``--budgets`` against the recorded timings; a simulated device
   clock advances by each candidate's recorded device time (scaled to the samples the strategy
   asked for). The tuner runs as it does on a device, its own confirmation rounds included
   (``--tuner-confirm-top``, ``--tuner-confirm-rounds``). For each seed: the smallest budget from
   which on the config the tuner returns is within ``--within`` (5%) of the whole space's best at
   every larger budget, and that ratio at 10 s and at the largest budget. Ratios compare samples
   taken at the same time (``Recording.ratio``): two re-timed leaders by their re-timed samples,
   anything else by the first pass, so the machine's drift between the two does not count.
3. ``--live``: each strategy also tunes each op on the device once per ``--live-budgets`` budget
   (wall time); printed as the recorded time of its winner over the recording's best.
Medians over seeds; n says how many seeds reached the target. Goal: < 10 s of device time per op
on lavapipe.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from farm.config.devices import find_device  # noqa: E402
from farm.drivers import make_driver  # noqa: E402
from farm.scheduler.job import DeviceContext  # noqa: E402
from jit_core.ops import MatMul  # noqa: E402
from jit_core.protocol import MeasureSpec  # noqa: E402
from jit_core.replay import Recording, ReplayRunner, record_space  # noqa: E402
from jit_core.search import STRATEGIES  # noqa: E402
from jit_core.templates import get_template  # noqa: E402
from jit_core.tuner import TuneOptions, TuneResult, tune  # noqa: E402

# (label, M, N, K, template): the template that wins each shape on lavapipe (bench/kernels.py).
OPS = [
    ("square 128", 128, 128, 128, "matmul-wgsl-vec4"),
    ("square 256", 256, 256, 256, "matmul-wgsl-vec4"),
    ("BART-base qkv s16", 16, 768, 768, "matmul-wgsl-vec4"),
    ("decode 1x768x768", 1, 768, 768, "matmul-wgsl-gemv"),
]


def file_name(label: str) -> str:
    return label.replace(" ", "_").replace("/", "_") + ".json"


def ratio(res: TuneResult, rec: Recording) -> float | None:
    """The recorded cost of the config ``res`` returns over the whole space's best (``Recording.ratio``)."""
    return None if res.best is None else rec.ratio(res.best.config_key)


def time_to_target(ratios: dict[float, float | None], within: float) -> float | None:
    """The smallest budget from which on every larger budget's answer is within ``within``."""
    hit = None
    for budget in sorted(ratios, reverse=True):
        r = ratios[budget]
        if r is None or r > 1 + within:
            break
        hit = budget
    return hit


def replay(rec: Recording, strategy: str, seed: int, budget_s: float, batch_size: int,
           confirm: tuple[int, int]) -> TuneResult:
    runner = ReplayRunner(rec)
    options = TuneOptions(strategy=strategy, budget_s=budget_s, batch_size=batch_size, seed=seed, measure=rec.measure,
                          confirm_top=confirm[0], confirm_rounds=confirm[1])
    return tune(rec.op, rec.template, rec.caps, runner, options=options, clock=runner.clock)


def fmt(x: float | None, spec: str = ".1f") -> str:
    return "-" if x is None else format(x, spec)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default=None, help="device id in device_configs/ (records the spaces on it)")
    p.add_argument("--devices-dir", default=str(ROOT / "device_configs"))
    p.add_argument("--only", default=None, help="comma-separated op labels to keep")
    p.add_argument("--op", action="append", default=[], metavar="MxNxK:TEMPLATE",
                   help="tune this op instead of the default set (repeatable), e.g. 64x64x64:matmul-wgsl-vec4")
    p.add_argument("--strategies", default=",".join(STRATEGIES), help=f"comma-separated, from {sorted(STRATEGIES)}")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--within", type=float, default=0.05, help="target: best-so-far <= (1 + within) * space best")
    p.add_argument("--budgets", default="1,2,3,4,5,6,7,8,9,10,12,15,20,30",
                   help="comma-separated device-second budgets each replayed tune gets")
    p.add_argument("--live-budgets", default="10", help="comma-separated wall-clock budgets of the --live tunes")
    p.add_argument("--tuner-confirm-top", type=int, default=TuneOptions.confirm_top,
                   help="the tuner's own confirmation rounds: leaders timed again (0: off)")
    p.add_argument("--tuner-confirm-rounds", type=int, default=TuneOptions.confirm_rounds)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--samples", type=int, default=5)
    p.add_argument("--min-sample-ms", type=float, default=10.0)
    p.add_argument("--confirm-top", type=int, default=8,
                   help="after recording a space, time its fastest N configs again, interleaved (0: off)")
    p.add_argument("--confirm-rounds", type=int, default=3, help="rounds of --confirm-top")
    p.add_argument("--save-recordings", default=None, help="write each op's recording (JSON) to this folder")
    p.add_argument("--load-recordings", default=None, help="replay recordings from this folder instead of a device")
    p.add_argument("--live", action="store_true", help="also tune each op once per strategy on the device")
    args = p.parse_args(argv)

    ops = [o for o in OPS if not args.only or o[0] in set(args.only.split(","))]
    if args.op:
        ops = []
        for text in args.op:
            shape, _, template = text.partition(":")
            M, N, K = (int(x) for x in shape.split("x"))
            ops.append((shape, M, N, K, template or "matmul-wgsl-vec4"))
    strategies = args.strategies.split(",")
    budgets = sorted(float(b) for b in args.budgets.split(","))
    live_budgets = [float(b) for b in args.live_budgets.split(",")]
    confirm = (args.tuner_confirm_top, args.tuner_confirm_rounds)
    at_s = 10.0 if 10.0 in budgets else budgets[-1]
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        p.error(f"unknown strategies {unknown}; known: {sorted(STRATEGIES)}")
    measure = MeasureSpec(samples=args.samples, min_sample_ms=args.min_sample_ms)
    recordings: dict[str, Recording] = {}
    live: dict[tuple[str, str], list[str]] = {}

    if args.load_recordings:
        for label, *_ in ops:
            path = Path(args.load_recordings) / file_name(label)
            if path.exists():
                rec = Recording.load(path)
                if rec.template_version != get_template(rec.template).version:
                    print(f"skipped {path.name}: recorded with {rec.template} v{rec.template_version}, "
                          f"now v{get_template(rec.template).version}; record it again")
                    continue
                recordings[label] = rec
    else:
        if not args.device:
            p.error("give --device to record on a device, or --load-recordings DIR")
        device = find_device(Path(args.devices_dir), args.device, where="--device", key="device")
        with make_driver(device) as driver:
            ctx = DeviceContext.from_probe(device.id, driver.probe(), device.caps_overrides)
            print(f"# {device.id}: {ctx.adapter}", flush=True)
            for label, M, N, K, template in ops:
                t0 = time.perf_counter()
                rec = record_space(MatMul(M, N, K), template, ctx.caps, driver, measure=measure,
                                   confirm_top=args.confirm_top, confirm_rounds=args.confirm_rounds)
                recordings[label] = rec
                print(f"recorded {label}: {len(rec.configs)} configs in {time.perf_counter() - t0:.1f} s", flush=True)
                if args.save_recordings:
                    Path(args.save_recordings).mkdir(parents=True, exist_ok=True)
                    rec.save(Path(args.save_recordings) / file_name(label))
                if args.live:
                    for s in strategies:
                        for budget in live_budgets:
                            opts = TuneOptions(strategy=s, budget_s=budget, batch_size=args.batch_size, measure=measure,
                                               confirm_top=confirm[0], confirm_rounds=confirm[1])
                            res = tune(rec.op, template, ctx.caps, driver, options=opts)
                            # the live winner's cost in the recording: same protocol, same opened device
                            r = ratio(res, rec)
                            live.setdefault((label, s), []).append(f"{fmt(r, '.3f')} @{budget:g} s")

    print(f"\nBudget (device s) from which on the tuner's answer is <= {1 + args.within:.2f} x the whole space's "
          f"best at every larger budget of {','.join(f'{b:g}' for b in budgets)}; medians over {args.seeds} seeds "
          f"(replay of the recording); the tuner's confirmation: top {confirm[0]} x {confirm[1]} rounds\n")
    header = ("| op | template | space | whole space s | "
              + " | ".join(f"{s}: to target (n) / at {at_s:g} s / at {budgets[-1]:g} s" for s in strategies) + " |")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for label, *_ in ops:
        rec = recordings.get(label)
        if rec is None or rec.best() is None:
            print(f"| {label} | - | - | - | " + " | ".join("-" for _ in strategies) + " |")
            continue
        cells = []
        for s in strategies:
            times, at, finals = [], [], []
            for seed in range(1, args.seeds + 1):
                ratios = {b: ratio(replay(rec, s, seed, b, args.batch_size, confirm), rec) for b in budgets}
                hit = time_to_target(ratios, args.within)
                if hit is not None:
                    times.append(hit)
                if ratios[at_s] is not None:
                    at.append(ratios[at_s])
                if ratios[budgets[-1]] is not None:
                    finals.append(ratios[budgets[-1]])
            cell = (f"{fmt(statistics.median(times) if times else None, 'g')} s ({len(times)}/{args.seeds})"
                    f" / {fmt(statistics.median(at) if at else None, '.3f')}"
                    f" / {fmt(statistics.median(finals) if finals else None, '.3f')}")
            if (label, s) in live:
                cell += " · live " + ", ".join(live[(label, s)])
            cells.append(cell)
        print(f"| {label} {rec.op.shape_str()} | {rec.template} | {len(rec.configs)} | {rec.total_wall_s():.1f} | "
              + " | ".join(cells) + " |")
    print(f"\nbest configs: " + "; ".join(f"{k}: {r.best()[0]} {r.best()[1]:.4f} ms"
                                        for k, r in recordings.items() if r.best()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
