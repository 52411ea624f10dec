"""Test-only templates: ``matmul-wgsl`` except for ops with M == 7, whose every config renders a
kernel that never finishes (unbounded WGSL loops), and ``matmul-wgsl`` except for ops with M == 5,
whose every config renders WGSL that does not compile (the job fails with class kernel).
Registered in the test process and, through Ray's ``worker_process_setup_hook``, in every worker
of the run."""

from __future__ import annotations

import dataclasses

from jit_core.ops import OpSpec
from jit_core.protocol import KernelSource
from jit_core.space import Config
from jit_core.templates import TEMPLATES, MatmulWGSL

SPIN_M = 7
BROKEN_M = 5

# llvmpipe (lavapipe) cuts every shader invocation's loops off after 65535 iterations in all
# (nested loops included), so an unbounded loop alone ends, with a wrong result, in milliseconds.
# Dispatched over 65535 x 64 invocations the same loop runs about 2.7e11 iterations: hours on a
# CPU, a hang for the farm. On other devices the loop alone never ends.
SPINS = """
@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<f32>;
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
@compute @workgroup_size(64) fn main() {
  var i = 0u;
  loop { i = i + 1u; C[i % 4u] = f32(i); if (A[0] > 2.0) { break; } }
}
"""
SPIN_GRID = (65535, 1, 1)


class SpinOnM7(MatmulWGSL):
    """matmul-wgsl, but M == 7 spins forever (A[0] is in [-1, 1), so the loop never breaks)."""

    name = "test-spin-on-m7"

    def render(self, op: OpSpec, config: Config) -> KernelSource:
        if op.M == SPIN_M:
            return KernelSource(SPINS, "main", SPIN_GRID, (64, 1, 1))
        return super().render(op, config)


class BrokenOnM5(MatmulWGSL):
    """matmul-wgsl, but no config of an op with M == 5 compiles."""

    name = "test-broken-on-m5"

    def render(self, op: OpSpec, config: Config) -> KernelSource:
        source = super().render(op, config)
        if op.M == BROKEN_M:
            return dataclasses.replace(source, code=source.code + "\nthis is not WGSL;\n")
        return source


def register() -> None:
    TEMPLATES[SpinOnM7.name] = SpinOnM7
    TEMPLATES[BrokenOnM5.name] = BrokenOnM5
