"""The JIT-tuned kernel against every TF.js and ONNX Runtime Web backend, on one device, one op.

    python bench/baselines.py --device local-chromium-swiftshader --op 64x128x128
    python bench/baselines.py --device local-chromium-lavapipe --op 64x128x128 --rounds 5

Runs the farm's own job (tune within ``--budget-s``, then the winner and each baseline interleaved
A B C ... for ``--rounds`` rounds in the same page, same inputs, same wall-clock timer layer) and
prints per implementation: the median of the pooled per-run samples, its 95 % CI (order
statistics), n, the backend and adapter that actually ran, the validity flags, the baseline's
time over the tuned kernel's (a ratio measured side by side in one run), and GPU-timestamp times
where both the device and the implementation have them (ours: per dispatch in a pass; TF.js: one
call, from tf.time). With ``--summary FILE``
the table is also written as Markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from farm.analysis.stats import pooled_samples  # noqa: E402
from farm.baselines.catalog import CATALOG  # noqa: E402
from farm.config.devices import find_device  # noqa: E402
from farm.config.experiments import CompareSpec, ExperimentSpec, JobSpec, TunerSpec  # noqa: E402
from farm.drivers import make_driver  # noqa: E402
from farm.scheduler.job import DeviceContext, JobRunner  # noqa: E402
from jit_core.ops import MatMul  # noqa: E402
from jit_core.protocol import MeasureSpec  # noqa: E402
from jit_core.timing import median, median_ci  # noqa: E402


def parse_op(text: str) -> MatMul:
    dims = [int(x) for x in text.lower().split("x")]
    if len(dims) == 3:
        return MatMul(*dims)
    if len(dims) == 4:
        return MatMul(dims[1], dims[2], dims[3], batch=dims[0])
    raise SystemExit(f"--op {text!r}: write MxNxK or BxMxNxK, e.g. 64x128x128")


def adapter_of(impl: str, rows: list[dict[str, Any]], ours: str) -> str:
    if impl == "jit":
        return ours
    if CATALOG[impl].backend in ("wasm", "cpu"):
        return "CPU (no GPU adapter)"
    return str(rows[0].get("impl_adapter") or "unknown") if rows else "-"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="local-chromium-swiftshader")
    ap.add_argument("--op", default="64x128x128", help="MxNxK or BxMxNxK (default: the quickstart's attention projection)")
    ap.add_argument("--baselines", default=",".join(CATALOG), help="comma-separated (default: all)")
    ap.add_argument("--template", default="matmul-wgsl")
    ap.add_argument("--budget-s", type=float, default=20.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--samples", type=int, default=5)
    ap.add_argument("--min-sample-ms", type=float, default=10.0)
    ap.add_argument("--baseline-device", choices=("shared", "own"), default="shared")
    ap.add_argument("--summary", default=None, help="also write the table as Markdown to this file")
    args = ap.parse_args()

    device = find_device(ROOT / "device_configs", args.device, where="--device", key="--device")
    op = parse_op(args.op)
    names = [b for b in args.baselines.split(",") if b]
    unknown = [b for b in names if b not in CATALOG]
    if unknown:
        raise SystemExit(f"--baselines: unknown {unknown}; known: {', '.join(CATALOG)}")
    measure = MeasureSpec(warmup=1, samples=args.samples, min_sample_ms=args.min_sample_ms, max_reps=256,
                          timeout_ms=120000)
    exp = ExperimentSpec(
        name="bench-baselines", file="bench/baselines.py", description="", devices=(device,),
        ops=((op.shape_str(), op),), seed=1,
        tuner=TunerSpec(template=args.template, budget_s=args.budget_s),
        measure=measure, compare=CompareSpec(rounds=args.rounds, samples=args.samples,
                                             baseline_device=args.baseline_device),
        baselines=tuple(names))
    rows: list[dict[str, Any]] = []

    def emit(table: str, batch: list[dict[str, Any]]) -> None:
        if table == "measurements":
            rows.extend(batch)

    t0 = time.perf_counter()
    load0 = os.getloadavg()[0]
    with make_driver(device) as driver:
        probe = driver.probe()
        ctx = DeviceContext.from_probe(device.id, probe, device.caps_overrides, device.tags)
        print(f"# {device.id}: {ctx.adapter}; device flags: {', '.join(ctx.flags) or 'none'}", flush=True)
        summary = JobRunner(driver, ctx, exp, "bench", emit).run(JobSpec(f"{device.id}/{op.key()}", device.id, op, op.shape_str()))
        versions = driver.versions()
    wall = time.perf_counter() - t0
    if summary.get("status") != "ok":
        print(f"tuning failed: {summary.get('error')}")

    pooled = pooled_samples(rows)
    jit = pooled.get("jit", [])
    jit_med = median(jit) if jit else None
    cmd = "python bench/baselines.py " + " ".join(sys.argv[1:])
    header = ("| impl | backend used | adapter | device | median ms | 95% CI ms | n | ratio to jit "
              "| GPU-timestamp ms (median, n) | flags / error |")
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for impl in ["jit"] + names:
        mine = [r for r in rows if r["impl"] == impl]
        good = [r for r in mine if r["ok"] and r["check_ok"]]
        samples = pooled.get(impl, [])
        flags = sorted({f for r in mine for f in (r.get("flags") or [])} - set(ctx.flags))
        err = next((f"{r['error_class']}: {r['error']}" for r in mine if not (r["ok"] and r["check_ok"])), None)
        med = median(samples) if samples else None
        ci = median_ci(samples) if samples else None
        cfg = json.loads(mine[0]["config"]) if mine and impl != "jit" and mine[0].get("config") else {}
        ratio = f"{med / jit_med:.2f}" if med and jit_med and impl != "jit" else ("1" if impl == "jit" and med else "-")
        gpu = [x for r in good for x in (r.get("gpu_ms") if r.get("gpu_ms") is not None else [])]
        cells = [
            impl, str(mine[0].get("backend_used") if mine else "-"), adapter_of(impl, mine, ctx.adapter),
            str(cfg.get("device") or ("harness" if impl == "jit" else "-")) + (f", {cfg['threads']} threads" if cfg.get("threads") else ""),
            f"{med:.4f}" if med else "-", f"{ci[0]:.4f}-{ci[1]:.4f}" if ci else "-", str(len(samples)), ratio,
            f"{median(gpu):.4f} ({len(gpu)})" if gpu else "-",
            ", ".join(flags) + ((" " if flags else "") + (err or "")[:160] if err else ""),
        ]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    text = (f"# bench/baselines.py: {op.key()} on {device.id} ({ctx.adapter})\n\nCommand: `{cmd}`\n\n"
            f"Tuned config: {summary.get('best_config')}; device flags: {', '.join(ctx.flags) or 'none'}; "
            f"versions: {', '.join(f'{k} {v}' for k, v in versions.items())}; wall {wall:.0f} s; "
            f"1-min load average {load0:.1f} at start, {os.getloadavg()[0]:.1f} at end, on {os.cpu_count()} cores.\n"
            f"Wall-clock timer layer (dispatch or op call, sync by readback), {args.rounds} interleaved rounds of "
            f"{args.samples} samples, each sample >= {args.min_sample_ms} ms; n = pooled samples.\n\n"
            + "\n".join(lines) + "\n")
    print(text)
    if args.summary:
        Path(args.summary).parent.mkdir(parents=True, exist_ok=True)
        Path(args.summary).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
