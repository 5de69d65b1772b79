/**
 * What only the origin (the first tier's host) runs, built in one place: the live state the heartbeats
 * feed, the coordinator that prepares and commits plans, the adaptive loop that drives the controller, the
 * event stream with its periodic snapshot, and the window of answered requests behind "measured".
 */
import type { Logger } from 'pino';
import type { DeploymentConfig, HostConfig } from '../config.js';
import type { RuntimeLimits } from '../defaults.js';
import type { Analysis } from '../local/analysis.js';
import { AdaptiveLoop } from '../plan/adaptive.js';
import type { Heartbeat, LinkView } from '../plan/cluster-view.js';
import { Coordinator } from '../plan/coordinator.js';
import type { EventBus } from '../plan/events.js';
import { LatencyWindow } from '../plan/latency-window.js';
import { ModelLifecycle } from '../plan/lifecycle.js';
import { LiveState } from '../plan/live-state.js';
import { describeRoute } from '../plan/route.js';
import type { Cluster } from './cluster.js';
import type { HostMetrics } from './metrics.js';
import type { PeerMesh } from './peer-mesh.js';
import type { RouteStage } from '../../transport/frame.js';

export interface OriginParts {
  readonly coordinator: Coordinator;
  readonly live: LiveState;
  readonly loop: AdaptiveLoop;
  readonly events: EventBus;
  readonly latency: LatencyWindow;
  /** Unloading and loading the model (the repository extension). */
  readonly lifecycle: ModelLifecycle;
  /** Whether every host on `route` is up now (a plan through a lost host cannot answer). */
  runnable(route: readonly { readonly host: string }[]): boolean;
  close(): void;
}

export interface OriginOptions {
  /** The model these parts plan (a deployment serving several has one set of origin parts for each). */
  readonly model: string;
  readonly config: DeploymentConfig;
  readonly self: HostConfig;
  readonly tiers: readonly string[];
  readonly limits: RuntimeLimits;
  readonly analysis: Analysis;
  readonly mesh: PeerMesh;
  readonly cluster: Cluster;
  readonly metrics: HostMetrics;
  /** The deployment's event stream, tagged with this model. */
  readonly events: EventBus;
  /** Whether this host's own loop was stalled lately (its peers' silence is then not held against them). */
  stalled?(): boolean;
  prepare(host: string, from: number, to: number, route: RouteStage[]): Promise<void>;
  /** Has `host` release every segment session it holds (the model is unloaded). */
  release(host: string): Promise<void>;
  /** Requests this origin has in flight. */
  inFlight(): number;
  /** The origin's own heartbeat: taken before every controller round too, so its own links are fresh. */
  takeHeartbeat(): Heartbeat;
  readonly logger: Logger;
}

export function startOrigin(o: OriginOptions): OriginParts {
  const { config, self, tiers, limits, analysis, mesh, cluster, metrics, events, model } = o;
  const log = o.logger;
  const prepareOn = o.prepare;
  const latency = new LatencyWindow(limits.latencyWindowMs);
  const liveState = new LiveState({
    self: self.name,
    hosts: config.hosts.map((h) => h.name),
    blocks: analysis.blocks,
    heartbeatTimeoutMs: limits.heartbeatTimeoutMs,
    observedFreshMs: limits.observedFreshMs,
    isOpen: (h) => mesh.isOpen(h),
    stalled: o.stalled,
    model,
    events,
    // A moved link or quota starts a round at once (the loop leaves it be while a plan is being confirmed).
    onMoved: (why) => setImmediate(() => loopRef?.nudge(why)),
  });
  // Planning reads live link estimates (from heartbeats) where a host has reported, and the hosts' own
  // smoothed figures otherwise (before the first heartbeat of a peer).
  const links = async (): Promise<LinkView[]> => {
    const now = Date.now();
    const fresh = liveState.linkViews(now);
    const from = new Set(fresh.map((l) => l.from));
    if (config.hosts.every((h) => from.has(h.name) || !mesh.isOpen(h.name) || h.name === self.name)) return fresh;
    return [...fresh, ...(await cluster.links()).filter((l) => !from.has(l.from))];
  };
  let loopRef: AdaptiveLoop | undefined;
  const c = new Coordinator({
    self: { name: self.name, tier: self.tier },
    tiers,
    hosts: config.hosts.map((h) => ({ name: h.name, tier: h.tier })),
    blocks: analysis.blocks,
    cluster: { profiles: () => cluster.profiles(), links },
    prepare: prepareOn,
    objective: config.controller?.objective,
    constraints: config.controller?.constraints,
    // The controller's settings once it runs (changed live by PUT /v1/controller), the config's before.
    settings: () => loopRef?.state().settings ?? config.controller ?? {},
    historyLength: limits.planHistory,
    onAdopt: (a, before) => {
      metrics.planEpoch.set({ host: self.name, model }, a.epoch);
      metrics.predictedLatency.set({ model }, a.predicted.latencyMs);
      events.emit('plan-adopted', {
        epoch: a.epoch,
        old: before
          ? {
              epoch: before.epoch,
              route: describeRoute(before.route),
              predictedLatencyMs: before.predicted.latencyMs,
            }
          : null,
        new: {
          epoch: a.epoch,
          route: describeRoute(a.route),
          stages: a.predicted.stages.map((x) => ({ host: x.host, blocks: [x.start, x.end] })),
          predictedLatencyMs: a.predicted.latencyMs,
          predictedThroughputRps: a.predicted.throughputRps,
        },
        reason: a.reason,
        pinned: a.pinned,
        urgent: a.urgent ?? false,
        gain: a.gain ?? null,
      });
    },
    logger: log,
  });
  const loop = (loopRef = new AdaptiveLoop({
    coordinator: c,
    live: liveState,
    profiles: () => cluster.profiles(),
    beforeRound: () => liveState.onHeartbeat(o.takeHeartbeat(), Date.now()),
    concurrency: (now) => latency.concurrency(now, limits.concurrencySpanMs),
    measured: (now) => {
      const a = c.current;
      return a ? latency.recent(now, a.epoch, limits.concurrencySpanMs) : undefined;
    },
    settings: config.controller,
    contingencies: limits.contingencyWarmups,
    events,
    metrics: {
      round: (ms, computeMs) => {
        metrics.controllerRound.observe({ model }, ms * 1000);
        metrics.controllerCompute.observe({ model }, computeMs * 1000);
      },
      changed: (reason) => metrics.planChanges.inc({ model, reason }),
    },
    logger: log,
  }));
  const lifecycle = new ModelLifecycle({
    coordinator: c,
    hosts: config.hosts.map((h) => h.name),
    release: o.release,
    inFlight: o.inFlight,
    drainMs: limits.deadlineMs,
    events,
    logger: log,
  });
  const snapshotTimer = setInterval(() => {
    void cluster.profiles().then((profiles) => {
      const now = Date.now();
      const a = c.current;
      const all = latency.stats(now);
      const mine = a ? latency.stats(now, a.epoch) : null;
      metrics.measuredLatency.set({ model, quantile: '0.5' }, mine?.p50Ms ?? 0);
      metrics.measuredLatency.set({ model, quantile: '0.99' }, mine?.p99Ms ?? 0);
      const hosts = liveState.hosts(profiles, now);
      if (events.size === 0) return;
      events.emit('snapshot', {
        epoch: a?.epoch ?? null,
        route: a ? describeRoute(a.route) : null,
        // Pinning the route already in force changes no epoch: a client learns of it here.
        pinned: a?.pinned ?? null,
        predictedLatencyMs: a?.predicted.latencyMs ?? null,
        measured: mine,
        latency: all,
        links: liveState.linkViews(now),
        hosts,
        controller: loop.state().last,
      });
    });
  }, limits.snapshotMs);
  snapshotTimer.unref();
  return {
    coordinator: c,
    live: liveState,
    loop,
    events,
    latency,
    lifecycle,
    runnable(route) {
      const down = new Set(liveState.down(Date.now()));
      return route.every((s) => !down.has(s.host));
    },
    close() {
      loop.stop();
      clearInterval(snapshotTimer);
    },
  };
}
