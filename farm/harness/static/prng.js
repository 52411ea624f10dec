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

// IEEE half float bits of the f32 value x: round to nearest, ties to even; overflow to
// infinity, subnormal halves kept (numpy's float32 -> float16 conversion, bit for bit).
const F32 = new Float32Array(1);
const U32 = new Uint32Array(F32.buffer);
export function f32ToF16Bits(x) {
  F32[0] = x;
  const bits = U32[0];
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  const mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 112; // the half's biased exponent
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) { // a subnormal half, or zero: keep 24 - shift bits of the 24-bit significand
    if (e < -10) return sign;
    const m = mant | 0x800000;
    const shift = 14 - e;
    let h = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1))) h += 1;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h += 1; // a carry may reach the exponent: right
  return sign | h;
}

export function f16BitsToF32(h) {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 5.960464477539063e-8; // 2^-24
  if (e === 0x1f) return m ? NaN : sign * Infinity;
  return sign * (1024 + m) * 2 ** (e - 25);
}

// A 'prng' buffer of dtype f16: prngBuffer's f32 values as half float bits.
export function prngBufferF16(spec) {
  const f32 = prngBuffer(spec);
  const out = new Uint16Array(f32.length);
  for (let i = 0; i < f32.length; i++) out[i] = f32ToF16Bits(f32[i]);
  return out;
}
