"""f16 against f32 matmul kernels on one device, interleaved in one run.

    python bench/f16.py --device native-lavapipe --shapes 128x128x128,256x256x256,16x768x768
    python bench/f16.py --device native-vulkan-gpu --shapes 4096x4096x4096 --templates matmul-wgsl-vec4

For each shape and dtype (f32; f16 with f32 sums; f16acc16, f16 sums too) it screens the
template's whole space with one short sample per config, keeps the ``--top`` fastest correct
configs of each dtype, then times those of all dtypes interleaved (every round runs each of them
once, in a rotating order) for ``--rounds`` rounds, so load drifts hit every dtype alike. It
prints each dtype's best pooled median (ms, n samples) and its ratio to f32. A device without
``shader-f16`` gets f32 only (the f16 spaces are empty).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from farm.config.devices import find_device  # noqa: E402
from farm.drivers import make_driver  # noqa: E402
from farm.scheduler.job import DeviceContext  # noqa: E402
from jit_core.ops import MATMUL_PRECISIONS, MatMul  # noqa: E402
from jit_core.protocol import MeasureSpec  # noqa: E402
from jit_core.space import Config  # noqa: E402
from jit_core.templates import get_template  # noqa: E402
from jit_core.tuner import TuneOptions, run_configs, tune  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", required=True, help="device id in device_configs/")
    p.add_argument("--devices-dir", default=str(ROOT / "device_configs"))
    p.add_argument("--shapes", default="128x128x128,256x256x256", help="comma-separated MxNxK")
    p.add_argument("--templates", default="matmul-wgsl-vec4", help="comma-separated templates with f16 kernels")
    p.add_argument("--top", type=int, default=3, help="configs per dtype kept from the screening pass")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--samples", type=int, default=3, help="samples per config and round")
    p.add_argument("--min-sample-ms", type=float, default=5.0)
    args = p.parse_args(argv)
    shapes = [tuple(int(x) for x in s.split("x")) for s in args.shapes.split(",")]
    if any(len(s) != 3 for s in shapes):
        p.error("--shapes: write each shape as MxNxK")
    device = find_device(Path(args.devices_dir), args.device, where="--device", key="device")
    screen = MeasureSpec(warmup=1, samples=1, min_sample_ms=args.min_sample_ms, max_reps=256, timeout_ms=60000)
    timed = MeasureSpec(warmup=1, samples=args.samples, min_sample_ms=args.min_sample_ms, max_reps=256, timeout_ms=60000)
    with make_driver(device) as driver:
        ctx = DeviceContext.from_probe(device.id, driver.probe(), device.caps_overrides)
        print(f"# {device.id}: {ctx.adapter}; shader-f16: {'shader-f16' in ctx.caps.features}", flush=True)
        print("| shape | dtype | template | best config | median ms (n) | vs f32 |\n|---|---|---|---|---|---|", flush=True)
        for M, N, K in shapes:
            # (dtype, template, config key) -> samples of every round
            picks: dict[tuple[str, str, str], list[float]] = {}
            ops = {dt: MatMul(M, N, K, **kw) for dt, kw in MATMUL_PRECISIONS.items()}
            for dt, op in ops.items():
                ranked = []
                for name in args.templates.split(","):
                    tpl = get_template(name)
                    if len(tpl.space(op, ctx.caps)) == 0:
                        continue
                    res = tune(op, tpl, ctx.caps, driver, options=TuneOptions(strategy="exhaustive", budget_s=1e9, batch_size=8,
                                                                             measure=screen, confirm_top=0))
                    ranked += [(t.median_ms, name, t.config_key) for t in res.trials if t.check_ok and t.median_ms]
                for _, name, key in sorted(ranked)[: args.top]:
                    picks[(dt, name, key)] = []
            order = list(picks)
            for rnd in range(args.rounds):
                for dt, name, key in order[rnd % len(order):] + order[: rnd % len(order)]:
                    (r,) = run_configs(ops[dt], name, [Config.from_key(key)], driver, measure=timed)
                    if r.ok:
                        picks[(dt, name, key)] += r.samples_ms
            best: dict[str, tuple[float, int, str, str]] = {}
            for (dt, name, key), samples in picks.items():
                if samples:
                    med = statistics.median(samples)
                    if dt not in best or med < best[dt][0]:
                        best[dt] = (med, len(samples), name, key)
            for dt, (med, n, name, key) in best.items():
                ratio = f"{best['f32'][0] / med:.2f}x" if "f32" in best else "-"
                print(f"| {M}x{N}x{K} | {dt} | {name} | {key} | {med:.4f} ({n}) | {ratio} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
