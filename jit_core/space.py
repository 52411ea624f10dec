"""Search spaces: tunable parameters, pruning rules with their sources, and the surviving configs.

A template declares its ``Param``s and ``Rule``s; ``Space.build`` enumerates the cartesian product,
canonicalizes configs (so parameters a config ignores do not create duplicates), applies the rules
in order (each rejected config is counted against the first rule that rejects it) and orders the
survivors by the template's prior, so a search cut short has seen the likely good configs first.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence

SOURCES = ("nnJIT", "WebGPU", "WebAssembly", "ours")


class Config(Mapping[str, int]):
    """One point of a space: an ordered, immutable name -> int mapping.

    Contract: hashable; two configs are equal when they hold the same names with the same values
    in the same order; ``key()`` ("BM=64,BN=64,...") is stable and ``Config.from_key`` inverts it.
    """

    __slots__ = ("_items", "_hash")

    def __init__(self, items: Mapping[str, int] | Iterable[tuple[str, int]] = (), **kwargs: int):
        pairs = list(items.items()) if isinstance(items, Mapping) else list(items)
        pairs += list(kwargs.items())
        names = [n for n, _ in pairs]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate parameter names in {names}")
        for n, v in pairs:
            if not isinstance(v, int) or isinstance(v, bool):
                raise ValueError(f"config value {n}={v!r} is not an integer")
        self._items: tuple[tuple[str, int], ...] = tuple((str(n), int(v)) for n, v in pairs)
        self._hash = hash(self._items)

    def __getitem__(self, name: str) -> int:
        for n, v in self._items:
            if n == name:
                return v
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return (n for n, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Config):
            return self._items == other._items
        if isinstance(other, Mapping):
            return dict(self._items) == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"Config({self.key()})"

    def key(self) -> str:
        return ",".join(f"{n}={v}" for n, v in self._items)

    def as_dict(self) -> dict[str, int]:
        return dict(self._items)

    def replace(self, **changes: int) -> "Config":
        """A copy with some values changed (names must exist)."""
        unknown = set(changes) - set(self)
        if unknown:
            raise KeyError(f"unknown parameter(s) {sorted(unknown)}")
        return Config((n, changes.get(n, v)) for n, v in self._items)

    @staticmethod
    def from_key(key: str) -> "Config":
        pairs = []
        for part in key.split(","):
            name, sep, value = part.partition("=")
            if not sep:
                raise ValueError(f"bad config key {key!r}")
            pairs.append((name.strip(), int(value)))
        return Config(pairs)


@dataclass(frozen=True)
class Param:
    """A tunable parameter and its candidate values, in the order they are enumerated."""

    name: str
    values: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", tuple(int(v) for v in self.values))
        if not self.values:
            raise ValueError(f"parameter {self.name} has no values")


@dataclass(frozen=True)
class Rule:
    """A pruning rule: ``predicate(config)`` is True for configs that are kept. ``source`` says why
    the rule exists: 'nnJIT' (the nnJIT artifact's lite space), 'WebGPU' (an adapter limit),
    'WebAssembly' (a wasm engine limit), 'ours' (our own pruning); ``doc`` explains it in one line."""

    name: str
    source: str
    predicate: Callable[[Config], bool]
    doc: str = ""

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"rule {self.name}: source must be one of {SOURCES}, got {self.source!r}")


class Space:
    """The configs of a template for one op on one device, in search order.

    Contract: ``configs`` holds each surviving config once, ordered by the prior (stable: ties keep
    enumeration order); ``raw_size == len(configs) + duplicates + sum(removed.values())``;
    ``report()`` is a JSON-ready dict of those counts and of every rule with its source.
    """

    def __init__(
        self,
        params: Sequence[Param],
        rules: Sequence[Rule],
        configs: Sequence[Config],
        *,
        raw_size: int,
        duplicates: int,
        removed: Mapping[str, int],
    ):
        self.params = tuple(params)
        self.rules = tuple(rules)
        self.configs: tuple[Config, ...] = tuple(configs)
        self.raw_size = raw_size
        self.duplicates = duplicates
        self.removed = dict(removed)
        self._set = frozenset(self.configs)

    @staticmethod
    def build(
        params: Sequence[Param],
        rules: Sequence[Rule],
        *,
        canonicalize: Callable[[Config], Config] | None = None,
        prior: Callable[[Config], float] | None = None,
    ) -> "Space":
        """Enumerate, canonicalize, deduplicate, prune and order. ``prior`` returns a score,
        lower first."""
        names = [p.name for p in params]
        seen: set[Config] = set()
        kept: list[Config] = []
        raw = duplicates = 0
        removed = {r.name: 0 for r in rules}
        for values in itertools.product(*(p.values for p in params)):
            raw += 1
            cfg = Config(zip(names, values))
            if canonicalize is not None:
                cfg = canonicalize(cfg)
            if cfg in seen:
                duplicates += 1
                continue
            seen.add(cfg)
            for rule in rules:
                if not rule.predicate(cfg):
                    removed[rule.name] += 1
                    break
            else:
                kept.append(cfg)
        if prior is not None:
            kept.sort(key=prior)
        return Space(params, rules, kept, raw_size=raw, duplicates=duplicates, removed=removed)

    def __len__(self) -> int:
        return len(self.configs)

    def __iter__(self) -> Iterator[Config]:
        return iter(self.configs)

    def __contains__(self, config: object) -> bool:
        return config in self._set

    @property
    def size(self) -> int:
        return len(self.configs)

    def rejected_by(self, config: Config) -> str | None:
        """Name of the first rule that rejects ``config`` (None if every rule keeps it)."""
        for rule in self.rules:
            if not rule.predicate(config):
                return rule.name
        return None

    def report(self) -> dict[str, Any]:
        return {
            "raw_size": self.raw_size,
            "size": self.size,
            "duplicates": self.duplicates,
            "removed": dict(self.removed),
            "params": {p.name: list(p.values) for p in self.params},
            "rules": [
                {"name": r.name, "source": r.source, "doc": r.doc, "removed": self.removed.get(r.name, 0)}
                for r in self.rules
            ],
        }
