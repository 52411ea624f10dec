"""ONNX Runtime Web running one transformer block (jit_core.blocks, farm/baselines/onnx_blocks.py)
on its webgpu and wasm EPs in headless Chromium (SwiftShader WebGPU), side by side in one page.

    python bench/ort_blocks.py                                  # gpt2 and llama-2-7b, scaled down
    python bench/ort_blocks.py --models bart-base t5-small --hidden 128 --seq 16

Each model's block at hidden/heads/head_dim/ffn from the flags (a scaled copy of the model's
config), prefill of ``--seq`` tokens and decode of 1 token after ``--seq`` cached, ``--rounds``
rounds alternating webgpu and wasm; prints the median of all wall-clock samples of each side, n,
the ratio wasm/webgpu and the largest error against the numpy reference of the block.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from farm.baselines.onnx_blocks import block_baseline_spec  # noqa: E402
from farm.drivers.base import BrowserOptions  # noqa: E402
from farm.drivers.playwright_driver import PlaywrightDriver  # noqa: E402
from farm.harness.server import HarnessServer  # noqa: E402
from jit_core.blocks import build_block, run_block_reference  # noqa: E402
from jit_core.models import MODELS, scaled  # noqa: E402
from jit_core.protocol import MeasureSpec  # noqa: E402

BASELINES = ("ort-webgpu", "ort-wasm")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["gpt2", "llama-2-7b"], choices=sorted(MODELS))
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--ffn", type=int, default=1024)
    ap.add_argument("--seq", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--samples", type=int, default=7)
    args = ap.parse_args()
    measure = MeasureSpec(warmup=1, samples=args.samples, min_sample_ms=10.0, max_reps=64, timer="wall",
                          timeout_ms=120000).to_json()
    cfg = dict(hidden=args.hidden, heads=args.heads, head_dim=args.hidden // args.heads, ffn=args.ffn)
    browser = BrowserOptions(args=("--enable-unsafe-webgpu", "--enable-webgpu-developer-features"), call_timeout_s=300)
    with HarnessServer() as srv, PlaywrightDriver(browser, server=srv) as driver:
        for model in args.models:
            m = scaled(model, **cfg)
            for phase in ("prefill", "decode") if m.arch != "encoder" else ("prefill",):
                block = build_block(m, args.seq, phase)
                ref = run_block_reference(block, 1)[block.output]
                pos = list(range(0, len(ref), 7))
                samples: dict[str, list[float]] = {b: [] for b in BASELINES}
                err = 0.0
                for _ in range(args.rounds):
                    for name in BASELINES:
                        r = driver.run_baseline(block_baseline_spec(name, block, seed=1, measure=measure, positions=pos))
                        if not r["ok"]:
                            raise SystemExit(f"{model} {phase} {name}: {r['errorClass']}: {r['error']}")
                        samples[name].extend(r["samplesMs"])
                        err = max(err, float(np.abs(np.asarray(r["values"]) - ref[pos]).max()))
                med = {k: statistics.median(v) for k, v in samples.items()}
                print(f"{model} {phase} seq {args.seq} hidden {args.hidden}: "
                      + ", ".join(f"{k} {med[k]:.3f} ms (n={len(samples[k])})" for k in BASELINES)
                      + f", wasm/webgpu {med['ort-wasm'] / med['ort-webgpu']:.3f}, max abs err {err:.1e}")


if __name__ == "__main__":
    main()
