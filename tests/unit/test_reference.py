"""The shared PRNG (numpy == prng.js, bit for bit) and the reference check that judges candidates."""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from jit_core.ops import MatMul
from jit_core.reference import check_outputs, check_positions, expected_values, hash32, op_inputs, prng_f32

PRNG_JS = Path(__file__).resolve().parents[2] / "farm" / "harness" / "static" / "prng.js"

# Produced by prngF32 in farm/harness/static/prng.js under node 20.
KNOWN_SEED1_STREAM0 = [0.1204909086227417, 0.6678884029388428, 0.6225078105926514,
                       -0.8913165330886841, -0.581862211227417, -0.5409603118896484]
KNOWN_SEED7_STREAM1_AT1000 = [0.18463313579559326, -0.23162174224853516, -0.1650083065032959]


def _spec_value(seed: int, stream: int, i: int) -> float:
    """The module docstring's definition, in plain Python integers."""
    m = 0xFFFFFFFF
    x = (i * 0x9E3779B1 + stream * 0x85EBCA77 + seed * 0xC2B2AE3D + 0x27D4EB2F) & m
    x ^= x >> 16
    x = (x * 0x85EBCA6B) & m
    x ^= x >> 13
    x = (x * 0xC2B2AE35) & m
    x ^= x >> 16
    return (x >> 8) * 2.0**-23 - 1.0


def test_prng_matches_known_values_from_the_javascript_side():
    assert prng_f32(1, 0, 6).tolist() == KNOWN_SEED1_STREAM0
    assert prng_f32(7, 1, 3, offset=1000).tolist() == KNOWN_SEED7_STREAM1_AT1000
    assert hash32(1, 2, np.array([3])).tolist() == [508564541]


def test_prng_matches_its_written_definition():
    vals = prng_f32(3, 2, 50, offset=2**32 - 20)  # crosses the u32 index wrap
    assert vals.dtype == np.float32
    assert vals.tolist() == [_spec_value(3, 2, (2**32 - 20 + i) & 0xFFFFFFFF) for i in range(50)]


def test_prng_is_deterministic_in_range_and_stream_dependent():
    a = prng_f32(5, 0, 10000)
    assert np.array_equal(a, prng_f32(5, 0, 10000))
    assert np.array_equal(a[100:200], prng_f32(5, 0, 100, offset=100))
    assert a.min() >= -1.0 and a.max() < 1.0 and abs(float(a.mean())) < 0.05
    assert not np.array_equal(a, prng_f32(5, 1, 10000))
    assert not np.array_equal(a, prng_f32(6, 0, 10000))


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_prng_js_and_numpy_agree_bit_for_bit():
    script = (
        f"import {{ prngF32 }} from {json.dumps(PRNG_JS.as_uri())};"
        "console.log(JSON.stringify(Array.from(prngF32(42, 1, 2000, 12345))));"
    )
    out = subprocess.run(["node", "--input-type=module", "-e", script], capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(out.stdout) == prng_f32(42, 1, 2000, offset=12345).tolist()


def test_check_positions_cover_edges_and_are_deterministic():
    op = MatMul(127, 129, 65, batch=2)
    pos = check_positions(op, 64, seed=1)
    assert pos == check_positions(op, 64, seed=1) and pos == sorted(set(pos))
    assert all(0 <= p < op.output_size() for p in pos)
    last = op.M * op.N - 1
    assert {0, op.N - 1, last, last + op.M * op.N} <= set(pos)
    assert check_positions(MatMul(4, 4, 4), 0) == list(range(16))


def _full_reference(op: MatMul, seed: int) -> np.ndarray:
    ins = op_inputs(op, seed)
    a = ins["A"].reshape(op.batch, op.M, op.K).astype(np.float64)
    b = ins["B"].reshape(op.batch, op.K, op.N).astype(np.float64)
    return (a @ b).reshape(-1)


def test_expected_values_equal_a_full_matmul():
    op = MatMul(33, 17, 9, batch=2)
    pos = check_positions(op, 64, seed=3)
    assert np.allclose(expected_values(op, 3, pos), _full_reference(op, 3)[pos], rtol=0, atol=1e-12)


def test_check_outputs_accepts_f32_results_and_catches_one_wrong_value():
    op = MatMul(64, 48, 300)
    pos = check_positions(op, 64, seed=1)
    good = _full_reference(op, 1)[pos].astype(np.float32).tolist()
    ok = check_outputs(op, 1, pos, good)
    assert ok.ok and ok.n_checked == len(pos) and ok.max_abs_err < 1e-4
    bad = list(good)
    bad[len(bad) // 2] += 0.05
    res = check_outputs(op, 1, pos, bad)
    assert not res.ok and "1 of" in res.message and res.max_abs_err == pytest.approx(0.05, rel=1e-3)


def test_check_outputs_rejects_missing_short_and_non_finite_values():
    op = MatMul(8, 8, 8)
    pos = check_positions(op, 16)
    good = expected_values(op, 0, pos).tolist()
    assert not check_outputs(op, 0, pos, None).ok
    assert not check_outputs(op, 0, pos, good[:-1]).ok
    assert not check_outputs(op, 0, pos, good[:-1] + [float("nan")]).ok
    assert not check_outputs(op, 0, pos, [0.0] * len(pos)).ok


def test_expected_values_are_cached_but_callers_get_their_own_copy():
    op = MatMul(1, 768, 3072)
    pos = check_positions(op, 64, seed=1)
    first = expected_values(op, 1, pos)
    first[:] = 0.0  # must not poison the cache
    again = expected_values(op, 1, pos)
    assert np.any(again != 0.0)
