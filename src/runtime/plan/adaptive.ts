/**
 * The adaptive loop: drives the planner's pure controller on a timer (`replanIntervalMs`). Each round it
 * takes a snapshot of the live measurements (LiveState: link estimates, slowdowns, down hosts; the profiles
 * from the cluster), asks the controller, and when it says adopt, has the coordinator prepare and commit the
 * plan (make before break; in-flight requests finish on their route). A proposed plan is warmed while the
 * controller confirms it, so the commit that follows does not wait for sessions. Every decision is published.
 */
import type { Logger } from 'pino';
import { errorMessage } from '../../errors.js';
import { Controller, type Decision } from '../../planner/controller.js';
import { CONTROLLER_DEFAULTS, type ControllerSettings } from '../../planner/controller-settings.js';
import { loadedLatencyMs } from '../../planner/explain.js';
import type { Measured } from '../../planner/calibration.js';
import { contingencyPlans } from '../../planner/contingency.js';
import { routeOf, stagesOf, type CurrentPlan, type LiveSnapshot } from '../../planner/live-input.js';
import type { Profile } from '../../planner/profile.js';
import type { Plan } from '../../planner/types.js';
import type { ActivePlan, Coordinator } from './coordinator.js';
import type { EventBus } from './events.js';
import type { LiveState } from './live-state.js';

/** What the loop reports about each round and change (metrics). */
export interface AdaptiveMetrics {
  /** A round's wall time, and the part of it that ran on the loop without a break (snapshot and step). */
  round(ms: number, computeMs: number): void;
  changed(reason: 'urgent' | 'better'): void;
}

export interface AdaptiveOptions {
  readonly coordinator: Pick<Coordinator, 'current' | 'planInput' | 'adopt' | 'warm'> &
    Partial<Pick<Coordinator, 'loaded'>>;
  readonly live: Pick<LiveState, 'down' | 'slowdowns' | 'slowdownsByWork' | 'quotas' | 'frameCosts'> &
    Partial<Pick<LiveState, 'throttledShares'>>;
  profiles(): Promise<Profile[]>;
  /** Called first in every round (the origin refreshes its own measurements there). */
  beforeRound?(): void;
  /** Requests in flight on average, lately (1 when not given). */
  concurrency?(now: number): number;
  /** The current plan's recent requests (LiveSnapshot `measured`), for calibration; none when not given. */
  measured?(now: number): Measured | undefined;
  readonly settings?: Partial<ControllerSettings>;
  /**
   * Contingency plans (planner/contingency.ts) warmed in the background once per plan in force, after the
   * first round that keeps it; 0 or absent: none.
   */
  readonly contingencies?: number;
  readonly events?: EventBus;
  readonly metrics?: AdaptiveMetrics;
  readonly logger: Logger;
  /** Date.now by default; tests pass their own. */
  now?(): number;
}

export interface AdaptiveState {
  readonly settings: ControllerSettings;
  readonly rounds: number;
  /** The last round's decision, with its reason, and how long the round took. */
  readonly last: {
    readonly kind: Decision['kind'] | 'error';
    readonly reason: string;
    readonly at: number;
    /** Wall time, from the round's start to its decision: it includes waiting for the hosts' profiles and plan input. */
    readonly ms: number;
    /** The part of `ms` that ran without a break on the event loop (the snapshot and the controller's step). */
    readonly computeMs: number;
    /** Requests in flight on average when the round ran (the load the latency objective plans for). */
    readonly concurrency: number | null;
    /** The current plan priced on this round's live estimates (what "predicted" means now), if it can run. */
    readonly currentPredicted: LivePrice | null;
    /** Calibration factors in force after the round (planner/calibration.ts), per host; {} when none. */
    readonly calibration: Readonly<Record<string, number>>;
  } | null;
}

/** A plan priced on one round's live estimates, with the parts its latency is made of. */
export interface LivePrice {
  /** Under the round's load (`loadedLatencyMs`). */
  readonly latencyMs: number;
  /** One request alone. */
  readonly unloadedMs: number;
  readonly throughputRps: number;
  readonly bottleneckMs: number;
  readonly stages: readonly {
    readonly host: string;
    readonly blocks: readonly [number, number];
    readonly computeMs: number;
  }[];
  readonly hops: readonly { readonly from: string; readonly to: string; readonly bytes: number; readonly ms: number }[];
}

export function livePrice(p: Plan, concurrency: number): LivePrice {
  return {
    latencyMs: loadedLatencyMs(p, concurrency),
    unloadedMs: p.latencyMs,
    throughputRps: p.throughputRps,
    bottleneckMs: p.bottleneckMs,
    stages: p.stages.map((s) => ({ host: s.host, blocks: [s.start, s.end] as const, computeMs: s.computeMs })),
    hops: p.hops.map((h) => ({ from: h.from, to: h.to, bytes: h.bytes, ms: h.ms })),
  };
}

/**
 * Nudged rounds (`AdaptiveLoop.nudge`) start no sooner than this after the last round's start: a burst of
 * moved measurements (both directions of a link, several links on one heartbeat) is one round.
 */
const NUDGE_GAP_MS = 250;

export class AdaptiveLoop {
  readonly controller: Controller;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private rounds = 0;
  private last: AdaptiveState['last'] = null;
  private stopped = true;
  /** The epoch whose contingency plans were warmed (or are being warmed). */
  private contingencyEpoch = -1;
  /** When the last round started (performance.now()). */
  private lastStart = -Infinity;

  constructor(private readonly o: AdaptiveOptions) {
    this.controller = new Controller({ ...CONTROLLER_DEFAULTS, ...o.settings });
  }

  private now(): number {
    return this.o.now ? this.o.now() : Date.now();
  }

  /** Whether the loop runs on its timer (after start-up planning, until stop). */
  get started(): boolean {
    return !this.stopped;
  }

  start(): void {
    this.stopped = false;
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  state(): AdaptiveState {
    return { settings: this.controller.settings, rounds: this.rounds, last: this.last };
  }

  /** Changes settings live (validated: E_BAD_INPUT naming the field); a new interval applies from the next round. */
  update(partial: unknown): ControllerSettings {
    const before = this.controller.settings;
    this.controller.update(partial as Partial<ControllerSettings>);
    const after = this.controller.settings;
    this.o.events?.emit('controller-changed', { before, after });
    this.o.logger.info({ settings: partial }, 'controller settings changed');
    if (after.replanIntervalMs !== before.replanIntervalMs && !this.stopped) this.schedule();
    return after;
  }

  /**
   * A measurement moved (a link estimate by 25 %, a host's CPU quota): run a round now rather than at the
   * timer's next tick, and count the interval to the round after from this one. Ignored while a round runs,
   * within NUDGE_GAP_MS of the last round's start, and while a plan is proposed: the round confirming a
   * proposal comes a whole interval after the one that proposed it, so confirmation still spans
   * `replanIntervalMs` and a nudge only saves the wait for the first round. Returns whether a round started.
   */
  nudge(why: string): boolean {
    if (this.stopped || this.running || this.controller.settings.paused) return false;
    if (this.last?.kind === 'propose') return false;
    if (performance.now() - this.lastStart < NUDGE_GAP_MS) return false;
    this.o.logger.debug({ why }, 'controller round nudged');
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.roundThenSchedule();
    return true;
  }

  /** A round, and the next one `replanIntervalMs` after it ends (unless the loop stopped meanwhile). */
  private roundThenSchedule(): void {
    void this.round().finally(() => {
      if (!this.stopped) this.schedule();
    });
  }

  /** One round now (a round in progress is joined, not doubled). */
  round(): Promise<void> {
    if (!this.running) this.running = this.runRound().finally(() => (this.running = null));
    return this.running;
  }

  private schedule(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.roundThenSchedule(), this.controller.settings.replanIntervalMs);
    this.timer.unref();
  }

  private async runRound(): Promise<void> {
    const t0 = performance.now();
    this.lastStart = t0;
    const at = this.now();
    // An unloaded model has nothing to plan: its hosts hold no segment, and none is prepared until it loads.
    if (this.o.coordinator.loaded === false) {
      this.last = {
        kind: 'keep',
        reason: 'the model is unloaded',
        at,
        ms: 0,
        computeMs: 0,
        concurrency: null,
        currentPredicted: null,
        calibration: {},
      };
      return;
    }
    try {
      this.o.beforeRound?.();
      const [input, profiles] = await Promise.all([this.o.coordinator.planInput([], 1), this.o.profiles()]);
      const t1 = performance.now();
      const snapshot: LiveSnapshot = {
        now: at,
        input,
        slowdown: this.o.live.slowdowns(profiles, at),
        slowdownByWork: this.o.live.slowdownsByWork(profiles, at),
        quotaCpus: this.o.live.quotas(),
        frameMs: this.o.live.frameCosts(input.hosts.map((h) => h.name)),
        throttledShare: this.o.live.throttledShares?.(at),
        down: this.o.live.down(at),
        concurrency: this.o.concurrency?.(at) ?? 1,
        measured: this.o.measured?.(at),
      };
      const active = this.o.coordinator.current;
      const d = this.controller.step(snapshot, active ? currentOf(active) : null);
      const t2 = performance.now();
      const ms = t2 - t0;
      const computeMs = t2 - t1;
      this.rounds++;
      const cur = d.kind === 'propose' || d.kind === 'adopt' || d.kind === 'keep' ? d.current : null;
      const n = snapshot.concurrency ?? 1;
      this.last = {
        kind: d.kind,
        reason: d.reason,
        at,
        ms,
        computeMs,
        concurrency: n,
        currentPredicted: cur ? livePrice(cur, n) : null,
        calibration: this.controller.calibration(snapshot),
      };
      this.o.metrics?.round(ms, computeMs);
      if (d.kind === 'propose') {
        // Warm it while it is being confirmed: if it is adopted, the commit waits for nothing.
        this.o.coordinator
          .warm(d.candidate)
          .catch((e) => this.o.logger.warn({ err: errorMessage(e) }, 'warming a proposed plan failed'));
        this.o.events?.emit('plan-proposed', {
          candidate: planBrief(d.candidate),
          current: d.current && planBrief(d.current),
          gain: d.gain,
          round: d.round,
          rounds: d.rounds,
          reason: d.reason,
        });
      } else if (d.kind === 'adopt') {
        await this.adopt(d, snapshot, active);
      } else if (active && !active.pinned && d.kind === 'keep' && active.epoch !== this.contingencyEpoch) {
        this.contingencyEpoch = active.epoch;
        void this.warmContingencies(snapshot, active).catch((e) =>
          this.o.logger.warn({ err: errorMessage(e) }, 'contingency plans failed'),
        );
      }
    } catch (e) {
      this.last = {
        kind: 'error',
        reason: errorMessage(e),
        at,
        ms: performance.now() - t0,
        computeMs: 0,
        concurrency: null,
        currentPredicted: null,
        calibration: {},
      };
      this.o.logger.warn({ err: errorMessage(e) }, 'controller round failed');
    }
  }

  /**
   * Warms, one after the other, the plans the controller would move to if a host or a pair of hosts' links
   * got several times slower, while `active` stays in force and the loop runs: the commit answering such a
   * change then waits for no session. Each segment a host already holds is not built again.
   */
  private async warmContingencies(s: LiveSnapshot, active: ActivePlan): Promise<void> {
    const n = this.o.contingencies ?? 0;
    if (n <= 0) return;
    const t0 = performance.now();
    const all = contingencyPlans(s, this.controller.settings, active.predicted, n);
    const searchMs = performance.now() - t0;
    const plans = all.filter((c) => !c.deferred);
    for (const c of plans) {
      if (this.stopped || this.o.coordinator.current?.epoch !== active.epoch) return;
      try {
        await this.o.coordinator.warm(c.plan);
      } catch (e) {
        this.o.logger.warn({ err: errorMessage(e), scenario: c.scenario }, 'warming a contingency plan failed');
      }
    }
    const brief = (c: (typeof all)[number]) => ({
      scenario: c.scenario,
      route: routeOf(c.plan),
      stages: c.plan.stages.map((x) => ({ host: x.host, blocks: [x.start, x.end] })),
    });
    const warmed = plans.map(brief);
    const deferred = all
      .filter((c) => c.deferred)
      .map((c) => ({ ...brief(c), host: c.deferred?.host, reason: c.deferred?.reason }));
    const ms = performance.now() - t0;
    this.o.logger.info({ epoch: active.epoch, searchMs, ms, plans: warmed, deferred }, 'contingency plans warmed');
    this.o.events?.emit('contingency-warmed', { epoch: active.epoch, plans: warmed, deferred, searchMs, ms });
  }

  private async adopt(
    d: Extract<Decision, { kind: 'adopt' }>,
    snapshot: LiveSnapshot,
    before: ActivePlan | null,
  ): Promise<void> {
    // The coordinator publishes the change (onAdopt); this loop only starts the dwell and counts it.
    const next = await this.o.coordinator.adopt(d.plan, {
      pinned: false,
      reason: d.reason,
      urgent: d.urgent,
      gain: d.gain,
    });
    this.controller.adopted(this.now(), snapshot, d.plan, d.current);
    if (!before || next.epoch !== before.epoch) this.o.metrics?.changed(d.urgent ? 'urgent' : 'better');
  }
}

/** The coordinator's plan as the controller sees it: stages in blocks. */
function currentOf(a: ActivePlan): CurrentPlan {
  // The codecs the plan runs with, so that it is priced as it runs (a better codec is a better plan).
  return {
    stages: stagesOf(a.predicted),
    origin: a.predicted.origin,
    pinned: a.pinned,
    adoptedAt: Date.parse(a.adoptedAt),
  };
}

function planBrief(p: Plan): object {
  return {
    stages: p.stages.map((s) => ({ host: s.host, blocks: [s.start, s.end] })),
    latencyMs: p.latencyMs,
    throughputRps: p.throughputRps,
  };
}
