/**
 * `npm run bench -- load-sampler [--seconds S] [--rounds K] [--interval-ms MS] [--cpus C|off]`
 *
 * What the host's CPU-load sampler costs the event loop it shares with requests, acks and pongs. The
 * baseline is how hosts sampled before: systeminformation's currentLoad(), which on Linux runs
 * `cat /proc/stat | grep cpu` through execSync, blocking the loop, and whose shell spends the host's own CPU
 * quota (it is in the host's cgroup). Against it, the sampler as it is now (runtime/host/load.ts: one read of
 * /proc/stat). They alternate for K rounds of S seconds, sampling every MS ms, in this process held to C CPUs
 * by a cgroup as `cleave up` holds a host (default 0.25, the device's; `off`: none); the loop with no sampler
 * at all is measured once for reference. A 1 ms timer chain records how late the loop runs it: the longest
 * stall, the p99 delay, and the time spent in stalls over 5 ms per second.
 * Goal: with /proc/stat, the loop spends <= 0.5 x as long in stalls over 5 ms as with systeminformation
 * (median over rounds), both delivering load figures.
 */
import { parseArgs } from 'node:util';
import { LoadSampler } from '../src/runtime/host/load.js';
import { applyCpuQuota, hostQuotaPeriodUs, leaveCgroup } from '../src/runtime/process/cgroup.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '3' },
    'interval-ms': { type: 'string', default: '250' },
    cpus: { type: 'string', default: '0.25' },
  },
});
const SECONDS = Number(values.seconds);
const ROUNDS = Number(values.rounds);
const INTERVAL_MS = Number(values['interval-ms']);
const CPUS = values.cpus === 'off' ? null : Number(values.cpus);
for (const [k, v] of [
  ['seconds', SECONDS],
  ['rounds', ROUNDS],
  ['interval-ms', INTERVAL_MS],
] as const)
  if (!(Number.isFinite(v) && v > 0)) {
    console.error(`load-sampler: --${k} must be a positive number`);
    process.exit(2);
  }
if (CPUS !== null && !(CPUS > 0)) {
  console.error(`load-sampler: --cpus must be a positive number or off, got '${values.cpus}'`);
  process.exit(2);
}
const STALL_MS = 5;
const GOAL = 0.5;

interface Lag {
  stallMaxMs: number;
  p99Ms: number;
  stalledMsPerS: number;
  samples: number;
}

/** Runs the sampler (systeminformation or /proc/stat; `none`: not started) for SECONDS while a 1 ms timer chain measures the loop's lateness. */
async function measure(si: boolean, none = false): Promise<Lag> {
  const sampler = new LoadSampler(INTERVAL_MS, { source: si ? 'systeminformation' : 'proc' });
  let samples = 0;
  let last: number | null = null;
  if (!none) sampler.start();
  const delays: number[] = [];
  const t0 = performance.now();
  await new Promise<void>((resolve) => {
    let due = performance.now() + 1;
    const tick = (): void => {
      const now = performance.now();
      delays.push(Math.max(0, now - due));
      if (sampler.cpuPercent !== last) {
        last = sampler.cpuPercent;
        samples++;
      }
      if (now - t0 >= SECONDS * 1000) return resolve();
      due = now + 1;
      setTimeout(tick, 1);
    };
    setTimeout(tick, 1);
  });
  sampler.stop();
  const sorted = [...delays].sort((a, b) => a - b);
  const stalled = delays.filter((d) => d > STALL_MS).reduce((a, b) => a + b, 0);
  return {
    stallMaxMs: sorted[sorted.length - 1],
    p99Ms: sorted[Math.floor(0.99 * (sorted.length - 1))],
    stalledMsPerS: stalled / SECONDS,
    samples,
  };
}

const quota =
  CPUS === null
    ? null
    : applyCpuQuota(process.pid, `bench-load-${process.pid}`, CPUS, undefined, hostQuotaPeriodUs(CPUS));
if (quota && !quota.applied) console.log(`no CPU quota: ${quota.detail}`);
let floor: Lag = { stallMaxMs: 0, p99Ms: 0, stalledMsPerS: 0, samples: 0 };
const viaSi: Lag[] = [];
const viaProc: Lag[] = [];
try {
  await measure(true); // warm-up: systeminformation's first calls load its modules
  floor = await measure(false, true);
  console.log(
    `no sampler: stall max ${floor.stallMaxMs.toFixed(1)} ms, p99 ${floor.p99Ms.toFixed(2)} ms, ${floor.stalledMsPerS.toFixed(1)} ms/s in stalls over ${STALL_MS} ms`,
  );
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 === 0 ? [true, false] : [false, true];
    for (const which of order) {
      const lag = await measure(which);
      (which ? viaSi : viaProc).push(lag);
      console.log(
        `round ${r + 1} ${which ? 'systeminformation' : '/proc/stat'}: stall max ${lag.stallMaxMs.toFixed(1)} ms, p99 ${lag.p99Ms.toFixed(2)} ms, ` +
          `${lag.stalledMsPerS.toFixed(1)} ms/s in stalls over ${STALL_MS} ms, ${lag.samples} load figures`,
      );
    }
  }
} finally {
  if (quota?.applied) leaveCgroup(quota.dir);
}
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const r2 = (x: number): number => Math.round(x * 100) / 100;
const fig = (xs: Lag[]) => ({
  stallMaxMs: r2(median(xs.map((x) => x.stallMaxMs))),
  p99Ms: r2(median(xs.map((x) => x.p99Ms))),
  stalledMsPerS: r2(median(xs.map((x) => x.stalledMsPerS))),
  loadFigures: median(xs.map((x) => x.samples)),
});
const a = fig(viaSi);
const b = fig(viaProc);
const ratio = a.stalledMsPerS > 0 ? r2(b.stalledMsPerS / a.stalledMsPerS) : b.stalledMsPerS > 0 ? Infinity : 0;
console.log(
  JSON.stringify({
    name: 'load-sampler',
    figures: {
      seconds: SECONDS,
      rounds: ROUNDS,
      intervalMs: INTERVAL_MS,
      cpus: CPUS,
      quota: quota?.detail ?? null,
      systeminformation: a,
      procStat: b,
      noSampler: { stallMaxMs: r2(floor.stallMaxMs), p99Ms: r2(floor.p99Ms), stalledMsPerS: r2(floor.stalledMsPerS) },
    },
    ratio,
    goal: `time the event loop spends in stalls over ${STALL_MS} ms with the load sampler reading /proc/stat <= ${GOAL} x with systeminformation's currentLoad (medians over rounds; ratio = /proc/stat / systeminformation), both delivering load figures`,
    pass: ratio <= GOAL && b.loadFigures > 0 && a.loadFigures > 0,
  }),
);
