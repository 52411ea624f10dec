"""matmul-wgsl-vec4: the lite space respects the device's limits and its documented rules, is
ordered by the prior, and render emits vec4 code, bounds checks exactly when the shape needs them,
barriers only in uniform control flow, deterministically and fast."""

import re

import pytest

from jit_core.ops import MatMul
from jit_core.space import SOURCES, Config
from jit_core.templates.matmul_vec4_wgsl import NNJIT_MAX_THREADS, MatmulVec4WGSL, render_wgsl
from tests.caps_profiles import ALL_CAPS, COMPAT, LLVMPIPE, NVIDIA, SWIFTSHADER

CAPS_IDS = ["swiftshader", "llvmpipe", "nvidia", "compat"]

SHAPES = [
    MatMul(128, 128, 128), MatMul(1, 768, 3072), MatMul(127, 129, 65), MatMul(33, 17, 9),
    MatMul(64, 32, 48, batch=2), MatMul(64, 64, 60), MatMul(4, 4096, 4096), MatMul(4096, 4096, 4096),
]
T = MatmulVec4WGSL()
BOUNDS_CHECK = re.compile(r"select\(|min\(|(?<!k0 )< (M|N|K|N4|K4)\b")  # "k0 < K" is the K-slice loop
WORKGROUP_DECL = re.compile(r"var<workgroup> \w+: (.+);")
ARRAY_TYPE = re.compile(r"array<(.+), (\d+)>")
WORKGROUPS_PER_DIM = 65535


def _cfg(**kw: int) -> Config:
    base = dict(WX=16, WY=8, TM=8, TN=8, BK=16, SH=1, PF=0, KS=0, GS=1, SK=1)
    base.update(kw)
    return Config(base)


def _bm(c: Config) -> int:
    return c["TM"] if c["KS"] else c["WY"] * c["TM"]


def _type_bytes(t: str) -> int:
    """Bytes of a WGSL type among f32, vec4<f32> and (nested) fixed-size arrays of them."""
    if m := ARRAY_TYPE.fullmatch(t):
        return _type_bytes(m.group(1)) * int(m.group(2))
    return {"f32": 4, "vec4<f32>": 16}[t]


def _workgroup_bytes(code: str) -> int:
    decls = WORKGROUP_DECL.findall(code)
    assert decls or "var<workgroup>" not in code
    return sum(_type_bytes(t) for t in decls)


@pytest.mark.parametrize("caps", ALL_CAPS, ids=CAPS_IDS)
@pytest.mark.parametrize("op", SHAPES, ids=lambda op: op.shape_str())
def test_every_config_of_the_lite_space_respects_the_adapter_limits(op, caps):
    space = T.space(op, caps)
    assert 0 < len(space) <= 200, len(space)
    for c in space:
        k = T.render(op, c)
        x, y, z = k.workgroup_size
        assert (x, y, z) == (c["WX"], c["WY"], 1)
        assert x * y <= min(NNJIT_MAX_THREADS, caps.max_invocations)
        assert x <= caps.max_workgroup_size[0] and y <= caps.max_workgroup_size[1]
        assert _workgroup_bytes(k.code) <= caps.max_workgroup_storage, c.key()
        assert c["TM"] * c["TN"] + c["TM"] + c["TN"] <= caps.regs_per_thread
        assert k.workgroups == (-(-op.N // (c["WX"] * c["TN"])), -(-op.M // _bm(c)), op.batch)
        assert max(k.workgroups) <= caps.max_workgroups_per_dimension
        assert f"@workgroup_size({x}, {y}, 1)" in k.code


def test_storage_limit_prunes_differently_for_swiftshader_and_nvidia_caps():
    op = MatMul(4096, 4096, 4096)
    small, big = T.space(op, SWIFTSHADER), T.space(op, NVIDIA)
    # BK 32 with a 256x64 block: 41.5 KiB of tiles fits 48 KiB (NVIDIA) but not 32 KiB (SwiftShader)
    c = _cfg(WX=8, WY=32, TM=8, TN=8, BK=32)
    assert _workgroup_bytes(T.render(op, c).code) == (32 * (256 + 4) + 32 * 64) * 4
    assert small.rejected_by(c) == "workgroup-storage" and big.rejected_by(c) is None
    assert max(_workgroup_bytes(T.render(op, x).code) for x in big) > 32768
    assert max(_workgroup_bytes(T.render(op, x).code) for x in small) <= 32768


@pytest.mark.parametrize("op", SHAPES, ids=lambda op: op.shape_str())
def test_space_report_counts_add_up_and_every_rule_is_documented(op):
    r = T.space(op, NVIDIA).report()
    assert r["raw_size"] == 4 * 6 * 4 * 2 * 3 * 2 * 2 * 2 * 2 * 4
    assert r["size"] + r["duplicates"] + sum(r["removed"].values()) == r["raw_size"]
    assert {x["source"] for x in r["rules"]} <= set(SOURCES)
    assert all(len(x["doc"]) > 20 for x in r["rules"])


def test_thread_cap_is_nnjits_256_by_default_and_an_option():
    op = MatMul(4096, 4096, 4096)
    c = _cfg(WX=32, WY=16, TM=4, TN=8)  # 512 threads, 64x256 block
    assert T.space(op, NVIDIA).rejected_by(c) == "max-threads"
    wide = MatmulVec4WGSL(max_threads=1024)
    assert wide.space(op, NVIDIA).rejected_by(c) is None
    assert max(x["WX"] * x["WY"] for x in wide.space(op, NVIDIA)) > 256
    assert wide.space(op, SWIFTSHADER).rejected_by(c) == "max-invocations"  # the adapter's limit still holds


def test_nnjit_and_our_rules_are_applied():
    op = MatMul(128, 128, 128)
    space = T.space(op, NVIDIA)
    assert all(c["WX"] >= 4 and c["WY"] >= 4 for c in space)  # >= 4 threads per axis (M is not skinny)
    assert all(c["WX"] * c["WY"] >= 32 for c in space)
    assert all(c["TN"] % 4 == 0 and 2 * c["TM"] >= c["TN"] for c in space)
    assert all(c["SH"] == 1 and c["KS"] == 0 for c in space)  # a GPU and M > 8: tiled only
    assert space.rejected_by(_cfg(WY=2, TM=8)) == "min-4-threads-per-axis"
    assert space.rejected_by(_cfg(TM=2, TN=8)) == "micro-tile-aspect"
    assert space.rejected_by(_cfg(SH=0)) == "direct-on-cpu-or-skinny-m"
    assert space.rejected_by(_cfg(SH=0, KS=1)) == "split-k-for-skinny-m"
    assert space.rejected_by(_cfg(WX=32, WY=4, TM=2, TN=8, BK=16)) in ("micro-tile-aspect", "block-aspect")
    few_regs = T.space(op, NVIDIA.with_overrides({"regs_per_thread": 30}))
    assert few_regs.removed["registers-per-thread"] > 0
    assert max(c["TM"] * c["TN"] for c in few_regs) <= 16


def test_prefetch_only_on_gpus_and_direct_kernels_only_on_cpus_or_skinny_m():
    op = MatMul(256, 256, 256)
    gpu, cpu = T.space(op, NVIDIA), T.space(op, LLVMPIPE)
    assert {c["PF"] for c in gpu} == {0, 1} and {c["PF"] for c in cpu} == {0}
    assert {c["SH"] for c in gpu} == {1}
    assert cpu.removed["prefetch-on-gpus"] > 0


def test_space_has_no_duplicates_and_unused_params_are_canonical():
    space = T.space(MatMul(8, 768, 768), NVIDIA)
    assert len(set(space.configs)) == len(space)
    assert all(c["PF"] == 0 for c in space if c["SH"] == 0)
    assert all(c["KS"] == 0 for c in space if c["SH"] == 1)
    assert {(c["SH"], c["KS"]) for c in space} == {(1, 0), (0, 0), (0, 1)}


def test_decode_gemv_gets_split_k_and_direct_configs_one_row_per_block():
    op = MatMul(1, 768, 3072)
    for caps in ALL_CAPS:
        space = T.space(op, caps)
        assert {_bm(c) for c in space} == {1}
        assert {(c["SH"], c["KS"]) for c in space} == {(0, 0), (0, 1)}
    gpu = T.space(op, NVIDIA)
    assert 20 <= len(gpu) <= 120
    assert gpu.configs[0]["KS"] == 1 and gpu.configs[0]["WY"] >= 4


def test_block_tiles_are_no_larger_than_the_problem_needs():
    small = T.space(MatMul(33, 17, 9), SWIFTSHADER)
    assert max(_bm(c) for c in small) <= 64 and max(c["WX"] * c["TN"] for c in small) <= 32
    big = T.space(MatMul(4096, 4096, 4096), NVIDIA)
    assert min(_bm(c) * c["WX"] * c["TN"] for c in big) >= 64 * 64  # tiles under 64x64 waste a big problem


def test_gpu_prior_puts_platform_md_best_config_first_for_big_problems():
    space = T.space(MatMul(4096, 4096, 4096), NVIDIA)
    first = space.configs[0]
    assert (first["WX"], first["WY"], first["TM"], first["TN"], first["BK"], first["SH"]) == (16, 8, 8, 8, 16, 1)
    # then its twins in grouped launch order (GS=8, offered on grids this large) and with prefetch
    assert list(space.configs[1:3]) == [first.replace(GS=8), first.replace(PF=1)]


def test_gpu_prior_puts_smaller_tiles_first_for_small_problems():
    big = T.space(MatMul(4096, 4096, 4096), NVIDIA).configs[0]
    small = T.space(MatMul(128, 128, 128), NVIDIA).configs[0]
    assert _bm(small) * small["WX"] * small["TN"] < _bm(big) * big["WX"] * big["TN"]


def test_cpu_prior_starts_with_what_is_fastest_on_lavapipe():
    """Measured on lavapipe at 256^3: direct kernels with 8x8 micro-tiles lead (6.8 GFLOP/s, the
    best tiled one 4.2), every TM*TN < 32 config trails by 2x or more."""
    for caps in (LLVMPIPE, SWIFTSHADER):
        space = T.space(MatMul(256, 256, 256), caps)
        head = space.configs[:8]
        assert all(c["SH"] == 0 and c["TM"] == 8 and c["TN"] == 8 for c in head)
        assert all(c["TM"] * c["TN"] >= 32 for c in space)


def test_divisible_shape_renders_without_bounds_checks():
    op = MatMul(256, 256, 256)
    for caps in (NVIDIA, LLVMPIPE):
        for c in T.space(op, caps):
            code = T.render(op, c).code
            assert not BOUNDS_CHECK.search(code), c.key()
            assert "const M = 256u;" in code and "const K = 256u;" in code


def test_ragged_shape_renders_clamped_loads_zero_filled_k_and_masked_stores():
    op = MatMul(127, 129, 65)
    for c in T.space(op, NVIDIA):
        code = T.render(op, c).code
        assert "< M" in code and "< N" in code and "min(" in code, c.key()
        assert "array<f32>" in code and "array<vec4<f32>>" not in code  # K, N not multiples of 4
        assert "select(0.0, A[" in code  # the k tail of the A tile is zero-filled


def test_guards_only_for_the_dimensions_that_need_them():
    code = T.render(MatMul(100, 256, 256), _cfg()).code  # BM = 64 does not divide M; N and K divide
    assert "< M" in code and "min(row0" in code
    assert not re.search(r"(?<!k0 )< (N|N4|K|K4)\b", code) and "select(" not in code
    code = T.render(MatMul(128, 256, 72), _cfg()).code  # only K has a tail (72 % 16 = 8)
    assert "select(vec4<f32>(0.0), A[" in code and "select(vec4<f32>(0.0), B[" in code
    assert not re.search(r"< (M|N|N4)\b", code)


def test_vec4_bindings_when_the_shape_allows_and_the_drivers_binding_types():
    code = T.render(MatMul(64, 64, 64), _cfg(WY=4)).code
    assert "@group(0) @binding(0) var<storage, read> A: array<vec4<f32>>;" in code
    assert "@group(0) @binding(1) var<storage, read> B: array<vec4<f32>>;" in code
    assert "@group(0) @binding(2) var<storage, read_write> C: array<vec4<f32>>;" in code
    code = T.render(MatMul(64, 64, 62), _cfg(WY=4, BK=8)).code  # K % 4 != 0: A scalar, B/C vec4
    assert "A: array<f32>;" in code and "B: array<vec4<f32>>;" in code and "C: array<vec4<f32>>;" in code
    code = T.render(MatMul(64, 66, 64), _cfg(WY=4)).code  # N % 4 != 0: B/C scalar
    assert "A: array<vec4<f32>>;" in code and "B: array<f32>;" in code and "C: array<f32>;" in code


def test_named_vec4_accumulators_and_fully_unrolled_inner_loop():
    code = T.render(MatMul(256, 256, 256), _cfg()).code
    assert "var acc_7_1 = vec4<f32>(0.0);" in code and "acc_8_" not in code and "acc_7_2" not in code
    assert "var<function>" not in code and not re.search(r"var \w+: array<", code)  # no local arrays
    assert code.count("fma(") == 16 * 8 * 2  # BK x TM x TN/4 vec4 FMAs, straight-line
    assert len(re.findall(r"for \(", code)) == 1  # only the loop over K slices
    # vec4 reads of the transposed A tile: rows of (64 + 4) / 4 vec4, k a literal, the row the same at every k
    assert "var<workgroup> As: array<array<vec4<f32>, 17>, 16>;" in code
    assert "let a1 = As[15u][ty * 2u + 1u];" in code
    # no stores to vector components in workgroup memory: every store names [k][m] and nothing more
    stores = re.findall(r"^\s*(?:As|Bs)((?:\[[^\[\]]*\])+)(\.[xyzw])? = ", code, re.M)
    assert stores and all(sub.count("[") == 2 and not comp for sub, comp in stores)


def test_prefetch_double_buffers_with_one_barrier_per_slice():
    op = MatMul(256, 256, 256)
    plain = T.render(op, _cfg()).code
    pf = T.render(op, _cfg(PF=1)).code
    assert plain.count("workgroupBarrier()") == 2
    assert pf.count("workgroupBarrier()") == 2  # prologue + one in the loop
    assert "var<workgroup> As: array<array<array<vec4<f32>, 17>, 16>, 2>;" in pf  # 2 buffers x 16 x (64 + 4) / 4
    assert "var<workgroup> As: array<array<vec4<f32>, 17>, 16>;" in plain
    assert "var pb3_0: vec4<f32>;" in pf and "if (more) {" in pf


def test_split_k_adds_the_partial_sums_of_its_thread_rows_through_workgroup_memory():
    op = MatMul(1, 768, 3072)
    c = Config(WX=16, WY=8, TM=1, TN=4, BK=16, SH=0, PF=0, KS=1)
    k = T.render(op, c)
    assert k.workgroups == (12, 1, 1) and k.workgroup_size == (16, 8, 1)
    assert "var<workgroup> red: array<vec4<f32>, 128>;" in k.code  # one vec4 per thread
    assert "for (var kb = ty * 16u; kb < 3072u; kb = kb + 128u) {" in k.code  # 8 rows share K
    assert k.code.count("workgroupBarrier()") == 1 and "red[base + 112u]" in k.code  # ty = 7's part
    tail = T.render(MatMul(1, 768, 3080), c).code  # 3080 = 192 * 16 + 8: chunk 192 goes to ty 0
    assert "if (ty == 0u) {" in tail and "kb < 3072u" in tail


def test_batched_op_offsets_by_workgroup_z():
    code = T.render(MatMul(64, 32, 48, batch=2), _cfg(WX=8, WY=4, TN=4)).code
    assert "let a_base = wg.z * 768u;" in code and "let c_base = wg.z * 512u;" in code  # in vec4 units


@pytest.mark.parametrize("op", [MatMul(127, 129, 65), MatMul(8, 768, 3072), MatMul(2, 64, 60)], ids=lambda op: op.shape_str())
def test_barriers_are_only_in_uniform_control_flow(op):
    """Every workgroupBarrier sits at the top level of main or of a loop whose bounds are uniform
    (the K-slice loop): never inside an if, nor in a loop that depends on the thread id."""
    for caps in (NVIDIA, LLVMPIPE):
        for c in T.space(op, caps):
            stack: list[str] = []
            for line in T.render(op, c).code.splitlines():
                s = line.strip()
                if s.startswith("workgroupBarrier"):
                    assert not any(x.startswith("if") or "ty" in x or "tid" in x for x in stack), (c.key(), stack)
                if s.endswith("{") and not s.startswith("}"):
                    stack.append(s)
                elif s == "}":
                    stack.pop()
            assert not stack


def test_render_is_deterministic():
    op = MatMul(127, 129, 65)
    for c in list(T.space(op, NVIDIA))[:40]:
        a, b = T.render(op, c), MatmulVec4WGSL().render(op, c)
        assert a == b
        assert render_wgsl(op, c, header="matmul-wgsl-vec4 v" + T.version) == a.code


def test_render_rejects_inconsistent_configs():
    op = MatMul(8, 8, 8)
    with pytest.raises(ValueError, match="multiples of 4"):
        T.render(op, _cfg(TN=6))
    with pytest.raises(ValueError, match="misses"):
        T.render(op, Config(WX=16))
    with pytest.raises(ValueError, match="KS=1 needs SH=0"):
        T.render(op, _cfg(KS=1))
    with pytest.raises(ValueError, match="PF=1 needs SH=1"):
        T.render(op, _cfg(SH=0, PF=1))
    with pytest.raises(TypeError):
        T.space("not an op", NVIDIA)  # type: ignore[arg-type]


def test_template_interface_matches_the_scalar_template():
    assert (T.name, T.backend, T.op_kind) == ("matmul-wgsl-vec4", "webgpu", "matmul") and T.version
    assert [p.name for p in T.params()] == ["WX", "WY", "TM", "TN", "BK", "SH", "PF", "KS", "GS", "SK"]
    k = T.render(MatMul(64, 64, 64), _cfg(WY=4))
    assert k.entry == "main" and "fn main(" in k.code and "@builtin(workgroup_id) wg" in k.code


def test_grouped_launch_order_is_offered_only_on_large_grids_of_fast_kernels():
    big = [c for c in T.space(MatMul(4096, 4096, 4096), NVIDIA) if c["GS"] > 1]
    assert big and all(c["SH"] == 1 and c["TM"] * c["TN"] >= 64 for c in big)
    assert {c["PF"] for c in big} == {0, 1}  # with and without prefetching
    assert not [c for c in T.space(MatMul(512, 768, 768), NVIDIA) if c["GS"] > 1]
    code = T.render(MatMul(4096, 4096, 4096), big[0]).code
    assert "let lin = wg.y" in code and "let gsz" in code
    assert "let lin" not in T.render(MatMul(4096, 4096, 4096), big[0].replace(GS=1)).code
