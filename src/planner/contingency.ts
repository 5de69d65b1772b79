/**
 * Contingency plans: what the controller would move to if one host got several times slower, or the links
 * between two hosts several times slower, searched on the live estimates of the plan just adopted. The
 * runtime warms their segments in the background, so that when such a change comes the commit that answers
 * it waits for no session. Why: on a host under a tight CPU quota, building and warming a segment session
 * (extracting it, creating it, two warm-up runs: ~60 ms of CPU for MobileNetV2 here) takes 1-2 s while the
 * host also serves; measured here, the edge cut to 0.15 CPU, the controller decided to move within 1.7 s of
 * the cut and committed 2 s later, all of it spent preparing the new segment on the edge. Pure.
 *
 * A build is not free either: it holds the host's ORT worker (creating a session blocks the thread it runs
 * on) and spends its CPU quota. So a plan that would build a segment on a host that runs a stage of the
 * plan in force while that host's quota is used up (its cgroup throttled: `throttledShare`) is deferred,
 * not warmed: the build would stall every request through that stage for as long as it takes there, which
 * is long exactly because the host is saturated. Measured (`npm run bench -- adapt`'s schedule, the edge cut
 * to 0.15 CPU while it ran `edge[7:16)` of every request): two such builds took 1.1 s and 2.8 s, no request
 * was answered for 2 s, and the stalled frames read as a slow link and moved the plan twice more.
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
  /**
   * A host whose cgroup was throttled for at least this share of the last few seconds uses up its CPU quota:
   * no contingency segment is built on it while it runs a stage of the plan in force. Measured here: the
   * 0.25-CPU device serving 40 requests/s 0.05-0.9, the 1-CPU edge running the whole model 0-0.02, the edge at
   * 0.15 CPU building a segment 0.8-1.4.
   */
  throttledShare: 0.1,
} as const;

/** A change a contingency plan answers, in words: `edge 4x slower`, `device<->edge at 10% throughput`. */
export interface Contingency {
  readonly scenario: string;
  readonly plan: Plan;
  /**
   * Set when the plan is not to be warmed now: it would build a segment on `host`, which runs a stage of the
   * plan in force and is throttled (`reason` says how much).
   */
  readonly deferred?: { readonly host: string; readonly reason: string };
}

/** The plan in force, as contingencies need it: its route and the block ranges each host runs. */
export type InForce = Pick<Plan, 'origin' | 'stages' | 'hops'>;

/**
 * Up to `max` plans to warm, each the best under one scenario (hosts first, in the input's order, then host
 * pairs), none of them `current`'s route nor the same route twice, followed by the plans deferred on the way
 * (`deferred`: they do not count toward `max`). Scenarios whose search fails (no plan) are skipped.
 */
export function contingencyPlans(
  s: LiveSnapshot,
  set: Pick<ControllerSettings, 'objective' | 'constraints' | 'codecs' | 'maxError'>,
  current: InForce,
  max: number,
): Contingency[] {
  const out: Contingency[] = [];
  const deferred: Contingency[] = [];
  if (!(max > 0)) return out;
  const seen = new Set([routeOf(current)]);
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
    const why = deferral(s, current, plan);
    if (why) deferred.push({ scenario, plan, deferred: why });
    else out.push({ scenario, plan });
  }
  return [...out, ...deferred];
}

/**
 * Why `plan` is not to be warmed now (see the module's note), or null: the first host on which it would
 * build a segment while that host runs another segment of the plan in force and is throttled.
 */
export function deferral(
  s: LiveSnapshot,
  current: InForce,
  plan: Pick<Plan, 'stages'>,
): Contingency['deferred'] | null {
  const running = new Map<string, Set<string>>();
  for (const st of current.stages)
    if (st.end > st.start) running.set(st.host, (running.get(st.host) ?? new Set()).add(`${st.start}:${st.end}`));
  for (const st of plan.stages) {
    const has = running.get(st.host);
    if (st.end <= st.start || !has || has.has(`${st.start}:${st.end}`)) continue;
    const share = s.throttledShare?.[st.host] ?? 0;
    if (share >= CONTINGENCY_LIMITS.throttledShare)
      return {
        host: st.host,
        reason: `${st.host} runs ${[...has].map((r) => `${st.host}[${r})`).join(' and ')} of the plan in force and its CPU quota is used up (throttled ${Math.round(share * 100)}% of the last seconds): building ${st.host}[${st.start}:${st.end}) there would stall it`,
      };
  }
  return null;
}
