"""The matmul-wasm-simd template: nnJIT's CPU rules, the staged space build, rendering and the
wasm form of a kernel in the protocol."""

from __future__ import annotations

import base64

import pytest

from jit_core.caps import DeviceCaps
from jit_core.ops import MatMul
from jit_core.protocol import KernelSource, MeasureSpec, make_batch
from jit_core.space import SOURCES, Config, Space
from jit_core.templates import TEMPLATES, get_template
from jit_core.templates.matmul_wasm_simd import simd_registers_used, tile_bytes

T = get_template("matmul-wasm-simd")


def cpu(arch="x86-64", platform="Linux", cores=2, relaxed=True, threads=True, overrides=None, webgpu=False):
    probe = {"webgpu": webgpu, "hardwareConcurrency": cores,
             "wasm": {"simd": True, "relaxedSimd": relaxed, "threads": threads, "arch": arch, "platform": platform}}
    return DeviceCaps.from_probe(probe, overrides)


X86, ARM_PHONE, MAC = cpu(), cpu("arm64", "Android", 8), cpu("arm64", "macOS", 8)
BIG = MatMul(512, 512, 512)


def test_registered_as_a_wasm_template():
    assert TEMPLATES["matmul-wasm-simd"] is type(T)
    assert T.backend == "wasm"


def test_x86_space_is_nnjit_survivors_with_our_knobs():
    space = T.space(BIG, X86)
    assert {(c["MR"], c["NR"]) for c in space} == {(4, 8), (2, 16)}
    # nnJIT's survivors on x86 laptops (L1 32 KiB): (mb = nb, kb) in these five
    assert {(c["MB"], c["NB"], c["KB"]) for c in space} == {(16, 16, 256), (32, 32, 128), (64, 64, 64), (128, 128, 32), (256, 256, 16)}
    assert {c["FMA"] for c in space} == {1} and {c["T"] for c in space} == {1, 2}
    for c in space:
        regs = simd_registers_used(c["MR"], c["NR"])
        assert 0.8 * 16 <= regs <= 16
        assert 0.9 * 32768 <= tile_bytes(c["MB"], c["NB"], c["KB"]) <= 32768


def test_arm_budget_is_32_registers_and_l1_comes_from_the_platform_table():
    assert {(c["MR"], c["NR"]) for c in T.space(BIG, ARM_PHONE)} == {(8, 8), (2, 32)}
    assert ARM_PHONE.l1_bytes == 65536 and MAC.l1_bytes == 131072
    assert max(tile_bytes(c["MB"], c["NB"], c["KB"]) for c in T.space(BIG, MAC)) == 131072
    assert max(c["T"] for c in T.space(BIG, MAC)) == 8


def test_yaml_overrides_replace_the_cpu_table():
    caps = cpu(overrides={"l1_bytes": 49152, "simd_registers": 32})
    space = T.space(BIG, caps)
    assert {(c["MR"], c["NR"]) for c in space} == {(8, 8), (2, 32)}
    assert all(tile_bytes(c["MB"], c["NB"], c["KB"]) <= 49152 for c in space)
    with pytest.raises(ValueError, match="unknown caps override"):
        cpu(overrides={"l2_bytes": 1})


def test_no_threads_without_shared_memory_and_no_fma_without_relaxed_simd():
    space = T.space(BIG, cpu(relaxed=False, threads=False, cores=8))
    assert {c["T"] for c in space} == {1} and {c["FMA"] for c in space} == {0}
    no_simd = DeviceCaps.from_probe({"webgpu": True, "wasm": {"simd": False}})
    assert len(T.space(BIG, no_simd)) == 0


@pytest.mark.parametrize("op", [MatMul(1, 768, 768), MatMul(16, 64, 300), MatMul(3, 5, 7), MatMul(64, 64, 32, batch=8)],
                         ids=lambda op: op.key())
def test_small_and_skinny_problems_keep_a_nonempty_space_of_fitting_tiles(op):
    space = T.space(op, X86)
    assert len(space) > 0
    units = {c.key(): op.batch * -(-op.M // c["MB"]) * -(-op.N // c["NB"]) for c in space}
    assert all(c["T"] <= units[c.key()] for c in space)


def test_skinny_m_gets_wide_cache_tiles_clipped_to_its_rows():
    space = T.space(MatMul(1, 3072, 768), X86)
    assert {(c["MB"], c["NB"], c["KB"]) for c in space} == {(16, 16, 256), (16, 32, 128), (16, 64, 64), (16, 128, 32), (16, 256, 16)}
    assert space.configs[0]["NB"] == 256


def test_staged_build_equals_the_plain_build():
    op = MatMul(128, 3072, 768)
    staged = T.space(op, X86)
    plain = Space.build(T.params(), T.rules(op, X86), prior=T.prior(op, X86))
    assert staged.configs == plain.configs
    assert staged.removed == plain.removed and staged.raw_size == plain.raw_size


def test_space_report_counts_add_up_and_every_rule_is_documented():
    r = T.space(BIG, X86).report()
    assert r["size"] + r["duplicates"] + sum(r["removed"].values()) == r["raw_size"]
    assert {x["source"] for x in r["rules"]} <= set(SOURCES) and "WebAssembly" in {x["source"] for x in r["rules"]}
    assert all(len(x["doc"]) > 20 for x in r["rules"])


def test_render_is_a_wasm_kernel_with_threads_units_and_scratch():
    cfg = Config.from_key("MR=4,NR=8,MB=64,NB=64,KB=64,UK=2,T=2,PB=1,FMA=1")
    k = T.render(MatMul(100, 200, 300, batch=2), cfg)
    assert k.kind == "wasm" and k.binary[:4] == b"\x00asm" and k.entry == "run"
    assert k.threads == 2 and k.units == 2 * 2 * 4 and k.scratch_bytes == 4 * 64 * 64
    with pytest.raises(ValueError):
        T.render(BIG, cfg.replace(NR=6))


def test_batch_json_carries_wasm_as_base64_and_wgsl_unchanged():
    wasm = T.render(BIG, T.space(BIG, X86).configs[0])
    wgsl = KernelSource("fn main() {}", "main", (1, 1, 1), (8, 8, 1))
    batch = make_batch(BIG, [("a", wasm), ("b", wgsl)], seed=1, measure=MeasureSpec(), check_positions=[0])
    a, b = batch.to_json()["candidates"]
    assert a["kind"] == "wasm" and base64.b64decode(a["wasm"]) == wasm.binary
    assert a["threads"] == wasm.threads and a["units"] == wasm.units and a["scratchBytes"] == wasm.scratch_bytes
    assert b == {"id": "b", "kind": "wgsl", "code": "fn main() {}", "entry": "main", "workgroups": [1, 1, 1],
                 "workgroupSize": [8, 8, 1]}
    with pytest.raises(ValueError, match="kind"):
        KernelSource("", "main", (1, 1, 1), (1, 1, 1), kind="spirv")


def test_cpu_identity_enters_the_fingerprint_only_with_a_wasm_probe():
    gpu_only = {"adapter": {"vendor": "nvidia"}}
    with_wasm = {**gpu_only, "wasm": {"simd": True, "arch": "x86-64"}, "hardwareConcurrency": 8}
    assert DeviceCaps.from_probe(gpu_only).fingerprint() != DeviceCaps.from_probe(with_wasm).fingerprint()
    assert cpu().fingerprint() != cpu(cores=4).fingerprint()
    assert DeviceCaps.from_dict(X86.to_dict()) == X86
