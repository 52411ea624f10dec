"""Synthetic run histories in the real store format, for tests and benchmarks of the analysis.

Nothing here measures anything: timings are drawn from lognormal noise around latencies the
caller chooses (e.g. with a planted 10% step at one run), and written with ParquetStore exactly
as ``jitfarm run`` writes real runs, so the analysis, the history index and the dashboard read
them through the same code paths. Run ids start with ``synthetic-``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .parquet import ParquetStore


@dataclass(frozen=True)
class SyntheticDevice:
    """A made-up device slot: what the manifest and rows of a real run would say about it."""

    id: str
    adapter: str = "synthetic adapter"
    fingerprint: str = "fp-synthetic"
    browser: str = "chromium 156.0.0.0"
    vendor: str = "synthetic"


@dataclass(frozen=True)
class SyntheticRun:
    """One run to write. ``latency(device_id, impl, op_key)`` gives the true median in ms."""

    run_id: str
    created: dt.datetime
    commit: str
    devices: tuple[SyntheticDevice, ...]
    ops: tuple[str, ...]
    latency: Callable[[str, str, str], float]
    baselines: tuple[str, ...] = ("tfjs-webgpu",)
    library_version: str = "4.22.0"
    rounds: int = 3
    samples: int = 5
    noise: float = 0.03
    trials: int = 0
    seed: int = 0


def write_run(results_dir: Path, run: SyntheticRun) -> Path:
    """Write ``run`` under ``results_dir/<run_id>/`` (manifest, measurements, jobs, trials)."""
    rng = np.random.default_rng(run.seed)
    store = ParquetStore(Path(results_dir) / run.run_id)
    store.write_manifest({
        "run_id": run.run_id, "created": run.created.isoformat(), "status": "finished",
        "experiment": {"name": "synthetic", "tuner": {"template": "matmul-wgsl", "strategy": "exhaustive"},
                       "baselines": list(run.baselines)},
        "git": {"commit": run.commit, "dirty": False},
        "versions": {"npm:@tensorflow/tfjs": run.library_version},
        "device_configs": {d.id: {"driver": "playwright", "tags": {"vendor": d.vendor}} for d in run.devices},
        "devices": {d.id: {"adapter": d.adapter, "fingerprint": d.fingerprint,
                           "versions": {"browser": d.browser}} for d in run.devices},
    })
    meas, jobs, trials = [], [], []
    ts = run.created.timestamp()
    for dev in run.devices:
        for op_key in run.ops:
            common = {"run_id": run.run_id, "job_id": f"{dev.id}/{op_key}", "device_id": dev.id,
                      "device_fingerprint": dev.fingerprint, "adapter": dev.adapter, "op_key": op_key,
                      "op_label": op_key, "ts": ts}
            for rnd in range(run.rounds):
                for impl in ("jit",) + run.baselines:
                    med = run.latency(dev.id, impl, op_key)
                    samples = (med * rng.lognormal(0.0, run.noise, run.samples)).tolist()
                    meas.append({**common, "impl": impl, "library": "jitfarm" if impl == "jit" else "tfjs",
                                 "library_version": None if impl == "jit" else run.library_version,
                                 "backend_requested": "webgpu", "backend_used": "webgpu", "impl_adapter": dev.adapter,
                                 "config": "synthetic", "round": rnd, "ok": True, "check_ok": True,
                                 "samples_ms": samples, "median_ms": float(np.median(samples)), "reps": 1,
                                 "timer_kind": "wall"})
            best = run.latency(dev.id, "jit", op_key)
            jobs.append({**common, "attempt": 1, "status": "ok", "template": "matmul-wgsl", "strategy": "exhaustive",
                         "best_config": "synthetic", "best_tune_ms": best, "trials": run.trials})
            best_so_far = np.inf
            for i in range(run.trials):
                ms = best * (1.0 + 3.0 * rng.random())
                best_so_far = min(best_so_far, ms)
                trials.append({**common, "template": "matmul-wgsl", "template_version": "1", "strategy": "exhaustive",
                               "trial_index": i, "config": f"c{i}", "ok": True, "check_ok": True, "median_ms": ms,
                               "samples_ms": [ms], "elapsed_s": 2.0 * (i + 1), "best_so_far_ms": best_so_far})
    store.append("measurements", meas)
    store.append("jobs", jobs)
    store.append("trials", trials)
    return store.run_dir


@dataclass(frozen=True)
class PlantedStep:
    """From run ``at`` on, the tuned kernel on ``device_id`` is ``factor`` times slower and that
    device reports ``browser`` (a step with a browser update, as a real regression would look)."""

    at: int
    device_id: str
    factor: float = 1.10
    browser: str = "chromium 157.0.0.0"


def write_history(results_dir: Path, *, runs: int, devices: tuple[SyntheticDevice, ...], ops: tuple[str, ...],
                  step: PlantedStep | None = None, noise: float = 0.03, run_jitter: float = 0.0,
                  trials: int = 10, rounds: int = 3, samples: int = 5, seed: int = 0,
                  start: dt.datetime = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
                  prefix: str = "synthetic") -> list[str]:
    """``runs`` daily runs of every device x op; the tuned kernel is 1.5x faster than the baseline.
    ``run_jitter`` is a per-run, per-device lognormal offset (machine state between runs).
    Returns the run ids (``<prefix>-NNN``), oldest first."""
    rng = np.random.default_rng(seed)
    ids = []
    for i in range(runs):
        stepped = step is not None and i >= step.at
        offsets = {d.id: float(rng.lognormal(0.0, run_jitter)) if run_jitter else 1.0 for d in devices}

        def latency(device_id: str, impl: str, op_key: str, stepped=stepped, offsets=offsets) -> float:
            base = (2.0 if impl == "jit" else 3.0) * (1.0 + 0.25 * ops.index(op_key)) * offsets[device_id]
            hit = stepped and impl == "jit" and step is not None and device_id == step.device_id
            return base * (step.factor if hit else 1.0)

        devs = tuple(SyntheticDevice(d.id, d.adapter, d.fingerprint,
                                     step.browser if stepped and step and d.id == step.device_id else d.browser,
                                     d.vendor) for d in devices)
        run_id = f"{prefix}-{i:03d}"
        write_run(results_dir, SyntheticRun(run_id, start + dt.timedelta(days=i), f"commit{i:03d}", devs, ops, latency,
                                            rounds=rounds, samples=samples, noise=noise, trials=trials,
                                            seed=seed * 100003 + i))
        ids.append(run_id)
    return ids
