"""Experiment configs: which devices, which ops, how to tune and measure, which baselines."""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from jit_core.ops import ACCUMULATORS, ELTWISE_FNS, HEADS_MODES, MATMUL_DTYPES, NORMS, OP_KINDS, MatMul, OpSpec
from jit_core.protocol import MeasureSpec
from jit_core.search import STRATEGIES as _SEARCH_STRATEGIES
from jit_core.templates import DEFAULT_TEMPLATES, F16_TEMPLATES, TEMPLATES
from jit_core.tuner import TuneOptions

from farm.baselines.catalog import CATALOG, DEVICE_SOURCES

from .devices import DeviceSpec
from .errors import ConfigError
from .faults import FaultSpec, read_faults
from .model_workloads import ModelWorkload, read_models
from .reader import Reader, load_yaml
from .selection import select_devices

STRATEGIES = tuple(_SEARCH_STRATEGIES)  # exhaustive, random, successive-halving, hill-climb
BASELINES = tuple(CATALOG)


@dataclass(frozen=True)
class TunerSpec:
    """How each op is tuned. ``cache``: the kernel cache file, 'auto' (``<results-dir>/kernel-cache.json``,
    resolved when the run starts), 'off', or a path (relative to the working directory); on a hit
    for the same device only ``cache_retime`` cached configs (winner first) are timed again; a
    device of the same vendor and architecture starts its search from them."""

    template: str = "matmul-wgsl"
    strategy: str = "exhaustive"
    budget_s: float = 30.0
    max_evals: int | None = None
    batch_size: int = 8
    check_count: int = 64
    cache: str = "auto"
    cache_retime: int = 3
    confirm_top: int = TuneOptions.confirm_top
    confirm_rounds: int = TuneOptions.confirm_rounds

    def template_for(self, kind: str) -> str:
        """The template that tunes ops of ``kind``: ``template`` when it is one of that kind's,
        else the kind's default (so one experiment can list matmuls, softmaxes and norms)."""
        if TEMPLATES[self.template].op_kind == kind:
            return self.template
        return DEFAULT_TEMPLATES[kind]


@dataclass(frozen=True)
class CompareSpec:
    """The final comparison: winner and each baseline, interleaved A B A B for ``rounds`` rounds of
    ``samples`` wall-clock samples each, same page, same inputs. ``baseline_device``: 'shared' hands
    the adapter/device our kernels use to WebGPU baselines, 'own' lets each library pick its own."""

    rounds: int = 3
    samples: int = 5
    baseline_device: str = "shared"


@dataclass(frozen=True)
class JobSpec:
    """One unit of work on one device: tune ``op`` and compare it with the baselines."""

    job_id: str
    device_id: str
    op: OpSpec
    label: str


@dataclass(frozen=True)
class ExperimentSpec:
    """A validated experiment; ``jobs()`` expands the plan (device x op)."""

    name: str
    file: str
    description: str
    devices: tuple[DeviceSpec, ...]
    ops: tuple[tuple[str, OpSpec], ...]
    seed: int
    tuner: TunerSpec
    measure: MeasureSpec
    compare: CompareSpec
    baselines: tuple[str, ...] = field(default_factory=tuple)
    faults: FaultSpec = field(default_factory=FaultSpec)
    models: tuple[ModelWorkload, ...] = ()  # models named by the experiment, with every op and count

    def jobs(self) -> list[JobSpec]:
        out = []
        for dev in self.devices:
            for label, op in self.ops:
                out.append(JobSpec(f"{dev.id}/{op.key()}", dev.id, op, label))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "file": self.file,
            "description": self.description,
            "devices": [d.id for d in self.devices],
            "ops": [{"label": label, **op.to_dict()} for label, op in self.ops],
            "seed": self.seed,
            "tuner": asdict(self.tuner),
            "measure": asdict(self.measure),
            "compare": asdict(self.compare),
            "baselines": list(self.baselines),
            "faults": self.faults.to_dict(),
            "models": [m.to_dict() for m in self.models],
        }


_OP_EXAMPLES = {
    "matmul": "{kind: matmul, M: 64, N: 64, K: 64}",
    "softmax": "{kind: softmax, rows: 128, cols: 128, batch: 12, causal: true, scale: 0.125}",
    "norm": "{kind: norm, rows: 128, cols: 768, norm: layernorm, residual: true}",
    "eltwise": "{kind: eltwise, n: 393216, fn: gelu}",
    "heads": "{kind: heads, seq: 128, heads: 12, head_dim: 64, mode: split, row_stride: 2304}",
}
_OP_CHOICES = {"norm": NORMS, "fn": ELTWISE_FNS, "mode": HEADS_MODES}
_OP_TYPES = {"int": int, "bool": bool, "float": float, "str": str}
_OP_ZERO_OK = ("row_stride", "col_offset", "past", "pos_offset")


def _op(r: Reader, index: int, file: str) -> tuple[str, OpSpec]:
    raw = r.get("ops", list)[index]
    key = f"ops[{index}]"
    if not isinstance(raw, dict):
        raise ConfigError(file, key, f"expected a mapping like {{kind: matmul, M: 64, N: 64, K: 64}}, got {raw!r}",
                          "write each op as a mapping")
    o = Reader(raw, file, f"{key}.")
    kind = o.get("kind", str, "matmul", choices=tuple(OP_KINDS))
    label = o.get("label", str, "")
    if kind == "matmul":
        dims = {d: o.positive(d, int) for d in ("M", "N", "K")}
        batch = o.positive("batch", int, 1)
        dtype = o.get("dtype", str, "f32", choices=MATMUL_DTYPES)
        acc = o.get("acc", str, "f32", choices=ACCUMULATORS)
        o.finish()
        try:
            op: OpSpec = MatMul(**dims, batch=batch, dtype=dtype, acc=acc)
        except ValueError as exc:
            raise ConfigError(file, key, str(exc), "write acc: f16 only with dtype: f16") from None
        return label or op.shape_str() + ("" if dtype == "f32" else f" {op.precision}"), op
    values: dict[str, object] = {}
    for f in fields(OP_KINDS[kind]):
        if f.name == "kind":
            continue
        default = f.default if f.default is not MISSING else None
        required = f.default is MISSING
        typ = _OP_TYPES[str(f.type)]
        value = o.get(f.name, typ, *(() if required else (default,)),
                      fix=f"write the op like {_OP_EXAMPLES[kind]}",
                      choices=("f32",) if f.name == "dtype" else _OP_CHOICES.get(f.name))
        if typ is int and value is not None and value < (0 if f.name in _OP_ZERO_OK else 1):
            raise o.error(f.name, f"must be {'>= 0' if f.name in _OP_ZERO_OK else 'positive'}, got {value}",
                          f"write the op like {_OP_EXAMPLES[kind]}")
        values[f.name] = value
    o.finish()
    try:
        op = OP_KINDS[kind](**values)
    except ValueError as exc:
        raise ConfigError(file, key, str(exc), f"write the op like {_OP_EXAMPLES[kind]}") from None
    return label or op.key(), op


CACHE_FILE = "kernel-cache.json"


def resolve_cache(exp: ExperimentSpec, results_dir: Path) -> ExperimentSpec:
    """``exp`` with ``tuner.cache`` as an absolute file path ('auto': ``results_dir/kernel-cache.json``)
    or 'off', so every worker of the run, wherever its working directory, uses the same file."""
    cache = exp.tuner.cache
    if cache == "off":
        return exp
    path = results_dir / CACHE_FILE if cache == "auto" else Path(cache)
    return replace(exp, tuner=replace(exp.tuner, cache=str(path.resolve())))


def _cache_setting(t: Reader) -> str:
    raw = t.get("cache", (str, bool), "auto")  # YAML reads a bare `off` as false
    if isinstance(raw, bool):
        return "auto" if raw else "off"
    if not raw.strip():
        raise t.error("cache", "empty cache setting", "use 'auto', 'off' or a file path such as results/kernel-cache.json")
    return raw


def load_experiment(path: Path, devices_dir: Path | None = None) -> ExperimentSpec:
    """Load and validate an experiment and every device it names. Raises ConfigError (naming file,
    key and fix) before anything runs. ``devices_dir`` defaults to the experiment's
    ``device_configs`` key, else ``device_configs/`` beside the experiment's folder."""
    file = str(path)
    r = Reader(load_yaml(path), file)
    name = r.get("name", str)
    description = r.get("description", str, "")
    dev_dir_value = r.get("device_configs", str, None)
    if devices_dir is None:
        devices_dir = (path.parent / dev_dir_value) if dev_dir_value else path.parent.parent / "device_configs"
    if not devices_dir.is_dir():
        raise ConfigError(file, "device_configs", f"device folder {devices_dir} does not exist",
                          "set 'device_configs:' to the folder of device YAMLs, relative to this file")
    devices = select_devices(r.get("devices", list), devices_dir, file=file)
    ops_raw = r.get("ops", list, [])
    ops = tuple(_op(r, i, file) for i in range(len(ops_raw)))
    seen: dict[str, int] = {}
    for i, (_, op) in enumerate(ops):
        if op.key() in seen:
            raise ConfigError(file, f"ops[{i}]", f"same shape as ops[{seen[op.key()]}]", "remove the duplicate")
        seen[op.key()] = i
    template_name = r.get("tuner", dict, {}).get("template", "matmul-wgsl")
    op_kind = TEMPLATES[template_name].op_kind if template_name in TEMPLATES else "matmul"
    models, model_jobs = read_models(r, op_kind, set(seen))
    ops += tuple(model_jobs)
    if not ops:
        raise r.error("ops", "no ops listed", "list at least one op, e.g. {kind: matmul, M: 64, N: 64, K: 64}, "
                      "or name a model under 'models:', e.g. {name: gpt2, seq: 32, phase: prefill}")

    t = r.sub("tuner")
    tuner = TunerSpec(
        template=t.get("template", str, "matmul-wgsl", choices=sorted(TEMPLATES)),
        strategy=t.get("strategy", str, "exhaustive", choices=STRATEGIES),
        budget_s=t.positive("budget_s", float, 30.0),
        max_evals=t.positive("max_evals", int, None),
        batch_size=t.positive("batch_size", int, 8),
        check_count=t.get("check_count", int, 64),
        cache=_cache_setting(t),
        cache_retime=t.positive("cache_retime", int, 3),
        confirm_top=t.get("confirm_top", int, TuneOptions.confirm_top),
        confirm_rounds=t.get("confirm_rounds", int, TuneOptions.confirm_rounds),
    )
    for key in ("confirm_top", "confirm_rounds"):
        if getattr(tuner, key) < 0:
            raise t.error(key, f"must be >= 0, got {getattr(tuner, key)}", "0 turns the tuner's confirmation rounds off")
    t.finish()
    tpl_kind = TEMPLATES[tuner.template].op_kind
    if t.data.get("template") is not None and all(op.kind != tpl_kind for _, op in ops):
        raise t.error("template", f"{tuner.template} tunes {tpl_kind} ops and no op listed is one",
                      f"name a template of the listed ops' kind, or leave it out (defaults: {DEFAULT_TEMPLATES})")
    for i, (_, op) in enumerate(ops):
        if op.dtype == "f16" and tuner.template_for(op.kind) not in F16_TEMPLATES:
            raise ConfigError(file, f"ops[{i}]", f"{tuner.template_for(op.kind)} has no f16 kernels",
                              f"set tuner.template to one of {list(F16_TEMPLATES)} for f16 matmuls")
    m = r.sub("measure")
    try:
        measure = MeasureSpec(
            warmup=m.get("warmup", int, 1),
            samples=m.positive("samples", int, 5),
            min_sample_ms=m.positive("min_sample_ms", float, 10.0),
            max_reps=m.positive("max_reps", int, 256),
            timer=m.get("timer", str, "auto", choices=("auto", "wall")),
            timeout_ms=m.positive("timeout_ms", float, 30000.0),
            min_ticks=m.positive("min_ticks", int, 100),
            target_ci_rel=m.positive("target_ci_rel", float, None),
            max_samples=m.positive("max_samples", int, 50),
            max_time_ms=m.positive("max_time_ms", float, 10000.0),
            warmup_ms=m.get("warmup_ms", (int, float), 0.0),
        )
    except ValueError as exc:
        raise ConfigError(file, "measure", str(exc), "fix the measure section") from None
    m.finish()
    c = r.sub("compare")
    compare = CompareSpec(rounds=c.positive("rounds", int, 3), samples=c.positive("samples", int, 5),
                          baseline_device=c.get("baseline_device", str, "shared", choices=DEVICE_SOURCES))
    c.finish()
    baselines = r.str_list("baselines", [])
    for i, b in enumerate(baselines):
        if b not in BASELINES:
            raise r.error(f"baselines[{i}]", f"unknown baseline {b!r}", f"use one of {list(BASELINES)}")
    if baselines:
        for i, (_, op) in enumerate(ops):
            if op.kind != "matmul":
                raise ConfigError(file, f"ops[{i}]", f"baselines compare matmul ops only, this op is a {op.kind}",
                                  "move the non-matmul ops to an experiment without 'baselines:'")
            if op.dtype != "f32":
                raise ConfigError(file, f"ops[{i}]", f"baselines compare f32 ops only, this op is {op.dtype}",
                                  "move the f16 ops to an experiment without 'baselines:'")
    seed = r.get("seed", int, 1)
    faults = read_faults(r)
    r.finish()
    return ExperimentSpec(name=name, file=file, description=description, devices=devices, ops=ops,
                          seed=seed, tuner=tuner, measure=measure, compare=compare,
                          baselines=tuple(baselines), faults=faults, models=models)
