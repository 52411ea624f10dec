"""Pieces shared by the WGSL templates of the memory-bound ops (softmax, norm, eltwise, heads):
literals, the workgroup grid of a long 1-D launch, the limits every kernel must respect and the
workgroup-memory tree reduction of the row-wise kernels."""

from __future__ import annotations

from typing import Callable, Sequence

from ..caps import DeviceCaps
from ..space import Config, Param, Rule

MAX_THREADS = 256  # the same cap as the matmul templates' (nnJIT's)
GRID_X = 65535  # WebGPU's guaranteed maxComputeWorkgroupsPerDimension: longer launches fold into y
NEG = "-3.0e38"  # "minus infinity" that stays finite: exp(NEG - m) is 0 and NEG - NEG is 0, never NaN


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


def next_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def f32(x: float) -> str:
    """A WGSL float literal of ``x`` (9 significant digits: round-trips through f32)."""
    return format(float(x), ".9e")


def grid(workgroups: int) -> tuple[int, int, int]:
    """Dispatch grid for ``workgroups`` workgroups in a line: (x, y, 1) with x <= GRID_X; the
    kernel's linear id is ``wg.x + wg.y * GRID_X`` (see ``linear_id``)."""
    x = min(workgroups, GRID_X)
    return x, cdiv(workgroups, x), 1


def linear_id(workgroups: int) -> str:
    """WGSL expression of the linear workgroup id for a launch from ``grid(workgroups)``."""
    return "wg.x" if workgroups <= GRID_X else f"wg.x + wg.y * {GRID_X}u"


def vec_type(width: int) -> str:
    return "vec4<f32>" if width == 4 else "f32"


def limit_rules(caps: DeviceCaps, threads: Callable[[Config], tuple[int, int]], workgroups: Callable[[Config], int],
                operand_bytes: int) -> tuple[Rule, ...]:
    """Rules every kernel of these templates obeys: at most MAX_THREADS threads, the adapter's
    invocation and workgroup-size limits, the 2-D launch within maxComputeWorkgroupsPerDimension
    and operands within maxStorageBufferBindingSize. ``threads(c)`` is (x, y) of the workgroup."""
    max_x, max_y, _ = caps.max_workgroup_size
    max_wg = caps.max_workgroups_per_dimension
    return (
        Rule("max-256-threads", "ours", lambda c: threads(c)[0] * threads(c)[1] <= MAX_THREADS,
             f"at most {MAX_THREADS} threads per workgroup (as the matmul templates)"),
        Rule("max-invocations", "WebGPU", lambda c: threads(c)[0] * threads(c)[1] <= caps.max_invocations,
             f"threads per workgroup <= maxComputeInvocationsPerWorkgroup ({caps.max_invocations})"),
        Rule("workgroup-size-dims", "WebGPU", lambda c: threads(c)[0] <= max_x and threads(c)[1] <= max_y,
             f"workgroup x <= maxComputeWorkgroupSizeX ({max_x}), y <= maxComputeWorkgroupSizeY ({max_y})"),
        Rule("dispatch-limit", "WebGPU", lambda c: max(grid(workgroups(c))) <= max_wg,
             f"workgroups per dispatch dimension <= maxComputeWorkgroupsPerDimension ({max_wg})"),
        Rule("operands-fit-binding", "WebGPU", lambda c: operand_bytes <= caps.max_storage_buffer_binding_size,
             f"each operand fits maxStorageBufferBindingSize ({caps.max_storage_buffer_binding_size} bytes)"),
    )


def tree_reduce(tpr: int, arrays: Sequence[str], combine: Callable[[str, str], list[str]], *, indent: str = "  ") -> list[str]:
    """Workgroup-memory tree reduction over the ``tpr`` threads of each row (``tpr`` a power of
    two): each thread has stored its partials at ``arrays[k][slot]`` (slot = lid.y * tpr + t);
    after it ``arrays[k][lid.y * tpr]`` holds the row's result. ``combine(i, j)`` returns the
    WGSL lines that fold slot ``j`` into slot ``i``. Barriers sit in uniform control flow: every
    thread of the workgroup runs every step, whatever its row."""
    lines = [f"{indent}workgroupBarrier();"]
    s = tpr // 2
    while s >= 1:
        lines.append(f"{indent}if (t < {s}u) {{")
        lines += [f"{indent}  {line}" for line in combine("slot", f"slot + {s}u")]
        lines.append(f"{indent}}}")
        lines.append(f"{indent}workgroupBarrier();")
        s //= 2
    return lines


def enable_f16(*types: str) -> list[str]:
    """The ``enable f16;`` directive when any of the element types ``types`` is f16, else nothing
    (an f32 kernel's code does not change)."""
    return ["enable f16;"] if "f16" in types else []


def convert(expr: str, src: str, dst: str, vec: bool) -> str:
    """WGSL ``expr`` of element type ``src`` (f32 or f16; a vec4 of it when ``vec``) as ``dst``:
    unchanged when the two are the same, else a conversion."""
    return expr if src == dst else f"{f'vec4<{dst}>' if vec else dst}({expr})"


def act_expr(act: str, x: str, t: str) -> str:
    """WGSL of activation ``act`` (relu, gelu, silu) on expression ``x`` of type ``t`` (f32 or
    vec4<f32>): the formulas of ``jit_core.reference.activation``, GELU in its tanh form with tanh's
    argument clamped (some backends return NaN for large ones)."""
    if act == "relu":
        return f"max({x}, {t}(0.0))"
    if act == "gelu":
        return f"0.5 * {x} * (1.0 + tanh(clamp(0.7978845608 * ({x} + 0.044715 * {x} * {x} * {x}), {t}(-15.0), {t}(15.0))))"
    if act == "silu":
        return f"{x} / (1.0 + exp(-{x}))"
    raise ValueError(f"unknown activation {act!r}")


ROW_TPR = (1, 4, 16, 32, 64, 128, 256)  # threads per row
ROW_RPW = (1, 2, 4, 8, 16, 32, 64)  # rows per workgroup


def row_params(flag: str) -> tuple[Param, ...]:
    """The parameters of a row-wise kernel (softmax, norm): TPR, RPW, V and its own 0/1 ``flag``."""
    return (Param("TPR", ROW_TPR), Param("RPW", ROW_RPW), Param("V", (0, 1)), Param(flag, (0, 1)))


def row_kernel_rules(rows_total: int, cols: int, caps: DeviceCaps, output_elems: int) -> tuple[Rule, ...]:
    """``row_rules`` plus the adapter limits for a row-wise kernel of ``rows_total`` rows."""
    return row_rules(rows_total, cols, ROW_TPR, ROW_RPW) + limit_rules(
        caps, lambda c: (c["TPR"], c["RPW"]), lambda c: cdiv(rows_total, c["RPW"]), 4 * output_elems)


def check_row_config(kind: str, cols: int, config: Config, flag: str) -> tuple[int, int, int, int]:
    """(TPR, RPW, V, flag) of a row-wise kernel's config, validated: TPR a power of 2, RPW >= 1,
    V and the kernel's own 0/1 ``flag`` parameter, V=1 only when cols % 4 == 0."""
    try:
        tpr, rpw, v, f = (config[n] for n in ("TPR", "RPW", "V", flag))
    except KeyError as e:
        raise ValueError(f"{kind} config misses parameter {e}") from None
    if tpr < 1 or tpr & (tpr - 1) or rpw < 1 or v not in (0, 1) or f not in (0, 1):
        raise ValueError(f"bad {kind} config {config.key()} (TPR a power of 2, RPW >= 1, V and {flag} 0 or 1)")
    if v and cols % 4:
        raise ValueError(f"V=1 needs cols % 4 == 0, got cols={cols}")
    return tpr, rpw, v, f


def row_rules(rows_total: int, cols: int, tpr_values: Sequence[int], rpw_values: Sequence[int]) -> tuple[Rule, ...]:
    """Pruning of the row-wise kernels' grid: TPR threads per row, RPW rows per workgroup, V=1
    reading vec4s (needs cols % 4 == 0)."""
    rpw_cap = next_pow2(rows_total)

    def tpr_cap(c: Config) -> int:
        return next_pow2(cols // 4 if c["V"] else cols)

    def most_threads(c: Config) -> int:  # the largest workgroup the other rules leave
        return max(v for v in tpr_values if v <= tpr_cap(c)) * max(v for v in rpw_values if v <= rpw_cap)

    return (
        Rule("vec4-rows", "ours", lambda c: c["V"] == 0 or cols % 4 == 0,
             "V=1 (vec4 loads and stores) only when cols % 4 == 0, so every row starts on a vec4"),
        Rule("threads-fit-row", "ours", lambda c: c["TPR"] <= tpr_cap(c),
             "no more threads per row than the row has elements (vec4s with V=1), rounded up to a power of 2"),
        Rule("rows-fit-problem", "ours", lambda c: c["RPW"] <= rpw_cap,
             f"no more rows per workgroup than the op has, rounded up to a power of 2 (RPW <= {rpw_cap})"),
        Rule("min-threads", "ours", lambda c: c["TPR"] * c["RPW"] >= min(32, most_threads(c)),
             "at least 32 threads per workgroup (a SIMD group), unless the op is smaller"),
    )
