// Validates WebAssembly modules with node's engine and runs matmul kernels on PRNG inputs.
// stdin: JSON {jobs: [{wasm: base64, run: null | {op, seed, threads, units, scratchBytes}}]}
// stdout: JSON [{valid, error, values}] -- values is the whole output of a run (tests only).
import { hash32 } from '../../farm/harness/static/prng.js';

function prng(seed, stream, n) {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (hash32(seed, stream, i) >>> 8) * 1.1920928955078125e-7 - 1;
  return out;
}

const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const { jobs } = JSON.parse(Buffer.concat(chunks).toString());
const answers = [];
for (const job of jobs) {
  const bytes = Buffer.from(job.wasm, 'base64');
  const ans = { valid: WebAssembly.validate(bytes), error: null, values: null };
  if (!ans.valid) {
    try { new WebAssembly.Module(bytes); } catch (e) { ans.error = String(e.message); }
  } else if (job.run) {
    const { op, seed, threads, units, scratchBytes } = job.run;
    const nb = op.batch ?? 1;
    const sizes = [nb * op.M * op.K, nb * op.K * op.N, nb * op.M * op.N];
    const align = (x) => Math.ceil(x / 64) * 64;
    let at = 64;
    const ptr = sizes.map((n) => { const p = at; at = align(at + 4 * n); return p; });
    const scratch = at;
    at += scratchBytes;
    const pages = Math.max(1, Math.ceil(at / 65536));
    const memory = threads > 1
      ? new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true })
      : new WebAssembly.Memory({ initial: pages });
    const f32 = new Float32Array(memory.buffer);
    f32.set(prng(seed, 0, sizes[0]), ptr[0] / 4);
    f32.set(prng(seed, 1, sizes[1]), ptr[1] / 4);
    f32.fill(NaN, ptr[2] / 4, ptr[2] / 4 + sizes[2]);
    try {
      const inst = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } });
      // Units in several calls, as threads would split them (sequentially here).
      for (let t = 0; t < threads; t++) {
        const u0 = Math.floor((units * t) / threads), u1 = Math.floor((units * (t + 1)) / threads);
        inst.exports.run(ptr[0], ptr[1], ptr[2], u0, u1, scratch);
      }
      ans.values = Array.from(new Float32Array(memory.buffer, ptr[2], sizes[2]));
    } catch (e) { ans.error = String(e.message || e); }
  }
  answers.push(ans);
}
process.stdout.write(JSON.stringify(answers));
