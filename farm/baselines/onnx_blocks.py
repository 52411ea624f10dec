"""An ONNX graph of a transformer block (``jit_core.blocks``), for ONNX Runtime Web baselines, and
the ``runBaseline`` spec of a block for ORT-Web and TF.js (which gets the block graph as JSON and
maps each step to TF.js ops in the page: ``farm/harness/static/baseline_tfjs_block.js``).

The graph is built step by step from the block, so it is the same block: every step becomes the
ONNX nodes of its op, weights are initializers holding exactly the buffer table's PRNG values
(same streams, scale and shift), and the graph inputs are the buffers the block reads before
writing them (``x``, and in decode the KV caches, whose first ``past`` positions are kept and
the new token's K/V concatenated after them). The single output is the block's ``out``.

Only operators ORT-Web's webgpu EP runs are used (opset 17): MatMul, Add, Mul, Div, Sqrt, Tanh,
Sigmoid, Relu, Softmax, LayerNormalization, ReduceMean, Transpose, Reshape, Slice, Concat; tanh
GELU, SiLU, RMSNorm and rotary are composed from them; the causal mask is an additive constant.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from jit_core.blocks import Block, BlockStep
from jit_core.ops import Eltwise, Heads, MatMul, Norm, Softmax
from jit_core.reference import GELU_C, rotary_angles

from .onnx_models import IR_VERSION, OPSET

MASKED = -1e9  # added to masked scores before the softmax: exp underflows to exactly 0


class _Graph:
    def __init__(self, block: Block, seed: int):
        self.block, self.seed = block, seed
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.shape: dict[str, tuple[int, ...]] = {}  # ONNX value name -> its shape
        self.current: dict[str, str] = {}  # block buffer -> ONNX value holding its contents
        self.n = 0

    def fresh(self, hint: str) -> str:
        self.n += 1
        return f"{hint}__{self.n}"

    def node(self, op: str, ins: list[str], shape: tuple[int, ...], hint: str, **attrs: Any) -> str:
        out = self.fresh(hint)
        self.nodes.append(helper.make_node(op, ins, [out], **attrs))
        self.shape[out] = shape
        return out

    def const(self, value: np.ndarray, hint: str, dtype: Any = np.float32) -> str:
        name = self.fresh(hint)
        arr = np.asarray(value, dtype=dtype)
        self.inits.append(numpy_helper.from_array(arr, name))
        self.shape[name] = arr.shape
        return name

    def read(self, buffer: str, shape: tuple[int, ...]) -> str:
        """The buffer's current contents as an ONNX value of ``shape`` (a Reshape when needed)."""
        if buffer not in self.current:
            b = self.block.buffer(buffer)
            if b.role == "weight":
                name = buffer
                self.inits.append(numpy_helper.from_array(b.values(self.seed).reshape(b.shape), name))
            else:  # x, or a cache of decode: fed by the page from the same PRNG stream
                name = buffer
                self.inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(b.shape)))
            self.shape[name] = b.shape
            self.current[buffer] = name
        v = self.current[buffer]
        if self.shape[v] == tuple(shape):
            return v
        return self.node("Reshape", [v, self.const(np.array(shape), "shape", np.int64)], tuple(shape), buffer)

    # --- ops ---
    def gelu(self, x: str, hint: str) -> str:
        s = self.shape[x]
        x3 = self.node("Mul", [self.node("Mul", [x, x], s, hint), x], s, hint)
        inner = self.node("Add", [x, self.node("Mul", [x3, self.const(0.044715, "c")], s, hint)], s, hint)
        t = self.node("Tanh", [self.node("Mul", [inner, self.const(GELU_C, "c")], s, hint)], s, hint)
        half = self.node("Mul", [x, self.const(0.5, "c")], s, hint)
        return self.node("Mul", [half, self.node("Add", [t, self.const(1.0, "c")], s, hint)], s, hint)

    def silu(self, x: str, hint: str) -> str:
        s = self.shape[x]
        return self.node("Mul", [x, self.node("Sigmoid", [x], s, hint)], s, hint)

    def act(self, act: str, x: str, hint: str) -> str:
        if act == "none":
            return x
        if act == "relu":
            return self.node("Relu", [x], self.shape[x], hint)
        return self.gelu(x, hint) if act == "gelu" else self.silu(x, hint)

    def matmul(self, s: BlockStep, op: MatMul) -> str:
        lead = (op.batch,) if op.batch > 1 else ()
        ins = dict(s.inputs)
        y = self.node("MatMul", [self.read(ins["A"], lead + (op.M, op.K)), self.read(ins["B"], lead + (op.K, op.N))],
                      lead + (op.M, op.N), s.role)
        if op.bias:
            y = self.node("Add", [y, self.read(ins["bias"], (op.N,))], lead + (op.M, op.N), s.role)
        return self.act(op.act, y, s.role)

    def softmax(self, s: BlockStep, op: Softmax) -> str:
        shape = (op.batch, op.rows, op.cols)
        x = self.read(dict(s.inputs)["X"], shape)
        if op.scale != 1.0:
            x = self.node("Mul", [x, self.const(op.scale, "scale")], shape, s.role)
        if op.causal:
            mask = np.where(causal_mask(op.rows, op.cols), MASKED, 0.0)
            x = self.node("Add", [x, self.const(mask, "mask")], shape, s.role)
        return self.node("Softmax", [x], shape, s.role, axis=-1)

    def norm(self, s: BlockStep, op: Norm) -> str:
        ins = dict(s.inputs)
        shape = (op.rows, op.cols)
        y = self.read(ins["X"], shape)
        if op.residual:
            y = self.node("Add", [y, self.read(ins["R"], shape)], shape, s.role)
        gamma = self.read(ins["gamma"], (op.cols,))
        if op.norm == "layernorm":
            return self.node("LayerNormalization", [y, gamma, self.read(ins["beta"], (op.cols,))], shape, s.role,
                             axis=-1, epsilon=float(op.eps))
        ms = self.node("ReduceMean", [self.node("Mul", [y, y], shape, s.role)], (op.rows, 1), s.role,
                       axes=[-1], keepdims=1)
        rms = self.node("Sqrt", [self.node("Add", [ms, self.const(op.eps, "eps")], (op.rows, 1), s.role)],
                        (op.rows, 1), s.role)
        return self.node("Mul", [self.node("Div", [y, rms], shape, s.role), gamma], shape, s.role)

    def eltwise(self, s: BlockStep, op: Eltwise) -> str:
        ins = dict(s.inputs)
        a = self.read(ins["A"], (op.n,))
        if op.fn in ("add", "mul"):
            return self.node(op.fn.capitalize(), [a, self.read(ins["B"], (op.n,))], (op.n,), s.role)
        if op.fn == "gelu":
            return self.gelu(a, s.role)
        y = self.silu(a, s.role)
        return y if op.fn == "silu" else self.node("Mul", [y, self.read(ins["B"], (op.n,))], (op.n,), s.role)

    def heads(self, s: BlockStep, op: Heads) -> str:
        nh, d, sq, p = op.heads, op.head_dim, op.seq, op.past
        x_buf = dict(s.inputs)["X"]
        if op.mode == "merge":
            t = self.node("Transpose", [self.read(x_buf, (nh, sq, d))], (sq, nh, d), s.role, perm=[1, 0, 2])
            return self.node("Reshape", [t, self.const(np.array([sq, nh * d]), "shape", np.int64)], (sq, nh * d), s.role)
        x = self.read(x_buf, (sq, op.stride))
        if op.col_offset or op.width != op.stride:
            x = self.node("Slice", [x, self.const([op.col_offset], "st", np.int64),
                                    self.const([op.col_offset + op.width], "en", np.int64),
                                    self.const([1], "ax", np.int64)], (sq, op.width), s.role)
        x = self.node("Reshape", [x, self.const(np.array([sq, nh, d]), "shape", np.int64)], (sq, nh, d), s.role)
        t = self.node("Transpose", [x], (nh, sq, d), s.role, perm=[1, 0, 2])
        if op.rotary:
            t = self.rotary(t, op, s.role)
        axis = 1
        if op.mode == "split_t":
            t = self.node("Transpose", [t], (nh, d, sq), s.role, perm=[0, 2, 1])
            axis = 2
        if not p:
            return t
        out_shape = (nh, p + sq, d) if op.mode == "split" else (nh, d, p + sq)
        cache = self.read(s.output, out_shape)
        kept_shape = (nh, p, d) if op.mode == "split" else (nh, d, p)
        kept = self.node("Slice", [cache, self.const([0], "st", np.int64), self.const([p], "en", np.int64),
                                   self.const([axis], "ax", np.int64)], kept_shape, s.role)
        return self.node("Concat", [kept, t], out_shape, s.role, axis=axis)

    def rotary(self, t: str, op: Heads, hint: str) -> str:
        nh, d, sq, half = op.heads, op.head_dim, op.seq, op.head_dim // 2
        ang = rotary_angles(op)[op.past:]  # the positions this op writes: the reference's own angles
        cos, sin = self.const(np.cos(ang), "cos"), self.const(np.sin(ang), "sin")
        hs = (nh, sq, half)
        x1 = self.node("Slice", [t, self.const([0], "st", np.int64), self.const([half], "en", np.int64),
                                 self.const([2], "ax", np.int64)], hs, hint)
        x2 = self.node("Slice", [t, self.const([half], "st", np.int64), self.const([d], "en", np.int64),
                                 self.const([2], "ax", np.int64)], hs, hint)
        lo = self.node("Sub", [self.node("Mul", [x1, cos], hs, hint), self.node("Mul", [x2, sin], hs, hint)], hs, hint)
        hi = self.node("Add", [self.node("Mul", [x2, cos], hs, hint), self.node("Mul", [x1, sin], hs, hint)], hs, hint)
        return self.node("Concat", [lo, hi], (nh, sq, d), hint, axis=2)

    def step(self, s: BlockStep) -> None:
        op = s.op
        kinds = {MatMul: self.matmul, Softmax: self.softmax, Norm: self.norm, Eltwise: self.eltwise, Heads: self.heads}
        value = kinds[type(op)](s, op)  # type: ignore[operator]
        self.current[s.output] = value



def causal_mask(rows: int, cols: int) -> np.ndarray:
    """True where column c of row r is masked: c > r + (cols - rows) (Softmax's causal rule)."""
    return np.arange(cols)[None, :] > np.arange(rows)[:, None] + (cols - rows)

def graph_inputs(block: Block) -> list[str]:
    """The buffers the ONNX graph takes as inputs, in order: those read before being written that
    are not weights (``x``; in decode also the caches)."""
    written: set[str] = set()
    out: list[str] = []
    for s in block.steps:
        reads = [b for _, b in s.inputs]
        if isinstance(s.op, Heads) and s.op.past:
            reads.append(s.output)  # the cached positions survive the write
        for b in reads:
            if b not in written and b not in out and block.buffer(b).role != "weight":
                out.append(b)
        written.add(s.output)
    return out


def block_model(block: Block, seed: int) -> bytes:
    """The serialized ONNX model of ``block`` with weights from ``seed``; input names and shapes are
    the buffer table's (``graph_inputs``), the single output is ``block.output``."""
    g = _Graph(block, seed)
    for s in block.steps:
        g.step(s)
    out_buf = block.buffer(block.output)
    final = g.read(block.output, out_buf.shape)
    g.nodes.append(helper.make_node("Identity", [final], [block.output]))
    graph = helper.make_graph(g.nodes, f"{block.model}_{block.phase}_block", g.inputs,
                              [helper.make_tensor_value_info(block.output, TensorProto.FLOAT, list(out_buf.shape))],
                              initializer=g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="jitfarm",
                              ir_version=IR_VERSION)
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def block_baseline_spec(name: str, block: Block, *, seed: int, measure: dict[str, Any], positions: list[int],
                        device: str = "shared") -> dict[str, Any]:
    """The ``runBaseline`` spec (PROTOCOL.md) of a baseline running ``block``: one prng buffer per
    graph input (with its scale/shift) plus the output, ``dims`` giving each input's shape, and the
    output ``positions`` to read back. An ORT baseline gets the ONNX model as base64 (``model``); a
    TF.js one gets the block graph itself (``block``: steps and buffer table, with the weights'
    ``seed``), which the page runs with TF.js ops."""
    from .catalog import CATALOG, DEVICE_SOURCES

    if name not in CATALOG:
        raise ValueError(f"unknown baseline {name!r}; known: {', '.join(CATALOG)}")
    b = CATALOG[name]
    if device not in DEVICE_SOURCES:
        raise ValueError(f"device must be one of {DEVICE_SOURCES}, got {device!r}")
    inputs = graph_inputs(block)
    buffers: list[dict[str, Any]] = []
    for i, n in enumerate(inputs):
        bb = block.buffer(n)
        buffers.append({"name": n, "binding": i, "size": bb.size, "access": "read", "init": "prng", "seed": seed,
                        "stream": bb.stream, "scale": bb.scale, "shift": bb.shift, "dtype": "f32", "output": False})
    out = block.buffer(block.output)
    buffers.append({"name": out.name, "binding": len(buffers), "size": out.size, "access": "read_write",
                    "init": "zero", "seed": seed, "stream": 0, "dtype": "f32", "output": True})
    spec: dict[str, Any] = {
        "library": b.library, "backend": b.backend, "graph": "block",
        "op": {"kind": "block", "model": block.model, "phase": block.phase, "seq": block.seq, "past": block.past,
               "layers": block.layers},
        "buffers": buffers, "dims": {n: list(block.buffer(n).shape) for n in inputs},
        "measure": dict(measure), "check": {"positions": list(positions)},
        "device": device if b.gpu else "own",
    }
    if b.library == "ort":
        spec["model"] = {"format": "onnx", "graph": "block", "opset": str(OPSET),
                         "base64": base64.b64encode(block_model(block, seed)).decode("ascii")}
    else:
        spec["block"] = {**block.to_dict(), "seed": seed}
    return spec
