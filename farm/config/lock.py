"""Rebuild an experiment from a run manifest (the run's lockfile), for ``--resume`` and ``--replay``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jit_core.ops import op_from_dict
from jit_core.protocol import MeasureSpec

from farm.drivers.android_options import AndroidOptions, AppiumOptions, CooldownRule
from farm.drivers.base import BrowserOptions, NativeOptions

from .devices import DeviceSpec
from .errors import UserError
from .experiments import CompareSpec, ExperimentSpec, TunerSpec
from .faults import FaultSpec
from .model_workloads import ModelWorkload


def _tuplify(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tuplify(v) for v in value)
    return value


def device_from_dict(d: dict[str, Any]) -> DeviceSpec:
    """The DeviceSpec that ``DeviceSpec.to_dict()`` wrote (JSON turned tuples into lists)."""
    browser = BrowserOptions(**{k: _tuplify(v) for k, v in d["browser"].items()}) if d.get("browser") else None
    native = NativeOptions(**{k: _tuplify(v) for k, v in d["native"].items()}) if d.get("native") else None
    appium = AppiumOptions(**{k: v if k == "capabilities" else _tuplify(v) for k, v in d["appium"].items()}) \
        if d.get("appium") else None
    android = None
    if d.get("android"):
        a = {k: _tuplify(v) for k, v in d["android"].items()}
        if a.get("cooldown"):
            a["cooldown"] = CooldownRule(**d["android"]["cooldown"])
        android = AndroidOptions(**a)
    return DeviceSpec(id=d["id"], name=d["name"], driver=d["driver"], file=d["file"], tags=dict(d.get("tags") or {}),
                      browser=browser, native=native, caps_overrides=dict(d.get("caps_overrides") or {}),
                      appium=appium, android=android)


def experiment_from_manifest(manifest: dict[str, Any], *, where: str = "manifest.json") -> ExperimentSpec:
    """The resolved experiment a run recorded, with the device configs it ran on. A manifest
    written by an incompatible version is a UserError naming the key."""
    try:
        e = manifest["experiment"]
        configs = manifest["device_configs"]
        devices = tuple(device_from_dict(configs[d]) for d in e["devices"])
        ops = []
        for o in e["ops"]:
            o = dict(o)
            label = o.pop("label", "")
            ops.append((label, op_from_dict(o)))
        return ExperimentSpec(
            name=e["name"], file=e["file"], description=e.get("description", ""), devices=devices,
            ops=tuple(ops), seed=int(e["seed"]), tuner=TunerSpec(**e["tuner"]), measure=MeasureSpec(**e["measure"]),
            compare=CompareSpec(**e["compare"]), baselines=tuple(e.get("baselines", [])),
            faults=FaultSpec.from_dict(e["faults"]) if "faults" in e else FaultSpec(),
            models=tuple(ModelWorkload.from_dict(m) for m in e.get("models", [])))
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{where}: cannot rebuild the experiment ({type(exc).__name__}: {exc}). Fix: resume or "
                        "replay with the jitfarm version that wrote this run, or run the experiment YAML again") from None


def experiment_of_run(results_dir: Path, run_id: str) -> tuple[ExperimentSpec, dict[str, Any]]:
    """The experiment recorded by ``results_dir/run_id/manifest.json``, and that manifest."""
    path = Path(results_dir) / run_id / "manifest.json"
    if not path.is_file():
        raise UserError(f"no run {run_id!r} under {results_dir}/ (no {path}). Fix: pass a run id that "
                        f"`ls {results_dir}` shows, and the same --results-dir the run used")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: unreadable manifest ({exc}). Fix: run the experiment YAML again") from None
    return experiment_from_manifest(manifest, where=str(path)), manifest
