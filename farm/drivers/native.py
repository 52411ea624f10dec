"""Native WebGPU driver: the on-device protocol (farm/harness/PROTOCOL.md) run in-process through
wgpu-native (the ``wgpu`` Python package), without a browser: lavapipe here, Vulkan GPUs on servers."""

from __future__ import annotations

import functools
import logging
import math
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from jit_core.protocol import Batch, BufferSpec, Candidate, CandidateResult, MeasureSpec
from jit_core.reference import prng_buffer
from jit_core.timing import min_sample_span_ms, sample_spanning, warm_up

from .base import DeviceDriver, DriverError, NativeOptions
from .cffi_types import warm_cffi_types

log = logging.getLogger(__name__)

# Limits the harness raises to the adapter's maximum when it requests its device (wgpu-py names).
_RAISED_LIMITS = (
    "max-compute-invocations-per-workgroup",
    "max-compute-workgroup-storage-size",
    "max-compute-workgroup-size-x",
    "max-compute-workgroup-size-y",
    "max-compute-workgroup-size-z",
    "max-compute-workgroups-per-dimension",
    "max-storage-buffer-binding-size",
    "max-buffer-size",
)
# Type strings wgpu 0.32's bindings ask cffi for besides "T *" and "T[]" of a typedef (callbacks,
# casts, byte arrays), seen in a run of this driver; parsed up front with those (cffi_types.py).
_WGPU_TYPES = (
    "char []", "uint8_t []", "uint32_t []", "uint8_t *", "intptr_t", "uintptr_t", "WGPUChainedStruct * ",
    "void(WGPUDevice const *, WGPUDeviceLostReason, WGPUStringView, void *, void *)",
    "void(WGPUDevice const *, WGPUErrorType, WGPUStringView, void *, void *)",
    "void(WGPURequestDeviceStatus, WGPUDevice, WGPUStringView, void *, void *)",
    "void(WGPUMapAsyncStatus, WGPUStringView, void *, void *)",
)
_OPTIONAL_FEATURES = ("timestamp-query", "shader-f16")
_POWER_RANK = {
    "high-performance": ("DiscreteGPU", "IntegratedGPU", "VirtualGPU", "CPU"),
    "low-power": ("IntegratedGPU", "DiscreteGPU", "VirtualGPU", "CPU"),
}
_BACKEND_ALIASES = {"dx12": "d3d12", "dx11": "d3d11", "gl": "opengl", "gles": "opengles"}
_CPU_NAMES = ("llvmpipe", "lavapipe", "swiftshader", "microsoft basic render")
_LOST = re.compile(r"device (is |was )?lost|devicelost", re.IGNORECASE)
_FIX = (
    "To fix: install a Vulkan driver (`apt-get install -y mesa-vulkan-drivers` gives lavapipe), point "
    "the loader at it with env VK_ICD_FILENAMES / VK_DRIVER_FILES (e.g. "
    "/usr/share/vulkan/icd.d/lvp_icd.x86_64.json) in the device YAML's native.env, or change "
    "native.adapter_match / native.backend in the device YAML."
)


def camel_limit(name: str) -> str:
    """wgpu-py limit name -> GPUSupportedLimits name: 'max-texture-dimension-1d' -> 'maxTextureDimension1D'."""
    parts = name.replace("_", "-").split("-")
    return parts[0] + "".join(p.upper() if p[:1].isdigit() else p.capitalize() for p in parts[1:])


def _adapter_text(info: Any) -> str:
    keys = ("vendor", "device", "description", "adapter_type", "backend_type")
    return " ".join(str(info.get(k, "")) for k in keys)


def _describe(info: Any) -> str:
    name = info.get("device") or info.get("vendor")
    return f"{name!r} ({info.get('adapter_type')}, {info.get('backend_type')}; {info.get('description')!r})"


def _wall_resolution_ms() -> float:
    """Smallest non-zero step of time.perf_counter, measured."""
    best = math.inf
    for _ in range(2000):
        a = time.perf_counter()
        b = time.perf_counter()
        while b == a:
            b = time.perf_counter()
        best = min(best, b - a)
    return best * 1e3


@dataclass
class _BatchGpu:
    """GPU objects of one batch on one device, destroyed together."""

    layout_entries: list[dict[str, Any]]
    entries: list[dict[str, Any]]
    output: Any | None
    output_bytes: int
    output_dtype: str  # 'f32' | 'f16': how the output's bytes are read back
    staging: Any | None  # MAP_READ copy of the whole output
    sync_src: Any
    sync_dst: Any
    query_set: Any | None
    ts_resolve: Any | None
    ts_staging: Any | None
    buffers: list[Any] = field(default_factory=list)
    named: dict[str, Any] = field(default_factory=dict)  # batch buffers by name
    _batch_bindings: tuple[Any, Any] | None = None

    def batch_bindings(self, dev: Any) -> tuple[Any, Any]:
        """(pipeline layout, bind group) of the batch's buffers in binding order, for kernels that
        name no bindings; built on first use (a chain may hold more buffers than a stage binds)."""
        if self._batch_bindings is None:
            bgl = dev.create_bind_group_layout(entries=self.layout_entries)
            self._batch_bindings = (dev.create_pipeline_layout(bind_group_layouts=[bgl]),
                                    dev.create_bind_group(layout=bgl, entries=self.entries))
        return self._batch_bindings

    def destroy(self) -> None:
        extra = [self.staging, self.sync_src, self.sync_dst, self.ts_resolve, self.ts_staging, self.query_set]
        for b in [*self.buffers, *extra]:
            try:
                if b is not None:
                    b.destroy()
            except Exception:  # a lost device cannot free; nothing else to do
                pass


class _Timeout(Exception):
    pass


class _BadProgram(Exception):
    """A candidate that binds buffers the batch does not have: the sender's fault ('harness')."""


_Grid = tuple[int, int, int]
_Program = list[tuple[Any, Any, _Grid]]  # (pipeline, bind group, grid) per dispatch


@functools.lru_cache(maxsize=48)
def _prng_inputs(seed: int, stream: int, size: int, scale: float = 1.0, shift: float = 0.0,
                 dtype: str = "f32") -> np.ndarray:
    """Inputs of the last few batches: every batch of one tune uploads the same arrays, a block's
    chain has a dozen or more (weights, caches), and a Llama-sized B (45M values) takes seconds to
    generate. An odd-sized f16 array gets one zero pad element (uploads are multiples of 4 bytes)."""
    data = prng_buffer(seed, stream, size, scale=scale, shift=shift, dtype=dtype)
    if data.nbytes % 4:
        data = np.concatenate([data, np.zeros(1, dtype=data.dtype)])
    data.setflags(write=False)
    return data


class NativeDriver(DeviceDriver):
    """Runs protocol batches in-process on a native WebGPU adapter (wgpu-native via ``wgpu``).

    Contract: the DeviceDriver contract, with the per-candidate steps of PROTOCOL.md (compile,
    clear + first run with readback, warmup, wall-clock calibration of ``reps``, samples of ``reps``
    dispatches in one compute pass, readback at the check positions). ``open()`` sets
    ``options.env`` in ``os.environ`` first; Vulkan loader variables only take effect if nothing in
    this process has created the wgpu instance yet (it is process-global), so open the native
    driver before any other wgpu use. The bind group layout is explicit, built from the batch's
    buffers ('read' -> read-only storage, 'read_write' -> storage), so a kernel may leave a binding
    unused; a kernel whose declarations disagree fails at pipeline creation ('compile').

    Limits: a native dispatch cannot be interrupted, so ``measure.timeout_ms`` is judged after the
    fact: when a candidate's elapsed time passes it after a step, the candidate is answered
    'timeout' and sampling stops (a kernel that never ends hangs the process; run the farm's
    worker with its own wall-clock watchdog). A lost device gives 'device-lost' for that candidate
    and a fresh device for the rest; if none can be had, run_batch raises DriverError('device').

    Example, by hand on lavapipe::

        from farm.drivers.base import NativeOptions
        from farm.drivers.native import NativeDriver
        from jit_core.ops import MatMul
        from jit_core.protocol import KernelSource, MeasureSpec, make_batch
        from jit_core.reference import check_outputs, check_positions

        opts = NativeOptions(adapter_match="llvmpipe", backend="vulkan",
                             env=(("VK_ICD_FILENAMES", "/usr/share/vulkan/icd.d/lvp_icd.x86_64.json"),))
        op = MatMul(M=64, N=64, K=64)
        pos = check_positions(op)
        with NativeDriver(opts) as drv:
            print(drv.probe()["adapter"])
            kernel = KernelSource(code=WGSL, entry="main", workgroups=(8, 8, 1), workgroup_size=(8, 8, 1))
            batch = make_batch(op, [("c0", kernel)], seed=1, measure=MeasureSpec(), check_positions=pos)
            [res] = drv.run_batch(batch)
            print(res.samples_ms, check_outputs(op, 1, pos, res.values).ok)
    """

    kind = "native"

    def __init__(self, options: NativeOptions) -> None:
        if options.power_preference not in _POWER_RANK:
            choices = sorted(_POWER_RANK)
            raise ValueError(f"native.power_preference must be one of {choices}, got {options.power_preference!r}")
        self.options = options
        self._wgpu: Any = None
        self._adapter: Any = None
        self._device: Any = None
        self._lost = False
        self._timestamp_period_ns: float | None = None
        self._wall_res_ms: float | None = None
        self._timestamp_res_ms: float | None = None
        self._timestamp_check: dict[str, Any] | None = None

    # ----- lifecycle

    def open(self) -> None:
        if self._device is not None:
            return
        changed = [k for k, v in self.options.env if os.environ.get(k) != v]
        for key, value in self.options.env:
            os.environ[key] = value
        try:
            import wgpu
            from wgpu.backends.wgpu_native import _helpers
        except Exception as e:  # missing wheel or native library
            raise DriverError("infra", f"cannot import wgpu ({e}); install the `wgpu` package. {_FIX}") from e
        warm_cffi_types(_helpers.ffi, _WGPU_TYPES)
        if changed and getattr(_helpers, "_the_instance", None) is not None:
            log.warning("wgpu instance already exists in this process: env %s set too late to take effect", changed)
        self._wgpu = wgpu
        try:
            adapters = wgpu.gpu.enumerate_adapters_sync()
        except Exception as e:
            raise DriverError("infra", f"wgpu could not enumerate adapters: {e}. {_FIX}") from e
        self._adapter = self._pick(adapters)
        self._device = self._request_device()
        self._wall_res_ms = _wall_resolution_ms()
        self._timestamp_res_ms = self._measure_timestamp_resolution_ms()

    def _pick(self, adapters: list[Any]) -> Any:
        opts = self.options
        found = list(adapters)
        if opts.backend:
            want = _BACKEND_ALIASES.get(opts.backend.lower(), opts.backend.lower())
            found = [a for a in found if str(a.info.get("backend_type", "")).lower().startswith(want)]
        if opts.adapter_match:
            found = [a for a in found if opts.adapter_match.lower() in _adapter_text(a.info).lower()]
        else:
            rank = _POWER_RANK[opts.power_preference]
            order = {t: i for i, t in enumerate(rank)}
            found.sort(key=lambda a: order.get(a.info.get("adapter_type"), len(rank)))
        if not found:
            listing = "; ".join(_describe(a.info) for a in adapters) or "none"
            raise DriverError(
                "infra",
                f"no WebGPU adapter matches adapter_match={opts.adapter_match!r} backend={opts.backend!r}. "
                f"Adapters found: {listing}. {_FIX}",
            )
        return found[0]

    def _request_device(self) -> Any:
        adapter = self._adapter
        features = [f for f in _OPTIONAL_FEATURES if f in adapter.features]
        limits = {k: adapter.limits[k] for k in _RAISED_LIMITS if k in adapter.limits}
        try:
            device = adapter.request_device_sync(required_features=features, required_limits=limits, label="jitfarm")
        except Exception as e:
            raise DriverError("infra", f"could not get a device from {_describe(adapter.info)}: {e}") from e
        self._lost = False
        self._timestamp_period_ns = None
        if "timestamp-query" in device.features:
            try:
                from wgpu.backends.wgpu_native import lib

                self._timestamp_period_ns = float(lib.wgpuQueueGetTimestampPeriod(device.queue._internal))
            except Exception:  # not exposed by this wgpu build: WebGPU timestamps are ns
                self._timestamp_period_ns = 1.0
        return device

    @property
    def _timestamp_usable(self) -> bool:
        return bool(self._timestamp_check and self._timestamp_check["bracketsWork"])

    def _measure_timestamp_resolution_ms(self) -> float | None:
        """Resolution of GPU timestamps from many back-to-back tiny passes (the timer's real
        resolution, which can be coarser than the queue's timestamp period)."""
        dev, wgpu = self._device, self._wgpu
        if dev is None or "timestamp-query" not in dev.features:
            return None
        passes = 64
        BU = wgpu.BufferUsage
        try:
            qs = dev.create_query_set(type=wgpu.QueryType.timestamp, count=2 * passes)
            resolve = dev.create_buffer(size=16 * passes, usage=BU.QUERY_RESOLVE | BU.COPY_SRC)
            read = dev.create_buffer(size=16 * passes, usage=BU.MAP_READ | BU.COPY_DST)
            storage = dev.create_buffer(size=16, usage=BU.STORAGE)
            code = ("@group(0) @binding(0) var<storage, read_write> b: array<u32>;\n"
                    "@compute @workgroup_size(1) fn main() { b[0] = b[0] + 1u; }")
            pipeline = dev.create_compute_pipeline(layout="auto", compute={
                "module": dev.create_shader_module(code=code), "entry_point": "main"})
            bind = dev.create_bind_group(layout=pipeline.get_bind_group_layout(0), entries=[
                {"binding": 0, "resource": {"buffer": storage, "offset": 0, "size": 16}}])
            enc = dev.create_command_encoder()
            for i in range(passes):
                cp = enc.begin_compute_pass(timestamp_writes={
                    "query_set": qs, "beginning_of_pass_write_index": 2 * i, "end_of_pass_write_index": 2 * i + 1})
                cp.set_pipeline(pipeline)
                cp.set_bind_group(0, bind)
                cp.dispatch_workgroups(1)
                cp.end()
            enc.resolve_query_set(qs, 0, 2 * passes, resolve, 0)
            enc.copy_buffer_to_buffer(resolve, 0, read, 0, 16 * passes)
            dev.queue.submit([enc.finish()])
            read.map_sync(wgpu.MapMode.READ)
            ticks = np.sort(np.frombuffer(read.read_mapped(copy=True), dtype=np.uint64))
            read.unmap()
            self._timestamp_check = self._check_timestamps_bracket_work(qs, resolve, read, pipeline, bind)
        except Exception as e:  # noqa: BLE001 - a probe detail, not a reason to fail
            log.warning("could not measure the timestamp resolution: %s", e)
            return (self._timestamp_period_ns or 1.0) * 1e-6
        steps = np.diff(ticks.astype(np.int64))
        steps = steps[steps > 0]
        if steps.size == 0:
            return (self._timestamp_period_ns or 1.0) * 1e-6
        # The tick is the GCD of all steps (quantized timestamps are multiples of it); the
        # smallest step alone would be the duration of a tiny pass on a slow adapter.
        return float(np.gcd.reduce(steps)) * (self._timestamp_period_ns or 1.0) * 1e-6

    def _check_timestamps_bracket_work(self, qs: Any, resolve: Any, read: Any, pipeline: Any, bind: Any) -> dict[str, Any]:
        """Timed as samples are (one pass per submit): a pass of 1 dispatch and one of 256 must
        span clearly different times, or GPU timestamps do not time the work (harness.js does the
        same check)."""
        spans, wall_ms = [], 0.0
        for reps in (1, 256):
            enc = self._device.create_command_encoder()
            cp = enc.begin_compute_pass(timestamp_writes={
                "query_set": qs, "beginning_of_pass_write_index": 0, "end_of_pass_write_index": 1})
            cp.set_pipeline(pipeline)
            cp.set_bind_group(0, bind)
            for _ in range(reps):
                cp.dispatch_workgroups(1)
            cp.end()
            enc.resolve_query_set(qs, 0, 2, resolve, 0)
            enc.copy_buffer_to_buffer(resolve, 0, read, 0, 16)
            t0 = time.perf_counter()
            self._device.queue.submit([enc.finish()])
            read.map_sync(self._wgpu.MapMode.READ)
            wall_ms = (time.perf_counter() - t0) * 1e3
            begin, end = (int(x) for x in np.frombuffer(read.read_mapped(copy=True), dtype=np.uint64)[:2])
            read.unmap()
            spans.append(max(0, end - begin) * (self._timestamp_period_ns or 1.0) * 1e-6)
        one, many = spans
        ok = many >= 8 * max(one, 1e-6) or many >= 0.25 * wall_ms
        if not ok:
            log.warning("GPU timestamps do not bracket a pass's work (%s ms): timing with the wall clock", spans)
        return {"bracketsWork": ok, "spansMs": spans, "wallMs": wall_ms}

    def _renew_device(self) -> None:
        try:
            self._device.destroy()
        except Exception:
            pass
        try:
            self._device = self._request_device()
        except DriverError as e:
            raise DriverError("device", f"device lost and no new one could be had: {e.message}") from e

    def close(self) -> None:
        device, self._device, self._adapter = self._device, None, None
        if device is not None:
            try:
                device.destroy()
            except Exception:
                pass

    # ----- probe and versions

    def probe(self) -> dict[str, Any]:
        self._require_open()
        info = self._adapter.info
        names = _adapter_text(info).lower()
        ts = self._timestamp_period_ns
        return {
            "webgpu": True,
            "error": None,
            "adapter": {
                "vendor": info.get("vendor", ""),
                "architecture": info.get("architecture", ""),
                "device": info.get("device", ""),
                "description": info.get("description", ""),
                "isFallbackAdapter": info.get("adapter_type") == "CPU" or any(n in names for n in _CPU_NAMES),
                "featureLevel": "core",
                "backend": str(info.get("backend_type", "")).lower(),
                "adapterType": info.get("adapter_type", ""),
                "vendorId": info.get("vendor_id"),
                "deviceId": info.get("device_id"),
            },
            "limits": {camel_limit(k): int(v) for k, v in sorted(self._device.limits.items())},
            "features": sorted(str(f) for f in self._adapter.features),
            "deviceFeatures": sorted(str(f) for f in self._device.features),
            "userAgent": f"wgpu-native/{self.versions()['wgpu_native']} (wgpu-py {self._wgpu.__version__})",
            "crossOriginIsolated": None,
            "hardwareConcurrency": os.cpu_count(),
            "timerResolutionMs": {"timestamp": self._timestamp_res_ms, "wall": self._wall_res_ms},
            "timestampPeriodNs": ts,
            "timestampCheck": self._timestamp_check,
            "timestampUsable": self._timestamp_usable,
        }

    def versions(self) -> dict[str, str]:
        try:
            import wgpu
            from wgpu.backends import wgpu_native
        except Exception:
            return {}
        return {"wgpu": wgpu.__version__, "wgpu_native": str(getattr(wgpu_native, "__version__", "unknown"))}

    def _require_open(self) -> None:
        if self._device is None:
            raise DriverError("harness", "NativeDriver used before open() (or after close())")

    # ----- batches

    def run_batch(self, batch: Batch) -> list[CandidateResult]:
        self._require_open()
        results: list[CandidateResult] = []
        gpu, setup_error = self._setup_or_error(batch)
        try:
            for cand in batch.candidates:
                if self._lost:
                    if gpu is not None:
                        gpu.destroy()
                    self._renew_device()
                    gpu, setup_error = self._setup_or_error(batch)
                if gpu is None:
                    cls, msg = setup_error
                    results.append(CandidateResult(id=cand.id, ok=False, error_class=cls, error=msg))
                    continue
                if cand.kernel.kind != "wgsl":
                    results.append(CandidateResult(id=cand.id, ok=False, error_class="harness",
                                                   error=f"the native driver runs WGSL kernels, not {cand.kernel.kind}"))
                    continue
                results.append(self._run_candidate(cand, gpu, batch))
        finally:
            if gpu is not None:
                gpu.destroy()
        return results

    def _setup_or_error(self, batch: Batch) -> tuple[_BatchGpu | None, tuple[str, str]]:
        for attempt in (0, 1):
            try:
                return self._setup(batch), ("", "")
            except Exception as e:
                # A malformed batch (bad init, dtype, positions) is the sender's fault: 'harness'.
                cls = "harness" if isinstance(e, ValueError) else self._classify(e, "setup")
                if cls == "device-lost" and attempt == 0:
                    self._renew_device()
                    continue
                return None, (cls, f"batch setup failed: {type(e).__name__}: {e}"[:4000])
        raise AssertionError("unreachable")

    def _setup(self, batch: Batch) -> _BatchGpu:
        wgpu, dev = self._wgpu, self._device
        BU = wgpu.BufferUsage
        outputs = [b for b in batch.buffers if b.output]
        out_spec = outputs[0] if outputs else None
        if out_spec is not None and batch.check_positions:
            bad = [p for p in batch.check_positions if not 0 <= p < out_spec.size]
            if bad:
                raise ValueError(f"check positions {bad[:5]} outside output {out_spec.name!r} of size {out_spec.size}")
        buffers, entries, layout_entries, output = [], [], [], None
        named: dict[str, Any] = {}
        for spec in batch.buffers:
            buf = dev.create_buffer(label=spec.name, size=spec.nbytes, usage=BU.STORAGE | BU.COPY_DST | BU.COPY_SRC)
            buffers.append(buf)
            named[spec.name] = buf
            if spec.init == "prng":
                dev.queue.write_buffer(buf, 0, self._host_data(spec))
            elif spec.init != "zero":
                raise ValueError(f"buffer {spec.name!r}: init must be 'prng' or 'zero', got {spec.init!r}")
            kind = wgpu.BufferBindingType.read_only_storage if spec.access == "read" else wgpu.BufferBindingType.storage
            visible = wgpu.ShaderStage.COMPUTE
            layout_entries.append({"binding": spec.binding, "visibility": visible, "buffer": {"type": kind}})
            entries.append({"binding": spec.binding, "resource": {"buffer": buf, "offset": 0, "size": buf.size}})
            if spec is out_spec:
                output = buf
        out_bytes = out_spec.nbytes if out_spec is not None else 0
        has_ts = "timestamp-query" in dev.features
        gpu = _BatchGpu(
            layout_entries=layout_entries,
            entries=entries,
            output=output,
            output_bytes=out_bytes,
            output_dtype=out_spec.dtype if out_spec is not None else "f32",
            staging=dev.create_buffer(size=out_bytes, usage=BU.MAP_READ | BU.COPY_DST) if out_bytes else None,
            sync_src=dev.create_buffer(size=4, usage=BU.COPY_SRC),
            sync_dst=dev.create_buffer(size=4, usage=BU.MAP_READ | BU.COPY_DST),
            query_set=dev.create_query_set(type=wgpu.QueryType.timestamp, count=2) if has_ts else None,
            ts_resolve=dev.create_buffer(size=16, usage=BU.QUERY_RESOLVE | BU.COPY_SRC) if has_ts else None,
            ts_staging=dev.create_buffer(size=16, usage=BU.MAP_READ | BU.COPY_DST) if has_ts else None,
            buffers=buffers,
            named=named,
        )
        self._sync(gpu)  # uploads done before the first candidate is timed
        return gpu

    @staticmethod
    def _host_data(spec: BufferSpec) -> np.ndarray:
        return _prng_inputs(spec.seed, spec.stream, spec.size, spec.scale, spec.shift, spec.dtype)

    # ----- one candidate

    def _run_candidate(self, cand: Candidate, gpu: _BatchGpu, batch: Batch) -> CandidateResult:
        m: MeasureSpec = batch.measure
        res = CandidateResult(id=cand.id, ok=False)
        start = time.perf_counter()
        stage = "compile"

        def check_time(after: str) -> None:
            elapsed = (time.perf_counter() - start) * 1e3
            if elapsed > m.timeout_ms:
                raise _Timeout(
                    f"candidate ran {elapsed:.0f} ms > timeout {m.timeout_ms:.0f} ms (judged after {after}; "
                    "native dispatches cannot be interrupted)"
                )

        scratch: list[Any] = []
        try:
            t0 = time.perf_counter()
            program = self._program(cand, gpu, scratch)
            res.compile_ms = (time.perf_counter() - t0) * 1e3
            stage = "run"
            check_time("compile")
            if gpu.output is not None:
                enc = self._device.create_command_encoder()
                enc.clear_buffer(gpu.output, 0, gpu.output_bytes)
                self._device.queue.submit([enc.finish()])
            res.first_run_ms = self._wall_sample(program, gpu, 1)
            check_time("first run")
            warm_up(lambda k: (self._submit(program, gpu, k), self._sync(gpu)), m,
                    check=lambda: check_time("warmup"))
            check_time("warmup")
            t = self._wall_sample(program, gpu, 1)
            use_ts = m.timer == "auto" and gpu.query_set is not None and self._timestamp_usable
            res.timer_kind = "timestamp" if use_ts else "wall"
            res.timer_resolution_ms = self._timestamp_res_ms if use_ts else self._wall_res_ms

            def sample(reps: int) -> float:
                if use_ts:
                    return self._timestamp_sample(program, gpu, reps)
                return self._wall_sample(program, gpu, reps)

            min_ms = min_sample_span_ms(m, res.timer_resolution_ms)
            got = sample_spanning(t, min_ms, m.max_reps, res.timer_resolution_ms or 0.0, sample, m,
                                  refine=True, check=lambda: check_time("calibration or a sample"))
            res.reps = got.reps
            res.samples_ms, res.stop, res.ci_ms = got.samples.samples_ms, got.samples.stop, got.samples.ci_ms
            if got.short:
                res.flags.append("short-samples")
            res.values = self._read_values(gpu, batch.check_positions)
            res.ok = True
        except _Timeout as e:
            res.error_class, res.error = "timeout", str(e)
        except _BadProgram as e:
            res.error_class, res.error = "harness", str(e)
        except Exception as e:
            res.error_class = self._classify(e, stage)
            res.error = f"{type(e).__name__}: {e}"[:4000]
            if res.error_class != "device-lost":
                self._unmap_all(gpu)
        finally:
            for b in scratch:
                try:
                    b.destroy()
                except Exception:
                    pass
        return res

    def _program(self, cand: Candidate, gpu: _BatchGpu, scratch: list[Any]) -> "_Program":
        """Compile the candidate's dispatches: (pipeline, bind group, grid) each, in order. Scratch
        buffers are created zeroed into ``scratch`` (the caller destroys them)."""
        dev, wgpu, k = self._device, self._wgpu, cand.kernel
        named = dict(gpu.named)
        for name, size in k.scratch:
            buf = dev.create_buffer(label=name, size=4 * size, usage=wgpu.BufferUsage.STORAGE | wgpu.BufferUsage.COPY_SRC)
            scratch.append(buf)
            named[name] = buf
        steps = [(k.code, k.entry, k.workgroups, k.bindings),
                 *((d.code, d.entry, d.workgroups, d.bindings) for d in k.then)]
        program: _Program = []
        for i, (code, entry, grid, bindings) in enumerate(steps):
            module = dev.create_shader_module(label=f"{cand.id}.{i}", code=code)
            if not bindings:
                layout, bind = gpu.batch_bindings(dev)
            else:
                missing = [n for n, _ in bindings if n not in named]
                if missing:
                    raise _BadProgram(f"dispatch {i} binds unknown buffers {missing}")
                kind = {"read": wgpu.BufferBindingType.read_only_storage, "read_write": wgpu.BufferBindingType.storage}
                bgl = dev.create_bind_group_layout(entries=[
                    {"binding": j, "visibility": wgpu.ShaderStage.COMPUTE, "buffer": {"type": kind[acc]}}
                    for j, (_, acc) in enumerate(bindings)])
                bind = dev.create_bind_group(layout=bgl, entries=[
                    {"binding": j, "resource": {"buffer": named[n], "offset": 0, "size": named[n].size}}
                    for j, (n, _) in enumerate(bindings)])
                layout = dev.create_pipeline_layout(bind_group_layouts=[bgl])
            pipeline = dev.create_compute_pipeline(label=f"{cand.id}.{i}", layout=layout,
                                                   compute={"module": module, "entry_point": entry})
            program.append((pipeline, bind, tuple(grid)))
        return program

    @staticmethod
    def _unmap_all(gpu: _BatchGpu) -> None:
        """Leave no staging buffer mapped after a failed step, so the next candidate can map it."""
        for b in (gpu.staging, gpu.ts_staging, gpu.sync_dst):
            try:
                if b is not None and b.map_state == "mapped":
                    b.unmap()
            except Exception:
                pass

    def _classify(self, e: Exception, stage: str) -> str:
        if _LOST.search(str(e)) or (stage != "compile" and not self._device_alive()):
            self._lost = True
            return "device-lost"
        if stage == "compile":
            return "compile"
        if isinstance(e, self._wgpu.GPUValidationError):
            return "validation"
        return "runtime"

    def _device_alive(self) -> bool:
        try:
            self._device.create_buffer(size=4, usage=self._wgpu.BufferUsage.COPY_DST).destroy()
            return True
        except Exception as e:
            return not _LOST.search(str(e))

    # ----- GPU steps

    def _encode(self, program: "_Program", gpu: _BatchGpu, reps: int, timestamps: bool) -> Any:
        enc = self._device.create_command_encoder()
        writes = None
        if timestamps:
            writes = {"query_set": gpu.query_set, "beginning_of_pass_write_index": 0, "end_of_pass_write_index": 1}
        cp = enc.begin_compute_pass(timestamp_writes=writes)
        if len(program) == 1:
            pipeline, bind, grid = program[0]
            cp.set_pipeline(pipeline)
            cp.set_bind_group(0, bind)
            for _ in range(reps):
                cp.dispatch_workgroups(*grid)
        else:
            for _ in range(reps):
                for pipeline, bind, grid in program:
                    cp.set_pipeline(pipeline)
                    cp.set_bind_group(0, bind)
                    cp.dispatch_workgroups(*grid)
        cp.end()
        return enc

    def _submit(self, program: "_Program", gpu: _BatchGpu, reps: int) -> None:
        self._device.queue.submit([self._encode(program, gpu, reps, False).finish()])

    def _sync(self, gpu: _BatchGpu) -> None:
        """Wait for all submitted work by mapping a 4-byte buffer copied after it (wgpu 0.32's
        on_submitted_work_done_sync is broken)."""
        enc = self._device.create_command_encoder()
        enc.copy_buffer_to_buffer(gpu.sync_src, 0, gpu.sync_dst, 0, 4)
        self._device.queue.submit([enc.finish()])
        gpu.sync_dst.map_sync(self._wgpu.MapMode.READ)
        gpu.sync_dst.unmap()

    def _wall_sample(self, program: "_Program", gpu: _BatchGpu, reps: int) -> float:
        """Milliseconds per run (all dispatches): encode + submit + copy of the whole output + map/read."""
        t0 = time.perf_counter()
        enc = self._encode(program, gpu, reps, False)
        if gpu.staging is not None:
            enc.copy_buffer_to_buffer(gpu.output, 0, gpu.staging, 0, gpu.output_bytes)
        self._device.queue.submit([enc.finish()])
        if gpu.staging is not None:
            gpu.staging.map_sync(self._wgpu.MapMode.READ)
            gpu.staging.read_mapped(copy=True)
            gpu.staging.unmap()
        else:
            self._sync(gpu)
        return (time.perf_counter() - t0) * 1e3 / reps

    def _timestamp_sample(self, program: "_Program", gpu: _BatchGpu, reps: int) -> float:
        """Milliseconds per run (all dispatches) from the pass's begin/end timestamps."""
        enc = self._encode(program, gpu, reps, True)
        enc.resolve_query_set(gpu.query_set, 0, 2, gpu.ts_resolve, 0)
        enc.copy_buffer_to_buffer(gpu.ts_resolve, 0, gpu.ts_staging, 0, 16)
        self._device.queue.submit([enc.finish()])
        gpu.ts_staging.map_sync(self._wgpu.MapMode.READ)
        begin, end = (int(x) for x in np.frombuffer(gpu.ts_staging.read_mapped(copy=True), dtype=np.uint64)[:2])
        gpu.ts_staging.unmap()
        return (end - begin) * (self._timestamp_period_ns or 1.0) * 1e-6 / reps

    def _read_values(self, gpu: _BatchGpu, positions: tuple[int, ...]) -> list[float] | None:
        if gpu.staging is None:
            return None
        enc = self._device.create_command_encoder()
        enc.copy_buffer_to_buffer(gpu.output, 0, gpu.staging, 0, gpu.output_bytes)
        self._device.queue.submit([enc.finish()])
        gpu.staging.map_sync(self._wgpu.MapMode.READ)
        out = np.frombuffer(gpu.staging.read_mapped(copy=True), dtype=np.float16 if gpu.output_dtype == "f16" else np.float32)
        gpu.staging.unmap()
        return [float(v) for v in out[np.asarray(positions, dtype=np.int64)]]
