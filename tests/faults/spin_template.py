"""A test-only template: ``matmul-wgsl`` except for ops with M == 7, whose every config renders a
kernel that never finishes (an unbounded WGSL loop). Registered in the test process and, through
Ray's ``worker_process_setup_hook``, in every worker of the run."""

from __future__ import annotations

from jit_core.ops import OpSpec
from jit_core.protocol import KernelSource
from jit_core.space import Config
from jit_core.templates import TEMPLATES, MatmulWGSL

SPIN_M = 7

SPINS = """
@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<f32>;
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
@compute @workgroup_size(1) fn main() {
  var i = 0u;
  loop { i = i + 1u; C[i % 4u] = f32(i); if (A[0] > 2.0) { break; } }
}
"""


class SpinOnM7(MatmulWGSL):
    """matmul-wgsl, but M == 7 spins forever (A[0] is in [-1, 1), so the loop never breaks)."""

    name = "test-spin-on-m7"

    def render(self, op: OpSpec, config: Config) -> KernelSource:
        if op.M == SPIN_M:
            return KernelSource(SPINS, "main", (1, 1, 1), (1, 1, 1))
        return super().render(op, config)


def register() -> None:
    TEMPLATES[SpinOnM7.name] = SpinOnM7
