"""The baselines an experiment can name, and the spec the harness's ``runBaseline`` receives."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from jit_core.ops import OpSpec
from jit_core.protocol import op_buffers
from jit_core.reference import INPUT_STREAMS



@dataclass(frozen=True)
class Baseline:
    """One library backend as a baseline: ``name`` as experiments write it (``tfjs-webgpu``)."""

    name: str
    library: str  # "tfjs" | "ort"
    backend: str  # the library's own backend / execution provider name
    gpu: bool  # runs on a WebGPU device, so it can share ours


CATALOG: dict[str, Baseline] = {b.name: b for b in (
    Baseline("tfjs-webgpu", "tfjs", "webgpu", True),
    Baseline("tfjs-webgl", "tfjs", "webgl", False),
    Baseline("tfjs-wasm", "tfjs", "wasm", False),
    Baseline("tfjs-cpu", "tfjs", "cpu", False),
    Baseline("ort-webgpu", "ort", "webgpu", True),
    Baseline("ort-wasm", "ort", "wasm", False),
    Baseline("ort-webgl", "ort", "webgl", False),
)}

# Where a WebGPU baseline gets its GPUDevice: "shared" = the harness's device (the adapter our
# kernels run on), "own" = whatever the library requests for itself.
DEVICE_SOURCES = ("shared", "own")


def baseline_spec(name: str, op: OpSpec, *, seed: int, measure: dict[str, Any], positions: list[int],
                  device: str = "shared", graph: str = "matmul") -> dict[str, Any]:
    """The JSON spec of PROTOCOL.md's ``runBaseline`` for baseline ``name`` on ``op``.

    ``measure`` is the measure JSON of a batch (``Batch.to_json()['measure']``). For ORT the spec
    carries the ONNX model of ``graph`` at the op's shapes as base64; TF.js builds the op itself.
    """
    b = CATALOG[name]
    if device not in DEVICE_SOURCES:
        raise ValueError(f"device must be one of {DEVICE_SOURCES}, got {device!r}")
    buffers = [asdict(x) for x in op_buffers(op, seed)]
    if graph == "gemm-bias":
        buffers.insert(2, {"name": "bias", "binding": 2, "size": op.N, "access": "read", "init": "prng",
                           "seed": seed, "stream": INPUT_STREAMS["bias"], "dtype": "f32", "output": False})
    spec: dict[str, Any] = {
        "library": b.library, "backend": b.backend, "op": op.to_dict(), "graph": graph,
        "buffers": buffers, "measure": dict(measure), "check": {"positions": list(positions)},
        "device": device if b.gpu else "own",
    }
    if b.library == "ort":
        from .onnx_models import model_spec  # onnx costs a second of import in every worker that never runs ORT

        spec["model"] = model_spec(op, graph)
    return spec
