"""matmul-wgsl-gemv: the space is empty for M > 8 and, for M <= 8, holds dozens of configs within
the adapter's limits (SwiftShader-like and NVIDIA-like caps), ordered so that configs with enough
workgroups for a big GPU come first; render emits the fast path (no guards, vec4) exactly when the
shape allows it, is deterministic and fast."""

import re

import pytest

from jit_core.ops import MatMul
from jit_core.space import SOURCES, Config
from jit_core.templates.matmul_gemv_wgsl import MAX_ROWS, MatmulGemvWGSL
from tests.caps_profiles import COMPAT, NVIDIA, SWIFTSHADER


T = MatmulGemvWGSL()
DECODE = [MatMul(1, 4096, 4096), MatMul(1, 768, 3072), MatMul(8, 1000, 300), MatMul(4, 4096, 4096)]
SMALL = [MatMul(1, 64, 64), MatMul(3, 37, 50), MatMul(1, 32, 40, batch=2), MatMul(2, 5, 3), MatMul(1, 1, 1)]
GUARDS = re.compile(r"min\(|if \(e_|if \(ec_|for \(var k = ")


def _wgsl_ints(code: str, name: str) -> list[int]:
    return [int(x) for x in re.findall(rf"{name}: array<[^,>]+>?, (\d+)>", code)]


@pytest.mark.parametrize("op", [MatMul(9, 64, 64), MatMul(64, 4096, 4096), MatMul(16, 8, 8, batch=3)],
                         ids=lambda op: op.shape_str())
def test_space_is_empty_for_more_than_8_rows_and_says_why(op):
    space = T.space(op, NVIDIA)
    assert len(space) == 0
    assert space.removed["gemv-rows"] == space.raw_size
    rule = next(r for r in space.rules if r.name == "gemv-rows")
    assert rule.source == "ours" and str(MAX_ROWS) in rule.doc
    with pytest.raises(ValueError, match="M <= 8"):
        T.render(op, Config(VN=4, WX=16, WK=4, KU=4))


@pytest.mark.parametrize("caps", [SWIFTSHADER, NVIDIA, COMPAT], ids=["swiftshader", "nvidia", "compat"])
@pytest.mark.parametrize("op", DECODE + SMALL, ids=lambda op: op.shape_str())
def test_every_config_respects_the_adapter_limits(op, caps):
    space = T.space(op, caps)
    assert len(space) > 0
    for c in space:
        k = T.render(op, c)
        x, y, z = k.workgroup_size
        assert (x, y, z) == (c["WX"], c["WK"], 1)
        assert x * y <= min(256, caps.max_invocations)
        assert x <= caps.max_workgroup_size[0] and y <= caps.max_workgroup_size[1]
        shared = _wgsl_ints(k.code, "R")
        elem_bytes = 16 if "array<vec4<f32>, " in k.code else 4
        assert (shared[0] * elem_bytes if shared else 0) <= caps.max_workgroup_storage
        assert bool(shared) == (c["WK"] > 1)
        assert max(k.workgroups) <= caps.max_workgroups_per_dimension
        assert k.workgroups == (-(-op.N // (c["WX"] * c["VN"])), 1, op.batch)
        assert op.M * c["VN"] + c["KU"] * c["VN"] + op.M * c["KU"] <= caps.regs_per_thread


@pytest.mark.parametrize("op", DECODE, ids=lambda op: op.shape_str())
def test_decode_shapes_offer_dozens_of_configs(op):
    for caps in (SWIFTSHADER, NVIDIA):
        assert 24 <= len(T.space(op, caps)) <= 128


def test_smaller_adapters_prune_by_their_limits():
    op = MatMul(8, 4096, 4096)
    compat = T.space(op, COMPAT)  # 128 invocations, 16 KiB workgroup storage
    assert compat.removed["max-invocations"] > 0 and compat.removed["workgroup-storage"] > 0
    assert max(c["WX"] * c["WK"] for c in compat) == 128
    big = T.space(op, NVIDIA)
    assert max(c["WX"] * c["WK"] for c in big) == 256  # nnJIT's cap, though the adapter allows 1024
    assert big.removed["max-256-threads"] > 0
    few_regs = T.space(op, NVIDIA.with_overrides({"regs_per_thread": 64}))
    assert few_regs.removed["registers-per-thread"] > 0


@pytest.mark.parametrize("op", DECODE + SMALL, ids=lambda op: op.shape_str())
def test_space_report_documents_every_rule_with_its_source(op):
    r = T.space(op, SWIFTSHADER).report()
    assert r["size"] + r["duplicates"] + sum(r["removed"].values()) == r["raw_size"]
    assert {x["source"] for x in r["rules"]} <= set(SOURCES)
    assert all(x["doc"] and "\n" not in x["doc"] for x in r["rules"])


def test_vec4_columns_when_n_divides_by_4_scalar_otherwise():
    assert {c["VN"] for c in T.space(MatMul(1, 4096, 4096), NVIDIA)} == {4, 8}
    assert {c["VN"] for c in T.space(MatMul(3, 37, 50), NVIDIA)} == {1, 2, 4}
    vec = T.render(MatMul(1, 4096, 4096), Config(VN=8, WX=16, WK=8, KU=4)).code
    assert "var<storage, read> B: array<vec4<f32>>" in vec and "var<storage, read_write> C: array<vec4<f32>>" in vec
    assert "var<storage, read> A: array<vec4<f32>>" in vec  # K % 4 == 0 and KU % 4 == 0
    scalar = T.render(MatMul(3, 37, 50), Config(VN=4, WX=16, WK=8, KU=4)).code
    assert "B: array<f32>" in scalar and "C: array<f32>" in scalar and "A: array<f32>" in scalar
    assert "A: array<f32>" in T.render(MatMul(1, 4096, 4096), Config(VN=4, WX=16, WK=8, KU=2)).code


def test_divisible_shape_renders_the_fast_path_without_guards():
    for op in (MatMul(1, 4096, 4096), MatMul(4, 4096, 4096)):
        for c in T.space(op, NVIDIA):
            code = T.render(op, c).code
            assert not GUARDS.search(code), c.key()
            assert f"const K = {op.K}u;" in code


def test_ragged_shape_renders_guarded_loads_stores_and_k_tail():
    op = MatMul(3, 37, 50)
    code = T.render(op, Config(VN=2, WX=8, WK=4, KU=4)).code
    assert "let be_0 = min(e_0, 36u);" in code  # clamped column for loads
    assert "if (ec_0 < 37u) { C[ci_0] = s_0; }" in code  # guarded store after the reduction
    assert "for (var k = 48u + ky; k < K; k = k + 4u)" in code  # 50 = 3*16 + 2 rows of tail
    direct = T.render(op, Config(VN=4, WX=16, WK=1, KU=2)).code
    assert "if (e_0 < 37u) { C[e_0] = acc_0_0; }" in direct and "workgroupBarrier" not in direct


def test_guards_only_for_the_dimension_that_needs_them():
    n_only = T.render(MatMul(1, 4100, 4096), Config(VN=8, WX=16, WK=8, KU=4)).code  # 4100 % 128 != 0
    assert "min(e_0" in n_only and "for (var k = " not in n_only
    k_only = T.render(MatMul(1, 4096, 4100), Config(VN=8, WX=16, WK=8, KU=4)).code  # 4100 % 32 != 0
    assert "min(" not in k_only and "if (ec_" not in k_only and "for (var k = 4096u + ky;" in k_only


def test_batched_op_offsets_by_workgroup_z():
    code = T.render(MatMul(1, 32, 40, batch=2), Config(VN=4, WX=8, WK=4, KU=4)).code
    assert "let a_base = wg.z * 10u;" in code  # vec4 units: 1*40/4
    assert "let b_base = wg.z * 320u;" in code and "let c_base = wg.z * 8u;" in code


def test_barriers_are_reached_by_every_thread():
    """Every workgroupBarrier is at function level: no branch or loop around it, no early return.
    One barrier for WK <= 8 (single-stage reduction), two for WK > 8 (two-stage), none for WK 1."""
    for op in DECODE + SMALL:
        for c in [*T.space(op, SWIFTSHADER), *T.space(op, NVIDIA)]:
            code = T.render(op, c).code
            assert "return" not in code
            depth = 0
            for line in code.splitlines():
                s = line.strip()
                if s.startswith("workgroupBarrier"):
                    assert depth == 1, c.key()
                depth += s.count("{") - s.count("}")
            assert code.count("workgroupBarrier") == (0 if c["WK"] == 1 else 1 if c["WK"] <= 8 else 2)


def test_two_stage_reduction_bounds_the_serial_sum():
    """WK=64: 8 groups of 8 partials added in place, then 8 group sums per output (not 63 in a row)."""
    code = T.render(MatMul(1, 4096, 4096), Config(VN=4, WX=4, WK=64, KU=4)).code
    assert "let x_0 = (q_0 / 4u) * 32u + q_0 % 4u;" in code and "if (q_0 < 32u)" in code
    assert code.count("R[x_0 + ") == 7
    stage2 = next(line for line in code.splitlines() if "let s_0 = " in line)
    assert stage2.count("R[") == 8 and "R[o_0 + 224u]" in stage2
    small = T.render(MatMul(1, 4096, 4096), Config(VN=4, WX=32, WK=8, KU=4)).code
    assert "q_0" not in small and next(line for line in small.splitlines() if "let s_0 = " in line).count("R[") == 8


def test_gpu_and_cpu_adapters_get_their_own_pruning():
    op = MatMul(1, 4096, 4096)
    gpu, cpu = T.space(op, NVIDIA), T.space(op, SWIFTSHADER)
    assert max(c["WX"] * c["VN"] for c in gpu) == 64 and gpu.removed["gpu-narrow-workgroups"] > 0
    assert max(c["WX"] * c["VN"] for c in cpu) > 64 and cpu.removed["gpu-narrow-workgroups"] == 0
    assert max(c["WK"] for c in cpu) == 16 and cpu.removed["cpu-short-k-split"] > 0
    assert max(c["WK"] for c in gpu) == 128


def test_every_shape_with_at_most_8_rows_has_configs():
    for op in (MatMul(1, 1, 1), MatMul(8, 1, 1), MatMul(2, 5, 1), MatMul(1, 3, 5), MatMul(8, 7, 3, batch=4)):
        for caps in (SWIFTSHADER, NVIDIA, COMPAT):
            assert len(T.space(op, caps)) > 0, (op, caps.vendor)


def test_gpu_prior_puts_configs_with_enough_workgroups_first():
    for op in (MatMul(1, 4096, 4096), MatMul(1, 11008, 4096), MatMul(1, 4096, 11008)):
        space = T.space(op, NVIDIA)
        head = space.configs[:8]
        assert all(op.N // (c["WX"] * c["VN"]) >= 100 for c in head), [c.key() for c in head]
    # The best config measured on an H200 for all three Llama-2-7B decode shapes comes first.
    assert T.space(MatMul(1, 4096, 4096), NVIDIA).configs[0] == Config(VN=4, WX=4, WK=64, KU=4)


def test_cpu_prior_puts_few_wide_workgroups_first():
    space = T.space(MatMul(1, 4096, 4096), SWIFTSHADER)
    for c in space.configs[:4]:
        assert c["VN"] == 8 and 4096 // (c["WX"] * c["VN"]) <= 16 and c["WK"] <= 2, c.key()


def test_render_is_deterministic():
    op = MatMul(3, 37, 50, batch=2)
    for c in T.space(op, NVIDIA):
        assert T.render(op, c) == T.render(op, Config.from_key(c.key()))
    assert T.space(MatMul(1, 4096, 4096), NVIDIA).configs == T.space(MatMul(1, 4096, 4096), NVIDIA).configs


def test_render_rejects_incomplete_configs():
    with pytest.raises(ValueError, match="misses"):
        T.render(MatMul(1, 8, 8), Config(VN=4))
    with pytest.raises(ValueError, match="bad"):
        T.render(MatMul(1, 8, 8), Config(VN=0, WX=16, WK=4, KU=4))


def test_template_interface_matches_the_scalar_template():
    assert (T.name, T.backend, T.op_kind) == ("matmul-wgsl-gemv", "webgpu", "matmul") and T.version
    k = T.render(MatMul(1, 64, 64), Config(VN=4, WX=16, WK=4, KU=4))
    assert k.entry == "main" and "@group(0) @binding(0) var<storage, read> A" in k.code
    assert "@group(0) @binding(1) var<storage, read> B" in k.code
    assert "@group(0) @binding(2) var<storage, read_write> C" in k.code
