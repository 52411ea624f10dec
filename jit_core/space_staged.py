"""Staged enumeration of a search space, for spaces too large to enumerate whole (``Space.build``
walks the full cartesian product: 120,000 configs of matmul-wasm-simd take seconds)."""

from __future__ import annotations

import itertools
import math
from typing import Callable, Sequence

from .space import Config, Param, Rule, Space


def build_staged(params: Sequence[Param], rules: Sequence[Rule], stages: Sequence[Sequence[str]], *,
                 prior: Callable[[Config], float] | None = None) -> Space:
    """``Space.build`` for spaces too large to enumerate whole: params are enumerated stage by
    stage and a partial config is dropped as soon as a rule that reads only the stages so far
    rejects it, counting all its completions against that rule. Same counts and order as
    ``Space.build`` as long as the rules are listed stage by stage (a rule never reads a later
    stage's params) and there is no canonicalization."""
    by_name = {p.name: p for p in params}
    order = [n for stage in stages for n in stage]
    if sorted(order) != sorted(by_name):
        raise ValueError(f"stages {stages} must name every param once: {sorted(by_name)}")
    staged_rules: list[list[Rule]] = [[] for _ in stages]
    stage = 0
    for rule in rules:  # assign each rule to the first stage whose params let it evaluate
        while stage < len(stages):
            known = {n: by_name[n].values[0] for s in stages[: stage + 1] for n in s}
            try:
                rule.predicate(Config(known))
                break
            except KeyError:
                stage += 1
        if stage == len(stages):
            raise ValueError(f"rule {rule.name} reads a param no stage has")
        staged_rules[stage].append(rule)
    removed = {r.name: 0 for r in rules}
    sizes = [math.prod(len(by_name[n].values) for n in s) for s in stages]
    kept: list[Config] = []

    def walk(level: int, prefix: list[tuple[str, int]]) -> None:
        names = stages[level]
        rest = math.prod(sizes[level + 1:])
        for values in itertools.product(*(by_name[n].values for n in names)):
            items = prefix + list(zip(names, values))
            cfg = Config(items)
            for rule in staged_rules[level]:
                if not rule.predicate(cfg):
                    removed[rule.name] += rest
                    break
            else:
                if level + 1 < len(stages):
                    walk(level + 1, items)
                else:
                    kept.append(cfg)

    walk(0, [])
    ordered = [Config((n, c[n]) for n in (p.name for p in params)) for c in kept]
    if prior is not None:
        ordered.sort(key=prior)
    return Space(params, rules, ordered, raw_size=math.prod(sizes), duplicates=0, removed=removed)
