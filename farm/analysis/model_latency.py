"""Model-level latency: a model's op list (op key, count) times each op's measured latency.

A model's latency on a device with one implementation is sum(count * median latency of the op);
its CI comes from the same bootstrap replicates as the ops' (the sum of the replicates). The
model speedup is baseline latency / tuned latency with the CI of that ratio, plus the geomean of
the speedups of the model's distinct ops. A model with an op that was not measured (or failed)
on a device gets no latency there and says which ops are missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
import pandas as pd

from farm.config.errors import UserError

from .load import JIT
from .stats import geomean_replicates, percentile_ci
from .tables import LatencyGroups


@dataclass(frozen=True)
class ModelOps:
    """A model as the ops one inference runs: ``ops`` is a tuple of (op key, count)."""

    name: str
    ops: tuple[tuple[str, int], ...]

    @staticmethod
    def of(name: str, ops: Iterable[tuple[str, int]]) -> "ModelOps":
        merged: dict[str, int] = {}
        for key, count in ops:
            if int(count) <= 0:
                raise UserError(f"model {name!r}: op {key!r} has count {count}. Fix: counts are positive integers")
            merged[str(key)] = merged.get(str(key), 0) + int(count)
        return ModelOps(name, tuple(merged.items()))

    @staticmethod
    def parse(text: str) -> "ModelOps":
        """'name=op_key*count,op_key*count' (count defaults to 1), as the command line takes it."""
        name, sep, body = text.partition("=")
        if not sep or not name or not body:
            raise UserError(f"--model {text!r}: expected NAME=OP_KEY*COUNT[,OP_KEY*COUNT...], "
                            "e.g. gpt2=matmul_f32_64x768x768*48,matmul_f32_64x3072x768*12")
        ops = []
        for item in body.split(","):
            key, _, count = item.strip().partition("*")
            try:
                ops.append((key, int(count) if count else 1))
            except ValueError:
                raise UserError(f"--model {text!r}: count {count!r} of {key!r} is not an integer") from None
        return ModelOps.of(name, ops)


def model_table(lg: LatencyGroups, models: Iterable[ModelOps], level: float = 0.95) -> pd.DataFrame:
    """One row per (model, run, device, impl): latency and CI; baselines also get the speedup of
    the tuned kernels over them for the whole model, with CI, and the geomean of the op speedups."""
    cols = ["model", "run_id", "device_id", "impl", "latency_ms", "ci_low_ms", "ci_high_ms", "speedup",
            "speedup_ci_low", "speedup_ci_high", "op_geomean_speedup", "op_geomean_ci_low",
            "op_geomean_ci_high", "missing_ops"]
    t = lg.table
    out = []
    for model in models:
        if t.empty:
            break
        wanted = dict(model.ops)
        sub = t[t["op_key"].isin(wanted)]
        for (run_id, device_id), grp in t.groupby(["run_id", "device_id"], sort=True):
            have = sub[(sub["run_id"] == run_id) & (sub["device_id"] == device_id)]
            per_impl: dict[str, tuple[float, np.ndarray, list[str], dict[str, int]]] = {}
            for impl in sorted(grp["impl"].unique()):
                rows = have[(have["impl"] == impl) & (have["n"] > 0)]
                idx = {k: i for k, i in zip(rows["op_key"], rows.index)}
                missing = sorted(k for k in wanted if k not in idx)
                if missing:
                    per_impl[impl] = (np.nan, np.full(lg.replicates.shape[1], np.nan), missing, idx)
                    continue
                w = np.array([wanted[k] for k in idx], dtype=float)
                ii = np.array(list(idx.values()))
                lat = float((w * t.loc[ii, "median_ms"].to_numpy()).sum())
                per_impl[impl] = (lat, (w[:, None] * lg.replicates[ii]).sum(axis=0), [], idx)
            jit = per_impl.get(JIT)
            for impl, (lat, reps, missing, idx) in per_impl.items():
                lo, hi = percentile_ci(reps[None, :], level)
                row = {"model": model.name, "run_id": run_id, "device_id": device_id, "impl": impl,
                       "latency_ms": lat, "ci_low_ms": lo[0], "ci_high_ms": hi[0], "speedup": np.nan,
                       "speedup_ci_low": np.nan, "speedup_ci_high": np.nan, "op_geomean_speedup": np.nan,
                       "op_geomean_ci_low": np.nan, "op_geomean_ci_high": np.nan, "missing_ops": ",".join(missing)}
                if impl != JIT and jit is not None and not missing and not jit[2]:
                    with np.errstate(invalid="ignore", divide="ignore"):
                        ratio = reps / jit[1]
                    slo, shi = percentile_ci(ratio[None, :], level)
                    bi = np.array([idx[k] for k in wanted])
                    ji = np.array([jit[3][k] for k in wanted])
                    op_ratio = t.loc[bi, "median_ms"].to_numpy() / t.loc[ji, "median_ms"].to_numpy()
                    with np.errstate(invalid="ignore", divide="ignore"):
                        glo, ghi = percentile_ci(geomean_replicates(lg.replicates[bi] / lg.replicates[ji])[None, :],
                                                 level)
                    row.update(speedup=lat / jit[0], speedup_ci_low=slo[0], speedup_ci_high=shi[0],
                               op_geomean_speedup=float(np.exp(np.log(op_ratio).mean())),
                               op_geomean_ci_low=glo[0], op_geomean_ci_high=ghi[0])
                out.append(row)
    return pd.DataFrame(out, columns=cols)
