"""Parse the C types wgpu-native's bindings ask cffi for in one pass, before they are asked for.

wgpu's Python bindings (ABI-mode cffi) build every struct with ``ffi.new("WGPUSomething *")``.
cffi parses each new type string with pycparser, prepending a ``typedef int X;`` line for every
typedef the bindings declare (about 430), so each first use of a type costs a full parse (50 to
300 ms on a busy 2-core machine); opening a device and running its first batch asks for about 40
types: 2 to 10 s of the device open were this. Parsing ``T *`` and ``T[]`` for every declared
typedef in one source costs about one such parse, and fills the same cache (``ffi._parsed_types``)
with the objects cffi itself would have made (same parser, same type cache).

This reaches into cffi's private parser (cffi comes with wgpu); if its shape differs, nothing is
filled and cffi parses each type on first use as before.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def warm_cffi_types(ffi: Any, extra: tuple[str, ...] = ()) -> int:
    """Fill ``ffi``'s type cache with ``T *`` and ``T[]`` for each typedef it declares, and with
    the type strings in ``extra`` (a second pass: one that does not parse spoils only that pass);
    returns how many entries were added (0 when cffi's internals are not as expected)."""
    try:
        parser = ffi._parser
        names = sorted(n[len("typedef "):] for n in parser._declarations if n.startswith("typedef "))
    except Exception as exc:  # noqa: BLE001 - an optimisation only; cffi parses lazily without it
        log.debug("cffi type warm-up skipped: %s", exc)
        return 0
    return _fill(ffi, [d for n in names for d in (f"{n} *", f"{n}[]")]) + _fill(ffi, list(extra))


def _fill(ffi: Any, decls: list[str]) -> int:
    try:
        parser, cache = ffi._parser, ffi._parsed_types
        decls = [d for d in dict.fromkeys(decls) if d not in cache]
        if not decls:
            return 0
        # the same wrapper parse_type_and_quals uses, once per type, in one source
        source = "\n".join(f"void __warm{i}(\n{d}\n);" for i, d in enumerate(decls))
        with ffi._lock:
            nodes = parser._parse(source)[0].ext[-len(decls):]
            made = []
            for decl, node in zip(decls, nodes):
                tp, _quals = parser._get_type_and_quals(node.type.args.params[0].type)
                raw_function = tp.is_raw_function
                if raw_function:
                    tp = tp.as_function_pointer()
                made.append((decl, (ffi._get_cached_btype(tp), raw_function)))
            for decl, entry in made:
                cache.setdefault(decl, entry)
        return len(made)
    except Exception as exc:  # noqa: BLE001 - an optimisation only; cffi parses lazily without it
        log.debug("cffi type warm-up skipped: %s", exc)
        return 0
