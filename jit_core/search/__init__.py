"""Search strategies behind one ask/tell interface, looked up by name.

Add a strategy by subclassing ``Strategy`` in its own module and registering it with
``register_strategy`` (or by adding it to ``STRATEGIES`` here).
"""

from __future__ import annotations

from typing import Sequence

from ..space import Config, Space
from .base import Strategy
from .exhaustive import Exhaustive
from .halving import SuccessiveHalving
from .hill_climb import HillClimb
from .random_search import RandomSearch

STRATEGIES: dict[str, type[Strategy]] = {}


def register_strategy(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator: make ``cls`` available to ``get_strategy`` under ``cls.name``."""
    if cls.name in STRATEGIES and STRATEGIES[cls.name] is not cls:
        raise ValueError(f"strategy name {cls.name!r} is already registered")
    STRATEGIES[cls.name] = cls
    return cls


for _cls in (Exhaustive, RandomSearch, SuccessiveHalving, HillClimb):
    register_strategy(_cls)


def get_strategy(name: str, space: Space, *, seed: int = 1, start: Sequence[Config] = (),
                 samples: int | None = None) -> Strategy:
    """A new strategy ``name`` over ``space``; ``start`` configs are tried first (warm start) and
    ``samples`` is the tuner's full sample count. ValueError lists the known names."""
    try:
        cls = STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown search strategy {name!r}; known: {sorted(STRATEGIES)}") from None
    return cls(space, seed=seed, start=start, samples=samples)


__all__ = ["Exhaustive", "HillClimb", "RandomSearch", "STRATEGIES", "Strategy", "SuccessiveHalving",
           "get_strategy", "register_strategy"]
