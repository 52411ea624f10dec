"""f16 matmuls without a device: the op's dtype and accumulation type, f16 PRNG buffers (rounded
to nearest, ties to even), the tolerance, the vec4 template's f16 code, and the rules that empty
a space for f16 where it cannot run."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from jit_core.ops import MatMul, Softmax
from jit_core.protocol import BufferSpec, op_buffers
from jit_core.reference import F16_UNIT_ROUNDOFF, op_inputs, prng_buffer, prng_f32, round_f16, tolerance
from jit_core.space import Config
from jit_core.templates import get_template
from jit_core.templates.matmul_vec4_wgsl import MatmulVec4WGSL
from tests.caps_profiles import LLVMPIPE, NVIDIA, SWIFTSHADER

WITH_F16 = dataclasses.replace(NVIDIA, features=NVIDIA.features | {"shader-f16"})


def test_matmul_f16_and_its_accumulation_type_are_part_of_the_key():
    assert MatMul(8, 8, 8, dtype="f16").key() == "matmul_f16_8x8x8"
    assert MatMul(8, 8, 8, dtype="f16", acc="f16").key() == "matmul_f16acc16_8x8x8"
    assert MatMul(8, 8, 8).key() == "matmul_f32_8x8x8"


def test_an_f32_matmul_dict_is_unchanged_and_f16_round_trips():
    assert "acc" not in MatMul(8, 8, 8).to_dict()
    op = MatMul(3, 5, 7, batch=2, dtype="f16", acc="f16", bias=True, act="gelu")
    assert MatMul.from_dict(op.to_dict()) == op


@pytest.mark.parametrize("kw, message", [({"dtype": "bf16"}, "dtype"), ({"acc": "f16"}, "needs dtype 'f16'"),
                                         ({"dtype": "f16", "acc": "f64"}, "acc")])
def test_bad_matmul_dtypes_are_refused(kw, message):
    with pytest.raises(ValueError, match=message):
        MatMul(8, 8, 8, **kw)


def test_other_ops_stay_f32_with_a_clear_error():
    with pytest.raises(ValueError, match="f16 is offered for matmul only"):
        Softmax(4, 4, dtype="f16")


def test_f16_buffers_hold_the_f32_stream_rounded_to_nearest_even():
    x = prng_f32(1, 0, 100_000)
    h = prng_buffer(1, 0, 100_000, dtype="f16")
    assert h.dtype == np.float16
    np.testing.assert_array_equal(h.astype(np.float32), round_f16(x))
    # the stream has exact ties at f16 precision: they go to the even neighbour
    bits = x.view(np.uint32)
    normal = np.abs(x) >= 2.0**-14
    ties = normal & ((bits & 0x1FFF) == 0x1000)
    assert ties.sum() > 5
    assert np.all((h[ties].view(np.uint16) & 1) == 0)
    assert round_f16(np.array([1 + 2**-11, 1 + 3 * 2**-11, 70000.0, 2**-25, 3 * 2**-26], np.float32)).tolist() == \
        [1.0, 1 + 2**-9, np.inf, 0.0, 2**-24]


def test_f16_op_inputs_are_the_rounded_values_and_buffers_are_f16():
    op = MatMul(3, 5, 7, bias=True, dtype="f16")
    ins = op_inputs(op, 2)
    np.testing.assert_array_equal(ins["A"], round_f16(prng_f32(2, 0, 21)))
    assert {b.dtype for b in op_buffers(op, 2)} == {"f16"}
    assert [b.nbytes for b in op_buffers(op, 2)] == [44, 72, 12, 32]
    assert BufferSpec("x", 0, 3, "read", "zero").nbytes == 12
    with pytest.raises(ValueError, match="dtype"):
        BufferSpec("x", 0, 3, "read", "zero", dtype="i8")


def test_f16_tolerance_follows_k_and_the_accumulation_type():
    f32, f16, f16acc = (tolerance(MatMul(8, 8, 3072, **kw)) for kw in ({}, {"dtype": "f16"}, {"dtype": "f16", "acc": "f16"}))
    assert f16[0] == f32[0] and f16[1] == pytest.approx(f32[1] + F16_UNIT_ROUNDOFF)
    assert f16acc[0] == pytest.approx(1.5 * F16_UNIT_ROUNDOFF * 3072 + 1e-3)
    assert tolerance(MatMul(8, 8, 64, dtype="f16", acc="f16"))[0] < f16acc[0]


@pytest.mark.parametrize("caps", [SWIFTSHADER, LLVMPIPE, NVIDIA], ids=["swiftshader", "llvmpipe", "nvidia"])
def test_vec4_space_of_an_f16_op_is_empty_without_shader_f16_and_says_why(caps):
    op = MatMul(64, 64, 64, dtype="f16")
    space = MatmulVec4WGSL().space(op, caps)
    assert len(space) == 0
    first = space.report()["rules"][0]
    assert first["name"] == "shader-f16" and "shader-f16" in first["doc"] and first["source"] == "WebGPU"
    assert first["removed"] == space.raw_size - space.duplicates


def test_vec4_space_of_an_f16_op_with_shader_f16_has_the_f32_configs():
    t = MatmulVec4WGSL()
    for shape in ((64, 64, 64), (1, 768, 3072), (127, 129, 65)):
        f32 = t.space(MatMul(*shape), WITH_F16)
        f16 = t.space(MatMul(*shape, dtype="f16"), WITH_F16)
        assert set(f32.configs) <= set(f16.configs) and len(f16) > 0  # f16 operands halve binding bytes
        assert "shader-f16" not in [r["name"] for r in f32.report()["rules"]]


@pytest.mark.parametrize("name", ["matmul-wgsl", "matmul-wasm-simd"])
def test_templates_without_f16_kernels_offer_none_and_refuse_to_render(name):
    t = get_template(name)
    op = MatMul(1, 64, 64, dtype="f16")
    space = t.space(op, WITH_F16)
    assert len(space) == 0 and space.report()["rules"][0]["name"] == "f16-kernels"
    cfg = Config({p.name: p.values[0] for p in t.params()})
    with pytest.raises(ValueError, match="f32 ops only"):
        t.render(op, cfg)


@pytest.mark.parametrize("acc", ["f32", "f16"])
def test_vec4_f16_kernels_declare_f16_and_use_the_accumulation_type(acc):
    t = MatmulVec4WGSL()
    for op in (MatMul(127, 129, 65, dtype="f16", acc=acc), MatMul(64, 64, 64, bias=True, act="silu", dtype="f16", acc=acc),
               MatMul(40, 37, 521, bias=True, act="relu", dtype="f16", acc=acc)):
        for cfg in list(t.space(op, WITH_F16))[:40]:
            k = t.render(op, cfg)
            assert k.code.startswith("enable f16;\n")
            assert "var<storage, read> A: array<vec4<f16>>" in k.code or "var<storage, read> A: array<f16>" in k.code
            assert f"var acc_0_0 = vec4<{acc}>(0.0);" in k.code
            if acc == "f16":
                assert "f32" not in k.full_text()
            else:
                assert "vec4<f32>(A[" in k.code or "f32(A[" in k.code
            for d in k.then:  # split-K's reduction: sums in acc, C in f16
                assert d.code.startswith("enable f16;\n")
                assert "C: array<vec4<f16>>" in d.code or "C: array<f16>" in d.code


F16_EXPERIMENT = """\
name: t
devices: [dev-a]
ops:
  - {kind: matmul, M: 8, N: 8, K: 8, dtype: f16}
  - {kind: matmul, M: 8, N: 8, K: 8, dtype: f16, acc: f16}
tuner: {budget_s: 5, template: matmul-wgsl-vec4}
"""


def test_experiment_ops_take_an_f16_dtype_and_accumulation_type(tmp_path):
    from farm.config.experiments import load_experiment
    from tests.unit.test_config import _tree

    exp = load_experiment(_tree(tmp_path, experiment=F16_EXPERIMENT))
    assert [op.key() for _, op in exp.ops] == ["matmul_f16_8x8x8", "matmul_f16acc16_8x8x8"]
    assert [label for label, _ in exp.ops] == ["8x8x8 f16", "8x8x8 f16acc16"]


@pytest.mark.parametrize("experiment, key, words", [
    (F16_EXPERIMENT.replace("dtype: f16, acc: f16", "acc: f16"), "ops[1]", "needs dtype 'f16'"),
    (F16_EXPERIMENT.replace("dtype: f16}", "dtype: f64}"), "ops[0].dtype", "f64"),
    (F16_EXPERIMENT + "baselines: [tfjs-webgpu]\n", "ops[0]", "baselines compare f32 ops only"),
    (F16_EXPERIMENT.replace(", template: matmul-wgsl-vec4", ""), "ops[0]", "matmul-wgsl has no f16 kernels"),
])
def test_bad_f16_experiments_name_the_key_and_the_fix(tmp_path, experiment, key, words):
    from farm.config.errors import ConfigError
    from farm.config.experiments import load_experiment
    from tests.unit.test_config import _tree

    with pytest.raises(ConfigError) as info:
        load_experiment(_tree(tmp_path, experiment=experiment))
    assert info.value.key == key and words in str(info.value) and "Fix:" in str(info.value)


def test_f16_templates_list_exactly_the_templates_with_f16_configs():
    from jit_core.templates import templates_for
    from jit_core.templates import F16_TEMPLATES

    op = MatMul(4, 64, 64, dtype="f16")
    with_f16 = [n for n in templates_for("matmul") if n != "matmul-wasm-simd" and len(get_template(n).space(op, WITH_F16))]
    assert with_f16 == list(F16_TEMPLATES)
