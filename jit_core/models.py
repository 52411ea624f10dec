"""Model configs (BART-base, T5-small, Llama-2-7B, GPT-2, RoBERTa-base) and the ops one inference runs.

``model_ops(model, batch, seq_len, phase)`` lists the op specs of ``jit_core/ops.py`` that one
forward pass runs, with counts (per layer x layers, plus the LM head where the model has one).
Phases: 'prefill' runs ``seq_len`` tokens (encoder-decoder models: the encoder over ``seq_len``
source tokens and the decoder over ``seq_len`` target tokens); 'decode' runs 1 new token per
sequence with a KV cache of ``past`` positions (default ``seq_len``, the prompt just prefilled;
encoder-decoder models attend over ``seq_len`` encoder positions whose cross-attention K/V were
computed at prefill).

What is simplified (the op lists model the transformer layers, which hold nearly all the time):
- token/position embedding lookups, the embedding layer norms (BART, RoBERTa), the final norm of
  the encoder (T5) and RoBERTa's pooler are left out; the LM head (a matmul to ``vocab``) is
  included for GPT-2, Llama 2, BART and T5 over every token of the pass (prefill: ``seq_len``
  rows, as a full forward pass computes; decode: 1 row), RoBERTa (an encoder) has none;
- T5's relative position bias is omitted (T5 scores are otherwise unscaled: softmax scale 1.0);
- GELU is the tanh approximation everywhere (exact for GPT-2's gelu_new; BART and RoBERTa use the
  erf form, which differs by < 1e-3);
- attention uses one fused QKV projection (N = 3 * hidden) read out by ``heads`` split ops; the
  cross-attention of a decoder layer has a Q projection and a fused K/V projection of the encoder
  output (prefill only: decode reuses the cached K/V);
- with ``batch`` > 1 the row-wise ops (projections, norms, eltwise) cover ``batch * tokens`` rows
  and the per-sequence attention ops (heads, scores, softmax, AV) are counted ``batch`` times.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable

from .ops import Eltwise, Heads, MatMul, Norm, OpSpec, Softmax

PHASES = ("prefill", "decode")
ARCHS = ("decoder", "encoder", "encoder-decoder")


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of one transformer. ``layers`` counts the layers of each stack (encoder and
    decoder for 'encoder-decoder'); ``norm_placement`` 'pre' normalises each sub-layer's input and
    adds the residual after it (GPT-2, Llama, T5), 'post' normalises residual + sub-layer output
    (BART, RoBERTa); ``gated`` is a SiLU-gated MLP (act(x W_gate) * (x W_up)) W_down;
    ``score_scale`` 0 means 1/sqrt(head_dim)."""

    name: str
    arch: str
    hidden: int
    heads: int
    head_dim: int
    ffn: int
    layers: int
    vocab: int
    norm: str = "layernorm"
    norm_placement: str = "pre"
    eps: float = 1e-5
    act: str = "gelu"
    gated: bool = False
    rotary: bool = False
    rope_theta: float = 10000.0
    causal: bool = True
    bias: bool = True
    score_scale: float = 0.0

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"model {self.name}: arch must be one of {ARCHS}, got {self.arch!r}")
        if self.norm_placement not in ("pre", "post"):
            raise ValueError(f"model {self.name}: norm_placement must be 'pre' or 'post'")
        for f in ("hidden", "heads", "head_dim", "ffn", "layers", "vocab"):
            v = getattr(self, f)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"model {self.name}: {f} must be a positive integer, got {v!r}")
        # Validates norm and act through the op specs they become.
        Norm(1, self.hidden, norm=self.norm, eps=self.eps)
        MatMul(1, 1, 1, act=self.act)

    @property
    def attn_width(self) -> int:
        return self.heads * self.head_dim

    @property
    def scale(self) -> float:
        return self.score_scale or self.head_dim ** -0.5

    @property
    def has_lm_head(self) -> bool:
        return self.arch != "encoder"


MODELS: dict[str, ModelConfig] = {m.name: m for m in (
    ModelConfig("bart-base", "encoder-decoder", hidden=768, heads=12, head_dim=64, ffn=3072, layers=6,
                vocab=50265, norm="layernorm", norm_placement="post", act="gelu", causal=True, bias=True),
    ModelConfig("t5-small", "encoder-decoder", hidden=512, heads=8, head_dim=64, ffn=2048, layers=6,
                vocab=32128, norm="rmsnorm", norm_placement="pre", eps=1e-6, act="relu", causal=True,
                bias=False, score_scale=1.0),
    ModelConfig("llama-2-7b", "decoder", hidden=4096, heads=32, head_dim=128, ffn=11008, layers=32,
                vocab=32000, norm="rmsnorm", norm_placement="pre", eps=1e-5, act="silu", gated=True,
                rotary=True, causal=True, bias=False),
    ModelConfig("gpt2", "decoder", hidden=768, heads=12, head_dim=64, ffn=3072, layers=12, vocab=50257,
                norm="layernorm", norm_placement="pre", act="gelu", causal=True, bias=True),
    ModelConfig("roberta-base", "encoder", hidden=768, heads=12, head_dim=64, ffn=3072, layers=12,
                vocab=50265, norm="layernorm", norm_placement="post", act="gelu", causal=False, bias=True),
)}


def get_model(name: str | ModelConfig) -> ModelConfig:
    """The config registered as ``name`` (a ModelConfig passes through); ValueError names the known ones."""
    if isinstance(name, ModelConfig):
        return name
    try:
        return MODELS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown model {name!r}; known: {', '.join(sorted(MODELS))}") from None


def scaled(model: str | ModelConfig, **changes: int | float | str | bool) -> ModelConfig:
    """A copy of ``model`` with some hyper-parameters changed (e.g. a small config for a test)."""
    m = get_model(model)
    return replace(m, name=changes.pop("name", f"{m.name}-scaled"), **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class OpUse:
    """One op of a layer: ``role`` names it within the layer (e.g. 'attn.qkv'), ``count`` is how
    many times it runs per layer."""

    role: str
    op: OpSpec
    count: int = 1


def attention_ops(m: ModelConfig, *, rows: int, seq: int, past: int, kv_seq: int, causal: bool,
                  prefix: str, cross: bool = False) -> list[OpUse]:
    """Self-attention (or cross-attention over ``kv_seq`` encoder positions) of one sequence of
    ``seq`` new tokens; ``rows`` = batch * seq for the row-wise projections."""
    w, nh, d = m.attn_width, m.heads, m.head_dim
    batch = rows // seq
    uses: list[OpUse] = []
    if cross:
        uses.append(OpUse(f"{prefix}.q", MatMul(rows, w, m.hidden, bias=m.bias)))
        if kv_seq:  # the encoder output's K/V projection, computed once at prefill
            uses.append(OpUse(f"{prefix}.kv", MatMul(batch * kv_seq, 2 * w, m.hidden, bias=m.bias)))
            uses.append(OpUse(f"{prefix}.k_split", Heads(kv_seq, nh, d, "split_t", row_stride=2 * w), batch))
            uses.append(OpUse(f"{prefix}.v_split", Heads(kv_seq, nh, d, "split", row_stride=2 * w, col_offset=w), batch))
        uses.append(OpUse(f"{prefix}.q_split", Heads(seq, nh, d, "split"), batch))
        total = kv_seq or past
    else:
        uses.append(OpUse(f"{prefix}.qkv", MatMul(rows, 3 * w, m.hidden, bias=m.bias)))
        rope = dict(rotary=m.rotary, theta=m.rope_theta)
        q_pos = dict(pos_offset=past) if m.rotary else {}  # the query goes after the cached tokens
        uses.append(OpUse(f"{prefix}.q_split", Heads(seq, nh, d, "split", row_stride=3 * w, past=0, **rope, **q_pos),
                          batch))
        uses.append(OpUse(f"{prefix}.k_split", Heads(seq, nh, d, "split_t", row_stride=3 * w, col_offset=w,
                                                     past=past, **rope), batch))
        uses.append(OpUse(f"{prefix}.v_split", Heads(seq, nh, d, "split", row_stride=3 * w, col_offset=2 * w,
                                                     past=past), batch))
        total = past + seq
    uses.append(OpUse(f"{prefix}.scores", MatMul(seq, total, d, batch=nh), batch))
    uses.append(OpUse(f"{prefix}.softmax", Softmax(seq, total, batch=nh, causal=causal, scale=m.scale), batch))
    uses.append(OpUse(f"{prefix}.av", MatMul(seq, d, total, batch=nh), batch))
    uses.append(OpUse(f"{prefix}.merge", Heads(seq, nh, d, "merge"), batch))
    uses.append(OpUse(f"{prefix}.out", MatMul(rows, m.hidden, w, bias=m.bias)))
    return uses


def mlp_ops(m: ModelConfig, rows: int, prefix: str = "mlp") -> list[OpUse]:
    """The feed-forward sub-layer: gated (gate, up, silu_mul, down) or up+act fused, down."""
    if m.gated:
        return [OpUse(f"{prefix}.gate", MatMul(rows, m.ffn, m.hidden, bias=m.bias)),
                OpUse(f"{prefix}.up", MatMul(rows, m.ffn, m.hidden, bias=m.bias)),
                OpUse(f"{prefix}.act", Eltwise(rows * m.ffn, "silu_mul")),
                OpUse(f"{prefix}.down", MatMul(rows, m.hidden, m.ffn, bias=m.bias))]
    return [OpUse(f"{prefix}.up", MatMul(rows, m.ffn, m.hidden, bias=m.bias, act=m.act)),
            OpUse(f"{prefix}.down", MatMul(rows, m.hidden, m.ffn, bias=m.bias))]


def _sublayer(m: ModelConfig, rows: int, prefix: str, body: list[OpUse]) -> list[OpUse]:
    """A sub-layer with its norm and residual: pre-norm = norm, body, add; post-norm = body,
    norm(residual + body)."""
    if m.norm_placement == "pre":
        return [OpUse(f"{prefix}.norm", Norm(rows, m.hidden, m.norm, eps=m.eps)), *body,
                OpUse(f"{prefix}.residual", Eltwise(rows * m.hidden, "add"))]
    return [*body, OpUse(f"{prefix}.norm", Norm(rows, m.hidden, m.norm, residual=True, eps=m.eps))]


def layer_ops(m: ModelConfig, *, batch: int, seq: int, past: int, stack: str = "decoder",
              enc_seq: int = 0) -> list[OpUse]:
    """The ops of one layer of ``stack`` ('encoder' or 'decoder') for ``seq`` new tokens per
    sequence after ``past`` cached ones; a decoder layer of an encoder-decoder model adds
    cross-attention over ``enc_seq`` encoder positions (K/V projected only when ``past`` is 0)."""
    rows = batch * seq
    causal = m.causal and stack == "decoder"
    ops = _sublayer(m, rows, "attn", attention_ops(m, rows=rows, seq=seq, past=past, kv_seq=0,
                                                   causal=causal, prefix="attn"))
    if stack == "decoder" and m.arch == "encoder-decoder":
        cross = attention_ops(m, rows=rows, seq=seq, past=enc_seq, kv_seq=enc_seq if past == 0 else 0,
                              causal=False, prefix="cross", cross=True)
        ops += _sublayer(m, rows, "cross", cross)
    return ops + _sublayer(m, rows, "mlp", mlp_ops(m, rows))


def model_layer_ops(model: str | ModelConfig, batch: int, seq_len: int, phase: str = "prefill",
                    past: int | None = None) -> list[tuple[str, OpUse, int]]:
    """(stack, op use, layers) of one inference, before merging: what ``model_ops`` sums up."""
    m = get_model(model)
    if phase not in PHASES:
        raise ValueError(f"unknown phase {phase!r}; known: {', '.join(PHASES)}")
    for name, v in (("batch", batch), ("seq_len", seq_len)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if phase == "prefill" and past not in (None, 0):
        raise ValueError("past is for phase 'decode' (prefill starts with an empty KV cache)")
    if phase == "decode" and m.arch == "encoder":
        raise ValueError(f"model {m.name} is an encoder: it has no decode phase (use prefill)")
    past = seq_len if past is None and phase == "decode" else (past or 0)
    if not isinstance(past, int) or past < 0:
        raise ValueError(f"past must be a non-negative integer, got {past!r}")
    out: list[tuple[str, OpUse, int]] = []
    if phase == "prefill":
        if m.arch == "encoder-decoder":
            out += [("encoder", u, m.layers) for u in layer_ops(m, batch=batch, seq=seq_len, past=0, stack="encoder")]
        stack = "encoder" if m.arch == "encoder" else "decoder"
        out += [(stack, u, m.layers) for u in layer_ops(m, batch=batch, seq=seq_len, past=0, stack=stack,
                                                        enc_seq=seq_len)]
        rows = batch * seq_len
    else:
        out += [("decoder", u, m.layers) for u in layer_ops(m, batch=batch, seq=1, past=past, stack="decoder",
                                                            enc_seq=seq_len)]
        rows = batch
    if m.has_lm_head:
        out.append(("head", OpUse("final_norm", Norm(rows, m.hidden, m.norm, eps=m.eps)), 1))
        out.append(("head", OpUse("lm_head", MatMul(rows, m.vocab, m.hidden)), 1))
    return out


def model_ops(model: str | ModelConfig, batch: int, seq_len: int, phase: str = "prefill",
              past: int | None = None) -> list[tuple[OpSpec, int]]:
    """The distinct op specs one inference runs and how many times each runs, in first-use order."""
    return merge_counts((u.op, u.count * layers) for _, u, layers in model_layer_ops(model, batch, seq_len, phase, past))


def merge_counts(items: Iterable[tuple[OpSpec, int]]) -> list[tuple[OpSpec, int]]:
    """Sum the counts of equal ops, keeping the order of their first appearance."""
    counts: dict[OpSpec, int] = {}
    for op, n in items:
        counts[op] = counts.get(op, 0) + n
    return list(counts.items())
