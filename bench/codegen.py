"""Code generation cost per candidate (Python) and compile cost on the device (goal: codegen < 1 ms).

    python bench/codegen.py                              # codegen only, every template, no device
    python bench/codegen.py --device native-lavapipe     # plus shader+pipeline compile on a device

Prints, per template and shape, the lite space size, the median and p90 of render time per
candidate, and (with --device) the median compile time the device reported for the same kernels.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jit_core.caps import DeviceCaps  # noqa: E402
from jit_core.ops import MatMul  # noqa: E402
from jit_core.protocol import MeasureSpec, make_batch  # noqa: E402
from jit_core.templates import get_template, templates_for  # noqa: E402

SHAPES = [(1, 4096, 4096), (16, 768, 768), (127, 129, 65), (512, 3072, 768), (4096, 4096, 4096)]
# A generic discrete-GPU adapter for codegen-only runs (no device needed).
GENERIC_GPU_PROBE = {
    "adapter": {"vendor": "nvidia", "architecture": "", "device": "", "description": "generic"},
    "limits": {"maxComputeInvocationsPerWorkgroup": 1024, "maxComputeWorkgroupStorageSize": 49152,
               "maxComputeWorkgroupSizeX": 1024, "maxComputeWorkgroupSizeY": 1024,
               "maxComputeWorkgroupSizeZ": 64, "maxComputeWorkgroupsPerDimension": 65535,
               "maxStorageBufferBindingSize": 2**31 - 4},
    "features": ["timestamp-query"],
}


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default=None, help="device id in device_configs/ to compile on")
    p.add_argument("--compile-limit", type=int, default=16, help="kernels compiled per template and shape")
    args = p.parse_args(argv)

    driver = None
    caps = DeviceCaps.from_probe(GENERIC_GPU_PROBE)
    if args.device:
        from farm.config.devices import find_device
        from farm.drivers import make_driver

        device = find_device(ROOT / "device_configs", args.device, where="--device", key="device")
        driver = make_driver(device)
        driver.open()
        caps = DeviceCaps.from_probe(driver.probe(), device.caps_overrides or None)
    print("| template | MxNxK | space | codegen median ms | codegen p90 ms | compile median ms |")
    print("|---|---|---|---|---|---|")
    all_times: list[float] = []
    try:
        for name in templates_for("matmul"):
            tpl = get_template(name)
            for M, N, K in SHAPES:
                op = MatMul(M, N, K)
                configs = list(tpl.space(op, caps))
                if not configs:
                    continue
                times, kernels = [], []
                for cfg in configs:
                    t0 = time.perf_counter()
                    kernels.append(tpl.render(op, cfg))
                    times.append((time.perf_counter() - t0) * 1e3)
                all_times += times
                compile_ms = "-"
                if driver is not None and M * N * K <= 512 * 3072 * 768:
                    batch = make_batch(op, [(f"c{i}", k) for i, k in enumerate(kernels[: args.compile_limit])],
                                       seed=1, measure=MeasureSpec(warmup=0, samples=1, min_sample_ms=0, max_reps=1),
                                       check_positions=[0])
                    res = [r.compile_ms for r in driver.run_batch(batch) if r.compile_ms is not None]
                    compile_ms = f"{statistics.median(res):.2f}" if res else "-"
                print(f"| {name} | {M}x{N}x{K} | {len(configs)} | {statistics.median(times):.3f} | "
                      f"{pct(times, 0.9):.3f} | {compile_ms} |", flush=True)
    finally:
        if driver is not None:
            driver.close()
    print(f"\nall candidates: {len(all_times)}, codegen median {statistics.median(all_times):.3f} ms, "
          f"max {max(all_times):.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
