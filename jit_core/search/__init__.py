"""Search strategies behind one ask/tell interface, looked up by name.

Add a strategy by subclassing ``Strategy`` in its own module and registering it with
``register_strategy`` (or by adding it to ``STRATEGIES`` here).
"""

from __future__ import annotations

from ..space import Space
from .base import Strategy
from .exhaustive import Exhaustive

STRATEGIES: dict[str, type[Strategy]] = {}


def register_strategy(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator: make ``cls`` available to ``get_strategy`` under ``cls.name``."""
    if cls.name in STRATEGIES and STRATEGIES[cls.name] is not cls:
        raise ValueError(f"strategy name {cls.name!r} is already registered")
    STRATEGIES[cls.name] = cls
    return cls


register_strategy(Exhaustive)


def get_strategy(name: str, space: Space, *, seed: int = 1) -> Strategy:
    """A new strategy ``name`` over ``space``; ValueError lists the known names."""
    try:
        cls = STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown search strategy {name!r}; known: {sorted(STRATEGIES)}") from None
    return cls(space, seed=seed)


__all__ = ["Exhaustive", "STRATEGIES", "Strategy", "get_strategy", "register_strategy"]
