"""One job on one opened device: tune the op, then compare the winner with each baseline.

Kept free of Ray so it runs the same inside a DeviceWorker actor and in a plain test.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, replace
from typing import Any, Callable

from jit_core.cache import TuneCache, plan_tune
from jit_core.caps import DeviceCaps
from jit_core.protocol import CandidateResult, make_batch
from jit_core.reference import check_outputs, check_positions
from jit_core.space import Config
from jit_core.templates import get_template
from jit_core.tuner import TrialRecord, TuneOptions, tune

from farm.baselines.catalog import CATALOG, baseline_spec
from farm.config.experiments import ExperimentSpec, JobSpec
from farm.drivers.base import DeviceDriver
from farm.validity import baseline_flags, merge, probe_flags

from .timed import BusyTimer

Emit = Callable[[str, list[dict[str, Any]]], None]
Progress = Callable[[dict[str, Any]], None]

BASELINE_LIBRARIES = {name: (b.library, b.backend) for name, b in CATALOG.items()}
WASM_DEVICE_FLAGS = ("not-isolated", "device-warm")


@dataclass(frozen=True)
class DeviceContext:
    """What the probe told us about an opened device."""

    device_id: str
    probe: dict[str, Any]
    caps: DeviceCaps
    fingerprint: str
    adapter: str
    flags: tuple[str, ...] = ()  # validity flags of the device (farm/validity.py)

    @staticmethod
    def from_probe(device_id: str, probe: dict[str, Any], overrides: dict[str, Any] | None,
                   tags: dict[str, str] | None = None) -> "DeviceContext":
        caps = DeviceCaps.from_probe(probe, overrides or None)
        return DeviceContext(device_id, probe, caps, caps.fingerprint(), adapter_label(probe.get("adapter")),
                             tuple(probe_flags(probe, tags)))


def adapter_label(adapter: dict[str, Any] | None) -> str:
    """'google swiftshader (fallback)'-style name of an adapter as the probe reported it."""
    if not adapter:
        return "unknown"
    parts = [adapter.get("vendor") or "", adapter.get("architecture") or "", adapter.get("device") or ""]
    label = " ".join(p for p in parts if p) or adapter.get("description") or "unknown"
    if adapter.get("featureLevel") == "compatibility":
        label += " [compat]"
    if adapter.get("isFallbackAdapter"):
        label += " (fallback)"
    return label


def cpu_label(caps: DeviceCaps) -> str:
    """'wasm x86-64 Linux, 2 threads'-style name of the CPU side of a device (WASM kernels)."""
    parts = " ".join(p for p in (caps.cpu_arch, caps.cpu_platform) if p) or "unknown CPU"
    return f"wasm {parts}, {caps.hardware_concurrency} threads"


def _median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def trial_row(common: dict[str, Any], rec: TrialRecord, template: Any, strategy: str) -> dict[str, Any]:
    """A ``trials`` table row (farm/store/schema.py) for one tuning candidate."""
    return {
        **common, "template": template.name, "template_version": template.version,
        "strategy": strategy, "trial_index": rec.index, "config": rec.config_key,
        "ok": rec.ok, "check_ok": rec.check_ok, "error_class": rec.error_class, "error": rec.error,
        "compile_ms": rec.compile_ms, "first_run_ms": rec.first_run_ms,
        "samples_ms": list(rec.samples_ms or []), "median_ms": rec.median_ms, "reps": rec.reps,
        "timer_kind": rec.timer_kind, "timer_resolution_ms": rec.timer_resolution_ms,
        "max_abs_err": rec.max_abs_err, "elapsed_s": rec.elapsed_s, "best_so_far_ms": rec.best_so_far_ms,
        "phase": rec.phase,
        "flags": merge(common.get("flags") or [], rec.flags),
    }


class JobRunner:
    """Runs jobs of one experiment on one opened device, emitting records as they are made.

    Contract: ``run(job)`` never raises for failures of kernels or baselines (they become records);
    it raises only when the driver itself fails (DriverError), after emitting what it had.
    """

    def __init__(self, driver: DeviceDriver, ctx: DeviceContext, experiment: ExperimentSpec, run_id: str,
                 emit: Emit, progress: Progress | None = None):
        self.driver, self.ctx, self.exp, self.run_id = driver, ctx, experiment, run_id
        self.emit = emit
        self.progress = progress or (lambda info: None)
        self.timer = BusyTimer(driver)
        # What runs the kernels: the WebGPU adapter, or the CPU for WASM templates.
        self._wasm = get_template(experiment.tuner.template).backend == "wasm"
        self.adapter = cpu_label(ctx.caps) if self._wasm else ctx.adapter

    @property
    def flags(self) -> list[str]:
        """The device's flags for this job's records (``ctx`` may change between jobs, e.g. with
        ``device-warm``). WebGPU adapter flags say nothing about the CPU that runs WASM kernels."""
        if self._wasm:
            return [f for f in self.ctx.flags if f in WASM_DEVICE_FLAGS]
        return list(self.ctx.flags)

    def _common(self, job: JobSpec) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "job_id": job.job_id,
            "device_id": self.ctx.device_id,
            "device_fingerprint": self.ctx.fingerprint,
            "adapter": self.adapter,
            "op_key": job.op.key(),
            "op_label": job.label,
            "ts": time.time(),
            "flags": list(self.flags),
        }

    def run(self, job: JobSpec, attempt: int = 1) -> dict[str, Any]:
        exp, op = self.exp, job.op
        template = get_template(exp.tuner.template_for(op.kind))
        busy0 = self.timer.busy_s
        options = TuneOptions(strategy=exp.tuner.strategy, budget_s=exp.tuner.budget_s,
                              max_evals=exp.tuner.max_evals, batch_size=exp.tuner.batch_size,
                              seed=exp.seed, measure=exp.measure, check_count=exp.tuner.check_count,
                              confirm_top=exp.tuner.confirm_top, confirm_rounds=exp.tuner.confirm_rounds)
        pending: list[dict[str, Any]] = []
        counts = {"trials": 0, "failed": 0}

        def on_trial(rec: TrialRecord) -> None:
            row = self._trial_row(job, rec, template)
            pending.append(row)
            counts["trials"] += 1
            counts["failed"] += 0 if (rec.ok and rec.check_ok) else 1
            if len(pending) >= exp.tuner.batch_size:
                self.emit("trials", pending[:])
                pending.clear()
            self.progress({"op": job.label, "phase": "tune", **counts})

        self.progress({"op": job.label, "phase": "tune", **counts})
        # run_experiment resolves 'auto' to a file under the results folder; unresolved, no cache
        cache = None if exp.tuner.cache in ("off", "auto") else TuneCache(exp.tuner.cache)
        plan = plan_tune(cache, op, template.name, template.version, self.ctx.caps, options,
                         retime=exp.tuner.cache_retime)
        t0 = time.perf_counter()
        try:
            result = tune(op, template, self.ctx.caps, self.timer, options=plan.options, on_trial=on_trial)
            if plan.mode == "reuse" and result.best is None:  # cached winners fail now: tune afresh
                shift = len(result.trials)
                result = tune(op, template, self.ctx.caps, self.timer, options=options,
                              on_trial=lambda rec: on_trial(replace(rec, index=rec.index + shift)))
        finally:
            if pending:
                self.emit("trials", pending[:])
                pending.clear()
        tune_s = time.perf_counter() - t0
        if cache is not None:
            cache.put(result, self.ctx.caps)
        summary: dict[str, Any] = {
            **self._common(job), "attempt": attempt, "template": template.name,
            "strategy": exp.tuner.strategy, "space_size": result.space_size,
            "raw_space_size": result.raw_space_size, "trials": len(result.trials),
            "stopped": result.stopped, "tune_s": tune_s, "cache": plan.mode if cache is not None else None,
        }
        if result.best is None:
            errors = sorted({t.error_class or "?" for t in result.trials})
            summary.update(status="failed", error_class="kernel",
                           error=f"no config passed on the device ({len(result.trials)} tried; errors: {', '.join(errors) or 'none tried'})")
        else:
            best = result.best
            summary.update(status="ok", best_config=best.config_key, best_tune_ms=best.median_ms)
            self.progress({"op": job.label, "phase": "compare", **counts})
            self.compare(job, template, best)
        summary["device_busy_s"] = self.timer.busy_s - busy0
        self.emit("jobs", [summary])
        self.progress({"op": job.label, "phase": "done", **counts})
        return summary

    def _trial_row(self, job: JobSpec, rec: TrialRecord, template: Any) -> dict[str, Any]:
        return trial_row(self._common(job), rec, template, self.exp.tuner.strategy)

    def compare(self, job: JobSpec, template: Any, best: TrialRecord) -> None:
        """Winner and baselines, interleaved A B A B, same page, same inputs, wall clock; the
        measurements go to ``emit`` (one call per round)."""
        exp, op = self.exp, job.op
        positions = check_positions(op, exp.tuner.check_count, exp.seed)
        measure = replace(exp.measure, timer="wall", samples=exp.compare.samples)
        kernel = template.render(op, Config(best.config))
        batch = make_batch(op, [("winner", kernel)], seed=exp.seed, measure=measure, check_positions=positions)
        batch_json = batch.to_json()
        rows: list[dict[str, Any]] = []
        specs: dict[str, dict[str, Any]] = {}
        gpu_batch = None
        if self.ctx.probe.get("timestampUsable") and "timestamp-query" in (self.ctx.probe.get("features") or []):
            gpu_batch = replace(batch, measure=replace(measure, timer="auto", samples=3, target_ci_rel=None))
        for rnd in range(exp.compare.rounds):
            res = self.timer.run_batch(batch)[0]
            row = self._winner_row(job, template, best, rnd, res, positions)
            if gpu_batch is not None:  # GPU timestamps too, next to the wall clock of the fair protocol
                g = self.timer.run_batch(gpu_batch)[0]
                row["gpu_ms"] = g.samples_ms if g.ok and g.timer_kind == "timestamp" else None
            rows.append(row)
            for name in exp.baselines:
                spec = specs.get(name) or specs.setdefault(name, baseline_spec(
                    name, op, seed=exp.seed, measure=batch_json["measure"], positions=positions,
                    device=exp.compare.baseline_device))
                rows.append(self._baseline_row(job, name, rnd, self.timer.run_baseline(spec), positions))
            self.emit("measurements", rows)
            rows = []

    def _winner_row(self, job: JobSpec, template: Any, best: TrialRecord, rnd: int, res: CandidateResult,
                    positions: list[int]) -> dict[str, Any]:
        check = check_outputs(job.op, self.exp.seed, positions, res.values) if res.ok else None
        return {
            **self._common(job), "impl": "jit", "library": "jitfarm", "library_version": None,
            "backend_requested": template.backend, "backend_used": template.backend,
            "impl_adapter": self.adapter,
            "config": best.config_key, "round": rnd, "ok": res.ok, "check_ok": bool(check and check.ok),
            "error_class": res.error_class or (None if check is None or check.ok else "wrong-result"),
            "error": res.error or (check.message if check and not check.ok else None),
            "samples_ms": res.samples_ms, "median_ms": _median(res.samples_ms), "reps": res.reps,
            "timer_kind": res.timer_kind, "timer_resolution_ms": res.timer_resolution_ms,
            "compile_ms": res.compile_ms, "first_run_ms": res.first_run_ms, "stop": res.stop,
            "ci_low_ms": res.ci_ms[0] if res.ci_ms else None, "ci_high_ms": res.ci_ms[1] if res.ci_ms else None,
            "flags": merge(self.flags, res.flags),
        }

    def _baseline_row(self, job: JobSpec, name: str, rnd: int, res: dict[str, Any],
                      positions: list[int]) -> dict[str, Any]:
        ok = bool(res.get("ok"))
        check = check_outputs(job.op, self.exp.seed, positions, res.get("values")) if ok else None
        samples = [float(x) for x in res.get("samplesMs") or []]
        timer = res.get("timer") or {}
        impl_adapter = adapter_label(res["adapter"]) if res.get("adapter") else None
        ci = res.get("ciMs")
        return {
            **self._common(job), "impl": name, "library": res.get("library"),
            "library_version": res.get("libraryVersion"), "backend_requested": res.get("backendRequested"),
            "backend_used": res.get("backendUsed"), "impl_adapter": impl_adapter,
            "config": json.dumps({"library": res.get("library"), "backend": res.get("backendRequested"),
                                  "device": res.get("deviceSource"), "threads": res.get("threads"),
                                  "notes": res.get("notes") or []}),
            "round": rnd, "ok": ok, "check_ok": bool(check and check.ok),
            "error_class": res.get("errorClass") or (None if check is None or check.ok else "wrong-result"),
            "error": res.get("error") or (check.message if check and not check.ok else None),
            "samples_ms": samples, "median_ms": _median(samples), "reps": res.get("reps"),
            "timer_kind": timer.get("kind"), "timer_resolution_ms": timer.get("resolutionMs"),
            "compile_ms": res.get("compileMs"), "first_run_ms": res.get("firstRunMs"), "stop": res.get("stop"),
            "ci_low_ms": ci[0] if ci else None, "ci_high_ms": ci[1] if ci else None,
            "gpu_ms": [float(x) for x in res.get("gpuMs") or []] or None,
            "flags": merge(self.flags, baseline_flags(res, self.ctx.adapter, impl_adapter, self.ctx.probe)),
        }
