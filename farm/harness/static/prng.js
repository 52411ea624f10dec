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
