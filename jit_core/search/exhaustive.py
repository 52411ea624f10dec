"""Exhaustive search: every config of the space, in the space's (prior) order."""

from __future__ import annotations

from typing import Sequence

from ..space import Config, Space
from .base import Strategy


class Exhaustive(Strategy):
    """Proposes every config once, in ``space.configs`` order, ignoring costs. Cut short by a
    budget it has tried the configs the template's prior ranks first."""

    name = "exhaustive"

    def __init__(self, space: Space, *, seed: int = 1, start: Sequence[Config] = (), samples: int | None = None):
        super().__init__(space, seed=seed, start=start, samples=samples)
        self._next = 0

    @property
    def done(self) -> bool:
        return self._next >= len(self.space.configs)

    def _propose(self, n: int) -> list[Config]:
        out = list(self.space.configs[self._next : self._next + n])
        self._next += len(out)
        return out
