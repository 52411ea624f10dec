"""Successive halving: every config timed with few samples, then the best again with more."""

from __future__ import annotations

import math
from typing import Sequence

from ..space import Config, Space
from .base import Strategy


class SuccessiveHalving(Strategy):
    """Rung 0 times every config of the space (in prior order) with ``min_samples`` samples; each
    next rung re-times the best ``1/eta`` of the previous one (at least one) with ``eta`` times more
    samples, up to the tuner's full count (``samples``); the rung timed with the full count is the
    last. Failed configs never survive a rung. ``best`` is the cheapest config of the highest rung
    that has a successful cost, so a lucky one-sample time never beats a well-measured one.
    Contract of ``Strategy``, with ``remeasures`` True: survivors are returned again."""

    name = "successive-halving"
    remeasures = True

    def __init__(self, space: Space, *, seed: int = 1, start: Sequence[Config] = (), samples: int | None = None,
                 eta: int = 3, min_samples: int = 1):
        super().__init__(space, seed=seed, start=start, samples=samples)
        if eta < 2 or min_samples < 1:
            raise ValueError(f"successive halving needs eta >= 2 and min_samples >= 1, got {eta}, {min_samples}")
        self.eta = eta
        self.top_samples = max(min_samples, samples or 5)
        self.rung = 0
        self.rung_samples = min(min_samples, self.top_samples)
        self._queue: list[Config] = list(space.configs)  # configs of the current rung still to ask
        self._members: list[Config] = list(space.configs)
        self._rung_cost: dict[Config, float | None] = {}  # costs measured in the current rung
        self._level: dict[Config, int] = {}  # highest rung in which each config was measured
        self._finished = not self._queue

    @property
    def done(self) -> bool:
        return self._finished

    def _propose(self, n: int) -> list[Config]:
        if not self._queue and self._rung_complete():
            self._promote()
        if self._finished:
            return []
        out, self._queue = self._queue[:n], self._queue[n:]
        self.samples = self.rung_samples
        return out

    def _rung_complete(self) -> bool:
        return all(c in self._rung_cost for c in self._members)

    def _promote(self) -> None:
        ok = sorted((cost, i, c) for i, c in enumerate(self._members)
                    if (cost := self._rung_cost.get(c)) is not None)
        if self.rung_samples >= self.top_samples or len(ok) <= 1:
            self._finished = True
            return
        keep = max(1, math.ceil(len(self._members) / self.eta))
        self._members = [c for _, _, c in ok[:keep]]
        self._queue = list(self._members)
        self._rung_cost = {}
        self.rung += 1
        self.rung_samples = min(self.top_samples, self.rung_samples * self.eta)

    def _on_tell(self, config: Config, cost_ms: float | None) -> None:
        if config in self._members:
            self._rung_cost[config] = cost_ms
            self._level[config] = self.rung
        if config in self._queue:  # a start config told before its turn in rung 0 counts there
            self._queue.remove(config)
        if not self._queue and self._rung_complete():
            self._promote()

    @property
    def best(self) -> tuple[Config, float] | None:
        ok = [(-self._level.get(c, 0), cost, i, c) for i, (c, cost) in enumerate(self.costs.items()) if cost is not None]
        if not ok:
            return None
        _, cost, _, config = min(ok, key=lambda t: t[:3])
        return config, cost
