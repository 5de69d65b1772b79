/**
 * `plan(input)`: the exact top N plans (and the Pareto set) for one model over a tier chain. Pure and
 * synchronous: the runtime's controller calls it with live measurements many times a second.
 *
 * - latency: the K-best latency DP (dp.ts), one run per origin host, merged.
 * - throughput, ranked by (bottleneck, latency, canonical order): a bottleneck threshold is a per-stage
 *   test, so for the smallest bottleneck level B (min-max DP) the latency DP under "everything <= B"
 *   ranks exactly the plans at that level; if fewer than N exist, the next level is the smallest
 *   bottleneck above B (minmax.ts), and so on: at most N levels.
 * - Pareto: the device step (origin, c0) fixes both bytes leaving the device and device compute, so the
 *   front is among the best-latency plan of each device step (one latency DP per origin, K = 1). With wire
 *   codecs it does not (the first hop's codec, so its bytes, depends on its receiver): branch and bound.
 * - A share constraint couples stages: then branch and bound (bnb.ts) answers all three.
 * Every returned plan is priced by `evaluate`, as the brute-force enumerator prices it.
 */
import { CleaveError } from '../errors.js';
import { compareShapes, evaluate } from './cost.js';
import { branchAndBound } from './bnb.js';
import { LatencyDP } from './dp.js';
import { MinMaxDP } from './minmax.js';
import { describeConstraint, prepare, type Prepared, type Shape } from './prepare.js';
import { byLatency, paretoFront, toPlan, type Scored } from './result.js';
import type { Constraint, Plan, PlanInput, PlanResult } from './types.js';
import { stageAtoms, stageWindows } from './window.js';

export function plan(input: PlanInput): PlanResult {
  const p = prepare(input);
  const result = search(p);
  if (result.plans.length === 0) throw noPlan(input);
  return result;
}

/** The search without the no-plan diagnosis: possibly empty. */
export function search(p: Prepared): PlanResult {
  const bnb = p.shares.length > 0;
  let top: Scored[];
  if (bnb) top = branchAndBound(p, 'top');
  else top = p.objective === 'throughput' ? throughputTop(p) : latencyTop(p);
  let pareto: Scored[] | undefined;
  // With codecs the bytes leaving the device depend on the first hop's receiver as well as on (origin, c0),
  // which the Pareto DP assumes fix them: branch and bound tracks them per partial plan instead.
  if (p.input.pareto) pareto = bnb || p.codecs.names.length > 1 ? branchAndBound(p, 'pareto') : paretoDP(p);
  return {
    objective: p.objective,
    costModel: p.costModel,
    inputBytes: p.inputBytes,
    plans: top.map((s) => toPlan(p, s)),
    pareto: pareto?.map((s) => toPlan(p, s)),
    search: bnb ? 'branch-and-bound' : 'dp',
  };
}

/** Bisection steps of `loadedBest`: the answer is within N x bottleneck-range / 2^steps of the optimum. */
export const LOADED_SEARCH_STEPS = 12;

/**
 * The best plan on prepared input for an objective: for latency with more than one request in flight (and
 * no shared hosts), the best under that load (`loadedBest`); otherwise the search's first. Null when none.
 */
export function bestFor(p: Prepared, objective: 'latency' | 'throughput', concurrency: number): Plan | null {
  return objective === 'latency' && concurrency > 1 && p.shares.length === 0
    ? loadedBest(p, concurrency)
    : (search(p).plans[0] ?? null);
}

/**
 * The plan that minimises its latency under load: with `concurrency` requests in flight, a request also
 * waits behind the others at the slowest stage or link, and a closed system's asymptotic bound gives
 * R = max(latency, N x bottleneck) (Lazowska et al., "Quantitative System Performance", ch. 5).
 *
 * L*(b), the least latency among plans whose bottleneck is <= b, does not increase with b while N x b
 * grows, so the optimum sits where they cross: a bisection on b (one latency DP per step, each with the
 * bottleneck threshold the throughput search also uses) finds the smallest b with L*(b) <= N x b; the best
 * plan is that one or the best plan just below it. With N x bottleneck <= latency for the latency-best plan
 * (light load) that plan is the answer at once. Null when no plan exists.
 */
export function loadedBest(p: Prepared, concurrency: number): Plan | null {
  const dp = new LatencyDP(p, 1);
  const bound = new LatencyDP(p, 1);
  const at = (lambda: number): Scored | undefined => latencyTop(p, lambda, dp, bound)[0];
  const loaded = (x: Scored): number => Math.max(x.m.latency, concurrency * x.m.bottleneck);
  const top = at(Infinity);
  if (!top) return null;
  if (concurrency * top.m.bottleneck <= top.m.latency) return toPlan(p, top);
  let lo = 0;
  let hi = top.m.bottleneck;
  let best = top;
  let below: Scored | undefined;
  for (let i = 0; i < LOADED_SEARCH_STEPS && hi - lo > 1; i++) {
    const mid = Math.floor((lo + hi) / 2);
    const x = at(mid);
    if (x && x.m.latency <= concurrency * mid) {
      hi = mid;
      if (loaded(x) < loaded(best)) best = x;
    } else {
      lo = mid;
      if (x && (!below || loaded(x) < loaded(below))) below = x;
    }
  }
  return toPlan(p, below && loaded(below) < loaded(best) ? below : best);
}

function score(p: Prepared, shape: Shape): Scored {
  const m = evaluate(p, shape);
  if (!m) throw new CleaveError('E_INTERNAL', 'planner produced a plan over a missing link');
  return { shape, m };
}

/**
 * Top N by latency under threshold lambda. With several origins, a K = 1 pass bounds each origin's best
 * plan from below; origins are solved best bound first, and skipped once their bound exceeds the N-th
 * best latency already found (equal bounds are still solved: a tie may win on the canonical order).
 */
function latencyTop(p: Prepared, lambda = Infinity, dp = new LatencyDP(p, p.topN), bound?: LatencyDP): Scored[] {
  let origins = p.tierHosts[0].map((o) => ({ o, lb: -Infinity }));
  if (origins.length > 1) {
    const b = bound ?? new LatencyDP(p, 1);
    b.run(-1, lambda);
    origins = origins.map(({ o }) => ({ o, lb: b.originBound(o, lambda) })).sort((x, y) => x.lb - y.lb || x.o - y.o);
  }
  const all: { shape: Shape; latency: number }[] = [];
  for (const { o, lb } of origins) {
    if (lb === Infinity) break;
    if (all.length >= p.topN && lb > all[p.topN - 1].latency) break;
    all.push(...dp.run(o, lambda));
    all.sort((a, b) => a.latency - b.latency || compareShapes(a.shape, b.shape));
  }
  return all.slice(0, p.topN).map((r) => score(p, r.shape));
}

function throughputTop(p: Prepared): Scored[] {
  const mm = new MinMaxDP(p);
  const dp = new LatencyDP(p, p.topN);
  const bound = new LatencyDP(p, 1);
  // Per origin: a lower bound on its smallest bottleneck, made exact (with its tables kept) on demand.
  const origins = p.tierHosts[0];
  const lb = origins.length > 1 ? mm.originBounds(origins) : new Map(origins.map((o) => [o, -Infinity]));
  const exact = new Map<number, { best: number; tables: ReturnType<MinMaxDP['snapshot']> }>();
  const solve = (o: number): void => {
    if (exact.has(o)) mm.restore((exact.get(o) as { tables: ReturnType<MinMaxDP['snapshot']> }).tables);
    else {
      const best = mm.run(o);
      exact.set(o, { best, tables: mm.snapshot() });
      lb.set(o, best);
    }
  };
  // The smallest bottleneck above theta over all origins, visiting origins by bound and stopping early.
  const nextLevel = (theta: number): number => {
    let level = Infinity;
    for (const o of [...origins].sort((a, b) => (lb.get(a) as number) - (lb.get(b) as number) || a - b)) {
      if (Math.max(lb.get(o) as number, theta + 1) > level) break;
      solve(o);
      level = Math.min(level, theta < 0 ? (exact.get(o) as { best: number }).best : mm.above(theta));
    }
    return level;
  };
  const found: Scored[] = [];
  let theta = -1;
  let level = nextLevel(theta);
  while (level < Infinity && found.length < p.topN) {
    // Plans with bottleneck <= level, by latency; those above theta are exactly the ones at this level.
    for (const s of latencyTop(p, level, dp, bound)) {
      if (s.m.bottleneck > theta && found.length < p.topN) found.push(s);
    }
    if (found.length >= p.topN) break;
    theta = level;
    level = nextLevel(theta);
    if (level <= theta)
      throw new CleaveError('E_INTERNAL', 'throughput search: the next bottleneck level did not increase');
  }
  return found;
}

function paretoDP(p: Prepared): Scored[] {
  const dp = new LatencyDP(p, 1);
  const lo = new Int32Array(p.n);
  const hi = new Int32Array(p.n);
  const cands: Scored[] = [];
  for (const o of p.tierHosts[0]) {
    dp.run(o);
    stageWindows(p, 0, o, p.computeCap[0], lo, hi);
    for (let c0 = 0; c0 <= p.n; c0++) {
      const allowed =
        c0 === 0
          ? !p.mustUse[0]
          : p.deviceMayCompute && c0 >= lo[0] && c0 <= hi[0] && stageAtoms(p, o, 0, c0) <= p.computeCap[0];
      if (!allowed) continue;
      const best = dp.bestDeviceEnd(c0);
      if (best) cands.push(score(p, dp.shapeOf(c0, best.suffix)));
    }
  }
  return paretoFront(cands.sort(byLatency));
}

/**
 * E_NO_PLAN naming the constraints to blame: a minimal set that leaves no plan (each one dropped in turn;
 * kept only if the rest then has a plan), or, when there is none, why the topology itself has no plan.
 */
function noPlan(input: PlanInput): CleaveError {
  const all = [...(input.constraints ?? [])];
  const feasible = (cs: readonly Constraint[]): boolean => {
    const p = prepare({ ...input, constraints: cs, pareto: false, topN: 1, objective: 'latency' });
    return search(p).plans.length > 0;
  };
  if (all.length === 0 || !feasible([])) {
    return new CleaveError(
      'E_NO_PLAN',
      'no plan: no route through the tiers covers every block (check that every needed link is in the network)',
    );
  }
  let keep = all;
  for (const c of all) {
    const without = keep.filter((x) => x !== c);
    if (!feasible(without)) keep = without;
  }
  const names = keep.map((c) => c.source ?? describeConstraint(c));
  const what =
    names.length === 1
      ? `${names[0]} cannot be met (no plan satisfies it even alone)`
      : `${names.join(', ')} cannot all be met together (any of them without the others can)`;
  return new CleaveError('E_NO_PLAN', `no plan: ${what}`);
}
