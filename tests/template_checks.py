"""Correctness checks of a template's configs on a real device, shared by the template tests."""

from __future__ import annotations

from jit_core.ops import MatMul
from jit_core.protocol import MeasureSpec, make_batch
from jit_core.reference import check_outputs, check_positions
from jit_core.space import Config

ONE_RUN = MeasureSpec(warmup=0, samples=1, min_sample_ms=0.0, max_reps=1)


def assert_all_correct(driver, template, op: MatMul, configs: list[Config], *, seed: int,
                       count: int = 0, chunk: int = 16) -> None:
    """Render every config, run them ``chunk`` at a time on ``driver`` and assert each compiled,
    ran and matched the reference at ``check_positions(op, count, seed)`` (count 0: everywhere)."""
    positions = check_positions(op, count, seed)
    failures = []
    for start in range(0, len(configs), chunk):
        part = configs[start : start + chunk]
        kernels = [(f"c{start + i}", template.render(op, c)) for i, c in enumerate(part)]
        batch = make_batch(op, kernels, seed=seed, measure=ONE_RUN, check_positions=positions)
        for c, res in zip(part, driver.run_batch(batch)):
            if not res.ok:
                failures.append(f"{c.key()}: {res.error_class}: {(res.error or '')[:300]}")
                continue
            check = check_outputs(op, seed, positions, res.values)
            if not check.ok:
                failures.append(f"{c.key()}: wrong result: {check.message}")
    assert not failures, f"{len(failures)} of {len(configs)} configs failed on {op.key()}:\n" + "\n".join(failures)
