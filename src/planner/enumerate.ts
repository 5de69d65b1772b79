/**
 * The reference: every plan enumerated, priced with `evaluate`, filtered with `violated`, sorted. This is
 * Scission's method (all hosts x all splits), generalised to any tier chain. O(hosts^tiers x blocks^tiers):
 * for tests and the benchmark, never for serving.
 */
import { evaluate } from './cost.js';
import { violated } from './constraints.js';
import { prepare, type Prepared, type Shape } from './prepare.js';
import { byLatency, byThroughput, paretoFront, toPlan, type Scored } from './result.js';
import type { PlanInput, PlanResult } from './types.js';

type Step = Shape['steps'][number];

/** Calls `visit` with every plan shape (constraints not applied), or with the first `limit` of them. */
function forEachShape(p: Prepared, visit: (s: Shape) => void, limit = Infinity): void {
  const hostsOf: number[][] = p.tiers.map(() => []);
  for (let h = 0; h < p.H; h++) hostsOf[p.hostTier[h]].push(h);
  const steps: Step[] = [];
  let count = 0;
  const rec = (origin: number, q: number, end: number): void => {
    if (count >= limit) return;
    if (end === p.n) {
      count++;
      visit({ origin, steps: steps.slice() });
      return;
    }
    for (let q2 = q + 1; q2 < p.T; q2++) {
      for (const h of hostsOf[q2]) {
        for (let c = end + 1; c <= p.n; c++) {
          steps.push({ q: q2, h, end: c });
          rec(origin, q2, c);
          steps.pop();
        }
      }
    }
  };
  for (const o of hostsOf[0]) {
    for (let c0 = 0; c0 <= p.n; c0++) {
      steps.push({ q: 0, h: o, end: c0 });
      rec(o, 0, c0);
      steps.pop();
    }
  }
}

/** Every feasible plan (or those among the first `limit` shapes), priced, unsorted. */
export function feasiblePlans(p: Prepared, limit = Infinity): Scored[] {
  const out: Scored[] = [];
  const constraints = p.input.constraints ?? [];
  forEachShape(
    p,
    (shape) => {
      const m = evaluate(p, shape);
      if (m && !violated(p, shape, m, constraints)) out.push({ shape, m });
    },
    limit,
  );
  return out;
}

/** How many plan shapes full enumeration visits (exact, as a BigInt). */
export function countShapes(p: Prepared): bigint {
  const per = p.tiers.map((_, q) => BigInt(Array.from(p.hostTier).filter((t) => t === q).length));
  // ways[q][c]: completions after a stage of tier q ending at c; after[q][c]: sum of ways[q][c' > c].
  const ways = p.tiers.map(() => new Array<bigint>(p.n + 1).fill(0n));
  const after = p.tiers.map(() => new Array<bigint>(p.n + 1).fill(0n));
  for (let q = p.T - 1; q >= 0; q--) {
    ways[q][p.n] = 1n;
    for (let c = p.n - 1; c >= 0; c--) {
      let s = 0n;
      for (let q2 = q + 1; q2 < p.T; q2++) s += per[q2] * after[q2][c];
      ways[q][c] = s;
    }
    for (let c = p.n - 1; c >= 0; c--) after[q][c] = after[q][c + 1] + ways[q][c + 1];
  }
  let total = 0n;
  for (let c0 = 0; c0 <= p.n; c0++) total += ways[0][c0];
  return per[0] * total;
}

/** Brute force with the planner's interface: the same ranking, top N and Pareto set, or no plans. */
export function enumeratePlans(input: PlanInput): PlanResult {
  const p = prepare(input);
  const all = feasiblePlans(p);
  const ranked = all
    .slice()
    .sort(p.objective === 'throughput' ? byThroughput : byLatency)
    .slice(0, p.topN);
  return {
    objective: p.objective,
    costModel: p.costModel,
    inputBytes: p.inputBytes,
    plans: ranked.map((s) => toPlan(p, s)),
    pareto: input.pareto ? paretoFront(all.sort(byLatency)).map((s) => toPlan(p, s)) : undefined,
    search: 'enumeration',
  };
}
