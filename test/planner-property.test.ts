/**
 * The exact search against brute force: on random instances (block times with and without ties, frontier
 * sizes, cut costs per byte, links, several hosts per tier and origins, skipped tiers, random constraints), the planner's top N
 * (and Pareto set) must equal full enumeration's, plan for plan and in order, for both objectives and
 * both cost models; and when enumeration finds nothing, the planner must say E_NO_PLAN.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isCleaveError } from '../src/errors.js';
import { enumeratePlans } from '../src/planner/enumerate.js';
import { LOADED_SEARCH_STEPS, loadedBest } from '../src/planner/plan.js';
import { prepare } from '../src/planner/prepare.js';
import {
  plan,
  type Constraint,
  type CostModel,
  type Objective,
  type Plan,
  type PlanInput,
  type PlanResult,
} from '../src/planner/index.js';

const time = fc.oneof(
  fc.integer({ min: 0, max: 4 }),
  fc.double({ min: 0, max: 10, noNaN: true, noDefaultInfinity: true }),
);
/** Cut cost per byte (ms): often none; up to ~7 ms for the largest frontier, comparable to block times. */
const cutArb = fc.oneof(
  fc.constant(0),
  fc.constantFrom(1e-4, 1e-3, 2.5e-3),
  fc.double({ min: 0, max: 3e-3, noNaN: true, noDefaultInfinity: true }),
);
const bytes = fc.oneof(fc.constantFrom(0, 100, 1000, 2000), fc.integer({ min: 0, max: 5000 }));

interface Shape {
  tiers: string[];
  n: number;
  hosts: { name: string; tier: string }[];
}

const shapeArb: fc.Arbitrary<Shape> = fc
  .record({
    T: fc.integer({ min: 1, max: 4 }),
    n: fc.integer({ min: 1, max: 8 }),
    origins: fc.integer({ min: 1, max: 3 }),
    per: fc.array(fc.integer({ min: 0, max: 2 }), { minLength: 3, maxLength: 3 }),
  })
  .map(({ T, n, origins, per }) => {
    const tiers = ['device', 'edge', 'region', 'cloud'].slice(0, T);
    const hosts: Shape['hosts'] = [];
    tiers.forEach((tier, q) => {
      const k = q === 0 ? origins : per[q - 1];
      for (let i = 0; i < k; i++) hosts.push({ name: `${tier}${i}`, tier });
    });
    return { tiers, n, hosts };
  });

function constraintArb(s: Shape): fc.Arbitrary<Constraint> {
  const tier = fc.constantFrom(...s.tiers);
  const host = fc.constantFrom(...s.hosts.map((h) => h.name));
  const block = fc.integer({ min: 0, max: s.n - 1 });
  const byTier = s.tiers.filter((t) => s.hosts.some((h) => h.tier === t));
  return fc.oneof(
    fc.record({ kind: fc.constant('blockOn' as const), block, tier }),
    fc.record({ kind: fc.constant('blockNotOn' as const), block, tier }),
    fc.record({ kind: fc.constant('useTier' as const), tier }),
    fc.record({ kind: fc.constant('noTier' as const), tier }),
    fc.constantFrom(...byTier).chain((t) =>
      fc
        .subarray(
          s.hosts.filter((h) => h.tier === t).map((h) => h.name),
          { minLength: 1 },
        )
        .map((hosts) => ({ kind: 'useHost' as const, hosts })),
    ),
    fc.record({ kind: fc.constant('noHost' as const), host }),
    fc.record({ kind: fc.constant('maxUpload' as const), tier, bytes: fc.constantFrom(0, 500, 1000, 2500, 10_000) }),
    fc.record({ kind: fc.constant('maxCompute' as const), tier, ms: fc.constantFrom(0, 1, 3, 5, 10) }),
    fc.record({ kind: fc.constant('maxComputeShare' as const), tier, share: fc.constantFrom(0, 0.2, 0.5, 0.7, 1) }),
    fc.record({ kind: fc.constant('maxWeights' as const), host, bytes: fc.constantFrom(0, 10, 50, 200) }),
  );
}

interface Opts {
  objective?: Objective;
  costModel?: CostModel;
  pareto?: boolean;
  /** Only share constraints (the branch-and-bound path), at least one. */
  shares?: boolean;
  /** Wire codecs offered (cleave cost model), with random ratios, errors and per-host costs. */
  codecs?: boolean;
}

const CODEC_NAMES = ['brotli', 'fp16', 'int8'];

/** 0-3 codecs: ratios in (0, 1.2], lossy ones with errors (some unmeasured), hosts with or without figures. */
function codecsArb(n: number, H: number) {
  const ratio = fc.oneof(fc.constantFrom(0.25, 0.5, 1, 1.1), fc.double({ min: 0.05, max: 1.2, noNaN: true }));
  const error = fc.oneof(
    fc.constant(null),
    fc.constantFrom(0, 0.01, 0.05),
    fc.double({ min: 0, max: 0.1, noNaN: true }),
  );
  const cost = fc.record({
    encode: fc.constantFrom(0, 1e-5, 1e-4, 1e-3),
    decode: fc.constantFrom(0, 1e-5, 1e-4),
  });
  return fc.record({
    codecs: fc.subarray(CODEC_NAMES).chain((names) =>
      fc.tuple(
        ...names.map((name) =>
          fc.record({
            name: fc.constant(name),
            ratio: fc.array(ratio, { minLength: n + 1, maxLength: n + 1 }),
            lossy: fc.boolean(),
            error: fc.array(error, { minLength: n + 1, maxLength: n + 1 }),
          }),
        ),
      ),
    ),
    maxError: fc.constantFrom(0, 0.01, 0.05),
    hostCosts: fc.array(fc.array(fc.option(cost, { nil: undefined }), { minLength: 3, maxLength: 3 }), {
      minLength: H,
      maxLength: H,
    }),
  });
}

function instanceArb(o: Opts): fc.Arbitrary<PlanInput> {
  return shapeArb.chain((s) => {
    const H = s.hosts.length;
    const order = (t: string): number => s.tiers.indexOf(t);
    const pairs = s.hosts.flatMap((a) =>
      s.hosts
        .filter((b) => a !== b && (order(a.tier) < order(b.tier) || order(a.tier) > order(b.tier)))
        .map((b) => [a.name, b.name, order(a.tier) < order(b.tier)] as const),
    );
    const cs = o.shares
      ? fc.array(
          fc.record({
            kind: fc.constant('maxComputeShare' as const),
            tier: fc.constantFrom(...s.tiers),
            share: fc.constantFrom(0.1, 0.3, 0.5, 0.8),
          }),
          { minLength: 1, maxLength: 2 },
        )
      : fc.array(constraintArb(s), { maxLength: 3 });
    return fc
      .record({
        times: fc.array(fc.array(time, { minLength: s.n, maxLength: s.n }), { minLength: H, maxLength: H }),
        ovh: fc.array(fc.constantFrom(0, 0, 1.5), { minLength: H, maxLength: H }),
        frame: fc.array(fc.constantFrom(0, 0, 2.5), { minLength: H, maxLength: H }),
        cut: fc.array(cutArb, { minLength: H, maxLength: H }),
        links: fc.array(fc.record({ rtt: time, bw: fc.constantFrom(1e3, 2e3, 1e4, 5e5), keep: fc.boolean() }), {
          minLength: pairs.length,
          maxLength: pairs.length,
        }),
        skip: fc.boolean(),
        frontier: fc.array(bytes, { minLength: s.n, maxLength: s.n }),
        weights: fc.array(fc.integer({ min: 0, max: 60 }), { minLength: s.n, maxLength: s.n }),
        inputBytes: fc.constantFrom(0, 500, 3000),
        outputBytes: fc.constantFrom(0, 10, 400),
        constraints: cs,
        objective: o.objective ? fc.constant(o.objective) : fc.constantFrom<Objective>('latency', 'throughput'),
        costModel: o.costModel ? fc.constant(o.costModel) : fc.constantFrom<CostModel>('cleave', 'scission'),
        topN: fc.integer({ min: 1, max: 8 }),
        hopOverheadMs: fc.constantFrom(0, 0.25, 1),
        wire: o.codecs ? codecsArb(s.n, H) : fc.constant(undefined),
      })
      .map((r): PlanInput => ({
        tiers: s.tiers,
        hosts: s.hosts.map((h, i) => ({
          ...h,
          blockMs: r.times[i],
          stageOverheadMs: r.ovh[i],
          frameMs: r.frame[i],
          cutMsPerByte: r.cut[i],
          ...(r.wire
            ? {
                codecMsPerByte: Object.fromEntries(
                  CODEC_NAMES.flatMap((name, k) => (r.wire!.hostCosts[i][k] ? [[name, r.wire!.hostCosts[i][k]!]] : [])),
                ),
              }
            : {}),
        })),
        ...(r.wire
          ? {
              codecs: r.wire.codecs.map((c) => ({
                name: c.name,
                ratio: c.ratio,
                ...(c.lossy ? { error: c.error } : {}),
              })),
              maxError: r.wire.maxError,
            }
          : {}),
        // Forward pairs always, unless missing links are tested ('skip'); backward rows sometimes (returns).
        links: pairs.flatMap(([from, to, fwd], i) =>
          (fwd && (!r.skip || r.links[i].keep)) || (!fwd && r.links[i].keep)
            ? [{ from, to, rttMs: r.links[i].rtt, bytesPerSecond: r.links[i].bw }]
            : [],
        ),
        frontierBytes: r.frontier,
        inputBytes: r.inputBytes,
        outputBytes: r.outputBytes,
        weightBytes: r.weights,
        constraints: r.constraints,
        objective: r.objective,
        costModel: r.costModel,
        topN: r.topN,
        pareto: o.pareto ?? false,
        options: { hopOverheadMs: r.hopOverheadMs, missingLinks: r.skip ? 'skip' : 'error' },
      }));
  });
}

function key(plans: readonly Plan[] | undefined): string[] {
  return (plans ?? []).map(
    (p) =>
      `${p.origin} | ${p.stages.map((s) => `${s.host}:${s.start}-${s.end}`).join(',')} | ${p.hops.map((h) => `${h.codec}:${h.bytes}`).join(',')} | ${p.latencyMs} | ${p.bottleneckMs} | ${p.deviceBytesOut}`,
  );
}

/** The planner equals brute force on `input` (or both find no plan). Returns whether plans existed. */
function agrees(input: PlanInput): boolean {
  const ref = enumeratePlans(input);
  let got: PlanResult | undefined;
  try {
    got = plan(input);
  } catch (e) {
    if (isCleaveError(e) && e.code === 'E_NO_PLAN' && ref.plans.length === 0) return false;
    throw e;
  }
  expect(key(got.plans)).toEqual(key(ref.plans));
  if (input.pareto) expect(key(got.pareto)).toEqual(key(ref.pareto));
  return true;
}

const RUNS = 400;

describe('exact search equals brute-force enumeration', () => {
  for (const objective of ['latency', 'throughput'] as const) {
    for (const costModel of ['cleave', 'scission'] as const) {
      it(`top N by ${objective}, ${costModel} cost model, with random constraints`, () => {
        let feasible = 0;
        fc.assert(
          fc.property(instanceArb({ objective, costModel }), (input) => {
            if (agrees(input)) feasible++;
          }),
          { numRuns: RUNS, seed: 20261126 },
        );
        expect(feasible).toBeGreaterThan(RUNS / 2); // the constraints do not make the test vacuous
      });
    }
  }

  it('Pareto sets (latency, bytes leaving the device, device compute)', () => {
    fc.assert(
      fc.property(instanceArb({ pareto: true }), (input) => {
        agrees(input);
      }),
      { numRuns: RUNS, seed: 7 },
    );
  });

  for (const objective of ['latency', 'throughput'] as const) {
    it(`wire codecs per hop, top N by ${objective}, with random constraints`, () => {
      let coded = 0;
      fc.assert(
        fc.property(instanceArb({ objective, costModel: 'cleave', codecs: true }), (input) => {
          if (!agrees(input)) return;
          if (plan(input).plans.some((q) => q.hops.some((h) => h.codec !== 'raw'))) coded++;
        }),
        { numRuns: RUNS, seed: 20261201 },
      );
      expect(coded).toBeGreaterThan(RUNS / 10); // codecs do get chosen
    });
  }

  it('wire codecs with Pareto sets (bytes leaving the device in the codec chosen)', () => {
    fc.assert(
      fc.property(instanceArb({ pareto: true, costModel: 'cleave', codecs: true }), (input) => {
        agrees(input);
      }),
      { numRuns: RUNS, seed: 13 },
    );
  });

  it('wire codecs with Pareto sets and share constraints (branch and bound)', () => {
    fc.assert(
      fc.property(instanceArb({ shares: true, pareto: true, costModel: 'cleave', codecs: true }), (input) => {
        agrees(input);
      }),
      { numRuns: RUNS, seed: 12 },
    );
  });

  it('share-of-compute constraints (branch and bound), all objectives and Pareto', () => {
    fc.assert(
      fc.property(instanceArb({ shares: true, pareto: true }), (input) => {
        agrees(input);
      }),
      { numRuns: RUNS, seed: 11 },
    );
  });

  it('tie-heavy instances: times and links of 0 or 1, up to 3 hosts a tier, top 10', () => {
    const bit = fc.constantFrom(0, 1);
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 8 }).chain((n) =>
          fc.record({
            n: fc.constant(n),
            per: fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 3, maxLength: 3 }),
            times: fc.array(fc.array(bit, { minLength: n, maxLength: n }), { minLength: 9, maxLength: 9 }),
            frontier: fc.array(fc.constantFrom(0, 1000), { minLength: n, maxLength: n }),
            rtt: fc.array(bit, { minLength: 81, maxLength: 81 }),
            objective: fc.constantFrom<Objective>('latency', 'throughput'),
            costModel: fc.constantFrom<CostModel>('cleave', 'scission'),
            topN: fc.integer({ min: 1, max: 10 }),
          }),
        ),
        (r) => {
          const tiers = ['device', 'edge', 'cloud'];
          const hosts = tiers.flatMap((tier, q) =>
            Array.from({ length: r.per[q] }, (_, i) => ({ name: `${tier}${i}`, tier, blockMs: r.times[q * 3 + i] })),
          );
          const links = hosts.flatMap((a, i) =>
            hosts
              .filter((b) => tiers.indexOf(a.tier) < tiers.indexOf(b.tier))
              .map((b, j) => ({ from: a.name, to: b.name, rttMs: r.rtt[i * 9 + j], bytesPerSecond: 1e6 })),
          );
          agrees({
            tiers,
            hosts,
            links,
            frontierBytes: r.frontier,
            inputBytes: 1000,
            outputBytes: 0,
            objective: r.objective,
            costModel: r.costModel,
            topN: r.topN,
            pareto: true,
            options: { hopOverheadMs: 0 },
          });
        },
      ),
      { numRuns: 150, seed: 5 },
    );
  });

  it('larger instances: 12 blocks, 3 tiers, 2 hosts each, top 10', () => {
    fc.assert(
      fc.property(
        fc.record({
          times: fc.array(fc.array(time, { minLength: 12, maxLength: 12 }), { minLength: 6, maxLength: 6 }),
          cut: fc.array(cutArb, { minLength: 6, maxLength: 6 }),
          frontier: fc.array(bytes, { minLength: 12, maxLength: 12 }),
          objective: fc.constantFrom<Objective>('latency', 'throughput'),
          costModel: fc.constantFrom<CostModel>('cleave', 'scission'),
        }),
        (r) => {
          const tiers = ['device', 'edge', 'cloud'];
          const hosts = r.times.map((blockMs, i) => ({
            name: `h${i}`,
            tier: tiers[i >> 1],
            blockMs,
            cutMsPerByte: r.cut[i],
          }));
          const links = hosts.flatMap((a, i) =>
            hosts
              .filter((b) => tiers.indexOf(a.tier) < tiers.indexOf(b.tier))
              .map((b, j) => ({
                from: a.name,
                to: b.name,
                rttMs: (i * 7 + j * 3) % 11,
                bytesPerSecond: 1e4 * (1 + ((i + j) % 3)),
              })),
          );
          agrees({
            tiers,
            hosts,
            links,
            frontierBytes: r.frontier,
            inputBytes: 3000,
            outputBytes: 100,
            objective: r.objective,
            costModel: r.costModel,
            topN: 10,
            pareto: true,
          });
        },
      ),
      { numRuns: 60, seed: 3 },
    );
  });
});

describe('latency under load (loadedBest) against brute force', () => {
  it('minimises max(latency, N x bottleneck) over every feasible plan, within the bisection step', () => {
    fc.assert(
      fc.property(
        instanceArb({ objective: 'latency' }).filter(
          (i) => !(i.constraints ?? []).some((c) => c.kind === 'maxComputeShare'),
        ),
        fc.constantFrom(0.5, 1, 2, 3.5, 8),
        (input, n) => {
          const all = enumeratePlans({ ...input, topN: 1000, pareto: false });
          if (all.plans.length === 0 || all.plans.length >= 1000) return;
          const loaded = (p: Plan): number => Math.max(p.latencyMs, n * p.bottleneckMs);
          const want = Math.min(...all.plans.map(loaded));
          const got = loadedBest(prepare({ ...input, topN: 1, pareto: false }), n);
          expect(got).not.toBeNull();
          const range = Math.max(...all.plans.map((p) => p.bottleneckMs));
          expect(loaded(got as Plan)).toBeGreaterThanOrEqual(want - 1e-9);
          expect(loaded(got as Plan)).toBeLessThanOrEqual(want + (n * range) / 2 ** LOADED_SEARCH_STEPS + 1e-6);
        },
      ),
      { numRuns: 400, seed: 17 },
    );
  });
});
