/**
 * The latency DP's K = 1 scan for hosts with cut costs under a compute limit (dp.ts, scanMin: a sliding-window
 * minimum plus a tail tested end by end) against the general K-best merge it replaces for K = 1: the same
 * plans, bit for bit, on random instances shaped like real profiles (many blocks of ~0 ms, cut costs from
 * none to larger than a block) under random limits; and the same controller decisions on rounds captured
 * from a real deployment. The brute-force tests (planner-property.test.ts) check the searches' answers; this
 * one checks that the fast scan is the merge's exact equal, which a loaded search's tolerance would not show.
 */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { Controller } from '../src/planner/controller.js';
import { DP_SCAN, LatencyDP } from '../src/planner/dp.js';
import { loadedBest } from '../src/planner/plan.js';
import { prepare } from '../src/planner/prepare.js';
import type { PlanInput } from '../src/planner/index.js';

const TIERS = ['device', 'edge', 'region', 'cloud'];

const instance: fc.Arbitrary<PlanInput> = fc
  .record({
    T: fc.integer({ min: 2, max: 4 }),
    n: fc.integer({ min: 1, max: 40 }),
    per: fc.array(fc.integer({ min: 1, max: 2 }), { minLength: 4, maxLength: 4 }),
  })
  .chain(({ T, n, per }) => {
    const tiers = TIERS.slice(0, T);
    const hosts = tiers.flatMap((tier, q) => Array.from({ length: q === 0 ? 1 : per[q] }, (_, i) => `${tier}${i}`));
    const H = hosts.length;
    // Real profiles: most blocks near 0 ms (activations, adds), a few carrying the compute.
    const blockMs = fc.oneof(
      { weight: 3, arbitrary: fc.constant(0) },
      { weight: 2, arbitrary: fc.double({ min: 0, max: 0.05, noNaN: true }) },
      { weight: 2, arbitrary: fc.double({ min: 0, max: 5, noNaN: true }) },
    );
    return fc.record({
      tiers: fc.constant(tiers),
      hosts: fc.constant(hosts),
      times: fc.array(fc.array(blockMs, { minLength: n, maxLength: n }), { minLength: H, maxLength: H }),
      // From none, through cut costs far below a block, to cut costs larger than the whole model.
      cut: fc.array(fc.constantFrom(0, 1e-7, 1e-5, 1e-3, 5e-3), { minLength: H, maxLength: H }),
      ovh: fc.array(fc.constantFrom(0, 0.02, 1), { minLength: H, maxLength: H }),
      frontier: fc.array(fc.integer({ min: 0, max: 5_000_000 }), { minLength: n, maxLength: n }),
      bw: fc.constantFrom(1e5, 1e7, 1e9),
    });
  })
  .map((r) => ({
    tiers: r.tiers,
    hosts: r.hosts.map((name, i) => ({
      name,
      tier: name.replace(/\d+$/, ''),
      blockMs: r.times[i],
      stageOverheadMs: r.ovh[i],
      cutMsPerByte: r.cut[i],
    })),
    links: r.hosts.flatMap((a) =>
      r.hosts
        .filter((b) => a !== b && r.tiers.indexOf(a.replace(/\d+$/, '')) !== r.tiers.indexOf(b.replace(/\d+$/, '')))
        .map((b) => ({ from: a, to: b, rttMs: 1, bytesPerSecond: r.bw })),
    ),
    frontierBytes: r.frontier,
    inputBytes: 600_000,
    outputBytes: 4000,
    objective: 'latency',
    costModel: 'cleave',
    topN: 1,
    pareto: false,
  }));

/** Every origin's best plan (and, in bound mode, every origin's bound) under `lambda`, with one scan. */
function runWith(scan: 'min' | 'merge', input: PlanInput, share: number): string {
  DP_SCAN.k1 = scan;
  const p = prepare(input);
  const total = Math.max(...p.prefix.map((P) => P[p.n]));
  const lambda = Math.floor(total * share);
  const dp = new LatencyDP(p, 1);
  const out: unknown[] = [];
  for (const o of p.tierHosts[0]) out.push(dp.run(o, lambda));
  dp.run(-1, lambda);
  for (const o of p.tierHosts[0]) out.push(dp.originBound(o, lambda));
  return JSON.stringify(out);
}

afterEach(() => {
  DP_SCAN.k1 = 'min';
});

describe('the K = 1 scan under cut costs equals the general merge', () => {
  it('on random instances and limits: the same plans, latencies and bounds', () => {
    fc.assert(
      fc.property(instance, fc.double({ min: 0, max: 1.2, noNaN: true }), (input, share) => {
        expect(runWith('min', input, share)).toBe(runWith('merge', input, share));
      }),
      { numRuns: 600, seed: 11 },
    );
  });

  it('the latency-under-load search picks the same plan with either scan', () => {
    fc.assert(
      fc.property(instance, fc.constantFrom(1.5, 2, 4), (input, n) => {
        DP_SCAN.k1 = 'min';
        const fast = loadedBest(prepare(input), n);
        DP_SCAN.k1 = 'merge';
        expect(fast).toEqual(loadedBest(prepare(input), n));
      }),
      { numRuns: 200, seed: 5 },
    );
  });

  it('on controller rounds captured from a real deployment: the same decisions', () => {
    const { rounds } = JSON.parse(readFileSync(new URL('./fixtures/controller-rounds.json', import.meta.url), 'utf8'));
    expect(rounds.length).toBeGreaterThan(0);
    for (const r of rounds) {
      DP_SCAN.k1 = 'min';
      const fast = new Controller(r.settings).step(r.snapshot, r.current);
      DP_SCAN.k1 = 'merge';
      const merged = new Controller(r.settings).step(r.snapshot, r.current);
      expect(JSON.stringify(fast), r.what).toBe(JSON.stringify(merged));
      expect(fast.kind).toMatch(/^(keep|propose|adopt)$/);
    }
  });
});
