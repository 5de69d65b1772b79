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
import { quantile } from '../src/planner/estimate.js';
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

type Mode = 'systeminformation' | 'proc' | 'none';

/** Runs the sampler from `mode`'s source (`none`: no sampler) for SECONDS while a 1 ms timer chain measures the loop's lateness. */
async function measure(mode: Mode): Promise<Lag> {
  const sampler = new LoadSampler(INTERVAL_MS, { source: mode === 'systeminformation' ? mode : 'proc' });
  let samples = 0;
  let last: number | null = null;
  if (mode !== 'none') sampler.start();
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
  const stalled = delays.filter((d) => d > STALL_MS).reduce((x, y) => x + y, 0);
  return {
    stallMaxMs: delays.reduce((m, d) => Math.max(m, d), 0),
    p99Ms: quantile(delays, 0.99),
    stalledMsPerS: stalled / SECONDS,
    samples,
  };
}

const said = (lag: Lag): string =>
  `stall max ${lag.stallMaxMs.toFixed(1)} ms, p99 ${lag.p99Ms.toFixed(2)} ms, ` +
  `${lag.stalledMsPerS.toFixed(1)} ms/s in stalls over ${STALL_MS} ms, ${lag.samples} load figures`;

const quota =
  CPUS === null
    ? null
    : applyCpuQuota(process.pid, `bench-load-${process.pid}`, CPUS, undefined, hostQuotaPeriodUs(CPUS));
if (quota && !quota.applied) console.log(`no CPU quota: ${quota.detail}`);
const runs: Record<Mode, Lag[]> = { systeminformation: [], proc: [], none: [] };
try {
  await measure('systeminformation'); // warm-up: systeminformation's first calls load its modules
  runs.none.push(await measure('none'));
  console.log(`no sampler: ${said(runs.none[0])}`);
  for (let r = 0; r < ROUNDS; r++) {
    const order: Mode[] = r % 2 === 0 ? ['systeminformation', 'proc'] : ['proc', 'systeminformation'];
    for (const mode of order) {
      const lag = await measure(mode);
      runs[mode].push(lag);
      console.log(`round ${r + 1} ${mode === 'proc' ? '/proc/stat' : mode}: ${said(lag)}`);
    }
  }
} finally {
  if (quota?.applied) leaveCgroup(quota.dir);
}
const r2 = (x: number): number => Math.round(x * 100) / 100;
const fig = (xs: Lag[]) => ({
  stallMaxMs: r2(
    quantile(
      xs.map((x) => x.stallMaxMs),
      0.5,
    ),
  ),
  p99Ms: r2(
    quantile(
      xs.map((x) => x.p99Ms),
      0.5,
    ),
  ),
  stalledMsPerS: r2(
    quantile(
      xs.map((x) => x.stalledMsPerS),
      0.5,
    ),
  ),
  loadFigures: quantile(
    xs.map((x) => x.samples),
    0.5,
  ),
});
const a = fig(runs.systeminformation);
const b = fig(runs.proc);
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
      noSampler: fig(runs.none),
    },
    ratio,
    goal: `time the event loop spends in stalls over ${STALL_MS} ms with the load sampler reading /proc/stat <= ${GOAL} x with systeminformation's currentLoad (medians over rounds; ratio = /proc/stat / systeminformation), both delivering load figures`,
    pass: ratio <= GOAL && b.loadFigures > 0 && a.loadFigures > 0,
  }),
);
