// What the page offers besides WebGPU: WASM SIMD and threads, WebGL2. Part of jitfarm.probe().

// (func (result v128) i32.const 0 i8x16.splat)
const WASM_SIMD = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 0x60, 0, 1, 0x7b, 3, 2, 1, 0,
  10, 8, 1, 6, 0, 0x41, 0, 0xfd, 0x0f, 0x0b]);
// A shared memory and (func i32.const 0 i32.atomic.load drop)
const WASM_THREADS = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 4, 1, 0x60, 0, 0, 3, 2, 1, 0,
  5, 4, 1, 3, 1, 1, 10, 11, 1, 9, 0, 0x41, 0, 0xfe, 0x10, 2, 0, 0x1a, 0x0b]);

function validates(bytes) {
  try { return typeof WebAssembly === 'object' && WebAssembly.validate(bytes); } catch (e) { return false; }
}

export function probeWebGL2() {
  const out = { available: false, renderer: null, vendor: null, version: null, maxTextureSize: null,
    timerQuery: false, floatColorBuffer: false };
  let gl = null;
  try {
    const canvas = typeof OffscreenCanvas === 'function' ? new OffscreenCanvas(1, 1) : document.createElement('canvas');
    gl = canvas.getContext('webgl2');
  } catch (e) { gl = null; }
  if (!gl) return out;
  out.available = true;
  const dbg = gl.getExtension('WEBGL_debug_renderer_info');
  out.renderer = String(gl.getParameter(dbg ? dbg.UNMASKED_RENDERER_WEBGL : gl.RENDERER));
  out.vendor = String(gl.getParameter(dbg ? dbg.UNMASKED_VENDOR_WEBGL : gl.VENDOR));
  out.version = String(gl.getParameter(gl.VERSION));
  out.maxTextureSize = gl.getParameter(gl.MAX_TEXTURE_SIZE);
  out.timerQuery = Boolean(gl.getExtension('EXT_disjoint_timer_query_webgl2'));
  out.floatColorBuffer = Boolean(gl.getExtension('EXT_color_buffer_float'));
  const lose = gl.getExtension('WEBGL_lose_context');
  if (lose) lose.loseContext();
  return out;
}

export async function probeWebCapabilities() {
  const isolated = Boolean(self.crossOriginIsolated);
  const sab = typeof SharedArrayBuffer === 'function';
  return {
    wasm: typeof WebAssembly === 'object',
    wasmSimd: validates(WASM_SIMD),
    // Threads need the atomics opcodes AND a SharedArrayBuffer to hand to workers (isolation).
    wasmThreadsValidate: validates(WASM_THREADS),
    wasmThreads: validates(WASM_THREADS) && sab && isolated,
    sharedArrayBuffer: sab,
    webgl2: probeWebGL2(),
  };
}
