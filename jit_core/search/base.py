"""The ask/tell contract every search strategy implements."""

from __future__ import annotations

import abc
from typing import Sequence

from ..space import Config, Space


class Strategy(abc.ABC):
    """Proposes configs of a ``Space`` and learns from their measured costs.

    Contract:
    - ``ask(n)`` returns up to ``n`` configs of the space, none of them pending (asked, not yet
      told). A config is returned a second time only by a strategy that re-measures
      (``remeasures`` is True: successive halving times survivors again with more samples); every
      other strategy returns each config at most once. ``ask`` may return fewer than ``n``; it
      returns ``[]`` only when it has nothing more to propose given what it was told (then
      ``done`` is True) or while it waits for costs of configs it already handed out (the tuner
      tells every config of a batch before asking again, so for the tuner an empty answer means done).
    - ``samples`` is the number of timed samples the strategy wants for the configs of its last
      ask, or None for the tuner's default (``MeasureSpec.samples``).
    - ``tell(config, cost_ms)`` reports the cost of a pending config exactly once per ask; ``None``
      means the config failed (did not compile, crashed, or gave a wrong result) and must never
      win. A re-measured config's new cost replaces its old one (it is based on more samples).
    - ``start`` configs (e.g. a cached winner of a similar device) that belong to the space are
      proposed first, in order, by every strategy.
    - ``done`` is True once the strategy will propose nothing more.
    - Deterministic for a given space, ``seed``, ``start`` and sequence of tells.
    Subclasses implement ``_propose(n)``; the base class keeps the bookkeeping (asked, told, best).
    """

    name: str = "abstract"
    remeasures: bool = False

    def __init__(self, space: Space, *, seed: int = 1, start: Sequence[Config] = (), samples: int | None = None):
        self.space = space
        self.seed = seed
        self.full_samples = samples  # the tuner's default sample count, when a strategy needs it
        self.samples: int | None = None
        self.asked: list[Config] = []  # every ask, in order (a re-measured config appears again)
        self.costs: dict[Config, float | None] = {}  # latest cost per config
        self._asked_set: set[Config] = set()
        self._pending: dict[Config, None] = {}  # ordered set
        seen: set[Config] = set()
        self._start = [c for c in start if c in space and not (c in seen or seen.add(c))]

    def ask(self, n: int) -> list[Config]:
        if n < 1:
            return []
        if self._start:
            configs = [c for c in self._start if c not in self._asked_set][:n]
            self._start = [c for c in self._start if c not in configs and c not in self._asked_set]
            self.samples = None
        else:
            configs = []
            rounds = 0
            while len(configs) < n and not self.done and rounds <= len(self.space):
                rounds += 1  # guards against a _propose that stops making progress
                proposed = self._propose(n - len(configs))
                if not proposed:
                    break
                for c in proposed:
                    if c in self._pending or c in configs or (c in self._asked_set and not self.remeasures):
                        continue
                    configs.append(c)
                if self.remeasures:  # one rung per ask: its configs share one sample count
                    break
            configs = configs[:n]
        self.asked += configs
        self._asked_set.update(configs)
        self._pending.update(dict.fromkeys(configs))
        return configs

    def tell(self, config: Config, cost_ms: float | None) -> None:
        if config not in self._pending:
            if config in self._asked_set:
                raise ValueError(f"told twice: {config.key()}")
            raise ValueError(f"told a config that was never asked: {config.key()}")
        del self._pending[config]
        self.costs[config] = cost_ms
        self._on_tell(config, cost_ms)

    @property
    def pending(self) -> list[Config]:
        """Configs asked but not yet told."""
        return list(self._pending)

    @property
    def best(self) -> tuple[Config, float] | None:
        """The cheapest successful config by its latest cost (first told wins ties)."""
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
        """Up to ``n`` configs; the base class drops repeats (unless ``remeasures``) and pending ones."""

    def _on_tell(self, config: Config, cost_ms: float | None) -> None:
        """Hook for strategies that learn from costs."""
