"""Transformer block graphs: wiring, the numpy reference against a plain re-implementation of the
layer, stacks, and the ONNX graph of the same block run by onnxruntime."""

from __future__ import annotations

import json

import numpy as np
import pytest

from farm.baselines.onnx_blocks import block_baseline_spec, block_model, graph_inputs
from jit_core.blocks import FIRST_STREAM, LAYER_STREAMS, block_inputs, build_block, run_block_reference, stack_blocks
from jit_core.models import MODELS, scaled
from jit_core.reference import GELU_C

TINY = dict(hidden=32, heads=4, head_dim=8, ffn=48)
SEED = 4



def rotary(t, first_pos, theta):
    """Rotate-half RoPE of t[heads, seq, head_dim], token s at position first_pos + s."""
    half = t.shape[-1] // 2
    f = theta ** (-2.0 * np.arange(half) / t.shape[-1])
    ang = (first_pos + np.arange(t.shape[1]))[:, None] * f[None, :]
    x1, x2 = t[..., :half], t[..., half:]
    return np.concatenate([x1 * np.cos(ang) - x2 * np.sin(ang), x2 * np.cos(ang) + x1 * np.sin(ang)], axis=-1)

def _w(block, seed=SEED):
    return {k: v.astype(np.float64).reshape(block.buffer(k).shape) for k, v in block_inputs(block, seed).items()}


def _ln(x, g, b, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + eps) * g + b


def _softmax(s):
    e = np.exp(s - s.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_gpt2_prefill_block_computes_a_pre_norm_causal_layer():
    m = scaled("gpt2", **TINY)
    block = build_block(m, 6, "prefill")
    w, S, H, nh, d = _w(block), 6, 32, 4, 8
    x = w["x"]
    qkv = _ln(x, w["attn.norm.gamma"], w["attn.norm.beta"]) @ w["attn.qkv.w"] + w["attn.qkv.b"]
    q, k, v = (qkv[:, i * H:(i + 1) * H].reshape(S, nh, d).transpose(1, 0, 2) for i in range(3))
    s = q @ k.transpose(0, 2, 1) / np.sqrt(d) + np.triu(np.full((S, S), -np.inf), 1)
    ctx = (_softmax(s) @ v).transpose(1, 0, 2).reshape(S, H)
    h = x + ctx @ w["attn.out.w"] + w["attn.out.b"]
    u = _ln(h, w["mlp.norm.gamma"], w["mlp.norm.beta"]) @ w["mlp.up.w"] + w["mlp.up.b"]
    u = 0.5 * u * (1 + np.tanh(GELU_C * (u + 0.044715 * u ** 3)))
    out = h + u @ w["mlp.down.w"] + w["mlp.down.b"]
    got = run_block_reference(block, SEED)
    np.testing.assert_allclose(got["out"], out.reshape(-1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got["k_cache"], k.transpose(0, 2, 1).reshape(-1), rtol=1e-12)  # K transposed


def test_llama_decode_block_writes_rotated_kv_at_position_past_and_attends_over_the_cache():
    m = scaled("llama-2-7b", **TINY)
    P, H, nh, d = 5, 32, 4, 8
    block = build_block(m, 7, "decode", past=P)
    w = _w(block)
    x = w["x"]
    rms = lambda y, g: y / np.sqrt((y * y).mean(-1, keepdims=True) + 1e-5) * g  # noqa: E731
    qkv = rms(x, w["attn.norm.gamma"]) @ w["attn.qkv.w"]
    q, k, v = (qkv[:, i * H:(i + 1) * H].reshape(1, nh, d).transpose(1, 0, 2) for i in range(3))
    q, k = rotary(q, P, 10000.0), rotary(k, P, 10000.0)
    kc = w["k_cache"].copy()
    vc = w["v_cache"].copy()
    kc[:, :, P] = k[:, 0, :]
    vc[:, P, :] = v[:, 0, :]
    ctx = (_softmax(q @ kc / np.sqrt(d)) @ vc).transpose(1, 0, 2).reshape(1, H)
    h = x + ctx @ w["attn.out.w"]
    f = rms(h, w["mlp.norm.gamma"])
    g, u = f @ w["mlp.gate.w"], f @ w["mlp.up.w"]
    out = h + (g / (1 + np.exp(-g)) * u) @ w["mlp.down.w"]
    got = run_block_reference(block, SEED)
    np.testing.assert_allclose(got["out"], out.reshape(-1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got["k_cache"], kc.reshape(-1), rtol=1e-12)
    np.testing.assert_array_equal(got["v_cache"].reshape(nh, P + 1, d)[:, :P], w["v_cache"][:, :P])


def test_llama_decode_block_keeps_the_cache_and_writes_rotated_k_and_v_at_position_past():
    m = scaled("llama-2-7b", **TINY)
    P, H, nh, d = 5, 32, 4, 8
    block = build_block(m, 7, "decode", past=P)
    w = _w(block)
    g = w["attn.norm.gamma"]
    qkv = (w["x"] / np.sqrt((w["x"] ** 2).mean(-1, keepdims=True) + 1e-5) * g) @ w["attn.qkv.w"]
    k = rotary(qkv[:, H:2 * H].reshape(1, nh, d).transpose(1, 0, 2), P, 10000.0)
    got = run_block_reference(block, SEED)
    kc, vc = got["k_cache"].reshape(nh, d, P + 1), got["v_cache"].reshape(nh, P + 1, d)
    np.testing.assert_allclose(kc[:, :, P], k[:, 0, :], rtol=1e-12)
    np.testing.assert_allclose(vc[:, P, :], qkv[0, 2 * H:].reshape(nh, d), rtol=1e-12)
    np.testing.assert_array_equal(kc[:, :, :P], w["k_cache"][:, :, :P])
    np.testing.assert_array_equal(vc[:, :P], w["v_cache"][:, :P])


def test_bart_prefill_block_is_a_post_norm_layer_with_residual_norms():
    block = build_block(scaled("bart-base", **TINY), 4, "prefill")
    roles = [s.role for s in block.steps]
    assert roles[-1] == "mlp.norm" and "attn.residual" not in roles
    assert [k for k, _ in block.steps[-1].inputs] == ["X", "R", "gamma", "beta"]
    (softmax,) = [s.op for s in block.steps if s.role == "attn.softmax"]
    assert not softmax.causal  # BART's encoder layer


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_step_binds_buffers_of_the_sizes_its_op_needs_in_binding_order(name):
    for phase in ("prefill", "decode"):
        if phase == "decode" and name == "roberta-base":
            continue
        block = build_block(scaled(name, **TINY), 5, phase)
        for s in block.steps:
            sizes = list(s.op.input_sizes().values()) + [s.op.output_size()]
            assert [block.buffer(b).size for b in s.bindings()] == sizes
        assert block.buffer("out").role == "output" and block.steps[-1].output == "out"
        w = [b for b in block.buffers if b.role == "weight"]
        assert all(b.init == "prng" for b in w) and len({b.stream for b in w}) == len(w)
        assert min(b.stream for b in w) >= FIRST_STREAM


def test_weights_are_scaled_by_fan_in_and_gammas_centred_on_one():
    block = build_block(scaled("gpt2", **TINY), 4)
    v = block_inputs(block, SEED)
    assert np.abs(v["mlp.down.w"]).max() <= 48 ** -0.5
    assert np.all(np.abs(v["attn.norm.gamma"] - 1.0) <= 0.1)


def test_a_stack_has_distinct_weights_and_caches_per_layer_and_chains_the_layers():
    one = build_block(scaled("gpt2", **TINY), 4, "decode")
    three = stack_blocks(one, 3)
    assert len(three.steps) == 3 * len(one.steps) and three.layers == 3
    assert three.buffer("l2.attn.qkv.w").stream == one.buffer("attn.qkv.w").stream + 2 * LAYER_STREAMS
    assert three.steps[len(one.steps)].inputs[0][1] == "h1" and three.steps[-1].output == "out"
    assert three.buffer("h1").role == "activation" and three.buffer("l1.k_cache").role == "kv-cache"
    # layer 2 of the stack is a block whose input is layer 1's output
    ref = run_block_reference(three, SEED)
    assert np.all(np.isfinite(ref["out"])) and not np.allclose(ref["out"], ref["h2"])


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("phase", ["prefill", "decode"])
def test_onnx_graph_of_the_block_run_by_onnxruntime_matches_the_numpy_reference(name, phase):
    ort = pytest.importorskip("onnxruntime")
    m = scaled(name, **TINY)
    if phase == "decode" and m.arch == "encoder":
        pytest.skip("an encoder has no decode phase")
    block = stack_blocks(build_block(m, 6, phase), 2)
    ins = block_inputs(block, SEED)
    sess = ort.InferenceSession(block_model(block, SEED), providers=["CPUExecutionProvider"])
    got = sess.run(None, {k: ins[k].reshape(block.buffer(k).shape) for k in graph_inputs(block)})[0]
    np.testing.assert_allclose(got.reshape(-1), run_block_reference(block, SEED)["out"], rtol=1e-4, atol=1e-5)


def test_block_baseline_spec_feeds_the_graph_inputs_from_the_buffer_table():
    block = build_block(scaled("llama-2-7b", **TINY), 6, "decode")
    spec = block_baseline_spec("ort-wasm", block, seed=SEED, measure={}, positions=[0, 5])
    assert [b["name"] for b in spec["buffers"]] == ["x", "k_cache", "v_cache", "out"]
    assert spec["dims"]["k_cache"] == [4, 8, 7] and spec["buffers"][0]["stream"] == block.buffer("x").stream
    with pytest.raises(ValueError, match="unknown baseline"):
        block_baseline_spec("tvm-wasm", block, seed=SEED, measure={}, positions=[0])


def test_a_tfjs_block_spec_carries_the_block_graph_in_the_same_spec_shape():
    block = build_block(scaled("llama-2-7b", **TINY), 6, "decode")
    ort_spec = block_baseline_spec("ort-wasm", block, seed=SEED, measure={}, positions=[0, 5])
    spec = block_baseline_spec("tfjs-webgpu", block, seed=SEED, measure={}, positions=[0, 5])
    assert set(spec) - {"block"} == set(ort_spec) - {"model"} and "model" not in spec
    assert spec["library"] == "tfjs" and spec["graph"] == "block" and spec["buffers"] == ort_spec["buffers"]
    assert spec["block"]["seed"] == SEED and len(spec["block"]["steps"]) == len(block.steps)
    assert json.loads(json.dumps(spec["block"]))["buffers"][0]["name"] == block.buffers[0].name
