"""The cffi type warm-up of the native driver fills cffi's cache with the types cffi itself makes."""

from __future__ import annotations

import cffi

from farm.drivers.cffi_types import warm_cffi_types

CDEF = """
typedef struct Inner { int a; float b; } Inner;
typedef struct Outer { Inner inner; const Inner * items; unsigned long count; } Outer;
typedef enum Kind { KindA = 1, KindB = 7 } Kind;
typedef void (*Callback)(Kind kind, void * user);
typedef uint32_t Flags;
"""


def _ffi() -> cffi.FFI:
    ffi = cffi.FFI()
    ffi.cdef(CDEF)
    return ffi


def test_warmed_types_match_what_cffi_parses_on_first_use():
    warm, cold = _ffi(), _ffi()
    assert warm_cffi_types(warm) == 10  # T * and T[] for each of the 5 typedefs
    for name in ("Inner", "Outer", "Kind", "Callback", "Flags"):
        for decl in (f"{name} *", f"{name}[]"):
            assert decl in warm._parsed_types
            a, b = warm.typeof(decl), cold.typeof(decl)
            assert warm.getctype(a) == cold.getctype(b)
            assert a.kind == b.kind and a.item.kind == b.item.kind
    outer = warm.new("Outer *")
    assert warm.sizeof(outer[0]) == cold.sizeof("Outer")
    assert [f for f, _ in warm.typeof("Outer").fields] == ["inner", "items", "count"]
    assert warm_cffi_types(warm) == 0  # nothing left to add


def test_extra_type_strings_are_warmed_too_and_one_that_does_not_parse_spoils_only_its_own_pass():
    warm, cold = _ffi(), _ffi()
    extra = ("uint8_t []", "void(Kind, void *)", "Outer const *")
    assert warm_cffi_types(warm, extra) == 13
    for decl in extra:  # cffi's own entry for each string, a function type included
        cold._typeof(decl, consider_function_as_funcptr=True)
        (mine, mine_raw), (theirs, theirs_raw) = warm._parsed_types[decl], cold._parsed_types[decl]
        assert warm.getctype(mine) == cold.getctype(theirs) and mine_raw == theirs_raw
    other = _ffi()
    assert warm_cffi_types(other, ("uint8_t []", "NoSuchType *")) == 10  # the typedef pass still counts


def test_warm_up_is_skipped_when_cffi_is_not_as_expected():
    class NotAnFFI:
        pass

    assert warm_cffi_types(NotAnFFI()) == 0
