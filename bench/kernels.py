"""Tuned WGSL matmul latency per device and shape, next to the references measured in the same run.

    python bench/kernels.py --device native-lavapipe --shapes small
    python bench/kernels.py --device native-vulkan-gpu --shapes gpu --cublas      # on a GPU machine
    python bench/kernels.py --device local-chromium-lavapipe --baselines tfjs-webgpu,ort-webgpu

For each shape and template it tunes the template's whole lite space (exhaustive, in the space's
prior order) and reports:
- best: the tuner's answer over the whole space (its confirmation rounds included), and
  pick@budget: what the tuner returns when tuning again with ``--budget-s`` seconds; the two
  configs are then timed again, interleaved, and pick/best is the ratio of that pair (pick ms is
  shown on best's scale);
- tfjs-like: the scalar template's config closest to TF.js's WebGPU matmul (8x8 workgroup, 4x4 per
  thread, 32x32 tile in workgroup memory), timed in the same run;
- best of all: the best template for the shape (templates that do not apply, e.g. GEMV for M > 8,
  are skipped);
- cublas: torch.matmul fp32 (TF32 off) with CUDA events, when ``--cublas`` is given (fp16 for
  f16 ops);
- ``--dtype f32,f16,f16acc16``: each shape in each dtype, side by side in one run (f16: half
  buffers, f32 sums; f16acc16: f16 sums too); f16 needs a device with ``shader-f16``, and
  matmul-wgsl-vec4 and -gemv are the templates with f16 kernels (no tfjs-like config, no baseline comparison for f16);
- with ``--baselines tfjs-webgpu,ort-webgpu`` (browser devices): the best kernel of the shape and
  each baseline library's matmul, interleaved A B C for ``--rounds`` rounds in the same page, same
  inputs, same wall-clock timer layer (the farm's comparison, ``JobRunner.compare``), in a second
  table: pooled medians, each baseline's time over ours, and the geomean of those ratios over
  the shapes.
Records go to ``results/<run_id>/`` like any run (trials, measurements, jobs, manifest), and the
table goes to stdout and, with ``--summary``, to a Markdown file. Needs no Ray and no browser for
native devices, so it runs on a GPU server with only numpy, pandas, pyarrow, pyyaml and wgpu.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from farm.baselines.catalog import CATALOG  # noqa: E402
from farm.config.devices import find_device  # noqa: E402
from farm.config.experiments import CompareSpec, ExperimentSpec, JobSpec, TunerSpec  # noqa: E402
from farm.drivers import make_driver  # noqa: E402
from farm.scheduler.job import DeviceContext, JobRunner, trial_row  # noqa: E402
from farm.scheduler.manifest import git_state, new_run_id, package_versions  # noqa: E402
from farm.store.parquet import ParquetStore  # noqa: E402
from jit_core.ops import MATMUL_PRECISIONS, MatMul  # noqa: E402
from jit_core.protocol import MeasureSpec  # noqa: E402
from jit_core.space import Config  # noqa: E402
from jit_core.templates import TEMPLATES, MatmulVec4WGSL, get_template  # noqa: E402
from farm.analysis.stats import geomean, pooled_samples  # noqa: E402
from jit_core.timing import median  # noqa: E402
from jit_core.tuner import TrialRecord, TuneOptions, run_configs, tune  # noqa: E402

# (label, M, N, K). Transformer layers: BART-base d=768/FFN 3072, T5-small d=512/FFN 2048,
# Llama-2-7B d=4096/FFN 11008; prefill at a sequence length, decode at M=1.
SHAPES: dict[str, list[tuple[str, int, int, int]]] = {
    "small": [
        ("square 128", 128, 128, 128),
        ("square 256", 256, 256, 256),
        ("BART-base qkv s16", 16, 768, 768),
        ("BART-base ffn1 s16", 16, 3072, 768),
        ("T5-small ffn2 s16", 16, 512, 2048),
        ("Llama-2-7B decode qkv", 1, 4096, 4096),
    ],
    "gpu": [
        ("square 1024", 1024, 1024, 1024),
        ("square 2048", 2048, 2048, 2048),
        ("square 4096", 4096, 4096, 4096),
        ("BART-base qkv s512", 512, 768, 768),
        ("BART-base ffn1 s512", 512, 3072, 768),
        ("BART-base ffn2 s512", 512, 768, 3072),
        ("T5-small ffn1 s512", 512, 2048, 512),
        ("T5-small ffn2 s512", 512, 512, 2048),
        ("Llama-2-7B qkv s512", 512, 4096, 4096),
        ("Llama-2-7B ffn1 s512", 512, 11008, 4096),
        ("Llama-2-7B ffn2 s512", 512, 4096, 11008),
        ("Llama-2-7B decode qkv", 1, 4096, 4096),
        ("Llama-2-7B decode ffn1", 1, 11008, 4096),
        ("Llama-2-7B decode ffn2", 1, 4096, 11008),
    ],
}
TFJS_LIKE = Config({"BM": 32, "BN": 32, "BK": 32, "TM": 4, "TN": 4, "SH": 1, "UK": 0})
TFJS_LIKE_TEMPLATE = "matmul-wgsl"


def gflops(op: MatMul, ms: float | None) -> float | None:
    return None if not ms else op.flops() / (ms * 1e-3) / 1e9


def cublas_ms(op: MatMul, repeats: int) -> tuple[float, int]:
    """Median ms of torch.matmul fp32 with TF32 off (fp16 for an f16 op), timed by CUDA events
    (after warm-up)."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dt = torch.float16 if op.dtype == "f16" else torch.float32
    a = torch.randn(op.batch, op.M, op.K, device="cuda", dtype=dt)
    b = torch.randn(op.batch, op.K, op.N, device="cuda", dtype=dt)
    for _ in range(3):
        torch.matmul(a, b)
    torch.cuda.synchronize()
    # Enough calls per sample that a sample spans >= 5 ms.
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    torch.matmul(a, b)
    end.record()
    torch.cuda.synchronize()
    reps = max(1, int(5.0 / max(start.elapsed_time(end), 1e-3)))
    samples = []
    for _ in range(repeats):
        start.record()
        for _ in range(reps):
            torch.matmul(a, b)
        end.record()
        torch.cuda.synchronize()
        samples.append(start.elapsed_time(end) / reps)
    return statistics.median(samples), len(samples)


def time_config(driver: Any, op: MatMul, template: str, config: Config, measure: MeasureSpec,
                seed: int = 1) -> tuple[float, list[float]] | None:
    """Median ms and samples of one config, checked against the reference; None if it failed."""
    (rec,) = run_configs(op, template, [config], driver, measure=measure, seed=seed)
    return (rec.median_ms, rec.samples_ms) if rec.ok else None


def row_cells(label: str, op: MatMul, template: str, space: str, config: str, best_ms: float | None,
              pick_ms: float | None, tfjs_like: tuple[float, list[float]] | None,
              ref: tuple[float, int] | None) -> list[str]:
    f = lambda x: f"{x:.4f}" if x else "-"  # noqa: E731
    return [label, f"{op.M}x{op.N}x{op.K}", template, space, config, f(best_ms),
            f"{gflops(op, best_ms):.1f}" if best_ms else "-", f(pick_ms),
            f"{pick_ms / best_ms:.3f}" if pick_ms and best_ms else "-",
            f(tfjs_like[0] if tfjs_like else None), f(ref[0] if ref else None),
            f"{100 * ref[0] / best_ms:.0f}%" if ref and best_ms else "-"]


def tuner_pick(op: MatMul, tpl: Any, caps: Any, driver: Any, best: TrialRecord, budget_s: float,
               max_evals: int | None, measure: MeasureSpec, rounds: int = 3) -> tuple[str, float, float] | None:
    """What the tuner returns after ``budget_s`` seconds (exhaustive in the space's prior order,
    its confirmation rounds included), then it and the whole space's ``best`` timed again in one
    batch per round, order alternating (interleaved): (its config key, its ms, best's ms), pooled
    medians of the checked runs. The same config as ``best``: best's own median twice."""
    quick = tune(op, tpl, caps, driver, options=TuneOptions(strategy="exhaustive", budget_s=budget_s,
                                                            max_evals=max_evals, batch_size=8, measure=measure))
    if quick.best is None:
        return None
    key = quick.best.config_key
    if key == best.config_key:
        return key, best.median_ms, best.median_ms
    pair = [Config.from_key(key), Config(best.config)]
    pooled: dict[str, list[float]] = {key: [], best.config_key: []}
    for rnd in range(rounds):
        for rec in run_configs(op, tpl, pair if rnd % 2 == 0 else pair[::-1], driver, measure=measure):
            if rec.ok:
                pooled[rec.config_key] += rec.samples_ms
    if not all(pooled.values()):
        return None
    return key, median(pooled[key]), median(pooled[best.config_key])


def pooled_medians(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Median of the pooled samples of each implementation's correct measurements."""
    return {impl: median(xs) for impl, xs in pooled_samples(rows).items() if xs}


def versus_cells(entry: tuple[str, MatMul, dict[str, float]], baselines: list[str]) -> list[str]:
    label, op, med = entry
    f = lambda x: f"{x:.4f}" if x else "failed"  # noqa: E731
    cells = [label, f"{op.M}x{op.N}x{op.K}", f(med.get("jit"))]
    for b in baselines:
        cells += [f(med.get(b)), f"{med[b] / med['jit']:.2f}x" if b in med and "jit" in med else "-"]
    return cells


def versus_table(versus: list[tuple[str, MatMul, dict[str, float]]], baselines: list[str],
                 args: argparse.Namespace) -> str:
    """Ours against each baseline per shape, and the geomean of the ratios (shapes where both ran)."""
    head = ["shape", "MxNxK", "ours ms"] + [c for b in baselines for c in (f"{b} ms", f"{b} / ours")]
    out = [f"Baselines: the best kernel of each shape and each library's matmul, {args.rounds} interleaved rounds "
           f"of {args.samples} wall-clock samples (each >= {args.min_sample_ms} ms) in the same page; medians of "
           "the pooled samples, ratio = baseline / ours (above 1: ours is faster).", "",
           "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(versus_cells(e, baselines)) + " |" for e in versus]
    geo = ["**geomean**", f"{len(versus)} shapes", "-"]
    for b in baselines:
        ratios = [m[b] / m["jit"] for _, _, m in versus if b in m and "jit" in m]
        geo += ["-", f"**{geomean(ratios):.2f}x** (n={len(ratios)})" if ratios else "-"]
    out.append("| " + " | ".join(geo) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", required=True, help="device id in device_configs/")
    p.add_argument("--devices-dir", default=str(ROOT / "device_configs"))
    p.add_argument("--shapes", default="small", choices=sorted(SHAPES))
    p.add_argument("--only", default=None, help="comma-separated labels or MxNxK to keep")
    p.add_argument("--templates", default="matmul-wgsl-vec4,matmul-wgsl-gemv",
                   help=f"comma-separated, from {sorted(TEMPLATES)}")
    p.add_argument("--budget-s", type=float, default=10.0, help="tuning budget of the second tune (pick@budget)")
    p.add_argument("--max-evals", type=int, default=None, help="cap on configs per template and shape")
    p.add_argument("--samples", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1,
                   help="untimed runs per candidate; raise it on GPUs that clock down when idle")
    p.add_argument("--warmup-ms", type=float, default=0.0,
                   help="then untimed runs for this long before each candidate is timed (GPU clocks)")
    p.add_argument("--min-sample-ms", type=float, default=5.0)
    p.add_argument("--max-threads", type=int, default=None,
                   help="lift nnJIT's 256-thread cap of matmul-wgsl-vec4 to this (up to the adapter's limit)")
    p.add_argument("--dtype", default="f32",
                   help="comma-separated op dtypes, each shape timed in each: f32, f16 (f32 sums), f16acc16 (f16 sums)")
    p.add_argument("--cublas", action="store_true", help="time torch.matmul fp32 (TF32 off) in the same run")
    p.add_argument("--baselines", default="",
                   help="comma-separated baseline libraries timed against the best kernel of each shape, "
                        "e.g. tfjs-webgpu,ort-webgpu (browser devices)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the baseline comparison")
    p.add_argument("--results-dir", default=str(ROOT / "results"))
    p.add_argument("--summary", default=None, help="also write the table as Markdown here")
    args = p.parse_args(argv)

    bad = [d for d in args.dtype.split(",") if d not in MATMUL_PRECISIONS]
    if bad:
        p.error(f"--dtype: unknown {bad}; known: {', '.join(MATMUL_PRECISIONS)}")
    shapes = SHAPES[args.shapes]
    if args.only:
        keep = set(args.only.split(","))
        shapes = [s for s in shapes if s[0] in keep or f"{s[1]}x{s[2]}x{s[3]}" in keep]
    device = find_device(Path(args.devices_dir), args.device, where="--device", key="device")
    baselines = [b for b in args.baselines.split(",") if b]
    unknown = [b for b in baselines if b not in CATALOG]
    if unknown:
        p.error(f"--baselines: unknown {unknown}; known: {', '.join(CATALOG)}")
    if baselines and device.driver == "native":
        p.error(f"--baselines: {device.id} is a native device; baselines run in a browser device's page")
    run_id = new_run_id(f"bench-kernels-{args.device}")
    store = ParquetStore(Path(args.results_dir) / run_id)
    manifest: dict[str, Any] = {"run_id": run_id, "status": "running", "command": sys.argv,
                                "device_configs": {device.id: device.to_dict()},
                                "versions": package_versions(), "git": git_state(), "bench": vars(args)}
    store.write_manifest(manifest)
    measure = MeasureSpec(warmup=args.warmup, warmup_ms=args.warmup_ms, samples=args.samples, min_sample_ms=args.min_sample_ms, max_reps=256,
                          timeout_ms=60000)
    lines: list[str] = []
    versus: list[tuple[str, MatMul, dict[str, float]]] = []  # (label, op, pooled median ms per impl)
    exp = ExperimentSpec(name="bench-kernels", file="bench/kernels.py", description="", devices=(device,), ops=(),
                         seed=1, tuner=TunerSpec(template=MatmulVec4WGSL.name), measure=measure,
                         compare=CompareSpec(rounds=args.rounds, samples=args.samples), baselines=tuple(baselines))
    t_run = time.perf_counter()
    shown = [Path(a).name if a.startswith("/") else a for a in sys.argv[1:]]
    cmd = "python bench/kernels.py " + " ".join(f'"{a}"' if " " in a else a for a in shown)
    adapter = [""]

    def write_summary(footer: str) -> None:
        """The table so far as Markdown (rewritten after every row, so a cut-off run keeps its rows)."""
        if args.summary:
            Path(args.summary).parent.mkdir(parents=True, exist_ok=True)
            Path(args.summary).write_text(f"# bench/kernels.py on {adapter[0]}\n\nCommand: `{cmd}`\n\n"
                                          + "\n".join(lines) + "\n" + footer)

    with make_driver(device) as driver:
        probe = driver.probe()
        ctx = DeviceContext.from_probe(device.id, probe, device.caps_overrides)
        store.update_manifest(devices={device.id: {"probe": probe, "adapter": ctx.adapter, "versions": driver.versions()}})
        print(f"# {device.id}: {ctx.adapter}", flush=True)
        adapter[0] = ctx.adapter
        header = ("| shape | MxNxK | template | space | best config | best ms | GFLOP/s | pick@budget ms | pick/best "
                  "| tfjs-like ms | cublas ms | % of cublas |")
        lines += [header, "|" + "---|" * (header.count("|") - 1)]
        print(header, flush=True)

        def emit(cells: list[str]) -> None:
            line = "| " + " | ".join(cells) + " |"
            lines.append(line)
            print(line, flush=True)
            write_summary("\n(incomplete: still running)\n")

        for (label0, M, N, K), dt in ((s, d) for s in shapes for d in args.dtype.split(",")):
            op = MatMul(M, N, K, **MATMUL_PRECISIONS[dt])
            label = label0 if dt == "f32" else f"{label0} {dt}"
            common = {"run_id": run_id, "device_id": device.id, "device_fingerprint": ctx.fingerprint,
                      "adapter": ctx.adapter, "op_key": op.key(), "op_label": label}
            ref = cublas_ms(op, 10) if args.cublas else None
            if ref:
                store.append("measurements", [{**common, "job_id": f"{device.id}/{op.key()}", "ts": time.time(),
                                               "impl": "cublas-fp16" if op.dtype == "f16" else "cublas-fp32", "library": "torch", "ok": True, "check_ok": True,
                                               "samples_ms": [ref[0]], "median_ms": ref[0], "timer_kind": "cuda-event"}])
            tfjs_like = time_config(driver, op, TFJS_LIKE_TEMPLATE, TFJS_LIKE, measure) if op.dtype == "f32" else None
            if tfjs_like is not None:
                store.append("measurements", [{**common, "job_id": f"{device.id}/{op.key()}", "ts": time.time(),
                                               "impl": "tfjs-like-config", "library": "jitfarm",
                                               "config": TFJS_LIKE.key(), "ok": True, "check_ok": True,
                                               "samples_ms": tfjs_like[1], "median_ms": tfjs_like[0]}])
            shape_best: list[tuple[float, float | None, str, Any, TrialRecord]] = []
            for name in args.templates.split(","):
                tpl = get_template(name)
                if args.max_threads and name == MatmulVec4WGSL.name:
                    tpl = MatmulVec4WGSL(max_threads=args.max_threads)
                if len(tpl.space(op, ctx.caps)) == 0:
                    continue  # the template does not apply to this shape (e.g. GEMV for M > 8)
                job_id = f"{device.id}/{op.key()}/{name}"
                rows: list[dict[str, Any]] = []

                def on_trial(rec: TrialRecord) -> None:
                    rows.append(trial_row({**common, "job_id": job_id, "ts": time.time()}, rec, tpl, "exhaustive"))
                    if len(rows) >= 16:
                        store.append("trials", rows[:])
                        rows.clear()

                opts = TuneOptions(strategy="exhaustive", budget_s=1e9, max_evals=args.max_evals, batch_size=8,
                                   measure=measure)
                res = tune(op, tpl, ctx.caps, driver, options=opts, on_trial=on_trial)
                store.append("trials", rows)
                best = res.best
                pick = tuner_pick(op, tpl, ctx.caps, driver, best, args.budget_s, args.max_evals, measure) if best else None
                # the pick's ms on the best's scale: the pair was timed again side by side
                pick_ms = best.median_ms * pick[1] / pick[2] if pick and best else None
                store.append("jobs", [{**common, "job_id": job_id, "ts": time.time(), "attempt": 1,
                                       "status": "ok" if best else "failed", "template": tpl.name,
                                       "strategy": "exhaustive", "space_size": res.space_size,
                                       "raw_space_size": res.raw_space_size, "trials": len(res.trials),
                                       "stopped": res.stopped, "best_config": best.config_key if best else None,
                                       "best_tune_ms": best.median_ms if best else None, "tune_s": res.elapsed_s}])
                bms = best.median_ms if best else None
                if bms:
                    shape_best.append((bms, pick_ms, name, tpl, best))
                emit(row_cells(label, op, name, str(res.space_size), best.config_key if best else "none passed",
                               bms, pick_ms, tfjs_like, ref))
                if pick and pick[0] != best.config_key:
                    print(f"  pick@{args.budget_s:g}s {pick[0]}: {pick[1]:.4f} ms vs best {pick[2]:.4f} ms, "
                          f"timed again interleaved", flush=True)
            if len(shape_best) > 1:
                bms, _, name, _, _ = min(shape_best, key=lambda x: x[0])
                picks = [x[1] for x in shape_best if x[1] is not None]
                emit(row_cells(label, op, "**best of all**", "-", name, bms, min(picks) if picks else None,
                               tfjs_like, ref))
            if baselines and shape_best and op.dtype == "f32":
                _, _, _, tpl, best = min(shape_best, key=lambda x: x[0])
                rows_cmp: list[dict[str, Any]] = []

                def keep(table: str, batch: list[dict[str, Any]]) -> None:
                    store.append(table, batch)
                    rows_cmp.extend(batch)

                runner = JobRunner(driver, ctx, exp, run_id, keep)
                runner.compare(JobSpec(f"{device.id}/{op.key()}/compare", device.id, op, label), tpl, best)
                versus.append((label, op, pooled_medians(rows_cmp)))
                print(f"  vs baselines: {versus_cells(versus[-1], baselines)}", flush=True)
        if versus:
            lines.extend(["", versus_table(versus, baselines, args)])
            print(lines[-1], flush=True)
    wall = time.perf_counter() - t_run
    store.update_manifest(status="finished", wall_s=wall)
    footer = f"\n{len(shapes)} shapes in {wall:.0f} s; records in {store.run_dir}"
    print(footer)
    write_summary(f"\n{len(shapes)} shapes in {wall:.0f} s\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
