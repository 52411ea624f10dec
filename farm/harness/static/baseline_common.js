// Shared by the baseline runners: errors, loading library files from node_modules, PRNG inputs.
import { prngF32 } from './prng.js';

export const NM = '/node_modules';
export const SETUP_HINT = "run the README's setup command (npm ci in farm/harness) to install the baseline libraries";

export class BaselineError extends Error {
  constructor(errorClass, message) {
    super(message);
    this.errorClass = errorClass;
  }
}

export function errorText(e) {
  if (e == null) return 'unknown error';
  if (typeof e === 'string') return e;
  return e.message ? `${e.name && e.name !== 'Error' ? e.name + ': ' : ''}${e.message}` : String(e);
}

// Fails early with the setup hint when a library file is not served (node_modules missing).
export async function requireServed(url) {
  let status = null;
  try { status = (await fetch(url, { method: 'HEAD' })).status; } catch (e) { status = errorText(e); }
  if (status !== 200) throw new BaselineError('harness', `${url} is not served (HTTP ${status}): ${SETUP_HINT}`);
}

const loadedScripts = new Map();

export function loadScript(url) {
  if (!loadedScripts.has(url)) {
    const p = (async () => {
      await requireServed(url);
      await new Promise((resolve, reject) => {
        const s = document.createElement('script');
        s.src = url;
        s.async = false;
        s.onload = resolve;
        s.onerror = () => reject(new BaselineError('harness', `failed to load ${url}: ${SETUP_HINT}`));
        document.head.appendChild(s);
      });
    })();
    p.catch(() => loadedScripts.delete(url)); // let a later call retry after setup
    loadedScripts.set(url, p);
  }
  return loadedScripts.get(url);
}

// The op's inputs by buffer name, generated with the shared PRNG exactly as runBatch does.
export function prngInputs(spec) {
  const inputs = {};
  for (const b of spec.buffers || []) {
    if (b.output) continue;
    if (b.init !== 'prng') throw new BaselineError('harness', `baseline input ${b.name}: init ${b.init} is not supported (prng only)`);
    const v = prngF32(b.seed, b.stream, b.size);
    // shift + scale * prng in double, stored as f32: the numpy side computes the same values.
    if ((b.scale ?? 1) !== 1 || (b.shift ?? 0) !== 0) {
      const scale = b.scale ?? 1;
      const shift = b.shift ?? 0;
      for (let i = 0; i < v.length; i++) v[i] = shift + scale * v[i];
    }
    inputs[b.name] = v;
  }
  return inputs;
}
