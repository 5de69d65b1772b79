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

/** Calls `visit` with every plan shape (constraints not applied). */
export function forEachShape(p: Prepared, visit: (s: Shape) => void): void {
  const hostsOf: number[][] = p.tiers.map(() => []);
  for (let h = 0; h < p.H; h++) hostsOf[p.hostTier[h]].push(h);
  const steps: Step[] = [];
  const rec = (origin: number, q: number, end: number): void => {
    if (end === p.n) {
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

/** Every feasible plan, priced, unsorted. */
export function feasiblePlans(p: Prepared): Scored[] {
  const out: Scored[] = [];
  const constraints = p.input.constraints ?? [];
  forEachShape(p, (shape) => {
    const m = evaluate(p, shape);
    if (m && !violated(p, shape, m, constraints)) out.push({ shape, m });
  });
  return out;
}

/** Brute force with the planner's interface: the same ranking, top N and Pareto set, or no plans. */
export function enumeratePlans(input: PlanInput): PlanResult {
  const p = prepare(input);
  const all = feasiblePlans(p);
  const ranked = all.slice().sort(p.objective === 'throughput' ? byThroughput : byLatency).slice(0, p.topN);
  return {
    objective: p.objective,
    costModel: p.costModel,
    inputBytes: p.inputBytes,
    plans: ranked.map((s) => toPlan(p, s)),
    pareto: input.pareto ? paretoFront(all.sort(byLatency)).map((s) => toPlan(p, s)) : undefined,
    search: 'enumeration',
  };
}
