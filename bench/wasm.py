"""WASM SIMD kernels (matmul-wasm-simd): codegen and compile cost per candidate, space sizes, and
tuned GFLOP/s against TF.js-wasm and ORT-wasm on the same page (threads on).

    python bench/wasm.py                        # every shape below
    python bench/wasm.py --shapes 512x512x512 --budget 60
    python bench/wasm.py --no-tune              # codegen + compile only

Part 1, per shape: the lite space's size, Python codegen per candidate (median, p90) and the
browser's WebAssembly.compile + instantiate per candidate (``compileMs``, median, p90) for up to
``--compile-limit`` candidates. Part 2, per shape: tune() with the exhaustive strategy within
``--budget`` seconds, then the winner and each baseline interleaved A B A B for ``--rounds`` rounds
of ``--samples`` wall-clock samples on the same page and inputs; GFLOP/s from the median of all
samples of each side, ratio = baseline median time / ours.
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
from farm.baselines.catalog import baseline_spec  # noqa: E402
from jit_core.protocol import MeasureSpec, make_batch  # noqa: E402
from jit_core.reference import check_outputs, check_positions  # noqa: E402
from jit_core.space import Config  # noqa: E402
from jit_core.templates import get_template  # noqa: E402
from jit_core.tuner import TuneOptions, tune  # noqa: E402

# Transformer shapes: BERT-base/BART-base projections and FFN at sequence 128, decode GEMV, one
# attention head batch, and the 512^3 cube PLATFORM.md measured the libraries at.
SHAPES = {
    "512x512x512": MatMul(512, 512, 512),
    "128x768x768": MatMul(128, 768, 768),
    "128x3072x768": MatMul(128, 3072, 768),
    "128x768x3072": MatMul(128, 768, 3072),
    "12x128x128x64": MatMul(128, 128, 64, batch=12),
    "1x768x768": MatMul(1, 768, 768),
}
# Baselines from farm/baselines/catalog.py (both use every core when the page is isolated).
BASELINES = ("tfjs-wasm", "ort-wasm")


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def gflops(op: MatMul, ms: float | None) -> str:
    return "-" if not ms else f"{op.flops() / ms / 1e6:.2f}"


def compile_costs(driver, tpl, op: MatMul, caps: DeviceCaps, limit: int) -> tuple[int, list[float], list[float]]:
    configs = list(tpl.space(op, caps))
    codegen, kernels = [], []
    for cfg in configs:
        t0 = time.perf_counter()
        kernels.append(tpl.render(op, cfg))
        codegen.append((time.perf_counter() - t0) * 1e3)
    compile_ms: list[float] = []
    one = MeasureSpec(warmup=0, samples=1, min_sample_ms=0.0, max_reps=1)
    chosen = kernels[:limit]
    for start in range(0, len(chosen), 8):
        part = [(f"c{start + i}", k) for i, k in enumerate(chosen[start:start + 8])]
        batch = make_batch(op, part, seed=1, measure=one, check_positions=[0])
        compile_ms += [r.compile_ms for r in driver.run_batch(batch) if r.ok and r.compile_ms is not None]
    return len(configs), codegen, compile_ms


def compare(driver, tpl, op: MatMul, config: Config, names: list[str], *, rounds: int, samples: int,
            seed: int = 1) -> dict[str, dict]:
    positions = check_positions(op, 64, seed)
    measure = MeasureSpec(warmup=2, samples=samples, min_sample_ms=20.0, max_reps=256, timer="wall")
    batch = make_batch(op, [("winner", tpl.render(op, config))], seed=seed, measure=measure, check_positions=positions)
    bj = batch.to_json()
    out: dict[str, dict] = {n: {"samples": [], "errors": []} for n in ["jit", *names]}
    for _ in range(rounds):
        res = driver.run_batch(batch)[0]
        chk = check_outputs(op, seed, positions, res.values) if res.ok else None
        if res.ok and chk.ok:
            out["jit"]["samples"] += res.samples_ms
        else:
            out["jit"]["errors"].append(res.error or (chk.message if chk else "?"))
        for name in names:
            spec = baseline_spec(name, op, seed=seed, measure=bj["measure"], positions=positions)
            r = driver.run_baseline(spec)
            chk = check_outputs(op, seed, positions, r.get("values")) if r.get("ok") else None
            if r.get("ok") and chk.ok:
                out[name]["samples"] += [float(x) for x in r["samplesMs"]]
                out[name]["threads"] = r.get("threads")
            else:
                out[name]["errors"].append(f"{r.get('errorClass')}: {r.get('error') or (chk.message if chk else '?')}"[:160])
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="local-chromium-swiftshader", help="browser device id in device_configs/")
    p.add_argument("--shapes", nargs="*", default=list(SHAPES), help=f"subset of {list(SHAPES)}")
    p.add_argument("--budget", type=float, default=45.0, help="tuning seconds per shape")
    p.add_argument("--compile-limit", type=int, default=16, help="candidates compiled per shape in part 1")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--samples", type=int, default=5)
    p.add_argument("--baselines", nargs="*", default=list(BASELINES), help=f"subset of {list(BASELINES)}")
    p.add_argument("--no-tune", action="store_true", help="part 1 only")
    args = p.parse_args(argv)
    unknown = [s for s in args.shapes if s not in SHAPES] + [b for b in args.baselines if b not in BASELINES]
    if unknown:
        p.error(f"unknown shape/baseline {unknown}")

    from farm.config.devices import find_device
    from farm.drivers import make_driver

    device = find_device(ROOT / "device_configs", args.device, where="--device", key="device")
    driver = make_driver(device)
    driver.open()
    tpl = get_template("matmul-wasm-simd")
    try:
        probe = driver.probe()
        caps = DeviceCaps.from_probe(probe, device.caps_overrides or None)
        print(f"device {device.id}: {driver.versions().get('browser')}, wasm {probe.get('wasm')}, "
              f"{caps.hardware_concurrency} threads, {caps.simd_registers} SIMD registers, L1 {caps.l1_bytes} B")
        print("\n## codegen + compile per candidate\n")
        print("| shape | space | codegen median ms | codegen p90 ms | compile median ms | compile p90 ms | codegen+compile median ms | n |")
        print("|---|---|---|---|---|---|---|---|")
        all_total: list[float] = []
        for name in args.shapes:
            op = SHAPES[name]
            size, cg, cm = compile_costs(driver, tpl, op, caps, args.compile_limit)
            total = [a + b for a, b in zip(cg, cm)]
            all_total += total
            print(f"| {name} | {size} | {statistics.median(cg):.3f} | {pct(cg, 0.9):.3f} | "
                  f"{statistics.median(cm) if cm else float('nan'):.3f} | {pct(cm, 0.9) if cm else float('nan'):.3f} | "
                  f"{statistics.median(total) if total else float('nan'):.3f} | {len(cm)} |", flush=True)
        if all_total:
            print(f"\nall shapes: codegen+compile median {statistics.median(all_total):.2f} ms, p90 {pct(all_total, 0.9):.2f} ms, "
                  f"n={len(all_total)} (goal < 5 ms)")
        if args.no_tune:
            return 0
        print("\n## tuned vs baselines (same page, interleaved, wall clock, threads on)\n")
        head = " | ".join(f"{b} GFLOP/s | speedup vs {b}" for b in args.baselines)
        print(f"| shape | trials | tune s | best config | ours GFLOP/s | n | {head} |")
        print("|---|---|---|---|---|---|" + "---|---|" * len(args.baselines))
        notes: list[str] = []
        for name in args.shapes:
            op = SHAPES[name]
            opts = TuneOptions(budget_s=args.budget, batch_size=4,
                               measure=MeasureSpec(warmup=2, samples=3, min_sample_ms=10.0, max_reps=64, timer="wall"))
            result = tune(op, tpl, caps, driver, options=opts)
            if result.best is None:
                print(f"| {name} | {len(result.trials)} | {result.elapsed_s:.0f} | no config passed | - | - |", flush=True)
                continue
            cmp = compare(driver, tpl, op, Config(result.best.config), args.baselines,
                          rounds=args.rounds, samples=args.samples)
            ours = statistics.median(cmp["jit"]["samples"]) if cmp["jit"]["samples"] else None
            cells = []
            for b in args.baselines:
                s = cmp[b]["samples"]
                if s and ours:
                    med = statistics.median(s)
                    cells.append(f"{gflops(op, med)} ({cmp[b].get('threads')} thr) | {med / ours:.2f}x")
                else:
                    cells.append("- | -")
                    notes.append(f"{name} {b}: {'; '.join(sorted(set(cmp[b]['errors'])))}")
            print(f"| {name} | {len(result.trials)} | {result.elapsed_s:.0f} | {result.best.config_key} | "
                  f"{gflops(op, ours)} | {len(cmp['jit']['samples'])} | {' | '.join(cells)} |", flush=True)
        for n in notes:
            print(f"- not measured: {n}")
    finally:
        driver.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
