"""Random search: every config once, in a seeded random order."""

from __future__ import annotations

import random
from typing import Sequence

from ..space import Config, Space
from .base import Strategy


class RandomSearch(Strategy):
    """Proposes the configs of the space in an order shuffled by ``seed``, each once, ignoring costs.
    The baseline every informed strategy has to beat (Bergstra and Bengio's argument)."""

    name = "random"

    def __init__(self, space: Space, *, seed: int = 1, start: Sequence[Config] = (), samples: int | None = None):
        super().__init__(space, seed=seed, start=start, samples=samples)
        self._order = list(space.configs)
        random.Random(seed).shuffle(self._order)
        self._next = 0

    @property
    def done(self) -> bool:
        return self._next >= len(self._order)

    def _propose(self, n: int) -> list[Config]:
        out = self._order[self._next : self._next + n]
        self._next += len(out)
        return out
