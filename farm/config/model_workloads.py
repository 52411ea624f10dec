"""Experiments that name models instead of shapes: ``models: [{name: gpt2, seq: 32, phase: prefill}]``.

Each entry expands to the ops one inference runs (``jit_core.models.model_ops``). The ops of the
kind the experiment's tuner template tunes (matmul for the matmul templates) become jobs,
deduplicated across entries and against the explicit ``ops``, matmuls without their fused
bias/activation epilogue (the baselines compute plain matmuls); every op of the inference, with
its count, is kept in the experiment's ``models`` (and so in the run manifest), which is what a
model-level latency needs (op key x count).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from jit_core.models import MODELS, PHASES, model_layer_ops, model_ops
from jit_core.ops import MatMul, OpSpec

from .errors import ConfigError
from .reader import Reader


@dataclass(frozen=True)
class ModelWorkload:
    """One model entry of an experiment: the inference it names and its ops as (op key, count);
    ``tuned`` lists, op by op of that kind, the key of the job that times it (``plain(op)``)."""

    name: str
    phase: str
    seq: int
    batch: int = 1
    past: int | None = None
    ops: tuple[tuple[str, int], ...] = ()
    tuned: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        b = f" b{self.batch}" if self.batch != 1 else ""
        p = f" past{self.past}" if self.past is not None else ""
        return f"{self.name} {self.phase} s{self.seq}{b}{p}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "phase": self.phase, "seq": self.seq, "batch": self.batch, "past": self.past,
                "ops": [{"key": k, "count": c} for k, c in self.ops], "tuned": list(self.tuned)}

    @staticmethod
    def from_dict(d: dict[str, Any]) -> "ModelWorkload":
        return ModelWorkload(name=d["name"], phase=d["phase"], seq=int(d["seq"]), batch=int(d.get("batch", 1)),
                             past=d.get("past"), ops=tuple((o["key"], int(o["count"])) for o in d.get("ops", [])),
                             tuned=tuple(d.get("tuned", [])))


def plain(op: OpSpec) -> OpSpec:
    """The op a job tunes for a model op: a matmul without its fused bias/activation, since the
    TF.js and ORT baselines of a job compute the plain matmul (README, "Devices and templates")."""
    return replace(op, bias=False, act="none") if isinstance(op, MatMul) else op


def _entry(r: Reader, index: int) -> tuple[str, str, int, int, int | None]:
    raw = r.get("models", list)[index]
    key = f"models[{index}]"
    if not isinstance(raw, dict):
        raise r.error(key, f"expected a mapping like {{name: gpt2, seq: 32, phase: prefill}}, got {raw!r}",
                      "write each model as a mapping")
    m = Reader(raw, r.file, f"{key}.")
    name = m.get("name", str, fix=f"name one of {sorted(MODELS)}")
    if name not in MODELS:
        raise m.error("name", f"unknown model {name!r}", f"use one of {sorted(MODELS)}")
    seq = m.positive("seq", int)
    phase = m.get("phase", str, "prefill", choices=PHASES)
    batch = m.positive("batch", int, 1)
    past = m.get("past", int, None)
    if past is not None and past < 0:
        raise m.error("past", f"must be 0 or more, got {past}", "give the number of cached positions")
    m.finish()
    return name, phase, seq, batch, past


def read_models(r: Reader, op_kind: str, taken: set[str]) -> tuple[tuple[ModelWorkload, ...], list[tuple[str, OpSpec]]]:
    """The experiment's ``models`` and the (label, op) jobs they add: ops of ``op_kind`` whose key is
    not in ``taken`` (the explicit ops), first use first. Raises ConfigError naming the entry."""
    raw = r.get("models", list, [])
    workloads: list[ModelWorkload] = []
    jobs: list[tuple[str, OpSpec]] = []
    seen = set(taken)
    for i in range(len(raw)):
        name, phase, seq, batch, past = _entry(r, i)
        try:
            ops = model_ops(name, batch, seq, phase, past=past)
            roles = {u.op: u.role for _, u, _ in model_layer_ops(name, batch, seq, phase, past=past)}
        except ValueError as exc:
            raise r.error(f"models[{i}]", str(exc), "change phase, seq or past") from None
        w = ModelWorkload(name, phase, seq, batch, past, tuple((op.key(), n) for op, n in ops))
        tuned = []
        for op, n in ops:
            if op.kind != op_kind:
                continue
            job = plain(op)
            tuned.append(job.key())
            if job.key() not in seen:
                seen.add(job.key())
                jobs.append((f"{w.label} {roles[op]} x{n}", job))
        workloads.append(replace(w, tuned=tuple(tuned)))
    if len({w.label for w in workloads}) != len(workloads):
        raise ConfigError(r.file, "models", "the same model entry is listed twice", "remove the duplicate")
    return tuple(workloads), jobs
