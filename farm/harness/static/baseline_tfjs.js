// TF.js 4.x as a baseline: webgpu, webgl, wasm (SIMD, threads when isolated), cpu.
import { BaselineError, NM, SETUP_HINT, errorText, loadScript, prngInputs } from './baseline_common.js';
import { buildTfjsBlock } from './baseline_tfjs_block.js';

const SCRIPTS = {
  core: `${NM}/@tensorflow/tfjs/dist/tf.min.js`,
  webgpu: `${NM}/@tensorflow/tfjs-backend-webgpu/dist/tf-backend-webgpu.min.js`,
  wasm: `${NM}/@tensorflow/tfjs-backend-wasm/dist/tf-backend-wasm.min.js`,
};
const BACKENDS = ['webgpu', 'webgl', 'wasm', 'cpu'];

// The GPUDevice TF.js's 'webgpu' backend was built with when we built it (null: its own).
let sharedWebgpuDevice = null;

async function loadTfjs(backend) {
  await loadScript(SCRIPTS.core);
  const tf = window.tf;
  if (!tf) throw new BaselineError('harness', `${SCRIPTS.core} loaded but defined no global tf`);
  if (backend === 'webgpu' || backend === 'wasm') {
    await loadScript(SCRIPTS[backend]);
    if (backend === 'wasm' && tf.wasm && tf.wasm.setWasmPaths && !tf.wasm.jitfarmPathsSet) {
      // TF.js needs an absolute URL for its .wasm files.
      tf.wasm.setWasmPaths(`${location.origin}${NM}/@tensorflow/tfjs-backend-wasm/dist/`);
      // Every core when isolated, as ORT gets (TF.js's own default is half the cores, at most 4).
      if (tf.wasm.setThreadsCount) tf.wasm.setThreadsCount(self.crossOriginIsolated ? Math.max(1, navigator.hardwareConcurrency || 1) : 1);
      tf.wasm.jitfarmPathsSet = true;
    }
  }
  return tf;
}

// Replace TF.js's 'webgpu' factory with one that wraps the harness's device, so TF.js runs on the
// adapter our kernels use (the name stays 'webgpu': TF.js's kernels are registered under it).
async function shareWebgpuDevice(tf, host, out) {
  let state;
  try {
    state = await host.getGpu();
  } catch (e) {
    if (e && e.errorClass === 'device-lost') throw e;
    throw new BaselineError('fallback', `no WebGPU device in this page to share with tfjs: ${errorText(e)}`);
  }
  if (sharedWebgpuDevice !== state.device) {
    if (tf.getBackend() === 'webgpu') tf.setBackend('cpu');
    if ('webgpu' in tf.engine().registryFactory) tf.removeBackend('webgpu');
    const device = state.device;
    const info = state.adapter.info || device.adapterInfo;
    tf.registerBackend('webgpu', () => new tf.WebGPUBackend(device, info), 3);
    sharedWebgpuDevice = device;
  }
  out.deviceSource = 'shared';
  out.adapter = host.describeAdapter(state);
}

function ownAdapter(tf) {
  try {
    const info = tf.backend().adapterInfo;
    if (!info) return null;
    return { vendor: info.vendor ?? '', architecture: info.architecture ?? '', device: '', description: '',
      isFallbackAdapter: false, featureLevel: 'core' };
  } catch (e) {
    return null;
  }
}

export async function setupTfjs(spec, out, host) {
  const backend = spec.backend;
  if (!BACKENDS.includes(backend)) {
    throw new BaselineError('harness', `tfjs backend ${backend} is not supported (${BACKENDS.join(', ')})`);
  }
  const op = spec.op || {};
  const graph = spec.graph ?? 'matmul';
  if (!((op.kind ?? 'matmul') === 'matmul' && graph === 'matmul') && !(op.kind === 'block' && graph === 'block')) {
    throw new BaselineError('harness', `tfjs baseline: op ${op.kind}/${spec.graph} is not supported (matmul, block)`);
  }
  const tf = await loadTfjs(backend);
  out.libraryVersion = (tf.version && (tf.version.tfjs || tf.version['tfjs-core'])) || null;
  if (!tf.engine().registryFactory[backend]) {
    throw new BaselineError('harness', `tfjs backend ${backend} is not registered (script missing?): ${SETUP_HINT}`);
  }
  if (backend === 'webgpu' && spec.device === 'shared') {
    await shareWebgpuDevice(tf, host, out);
  } else if (backend === 'webgpu' && sharedWebgpuDevice) {
    throw new BaselineError('harness', "tfjs webgpu already runs on the harness's device in this page; " +
      'an own device needs a fresh page (use one device source per run)');
  }
  let set = false;
  let why = '';
  try { set = await tf.setBackend(backend); } catch (e) { why = `: ${errorText(e)}`; }
  let used = tf.getBackend() ?? null;
  if (!set || !(backend in tf.engine().registry)) {
    // TF.js still names the backend it failed to start; tf.ready() then silently starts the best
    // registered one that works, as a user's next op would. Record that one.
    try { await tf.ready(); used = tf.getBackend() ?? null; } catch (e) { used = null; }
    if (used === backend) used = null;
  }
  out.backendUsed = used;
  if (!set || used !== backend) {
    throw new BaselineError('fallback', `tf.setBackend('${backend}') ${set ? 'succeeded' : 'failed'}${why}; backend in use: ${used}`);
  }
  await tf.ready();
  if (backend === 'webgpu' && !out.adapter) {
    out.deviceSource = 'own';
    out.adapter = ownAdapter(tf);
  }
  if (backend === 'wasm') {
    out.simd = Boolean(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'));
    out.threads = tf.wasm.getThreadsCount ? tf.wasm.getThreadsCount() : null;
  }
  if (backend === 'cpu') out.threads = 1;

  const inputs = prngInputs(spec);
  if (graph === 'block') {
    const b = buildTfjsBlock(tf, spec, inputs);
    return timedOp(tf, backend, b.fn, b.dispose);
  }
  const { M, N, K } = op;
  const nb = op.batch ?? 1;
  const a = tf.tensor(inputs.A, nb > 1 ? [nb, M, K] : [M, K], 'float32');
  const b = tf.tensor(inputs.B, nb > 1 ? [nb, K, N] : [K, N], 'float32');
  return timedOp(tf, backend, () => tf.matMul(a, b), () => { a.dispose(); b.dispose(); });
}

// The op measureOp times: `fn()` returns the output tensor; GPU time of one call from TF.js's own
// timestamp queries, where its device has them.
function timedOp(tf, backend, fn, dispose) {
  const gpuTime = backend === 'webgpu' && tf.backend().supportTimestampQuery
    ? async () => {
      let r = null;
      const info = await tf.time(() => { r = fn(); });
      await r.data();
      r.dispose();
      return typeof info.kernelMs === 'number' ? info.kernelMs : null;
    }
    : null;
  return { gpuTime, run: fn, read: (t) => t.data(), release: (t) => t.dispose(), dispose };
}
