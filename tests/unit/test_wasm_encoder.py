"""The direct WebAssembly encoder and the matmul emitter: LEB128, module structure, validation by
node's engine, and numerics of emitted kernels run in node on ragged shapes."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from jit_core.ops import MatMul
from jit_core.reference import op_inputs
from jit_core.wasm.encoder import F32, I32, V128, Func, Module, sleb, uleb
from jit_core.wasm.matmul import WasmMatmulConfig, emit_matmul, scratch_bytes, work_units

NODE_CHECK = Path(__file__).with_name("wasm_node_check.mjs")
needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed (README setup installs it)")


def run_node(jobs: list[dict]) -> list[dict]:
    # Node 20 validates relaxed SIMD only behind this flag; Chromium has it on by default.
    out = subprocess.run(["node", "--experimental-wasm-relaxed-simd", str(NODE_CHECK)],
                         input=json.dumps({"jobs": jobs}), capture_output=True, text=True, check=True, timeout=120)
    return json.loads(out.stdout)


def job(binary: bytes, op: MatMul | None = None, cfg: WasmMatmulConfig | None = None, seed: int = 3) -> dict:
    run = None
    if op is not None and cfg is not None:
        run = {"op": op.to_dict(), "seed": seed, "threads": cfg.threads, "units": work_units(op, cfg),
               "scratchBytes": scratch_bytes(cfg)}
    return {"wasm": base64.b64encode(binary).decode(), "run": run}


def reference(op: MatMul, seed: int) -> np.ndarray:
    ins = op_inputs(op, seed)
    a = ins["A"].reshape(op.batch, op.M, op.K).astype(np.float64)
    b = ins["B"].reshape(op.batch, op.K, op.N).astype(np.float64)
    return (a @ b).ravel()


@pytest.mark.parametrize("n, encoded", [(0, b"\x00"), (127, b"\x7f"), (128, b"\x80\x01"), (624485, b"\xe5\x8e\x26")])
def test_uleb_matches_the_spec_examples(n, encoded):
    assert uleb(n) == encoded


@pytest.mark.parametrize("n, encoded", [(0, b"\x00"), (-1, b"\x7f"), (63, b"\x3f"), (64, b"\xc0\x00"), (-123456, b"\xc0\xbb\x78")])
def test_sleb_matches_the_spec_examples(n, encoded):
    assert sleb(n) == encoded


def test_module_layout_and_dedup_of_function_types():
    m = Module()
    m.import_memory("env", "memory", min_pages=1, max_pages=4, shared=True)
    for _ in range(2):
        f = Func((I32, I32), (I32,))
        f.get(0).get(1).op("i32.add")
        m.add(f, export="add" if not m.exports else None)
    binary = m.encode()
    assert binary[:8] == b"\x00asm\x01\x00\x00\x00"
    assert binary[8] == 1 and binary[9:12] == b"\x07\x01\x60"  # one type for both functions
    assert b"\x02\x03\x01\x04" in binary  # memory import: shared+max flags, min 1, max 4


def test_unbalanced_control_flow_is_refused_before_encoding():
    f = Func(())
    f.block()
    with pytest.raises(ValueError, match="unclosed"):
        f.body()
    with pytest.raises(ValueError, match="end without"):
        Func(()).end()
    with pytest.raises(ValueError, match="maximum"):
        Module().import_memory("env", "memory", min_pages=1, max_pages=None, shared=True)


def test_config_errors_are_value_errors():
    with pytest.raises(ValueError, match="multiple of 4"):
        WasmMatmulConfig(mr=4, nr=6, mb=16, nb=16, kb=16)
    with pytest.raises(ValueError, match="larger than cache tile"):
        WasmMatmulConfig(mr=4, nr=32, mb=16, nb=16, kb=16)


@needs_node
def test_node_validates_simd_relaxed_and_rejects_broken_modules():
    ok = Module()
    f = Func((), (V128,))
    f.v128_zero().v128_zero().v128_zero().simd("f32x4.relaxed_madd")
    ok.add(f, export="f")
    wrong_type = Module()
    g = Func((), (F32,))
    g.v128_zero()  # returns a v128 where an f32 is declared
    wrong_type.add(g)
    truncated = ok.encode()[:-3]
    answers = run_node([job(ok.encode()), job(wrong_type.encode()), job(truncated)])
    assert [a["valid"] for a in answers] == [True, False, False]
    assert answers[1]["error"]


CONFIGS = [
    WasmMatmulConfig(mr=4, nr=8, mb=16, nb=16, kb=16),
    WasmMatmulConfig(mr=2, nr=16, mb=16, nb=32, kb=8, unroll=4, pack_b=1, fma=1, threads=2),
    WasmMatmulConfig(mr=4, nr=8, mb=8, nb=8, kb=4, unroll=2, pack_b=1),
    WasmMatmulConfig(mr=8, nr=4, mb=32, nb=32, kb=64, unroll=2, fma=1),
    WasmMatmulConfig(mr=1, nr=32, mb=32, nb=64, kb=32, unroll=4, pack_b=1, threads=3),
]
SHAPES = [MatMul(17, 23, 19), MatMul(32, 32, 32), MatMul(5, 37, 70, batch=3), MatMul(1, 64, 33), MatMul(9, 6, 1)]


@needs_node
def test_emitted_kernels_validate_and_match_numpy_on_ragged_shapes():
    cases = [(op, cfg) for op in SHAPES for cfg in CONFIGS]
    answers = run_node([job(emit_matmul(op, cfg), op, cfg) for op, cfg in cases])
    bad = []
    for (op, cfg), ans in zip(cases, answers):
        if not ans["valid"] or ans["values"] is None:
            bad.append(f"{op.key()} {cfg}: {ans['error']}")
            continue
        err = np.abs(np.asarray(ans["values"]) - reference(op, 3))
        if not np.all(err <= 1e-5 * op.K + 1e-4):
            bad.append(f"{op.key()} {cfg}: max error {err.max()}")
    assert not bad, "\n".join(bad)


def test_edge_paths_are_emitted_only_when_a_tile_needs_them():
    even = emit_matmul(MatMul(64, 64, 64), WasmMatmulConfig(mr=4, nr=8, mb=32, nb=32, kb=32))
    ragged = emit_matmul(MatMul(63, 62, 64), WasmMatmulConfig(mr=4, nr=8, mb=32, nb=32, kb=32))
    assert len(even) < len(ragged)
