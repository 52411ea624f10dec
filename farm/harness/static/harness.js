// jitfarm in-browser harness: a thin executor for farm/harness/PROTOCOL.md.
// It compiles and times what the driver sends and answers with raw samples; it decides nothing a
// tuner decides. Exposes window.jitfarm = {probe, runBatch, runBaseline, prng, version}.
import { f16BitsToF32, prngBuffer, prngBufferF16, prngF32 } from './prng.js';
import {
  measureWallResolution, minSampleSpanMs, sampleSpanning, warmUp,
} from './timing.js';
import { makeBaselineRunner } from './baselines.js';
import { probeWebCapabilities } from './webcaps.js';
import { probeWasm, runWasmBatch } from './wasm_runner.js';

const VERSION = '0.1.0';
const PARAMS = new URLSearchParams(location.search);
const FEATURE_LEVEL = PARAMS.get('featureLevel') === 'compatibility' ? 'compatibility' : 'core';

// Adapter limits raised to the adapter's maximum when the device is requested.
const RAISED_LIMITS = [
  'maxComputeInvocationsPerWorkgroup', 'maxComputeWorkgroupStorageSize',
  'maxComputeWorkgroupSizeX', 'maxComputeWorkgroupSizeY', 'maxComputeWorkgroupSizeZ',
  'maxComputeWorkgroupsPerDimension', 'maxStorageBufferBindingSize', 'maxBufferSize',
  'maxStorageBuffersPerShaderStage', 'maxBindingsPerBindGroup',
];

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
  // Right after start, Chromium's GPU process can answer null while it still enumerates its
  // adapters (seen with an NVIDIA GPU in headless mode): ask again, a few times, before giving up.
  let adapter = null;
  for (let attempt = 0; attempt < 4 && !adapter; attempt++) {
    if (attempt) await new Promise((r) => setTimeout(r, 250 * attempt));
    adapter = await navigator.gpu.requestAdapter(options);
  }
  if (!adapter) {
    throw new HarnessError('harness', `requestAdapter(${JSON.stringify(options)}) returned null: no WebGPU ` +
      'adapter (Chromium without a GPU needs --enable-unsafe-webgpu; lavapipe needs the compatibility profile flags; ' +
      'headless Chromium on an NVIDIA GPU needs --enable-features=Vulkan --disable-vulkan-surface)');
  }
  const requiredLimits = {};
  for (const name of RAISED_LIMITS) {
    if (typeof adapter.limits[name] === 'number') requiredLimits[name] = adapter.limits[name];
  }
  const hasTimestamp = adapter.features.has('timestamp-query');
  // Optional features the kernels use where the adapter has them: timestamps, f16 matmuls.
  const requiredFeatures = ['timestamp-query', 'shader-f16'].filter((f) => adapter.features.has(f));
  const device = await adapter.requestDevice({ requiredLimits, requiredFeatures });
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

const TINY_WGSL = `
@group(0) @binding(0) var<storage, read_write> buf: array<u32>;
@compute @workgroup_size(1) fn main() { buf[0] = buf[0] + 1u; }`;

// Resolution of GPU timestamps, from many back-to-back tiny passes.
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
      // The tick is the GCD of all steps: quantized timestamps (browsers may round them, e.g.
      // to 100 us) are all multiples of it, while the smallest step alone would be the duration
      // of a tiny pass on a slow adapter.
      let g = 0n;
      for (let i = 1; i < ts.length; i++) {
        let a = ts[i] - ts[i - 1];
        let b = g;
        while (b > 0n) [a, b] = [b, a % b];
        g = a;
      }
      if (g > 0n) best = Number(g);
    }
    const check = await checkTimestampsBracketWork(device, pipeline, bindGroup, querySet, resolve, read);
    return { resolutionMs: Number.isFinite(best) ? best / 1e6 : null, ...check };
  } finally {
    querySet.destroy();
    resolve.destroy();
    read.destroy();
    storage.destroy();
  }
}

// Do a pass's begin/end timestamps bracket its work? Timed the way timestampRun times a sample
// (one pass per submit): a pass of 1 dispatch, then one of 256 serialized dispatches, which must
// span clearly more. A driver whose timestamps do not follow the work is timed by the wall clock.
const BRACKET_REPS = 256;
async function checkTimestampsBracketWork(device, pipeline, bindGroup, querySet, resolve, read) {
  const spansMs = [];
  let wallMs = 0;
  for (const reps of [1, BRACKET_REPS]) {
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass({
      timestampWrites: { querySet, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 },
    });
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    for (let k = 0; k < reps; k++) pass.dispatchWorkgroups(1);
    pass.end();
    enc.resolveQuerySet(querySet, 0, 2, resolve, 0);
    enc.copyBufferToBuffer(resolve, 0, read, 0, 16);
    const t0 = now();
    device.queue.submit([enc.finish()]);
    await read.mapAsync(GPUMapMode.READ, 0, 16);
    wallMs = now() - t0;
    const [b, e] = new BigUint64Array(read.getMappedRange(0, 16).slice(0));
    read.unmap();
    spansMs.push(e > b ? Number(e - b) / 1e6 : 0);
  }
  const [one, many] = spansMs;
  // Real GPUs: `many` is about 256x `one`; a CPU adapter also spends most of the wall time in it.
  const bracketsWork = many >= 8 * Math.max(one, 1e-6) || many >= 0.25 * wallMs;
  return { bracketsWork, spansMs, wallMs };
}

async function getTimerResolution(state) {
  if (timerResolution) return timerResolution;
  const wall = measureWallResolution();
  let timestamp = null;
  let check = null;
  if (state && state.hasTimestamp) {
    try {
      const got = await measureTimestampResolution(state);
      timestamp = got.resolutionMs;
      check = { bracketsWork: got.bracketsWork, spansMs: got.spansMs, wallMs: got.wallMs };
      if (!got.bracketsWork) {
        console.warn(`jitfarm: GPU timestamps do not bracket the work of a pass (1 vs ${BRACKET_REPS} dispatches: ` +
          `${got.spansMs.map((x) => x.toFixed(4)).join(' vs ')} ms, wall ${got.wallMs.toFixed(3)} ms): timing with the wall clock`);
      }
    } catch (e) {
      console.error(`jitfarm: timestamp resolution: ${errorMessage(e)}`);
    }
  }
  timerResolution = { timestamp, wall, timestampCheck: check, timestampUsable: Boolean(check && check.bracketsWork) };
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
    web: await probeWebCapabilities(),
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
    timestampCheck: res.timestampCheck,
    timestampUsable: res.timestampUsable,
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

// Read-only PRNG buffers (weights, inputs) are kept from one batch to the next on the same
// device: a tune sends many batches over the same inputs, and a transformer block's weights are
// hundreds of MB that take seconds to generate. Only buffers the next batch names again survive.
let inputCache = new Map(); // key -> {device, buf}

function inputKey(spec) {
  return JSON.stringify([spec.size, spec.seed, spec.stream, spec.scale ?? 1, spec.shift ?? 0, spec.dtype ?? 'f32']);
}

function takeCachedInput(device, spec) {
  if (spec.init !== 'prng' || spec.access !== 'read') return null;
  const hit = inputCache.get(inputKey(spec));
  return hit && hit.device === device ? hit.buf : null;
}

// After a batch: keep exactly the read-only PRNG buffers it used; free the others.
function retainInputs(device, used) {
  for (const [key, entry] of inputCache) {
    if (!used.has(key) || entry.device !== device) { try { entry.buf.destroy(); } catch (e) { /* gone */ } }
  }
  inputCache = new Map([...used].map(([key, buf]) => [key, { device, buf }]));
}

async function makeBatchContext(state, batch, wantTimestamp) {
  const device = state.device;
  const created = [];
  const ctx = {
    state, device, buffers: [], named: new Map(), cached: new Map(), output: null, outBytes: 0,
    destroy() {
      for (const r of created) { try { r.destroy(); } catch (e) { /* gone */ } }
      created.length = 0;
      retainInputs(device, this.cached);
      this.cached = new Map();
    },
  };
  try {
    await scoped(device, 'harness', async () => {
      for (const spec of batch.buffers) {
        const dtype = spec.dtype ?? 'f32';
        if (dtype !== 'f32' && dtype !== 'f16') throw new HarnessError('harness', `buffer ${spec.name}: dtype ${dtype} is not supported (f32 or f16)`);
        const bytes = Math.max(4, Math.ceil((spec.size * (dtype === 'f16' ? 2 : 4)) / 4) * 4);
        const prng = spec.init === 'prng';
        if (!prng && spec.init !== 'zero') throw new HarnessError('harness', `buffer ${spec.name}: unknown init ${spec.init}`);
        let buf = (prng && spec.access === 'read' && ctx.cached.get(inputKey(spec))) || takeCachedInput(device, spec);
        if (!buf) {
          buf = device.createBuffer({
            size: bytes, mappedAtCreation: prng,
            usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
          });
          if (prng) {
            if (dtype === 'f16') new Uint16Array(buf.getMappedRange()).set(prngBufferF16(spec));
            else new Float32Array(buf.getMappedRange()).set(prngBuffer(spec));
            buf.unmap();
          }
        }
        if (prng && spec.access === 'read') ctx.cached.set(inputKey(spec), buf);
        else created.push(buf);
        ctx.buffers.push({ spec, buf });
        ctx.named.set(spec.name, buf);
        if (spec.output) { ctx.output = buf; ctx.outBytes = bytes; ctx.outDtype = dtype; ctx.outSize = spec.size; }
      }
      if (!ctx.output) throw new HarnessError('harness', 'batch has no buffer with output: true');
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

// The batch's own bind group (its buffers in binding order), for kernels that name no bindings.
// Built on first use: a chain over more buffers than a shader stage may bind names its bindings.
function batchBindings(ctx) {
  if (!ctx.bindGroup) {
    const device = ctx.device;
    ctx.layout = device.createBindGroupLayout({
      entries: ctx.buffers.map((b) => ({
        binding: b.spec.binding, visibility: GPUShaderStage.COMPUTE,
        buffer: { type: b.spec.access === 'read' ? 'read-only-storage' : 'storage' },
      })),
    });
    ctx.pipelineLayout = device.createPipelineLayout({ bindGroupLayouts: [ctx.layout] });
    ctx.bindGroup = device.createBindGroup({
      layout: ctx.layout,
      entries: ctx.buffers.map((b) => ({ binding: b.spec.binding, resource: { buffer: b.buf } })),
    });
  }
  return ctx;
}

// A program: one {pipeline, bindGroup, wg} per dispatch; a run is all of them, in order.
function encodePass(enc, ctx, program, reps, timestamp) {
  const pass = enc.beginComputePass(timestamp
    ? { timestampWrites: { querySet: ctx.querySet, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 } }
    : {});
  if (program.length === 1) {
    const { pipeline, bindGroup, wg } = program[0];
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    for (let i = 0; i < reps; i++) pass.dispatchWorkgroups(wg[0], wg[1] ?? 1, wg[2] ?? 1);
  } else {
    for (let i = 0; i < reps; i++) {
      for (const { pipeline, bindGroup, wg } of program) {
        pass.setPipeline(pipeline);
        pass.setBindGroup(0, bindGroup);
        pass.dispatchWorkgroups(wg[0], wg[1] ?? 1, wg[2] ?? 1);
      }
    }
  }
  pass.end();
}

// Copy the whole output to the staging buffer and wait for the map: the sync TF.js's data() does.
async function readBack(ctx, enc, keep) {
  enc.copyBufferToBuffer(ctx.output, 0, ctx.staging, 0, ctx.outBytes);
  ctx.device.queue.submit([enc.finish()]);
  await ctx.staging.mapAsync(GPUMapMode.READ);
  const raw = keep ? ctx.staging.getMappedRange().slice(0) : null;
  const data = raw && (ctx.outDtype === 'f16' ? new Uint16Array(raw, 0, ctx.outSize) : new Float32Array(raw));
  ctx.staging.unmap();
  return data;
}

// Wall time of `reps` runs in one pass, with sync by readback.
async function wallRun(ctx, program, reps) {
  const t0 = now();
  const enc = ctx.device.createCommandEncoder();
  encodePass(enc, ctx, program, reps, false);
  await readBack(ctx, enc, false);
  return now() - t0;
}

async function timestampRun(ctx, program, reps) {
  const enc = ctx.device.createCommandEncoder();
  encodePass(enc, ctx, program, reps, true);
  enc.resolveQuerySet(ctx.querySet, 0, 2, ctx.queryResolve, 0);
  enc.copyBufferToBuffer(ctx.queryResolve, 0, ctx.queryRead, 0, 16);
  ctx.device.queue.submit([enc.finish()]);
  await ctx.queryRead.mapAsync(GPUMapMode.READ);
  const [begin, end] = new BigUint64Array(ctx.queryRead.getMappedRange().slice(0));
  ctx.queryRead.unmap();
  return end > begin ? Number(end - begin) / 1e6 : 0;
}

function formatCompilationMessages(messages) {
  return messages.map((m) => `${m.lineNum}:${m.linePos}: ${m.type}: ${m.message}`).join('\n');
}

async function compileOne(device, code, entry, layout) {
  return scoped(device, 'compile', async () => {
    const module = device.createShaderModule({ code });
    const info = await module.getCompilationInfo();
    const errors = info.messages.filter((m) => m.type === 'error');
    if (errors.length) throw new HarnessError('compile', formatCompilationMessages(errors));
    try {
      return await device.createComputePipelineAsync({ layout, compute: { module, entryPoint: entry || 'main' } });
    } catch (e) {
      throw new HarnessError('compile', errorMessage(e));
    }
  });
}

// The candidate's dispatches as a program. Without `bindings` a dispatch binds the batch's buffers
// in binding order; with them, buffers by name (the batch's, or the candidate's scratch buffers,
// created zeroed into `scratch`), each read-only or read-write as the shader declares.
async function compileProgram(ctx, cand, scratch) {
  const device = ctx.device;
  const named = new Map(ctx.named);
  for (const s of cand.scratch || []) {
    const buf = device.createBuffer({ size: Math.max(4, s.size * 4), usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
    scratch.push(buf);
    named.set(s.name, buf);
  }
  const steps = [cand, ...(cand.then || [])];
  const program = [];
  for (const step of steps) {
    if (!step.bindings || !step.bindings.length) {
      const { pipelineLayout, bindGroup } = await scoped(device, 'compile', async () => batchBindings(ctx));
      program.push({ pipeline: await compileOne(device, step.code, step.entry, pipelineLayout), bindGroup, wg: step.workgroups });
      continue;
    }
    const missing = step.bindings.filter(([n]) => !named.has(n)).map(([n]) => n);
    if (missing.length) throw new HarnessError('harness', `a dispatch binds unknown buffers: ${missing.join(', ')}`);
    const layout = device.createBindGroupLayout({
      entries: step.bindings.map(([, access], i) => ({
        binding: i, visibility: GPUShaderStage.COMPUTE,
        buffer: { type: access === 'read' ? 'read-only-storage' : 'storage' },
      })),
    });
    const pipeline = await compileOne(device, step.code, step.entry, device.createPipelineLayout({ bindGroupLayouts: [layout] }));
    const bindGroup = await scoped(device, 'validation', async () => device.createBindGroup({
      layout, entries: step.bindings.map(([n], i) => ({ binding: i, resource: { buffer: named.get(n) } })),
    }));
    program.push({ pipeline, bindGroup, wg: step.workgroups });
  }
  return program;
}

async function runCandidate(ctx, cand, measure, positions, timer, abort) {
  const device = ctx.device;
  const out = {
    id: cand.id, ok: false, errorClass: null, error: null, compileMs: null, firstRunMs: null,
    samplesMs: [], reps: 0, timer, values: null, flags: [],
  };

  // 1. compile every dispatch (one, or the candidate's chain: bindings by name, scratch buffers)
  const tc = now();
  const scratch = [];
  try {
    const program = await compileProgram(ctx, cand, scratch);
    out.compileMs = now() - tc;
    checkAbort(abort);

    await scoped(device, 'validation', async () => {
      // 2. clear the output, run once, sync
      const t1 = now();
      const enc = device.createCommandEncoder();
      enc.clearBuffer(ctx.output);
      encodePass(enc, ctx, program, 1, false);
      await readBack(ctx, enc, false);
      out.firstRunMs = now() - t1;
    });
    checkAbort(abort);

    await scoped(device, 'validation', async () => {
      // 3. warm-up: a count of runs, then runs for warmupMs (timing.js)
      await warmUp(async (k) => {
        const enc = device.createCommandEncoder();
        encodePass(enc, ctx, program, k, false);
        device.queue.submit([enc.finish()]);
        await device.queue.onSubmittedWorkDone();
      }, measure, abort);
      checkAbort(abort);

      // 4. calibrate: a first estimate from one run on the wall clock, then refined (at most 3
      //    times) with the timer the samples use, so one sample spans minSampleMs and minTicks
      //    ticks of that timer rather than of a readback-dominated wall time.
      const maxReps = Math.max(1, Math.floor(measure.maxReps ?? 256));
      const minMs = minSampleSpanMs(measure, timer.resolutionMs);
      const sample = (reps) => (timer.kind === 'timestamp'
        ? timestampRun(ctx, program, reps)
        : wallRun(ctx, program, reps));
      // 5. samples: a fixed count, or until the median's CI is narrow enough (timing.js)
      const tOne = await wallRun(ctx, program, 1);
      const got = await sampleSpanning(tOne, minMs, maxReps, timer.resolutionMs, sample, measure, abort);
      Object.assign(out, { reps: got.reps, samplesMs: got.samplesMs, stop: got.stop, ciMs: got.ciMs, minSampleMs: minMs });
      if (got.short) out.flags.push('short-samples');

      // 6. values at the check positions
      checkAbort(abort);
      const data = await readBack(ctx, device.createCommandEncoder(), true);
      const f16 = ctx.outDtype === 'f16';
      out.values = positions.map((p) => (p >= 0 && p < data.length ? (f16 ? f16BitsToF32(data[p]) : data[p]) : NaN));
    });
    out.ok = true;
    return out;
  } finally {
    for (const b of scratch) { try { b.destroy(); } catch (err) { /* gone */ } }
  }
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
          const useTs = measure.timer !== 'wall' && state.hasTimestamp && res.timestampUsable;
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
// runBaseline: TF.js and ONNX Runtime Web on the same page, same PRNG inputs, same timer layer
// (baselines.js). WebGPU baselines get this page's GPUDevice when the spec asks for "shared".

const runBaseline = makeBaselineRunner({
  getGpu: () => getGpuBounded(ACQUIRE_TIMEOUT_MS),
  wedged: () => wedged,
  requestAdapter: () => navigator.gpu.requestAdapter(FEATURE_LEVEL === 'compatibility' ? { featureLevel: 'compatibility' } : {}),
  describeAdapter: (state) => describeAdapterInfo(state.adapter.info || state.device.adapterInfo, {
    isFallbackAdapter: state.adapter.isFallbackAdapter, featureLevel: featureLevelOf(state),
  }),
});

// ---------------------------------------------------------------------------------------------

function prng(seed, stream, n, offset = 0) {
  return Array.from(prngF32(seed, stream, n, offset));
}

// The bits of an f16 'prng' buffer (prngBufferF16), for the cross-language rounding check.
function prngF16Bits(seed, stream, n, scale = 1, shift = 0) {
  return Array.from(prngBufferF16({ seed, stream, size: n, scale, shift }));
}

window.jitfarm = {
  probe, runBatch, runBaseline, prng, prngF16Bits, version: VERSION, featureLevel: FEATURE_LEVEL,
  wedged: () => wedged,
};
window.jitfarmReady = true;
