"""The ask/tell contract every search strategy implements."""

from __future__ import annotations

import abc

from ..space import Config, Space


class Strategy(abc.ABC):
    """Proposes configs of a ``Space`` and learns from their measured costs.

    Contract:
    - ``ask(n)`` returns up to ``n`` configs of the space that were never returned before. It may
      return fewer than ``n``; it returns ``[]`` only when it has nothing more to propose given
      what it was told (then ``done`` is True) or while it waits for costs of configs it already
      handed out (the tuner tells every config of a batch before asking again, so for the tuner an
      empty answer means done).
    - ``tell(config, cost_ms)`` reports the cost of an asked config exactly once; ``None`` means
      the config failed (did not compile, crashed, or gave a wrong result) and must never win.
    - ``done`` is True once the strategy will propose nothing more.
    - Deterministic for a given space, ``seed`` and sequence of tells.
    Subclasses implement ``_propose(n)``; the base class keeps the bookkeeping (asked, told, best).
    """

    name: str = "abstract"

    def __init__(self, space: Space, *, seed: int = 1):
        self.space = space
        self.seed = seed
        self.asked: list[Config] = []
        self.costs: dict[Config, float | None] = {}
        self._asked_set: set[Config] = set()

    def ask(self, n: int) -> list[Config]:
        if n < 1 or self.done:
            return []
        configs = [c for c in self._propose(n) if c not in self._asked_set][:n]
        self.asked += configs
        self._asked_set.update(configs)
        return configs

    def tell(self, config: Config, cost_ms: float | None) -> None:
        if config not in self._asked_set:
            raise ValueError(f"told a config that was never asked: {config.key()}")
        if config in self.costs:
            raise ValueError(f"told twice: {config.key()}")
        self.costs[config] = cost_ms
        self._on_tell(config, cost_ms)

    @property
    def pending(self) -> list[Config]:
        """Configs asked but not yet told."""
        return [c for c in self.asked if c not in self.costs]

    @property
    def best(self) -> tuple[Config, float] | None:
        """The cheapest successful config told so far and its cost (first told wins ties)."""
        ok = [(cost, i, c) for i, (c, cost) in enumerate(self.costs.items()) if cost is not None]
        if not ok:
            return None
        cost, _, config = min(ok, key=lambda t: (t[0], t[1]))
        return config, cost

    @property
    @abc.abstractmethod
    def done(self) -> bool: ...

    @abc.abstractmethod
    def _propose(self, n: int) -> list[Config]:
        """Up to ``n`` configs not asked before (the base class filters repeats anyway)."""

    def _on_tell(self, config: Config, cost_ms: float | None) -> None:
        """Hook for strategies that learn from costs."""
