// A transformer block graph (jit_core/blocks.py, Block.to_dict()) run with TF.js ops: the same
// steps, buffer table and PRNG contents as our chain and the numpy reference, each step mapped to
// TF.js ops (tf.matMul batched via rank 3, softmax with an additive causal mask, layernorm and
// RMSNorm from primitives, head split/merge via slice/reshape/transpose, the KV cache write as a
// concat after the cached positions, rotary from cos/sin tables computed in float64 here).
// Semantics are those of jit_core/reference.py.
import { BaselineError } from './baseline_common.js';
import { prngBuffer } from './prng.js';

const MASKED = -1e9; // added to masked scores: exp underflows to exactly 0
const GELU_C = 0.7978845608028654; // sqrt(2 / pi), as reference.GELU_C

// The buffers a step reads; a split with past > 0 also reads the cache it writes after.
function reads(step) {
  const names = step.inputs.map(([, b]) => b);
  if (step.op.kind === 'heads' && step.op.mode !== 'merge' && step.op.past > 0) names.push(step.output);
  return names;
}

function act(tf, name, x) {
  if (name === 'none') return x;
  if (name === 'relu') return tf.relu(x);
  if (name === 'gelu') {
    const inner = tf.mul(tf.add(x, tf.mul(tf.mul(tf.mul(x, x), x), 0.044715)), GELU_C);
    return tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(inner), 1));
  }
  if (name === 'silu') return tf.mul(x, tf.sigmoid(x));
  throw new BaselineError('harness', `tfjs block: unknown activation ${name}`);
}

// Constant tensors an op needs (causal masks, rotary tables), built once at setup.
function constants(tf, steps) {
  const consts = new Map();
  for (const s of steps) {
    const op = s.op;
    if (op.kind === 'softmax' && op.causal) {
      const key = `mask|${op.rows}|${op.cols}`;
      if (consts.has(key)) continue;
      const m = new Float32Array(op.rows * op.cols);
      for (let r = 0; r < op.rows; r++) {
        for (let c = 0; c < op.cols; c++) if (c > r + (op.cols - op.rows)) m[r * op.cols + c] = MASKED;
      }
      consts.set(key, tf.tensor(m, [op.rows, op.cols], 'float32'));
    }
    if (op.kind === 'heads' && op.rotary) {
      const half = op.head_dim / 2;
      const key = `rope|${op.seq}|${op.head_dim}|${op.theta}|${op.pos_offset + op.past}`;
      if (consts.has(key)) continue;
      const cos = new Float32Array(op.seq * half);
      const sin = new Float32Array(op.seq * half);
      for (let t = 0; t < op.seq; t++) {
        const p = op.pos_offset + op.past + t;
        for (let i = 0; i < half; i++) {
          const a = p * Math.pow(op.theta, (-2 * i) / op.head_dim);
          cos[t * half + i] = Math.cos(a);
          sin[t * half + i] = Math.sin(a);
        }
      }
      consts.set(key, [tf.tensor(cos, [op.seq, half], 'float32'), tf.tensor(sin, [op.seq, half], 'float32')]);
    }
  }
  return consts;
}

function heads(tf, op, x, cache, consts) {
  const nh = op.heads, d = op.head_dim, sq = op.seq, p = op.past;
  if (op.mode === 'merge') return tf.reshape(tf.transpose(tf.reshape(x, [nh, sq, d]), [1, 0, 2]), [sq, nh * d]);
  const stride = op.row_stride || nh * d;
  let t = tf.reshape(x, [sq, stride]);
  if (op.col_offset || stride !== nh * d) t = tf.slice(t, [0, op.col_offset], [sq, nh * d]);
  t = tf.transpose(tf.reshape(t, [sq, nh, d]), [1, 0, 2]); // [nh, sq, d]
  if (op.rotary) {
    const half = d / 2;
    const [cos, sin] = consts.get(`rope|${op.seq}|${op.head_dim}|${op.theta}|${op.pos_offset + op.past}`);
    const lo = tf.slice(t, [0, 0, 0], [nh, sq, half]);
    const hi = tf.slice(t, [0, 0, half], [nh, sq, half]);
    t = tf.concat([tf.sub(tf.mul(lo, cos), tf.mul(hi, sin)), tf.add(tf.mul(hi, cos), tf.mul(lo, sin))], 2);
  }
  let axis = 1;
  if (op.mode === 'split_t') { t = tf.transpose(t, [0, 2, 1]); axis = 2; }
  if (!p) return t;
  const full = op.mode === 'split' ? [nh, p + sq, d] : [nh, d, p + sq];
  const kept = op.mode === 'split' ? [nh, p, d] : [nh, d, p];
  return tf.concat([tf.slice(tf.reshape(cache, full), [0, 0, 0], kept), t], axis);
}

function step(tf, s, get, consts) {
  const op = s.op;
  const ins = Object.fromEntries(s.inputs);
  switch (op.kind) {
    case 'matmul': {
      const lead = op.batch > 1 ? [op.batch] : [];
      let y = tf.matMul(tf.reshape(get(ins.A), [...lead, op.M, op.K]), tf.reshape(get(ins.B), [...lead, op.K, op.N]));
      if (op.bias) y = tf.add(y, tf.reshape(get(ins.bias), [op.N]));
      return act(tf, op.act, y);
    }
    case 'softmax': {
      let x = tf.reshape(get(ins.X), [op.batch, op.rows, op.cols]);
      if (op.scale !== 1) x = tf.mul(x, op.scale);
      if (op.causal) x = tf.add(x, consts.get(`mask|${op.rows}|${op.cols}`));
      return tf.softmax(x, -1);
    }
    case 'norm': {
      let h = tf.reshape(get(ins.X), [op.rows, op.cols]);
      if (op.residual) h = tf.add(h, tf.reshape(get(ins.R), [op.rows, op.cols]));
      const gamma = tf.reshape(get(ins.gamma), [op.cols]);
      if (op.norm === 'rmsnorm') {
        return tf.mul(tf.mul(h, tf.rsqrt(tf.add(tf.mean(tf.mul(h, h), -1, true), op.eps))), gamma);
      }
      const c = tf.sub(h, tf.mean(h, -1, true));
      const inv = tf.rsqrt(tf.add(tf.mean(tf.mul(c, c), -1, true), op.eps));
      return tf.add(tf.mul(tf.mul(c, inv), gamma), tf.reshape(get(ins.beta), [op.cols]));
    }
    case 'eltwise': {
      const a = tf.reshape(get(ins.A), [op.n]);
      const b = () => tf.reshape(get(ins.B), [op.n]);
      if (op.fn === 'add') return tf.add(a, b());
      if (op.fn === 'mul') return tf.mul(a, b());
      if (op.fn === 'gelu' || op.fn === 'silu') return act(tf, op.fn, a);
      if (op.fn === 'silu_mul') return tf.mul(act(tf, 'silu', a), b());
      throw new BaselineError('harness', `tfjs block: unknown eltwise fn ${op.fn}`);
    }
    case 'heads':
      return heads(tf, op, get(ins.X), op.past > 0 && op.mode !== 'merge' ? get(s.output) : null, consts);
    default:
      throw new BaselineError('harness', `tfjs block: step ${s.role} has op kind ${op.kind}, which has no TF.js mapping here`);
  }
}

// Builds the block of spec.block: returns {fn: () => the output tensor (flat), dispose}. Buffers read
// before any step writes them (weights, x, a decode's caches, zeros) become tensors once, here;
// spec.buffers (the graph inputs, as for ORT) give the inputs' PRNG contents.
export function buildTfjsBlock(tf, spec, inputs) {
  const block = spec.block;
  if (!block || !Array.isArray(block.steps) || !Array.isArray(block.buffers)) {
    throw new BaselineError('harness', 'tfjs block baseline: spec.block must be a block graph {steps, buffers, output}');
  }
  const table = new Map(block.buffers.map((b) => [b.name, b]));
  const initial = new Map();
  const written = new Set();
  try {
    for (const s of block.steps) {
      for (const name of reads(s)) {
        if (written.has(name) || initial.has(name)) continue;
        const b = table.get(name);
        if (!b) throw new BaselineError('harness', `tfjs block: step ${s.role} reads ${name}, which is not in the buffer table`);
        let data;
        if (inputs[name]) data = inputs[name];
        else if (b.init === 'prng') data = prngBuffer({ seed: block.seed, stream: b.stream, size: b.size, scale: b.scale, shift: b.shift });
        else data = new Float32Array(b.size);
        initial.set(name, tf.tensor(data, b.shape, 'float32'));
      }
      written.add(s.output);
    }
  } catch (e) {
    for (const t of initial.values()) t.dispose();
    throw e;
  }
  const consts = constants(tf, block.steps);
  const out = table.get(block.output);
  const fn = () => tf.tidy(() => {
    const state = new Map(initial);
    const get = (name) => {
      const t = state.get(name);
      if (!t) throw new BaselineError('harness', `tfjs block: ${name} is read before any step writes it`);
      return t;
    };
    for (const s of block.steps) state.set(s.output, step(tf, s, get, consts));
    return tf.reshape(get(block.output), [out.size]);
  });
  const dispose = () => {
    for (const t of initial.values()) t.dispose();
    for (const c of consts.values()) for (const t of [c].flat()) t.dispose();
  };
  return { fn, dispose };
}
