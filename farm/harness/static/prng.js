// Counter-based PRNG shared with jit_core/reference.py: element i of (seed, stream) is the same
// float32 in numpy and here. See that module's docstring for the definition.
export function hash32(seed, stream, i) {
  const base = (Math.imul(stream >>> 0, 0x85ebca77) + Math.imul(seed >>> 0, 0xc2b2ae3d) + 0x27d4eb2f) >>> 0;
  let x = (Math.imul(i >>> 0, 0x9e3779b1) + base) >>> 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b) >>> 0;
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35) >>> 0;
  x ^= x >>> 16;
  return x >>> 0;
}

export function prngF32(seed, stream, n, offset = 0) {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (hash32(seed, stream, offset + i) >>> 8) * 1.1920928955078125e-7 - 1;
  return out;
}

// A 'prng' buffer of the protocol: shift + scale * prng, in double, stored as f32 (the same bits
// as jit_core.reference.prng_buffer).
export function prngBuffer(spec) {
  const out = prngF32(spec.seed, spec.stream, spec.size);
  const scale = spec.scale ?? 1;
  const shift = spec.shift ?? 0;
  if (scale !== 1 || shift !== 0) for (let i = 0; i < out.length; i++) out[i] = shift + scale * out[i];
  return out;
}
