"""Tiny one-operator ONNX models at a job's shapes, for ONNX Runtime Web baselines.

Each builder returns a serialized ``ModelProto`` whose graph inputs are named like the harness's
buffers (``A``, ``B``, ``bias``...) and whose single output is ``C``, so the page feeds the same
PRNG inputs it gives our kernels and reads the output at the same check positions. New operators
(Softmax, LayerNorm, ...) are one more builder in ``GRAPHS``.
"""

from __future__ import annotations

import base64
from typing import Callable

import onnx
from onnx import TensorProto, helper

from jit_core.ops import MatMul, OpSpec

# Opset 17 has every operator we build (LayerNormalization included) and ORT-Web 1.30 runs it.
OPSET = 17
IR_VERSION = 8
_F32 = TensorProto.FLOAT


def _value(name: str, shape: list[int]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, _F32, shape)


def _model(node: onnx.NodeProto, inputs: list[onnx.ValueInfoProto], output: onnx.ValueInfoProto,
           name: str) -> bytes:
    graph = helper.make_graph([node], name, inputs, [output])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="jitfarm", ir_version=IR_VERSION)
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def matmul_model(op: MatMul) -> bytes:
    """``C = A @ B``; a batched MatMul (rank-3 inputs) when ``op.batch > 1``."""
    lead = [op.batch] if op.batch > 1 else []
    node = helper.make_node("MatMul", ["A", "B"], ["C"])
    return _model(node, [_value("A", lead + [op.M, op.K]), _value("B", lead + [op.K, op.N])],
                  _value("C", lead + [op.M, op.N]), f"matmul_{op.shape_str()}")


def gemm_bias_model(op: MatMul) -> bytes:
    """``C = A @ B + bias`` (bias of length N broadcast over rows), one ONNX Gemm node."""
    if op.batch != 1:
        raise ValueError("Gemm is rank 2: use matmul_model for batched shapes")
    node = helper.make_node("Gemm", ["A", "B", "bias"], ["C"], alpha=1.0, beta=1.0)
    return _model(node, [_value("A", [op.M, op.K]), _value("B", [op.K, op.N]), _value("bias", [op.N])],
                  _value("C", [op.M, op.N]), f"gemm_{op.shape_str()}")


# graph name -> builder; "matmul" is what a MatMul job uses.
GRAPHS: dict[str, Callable[[MatMul], bytes]] = {
    "matmul": matmul_model,
    "gemm-bias": gemm_bias_model,
}


def model_for(op: OpSpec, graph: str = "matmul") -> bytes:
    """The serialized model of ``graph`` at ``op``'s shapes."""
    if graph not in GRAPHS:
        raise ValueError(f"unknown ONNX graph {graph!r}; known: {sorted(GRAPHS)}")
    return GRAPHS[graph](op)


def model_spec(op: OpSpec, graph: str = "matmul") -> dict[str, str]:
    """The ``model`` field of an ORT baseline spec (PROTOCOL.md): base64 bytes and its graph name."""
    return {"format": "onnx", "graph": graph, "opset": str(OPSET),
            "base64": base64.b64encode(model_for(op, graph)).decode("ascii")}
