// jitfarm harness: runner for WebAssembly kernels (candidates of kind "wasm", PROTOCOL.md).
// Inputs come from the shared PRNG into one WebAssembly.Memory per batch; a candidate on T > 1
// threads runs its units on the page's thread and T-1 Web Workers (wasm_worker.js) that share the
// memory (shared memories need a cross-origin isolated page). Timing is the wall clock around
// synchronous calls, so no readback is needed: the output is in the page's memory when run returns.
import { prngBuffer } from './prng.js';
import { minSampleSpanMs, sampleSpanning, warmUp } from './timing.js';

// Control block at the start of a shared memory (Int32 slots), read by wasm_worker.js.
export const CTL = { GEN: 0, CMD: 1, DONE: 2, NT: 3, UNITS: 4, ERR: 5, SBASE: 6, SBYTES: 7, NARGS: 8, ARGS: 9, GRAIN: 20, NEXT: 21 };
export const CMD_RUN = 1;
export const CMD_STOP = 2;
const CTL_BYTES = 128;
const ALIGN = 64;
const PAGE = 65536;
const READY_TIMEOUT_MS = 10000;

const now = () => performance.now();
const alignUp = (x) => Math.ceil(x / ALIGN) * ALIGN;

class WasmError extends Error {
  constructor(errorClass, message) { super(message); this.errorClass = errorClass; }
}

function message(e) {
  if (e == null) return 'unknown error';
  if (typeof e === 'string') return e;
  return e.message ? `${e.name && e.name !== 'Error' ? e.name + ': ' : ''}${e.message}` : String(e);
}

// ---------------------------------------------------------------------------------------------
// probe

const V128_ZERO = [0xfd, 0x0c, ...new Array(16).fill(0)];
// A module with one function () -> v128 whose body is `body` (the body must be < 120 bytes).
function v128Module(body) {
  const code = [0, ...body, 0x0b];
  return new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 1, 5, 1, 0x60, 0, 1, 0x7b, 3, 2, 1, 0,
    10, code.length + 2, 1, code.length, ...code]);
}
const SIMD_MODULE = v128Module(V128_ZERO);
const RELAXED_MODULE = v128Module([...V128_ZERO, ...V128_ZERO, ...V128_ZERO, 0xfd, 0x85, 0x02]); // f32x4.relaxed_madd

function canShareMemory() {
  if (!self.crossOriginIsolated || typeof SharedArrayBuffer === 'undefined' || typeof Worker === 'undefined') return false;
  try {
    return new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true }).buffer instanceof SharedArrayBuffer;
  } catch (e) {
    return false;
  }
}

async function cpuArch() {
  let arch = '';
  let platform = '';
  try {
    const d = navigator.userAgentData;
    if (d && d.getHighEntropyValues) {
      const v = await d.getHighEntropyValues(['architecture', 'bitness']);
      if (v.architecture) arch = v.architecture === 'x86' ? (v.bitness === '32' ? 'x86' : 'x86-64') : (v.bitness === '32' ? 'arm' : 'arm64');
      platform = d.platform || '';
    }
  } catch (e) { /* fall back to the user agent string */ }
  const ua = navigator.userAgent || '';
  if (!arch) arch = /aarch64|arm64/i.test(ua) || /Android/i.test(ua) ? 'arm64' : /x86_64|x64|amd64|Win64|Intel Mac/i.test(ua) ? 'x86-64' : '';
  if (!platform) platform = /Android/i.test(ua) ? 'Android' : /Mac OS X/i.test(ua) ? 'macOS' : /Windows/i.test(ua) ? 'Windows' : /Linux/i.test(ua) ? 'Linux' : '';
  return { arch, platform };
}

// What the engine can run: SIMD128, relaxed SIMD, threads (a shared memory and workers).
export async function probeWasm() {
  const out = { simd: false, relaxedSimd: false, threads: false, arch: '', platform: '' };
  try {
    out.simd = WebAssembly.validate(SIMD_MODULE);
    out.relaxedSimd = WebAssembly.validate(RELAXED_MODULE);
    out.threads = canShareMemory();
    Object.assign(out, await cpuArch());
  } catch (e) {
    out.error = message(e);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// worker pool: T-1 workers serve one module at a time on one shared memory.

class Pool {
  constructor() { this.workers = []; this.ctl = null; }

  // Stop serving the current module (workers go back to their message loop).
  stop() {
    if (!this.ctl) return;
    Atomics.store(this.ctl, CTL.CMD, CMD_STOP);
    Atomics.add(this.ctl, CTL.GEN, 1);
    Atomics.notify(this.ctl, CTL.GEN);
    this.ctl = null;
  }

  terminate() {
    this.stop();
    for (const w of this.workers) w.terminate();
    this.workers = [];
  }

  // Instantiate `module` on `memory` in the first n workers; resolves when all are serving.
  async load(module, memory, n) {
    this.stop();
    while (this.workers.length < n) {
      this.workers.push(new Worker(new URL('./wasm_worker.js', import.meta.url), { type: 'module' }));
    }
    const ready = this.workers.slice(0, n).map((w, index) => new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new WasmError('harness', `worker ${index} did not start within ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS);
      w.onmessage = (ev) => {
        clearTimeout(timer);
        if (ev.data && ev.data.ok) resolve();
        else reject(new WasmError('compile', `worker ${index}: ${ev.data && ev.data.error}`));
      };
      w.onerror = (ev) => { clearTimeout(timer); reject(new WasmError('harness', `worker ${index}: ${ev.message || 'error'}`)); };
      w.postMessage({ module, memory, index });
    }));
    try {
      await Promise.all(ready);
    } catch (e) {
      this.terminate(); // a worker in an unknown state is not reused
      throw e;
    }
    this.ctl = new Int32Array(memory.buffer, 0, CTL_BYTES / 4);
  }
}

let pool = null;

// ---------------------------------------------------------------------------------------------
// batch context: one memory per kind (shared for multi-threaded candidates, plain otherwise).

function layout(batch) {
  let at = CTL_BYTES;
  const ptr = {};
  const specs = [...(batch.buffers || [])].sort((a, b) => a.binding - b.binding);
  for (const spec of specs) {
    if ((spec.dtype ?? 'f32') !== 'f32') throw new WasmError('harness', `buffer ${spec.name}: dtype ${spec.dtype} is not supported (f32 only)`);
    if (spec.init !== 'prng' && spec.init !== 'zero') throw new WasmError('harness', `buffer ${spec.name}: unknown init ${spec.init}`);
    ptr[spec.name] = at;
    at = alignUp(at + 4 * spec.size);
  }
  const output = specs.find((s) => s.output);
  if (!output) throw new WasmError('harness', 'batch has no buffer with output: true');
  let scratch = 0;
  for (const c of batch.candidates || []) scratch = Math.max(scratch, (c.threads ?? 1) * alignUp(c.scratchBytes ?? 0));
  const scratchBase = at;
  const total = scratchBase + scratch;
  if (total > 2 ** 31) throw new WasmError('harness', `batch needs ${total} bytes of wasm memory (more than 2 GiB)`);
  return { specs, ptr, output, scratchBase, pages: Math.max(1, Math.ceil(total / PAGE)) };
}

function makeMemory(lay, shared) {
  const memory = shared
    ? new WebAssembly.Memory({ initial: lay.pages, maximum: lay.pages, shared: true })
    : new WebAssembly.Memory({ initial: lay.pages });
  const f32 = new Float32Array(memory.buffer);
  for (const spec of lay.specs) {
    if (spec.init === 'prng') f32.set(prngBuffer(spec), lay.ptr[spec.name] / 4);
  }
  return memory;
}

function decode(b64) {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

// ---------------------------------------------------------------------------------------------
// one candidate

function makeCall(exports, lay, memory, cand, entry, timeoutMs) {
  const args = lay.specs.map((s) => lay.ptr[s.name]);
  const T = cand.threads ?? 1;
  const units = cand.units;
  const sbytes = alignUp(cand.scratchBytes ?? 0);
  const run = exports[entry];
  if (typeof run !== 'function') throw new WasmError('compile', `module exports no function ${entry}`);
  if (T === 1) return () => run(...args, 0, units, lay.scratchBase);
  const ctl = new Int32Array(memory.buffer, 0, CTL_BYTES / 4);
  ctl[CTL.NT] = T;
  ctl[CTL.UNITS] = units;
  ctl[CTL.SBASE] = lay.scratchBase;
  ctl[CTL.SBYTES] = sbytes;
  ctl[CTL.NARGS] = args.length;
  args.forEach((p, i) => { ctl[CTL.ARGS + i] = p; });
  // Threads take chunks of `grain` consecutive units from a shared counter (rows of tiles, in
  // order), so a thread slowed by other load does less of the work rather than holding up the call.
  const grain = Math.max(1, Math.floor(units / (16 * T)));
  ctl[CTL.GRAIN] = grain;
  return () => {
    Atomics.store(ctl, CTL.DONE, 0);
    Atomics.store(ctl, CTL.ERR, 0);
    Atomics.store(ctl, CTL.NEXT, 0);
    Atomics.store(ctl, CTL.CMD, CMD_RUN);
    Atomics.add(ctl, CTL.GEN, 1);
    Atomics.notify(ctl, CTL.GEN);
    for (let u = Atomics.add(ctl, CTL.NEXT, grain); u < units; u = Atomics.add(ctl, CTL.NEXT, grain)) {
      run(...args, u, Math.min(units, u + grain), lay.scratchBase);
    }
    const deadline = now() + timeoutMs;
    let spins = 0;
    while (Atomics.load(ctl, CTL.DONE) < T - 1) {
      if ((++spins & 1023) === 0 && now() > deadline) throw new WasmError('timeout', `workers did not finish within timeoutMs=${timeoutMs}`);
    }
    if (Atomics.load(ctl, CTL.ERR)) throw new WasmError('runtime', 'a worker trapped while running the kernel');
  };
}

async function runCandidate(ctx, cand, measure, positions) {
  const out = {
    id: cand.id, ok: false, errorClass: null, error: null, compileMs: null, firstRunMs: null,
    samplesMs: [], reps: 0, timer: { kind: 'wall', resolutionMs: ctx.resolutionMs }, values: null, flags: [],
  };
  const T = cand.threads ?? 1;
  if (!(cand.units >= 1)) throw new WasmError('harness', `candidate ${cand.id}: units must be >= 1`);
  if (T > 1 && !ctx.canShare) throw new WasmError('harness', `candidate ${cand.id} wants ${T} threads but this page cannot share a WebAssembly.Memory (not cross-origin isolated)`);
  const bytes = decode(cand.wasm || '');
  const memory = T > 1 ? (ctx.shared ??= makeMemory(ctx.lay, true)) : (ctx.plain ??= makeMemory(ctx.lay, false));
  const timeoutMs = measure.timeoutMs ?? 30000;
  const started = now();
  const checkTime = () => {
    if (now() - started > timeoutMs) throw new WasmError('timeout', `candidate ${cand.id} exceeded timeoutMs=${timeoutMs}`);
  };

  // 1. compile: the engine's compile and the instantiation on this thread (compileMs), then the
  //    instantiation in the workers (threadsSetupMs; the first one also starts the workers)
  const tc = now();
  let instance;
  try {
    const module = await WebAssembly.compile(bytes);
    instance = await WebAssembly.instantiate(module, { env: { memory } });
    out.compileMs = now() - tc;
    if (T > 1) {
      const tw = now();
      pool ??= new Pool();
      await pool.load(module, memory, T - 1);
      out.threadsSetupMs = now() - tw;
    }
  } catch (e) {
    if (e instanceof WasmError) throw e;
    throw new WasmError('compile', message(e));
  }
  const call = makeCall(instance.exports, ctx.lay, memory, cand, cand.entry || 'run', timeoutMs);
  const outArr = new Float32Array(memory.buffer, ctx.lay.ptr[ctx.lay.output.name], ctx.lay.output.size);
  const timeReps = (reps) => {
    const t0 = now();
    for (let i = 0; i < reps; i++) call();
    return now() - t0;
  };
  try {
    // 2. clear the output, run once
    outArr.fill(0);
    out.firstRunMs = timeReps(1);
    checkTime();
    // 3. warm-up, by count then by time, as for WebGPU (also lets the engine tier the hot
    //    functions up to its optimizing compiler)
    const abort = { aborted: false };
    await warmUp(async (k) => { timeReps(k); checkTime(); await null; }, measure, abort);
    // 4. calibrate and 5. sample with the harness's timer layer (timing.js), as for WebGPU
    const maxReps = Math.max(1, Math.floor(measure.maxReps ?? 256));
    const minMs = minSampleSpanMs(measure, ctx.resolutionMs);
    const sample = async (reps) => {
      checkTime();
      const t = timeReps(reps);
      await null; // let the page's event loop breathe between samples
      return t;
    };
    const got = await sampleSpanning(timeReps(1), minMs, maxReps, ctx.resolutionMs, sample, measure, abort);
    Object.assign(out, { reps: got.reps, samplesMs: got.samplesMs, stop: got.stop, ciMs: got.ciMs, minSampleMs: minMs });
    if (got.short) out.flags.push('short-samples');
  } catch (e) {
    if (e instanceof WasmError) throw e;
    throw new WasmError('runtime', message(e)); // a trap (out-of-bounds access, unreachable)
  }
  // 6. values at the check positions
  out.values = positions.map((p) => (p >= 0 && p < outArr.length ? outArr[p] : NaN));
  out.ok = true;
  return out;
}

function failure(cand, e, resolutionMs) {
  return {
    id: cand.id, ok: false, errorClass: e instanceof WasmError ? e.errorClass : 'runtime', error: message(e),
    compileMs: null, firstRunMs: null, samplesMs: [], reps: 0,
    timer: { kind: 'wall', resolutionMs }, values: null, flags: [],
  };
}

// runBatch for batches of wasm candidates: same messages and answers as the WebGPU path.
export async function runWasmBatch(batch, { wallResolutionMs = null } = {}) {
  const measure = batch.measure || {};
  const positions = (batch.check && batch.check.positions) || [];
  const results = [];
  let ctx = null;
  let setupError = null;
  try {
    ctx = { lay: layout(batch), plain: null, shared: null, canShare: canShareMemory(), resolutionMs: wallResolutionMs };
  } catch (e) {
    setupError = e instanceof WasmError ? e : new WasmError('harness', message(e));
  }
  try {
    for (const cand of batch.candidates || []) {
      if (setupError) { results.push(failure(cand, new WasmError('harness', `batch setup: ${setupError.message}`), wallResolutionMs)); continue; }
      if (cand.kind !== 'wasm') {
        results.push(failure(cand, new WasmError('harness', `candidate ${cand.id} of kind ${cand.kind ?? 'wgsl'} in a wasm batch: send wgsl and wasm kernels in separate batches`), wallResolutionMs));
        continue;
      }
      try {
        results.push(await runCandidate(ctx, cand, measure, positions));
      } catch (e) {
        if (e instanceof WasmError && e.errorClass === 'timeout' && pool) { pool.terminate(); pool = null; }
        results.push(failure(cand, e, wallResolutionMs));
      }
    }
  } finally {
    if (pool) pool.stop();
  }
  return results;
}
