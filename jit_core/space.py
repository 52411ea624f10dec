"""Search spaces: tunable parameters, pruning rules with their sources, and the surviving configs.

A template declares its ``Param``s and ``Rule``s; ``Space.build`` enumerates the cartesian product,
canonicalizes configs (so parameters a config ignores do not create duplicates), applies the rules
in order (each rejected config is counted against the first rule that rejects it) and orders the
survivors by the template's prior, so a search cut short has seen the likely good configs first.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Iterable, Iterator, Sequence

SOURCES = ("nnJIT", "WebGPU", "WebAssembly", "ours")


class Config(Mapping[str, int]):
    """One point of a space: an ordered, immutable name -> int mapping.

    Contract: hashable; two configs are equal when they hold the same names with the same values
    in the same order; ``key()`` ("BM=64,BN=64,...") is stable and ``Config.from_key`` inverts it.
    """

    __slots__ = ("_items", "_hash", "_values", "_index")
    # name -> position, one dict per distinct tuple of names (a template has one), shared by its configs
    _INDEXES: dict[tuple[str, ...], dict[str, int]] = {}

    def __init__(self, items: Mapping[str, int] | Iterable[tuple[str, int]] = (), **kwargs: int):
        pairs = list(items.items()) if isinstance(items, Mapping) else list(items)
        pairs += list(kwargs.items())
        names = [n for n, _ in pairs]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate parameter names in {names}")
        for n, v in pairs:
            if not isinstance(v, int) or isinstance(v, bool):
                raise ValueError(f"config value {n}={v!r} is not an integer")
        self._set(tuple(str(n) for n, _ in pairs), tuple(int(v) for _, v in pairs))

    def _set(self, names: tuple[str, ...], values: tuple[int, ...]) -> None:
        self._items: tuple[tuple[str, int], ...] = tuple(zip(names, values))
        self._hash = hash(self._items)
        self._values = values
        index = Config._INDEXES.get(names)
        if index is None:
            index = Config._INDEXES.setdefault(names, {n: i for i, n in enumerate(names)})
        self._index = index

    @classmethod
    def _trusted(cls, names: tuple[str, ...], values: tuple[int, ...]) -> "Config":
        """A config from names already checked unique and values already plain ints (a Param's)."""
        cfg = cls.__new__(cls)
        cfg._set(names, values)
        return cfg

    def __reduce__(self) -> tuple[Any, ...]:
        return (Config, (self._items,))

    def __getitem__(self, name: str) -> int:
        return self._values[self._index[name]]

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
    'WebAssembly' (a wasm engine limit), 'ours' (our own pruning); ``doc`` explains it in one line.
    ``key``: None, or a hashable value that fixes the predicate's verdicts: two rules with the same
    name and key keep the same configs (for a rule reading only the config, ``()``; else the
    limits or op sizes it reads). ``Space.build`` memoises the verdicts of the leading rules that
    have a key, across builds."""

    name: str
    source: str
    predicate: Callable[[Config], bool]
    doc: str = ""
    key: Hashable | None = None

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"rule {self.name}: source must be one of {SOURCES}, got {self.source!r}")
        try:
            hash(self.key)
        except TypeError:
            raise ValueError(f"rule {self.name}: key must be hashable, got {self.key!r}") from None


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
        lower first. ``canonicalize`` must be a pure function of the config: the enumeration up to
        deduplication depends only on (params, canonicalize), so it is computed once per pair and
        shared by the spaces a template builds for each op and device (pass the same function
        object, e.g. a staticmethod: a bound method of a new instance is a new key)."""
        base = _enumerate(tuple(params), canonicalize)
        lead = 0  # the leading rules with a key: their outcome is memoised on the enumeration
        while lead < len(rules) and rules[lead].key is not None:
            lead += 1
        survivors, lead_removed = base.apply(rules[:lead])
        removed = {r.name: 0 for r in rules}
        for name, n in lead_removed.items():
            removed[name] += n
        checks = [(r.name, r.predicate) for r in rules[lead:]]
        kept: list[Config] = []
        for cfg in survivors:
            for name, keep in checks:
                if not keep(cfg):
                    removed[name] += 1
                    break
            else:
                kept.append(cfg)
        if prior is not None:
            kept.sort(key=prior)
        return Space(params, rules, kept, raw_size=base.raw_size, duplicates=base.duplicates, removed=removed)

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


@dataclass(frozen=True)
class _Enumeration:
    """The distinct canonical configs of a cartesian product, in enumeration order, and the
    outcome of keyed rule prefixes on them (``apply``)."""

    configs: tuple[Config, ...]
    raw_size: int
    duplicates: int
    _applied: dict[Any, tuple[tuple[Config, ...], dict[str, int]]] = field(default_factory=dict)

    def apply(self, rules: Sequence[Rule]) -> tuple[tuple[Config, ...], dict[str, int]]:
        """The configs every rule keeps, in order, and per rule name the configs it was the first
        to reject; memoised by the rules' (name, key)."""
        key = tuple((r.name, r.key) for r in rules)
        hit = self._applied.get(key)
        if hit is not None:
            return hit
        removed: dict[str, int] = {}
        checks = [(r.name, r.predicate) for r in rules]
        kept: list[Config] = []
        for cfg in self.configs:
            for name, keep in checks:
                if not keep(cfg):
                    removed[name] = removed.get(name, 0) + 1
                    break
            else:
                kept.append(cfg)
        if len(self._applied) >= _MAX_APPLIED:
            del self._applied[next(iter(self._applied))]
        out = self._applied[key] = (tuple(kept), removed)
        return out


_MAX_APPLIED = 64  # rule prefixes memoised per enumeration (devices x op classes); oldest dropped

_ENUMERATIONS: dict[Any, _Enumeration] = {}
_MAX_ENUMERATIONS = 32  # a few templates x their canonicalizers; oldest dropped beyond that


def _enumerate(params: tuple[Param, ...], canonicalize: Callable[[Config], Config] | None) -> _Enumeration:
    try:
        key: Any = (params, canonicalize)
        hit = _ENUMERATIONS.get(key)
    except TypeError:  # an unhashable canonicalizer: enumerate every time
        key, hit = None, None
    if hit is not None:
        return hit
    names = tuple(p.name for p in params)
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate parameter names in {list(names)}")
    seen: set[Config] = set()
    configs: list[Config] = []
    raw = 0
    for values in itertools.product(*(p.values for p in params)):
        raw += 1
        cfg = Config._trusted(names, values)
        if canonicalize is not None:
            cfg = canonicalize(cfg)
        if cfg not in seen:
            seen.add(cfg)
            configs.append(cfg)
    out = _Enumeration(tuple(configs), raw, raw - len(configs))
    if key is not None:
        if len(_ENUMERATIONS) >= _MAX_ENUMERATIONS:
            del _ENUMERATIONS[next(iter(_ENUMERATIONS))]
        _ENUMERATIONS[key] = out
    return out
