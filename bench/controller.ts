/**
 * `npm run bench -- controller [--repeats 20] [--rounds 7]`: the CPU of one controller round.
 *
 * The controller runs on the origin, which in the default deployment is the device under a 0.25-CPU quota
 * (25 ms per 100 ms period), on the same event loop as the HTTP gateway: a round that takes a few ms of CPU
 * holds every request that arrives meanwhile, and uses that much of the period's quota. This replays
 * controller rounds captured from that deployment (test/fixtures/controller-rounds.json: MobileNetV2, 157
 * blocks, device, edge and cloud, two clients, the edge at 1 and at 0.15 CPU) through `Controller.step`,
 * once with the latency DP's K = 1 scan under cut costs (dp.ts, scanMin: a sliding-window minimum) and once
 * with the general K-best merge it replaced (the baseline), interleaved in the same run. Each round's figure
 * is the median of `rounds` blocks of `repeats` steps; both scans must decide the same.
 *
 * Goal: the median round with the fast scan <= 0.5 x the merge's, and every decision identical.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Controller } from '../src/planner/controller.js';
import { DP_SCAN } from '../src/planner/dp.js';
import type { CurrentPlan, LiveSnapshot } from '../src/planner/live-input.js';
import type { ControllerSettings } from '../src/planner/controller-settings.js';

const { values } = parseArgs({
  options: { repeats: { type: 'string', default: '20' }, rounds: { type: 'string', default: '7' } },
});
const REPEATS = Number(values.repeats);
const ROUNDS = Number(values.rounds);
for (const [k, v] of [
  ['repeats', REPEATS],
  ['rounds', ROUNDS],
] as const)
  if (!(Number.isInteger(v) && v > 0)) throw new Error(`--${k}: a positive integer, got ${String(values[k])}`);

interface Round {
  readonly what: string;
  readonly snapshot: LiveSnapshot;
  readonly current: CurrentPlan | null;
  readonly settings: ControllerSettings;
}
const { rounds } = JSON.parse(
  readFileSync(new URL('../test/fixtures/controller-rounds.json', import.meta.url), 'utf8'),
) as { rounds: Round[] };

const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const round = (x: number, d = 3): number => Math.round(x * 10 ** d) / 10 ** d;
const step = (r: Round): ReturnType<Controller['step']> => new Controller(r.settings).step(r.snapshot, r.current);

/** Mean ms of one step over `REPEATS`, with `scan`. */
function block(r: Round, scan: 'min' | 'merge'): number {
  DP_SCAN.k1 = scan;
  const t0 = performance.now();
  for (let i = 0; i < REPEATS; i++) step(r);
  return (performance.now() - t0) / REPEATS;
}

const results = [];
for (const r of rounds) {
  DP_SCAN.k1 = 'min';
  const fast = step(r);
  DP_SCAN.k1 = 'merge';
  const merged = step(r);
  const same = JSON.stringify(fast) === JSON.stringify(merged);
  // Warm both paths, then alternate which goes first.
  block(r, 'min');
  block(r, 'merge');
  const t = { min: [] as number[], merge: [] as number[] };
  for (let k = 0; k < ROUNDS; k++) {
    const order = k % 2 === 0 ? (['min', 'merge'] as const) : (['merge', 'min'] as const);
    for (const scan of order) t[scan].push(block(r, scan));
  }
  const row = {
    round: r.what,
    decision: fast.kind,
    sameDecision: same,
    scanMs: round(median(t.min)),
    mergeMs: round(median(t.merge)),
    ratio: round(median(t.min) / median(t.merge)),
  };
  results.push(row);
  console.log(
    `${row.round.padEnd(56)} ${row.decision.padEnd(8)} ${String(row.scanMs).padStart(7)} ms vs ${String(row.mergeMs).padStart(7)} ms  ${row.ratio}x${same ? '' : '  DECISIONS DIFFER'}`,
  );
}
DP_SCAN.k1 = 'min';

const scanMs = median(results.map((r) => r.scanMs));
const mergeMs = median(results.map((r) => r.mergeMs));
const ratio = round(median(results.map((r) => r.ratio)));
const same = results.every((r) => r.sameDecision);
// A 0.25-CPU origin gets 25 ms of CPU per 100 ms period: the share of one period a round uses.
const QUOTA_MS = 25;
console.log(
  JSON.stringify({
    name: 'controller',
    figures: {
      model: 'mobilenetv2 (157 blocks), device + edge + cloud, captured rounds',
      rounds: results,
      repeats: REPEATS,
      blocks: ROUNDS,
      medianRoundMs: round(scanMs),
      medianRoundMergeMs: round(mergeMs),
      quotaShareAt025Cpu: round(scanMs / QUOTA_MS),
      quotaShareAt025CpuMerge: round(mergeMs / QUOTA_MS),
      sameDecisions: same,
    },
    ratio,
    goal: 'median controller round with the K = 1 scan <= 0.5 x with the general merge (same run), every decision identical',
    pass: ratio <= 0.5 && same,
  }),
);
