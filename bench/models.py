"""Transformer blocks end to end on one device: our kernels as one chain, tuned just in time, against
ONNX Runtime Web and TF.js running the same block (same weights, same inputs), in one page.

    python bench/models.py --device local-chromium-lavapipe --models gpt2 bart-base --seq 32
    python bench/models.py --device local-chromium-swiftshader --models llama-2-7b --hidden 512 --heads 8 --ffn 1376

For each model (and phase): the JIT timeline (``jit_core.chain.jit_timeline``: the block with each
op's default config, then each op tuned in turn, largest first, within ``--budget-s`` seconds of
tuning, each improvement swapped into the chain and the block timed again; t = 0 when the model's
timeline starts in the already loaded page), then ``--rounds`` interleaved rounds timing the final
chain, each ORT-Web EP (webgpu, wasm) and TF.js webgpu (the block graph mapped to TF.js ops) with the
same wall-clock timer layer. Every output is
checked against the block's numpy reference. Prints the block latency at t = 0 (default configs)
and after the budget (timeline), the interleaved medians of the final chain and of ORT, the speedups
of the final chain (tuned for ``--budget-s``, 30 s by default) and the seconds until the timeline
reached 95 % of that speedup. ``--hidden/--heads/--ffn`` scale a model down (a device's binding limit or a CPU adapter's
speed may need it; the table says so). Native devices have no ORT-Web: the ORT columns stay empty.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from farm.baselines.onnx_blocks import block_baseline_spec  # noqa: E402
from farm.config.devices import find_device  # noqa: E402
from farm.drivers import make_driver  # noqa: E402
from jit_core.blocks import build_block, run_block_reference, stack_blocks  # noqa: E402
from jit_core.caps import DeviceCaps  # noqa: E402
from jit_core.chain import block_batch, block_positions, check_block, jit_timeline, render_chain, seconds_to_fraction  # noqa: E402
from jit_core.models import MODELS, get_model, scaled  # noqa: E402
from jit_core.protocol import MeasureSpec  # noqa: E402

BASELINES = ("ort-webgpu", "ort-wasm", "tfjs-webgpu")  # the block baselines (TF.js runs the block graph with its ops)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="local-chromium-lavapipe")
    ap.add_argument("--models", nargs="+", default=["gpt2", "bart-base", "t5-small", "roberta-base"],
                    choices=sorted(MODELS),
                    help="llama-2-7b at full size needs a device that binds 180 MB buffers (or --hidden/--ffn)")
    ap.add_argument("--phases", nargs="+", default=["prefill"], choices=("prefill", "decode"))
    ap.add_argument("--seq", type=int, default=32, help="prefill tokens, or cached tokens before the decode step")
    ap.add_argument("--layers", type=int, default=1, help="blocks stacked (distinct weights)")
    ap.add_argument("--hidden", type=int, default=None, help="scale the models down to this width")
    ap.add_argument("--heads", type=int, default=None)
    ap.add_argument("--ffn", type=int, default=None)
    ap.add_argument("--budget-s", type=float, default=30.0,
                    help="tuning seconds per block (the final chain is the one in use after this long: nnJIT's 30 s)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--samples", type=int, default=5)
    ap.add_argument("--min-sample-ms", type=float, default=10.0)
    ap.add_argument("--warmup", type=int, default=1, help="untimed runs of the chain before it is timed")
    ap.add_argument("--warmup-ms", type=float, default=200.0,
                    help="then untimed runs for this long, for every chain, op and baseline timed (GPU clocks)")
    ap.add_argument("--no-ort", action="store_true", help="skip the ONNX Runtime Web and TF.js baselines")
    ap.add_argument("--timer", choices=("wall", "auto"), default="wall",
                    help="the chain's timer: wall (as ORT-Web is timed) or auto (GPU timestamps where usable)")
    ap.add_argument("--json", default=None, help="write every timeline and measurement here")
    ap.add_argument("--summary", default=None, help="also write the table as Markdown here")
    args = ap.parse_args()

    device = find_device(ROOT / "device_configs", args.device, where="--device", key="--device")
    chain_measure = MeasureSpec(warmup=args.warmup, warmup_ms=args.warmup_ms, samples=args.samples, min_sample_ms=args.min_sample_ms, max_reps=64,
                                timer=args.timer, timeout_ms=300000)
    op_measure = MeasureSpec(warmup=2, warmup_ms=args.warmup_ms, samples=3, min_sample_ms=5.0, max_reps=256,
                             timeout_ms=120000)
    scale = {k: v for k, v in (("hidden", args.hidden), ("heads", args.heads), ("ffn", args.ffn)) if v}
    load0 = os.getloadavg()[0]
    rows: list[dict[str, Any]] = []
    t_start = time.perf_counter()
    with make_driver(device) as driver:
        caps = DeviceCaps.from_probe(driver.probe()).with_overrides(device.caps_overrides)
        ort = not args.no_ort and hasattr(driver, "run_baseline") and device.driver != "native"
        print(f"# {device.id}: {caps.vendor} {caps.architecture or caps.device}", flush=True)
        for name in args.models:
            m = get_model(name)
            if scale:
                m = scaled(name, **scale, head_dim=(scale.get("hidden", m.hidden) // scale.get("heads", m.heads)))
            for phase in args.phases:
                if phase == "decode" and m.arch == "encoder":
                    continue
                block = build_block(m, args.seq, phase)
                if args.layers > 1:
                    block = stack_blocks(block, args.layers)
                try:
                    rows.append(run_model(block, m.name, caps, driver, args, chain_measure, op_measure, ort))
                except ValueError as e:  # e.g. no kernel within the device's binding limits
                    print(f"## {m.name} {phase}: skipped: {e}", flush=True)
        versions = driver.versions()
    wall = time.perf_counter() - t_start
    text = render(rows, args, device.id, caps, versions, wall, load0)
    print(text)
    if args.summary:
        Path(args.summary).parent.mkdir(parents=True, exist_ok=True)
        Path(args.summary).write_text(text)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=1, default=str) + "\n")
    return 0


def run_model(block, model: str, caps, driver, args, chain_measure: MeasureSpec, op_measure: MeasureSpec,
              ort: bool) -> dict[str, Any]:
    seed = 1
    label = f"{model} {block.phase} s{block.seq}" + (f" past {block.past}" if block.past else "") + (
        f" x{block.layers}" if block.layers > 1 else "")
    print(f"## {label}: {len(block.steps)} kernels", flush=True)
    expected = run_block_reference(block, seed)[block.output]
    tl = jit_timeline(block, caps, driver, budget_s=args.budget_s, seed=seed, op_measure=op_measure,
                      chain_measure=chain_measure, expected=expected,
                      on_point=lambda p: print(f"  {p.t_s:7.1f} s  {p.block_ms:10.3f} ms  {p.event}", flush=True))
    tl_last = tl.in_use()[-1].block_ms if tl.in_use() else None
    positions = list(block_positions(block))
    chain = render_chain(block, tl.plans)
    samples: dict[str, list[float]] = {"jit": [], **({k: [] for k in BASELINES} if ort else {})}
    errors: dict[str, float] = {}
    failures: dict[str, str] = {}
    ort_measure = chain_measure.to_json()
    for _ in range(args.rounds):
        (res,) = driver.run_batch(block_batch(block, [("chain", chain)], seed=seed, measure=chain_measure))
        check = check_block(block, seed, positions, res.values, expected=expected) if res.ok else None
        if res.ok and check and check.ok:
            samples["jit"] += res.samples_ms
            errors["jit"] = max(errors.get("jit", 0.0), check.max_abs_err / check.scale)
        else:
            failures["jit"] = (res.error or (check.message if check else ""))[:200]
        for name in BASELINES if ort else ():
            r = driver.run_baseline(block_baseline_spec(name, block, seed=seed, measure=ort_measure, positions=positions))
            if not r.get("ok"):
                failures[name] = f"{r.get('errorClass')}: {str(r.get('error'))[:200]}"
                continue
            c = check_block(block, seed, positions, r.get("values"), expected=expected)
            if not c.ok:
                failures[name] = f"wrong result: {c.message}"
                continue
            samples[name] += [float(x) for x in r["samplesMs"]]
            errors[name] = max(errors.get(name, 0.0), c.max_abs_err / c.scale)
    med = {k: statistics.median(v) for k, v in samples.items() if v}
    row: dict[str, Any] = {
        "label": label, "model": model, "phase": block.phase, "seq": block.seq, "past": block.past,
        "layers": block.layers, "kernels": len(block.steps),
        "gflop": sum(s.op.flops() for s in block.steps if s.op.kind == "matmul") / 1e9,
        "default_ms": tl.points[0].block_ms if tl.points else None,
        "tuned_ms": tl_last,
        "final_ms": med.get("jit"), "n": {k: len(v) for k, v in samples.items()}, "median_ms": med,
        "rel_err": errors, "failures": failures, "timeline": tl.to_dict(),
    }
    for name in BASELINES:
        if name in med and "jit" in med:
            row[f"speedup_{name}"] = med[name] / med["jit"]
            row[f"t95_{name}"] = seconds_to_fraction(tl, med[name])
    print(f"  final {med}", flush=True)
    return row


def _f(x: Any, spec: str = ".3f") -> str:
    return "-" if x is None or (isinstance(x, float) and not np.isfinite(x)) else format(x, spec)


def render(rows: list[dict[str, Any]], args, device_id: str, caps, versions: dict[str, str], wall: float,
           load0: float) -> str:
    cmd = "python bench/models.py " + " ".join(sys.argv[1:])
    at = f"{args.budget_s:g} s"
    head = (f"| block | kernels | matmul GFLOP | t=0 ms | t={at} ms | final ms (n) | ORT webgpu ms (n) "
            f"| ORT wasm ms (n) | TF.js webgpu ms (n) | speedup vs ORT webgpu | vs ORT wasm | vs TF.js webgpu "
            f"| s to 95% (ORT webgpu, ORT wasm, TF.js webgpu) | max rel err | failures |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        med, n = r["median_ms"], r["n"]
        cells = [
            r["label"], str(r["kernels"]), _f(r["gflop"], ".3f"), _f(r["default_ms"]), _f(r["tuned_ms"]),
            f"{_f(med.get('jit'))} ({n.get('jit', 0)})",
            *(f"{_f(med.get(k))} ({n.get(k, 0)})" for k in BASELINES),
            *(_f(r.get(f"speedup_{k}"), ".2f") + "x" if r.get(f"speedup_{k}") else "-" for k in BASELINES),
            ", ".join(_f(r.get(f"t95_{k}"), ".1f") for k in BASELINES),
            ", ".join(f"{k} {v:.1e}" for k, v in r["rel_err"].items()),
            " ".join("; ".join(f"{k}: {v}" for k, v in r["failures"].items()).replace("|", "/").split()) or "-",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return (f"# bench/models.py on {device_id} ({caps.vendor} {caps.architecture or caps.device})\n\n"
            f"Command: `{cmd}`\n\n"
            f"Tuning budget {args.budget_s:g} s per block; every timing after {args.warmup_ms:g} ms of untimed runs; "
            f"{args.rounds} interleaved rounds of {args.samples} wall-clock "
            f"samples (each >= {args.min_sample_ms:g} ms, sync by readback) for the final chain, each ORT-Web EP and TF.js webgpu "
            f"(speedups: their medians over the final chain's); t=0 and t={at}: the timeline's block latency with "
            "the default configs and after tuning (single measurements, not interleaved). "
            "Errors: max |result - numpy reference| / RMS of the reference, at the checked output positions "
            "(first and last row, 256 spread). "
            f"Versions: {', '.join(f'{k} {v}' for k, v in versions.items())}; wall {wall:.0f} s; 1-min load "
            f"{load0:.1f} at start, {os.getloadavg()[0]:.1f} at end, on {os.cpu_count()} cores.\n\n"
            + "\n".join(lines) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
