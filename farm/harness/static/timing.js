// The harness's timer layer: how many dispatches make one sample, and how many samples to take.
// Shared by our kernels (harness.js) and the baselines (baselines.js); jit_core/timing.py is the
// same logic for the native driver. See PROTOCOL.md, "Timer layer".

export const now = () => performance.now();
const clamp = (x, lo, hi) => Math.min(hi, Math.max(lo, x));

// A sample must span this many timer ticks unless the measure spec says otherwise.
export const DEFAULT_MIN_TICKS = 100;
// A record whose median sample spans less than this fraction of the minimum is flagged
// 'short-samples' (max_reps reached first, or a busy machine made calibration overshoot).
export const SHORT_SAMPLE_FRACTION = 0.5;

// Smallest non-zero step of performance.now(): 5 us when cross-origin isolated in Chromium,
// 100 us otherwise.
export function measureWallResolution() {
  let best = Infinity;
  for (let i = 0; i < 64; i++) {
    const t0 = now();
    let t1 = t0;
    while (t1 === t0) t1 = now();
    best = Math.min(best, t1 - t0);
  }
  return Math.round(best * 1e6) / 1e6; // drop float noise below 1 ns
}

// `measure.warmup` single runs, then runs until `measure.warmupMs` of wall time have passed (a GPU
// that idled while the host compiled runs at low clocks for a while), doubling the runs per round
// trip while one takes under 5 ms. `runReps(k)` runs the candidate k times and waits for the device.
// The same as warm_up in jit_core/timing.py.
export async function warmUp(runReps, measure, abort) {
  for (let i = 0; i < (measure.warmup ?? 0); i++) {
    await runReps(1);
    if (abort.aborted) return;
  }
  const ms = measure.warmupMs ?? 0;
  const t0 = now();
  let reps = 1;
  while (ms > 0 && now() - t0 < ms && !abort.aborted) {
    const t = now();
    await runReps(reps);
    if (now() - t < 5) reps = Math.min(2 * reps, 1 << 16);
  }
}

// The shortest a sample may be: minSampleMs, and minTicks ticks of the timer.
export function minSampleSpanMs(measure, resolutionMs) {
  const ticks = measure.minTicks ?? DEFAULT_MIN_TICKS;
  return Math.max(measure.minSampleMs ?? 0, ticks * (resolutionMs || 0));
}

// reps = clamp(ceil(minMs / t), 1, maxReps) from a one-run time t, then refined by timing
// `sample(reps)` (total ms of reps runs, at most 5 times) until a sample reaches minMs or reps
// hits maxReps. The one-run time is never trusted alone: on a busy machine one run can take many
// times its usual time.
export async function calibrateReps(tOne, minMs, maxReps, resolutionMs, sample, abort) {
  const floor = Math.max(resolutionMs || 0, 1e-6);
  let reps = clamp(Math.ceil(minMs / Math.max(tOne, floor)), 1, maxReps);
  for (let i = 0; i < 5 && reps < maxReps; i++) {
    if (abort.aborted) throw new Error('aborted after timeout');
    const t = await sample(reps);
    if (t >= minMs) break;
    // 10 % over the span, so run-to-run noise keeps the samples above it.
    reps = clamp(Math.ceil(reps * 1.1 * minMs / Math.max(t, floor)), reps + 1, maxReps);
  }
  return reps;
}

// Distribution-free confidence interval of the median from order statistics: the widest rank
// pair (j, n-1-j) whose binomial coverage is at least `level`. null when n is too small (n < 6
// at 95 %).
export function medianCi(xs, level = 0.95) {
  const n = xs.length;
  if (n === 0) return null;
  const s = Array.from(xs).sort((a, b) => a - b);
  const median = n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
  const alpha = 1 - level;
  let logPmf = -n * Math.LN2; // log P(B = 0), B ~ Binomial(n, 1/2)
  let cdf = 0;
  let j = -1;
  for (let i = 0; i < n / 2; i++) {
    cdf += Math.exp(logPmf);
    if (2 * cdf > alpha) break;
    j = i;
    logPmf += Math.log((n - i) / (i + 1));
  }
  if (j < 0) return { median, lo: null, hi: null };
  return { median, lo: s[j], hi: s[n - 1 - j] };
}

// Takes samples of `reps` runs each (`sample(reps)` -> total ms) and returns per-run times.
// Without measure.targetCiRel: exactly measure.samples samples (stop 'fixed'). With it: at least
// measure.samples, then stop as soon as the 95 % CI of the median is narrower than
// targetCiRel x median ('ci'), or at measure.maxSamples ('max-samples'), or once
// measure.maxTimeMs of sampling has passed ('max-time').
export async function collectSamples(sample, reps, measure, abort) {
  const minSamples = Math.max(1, measure.samples ?? 1);
  const target = measure.targetCiRel ?? null;
  const maxSamples = target ? Math.max(minSamples, measure.maxSamples ?? 50) : minSamples;
  const maxTimeMs = target ? (measure.maxTimeMs ?? 10000) : Infinity;
  const t0 = now();
  const samplesMs = [];
  let stop = 'fixed';
  for (;;) {
    if (abort.aborted) throw new Error('aborted after timeout');
    samplesMs.push((await sample(reps)) / reps);
    if (!target) { if (samplesMs.length >= minSamples) break; continue; }
    if (samplesMs.length >= minSamples) {
      const ci = medianCi(samplesMs);
      if (ci && ci.lo != null && ci.hi - ci.lo <= target * ci.median) { stop = 'ci'; break; }
    }
    if (samplesMs.length >= maxSamples) { stop = 'max-samples'; break; }
    if (samplesMs.length >= minSamples && now() - t0 >= maxTimeMs) { stop = 'max-time'; break; }
  }
  const ci = medianCi(samplesMs);
  return { samplesMs, stop, ciMs: ci && ci.lo != null ? [ci.lo, ci.hi] : null };
}

export function median(xs) {
  const s = Array.from(xs).sort((a, b) => a - b);
  const n = s.length;
  return n === 0 ? NaN : n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

// calibrateReps, then collectSamples. When the median sample still spans under
// SHORT_SAMPLE_FRACTION of minMs (calibration overshot on a busy machine: the first runs were slow)
// and reps may grow, reps is set again from that steady-state median and the samples are taken
// again, once. `short` says whether the samples returned still fall short (flag 'short-samples').
export async function sampleSpanning(tOne, minMs, maxReps, resolutionMs, sample, measure, abort) {
  let reps = await calibrateReps(tOne, minMs, maxReps, resolutionMs, sample, abort);
  let got = await collectSamples(sample, reps, measure, abort);
  let med = median(got.samplesMs);
  if (med * reps < SHORT_SAMPLE_FRACTION * minMs && reps < maxReps) {
    const floor = Math.max(resolutionMs || 0, 1e-6);
    reps = clamp(Math.ceil(1.1 * minMs / Math.max(med, floor)), reps + 1, maxReps);
    got = await collectSamples(sample, reps, measure, abort);
    med = median(got.samplesMs);
  }
  return { ...got, reps, medianMs: med, short: med * reps < SHORT_SAMPLE_FRACTION * minMs };
}
