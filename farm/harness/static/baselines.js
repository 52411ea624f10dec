// runBaseline: TF.js and ONNX Runtime Web time the job's op in this page, on the same PRNG inputs,
// with the same timer layer as our kernels (timing.js): `reps` calls of the op, then a sync that
// reads the last result back. A backend other than the one asked for is a failed baseline
// ('fallback'), never a slow one. See PROTOCOL.md, "runBaseline".
import { BaselineError, errorText } from './baseline_common.js';
import {
  median, measureWallResolution, minSampleSpanMs, now, sampleSpanning, warmUp,
} from './timing.js';
import { setupTfjs } from './baseline_tfjs.js';
import { setupOrt } from './baseline_ort.js';
import { probeWebGL2 } from './webcaps.js';

class BaselineTimeout extends Error {}

const GPU_TIME_RUNS = 5;

// The timing loop every library shares. `op.run()` starts one inference and returns (a promise
// of) a handle; `op.read(handle)` waits for it and returns the output as a Float32Array;
// `op.release(handle)` frees it.
async function measureOp(op, spec, out, abort) {
  const measure = spec.measure || {};
  const positions = (spec.check && spec.check.positions) || [];
  const t1 = now();
  const first = await op.run();
  const data = await op.read(first);
  out.firstRunMs = now() - t1;
  op.release(first);
  out.values = positions.map((p) => (p >= 0 && p < data.length ? data[p] : NaN));
  const timeReps = async (reps) => {
    const t0 = now();
    let last = null;
    for (let i = 0; i < reps; i++) {
      const h = await op.run();
      if (last) op.release(last);
      last = h;
    }
    await op.read(last);
    const t = now() - t0;
    op.release(last);
    return t;
  };
  await warmUp(timeReps, measure, abort);
  if (abort.aborted) return;
  const maxReps = Math.max(1, Math.floor(measure.maxReps ?? 256));
  const minMs = minSampleSpanMs(measure, out.timer.resolutionMs);
  const tOne = await timeReps(1);
  const got = await sampleSpanning(tOne, minMs, maxReps, out.timer.resolutionMs, timeReps, measure, abort);
  Object.assign(out, { reps: got.reps, samplesMs: got.samplesMs, stop: got.stop, ciMs: got.ciMs, minSampleMs: minMs });
  if (op.gpuTime) {
    // GPU timestamps of single calls, next to the wall-clock samples (not instead of them).
    out.gpuMs = [];
    for (let i = 0; i < GPU_TIME_RUNS && !abort.aborted; i++) {
      const ms = await op.gpuTime();
      if (ms != null && ms > 0) out.gpuMs.push(ms);
    }
  }
  if (out.gpuMs && out.gpuMs.length) {
    // GPU time of a call cannot exceed its wall time (dispatch + sync + readback). Seen with
    // TF.js on SwiftShader: many passes per command buffer, whose timestamps do not bracket work.
    if (median(out.gpuMs) > 1.2 * got.medianMs) out.flags.push('gpu-timestamps-implausible');
  }
  if (got.short) out.flags.push('short-samples');
}

const SETUPS = { tfjs: setupTfjs, ort: setupOrt };

// host: {getGpu() -> harness GPU state {adapter, device}, wedged() -> string|null,
//        describeAdapter(state) -> adapter JSON as in probe}
export function makeBaselineRunner(host) {
  return async function runBaseline(spec) {
    const measure = (spec && spec.measure) || {};
    const out = {
      ok: false, errorClass: null, error: null, library: spec ? spec.library : null, libraryVersion: null,
      backendRequested: spec ? spec.backend : null, backendUsed: null, adapter: null,
      deviceRequested: spec ? (spec.device ?? 'own') : null, deviceSource: null, threads: null, simd: null,
      samplesMs: [], reps: 0, timer: { kind: 'wall', resolutionMs: measureWallResolution() },
      compileMs: null, firstRunMs: null, gpuMs: null, values: null, flags: [], notes: [],
    };
    const abort = { aborted: false };
    let timer = null;
    let op = null;
    try {
      if (!spec || !SETUPS[spec.library]) {
        throw new BaselineError('harness', `baseline library ${spec && spec.library} is not supported here (${Object.keys(SETUPS).join(', ')})`);
      }
      if (spec.backend === 'webgpu' && host.wedged()) throw new BaselineError('device-lost', host.wedged());
      const timeoutMs = measure.timeoutMs ?? 120000;
      const work = (async () => {
        const tc = now();
        op = await SETUPS[spec.library](spec, out, host);
        out.compileMs = now() - tc; // library/backend init + building the op (ORT: session)
        if (spec.backend === 'webgl') {
          // WebGL has no adapter object: the page's WebGL2 renderer is what the library draws on.
          const gl = probeWebGL2();
          if (gl.available) out.adapter = { vendor: '', architecture: '', device: '', description: gl.renderer, isFallbackAdapter: false, featureLevel: 'webgl2' };
        }
        if (!abort.aborted) await measureOp(op, spec, out, abort);
      })();
      work.catch(() => {});
      const late = new Promise((_, reject) => {
        timer = setTimeout(() => {
          abort.aborted = true;
          reject(new BaselineTimeout(`baseline ${spec.library}/${spec.backend} exceeded timeoutMs=${timeoutMs}`));
        }, timeoutMs);
      });
      await Promise.race([work, late]);
      out.ok = true;
    } catch (e) {
      out.ok = false;
      // The harness's own errors (e.g. a lost device while getting it) carry an errorClass too.
      out.errorClass = e instanceof BaselineTimeout ? 'timeout' : (e && typeof e.errorClass === 'string' ? e.errorClass : 'runtime');
      out.error = errorText(e);
      if (out.errorClass === 'fallback') out.flags.push('backend-mismatch');
    } finally {
      clearTimeout(timer);
      if (op && op.dispose) { try { await op.dispose(); } catch (e) { /* best effort */ } }
    }
    return out;
  };
}
