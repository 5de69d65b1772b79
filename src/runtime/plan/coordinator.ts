/**
 * plan/: the origin's planning duty. The coordinator gathers the cluster's profiles and measured links, asks
 * the planner for the best plan, has each host build and warm its segment (prepare), then switches new
 * requests to the new epoch (commit). In-flight requests keep the route they were stamped with. A plan can
 * also be pinned by hand (PUT /v1/plan) and unpinned (DELETE), which re-plans.
 */
import type { Logger } from 'pino';
import { CleaveError } from '../../errors.js';
import { plan as searchPlans, profilesToInput } from '../../planner/index.js';
import type {
  Constraint,
  CostModel,
  Objective,
  Plan,
  PlanInput,
  PlanLink,
  PlannerOptions,
} from '../../planner/types.js';
import type { RouteStage } from '../../transport/frame.js';
import type { ClusterView, LinkView } from './cluster-view.js';
import { describeRoute, routeOf, sameRoute, type BlockRange, type HostView } from './route.js';
import { CODECS, LOSSLESS_CODECS } from '../../transport/codec.js';

/** The wire's codecs, for the planner: only these are offered, and a lossy one only where it was measured. */
const WIRE_CODECS = { known: CODECS, lossless: LOSSLESS_CODECS };

/** A link the planner can price: measured in both RTT and throughput. */
function measured(l: LinkView): l is LinkView & { rttMs: number; throughputBps: number } {
  return l.rttMs !== null && l.throughputBps !== null && l.throughputBps > 0;
}

export interface CoordinatorOptions {
  /** The origin: this host. */
  readonly self: HostView;
  /** Tier chain, origin first. */
  readonly tiers: readonly string[];
  readonly hosts: readonly HostView[];
  /** The model's blocks as node ranges (the planner plans blocks; routes carry nodes). */
  readonly blocks: readonly BlockRange[];
  /** Profiles of the reachable hosts, and the link measurements to plan with. */
  readonly cluster: { profiles: ClusterView['profiles']; links(): Promise<readonly LinkView[]> };
  /**
   * Builds and warms `[from, to)` (nodes) on `host`, and tells it the plan's whole `route`, which it accepts
   * in infer frames from then on; resolves when warm.
   */
  prepare(host: string, from: number, to: number, route: RouteStage[]): Promise<void>;
  /** Default 'latency'. */
  readonly objective?: Objective;
  /** Default 'cleave' (what the runtime does). */
  readonly costModel?: CostModel;
  /** A pair of hosts with no measured link: 'skip' (default: not usable yet) or 'error'. */
  readonly missingLinks?: PlannerOptions['missingLinks'];
  /** The deployment's constraints, applied to every search but a pin's (an operator's explicit plan). */
  readonly constraints?: readonly Constraint[];
  /**
   * The controller's live settings, read at every search: its constraints (instead of `constraints`), the
   * wire codecs the hops may use (null or absent: every codec the profiles measured) and the lossy codecs'
   * error budget. Absent: `constraints`, every codec, no budget.
   */
  readonly settings?: () => {
    readonly constraints?: readonly Constraint[];
    readonly codecs?: readonly string[] | null;
    readonly maxError?: number;
  };
  /** Adopted plans kept in `plans`. */
  readonly historyLength: number;
  /**
   * How long a pin waits for the links its route needs to be measured (default 5000 ms): right after start-up,
   * or after a reconnect, a link can still be without a figure for a moment; past this, E_NOT_READY names it.
   */
  readonly pinLinkWaitMs?: number;
  /** Told of every committed plan (metrics, events). */
  onAdopt?(p: ActivePlan, previous: ActivePlan | null): void;
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
  /** Set by the adaptive controller: adopted at once (the old plan could not run), and the predicted gain. */
  readonly urgent?: boolean;
  readonly gain?: number;
}

export class Coordinator {
  private active: ActivePlan | null = null;
  private readonly history: ActivePlan[] = [];
  private epoch = 0;
  private switching: Promise<ActivePlan> | null = null;
  private readonly warming = new Map<string, Promise<void>>();
  /** The model is unloaded (lifecycle.ts): no host prepares a segment until it is loaded again. */
  private unloaded = false;

  constructor(private readonly o: CoordinatorOptions) {}

  get current(): ActivePlan | null {
    return this.active;
  }

  /** False between `markUnloaded` and `reload`. */
  get loaded(): boolean {
    return !this.unloaded;
  }

  /**
   * From now on nothing is prepared (a pin, a re-plan, a warm-up fails with E_NOT_READY); resolves once the
   * switch and the warm-ups under way have settled, so none of them prepares a segment after this. The plan
   * in force stays, for `reload`.
   */
  async markUnloaded(): Promise<void> {
    this.unloaded = true;
    while (this.switching || this.warming.size > 0)
      await Promise.allSettled([this.switching, ...this.warming.values()]);
  }

  /** Allows preparing again and has every host of the plan in force build and warm its segment again. */
  async reload(): Promise<ActivePlan> {
    this.unloaded = false;
    if (!this.active) return this.replan('model loaded');
    await this.prepareRoute(this.active.route);
    return this.active;
  }

  get plans(): readonly ActivePlan[] {
    return this.history;
  }

  /** Plans from the current measurements and adopts the best plan (unless one is pinned). */
  async replan(reason: string): Promise<ActivePlan> {
    if (this.active?.pinned) return this.active;
    const best = (await this.search([]))[0];
    return this.adopt(best, { pinned: false, reason });
  }

  /**
   * Pins a plan given as stages `{host, blocks: [a, b)}` in tier order covering every block. The planner
   * evaluates it (forced through constraints), so it gets the same predicted figures as a searched plan.
   */
  async pin(stages: readonly { host: string; blocks: readonly [number, number] }[]): Promise<ActivePlan> {
    const n = this.o.blocks.length;
    const constraints: Constraint[] = [];
    let next = 0;
    const used = new Set<string>();
    for (const [i, s] of stages.entries()) {
      const host = this.o.hosts.find((h) => h.name === s.host);
      if (!host)
        throw new CleaveError('E_BAD_INPUT', `stages[${i}].host: '${s.host}' is not a host of this deployment`);
      const [a, b] = s.blocks;
      if (!Number.isInteger(a) || !Number.isInteger(b) || a !== next || b <= a || b > n)
        throw new CleaveError(
          'E_BAD_INPUT',
          `stages[${i}].blocks: expected [${next}, b) with ${next} < b <= ${n}, got [${a}, ${b})`,
        );
      if (used.has(host.tier)) throw new CleaveError('E_BAD_INPUT', `stages[${i}]: tier '${host.tier}' is used twice`);
      used.add(host.tier);
      constraints.push({ kind: 'useHost', hosts: [host.name], source: `stages[${i}]` });
      for (let k = a; k < b; k++)
        constraints.push({ kind: 'blockOn', block: k, tier: host.tier, source: `stages[${i}]` });
      next = b;
    }
    if (next !== n)
      throw new CleaveError('E_BAD_INPUT', `stages cover blocks [0, ${next}) but the model has ${n} blocks`);
    for (const t of this.o.tiers)
      if (!used.has(t) && t !== this.o.self.tier) constraints.push({ kind: 'noTier', tier: t, source: 'pin' });
    await this.awaitLinks(stages.map((s) => s.host));
    const [best] = await this.search(constraints, 1, false);
    return this.adopt(best, { pinned: true, reason: 'pinned by PUT /v1/plan' });
  }

  /**
   * Waits (up to `pinLinkWaitMs`) until every hop of the route origin -> `hosts` has a measured link: the
   * planner cannot price a hop without one, and would otherwise answer that the stages cannot all be met.
   */
  private async awaitLinks(hosts: readonly string[]): Promise<void> {
    const chain = hosts[0] === this.o.self.name ? hosts : [this.o.self.name, ...hosts];
    const hops = chain.slice(1).map((to, i) => [chain[i], to] as const);
    const until = Date.now() + (this.o.pinLinkWaitMs ?? 5000);
    for (;;) {
      const links = await this.o.cluster.links();
      const missing = hops.filter(([from, to]) => !links.some((l) => l.from === from && l.to === to && measured(l)));
      if (missing.length === 0) return;
      if (Date.now() >= until) {
        const names = missing.map(([a, b]) => `${a} -> ${b}`).join(', ');
        throw new CleaveError(
          'E_NOT_READY',
          `the pinned route's link ${names} has no measurement yet (links are measured within seconds of ` +
            'opening); retry, and see GET /v1/links',
        );
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async unpin(): Promise<ActivePlan> {
    if (this.active) this.active = { ...this.active, pinned: false };
    return this.replan('unpinned by DELETE /v1/plan');
  }

  /** The planner's top plans for the current measurements. */
  async search(constraints: readonly Constraint[], topN = 1, deployment = true): Promise<readonly Plan[]> {
    const input = await this.planInput(
      deployment ? [...(this.o.settings?.().constraints ?? this.o.constraints ?? []), ...constraints] : constraints,
      topN,
    );
    return searchPlans(input).plans;
  }

  /** The planner's input for the current measurements: every reachable host's profile, every measured link. */
  async planInput(constraints: readonly Constraint[] = [], topN = 1): Promise<PlanInput> {
    const [profiles, links] = await Promise.all([this.o.cluster.profiles(), this.o.cluster.links()]);
    if (profiles.length === 0) throw new CleaveError('E_NOT_READY', 'no host profile yet');
    // Only hosts that answered take part, and only links measured in both RTT and throughput between them:
    // the others cannot be planned over yet.
    const known = new Set(profiles.map((p) => p.host.name));
    const planned: PlanLink[] = [];
    for (const l of links) {
      if (!known.has(l.from) || !known.has(l.to) || !measured(l)) continue;
      planned.push({ from: l.from, to: l.to, rttMs: l.rttMs, bytesPerSecond: l.throughputBps });
    }
    return profilesToInput(
      profiles.map((p) => ({ profile: p, source: `host ${p.host.name}'s profile` })),
      planned,
      {
        tiers: this.o.tiers,
        objective: this.o.objective ?? 'latency',
        costModel: this.o.costModel ?? 'cleave',
        constraints,
        topN,
        codecs: this.o.settings?.().codecs ?? undefined,
        wireCodecs: WIRE_CODECS,
        maxError: this.o.settings?.().maxError,
        networkSource: 'measured links',
        options: { missingLinks: this.o.missingLinks ?? 'skip' },
      },
    );
  }

  /** Route for a plan: the origin first (running nothing when the plan gives it no blocks). */
  routeOf(p: Plan): RouteStage[] {
    return routeOf(p, this.o.self, this.o.blocks);
  }

  /**
   * Has every stage's host build and warm its segment for `p` without committing it: the adaptive loop warms
   * a proposed plan while it waits to confirm it, so that adopting it later commits at once. Warming the plan
   * that is current, or one already warming, is joined rather than repeated (the hosts deduplicate too).
   */
  warm(p: Plan): Promise<void> {
    return this.prepareRoute(this.routeOf(p));
  }

  /** Every computing stage of `route` built and warm on its host; a preparation of it in progress is joined. */
  private prepareRoute(route: RouteStage[]): Promise<void> {
    if (this.unloaded)
      return Promise.reject(
        new CleaveError('E_NOT_READY', 'the model is unloaded: no segment is prepared until it is loaded again'),
      );
    const key = describeRoute(route);
    const running = this.warming.get(key);
    if (running) return running;
    const run = Promise.all(route.filter((s) => s.to > s.from).map((s) => this.o.prepare(s.host, s.from, s.to, route)))
      .then(() => undefined)
      .finally(() => this.warming.delete(key));
    this.warming.set(key, run);
    return run;
  }

  /**
   * Make before break: every stage's host builds and warms its segment, then new requests take the new epoch.
   * One switch at a time: a second waits for the first, then runs. A failed prepare leaves the current plan.
   */
  async adopt(
    p: Plan | undefined,
    how: { pinned: boolean; reason: string; urgent?: boolean; gain?: number },
  ): Promise<ActivePlan> {
    if (!p) throw new CleaveError('E_NO_PLAN', 'the planner found no plan');
    while (this.switching) await this.switching.catch(() => undefined);
    // A pin committed while this switch waited wins over a plan searched before it.
    if (!how.pinned && this.active?.pinned) return this.active;
    const run = (async (): Promise<ActivePlan> => {
      const route = this.routeOf(p);
      if (this.active && sameRoute(this.active.route, route)) {
        this.active = { ...this.active, pinned: how.pinned, predicted: p };
        return this.active;
      }
      // Joins the warming of a proposed plan, if it is still under way.
      await this.prepareRoute(route);
      const previous = this.active;
      const next: ActivePlan = {
        epoch: ++this.epoch,
        route,
        predicted: p,
        pinned: how.pinned,
        adoptedAt: new Date().toISOString(),
        reason: how.reason,
        urgent: how.urgent,
        gain: how.gain,
      };
      this.active = next;
      this.history.push(next);
      if (this.history.length > this.o.historyLength) this.history.shift();
      this.o.logger.info(
        { epoch: next.epoch, route: describeRoute(route), latencyMs: p.latencyMs, reason: how.reason },
        'plan adopted',
      );
      this.o.onAdopt?.(next, previous);
      return next;
    })();
    this.switching = run;
    try {
      return await run;
    } finally {
      if (this.switching === run) this.switching = null;
    }
  }
}
