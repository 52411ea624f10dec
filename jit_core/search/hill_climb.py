"""Neighbourhood search: climb from the prior's best guess to the best neighbour, restart when stuck."""

from __future__ import annotations

import math
import random
from typing import Sequence

from ..space import Config, Space
from .base import Strategy

MAX_RADIUS = 2


class HillClimb(Strategy):
    """Model-guided local search over the space's parameter grid.

    The first batch is the top of the template's prior (its model of the device). Then the centre
    is the best config found so far on the current climb; each batch holds untried configs nearest
    to it: distance is the number of steps along each parameter's value list, summed (radius 1
    first, then up to ``MAX_RADIUS``), ties broken by the prior. A better neighbour becomes the
    centre. When no untried config is within ``MAX_RADIUS`` of the centre, the search restarts
    from a random untried config (seeded) and climbs again. Start configs (a cached winner) are
    tried first and become the centre when they are the best. Each config is proposed once.
    """

    name = "hill-climb"

    def __init__(self, space: Space, *, seed: int = 1, start: Sequence[Config] = (), samples: int | None = None):
        super().__init__(space, seed=seed, start=start, samples=samples)
        self._rng = random.Random(seed)
        self._rank = {c: i for i, c in enumerate(space.configs)}
        positions = {p.name: {v: i for i, v in enumerate(p.values)} for p in space.params}
        self._coords = {c: tuple(positions[n].get(v, 0) for n, v in c.items()) for c in space.configs}
        self._proposed: set[Config] = set()
        self._center: Config | None = None
        self._center_cost = math.inf
        self.restarts = 0

    @property
    def done(self) -> bool:
        return len(self._proposed | self._asked_set) >= len(self.space.configs)

    def _untried(self) -> list[Config]:
        return [c for c in self.space.configs if c not in self._proposed and c not in self._asked_set]

    def _distance(self, a: Config, b: Config) -> int:
        return sum(abs(x - y) for x, y in zip(self._coords[a], self._coords[b]))

    def _propose(self, n: int) -> list[Config]:
        untried = self._untried()
        if not untried:
            return []
        if self._center is None and not self.costs:  # first batch: the prior's best guesses
            out = untried[:n]
        else:
            if self._center is None:
                self._center = min((c for c, cost in self.costs.items() if cost is not None),
                                   key=lambda c: self.costs[c], default=None)  # type: ignore[arg-type]
            near = [] if self._center is None else sorted(
                (d, self._rank[c], c) for c in untried if (d := self._distance(self._center, c)) <= MAX_RADIUS)
            if near:
                out = [c for _, _, c in near[:n]]
            else:  # stuck (or nothing worked yet): restart from a random untried config
                self.restarts += 1
                restart = self._rng.choice(untried)
                self._center, self._center_cost = restart, math.inf
                out = [restart]
        self._proposed.update(out)
        return out

    def _on_tell(self, config: Config, cost_ms: float | None) -> None:
        if cost_ms is None:
            return
        if config == self._center:
            self._center_cost = cost_ms
        if cost_ms < self._center_cost:
            self._center, self._center_cost = config, cost_ms
