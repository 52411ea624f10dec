"""A small direct encoder of WebAssembly binary modules (no LLVM, no Binaryen, no text format).

Only what kernels need: one imported memory, functions over i32/f32/v128, exports, structured
control flow, scalar and SIMD128 memory and arithmetic instructions (0xFD prefix), and relaxed
SIMD's ``f32x4.relaxed_madd``. The browser's engine does register allocation and instruction
selection, so the encoder emits exactly the instructions it is given, in order.

Binary format: https://webassembly.github.io/spec/core/binary/ (sections, LEB128 integers).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

I32, I64, F32, F64, V128 = 0x7F, 0x7E, 0x7D, 0x7C, 0x7B
VALTYPES = (I32, I64, F32, F64, V128)

MAGIC_VERSION = b"\x00asm\x01\x00\x00\x00"
SEC_TYPE, SEC_IMPORT, SEC_FUNCTION, SEC_EXPORT, SEC_CODE = 1, 2, 3, 7, 10
EXPORT_FUNC, IMPORT_MEMORY = 0x00, 0x02
BLOCKTYPE_EMPTY = 0x40

# Scalar opcodes used by the kernels.
OP = {
    "unreachable": 0x00, "block": 0x02, "loop": 0x03, "if": 0x04, "else": 0x05, "end": 0x0B,
    "br": 0x0C, "br_if": 0x0D, "return": 0x0F, "call": 0x10, "drop": 0x1A, "select": 0x1B,
    "local.get": 0x20, "local.set": 0x21, "local.tee": 0x22,
    "i32.load": 0x28, "f32.load": 0x2A, "i32.store": 0x36, "f32.store": 0x38,
    "i32.const": 0x41, "f32.const": 0x43,
    "i32.eqz": 0x45, "i32.eq": 0x46, "i32.ne": 0x47, "i32.lt_s": 0x48, "i32.lt_u": 0x49,
    "i32.gt_s": 0x4A, "i32.le_s": 0x4C, "i32.ge_s": 0x4E,
    "i32.add": 0x6A, "i32.sub": 0x6B, "i32.mul": 0x6C, "i32.div_s": 0x6D, "i32.div_u": 0x6E,
    "i32.rem_s": 0x6F, "i32.rem_u": 0x70, "i32.and": 0x71, "i32.or": 0x72, "i32.shl": 0x74,
    "f32.add": 0x92, "f32.mul": 0x94,
}

# SIMD opcodes (after the 0xFD prefix, as LEB128 u32).
SIMD = {
    "v128.load": 0x00, "v128.load32_splat": 0x09, "v128.store": 0x0B, "v128.const": 0x0C,
    "f32x4.splat": 0x13, "f32x4.extract_lane": 0x1F,
    "f32x4.add": 0xE4, "f32x4.sub": 0xE5, "f32x4.mul": 0xE6,
    "f32x4.relaxed_madd": 0x105,
}
SIMD_PREFIX = 0xFD

# Natural alignment (log2 bytes) of each memory access.
_ALIGN = {"i32.load": 2, "f32.load": 2, "i32.store": 2, "f32.store": 2,
          "v128.load": 4, "v128.store": 4, "v128.load32_splat": 2}


def uleb(n: int) -> bytes:
    """Unsigned LEB128."""
    if n < 0:
        raise ValueError(f"uleb of negative {n}")
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def sleb(n: int) -> bytes:
    """Signed LEB128."""
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if (n == 0 and not b & 0x40) or (n == -1 and b & 0x40):
            out.append(b)
            return bytes(out)
        out.append(b | 0x80)


def name_bytes(s: str) -> bytes:
    raw = s.encode("utf-8")
    return uleb(len(raw)) + raw


def vec(items: list[bytes]) -> bytes:
    return uleb(len(items)) + b"".join(items)


def section(sid: int, payload: bytes) -> bytes:
    return bytes([sid]) + uleb(len(payload)) + payload


class Func:
    """One function body under construction. Parameters are locals 0..n-1; ``local(type)``
    allocates more. Instruction methods append bytes in order; structured control flow must be
    balanced (``block``/``loop``/``if_`` each closed by ``end``), which ``body()`` checks."""

    def __init__(self, params: tuple[int, ...], results: tuple[int, ...] = ()):
        self.params = tuple(params)
        self.results = tuple(results)
        self._locals: list[int] = []
        self.code = bytearray()
        self._depth = 0

    @property
    def type(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return self.params, self.results

    def local(self, valtype: int) -> int:
        if valtype not in VALTYPES:
            raise ValueError(f"bad value type {valtype:#x}")
        self._locals.append(valtype)
        return len(self.params) + len(self._locals) - 1

    # ----------------------------------------------------------------------------- raw emission
    def op(self, name: str, *immediates: bytes) -> "Func":
        self.code.append(OP[name])
        for imm in immediates:
            self.code += imm
        return self

    def simd(self, name: str, *immediates: bytes) -> "Func":
        self.code.append(SIMD_PREFIX)
        self.code += uleb(SIMD[name])
        for imm in immediates:
            self.code += imm
        return self

    # ------------------------------------------------------------------------------- locals/consts
    def get(self, i: int) -> "Func":
        return self.op("local.get", uleb(i))

    def set(self, i: int) -> "Func":
        return self.op("local.set", uleb(i))

    def tee(self, i: int) -> "Func":
        return self.op("local.tee", uleb(i))

    def i32(self, value: int) -> "Func":
        if not -(2**31) <= value < 2**32:
            raise ValueError(f"i32 constant out of range: {value}")
        if value >= 2**31:
            value -= 2**32
        return self.op("i32.const", sleb(value))

    def f32(self, value: float) -> "Func":
        return self.op("f32.const", struct.pack("<f", value))

    def v128_zero(self) -> "Func":
        return self.simd("v128.const", bytes(16))

    # -------------------------------------------------------------------------------------- memory
    def mem(self, name: str, offset: int = 0) -> "Func":
        """A load or store with a constant byte ``offset`` added to the address on the stack."""
        if not 0 <= offset < 2**32:
            raise ValueError(f"memory offset out of range: {offset}")
        memarg = uleb(_ALIGN[name]) + uleb(offset)
        if name in SIMD:
            return self.simd(name, memarg)
        return self.op(name, memarg)

    # ---------------------------------------------------------------------------------- control
    def block(self) -> "Func":
        self._depth += 1
        return self.op("block", bytes([BLOCKTYPE_EMPTY]))

    def loop(self) -> "Func":
        self._depth += 1
        return self.op("loop", bytes([BLOCKTYPE_EMPTY]))

    def if_(self) -> "Func":
        self._depth += 1
        return self.op("if", bytes([BLOCKTYPE_EMPTY]))

    def else_(self) -> "Func":
        return self.op("else")

    def end(self) -> "Func":
        self._depth -= 1
        if self._depth < 0:
            raise ValueError("end without an open block")
        return self.op("end")

    def br(self, depth: int) -> "Func":
        return self.op("br", uleb(depth))

    def br_if(self, depth: int) -> "Func":
        return self.op("br_if", uleb(depth))

    def call(self, index: int) -> "Func":
        return self.op("call", uleb(index))

    # ---------------------------------------------------------------------------------- encoding
    def body(self) -> bytes:
        if self._depth != 0:
            raise ValueError(f"function has {self._depth} unclosed block(s)")
        groups: list[tuple[int, int]] = []  # run-length (count, type) of the declared locals
        for t in self._locals:
            if groups and groups[-1][1] == t:
                groups[-1] = (groups[-1][0] + 1, t)
            else:
                groups.append((1, t))
        decl = vec([uleb(n) + bytes([t]) for n, t in groups])
        payload = decl + bytes(self.code) + bytes([OP["end"]])
        return uleb(len(payload)) + payload


@dataclass
class Module:
    """A module: an optional imported memory, functions (indices in order of ``add``), exports.

    Contract: ``encode()`` returns a binary that a conforming engine validates as long as every
    function body is well typed; function indices start at 0 (no imported functions)."""

    funcs: list[Func] = field(default_factory=list)
    exports: list[tuple[str, int]] = field(default_factory=list)
    memory: tuple[str, str, int, int | None, bool] | None = None  # module, name, min, max, shared

    def import_memory(self, module: str, name: str, *, min_pages: int, max_pages: int | None,
                      shared: bool) -> None:
        if shared and max_pages is None:
            raise ValueError("a shared memory needs a maximum size")
        self.memory = (module, name, min_pages, max_pages, shared)

    def add(self, func: Func, export: str | None = None) -> int:
        self.funcs.append(func)
        index = len(self.funcs) - 1
        if export is not None:
            self.exports.append((export, index))
        return index

    def encode(self) -> bytes:
        types: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
        type_of: list[int] = []
        for f in self.funcs:
            if f.type not in types:
                types.append(f.type)
            type_of.append(types.index(f.type))
        out = bytearray(MAGIC_VERSION)
        out += section(SEC_TYPE, vec([b"\x60" + vec([bytes([p]) for p in ps]) + vec([bytes([r]) for r in rs])
                                      for ps, rs in types]))
        if self.memory is not None:
            mod, name, lo, hi, shared = self.memory
            flags = (1 if hi is not None else 0) | (2 if shared else 0)
            limits = bytes([flags]) + uleb(lo) + (uleb(hi) if hi is not None else b"")
            out += section(SEC_IMPORT, vec([name_bytes(mod) + name_bytes(name) + bytes([IMPORT_MEMORY]) + limits]))
        out += section(SEC_FUNCTION, vec([uleb(t) for t in type_of]))
        if self.exports:
            out += section(SEC_EXPORT, vec([name_bytes(n) + bytes([EXPORT_FUNC]) + uleb(i) for n, i in self.exports]))
        out += section(SEC_CODE, vec([f.body() for f in self.funcs]))
        return bytes(out)
