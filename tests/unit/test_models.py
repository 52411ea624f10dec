"""Model configs expand into the op specs of one inference, with counts; the transformer op kinds
validate, key and round-trip like MatMul."""

from __future__ import annotations

import json

import pytest

from jit_core.models import MODELS, get_model, model_layer_ops, model_ops, scaled
from jit_core.ops import Eltwise, Heads, MatMul, Norm, Softmax, op_from_dict


def _params(name: str, phase: str = "prefill", seq: int = 32) -> float:
    """Weights touched per token: matmul flops / 2 / tokens (a decode token counts its own rows)."""
    tokens = seq if phase == "prefill" else 1
    return sum(op.flops() * n for op, n in model_ops(name, 1, seq, phase) if isinstance(op, MatMul)
               and op.batch == 1) / 2 / tokens


@pytest.mark.parametrize("name,params", [("gpt2", 124e6), ("llama-2-7b", 6.74e9), ("roberta-base", 85e6)])
def test_matmul_weights_of_an_inference_add_up_to_the_published_parameter_counts(name, params):
    # GPT-2 and Llama: layers + LM head (tied embedding counted once); RoBERTa: layers only.
    assert _params(name) == pytest.approx(params, rel=0.05)
    if name != "roberta-base":
        assert _params(name, "decode") == pytest.approx(params, rel=0.05)


def test_hyper_parameters_follow_the_published_configs():
    llama, t5 = MODELS["llama-2-7b"], MODELS["t5-small"]
    assert (llama.hidden, llama.heads, llama.head_dim, llama.ffn, llama.layers) == (4096, 32, 128, 11008, 32)
    assert llama.norm == "rmsnorm" and llama.gated and llama.rotary and not llama.bias
    assert t5.norm == "rmsnorm" and t5.act == "relu" and not t5.bias and t5.scale == 1.0
    assert MODELS["bart-base"].norm_placement == MODELS["roberta-base"].norm_placement == "post"
    assert MODELS["gpt2"].scale == pytest.approx(1 / 8)
    assert not MODELS["roberta-base"].causal and MODELS["roberta-base"].arch == "encoder"


def test_llama_layer_runs_rmsnorm_gated_silu_and_rotary_heads_counted_per_layer():
    ops = dict(model_ops("llama-2-7b", 1, 16, "prefill"))
    assert ops[Norm(16, 4096, "rmsnorm")] == 2 * 32 + 1  # two per layer + the final norm
    assert ops[MatMul(16, 11008, 4096)] == 2 * 32  # gate and up
    assert ops[Eltwise(16 * 11008, "silu_mul")] == 32
    assert ops[Heads(16, 32, 128, "split_t", row_stride=3 * 4096, col_offset=4096, rotary=True)] == 32
    assert ops[Softmax(16, 16, batch=32, causal=True, scale=128 ** -0.5)] == 32
    assert ops[MatMul(16, 32000, 4096)] == 1  # LM head


def test_decode_is_one_token_attending_over_the_cache_and_the_new_position():
    ops = dict(model_ops("gpt2", 2, 32, "decode", past=40))
    assert ops[MatMul(1, 41, 64, batch=12)] == 12 * 2  # scores: 2 sequences x 12 layers
    assert ops[Softmax(1, 41, batch=12, causal=True, scale=0.125)] == 24
    assert ops[MatMul(2, 2304, 768, bias=True)] == 12  # QKV of both sequences' new tokens at once
    assert ops[Heads(1, 12, 64, "split", row_stride=2304, col_offset=1536, past=40)] == 24


def test_encoder_decoder_prefill_runs_both_stacks_and_decode_reuses_the_cross_attention_kv():
    pre = model_layer_ops("bart-base", 1, 16, "prefill")
    assert {s for s, _, _ in pre} == {"encoder", "decoder", "head"}
    assert any(u.role == "cross.kv" for _, u, _ in pre)
    dec = model_layer_ops("t5-small", 1, 16, "decode")
    assert not any(u.role == "cross.kv" for _, u, _ in dec)
    assert any(u.role == "cross.scores" and u.op == MatMul(1, 16, 64, batch=8) for _, u, _ in dec)
    assert dict(model_ops("t5-small", 1, 16, "decode"))[Softmax(1, 16, batch=8)] == 6  # unscaled, unmasked


def test_unknown_models_phases_and_bad_sizes_are_clear_errors():
    with pytest.raises(ValueError, match="unknown model 'gpt-5'; known: bart-base, gpt2, llama-2-7b"):
        model_ops("gpt-5", 1, 8)
    with pytest.raises(ValueError, match="unknown phase"):
        model_ops("gpt2", 1, 8, "train")
    with pytest.raises(ValueError, match="encoder"):
        model_ops("roberta-base", 1, 8, "decode")
    with pytest.raises(ValueError, match="seq_len must be a positive integer"):
        model_ops("gpt2", 1, 0)
    with pytest.raises(ValueError, match="past is for phase 'decode'"):
        model_ops("gpt2", 1, 8, "prefill", past=3)
    assert get_model(scaled("gpt2", hidden=64)).hidden == 64


@pytest.mark.parametrize("op", [
    Softmax(8, 12, batch=4, causal=True, scale=0.125), Norm(8, 64, "rmsnorm", residual=True, eps=1e-6),
    Norm(8, 64), Eltwise(100, "silu_mul"), Eltwise(7, "gelu"),
    Heads(8, 4, 16, "split_t", row_stride=192, col_offset=64, past=3, rotary=True), Heads(8, 4, 16, "merge"),
])
def test_transformer_op_specs_round_trip_through_json_and_have_distinct_keys(op):
    assert op_from_dict(json.loads(json.dumps(op.to_dict()))) == op
    assert op.output_size() > 0 and all(n > 0 for n in op.input_sizes().values())


def test_op_sizes_and_validation_follow_the_interface():
    assert list(Norm(4, 8, "layernorm", residual=True).input_sizes()) == ["X", "R", "gamma", "beta"]
    assert list(Norm(4, 8, "rmsnorm").input_sizes()) == ["X", "gamma"]
    assert Heads(5, 2, 4, "split", row_stride=24, col_offset=8, past=3).output_size() == 2 * 8 * 4
    assert Heads(5, 2, 4, "split", row_stride=24).input_sizes() == {"X": 120}
    assert len({Softmax(4, 4).key(), Softmax(4, 4, causal=True).key(), Softmax(4, 4, scale=0.5).key()}) == 3
    with pytest.raises(ValueError, match="exceeds row_stride"):
        Heads(5, 2, 4, "split", row_stride=8, col_offset=4)
    with pytest.raises(ValueError, match="merge' takes no past"):
        Heads(5, 2, 4, "merge", past=2)
    with pytest.raises(ValueError, match="norm must be one of"):
        Norm(4, 4, "batchnorm")
    with pytest.raises(ValueError, match="unknown op kind 'conv'"):
        op_from_dict({"kind": "conv"})
