"""`jitfarm space`: sizes of each template's space for one op on one device, rule by rule."""

from __future__ import annotations

import re
from typing import Any

from rich.console import Console
from rich.table import Table

from jit_core.caps import DeviceCaps
from jit_core.ops import MatMul
from jit_core.templates import get_template
from jit_core.tvm_space import REDUCTION_LEVELS, SPATIAL_LEVELS, tvm_default_size

from farm.config.errors import UserError

_SHAPE = re.compile(r"^(?:(\d+)x)?(\d+)x(\d+)x(\d+)$")


def parse_op(text: str) -> MatMul:
    """'MxNxK' or 'BxMxNxK' (batched) -> MatMul; UserError naming the fix otherwise."""
    m = _SHAPE.match(text.strip().lower())
    if not m or int(m.group(2)) < 1 or int(m.group(3)) < 1 or int(m.group(4)) < 1:
        raise UserError(f"--op {text!r}: expected MxNxK or BxMxNxK with positive integers. Fix: e.g. --op 384x3072x768")
    b, M, N, K = (int(g) if g else 1 for g in m.groups())
    return MatMul(M, N, K, batch=b or 1)


def space_rows(op: MatMul, caps: DeviceCaps, templates: list[str]) -> list[dict[str, Any]]:
    """One dict per template: name, version, raw size, duplicates, size and its rules' report."""
    out = []
    for name in templates:
        tpl = get_template(name)
        space = tpl.space(op, caps)
        out.append({"template": tpl.name, "version": tpl.version, **space.report()})
    return out


def print_space(op: MatMul, caps: DeviceCaps, device: str, templates: list[str], out: Console) -> None:
    tvm = tvm_default_size(op)
    out.print(f"[bold]{op.shape_str()}[/] matmul on [bold]{device}[/] ({caps.execution_model}, "
              f"{caps.regs_per_thread} regs/thread, fingerprint {caps.fingerprint()})", highlight=False)
    for row in space_rows(op, caps, templates):
        table = Table(title=f"{row['template']} v{row['version']}: {row['raw_size']:,} raw -> "
                            f"{row['size']:,} after pruning", title_justify="left")
        for col, just in (("rule", "left"), ("source", "left"), ("removed", "right"), ("why", "left")):
            table.add_column(col, justify=just, overflow="fold")
        if row["duplicates"]:
            table.add_row("(canonical form)", "ours", f"{row['duplicates']:,}", "configs that differ only in parameters they ignore")
        for rule in row["rules"]:
            table.add_row(rule["name"], rule["source"], f"{rule['removed']:,}", rule["doc"])
        out.print(table)
    out.print(f"TVM-default-like space: {tvm.total:,} = {tvm.m_splits:,} splits of M={op.M} into {SPATIAL_LEVELS} levels "
              f"x {tvm.n_splits:,} of N={op.N} into {SPATIAL_LEVELS} x {tvm.k_splits:,} of K={op.K} into "
              f"{REDUCTION_LEVELS} x {tvm.unroll_variants} unroll variants (see jit_core/tvm_space.py)", highlight=False)
