"""Typed access to a YAML mapping that reports the file and the dotted key of every problem."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import yaml

from .errors import ConfigError

_MISSING = object()
_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
               list: "a list", dict: "a mapping"}


def load_yaml(path: Path) -> dict[str, Any]:
    """Parse ``path`` as a YAML mapping, or raise ConfigError naming the line of the syntax error."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(str(path), "", "file not found", "check the path") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(str(path), "", f"malformed YAML at {where}: {problem}",
                          "correct the YAML syntax there (indentation, quotes, colons)") from None
    if not isinstance(data, dict):
        raise ConfigError(str(path), "", "the file must hold a YAML mapping (key: value lines)",
                          "start the file with top-level keys such as 'id:' or 'name:'")
    return data


class Reader:
    """Reads keys of one mapping with type checks; ``finish()`` rejects unknown keys."""

    def __init__(self, data: dict[str, Any], file: str, prefix: str = ""):
        self.data, self.file, self.prefix = data, file, prefix
        self.seen: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def error(self, name: str, problem: str, fix: str) -> ConfigError:
        return ConfigError(self.file, self.key(name), problem, fix)

    def get(self, name: str, typ: type | tuple[type, ...], default: Any = _MISSING, *,
            fix: str | None = None, choices: Iterable[Any] | None = None) -> Any:
        self.seen.add(name)
        if name not in self.data or self.data[name] is None:
            if default is _MISSING:
                raise self.error(name, "required key is missing", fix or f"add '{name}:' to the file")
            return default
        value = self.data[name]
        types = typ if isinstance(typ, tuple) else (typ,)
        ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
        if not ok and float in types and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            want = " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in types)
            raise self.error(name, f"expected {want}, got {type(value).__name__} {value!r}",
                             fix or f"write {want} for '{name}'")
        if choices is not None and value not in list(choices):
            raise self.error(name, f"unknown value {value!r}", f"use one of {sorted(choices)}")
        return value

    def positive(self, name: str, typ: type, default: Any = _MISSING) -> Any:
        value = self.get(name, typ, default)
        if value is not None and value <= 0:
            raise self.error(name, f"must be positive, got {value}", f"give '{name}' a value above 0")
        return value

    def str_list(self, name: str, default: Any = _MISSING) -> list[str]:
        value = self.get(name, list, default)
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise self.error(f"{name}[{i}]", f"expected a string, got {type(item).__name__} {item!r}",
                                 "quote the value")
        return list(value)

    def str_map(self, name: str) -> dict[str, str]:
        value = self.get(name, dict, {})
        out = {}
        for k, v in value.items():
            if not isinstance(v, (str, int, float)) or isinstance(v, bool):
                raise self.error(f"{name}.{k}", f"expected a string, got {v!r}", "quote the value")
            out[str(k)] = str(v)
        return out

    def sub(self, name: str, required: bool = False) -> "Reader":
        value = self.get(name, dict, _MISSING if required else {})
        return Reader(value, self.file, f"{self.prefix}{name}.")

    def finish(self) -> None:
        unknown = sorted(set(map(str, self.data)) - self.seen)
        if unknown:
            raise self.error(unknown[0], "unknown key",
                             f"remove it or use one of {sorted(self.seen)}")
