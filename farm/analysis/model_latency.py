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
from .stats import geomean, geomean_replicates, percentile_ci
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
    frames = []
    for model in models:
        if t.empty:
            break
        frames.append(_one_model(lg, model, level))
    return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)


def _one_model(lg: LatencyGroups, model: ModelOps, level: float) -> pd.DataFrame:
    t = lg.table
    wanted = dict(model.ops)
    keys = ["run_id", "device_id", "impl"]
    all_groups = t[keys].drop_duplicates().sort_values(keys).reset_index(drop=True)
    sub = t[t["op_key"].isin(wanted) & (t["n"] > 0)]
    rows = sub.index.to_numpy()
    gid_frame = all_groups.reset_index().rename(columns={"index": "_m"})
    gid = sub[keys].merge(gid_frame, on=keys, how="left")["_m"].to_numpy()
    weight = sub["op_key"].map(wanted).to_numpy(dtype=float)
    n_models = len(all_groups)
    latency = np.zeros(n_models)
    reps = np.zeros((n_models, lg.replicates.shape[1]))
    present = np.zeros(n_models, dtype=np.int64)
    np.add.at(latency, gid, weight * sub["median_ms"].to_numpy(dtype=float))
    np.add.at(reps, gid, weight[:, None] * lg.replicates[rows])
    np.add.at(present, gid, 1)
    have: dict[int, set[str]] = {}
    for g, k in zip(gid, sub["op_key"]):
        have.setdefault(int(g), set()).add(k)
    complete = present == len(wanted)
    latency[~complete] = np.nan
    reps[~complete] = np.nan
    lo, hi = percentile_ci(reps, level)
    out = all_groups.assign(model=model.name, latency_ms=latency, ci_low_ms=lo, ci_high_ms=hi,
                            missing_ops=[",".join(sorted(set(wanted) - have.get(i, set()))) for i in range(n_models)])
    for c in ("speedup", "speedup_ci_low", "speedup_ci_high", "op_geomean_speedup", "op_geomean_ci_low",
              "op_geomean_ci_high"):
        out[c] = np.nan
    # Speedups: each baseline's model latency over the tuned kernels' on the same run and device.
    jit_of = {(r, d): i for i, (r, d, impl) in enumerate(all_groups.itertuples(index=False)) if impl == JIT}
    op_row = {(r, d, impl, k): i for i, r, d, impl, k in zip(sub.index, sub["run_id"], sub["device_id"],
                                                             sub["impl"], sub["op_key"])}
    for i, (r, d, impl) in enumerate(all_groups.itertuples(index=False)):
        j = jit_of.get((r, d))
        if impl == JIT or j is None or not (complete[i] and complete[j]):
            continue
        with np.errstate(invalid="ignore", divide="ignore"):
            s_lo, s_hi = percentile_ci((reps[i] / reps[j])[None, :], level)
            bi = np.array([op_row[(r, d, impl, k)] for k in wanted])
            ji = np.array([op_row[(r, d, JIT, k)] for k in wanted])
            op_ratio = t.loc[bi, "median_ms"].to_numpy(dtype=float) / t.loc[ji, "median_ms"].to_numpy(dtype=float)
            g_lo, g_hi = percentile_ci(geomean_replicates(lg.replicates[bi] / lg.replicates[ji])[None, :], level)
        out.loc[i, ["speedup", "speedup_ci_low", "speedup_ci_high", "op_geomean_speedup", "op_geomean_ci_low",
                    "op_geomean_ci_high"]] = [latency[i] / latency[j], s_lo[0], s_hi[0],
                                              geomean(op_ratio), g_lo[0], g_hi[0]]
    return out
