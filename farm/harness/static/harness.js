// jitfarm in-browser harness: a thin executor for farm/harness/PROTOCOL.md.
// It compiles and times what the driver sends and answers with raw samples; it decides nothing a
// tuner decides. Exposes window.jitfarm = {probe, runBatch, runBaseline, prng, version}.
import { prngF32 } from './prng.js';
import { probeWasm, runWasmBatch } from './wasm_runner.js';

const VERSION = '0.1.0';
const SETUP_HINT = "run the README's setup command (npm ci in farm/harness) to install the baseline libraries";
const PARAMS = new URLSearchParams(location.search);
const FEATURE_LEVEL = PARAMS.get('featureLevel') === 'compatibility' ? 'compatibility' : 'core';

// Adapter limits raised to the adapter's maximum when the device is requested.
const RAISED_LIMITS = [
  'maxComputeInvocationsPerWorkgroup', 'maxComputeWorkgroupStorageSize',
  'maxComputeWorkgroupSizeX', 'maxComputeWorkgroupSizeY', 'maxComputeWorkgroupSizeZ',
  'maxComputeWorkgroupsPerDimension', 'maxStorageBufferBindingSize', 'maxBufferSize',
  'maxStorageBuffersPerShaderStage', 'maxBindingsPerBindGroup',
];
// A timestamp sample must span this many timer ticks, so quantization stays under 10 %.
const MIN_TICKS_PER_SAMPLE = 10;

const now = () => performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const clamp = (x, lo, hi) => Math.min(hi, Math.max(lo, x));

class HarnessError extends Error {
  constructor(errorClass, message) {
    super(message);
    this.errorClass = errorClass;
  }
}

class TimeoutError extends Error {}

function errorMessage(e) {
  if (e == null) return 'unknown error';
  if (typeof e === 'string') return e;
  return e.message ? `${e.name && e.name !== 'Error' ? e.name + ': ' : ''}${e.message}` : String(e);
}

function withTimeout(promise, ms, abort, what) {
  let timer = null;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => {
      abort.aborted = true;
      reject(new TimeoutError(`${what} exceeded timeoutMs=${ms}`));
    }, ms);
  });
  promise.catch(() => {}); // a late rejection after the timeout is expected, not unhandled
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// ---------------------------------------------------------------------------------------------
// Device: requested once, replaced after a timeout (likely stuck) or a loss.

let gpuState = null;
let gpuPromise = null;
let timerResolution = null; // {timestamp, wall} in ms, measured once
let wedged = null; // why WebGPU is unusable on this page (set once a device request hangs)
let lastTimedOut = null; // id of the last candidate that timed out
const ACQUIRE_TIMEOUT_MS = 10000;

async function acquireGpu() {
  if (!('gpu' in navigator) || !navigator.gpu) {
    throw new HarnessError('harness', 'navigator.gpu is missing: this browser exposes no WebGPU ' +
      '(headless Chromium without a GPU needs --enable-unsafe-webgpu)');
  }
  const options = FEATURE_LEVEL === 'compatibility' ? { featureLevel: 'compatibility' } : {};
  const adapter = await navigator.gpu.requestAdapter(options);
  if (!adapter) {
    throw new HarnessError('harness', `requestAdapter(${JSON.stringify(options)}) returned null: no WebGPU ` +
      'adapter (Chromium without a GPU needs --enable-unsafe-webgpu; lavapipe needs the compatibility profile flags)');
  }
  const requiredLimits = {};
  for (const name of RAISED_LIMITS) {
    if (typeof adapter.limits[name] === 'number') requiredLimits[name] = adapter.limits[name];
  }
  const hasTimestamp = adapter.features.has('timestamp-query');
  const device = await adapter.requestDevice({
    requiredLimits,
    requiredFeatures: hasTimestamp ? ['timestamp-query'] : [],
  });
  const state = { adapter, device, lost: null, hasTimestamp };
  device.lost.then((info) => {
    state.lost = info;
    if (info.reason !== 'destroyed') console.error(`jitfarm: WebGPU device lost (${info.reason}): ${info.message}`);
  });
  device.onuncapturederror = (ev) => console.error(`jitfarm: uncaptured WebGPU error: ${ev.error.message}`);
  return state;
}

async function getGpu() {
  if (gpuState && !gpuState.lost) return gpuState;
  if (!gpuPromise) {
    gpuPromise = acquireGpu()
      .then((s) => { gpuState = s; return s; })
      .finally(() => { gpuPromise = null; });
  }
  return gpuPromise;
}

function dropGpu() {
  if (gpuState) {
    try { gpuState.device.destroy(); } catch (e) { /* already gone */ }
  }
  gpuState = null;
}

function featureLevelOf(state) {
  if (typeof state.adapter.featureLevel === 'string') return state.adapter.featureLevel;
  if (FEATURE_LEVEL === 'core') return 'core';
  return state.device.features.has('core-features-and-limits') ? 'core' : 'compatibility';
}

function describeAdapterInfo(info, extra) {
  info = info || {};
  return {
    vendor: info.vendor ?? '',
    architecture: info.architecture ?? '',
    device: info.device ?? '',
    description: info.description ?? '',
    isFallbackAdapter: Boolean(info.isFallbackAdapter ?? extra.isFallbackAdapter ?? false),
    featureLevel: extra.featureLevel,
  };
}

function numericFields(obj) {
  const out = {};
  for (const key in obj) {
    const v = obj[key];
    if (typeof v === 'number') out[key] = v;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Timer resolution.

function measureWallResolution() {
  let best = Infinity;
  for (let i = 0; i < 64; i++) {
    const t0 = now();
    let t1 = t0;
    while (t1 === t0) t1 = now();
    best = Math.min(best, t1 - t0);
  }
  return Math.round(best * 1e6) / 1e6; // drop float noise below 1 ns
}

const TINY_WGSL = `
@group(0) @binding(0) var<storage, read_write> buf: array<u32>;
@compute @workgroup_size(1) fn main() { buf[0] = buf[0] + 1u; }`;

// Smallest non-zero step between GPU timestamps of many back-to-back tiny passes.
async function measureTimestampResolution(state) {
  const device = state.device;
  const passes = 64;
  const count = 2 * passes;
  const querySet = device.createQuerySet({ type: 'timestamp', count });
  const resolve = device.createBuffer({ size: 8 * count, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
  const read = device.createBuffer({ size: 8 * count, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const storage = device.createBuffer({ size: 16, usage: GPUBufferUsage.STORAGE });
  try {
    const pipeline = await device.createComputePipelineAsync({
      layout: 'auto', compute: { module: device.createShaderModule({ code: TINY_WGSL }), entryPoint: 'main' },
    });
    const bindGroup = device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: storage } }],
    });
    let best = Infinity;
    for (let round = 0; round < 4 && !Number.isFinite(best); round++) {
      const enc = device.createCommandEncoder();
      for (let i = 0; i < passes; i++) {
        const pass = enc.beginComputePass({
          timestampWrites: { querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 },
        });
        pass.setPipeline(pipeline);
        pass.setBindGroup(0, bindGroup);
        for (let k = 0; k < (1 << (2 * round)); k++) pass.dispatchWorkgroups(1);
        pass.end();
      }
      enc.resolveQuerySet(querySet, 0, count, resolve, 0);
      enc.copyBufferToBuffer(resolve, 0, read, 0, 8 * count);
      device.queue.submit([enc.finish()]);
      await read.mapAsync(GPUMapMode.READ);
      const ts = Array.from(new BigUint64Array(read.getMappedRange().slice(0))).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      read.unmap();
      for (let i = 1; i < ts.length; i++) {
        const d = Number(ts[i] - ts[i - 1]);
        if (d > 0 && d < best) best = d;
      }
    }
    return Number.isFinite(best) ? best / 1e6 : null;
  } finally {
    querySet.destroy();
    resolve.destroy();
    read.destroy();
    storage.destroy();
  }
}

async function getTimerResolution(state) {
  if (timerResolution) return timerResolution;
  const wall = measureWallResolution();
  let timestamp = null;
  if (state && state.hasTimestamp) {
    try { timestamp = await measureTimestampResolution(state); } catch (e) {
      console.error(`jitfarm: timestamp resolution: ${errorMessage(e)}`);
    }
  }
  timerResolution = { timestamp, wall };
  return timerResolution;
}

// ---------------------------------------------------------------------------------------------
// probe

async function probe() {
  const base = {
    webgpu: false, error: null, adapter: null, limits: {}, features: [],
    userAgent: navigator.userAgent, crossOriginIsolated: Boolean(self.crossOriginIsolated),
    hardwareConcurrency: navigator.hardwareConcurrency ?? null,
    requestedFeatureLevel: FEATURE_LEVEL, harnessVersion: VERSION,
    timerResolutionMs: { timestamp: null, wall: measureWallResolution() },
    wasm: await probeWasm(),
  };
  let state;
  try {
    state = await getGpuBounded(ACQUIRE_TIMEOUT_MS);
  } catch (e) {
    return { ...base, error: errorMessage(e), wedged };
  }
  const res = await getTimerResolution(state);
  return {
    ...base,
    webgpu: true,
    adapter: describeAdapterInfo(state.adapter.info || state.device.adapterInfo, {
      isFallbackAdapter: state.adapter.isFallbackAdapter, featureLevel: featureLevelOf(state),
    }),
    limits: numericFields(state.device.limits),
    adapterLimits: numericFields(state.adapter.limits),
    features: Array.from(state.device.features).sort(),
    adapterFeatures: Array.from(state.adapter.features).sort(),
    timerResolutionMs: { timestamp: res.timestamp, wall: res.wall },
  };
}

// ---------------------------------------------------------------------------------------------
// runBatch

// Runs fn inside validation/internal/out-of-memory error scopes; a captured validation error
// becomes `validationClass` ('compile' while compiling), the others 'runtime'.
async function scoped(device, validationClass, fn) {
  device.pushErrorScope('out-of-memory');
  device.pushErrorScope('internal');
  device.pushErrorScope('validation');
  let value;
  let thrown = null;
  try { value = await fn(); } catch (e) { thrown = e; }
  const pop = () => device.popErrorScope().catch(() => null);
  const validation = await pop();
  const internal = await pop();
  const oom = await pop();
  if (validation) throw new HarnessError(validationClass, validation.message);
  if (internal) throw new HarnessError('runtime', `internal error: ${internal.message}`);
  if (oom) throw new HarnessError('runtime', `out of memory: ${oom.message}`);
  if (thrown) throw thrown;
  return value;
}

function checkAbort(abort) {
  if (abort.aborted) throw new TimeoutError('aborted after timeout');
}

async function makeBatchContext(state, batch, wantTimestamp) {
  const device = state.device;
  const created = [];
  const ctx = {
    state, device, buffers: [], output: null, outBytes: 0,
    destroy() { for (const r of created) { try { r.destroy(); } catch (e) { /* gone */ } } created.length = 0; },
  };
  try {
    await scoped(device, 'harness', async () => {
      for (const spec of batch.buffers) {
        if ((spec.dtype ?? 'f32') !== 'f32') throw new HarnessError('harness', `buffer ${spec.name}: dtype ${spec.dtype} is not supported (f32 only)`);
        const bytes = Math.max(4, spec.size * 4);
        const prng = spec.init === 'prng';
        if (!prng && spec.init !== 'zero') throw new HarnessError('harness', `buffer ${spec.name}: unknown init ${spec.init}`);
        const buf = device.createBuffer({
          size: bytes, mappedAtCreation: prng,
          usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
        });
        created.push(buf);
        if (prng) {
          new Float32Array(buf.getMappedRange()).set(prngF32(spec.seed, spec.stream, spec.size));
          buf.unmap();
        }
        ctx.buffers.push({ spec, buf });
        if (spec.output) { ctx.output = buf; ctx.outBytes = bytes; }
      }
      if (!ctx.output) throw new HarnessError('harness', 'batch has no buffer with output: true');
      ctx.layout = device.createBindGroupLayout({
        entries: batch.buffers.map((b) => ({
          binding: b.binding, visibility: GPUShaderStage.COMPUTE,
          buffer: { type: b.access === 'read' ? 'read-only-storage' : 'storage' },
        })),
      });
      ctx.pipelineLayout = device.createPipelineLayout({ bindGroupLayouts: [ctx.layout] });
      ctx.bindGroup = device.createBindGroup({
        layout: ctx.layout,
        entries: ctx.buffers.map((b) => ({ binding: b.spec.binding, resource: { buffer: b.buf } })),
      });
      ctx.staging = device.createBuffer({ size: ctx.outBytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
      created.push(ctx.staging);
      if (wantTimestamp) {
        ctx.querySet = device.createQuerySet({ type: 'timestamp', count: 2 });
        ctx.queryResolve = device.createBuffer({ size: 16, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
        ctx.queryRead = device.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
        created.push(ctx.querySet, ctx.queryResolve, ctx.queryRead);
      }
    });
  } catch (e) {
    ctx.destroy();
    if (e instanceof HarnessError) throw new HarnessError('harness', `batch buffers: ${e.message}`);
    throw e;
  }
  return ctx;
}

function encodePass(enc, ctx, pipeline, wg, reps, timestamp) {
  const pass = enc.beginComputePass(timestamp
    ? { timestampWrites: { querySet: ctx.querySet, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 } }
    : {});
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, ctx.bindGroup);
  for (let i = 0; i < reps; i++) pass.dispatchWorkgroups(wg[0], wg[1] ?? 1, wg[2] ?? 1);
  pass.end();
}

// Copy the whole output to the staging buffer and wait for the map: the sync TF.js's data() does.
async function readBack(ctx, enc, keep) {
  enc.copyBufferToBuffer(ctx.output, 0, ctx.staging, 0, ctx.outBytes);
  ctx.device.queue.submit([enc.finish()]);
  await ctx.staging.mapAsync(GPUMapMode.READ);
  const data = keep ? new Float32Array(ctx.staging.getMappedRange().slice(0)) : null;
  ctx.staging.unmap();
  return data;
}

// Wall time of `reps` dispatches in one pass, with sync by readback.
async function wallRun(ctx, pipeline, wg, reps) {
  const t0 = now();
  const enc = ctx.device.createCommandEncoder();
  encodePass(enc, ctx, pipeline, wg, reps, false);
  await readBack(ctx, enc, false);
  return now() - t0;
}

async function timestampRun(ctx, pipeline, wg, reps) {
  const enc = ctx.device.createCommandEncoder();
  encodePass(enc, ctx, pipeline, wg, reps, true);
  enc.resolveQuerySet(ctx.querySet, 0, 2, ctx.queryResolve, 0);
  enc.copyBufferToBuffer(ctx.queryResolve, 0, ctx.queryRead, 0, 16);
  ctx.device.queue.submit([enc.finish()]);
  await ctx.queryRead.mapAsync(GPUMapMode.READ);
  const [begin, end] = new BigUint64Array(ctx.queryRead.getMappedRange().slice(0));
  ctx.queryRead.unmap();
  return end > begin ? Number(end - begin) / 1e6 : 0;
}

// reps = clamp(ceil(minMs / t), 1, maxReps) from a one-run time t, then refined by timing
// `sample(reps)` until a sample reaches 90 % of minMs or reps hits maxReps. `wallSamples`: the
// samples use the wall clock too, so a one-run time already over minMs needs no refinement.
async function calibrateReps(tOne, minMs, maxReps, resolutionMs, sample, abort, wallSamples) {
  const floor = Math.max(resolutionMs || 0, 1e-6);
  let reps = clamp(Math.ceil(minMs / Math.max(tOne, floor)), 1, maxReps);
  if (wallSamples && tOne >= minMs) return reps;
  for (let i = 0; i < 3 && reps < maxReps; i++) {
    checkAbort(abort);
    const t = await sample(reps);
    if (t >= 0.9 * minMs) break;
    reps = clamp(Math.ceil(reps * minMs / Math.max(t, floor)), reps + 1, maxReps);
  }
  return reps;
}

function formatCompilationMessages(messages) {
  return messages.map((m) => `${m.lineNum}:${m.linePos}: ${m.type}: ${m.message}`).join('\n');
}

async function runCandidate(ctx, cand, measure, positions, timer, abort) {
  const device = ctx.device;
  const wg = cand.workgroups;
  const out = {
    id: cand.id, ok: false, errorClass: null, error: null, compileMs: null, firstRunMs: null,
    samplesMs: [], reps: 0, timer, values: null,
  };

  // 1. compile
  const tc = now();
  const pipeline = await scoped(device, 'compile', async () => {
    const module = device.createShaderModule({ code: cand.code });
    const info = await module.getCompilationInfo();
    const errors = info.messages.filter((m) => m.type === 'error');
    if (errors.length) throw new HarnessError('compile', formatCompilationMessages(errors));
    try {
      return await device.createComputePipelineAsync({
        layout: ctx.pipelineLayout, compute: { module, entryPoint: cand.entry || 'main' },
      });
    } catch (e) {
      throw new HarnessError('compile', errorMessage(e));
    }
  });
  out.compileMs = now() - tc;
  checkAbort(abort);

  await scoped(device, 'validation', async () => {
    // 2. clear the output, run once, sync
    const t1 = now();
    const enc = device.createCommandEncoder();
    enc.clearBuffer(ctx.output);
    encodePass(enc, ctx, pipeline, wg, 1, false);
    await readBack(ctx, enc, false);
    out.firstRunMs = now() - t1;
  });
  checkAbort(abort);

  await scoped(device, 'validation', async () => {
    // 3. warmup
    for (let i = 0; i < (measure.warmup ?? 0); i++) {
      const enc = device.createCommandEncoder();
      encodePass(enc, ctx, pipeline, wg, 1, false);
      device.queue.submit([enc.finish()]);
      await device.queue.onSubmittedWorkDone();
      checkAbort(abort);
    }

    // 4. calibrate: a first estimate from one run on the wall clock, then refined (at most 3
    //    times) with the timer the samples use, so one sample spans about minSampleMs of that
    //    timer rather than of a readback-dominated wall time.
    const maxReps = Math.max(1, Math.floor(measure.maxReps ?? 256));
    let minMs = measure.minSampleMs ?? 0;
    if (timer.kind === 'timestamp' && timer.resolutionMs) minMs = Math.max(minMs, MIN_TICKS_PER_SAMPLE * timer.resolutionMs);
    const sample = (reps) => (timer.kind === 'timestamp'
      ? timestampRun(ctx, pipeline, wg, reps)
      : wallRun(ctx, pipeline, wg, reps));
    const tOne = await wallRun(ctx, pipeline, wg, 1);
    out.reps = await calibrateReps(tOne, minMs, maxReps, timer.resolutionMs, sample, abort, timer.kind === 'wall');

    // 5. samples
    for (let s = 0; s < Math.max(1, measure.samples ?? 1); s++) {
      checkAbort(abort);
      out.samplesMs.push((await sample(out.reps)) / out.reps);
    }

    // 6. values at the check positions
    checkAbort(abort);
    const data = await readBack(ctx, device.createCommandEncoder(), true);
    out.values = positions.map((p) => (p >= 0 && p < data.length ? data[p] : NaN));
  });

  out.ok = true;
  return out;
}

async function isLost(state) {
  if (!state) return null;
  if (state.lost) return state.lost;
  await Promise.race([state.device.lost, sleep(20)]);
  return state.lost;
}

function notRunResult(id, why) {
  return {
    id, ok: false, errorClass: 'device-lost', error: why, notRun: true, compileMs: null, firstRunMs: null,
    samplesMs: [], reps: 0, timer: { kind: 'wall', resolutionMs: null }, values: null,
  };
}

// A device request that cannot finish in time means the GPU process is stuck (typically on a
// runaway kernel that a timeout abandoned): nothing on this page can use WebGPU any more.
async function getGpuBounded(ms) {
  if (wedged) throw new HarnessError('device-lost', wedged);
  try {
    return await withTimeout(getGpu(), ms, { aborted: false }, 'requesting a WebGPU device');
  } catch (e) {
    if (!(e instanceof TimeoutError)) throw e;
    wedged = `the GPU stopped answering (${e.message}${lastTimedOut ? `, after candidate ${lastTimedOut} timed out` : ''}): ` +
      'the browser must be restarted';
    console.error(`jitfarm: ${wedged}`);
    throw new HarnessError('device-lost', wedged);
  }
}

async function runBatch(batch) {
  if ((batch.candidates || []).some((c) => c.kind === 'wasm')) {
    return runWasmBatch(batch, { wallResolutionMs: measureWallResolution() });
  }
  const measure = batch.measure || {};
  const positions = (batch.check && batch.check.positions) || [];
  const timeoutMs = measure.timeoutMs ?? 30000;
  const results = [];
  let ctx = null;
  for (const cand of batch.candidates || []) {
    if (wedged) { results.push(notRunResult(cand.id, wedged)); continue; }
    const abort = { aborted: false };
    let timer = { kind: 'wall', resolutionMs: null };
    try {
      if (ctx && ctx.state.lost) { ctx.destroy(); ctx = null; }
      if (!ctx) {
        let state;
        try {
          state = await getGpuBounded(Math.min(timeoutMs, ACQUIRE_TIMEOUT_MS));
        } catch (e) {
          if (!wedged) throw e;
          results.push(notRunResult(cand.id, wedged));
          continue;
        }
        ctx = await withTimeout((async () => {
          const res = await getTimerResolution(state);
          const useTs = measure.timer !== 'wall' && state.hasTimestamp;
          const c = await makeBatchContext(state, batch, useTs);
          c.timer = useTs ? { kind: 'timestamp', resolutionMs: res.timestamp } : { kind: 'wall', resolutionMs: res.wall };
          if (abort.aborted) c.destroy();
          return c;
        })(), timeoutMs, abort, 'creating the batch buffers');
      }
      timer = ctx.timer;
      results.push(await withTimeout(runCandidate(ctx, cand, measure, positions, ctx.timer, abort),
        timeoutMs, abort, `candidate ${cand.id}`));
    } catch (e) {
      const fail = {
        id: cand.id, ok: false, errorClass: 'runtime', error: errorMessage(e), compileMs: null,
        firstRunMs: null, samplesMs: [], reps: 0, timer, values: null,
      };
      if (e instanceof TimeoutError) {
        // The device is likely stuck on the runaway kernel: throw it away; the next candidate
        // gets a new one (or finds the GPU process wedged, see getGpuBounded).
        fail.errorClass = 'timeout';
        lastTimedOut = cand.id;
        if (ctx) ctx.destroy();
        ctx = null;
        dropGpu();
      } else {
        const lost = await isLost(ctx ? ctx.state : gpuState);
        if (lost && lost.reason !== 'destroyed') {
          fail.errorClass = 'device-lost';
          fail.error = `device lost (${lost.reason}): ${lost.message}; while: ${errorMessage(e)}`;
          if (ctx) ctx.destroy();
          ctx = null;
        } else if (e instanceof HarnessError) {
          fail.errorClass = e.errorClass;
        }
      }
      results.push(fail);
    }
  }
  if (ctx) ctx.destroy();
  return results;
}

// ---------------------------------------------------------------------------------------------
// runBaseline: TF.js on the same page, same PRNG inputs, same wall-clock method.

const NM = '/node_modules';
const TFJS_SCRIPTS = {
  core: `${NM}/@tensorflow/tfjs/dist/tf.min.js`,
  webgpu: `${NM}/@tensorflow/tfjs-backend-webgpu/dist/tf-backend-webgpu.min.js`,
  wasm: `${NM}/@tensorflow/tfjs-backend-wasm/dist/tf-backend-wasm.min.js`,
};
const loadedScripts = new Map();

function loadScript(url) {
  if (!loadedScripts.has(url)) {
    const p = (async () => {
      let status = null;
      try { status = (await fetch(url, { method: 'HEAD' })).status; } catch (e) { status = errorMessage(e); }
      if (status !== 200) throw new HarnessError('harness', `${url} is not served (HTTP ${status}): ${SETUP_HINT}`);
      await new Promise((resolve, reject) => {
        const s = document.createElement('script');
        s.src = url;
        s.async = false;
        s.onload = resolve;
        s.onerror = () => reject(new HarnessError('harness', `failed to load ${url}: ${SETUP_HINT}`));
        document.head.appendChild(s);
      });
    })();
    p.catch(() => loadedScripts.delete(url)); // let a later call retry after setup
    loadedScripts.set(url, p);
  }
  return loadedScripts.get(url);
}

async function loadTfjs(backend) {
  await loadScript(TFJS_SCRIPTS.core);
  const tf = window.tf;
  if (!tf) throw new HarnessError('harness', `${TFJS_SCRIPTS.core} loaded but defined no global tf`);
  if (backend === 'webgpu' || backend === 'wasm') {
    await loadScript(TFJS_SCRIPTS[backend]);
    if (backend === 'wasm' && tf.wasm && tf.wasm.setWasmPaths) {
      // TF.js needs an absolute URL for its .wasm files.
      tf.wasm.setWasmPaths(`${location.origin}${NM}/@tensorflow/tfjs-backend-wasm/dist/`);
    }
  }
  return tf;
}

function tfjsAdapter(tf, backend) {
  if (backend !== 'webgpu') return null;
  try {
    const be = tf.backend();
    const info = (be.device && be.device.adapterInfo) || be.adapterInfo || null;
    if (!info) return null;
    return describeAdapterInfo(info, { isFallbackAdapter: undefined, featureLevel: 'core' });
  } catch (e) {
    return null;
  }
}

async function runTfjsBaseline(spec, out, abort) {
  const backend = spec.backend;
  if (!['webgpu', 'webgl', 'wasm', 'cpu'].includes(backend)) {
    throw new HarnessError('harness', `tfjs backend ${backend} is not supported (webgpu, webgl, wasm, cpu)`);
  }
  const op = spec.op || {};
  if ((op.kind ?? 'matmul') !== 'matmul') throw new HarnessError('harness', `tfjs baseline: op ${op.kind} is not supported`);
  const tf = await loadTfjs(backend);
  out.libraryVersion = (tf.version && (tf.version.tfjs || tf.version['tfjs-core'])) || null;
  if (!tf.engine().registryFactory[backend]) {
    throw new HarnessError('harness', `tfjs backend ${backend} is not registered (script missing?): ${SETUP_HINT}`);
  }
  let set = false;
  let why = '';
  try { set = await tf.setBackend(backend); } catch (e) { why = `: ${errorMessage(e)}`; }
  const used = tf.getBackend() ?? null;
  out.backendUsed = used;
  if (!set || used !== backend) {
    throw new HarnessError('fallback', `tf.setBackend('${backend}') ${set ? 'succeeded' : 'failed'}${why}; backend in use: ${used}`);
  }
  await tf.ready();
  out.adapter = tfjsAdapter(tf, backend);
  checkAbort(abort);

  const byName = Object.fromEntries((spec.buffers || []).map((b) => [b.name, b]));
  const { M, N, K } = op;
  const nb = op.batch ?? 1;
  const mk = (name, shape) => {
    const b = byName[name];
    if (!b || b.init !== 'prng') throw new HarnessError('harness', `tfjs baseline: no prng buffer ${name} in spec.buffers`);
    return tf.tensor(prngF32(b.seed, b.stream, b.size), shape, 'float32');
  };
  const a = mk('A', nb > 1 ? [nb, M, K] : [M, K]);
  const b = mk('B', nb > 1 ? [nb, K, N] : [K, N]);
  const run = () => tf.matMul(a, b);
  const timeReps = async (reps) => {
    const t0 = now();
    let last = null;
    for (let i = 0; i < reps; i++) {
      const r = run();
      if (last) last.dispose();
      last = r;
    }
    await last.data();
    const t = now() - t0;
    last.dispose();
    return t;
  };
  try {
    const measure = spec.measure || {};
    const positions = (spec.check && spec.check.positions) || [];
    const t1 = now();
    const first = run();
    const data = await first.data();
    out.firstRunMs = now() - t1;
    first.dispose();
    out.values = positions.map((p) => (p >= 0 && p < data.length ? data[p] : NaN));
    for (let i = 0; i < (measure.warmup ?? 0); i++) { await timeReps(1); checkAbort(abort); }
    const maxReps = Math.max(1, Math.floor(measure.maxReps ?? 256));
    const tOne = await timeReps(1);
    out.reps = await calibrateReps(tOne, measure.minSampleMs ?? 0, maxReps, out.timer.resolutionMs, timeReps, abort, true);
    for (let s = 0; s < Math.max(1, measure.samples ?? 1); s++) {
      checkAbort(abort);
      out.samplesMs.push((await timeReps(out.reps)) / out.reps);
    }
  } finally {
    a.dispose();
    b.dispose();
  }
}

async function runBaseline(spec) {
  const measure = (spec && spec.measure) || {};
  const out = {
    ok: false, errorClass: null, error: null, library: spec ? spec.library : null, libraryVersion: null,
    backendRequested: spec ? spec.backend : null, backendUsed: null, adapter: null,
    samplesMs: [], reps: 0, timer: { kind: 'wall', resolutionMs: measureWallResolution() },
    firstRunMs: null, values: null,
  };
  const abort = { aborted: false };
  try {
    if (wedged) throw new HarnessError('device-lost', wedged);
    if (!spec || spec.library !== 'tfjs') {
      throw new HarnessError('harness', `baseline library ${spec && spec.library} is not supported here (tfjs)`);
    }
    await withTimeout(runTfjsBaseline(spec, out, abort), measure.timeoutMs ?? 120000, abort,
      `baseline ${spec.library}/${spec.backend}`);
    out.ok = true;
  } catch (e) {
    out.ok = false;
    out.errorClass = e instanceof HarnessError ? e.errorClass : e instanceof TimeoutError ? 'timeout' : 'runtime';
    out.error = errorMessage(e);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

function prng(seed, stream, n, offset = 0) {
  return Array.from(prngF32(seed, stream, n, offset));
}

window.jitfarm = {
  probe, runBatch, runBaseline, prng, version: VERSION, featureLevel: FEATURE_LEVEL,
  wedged: () => wedged,
};
window.jitfarmReady = true;
