"""One transformer block (one layer) of a model as a graph of ops over named buffers.

A ``Block`` is an ordered list of ``BlockStep`` (an op spec of ``jit_core/ops.py``, the buffers
bound to its inputs, the buffer it writes) and a buffer table (``BlockBuffer``: elements, shape,
role, initial contents). ``step.bindings()`` lists buffer names in the op's binding order (its
inputs as ``op.input_sizes()`` orders them, then the output ``C``), so a block becomes a list of
dispatches over named device buffers directly.

Which layer: decoder-only models (GPT-2, Llama 2) their decoder layer; encoders (RoBERTa) their
encoder layer; encoder-decoder models (BART, T5) their encoder layer for prefill and their decoder
layer's self-attention + MLP for decode (the cross-attention of the decoder layer is left out of
the block graph; ``jit_core.models.model_ops`` counts it). Batch 1.

Phases: prefill runs ``seq`` tokens and fills the KV cache buffers (``k_cache`` [heads, head_dim,
seq], K transposed, and ``v_cache`` [heads, seq, head_dim]); decode runs 1 token whose K/V go to
position ``past`` of caches of ``past + 1`` positions, the first ``past`` holding PRNG values.

Rotary models in decode: the new token's K goes to cache position ``past`` and is rotated there;
its Q, written at position 0 of its own buffer, is rotated at ``past`` too (``Heads.pos_offset``).

Initial contents: a 'prng' buffer holds ``shift + scale * prng_f32(seed, stream, size)`` computed
in double and stored as f32 (the harness's BufferSpec scale/shift); weights use scale
1/sqrt(fan_in), norm gammas shift 1.0 scale 0.1, betas and biases scale 0.1, the block input and
the cached K/V scale 1. Every PRNG buffer has its own stream (from ``FIRST_STREAM``; a stack's
layer ``l`` adds ``l * LAYER_STREAMS``). 'zero' buffers (activations, caches a prefill fills) start
at 0.

Stacks (``stack_blocks``): N layers with distinct weights and KV caches per layer (named
``l<i>.<name>``), layer i's output feeding layer i+1; activation buffers are reused by every layer,
as an engine does.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from .models import ModelConfig, OpUse, attention_ops, get_model, mlp_ops
from .ops import Eltwise, MatMul, Norm, OpSpec
from .reference import prng_buffer, reference

ROLES = ("input", "weight", "activation", "kv-cache", "output")
FIRST_STREAM = 16  # streams 0..15 are the single-op input streams of reference.INPUT_STREAMS
LAYER_STREAMS = 64


@dataclass(frozen=True)
class BlockBuffer:
    """One named f32 buffer of a block: ``size`` elements laid out as ``shape`` (row-major).
    ``init`` 'prng' = ``shift + scale * prng_f32(seed, stream, size)``, 'zero' = zeros."""

    name: str
    size: int
    role: str
    shape: tuple[int, ...]
    init: str = "zero"
    stream: int | None = None
    scale: float = 1.0
    shift: float = 0.0

    def values(self, seed: int) -> np.ndarray:
        """The initial contents as float32, bit-identical to the harness's."""
        if self.init == "zero":
            return np.zeros(self.size, dtype=np.float32)
        return prng_buffer(seed, int(self.stream or 0), self.size, scale=self.scale, shift=self.shift)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["shape"] = list(self.shape)
        return d


@dataclass(frozen=True)
class BlockStep:
    """One op of the block: ``inputs`` = (binding name, buffer name) in the op's binding order."""

    role: str
    op: OpSpec
    inputs: tuple[tuple[str, str], ...]
    output: str

    def bindings(self) -> tuple[str, ...]:
        """Buffer names in binding order: the op's inputs, then its output."""
        return tuple(b for _, b in self.inputs) + (self.output,)

    def to_dict(self) -> dict[str, Any]:
        return {"role": self.role, "op": self.op.to_dict(), "inputs": [list(x) for x in self.inputs],
                "output": self.output}


@dataclass(frozen=True)
class Block:
    """A transformer block graph. Contract: every buffer a step names is in ``buffers``, each
    binding's buffer has the op's size for it, steps run in order, ``output`` is written last."""

    model: str
    phase: str
    seq: int
    past: int
    layers: int
    steps: tuple[BlockStep, ...]
    buffers: tuple[BlockBuffer, ...]
    output: str = "out"

    def buffer(self, name: str) -> BlockBuffer:
        for b in self.buffers:
            if b.name == name:
                return b
        raise KeyError(f"block {self.model}: no buffer {name!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "phase": self.phase, "seq": self.seq, "past": self.past,
                "layers": self.layers, "output": self.output, "steps": [s.to_dict() for s in self.steps],
                "buffers": [b.to_dict() for b in self.buffers]}


class _Builder:
    def __init__(self) -> None:
        self.steps: list[BlockStep] = []
        self.buffers: dict[str, BlockBuffer] = {}
        self.next_stream = FIRST_STREAM

    def buf(self, name: str, shape: tuple[int, ...], role: str, init: str = "zero", scale: float = 1.0,
            shift: float = 0.0) -> str:
        if name not in self.buffers:
            stream = None
            if init == "prng":
                stream, self.next_stream = self.next_stream, self.next_stream + 1
            self.buffers[name] = BlockBuffer(name, int(np.prod(shape)), role, shape, init, stream, scale, shift)
        return name

    def act(self, name: str, shape: tuple[int, ...]) -> str:
        return self.buf(name, shape, "activation")

    def step(self, role: str, op: OpSpec, out: str, **inputs: str) -> str:
        names = list(op.input_sizes())
        if sorted(names) != sorted(inputs):
            raise AssertionError(f"{role}: bindings {sorted(inputs)} != op inputs {names}")
        for n in names:
            if self.buffers[inputs[n]].size != op.input_sizes()[n]:
                raise AssertionError(f"{role}: buffer {inputs[n]} has {self.buffers[inputs[n]].size} elements, "
                                     f"{n} needs {op.input_sizes()[n]}")
        self.steps.append(BlockStep(role, op, tuple((n, inputs[n]) for n in names), out))
        return out

    def matmul(self, use: OpUse, a: str) -> str:
        op = use.op
        assert isinstance(op, MatMul)
        w = self.buf(f"{use.role}.w", (op.K, op.N), "weight", "prng", scale=op.K ** -0.5)
        extra = {"bias": self.buf(f"{use.role}.b", (op.N,), "weight", "prng", scale=0.1)} if op.bias else {}
        out = self.act(use.role, (op.M, op.N))
        return self.step(use.role, op, out, A=a, B=w, **extra)

    def norm(self, op: Norm, role: str, x: str, r: str | None = None) -> str:
        ins = {"X": x, **({"R": r} if r else {}),
               "gamma": self.buf(f"{role}.gamma", (op.cols,), "weight", "prng", scale=0.1, shift=1.0)}
        if op.norm == "layernorm":
            ins["beta"] = self.buf(f"{role}.beta", (op.cols,), "weight", "prng", scale=0.1)
        return self.step(role, op, self.act(role, (op.rows, op.cols)), **ins)


def _uses(uses: list[OpUse]) -> dict[str, OpUse]:
    return {u.role.split(".", 1)[1]: u for u in uses}


def build_block(model: str | ModelConfig, seq: int, phase: str = "prefill", past: int | None = None) -> Block:
    """The block graph of one layer of ``model``: ``seq`` tokens (prefill) or 1 token after ``past``
    cached ones (decode; ``past`` defaults to ``seq``)."""
    m = get_model(model)
    if phase not in ("prefill", "decode"):
        raise ValueError(f"unknown phase {phase!r}; known: prefill, decode")
    if phase == "decode" and m.arch == "encoder":
        raise ValueError(f"model {m.name} is an encoder: it has no decode phase (use prefill)")
    if phase == "prefill" and past not in (None, 0):
        raise ValueError("past is for phase 'decode' (prefill starts with an empty KV cache)")
    p = (seq if past is None else past) if phase == "decode" else 0
    s = 1 if phase == "decode" else seq
    causal = m.causal and not (m.arch == "encoder-decoder" and phase == "prefill")
    H, nh, d, t = m.hidden, m.heads, m.head_dim, p + s
    b = _Builder()
    x = b.buf("x", (s, H), "input", "prng")
    cache_init = "prng" if p else "zero"
    k_cache = b.buf("k_cache", (nh, d, t), "kv-cache", cache_init)
    v_cache = b.buf("v_cache", (nh, t, d), "kv-cache", cache_init)
    att = _uses(attention_ops(m, rows=s, seq=s, past=p, kv_seq=0, causal=causal, prefix="attn"))
    mlp = _uses(mlp_ops(m, s))
    pre = m.norm_placement == "pre"
    norm = Norm(s, H, m.norm, residual=not pre, eps=m.eps)

    # attention sub-layer
    h_in = b.norm(replace(norm, residual=False), "attn.norm", x) if pre else x
    qkv = b.matmul(att["qkv"], h_in)
    q = b.step("attn.q_split", att["q_split"].op, b.act("attn.q", (nh, s, d)), X=qkv)
    b.step("attn.k_split", att["k_split"].op, k_cache, X=qkv)
    b.step("attn.v_split", att["v_split"].op, v_cache, X=qkv)
    sc = b.step("attn.scores", att["scores"].op, b.act("attn.scores", (nh, s, t)), A=q, B=k_cache)
    pr = b.step("attn.softmax", att["softmax"].op, b.act("attn.probs", (nh, s, t)), X=sc)
    ctx = b.step("attn.av", att["av"].op, b.act("attn.ctx", (nh, s, d)), A=pr, B=v_cache)
    mg = b.step("attn.merge", att["merge"].op, b.act("attn.merged", (s, nh * d)), X=ctx)
    ao = b.matmul(att["out"], mg)
    if pre:
        h = b.step("attn.residual", Eltwise(s * H, "add"), b.act("attn.residual", (s, H)), A=x, B=ao)
        f_in = b.norm(replace(norm, residual=False), "mlp.norm", h)
    else:
        h = b.norm(norm, "attn.norm", ao, x)
        f_in = h

    # MLP sub-layer
    if m.gated:
        g = b.matmul(mlp["gate"], f_in)
        u = b.matmul(mlp["up"], f_in)
        gu = b.step("mlp.act", mlp["act"].op, b.act("mlp.act", (s, m.ffn)), A=g, B=u)
        fo = b.matmul(mlp["down"], gu)
    else:
        fo = b.matmul(mlp["down"], b.matmul(mlp["up"], f_in))
    if pre:
        b.step("mlp.residual", Eltwise(s * H, "add"), b.act("mlp.residual", (s, H)), A=h, B=fo)
    else:
        b.norm(norm, "mlp.norm", fo, h)
    return _with_output(Block(m.name, phase, s, p, 1, tuple(b.steps), tuple(b.buffers.values())))


def _with_output(block: Block) -> Block:
    """Rename the last step's output buffer to ``out`` with role 'output'."""
    last = block.steps[-1].output
    steps = block.steps[:-1] + (replace(block.steps[-1], output="out"),)
    bufs = tuple(replace(b, name="out", role="output") if b.name == last else b for b in block.buffers)
    return replace(block, steps=steps, buffers=bufs, output="out")


def stack_blocks(block: Block, n: int) -> Block:
    """``n`` layers of ``block``: distinct weights and KV caches per layer (``l<i>.`` names, PRNG
    streams offset by ``i * LAYER_STREAMS``), shared activation buffers, layer i's output is layer
    i+1's input (``h<i>``); the first layer reads ``x`` and the last writes ``out``."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"a stack needs a positive number of layers, got {n!r}")
    if n == 1:
        return block
    per_layer = {b.name for b in block.buffers if b.role in ("weight", "kv-cache")}
    buffers: dict[str, BlockBuffer] = {}
    steps: list[BlockStep] = []
    for i in range(n):
        def name(x: str) -> str:
            if x == "x":
                return "x" if i == 0 else f"h{i}"
            if x == "out":
                return "out" if i == n - 1 else f"h{i + 1}"
            return f"l{i}.{x}" if x in per_layer else x

        for b in block.buffers:
            nb = name(b.name)
            if nb in buffers:
                continue
            role = b.role if nb in ("x", "out") or b.role not in ("input", "output") else "activation"
            stream = None if b.stream is None else b.stream + (i * LAYER_STREAMS if b.name in per_layer else 0)
            init = b.init if role != "activation" else "zero"
            buffers[nb] = replace(b, name=nb, role=role, stream=stream if init == "prng" else None, init=init)
        for s in block.steps:
            steps.append(replace(s, inputs=tuple((k, name(v)) for k, v in s.inputs), output=name(s.output)))
    return replace(block, layers=n, steps=tuple(steps), buffers=tuple(buffers.values()))


def block_inputs(block: Block, seed: int) -> dict[str, np.ndarray]:
    """Initial contents of every buffer (float32), by name."""
    return {b.name: b.values(seed) for b in block.buffers}


def run_block_reference(block: Block, seed: int) -> dict[str, np.ndarray]:
    """Run the block's steps in numpy (float64) from the buffer table; returns every buffer's final
    contents by name (``block.output`` is the block's result, the caches hold the new K/V)."""
    state: dict[str, np.ndarray] = {k: v.astype(np.float64) for k, v in block_inputs(block, seed).items()}
    for s in block.steps:
        ins = {k: state[v] for k, v in s.inputs}
        state[s.output] = reference(s.op, ins, state[s.output])
    return state


def unique_ops(block: Block) -> list[tuple[OpSpec, int]]:
    """The block's distinct ops with how many steps run each (first-use order)."""
    counts: dict[OpSpec, int] = {}
    for s in block.steps:
        counts[s.op] = counts.get(s.op, 0) + 1
    return list(counts.items())
