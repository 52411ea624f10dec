// jitfarm harness: one worker thread of a multi-threaded wasm kernel (see wasm_runner.js).
// Message {module, memory, index}: instantiate the module on the shared memory, answer {ok}, then
// serve runs from the control block until told to stop. In a run, every thread (the page's and
// the first T - 1 workers) takes chunks of units from a shared counter until none are left; worker
// `index` uses scratch area index + 1 (the page's thread uses area 0).
const GEN = 0, CMD = 1, DONE = 2, NT = 3, UNITS = 4, ERR = 5, SBASE = 6, SBYTES = 7, NARGS = 8, ARGS = 9, GRAIN = 20, NEXT = 21;
const CMD_STOP = 2;

self.onmessage = (ev) => {
  const { module, memory, index } = ev.data;
  const ctl = new Int32Array(memory.buffer, 0, 32);
  const seen = Atomics.load(ctl, GEN); // read before answering, so no run can be missed
  let run;
  try {
    run = new WebAssembly.Instance(module, { env: { memory } }).exports.run;
  } catch (e) {
    self.postMessage({ ok: false, error: String((e && e.message) || e) });
    return;
  }
  self.postMessage({ ok: true });
  serve(ctl, run, index + 1, seen);
};

function serve(ctl, run, part, seen) {
  for (;;) {
    Atomics.wait(ctl, GEN, seen);
    const gen = Atomics.load(ctl, GEN);
    if (gen === seen) continue;
    seen = gen;
    if (Atomics.load(ctl, CMD) === CMD_STOP) return; // back to the message loop for the next module
    const nt = ctl[NT];
    if (part >= nt) continue;
    const units = ctl[UNITS];
    const grain = ctl[GRAIN];
    const scratch = ctl[SBASE] + part * ctl[SBYTES];
    const args = Array.from(ctl.subarray(ARGS, ARGS + ctl[NARGS]));
    try {
      for (let u = Atomics.add(ctl, NEXT, grain); u < units; u = Atomics.add(ctl, NEXT, grain)) {
        run(...args, u, Math.min(units, u + grain), scratch);
      }
    } catch (e) {
      Atomics.store(ctl, ERR, 1);
    }
    Atomics.add(ctl, DONE, 1);
  }
}
