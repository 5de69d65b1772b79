/**
 * `npm run bench -- planner`: the exact planner against the brute-force enumerator (Scission's method),
 * timed in the same run on the same inputs.
 *
 * A. A 92-block model (ResNet-like frontier sizes) on 1 device, 2 edge and 2 cloud hosts over Scission's
 *    own network numbers: planner and enumerator both run to completion; their top 5 must be identical.
 *    Goal: planner median < 1 ms and >= 100x faster than enumeration.
 * B. 1000 blocks over 5 tiers (device, gateway, edge, region, cloud) with 10 hosts each, 10 of them
 *    candidate devices. Full enumeration is infeasible: the plans are counted exactly, a bounded sample of
 *    them is enumerated and timed, and the full time is extrapolated from it. Goal: planner median < 100 ms.
 * Both use the default objective (latency) and cost model (cleave), top 5; throughput and Pareto timings
 * are reported beside them. Medians over repeated runs, after warm-up.
 */
import { countShapes, enumeratePlans, feasiblePlans } from '../src/planner/enumerate.js';
import { plan } from '../src/planner/plan.js';
import { prepare } from '../src/planner/prepare.js';
import type { PlanInput, PlanResult } from '../src/planner/types.js';

let seed = 20261126;
function rnd(): number {
  seed = (seed * 1103515245 + 12345) % 2147483648;
  return seed / 2147483648;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}

function time(f: () => unknown, runs: number, warmup: number): number {
  for (let i = 0; i < warmup; i++) f();
  const t: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    f();
    t.push(performance.now() - t0);
  }
  return median(t);
}

/** Frontier bytes of a CNN: large early activations shrinking by stages, with residual bumps. */
function cnnFrontier(n: number): number[] {
  return Array.from({ length: n }, (_, k) => {
    if (k === n - 1) return 4000;
    const stage = Math.floor((k / n) * 5);
    const base = 802_816 / 2 ** stage;
    return Math.round(base * (k % 3 === 1 ? 2 : 1) * (0.8 + 0.4 * rnd()));
  });
}

function modelA(): PlanInput {
  const n = 92;
  const work = Array.from({ length: n }, () => 0.5 + rnd() * 2);
  const host = (name: string, tier: string, speed: number): PlanInput['hosts'][number] => ({
    name,
    tier,
    blockMs: work.map((w) => w * speed * (0.9 + 0.2 * rnd())),
    stageOverheadMs: 0.3,
  });
  const hosts = [
    host('raspi4', 'device', 40),
    host('vm2Core', 'edge', 8),
    host('2500', 'edge', 10),
    host('6700k(GPU)', 'cloud', 1),
    host('6700k(NoGPU)', 'cloud', 3),
  ];
  // Scission's benchmark_data/network_stats.csv, Mbps as bytes/s.
  const net: [string, string, number, number][] = [
    ['raspi4', '2500', 66.7, 1.6],
    ['raspi4', 'vm2Core', 66.7, 1.6],
    ['raspi4', '6700k(GPU)', 100, 1.6],
    ['raspi4', '6700k(NoGPU)', 100, 1.6],
    ['2500', '6700k(GPU)', 20, 50],
    ['2500', '6700k(NoGPU)', 20, 50],
    ['vm2Core', '6700k(GPU)', 20, 50],
    ['vm2Core', '6700k(NoGPU)', 20, 50],
  ];
  const links = net.map(([from, to, rttMs, mbps]) => ({ from, to, rttMs, bytesPerSecond: mbps * 125_000 }));
  return {
    tiers: ['device', 'edge', 'cloud'],
    hosts,
    links,
    frontierBytes: cnnFrontier(n),
    inputBytes: 602_112,
    outputBytes: 4000,
    topN: 5,
  };
}

function modelB(): PlanInput {
  const n = 1000;
  const tiers = ['device', 'gateway', 'edge', 'region', 'cloud'];
  const work = Array.from({ length: n }, () => 0.05 + rnd() * 0.3);
  const hosts = tiers.flatMap((tier, q) =>
    Array.from({ length: 10 }, (_, i) => ({
      name: `${tier}${i}`,
      tier,
      blockMs: work.map((w) => w * (40 / 3 ** q) * (0.7 + 0.6 * rnd())),
      stageOverheadMs: 0.2,
    })),
  );
  const links = hosts.flatMap((a) =>
    hosts
      .filter((b) => tiers.indexOf(a.tier) < tiers.indexOf(b.tier))
      .map((b) => {
        const hopsAway = tiers.indexOf(b.tier) - tiers.indexOf(a.tier);
        return {
          from: a.name,
          to: b.name,
          rttMs: (2 + 10 * hopsAway) * (0.5 + rnd()),
          bytesPerSecond: (10 + 200 * rnd()) * 125_000,
        };
      }),
  );
  return { tiers, hosts, links, frontierBytes: cnnFrontier(n), inputBytes: 602_112, outputBytes: 4000, topN: 5 };
}

function same(a: PlanResult, b: PlanResult): boolean {
  const k = (r: PlanResult): string =>
    JSON.stringify(r.plans.map((p) => [p.origin, p.stages.map((s) => [s.host, s.start, s.end]), p.latencyMs]));
  return k(a) === k(b);
}

const round = (x: number, d = 4): number => Math.round(x * 10 ** d) / 10 ** d;

// A: 92 blocks, 1 + 2 + 2 hosts.
const a = modelA();
const aPlans = Number(countShapes(prepare(a)));
const aAgree = same(plan(a), enumeratePlans(a));
const aPlanMs = time(() => plan(a), 300, 100);
const aEnumMs = time(() => enumeratePlans(a), 15, 3);
const aThroughputMs = time(() => plan({ ...a, objective: 'throughput' }), 100, 30);
const aParetoMs = time(() => plan({ ...a, pareto: true }), 100, 30);
const aRatio = aEnumMs / aPlanMs;
console.log(
  `A  92 blocks, 1 device + 2 edge + 2 cloud: ${aPlans} plans; planner ${round(aPlanMs)} ms, enumeration ${round(aEnumMs, 2)} ms (x${Math.round(aRatio)}), same top 5: ${aAgree}`,
);
console.log(`   throughput objective ${round(aThroughputMs)} ms, latency + Pareto ${round(aParetoMs)} ms`);

// B: 1000 blocks, 5 tiers x 10 hosts.
const b = modelB();
const bp = prepare(b);
const bPlans = countShapes(bp);
const bPlanMs = time(() => plan(b), 9, 2);
const bThroughputMs = time(() => plan({ ...b, objective: 'throughput' }), 5, 1);
const sample = 50_000;
const sampleMs = time(() => feasiblePlans(bp, sample), 3, 1);
const bEnumEstimateMs = Number(bPlans) * (sampleMs / sample);
const years = bEnumEstimateMs / 1000 / 3600 / 24 / 365;
console.log(
  `B  1000 blocks, 5 tiers x 10 hosts: ${bPlans} plans (${Number(bPlans).toExponential(2)}); planner ${round(bPlanMs, 2)} ms`,
);
console.log(
  `   enumeration infeasible: ${sample} plans took ${round(sampleMs, 1)} ms, so all would take ~${bEnumEstimateMs.toExponential(2)} ms (~${years.toExponential(1)} years)`,
);
console.log(`   throughput objective ${round(bThroughputMs, 2)} ms`);

const pass = aAgree && aPlanMs < 1 && aRatio >= 100 && bPlanMs < 100;
console.log(
  JSON.stringify({
    name: 'planner',
    figures: {
      a_blocks: 92,
      a_hosts: '1 device, 2 edge, 2 cloud',
      a_plans: aPlans,
      a_planner_ms: round(aPlanMs),
      a_enumeration_ms: round(aEnumMs, 2),
      a_same_top5: aAgree,
      a_throughput_ms: round(aThroughputMs),
      a_pareto_ms: round(aParetoMs),
      b_blocks: 1000,
      b_hosts: '5 tiers x 10 (10 origins)',
      b_plans: bPlans.toString(),
      b_planner_ms: round(bPlanMs, 2),
      b_throughput_ms: round(bThroughputMs, 2),
      b_enumeration_sample_plans: sample,
      b_enumeration_sample_ms: round(sampleMs, 1),
      b_enumeration_estimate_ms: Number(bEnumEstimateMs.toPrecision(3)),
      b_ratio_estimate: Number((bEnumEstimateMs / bPlanMs).toPrecision(3)),
    },
    ratio: round(aRatio, 1),
    goal: 'A: planner < 1 ms and >= 100x faster than enumeration (same top 5); B: planner < 100 ms',
    pass,
  }),
);
