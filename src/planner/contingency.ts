/**
 * Contingency plans: what the controller would move to if one host got several times slower, or the links
 * between two hosts several times slower, searched on the live estimates of the plan just adopted. The
 * runtime warms their segments in the background, so that when such a change comes the commit that answers
 * it waits for no session. Why: on a host under a tight CPU quota, building and warming a segment session
 * (extracting it, creating it, two warm-up runs: ~60 ms of CPU for MobileNetV2 here) takes 1-2 s while the
 * host also serves; measured here, the edge cut to 0.15 CPU, the controller decided to move within 1.7 s of
 * the cut and committed 2 s later, all of it spent preparing the new segment on the edge. Pure.
 */
import { isCleaveError } from '../errors.js';
import type { ControllerSettings } from './controller-settings.js';
import { liveInput, routeOf, type LiveSnapshot } from './live-input.js';
import { bestFor } from './plan.js';
import { prepare } from './prepare.js';
import type { Plan } from './types.js';

export const CONTINGENCY_LIMITS = {
  /** A host this many times slower than its live slowdown: each is a scenario. */
  hostSlowdowns: [4, 16],
  /** The links between two hosts (both ways) at this share of their live throughput: each is a scenario. */
  linkShares: [0.1, 0.02],
} as const;

/** A change a contingency plan answers, in words: `edge 4x slower`, `device<->edge at 10% throughput`. */
export interface Contingency {
  readonly scenario: string;
  readonly plan: Plan;
}

/**
 * Up to `max` plans, each the best under one scenario (hosts first, in the input's order, then host pairs),
 * none of them `currentRoute` nor the same route twice. Scenarios whose search fails (no plan) are skipped.
 */
export function contingencyPlans(
  s: LiveSnapshot,
  set: Pick<ControllerSettings, 'objective' | 'constraints' | 'codecs' | 'maxError'>,
  currentRoute: string,
  max: number,
): Contingency[] {
  const out: Contingency[] = [];
  if (!(max > 0)) return out;
  const seen = new Set([currentRoute]);
  const down = new Set(s.down);
  const hosts = s.input.hosts.map((h) => h.name).filter((h) => !down.has(h));
  const scenarios: { scenario: string; snap: LiveSnapshot }[] = [];
  for (const f of CONTINGENCY_LIMITS.hostSlowdowns)
    for (const h of hosts)
      scenarios.push({
        scenario: `${h} ${f}x slower`,
        snap: { ...s, slowdown: { ...s.slowdown, [h]: (s.slowdown[h] ?? 1) * f } },
      });
  const pairs = new Map<string, [string, string]>();
  for (const l of s.input.links) {
    const [a, b] = [l.from, l.to].sort();
    if (a !== b && !down.has(a) && !down.has(b)) pairs.set(`${a}<->${b}`, [a, b]);
  }
  for (const share of CONTINGENCY_LIMITS.linkShares)
    for (const [name, [a, b]] of pairs)
      scenarios.push({
        scenario: `${name} at ${share * 100}% throughput`,
        snap: {
          ...s,
          input: {
            ...s.input,
            links: s.input.links.map((l) =>
              (l.from === a && l.to === b) || (l.from === b && l.to === a)
                ? { ...l, bytesPerSecond: l.bytesPerSecond * share }
                : l,
            ),
          },
        },
      });
  const n = Math.max(1, s.concurrency ?? 1);
  for (const { scenario, snap } of scenarios) {
    if (out.length >= max) break;
    let plan: Plan | null = null;
    try {
      plan = bestFor(prepare(liveInput(snap, set.objective, set.constraints, set)), set.objective, n);
    } catch (e) {
      // No plan under this scenario (constraints it breaks): nothing to warm for it.
      if (isCleaveError(e) && (e.code === 'E_NO_PLAN' || e.code === 'E_UNSUPPORTED')) continue;
      throw e;
    }
    if (!plan) continue;
    const route = routeOf(plan);
    if (seen.has(route)) continue;
    seen.add(route);
    out.push({ scenario, plan });
  }
  return out;
}
