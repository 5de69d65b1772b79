/**
 * The device host's planning duty: gather every host's profile and the measured links, ask the planner for
 * the best plan, have each host build and warm its segment (prepare), then switch new requests to the new
 * epoch (commit). In-flight requests keep the route they were stamped with. A plan can also be pinned by
 * hand (PUT /v1/plan) and unpinned (DELETE), which re-plans.
 */
import type { Logger } from 'pino';
import { CleaveError } from '../../errors.js';
import type { Block } from '../../graph/cuts.js';
import { plan as searchPlans } from '../../planner/index.js';
import type { Constraint, Plan, PlanInput } from '../../planner/types.js';
import type { RouteStage } from '../../transport/frame.js';
import type { ProfileDoc } from '../local/profiler.js';

export interface HostView {
  readonly name: string;
  readonly tier: string;
}

export interface LinkView {
  readonly from: string;
  readonly to: string;
  readonly rttMs: number | null;
  readonly throughputBps: number | null;
  /** Timed throughput samples so far: early ones are rough, so start-up planning waits for a few. */
  readonly throughputSamples?: number;
}

/** What the coordinator needs from the host: kept small so it can be driven without sockets in tests. */
export interface CoordinatorDeps {
  readonly self: HostView;
  readonly tiers: readonly string[];
  readonly hosts: readonly HostView[];
  readonly blocks: readonly Block[];
  profiles(): Promise<ProfileDoc[]>;
  links(): Promise<LinkView[]>;
  /** Builds and warms `[from, to)` on `host`; resolves when warm. */
  prepare(host: string, from: number, to: number): Promise<void>;
  readonly logger: Logger;
}

export interface ActivePlan {
  readonly epoch: number;
  readonly route: RouteStage[];
  /** The planner's figures for this plan (predicted latency, throughput, per-hop bytes). */
  readonly predicted: Plan;
  readonly pinned: boolean;
  readonly adoptedAt: string;
  readonly reason: string;
}

export const HISTORY_LENGTH = 50;

export class Coordinator {
  private active: ActivePlan | null = null;
  private readonly history: ActivePlan[] = [];
  private epoch = 0;
  private switching: Promise<ActivePlan> | null = null;

  constructor(private readonly d: CoordinatorDeps) {}

  get current(): ActivePlan | null {
    return this.active;
  }

  get plans(): readonly ActivePlan[] {
    return this.history;
  }

  /** Plans from the current measurements and adopts the best plan (unless one is pinned). */
  async replan(reason: string): Promise<ActivePlan> {
    if (this.active?.pinned) return this.active;
    const best = (await this.search([]))[0];
    return this.adopt(best, false, reason);
  }

  /**
   * Pins a plan given as stages `{host, blocks: [a, b)}` in tier order covering every block. The planner
   * evaluates it (forced through constraints), so it gets the same predicted figures as a searched plan.
   */
  async pin(stages: readonly { host: string; blocks: readonly [number, number] }[]): Promise<ActivePlan> {
    const n = this.d.blocks.length;
    const constraints: Constraint[] = [];
    let next = 0;
    const used = new Set<string>();
    for (const [i, s] of stages.entries()) {
      const host = this.d.hosts.find((h) => h.name === s.host);
      if (!host) throw new CleaveError('E_BAD_INPUT', `stages[${i}].host: '${s.host}' is not a host of this deployment`);
      const [a, b] = s.blocks;
      if (!Number.isInteger(a) || !Number.isInteger(b) || a !== next || b <= a || b > n)
        throw new CleaveError('E_BAD_INPUT', `stages[${i}].blocks: expected [${next}, b) with ${next} < b <= ${n}, got [${a}, ${b})`);
      if (used.has(host.tier)) throw new CleaveError('E_BAD_INPUT', `stages[${i}]: tier '${host.tier}' is used twice`);
      used.add(host.tier);
      constraints.push({ kind: 'useHost', hosts: [host.name], source: `stages[${i}]` });
      for (let k = a; k < b; k++) constraints.push({ kind: 'blockOn', block: k, tier: host.tier, source: `stages[${i}]` });
      next = b;
    }
    if (next !== n) throw new CleaveError('E_BAD_INPUT', `stages cover blocks [0, ${next}) but the model has ${n} blocks`);
    for (const t of this.d.tiers) if (!used.has(t) && t !== this.d.self.tier) constraints.push({ kind: 'noTier', tier: t, source: 'pin' });
    const [best] = await this.search(constraints);
    return this.adopt(best, true, 'pinned by PUT /v1/plan');
  }

  async unpin(): Promise<ActivePlan> {
    if (this.active) this.active = { ...this.active, pinned: false };
    return this.replan('unpinned by DELETE /v1/plan');
  }

  /** The planner's top plans for the current measurements. */
  async search(constraints: readonly Constraint[], topN = 1): Promise<readonly Plan[]> {
    const input = await this.planInput(constraints, topN);
    return searchPlans(input).plans;
  }

  async planInput(constraints: readonly Constraint[] = [], topN = 1): Promise<PlanInput> {
    const profiles = await this.d.profiles();
    const links = await this.d.links();
    const blocks = profiles[0]?.model.blocks;
    if (!blocks) throw new CleaveError('E_NOT_READY', 'no host profile yet');
    // Only hosts that answered take part; links to or from the others are left out.
    const known = new Set(profiles.map((p) => p.host.name));
    return {
      tiers: this.d.tiers,
      hosts: profiles.map((p) => ({
        name: p.host.name,
        tier: p.host.tier,
        blockMs: p.timings.blocks.map((b) => b.medianMs),
        stageOverheadMs: p.timings.runOverheadMs,
        cutMsPerByte: p.timings.cutMsPerByte,
      })),
      // Only links measured in both RTT and throughput take part; the others cannot be planned over yet.
      links: links
        .filter((l) => known.has(l.from) && known.has(l.to))
        .filter((l) => l.rttMs !== null && l.throughputBps !== null && l.throughputBps > 0)
        .map((l) => ({ from: l.from, to: l.to, rttMs: l.rttMs as number, bytesPerSecond: l.throughputBps as number })),
      frontierBytes: blocks.map((b) => b.frontierBytes),
      inputBytes: profiles[0].model.inputBytes,
      outputBytes: profiles[0].model.outputBytes,
      weightBytes: blocks.map((b) => b.weightBytes),
      constraints,
      objective: 'latency',
      costModel: 'cleave',
      topN,
      options: { missingLinks: 'skip' },
    };
  }

  /** Route for a plan: the origin first (running nothing when the plan gives it no blocks). */
  routeOf(p: Plan): RouteStage[] {
    const nodes = (a: number, b: number): { from: number; to: number } => ({ from: this.d.blocks[a].start, to: this.d.blocks[b - 1].end });
    const route: RouteStage[] = [];
    if (p.stages[0]?.host !== this.d.self.name) route.push({ host: this.d.self.name, tier: this.d.self.tier, from: 0, to: 0 });
    for (const s of p.stages) route.push({ host: s.host, tier: s.tier, ...nodes(s.start, s.end) });
    return route;
  }

  private async adopt(p: Plan | undefined, pinned: boolean, reason: string): Promise<ActivePlan> {
    if (!p) throw new CleaveError('E_NO_PLAN', 'the planner found no plan');
    // One switch at a time: a second waits for the first, then runs.
    while (this.switching) await this.switching.catch(() => undefined);
    const run = (async (): Promise<ActivePlan> => {
      const route = this.routeOf(p);
      const same = this.active && JSON.stringify(this.active.route) === JSON.stringify(route);
      if (same && this.active) {
        this.active = { ...this.active, pinned, predicted: p };
        return this.active;
      }
      // Prepare: every stage's host builds and warms its segment before any request is routed there.
      await Promise.all(route.filter((s) => s.to > s.from).map((s) => this.d.prepare(s.host, s.from, s.to)));
      // Commit.
      const next: ActivePlan = { epoch: ++this.epoch, route, predicted: p, pinned, adoptedAt: new Date().toISOString(), reason };
      this.active = next;
      this.history.push(next);
      if (this.history.length > HISTORY_LENGTH) this.history.shift();
      this.d.logger.info({ epoch: next.epoch, route: describeRoute(route), latencyMs: p.latencyMs, reason }, 'plan adopted');
      return next;
    })();
    this.switching = run;
    try {
      return await run;
    } finally {
      this.switching = null;
    }
  }
}

export function describeRoute(route: readonly RouteStage[]): string {
  return route.map((s) => (s.to > s.from ? `${s.host}[${s.from}:${s.to})` : `${s.host}(input)`)).join(' -> ');
}
