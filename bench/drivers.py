"""What a harness call costs through each page driver, side by side in one run.

    python bench/drivers.py [--rounds 30]

Opens the same headless Chromium twice, once through Playwright (``local-chromium-swiftshader``)
and once through a real Appium server (``local-appium-chromium``), then alternates, round by round,
(1) an empty harness call (``window.jitfarm.wedged()``: the round trip alone) and (2) a one-kernel
batch (16x16x16 matmul, 3 samples). Prints the open time, the median and p90 of each (ms, n) and
the Appium/Playwright ratio of the medians. Only the driver differs: same page, same browser build.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from farm.config.devices import load_device  # noqa: E402
from farm.drivers import make_driver  # noqa: E402
from jit_core.caps import DeviceCaps  # noqa: E402
from jit_core.ops import MatMul  # noqa: E402
from jit_core.protocol import MeasureSpec, make_batch  # noqa: E402
from jit_core.reference import check_positions  # noqa: E402
from jit_core.space import Config  # noqa: E402
from jit_core.templates import get_template  # noqa: E402

DEVICES = ("local-chromium-swiftshader", "local-appium-chromium")


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=30)
    args = ap.parse_args()
    drivers, open_s = {}, {}
    try:
        for dev_id in DEVICES:
            drv = make_driver(load_device(ROOT / "device_configs" / f"{dev_id}.yaml"))
            t0 = time.perf_counter()
            drv.open()
            open_s[dev_id] = time.perf_counter() - t0
            drivers[dev_id] = drv
        op = MatMul(M=16, N=16, K=16)
        template = get_template("matmul-wgsl")
        probe = drivers[DEVICES[0]].probe()
        config = template.space(op, DeviceCaps.from_probe(probe)).configs[0]
        batch = make_batch(op, [("c0", template.render(op, Config(config)))], seed=1,
                           measure=MeasureSpec(warmup=1, samples=3, min_sample_ms=0.5, max_reps=4),
                           check_positions=check_positions(op, 8, 1))
        times: dict[tuple[str, str], list[float]] = {(d, k): [] for d in DEVICES for k in ("call", "batch")}
        for _ in range(args.rounds):
            for dev_id, drv in drivers.items():
                t0 = time.perf_counter()
                drv._call("wedged")
                times[(dev_id, "call")].append((time.perf_counter() - t0) * 1000)
                t0 = time.perf_counter()
                (res,) = drv.run_batch(batch)
                times[(dev_id, "batch")].append((time.perf_counter() - t0) * 1000)
                assert res.ok, res.error
    finally:
        for drv in drivers.values():
            drv.close()
    print(f"{'driver':<28}{'open s':>8}{'empty call ms (med, p90)':>28}{'1-kernel batch ms (med, p90)':>32}")
    for dev_id in DEVICES:
        c, b = times[(dev_id, "call")], times[(dev_id, "batch")]
        print(f"{dev_id:<28}{open_s[dev_id]:>8.2f}{statistics.median(c):>18.2f}{pct(c, 0.9):>10.2f}"
              f"{statistics.median(b):>22.2f}{pct(b, 0.9):>10.2f}")
    pw, ap_ = DEVICES
    for kind in ("call", "batch"):
        ratio = statistics.median(times[(ap_, kind)]) / statistics.median(times[(pw, kind)])
        print(f"appium / playwright, {kind}: {ratio:.2f}x (n={args.rounds} each, interleaved)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
