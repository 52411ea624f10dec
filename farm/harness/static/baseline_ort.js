// ONNX Runtime Web as a baseline: webgpu, wasm (SIMD; threads when isolated), webgl. The spec
// carries a one-operator ONNX model at the job's shapes (farm/baselines/onnx_models.py).
import { BaselineError, NM, errorText, requireServed, prngInputs } from './baseline_common.js';

const DIST = `${NM}/onnxruntime-web/dist/`;
const MODULE_URL = `${DIST}ort.all.min.mjs`;
const BACKENDS = ['webgpu', 'wasm', 'webgl'];
// ORT warns with this text when it places nodes on its CPU EP instead of the one asked for.
const CPU_PLACEMENT = /not assigned to the preferred execution providers/i;

let ortPromise = null;
// Sessions by backend and model, so interleaved rounds time the same compiled session.
const sessions = new Map();
const MAX_SESSIONS = 16;
let boundAdapter = null; // the GPUAdapter handed to ORT's WebGPU EP (it keeps its first one)

async function loadOrt() {
  if (!ortPromise) {
    ortPromise = (async () => {
      await requireServed(MODULE_URL);
      const ort = await import(MODULE_URL);
      // Absolute URLs, or ORT answers "no available backend found".
      ort.env.wasm.wasmPaths = `${location.origin}${DIST}`;
      ort.env.wasm.numThreads = self.crossOriginIsolated ? Math.max(1, navigator.hardwareConcurrency || 1) : 1;
      ort.env.wasm.proxy = false;
      return ort;
    })();
    ortPromise.catch(() => { ortPromise = null; });
  }
  return ortPromise;
}

function decodeModel(spec) {
  const m = spec.model;
  if (!m || m.format !== 'onnx' || typeof m.base64 !== 'string') {
    throw new BaselineError('harness', 'ort baseline: spec.model must be {format: "onnx", base64: ...}');
  }
  const bin = atob(m.base64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return bytes;
}

// Runs fn while collecting what ORT prints, so a CPU placement warning cannot pass unseen.
async function capturingConsole(fn) {
  const lines = [];
  const saved = {};
  for (const k of ['log', 'warn', 'error', 'info']) {
    saved[k] = console[k];
    console[k] = (...args) => { lines.push(args.map(String).join(' ')); saved[k].apply(console, args); };
  }
  try {
    return { value: await fn(), lines };
  } finally {
    Object.assign(console, saved);
  }
}

function gpuInputs(ort, device, inputs, dims) {
  const feeds = {};
  const buffers = [];
  for (const [name, data] of Object.entries(inputs)) {
    const buf = device.createBuffer({
      size: Math.max(16, Math.ceil(data.byteLength / 16) * 16),
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    });
    device.queue.writeBuffer(buf, 0, data);
    buffers.push(buf);
    feeds[name] = ort.Tensor.fromGpuBuffer(buf, { dataType: 'float32', dims: dims[name] });
  }
  return { feeds, buffers };
}

export async function setupOrt(spec, out, host) {
  const backend = spec.backend;
  if (!BACKENDS.includes(backend)) {
    throw new BaselineError('harness', `ort backend ${backend} is not supported (${BACKENDS.join(', ')})`);
  }
  const ort = await loadOrt();
  out.libraryVersion = ort.env.versions ? (ort.env.versions.web || ort.env.versions.common) : null;
  let sameAdapter = null;
  if (backend === 'webgpu') {
    if (!('gpu' in navigator) || !navigator.gpu) throw new BaselineError('fallback', 'navigator.gpu is missing: no WebGPU for ORT');
    if (spec.device === 'shared' && !boundAdapter) {
      // ORT 1.30's WebGPU EP (JSEP) ignores env.webgpu.device and always requests its own device
      // from env.webgpu.adapter; a GPUAdapter gives one device only, so ORT gets a fresh adapter
      // requested with the harness's options: the same adapter, a device of its own.
      try { sameAdapter = await host.requestAdapter(); } catch (e) { sameAdapter = null; }
      if (!sameAdapter) throw new BaselineError('fallback', "no second adapter with the harness's options for ORT");
      ort.env.webgpu.adapter = sameAdapter;
      boundAdapter = sameAdapter;
    } else if (spec.device === 'shared') {
      sameAdapter = boundAdapter;
    }
  } else if (backend === 'webgl') {
    // Measured: ORT 1.30's WebGL EP ignores preferredOutputLocation 'texture', so every call
    // reads its output back to the CPU (TF.js and ORT WebGPU sync once per sample).
    out.notes.push('ORT webgl returns each output on the CPU: every call includes a readback');
  } else if (backend === 'wasm') {
    out.threads = ort.env.wasm.numThreads;
    out.simd = true; // ORT-Web 1.30 ships SIMD builds only
  }

  const key = `${backend}|${spec.model && spec.model.base64}`;
  let session = sessions.get(key);
  out.sessionReused = Boolean(session);
  if (!session) {
    const model = decodeModel(spec);
    const location = backend === 'webgpu' ? 'gpu-buffer' : 'cpu';
    const { value, lines } = await capturingConsole(async () => {
      try {
        return await ort.InferenceSession.create(model, {
          executionProviders: [backend], graphOptimizationLevel: 'all', preferredOutputLocation: location,
        });
      } catch (e) {
        throw new BaselineError('fallback', `ORT session on ${backend} failed: ${errorText(e)}`);
      }
    });
    const placed = lines.find((l) => CPU_PLACEMENT.test(l));
    if (placed) {
      out.backendUsed = 'cpu';
      await value.release();
      throw new BaselineError('fallback', `ORT placed nodes on its CPU EP instead of ${backend}: ${placed}`);
    }
    session = value;
    sessions.set(key, session);
    if (sessions.size > MAX_SESSIONS) {
      const [oldKey, old] = sessions.entries().next().value;
      sessions.delete(oldKey);
      await old.release();
    }
  }
  out.backendUsed = backend;

  if (backend === 'webgpu') {
    const adapter = ort.env.webgpu.adapter;
    if (spec.device === 'shared' && adapter !== sameAdapter) {
      out.flags.push('adapter-mismatch');
      out.notes.push("ORT's WebGPU EP did not take the adapter it was given");
    }
    out.deviceSource = spec.device === 'shared' && adapter === sameAdapter ? 'same-adapter' : 'own';
    if (out.deviceSource === 'same-adapter') out.notes.push("ORT 1.30 takes an adapter, not a device: same adapter as the harness, its own GPUDevice");
    out.adapter = adapter ? host.describeAdapter({ adapter, device: await ort.env.webgpu.device }) : null;
  }

  const op = spec.op || {};
  const inputs = prngInputs(spec);
  const dims = {};
  for (const name of session.inputNames) {
    if (!inputs[name]) throw new BaselineError('harness', `ort baseline: model input ${name} has no prng buffer in spec.buffers`);
  }
  const nb = op.batch ?? 1;
  const lead = nb > 1 ? [nb] : [];
  dims.A = [...lead, op.M, op.K];
  dims.B = [...lead, op.K, op.N];
  dims.bias = [op.N];
  // A model with other inputs (a transformer block: x, KV caches) names their shapes.
  if (spec.dims) Object.assign(dims, spec.dims);
  let feeds;
  let gpuBuffers = [];
  if (backend === 'webgpu') {
    ({ feeds, buffers: gpuBuffers } = gpuInputs(ort, await ort.env.webgpu.device, inputs, dims));
  } else {
    feeds = {};
    for (const name of session.inputNames) feeds[name] = new ort.Tensor('float32', inputs[name], dims[name]);
  }
  const outName = session.outputNames[0];
  return {
    run: async () => (await session.run(feeds))[outName],
    read: async (t) => {
      if (backend === 'webgpu' && t.location !== 'gpu-buffer') {
        throw new BaselineError('fallback', `ORT webgpu returned its output in ${t.location}, not a GPU buffer`);
      }
      return t.getData ? await t.getData() : t.data;
    },
    release: (t) => { if (t.location !== 'cpu' && t.dispose) t.dispose(); },
    dispose: async () => {
      for (const f of Object.values(feeds)) { if (f.location !== 'cpu' && f.dispose) f.dispose(); }
      for (const b of gpuBuffers) b.destroy();
      // The session stays cached for the next call with the same model (its compile is cold
      // once per page, as for TF.js's shaders).
    },
  };
}
