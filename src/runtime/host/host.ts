/**
 * host/: one Cleave host process, and the parts it is made of (pipeline, segments, peer mesh, metrics, load).
 * `Host` is the composition root: `Host.start` loads and analyses the model, profiles it (or loads the cached
 * profile), starts the executor, builds and wires the parts, listens, and dials the peers. The origin (the
 * first tier's host) also answers inference requests and plans.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import { CleaveError } from '../../errors.js';
import { resolveInputs } from '../../graph/shapes.js';
import { DEFAULT_TIERS } from '../../planner/criteria.js';
import type { IncomingFrame } from '../../transport/incoming.js';
import { PeerServer } from '../../transport/peer-server.js';
import { parseListen, peerToken, type DeploymentConfig, type HostConfig } from '../config.js';
import { HOST_TRANSPORT_DEFAULTS, resolveLimits, type RuntimeLimits } from '../defaults.js';
import { Executor } from '../executor/executor.js';
import { buildApp } from '../http/app.js';
import { mountEvents, type EventsEndpoint } from '../http/events.js';
import { modelSignature } from '../http/gateway.js';
import { analyze, type Analysis } from '../local/analysis.js';
import { profileModel, PROFILE_DEFAULTS, PROFILE_FORMAT, type ProfileDoc } from '../local/profiler.js';
import { loadRepoModel } from '../model-repo.js';
import { ownCpu } from '../process/cgroup.js';
import { heapFlags } from '../process/node-flags.js';
import { AdaptiveLoop } from '../plan/adaptive.js';
import type { Heartbeat, HostStatus, LinkView } from '../plan/cluster-view.js';
import { Coordinator } from '../plan/coordinator.js';
import { EventBus } from '../plan/events.js';
import { LatencyWindow } from '../plan/latency-window.js';
import { LiveState } from '../plan/live-state.js';
import { describeRoute } from '../plan/route.js';
import { SERVER_VERSION } from '../version.js';
import { Cluster } from './cluster.js';
import { checkHeartbeat, HEARTBEAT, HeartbeatSender } from './heartbeat.js';
import { LoadSampler } from './load.js';
import { HostMetrics } from './metrics.js';
import { PeerClient } from './peer-client.js';
import { PeerMesh } from './peer-mesh.js';
import { Pipeline } from './pipeline.js';
import { SegmentSessions } from './segments.js';

export interface HostStartOptions {
  readonly config: DeploymentConfig;
  /** This host's name in `config.hosts`. */
  readonly name: string;
  /** Model repository folder. */
  readonly modelsDir: string;
  /** Where profiles are cached (keyed by model sha256, host, threads and granularity). */
  readonly cacheDir: string;
  readonly logger?: Logger;
}

/** The parts a started host is made of. */
interface HostParts {
  readonly config: DeploymentConfig;
  readonly self: HostConfig;
  readonly limits: RuntimeLimits;
  readonly analysis: Analysis;
  readonly profile: ProfileDoc;
  readonly executor: Executor;
  readonly segments: SegmentSessions;
  readonly mesh: PeerMesh;
  readonly pipeline: Pipeline;
  readonly metrics: HostMetrics;
  readonly load: LoadSampler;
  readonly cluster: Cluster;
  readonly coordinator: Coordinator | null;
  /** The origin's adaptive parts; null elsewhere. */
  readonly origin: OriginParts | null;
  readonly heartbeat: HeartbeatSender;
  readonly server: http.Server;
  readonly peerServer: PeerServer;
  readonly log: Logger;
}

/** What only the origin runs: the live state from heartbeats, the adaptive loop, events, measured latency. */
interface OriginParts {
  readonly live: LiveState;
  readonly loop: AdaptiveLoop;
  readonly events: EventBus;
  readonly latency: LatencyWindow;
  readonly eventsEndpoint: EventsEndpoint;
  readonly snapshotTimer: NodeJS.Timeout;
}

export class Host {
  /** Segment `[start, end)` this host was last asked to prepare: readiness means it is warm. */
  private current: { start: number; end: number } | null = null;
  private closed = false;

  private constructor(private readonly p: HostParts) {}

  static async start(o: HostStartOptions): Promise<Host> {
    const self = o.config.hosts.find((h) => h.name === o.name);
    if (!self)
      throw new CleaveError(
        'E_BAD_INPUT',
        `--name ${o.name}: not a host of the config (hosts: ${o.config.hosts.map((h) => h.name).join(', ')})`,
      );
    const log = (o.logger ?? pino({ level: process.env.LOG_LEVEL ?? 'info' })).child({
      host: self.name,
      tier: self.tier,
    });
    const limits = resolveLimits(o.config.limits);
    const tiers = o.config.tiers ?? DEFAULT_TIERS;
    const { entry, model } = loadRepoModel(o.modelsDir, o.config.model);
    const shapes = new Map(Object.entries(o.config.shapes ?? {}));
    const analysis = await analyze(model, resolveInputs(model, shapes), o.config.granularity ?? {});
    log.info({ model: entry.name, sha256: model.sha256.slice(0, 16), blocks: analysis.blocks.length }, 'model loaded');
    const threads = self.threads ?? 1;
    const profile = await cachedProfile(o.cacheDir, analysis, self, threads, o.config, log);
    const executor = await Executor.create({
      intraOpThreads: threads,
      maxCachedSessions: limits.sessionCache,
      maxCachedBytes: limits.sessionCacheBytes,
      logger: log,
    });
    const segments = new SegmentSessions(analysis, executor, limits.warmupRuns);
    const metrics = new HostMetrics(self.name, self.tier);
    const { token, fromDefault } = peerToken(o.config);
    if (fromDefault) log.warn('no peer token in CLEAVE_TOKEN or the config: using the development token');

    const transport = { ...HOST_TRANSPORT_DEFAULTS, ...o.config.transport };
    const isOrigin = self.tier === tiers[0];
    const originName = o.config.hosts.find((h) => h.tier === tiers[0])?.name ?? self.name;

    // Frames reach the pipeline (and heartbeats the live state) through the mesh (replies) and the peer
    // server (requests); both open only after the parts exist, so the late bindings are set before a frame.
    let pipeline: Pipeline | null = null;
    let live: LiveState | null = null;
    const onFrame = (f: IncomingFrame): void => {
      if (f.header.kind !== 'message') return pipeline?.onFrame(f);
      const body = f.header.body as { type?: unknown } | undefined;
      if (body?.type !== HEARTBEAT || !live) return;
      try {
        live.onHeartbeat(checkHeartbeat(body, f.peer.host), Date.now());
      } catch (e) {
        log.warn({ peer: f.peer.host, err: (e as Error).message }, 'heartbeat refused');
      }
    };
    const mesh = new PeerMesh({
      self,
      peers: o.config.hosts.filter((h) => h.name !== self.name),
      token,
      modelSha256: model.sha256,
      links: o.config.links ?? [],
      onFrame,
      onLost: (peer, ids) => pipeline?.failLost(peer, ids),
      logger: log,
      transport,
    });
    pipeline = new Pipeline({
      self: self.name,
      segments,
      links: mesh,
      metrics,
      logger: log,
      outputs: model.outputs.map((x) => x.name),
      maxInFlight: limits.maxInFlight,
    });
    metrics.observeLinks(() => mesh.reports());
    const client = new PeerClient({ hosts: o.config.hosts, token, timeoutMs: limits.peerRequestTimeoutMs });
    const load = new LoadSampler(limits.loadSampleMs);
    const server = http.createServer();
    const peerServer = await PeerServer.listen({
      self: { host: self.name, tier: self.tier },
      modelSha256: model.sha256,
      token,
      onFrame,
      server,
      logger: log,
      options: transport,
    });

    let host: Host | null = null;
    const status = (): HostStatus => (host as Host).status();
    const cluster = new Cluster({
      self: self.name,
      hosts: o.config.hosts,
      isOpen: (h) => mesh.isOpen(h),
      client,
      profile,
      status,
      links: () => mesh.reports(),
      logger: log,
    });
    const prepareOn = (name: string, from: number, to: number): Promise<void> =>
      name === self.name
        ? (host as Host).prepareLocal(from, to)
        : client.request(name, 'POST', '/v1/segments', { from, to }).then(() => undefined);
    const p = pipeline;
    const takeHeartbeat = (): Heartbeat => {
      const cpu = ownCpu();
      return {
        host: self.name,
        tier: self.tier,
        cpuPercent: load.cpuPercent,
        quotaCpus: cpu.cpus,
        throttledMs: cpu.throttledMs,
        threads,
        queueDepth: executor.queued,
        inFlight: p.inFlight,
        busy: p.busy,
        segments: p.computeTimes(),
        links: mesh.reports(),
      };
    };
    let coordinator: Coordinator | null = null;
    let origin: OriginParts | null = null;
    let heartbeat: HeartbeatSender;
    if (isOrigin) {
      const events = new EventBus();
      const latency = new LatencyWindow(limits.latencyWindowMs);
      const liveState = new LiveState({
        self: self.name,
        hosts: o.config.hosts.map((h) => h.name),
        blocks: analysis.blocks,
        heartbeatTimeoutMs: limits.heartbeatTimeoutMs,
        observedFreshMs: limits.observedFreshMs,
        isOpen: (h) => mesh.isOpen(h),
        events,
      });
      live = liveState;
      // Planning reads live link estimates (from heartbeats) where a host has reported, and the hosts' own
      // smoothed figures otherwise (before the first heartbeat of a peer).
      const links = async (): Promise<LinkView[]> => {
        const now = Date.now();
        const fresh = liveState.linkViews(now);
        const from = new Set(fresh.map((l) => l.from));
        if (o.config.hosts.every((h) => from.has(h.name) || !mesh.isOpen(h.name) || h.name === self.name)) return fresh;
        return [...fresh, ...(await cluster.links()).filter((l) => !from.has(l.from))];
      };
      const c = new Coordinator({
        self: { name: self.name, tier: self.tier },
        tiers,
        hosts: o.config.hosts.map((h) => ({ name: h.name, tier: h.tier })),
        blocks: analysis.blocks,
        cluster: { profiles: () => cluster.profiles(), links },
        prepare: prepareOn,
        objective: o.config.controller?.objective,
        constraints: o.config.controller?.constraints,
        historyLength: limits.planHistory,
        onAdopt: (a, before) => {
          metrics.planEpoch.set({ host: self.name }, a.epoch);
          metrics.predictedLatency.set(a.predicted.latencyMs);
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
      coordinator = c;
      const loop = new AdaptiveLoop({
        coordinator: c,
        live: liveState,
        profiles: () => cluster.profiles(),
        concurrency: (now) => latency.concurrency(now, limits.concurrencySpanMs),
        settings: o.config.controller,
        events,
        metrics: {
          round: (ms) => metrics.controllerRound.observe(ms * 1000),
          changed: (reason) => metrics.planChanges.inc({ reason }),
        },
        logger: log,
      });
      const snapshotTimer = setInterval(() => {
        void cluster.profiles().then((profiles) => {
          const now = Date.now();
          const a = c.current;
          const all = latency.stats(now);
          const mine = a ? latency.stats(now, a.epoch) : null;
          metrics.measuredLatency.set({ quantile: '0.5' }, mine?.p50Ms ?? 0);
          metrics.measuredLatency.set({ quantile: '0.99' }, mine?.p99Ms ?? 0);
          const hosts = liveState.hosts(profiles, now);
          if (events.size === 0) return;
          events.emit('snapshot', {
            epoch: a?.epoch ?? null,
            route: a ? describeRoute(a.route) : null,
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
      const eventsEndpoint = mountEvents(server, events, {
        maxBufferedBytes: limits.eventBufferBytes,
        peerPath: peerServer.options.path,
        hello: () => ({
          host: self.name,
          epoch: c.current?.epoch ?? null,
          route: c.current ? describeRoute(c.current.route) : null,
          controller: loop.controller.settings,
        }),
        logger: log,
      });
      origin = { live: liveState, loop, events, latency, eventsEndpoint, snapshotTimer };
      heartbeat = new HeartbeatSender({
        intervalMs: limits.heartbeatMs,
        take: takeHeartbeat,
        deliver: (b) => liveState.onHeartbeat(b, Date.now()),
        logger: log,
      });
    } else {
      heartbeat = new HeartbeatSender({
        intervalMs: limits.heartbeatMs,
        take: takeHeartbeat,
        deliver: (b) => {
          if (mesh.isOpen(originName)) mesh.send(originName, { kind: 'message', body: { type: HEARTBEAT, ...b } }, []);
        },
        logger: log,
      });
    }
    host = new Host({
      config: o.config,
      self,
      limits,
      analysis,
      profile,
      executor,
      segments,
      mesh,
      pipeline,
      metrics,
      load,
      cluster,
      coordinator,
      origin,
      heartbeat,
      server,
      peerServer,
      log,
    });
    const h = host;
    const version = { name: entry.name, version: entry.version };
    const coord = coordinator;
    server.on(
      'request',
      buildApp({
        ready: () => h.ready,
        metrics: async () => ({ contentType: metrics.registry.contentType, body: await metrics.registry.metrics() }),
        control: {
          self: self.name,
          token,
          limits,
          status,
          profile: () => profile,
          links: () => mesh.reports(),
          prepareSegment: (from, to) => h.prepareLocal(from, to),
          hasLink: (to) => mesh.has(to),
          setLinkEmulation: (to, settings) => {
            const now = mesh.setEmulation(to, settings);
            log.info({ link: `${self.name}->${to}`, settings }, 'link emulation changed');
            return now;
          },
          forward: (name, method, path, body) => client.request(name, method, path, body),
          plan:
            coord && origin
              ? {
                  tiers,
                  coordinator: coord,
                  cluster,
                  adaptive: origin.loop,
                  measured: (epoch) => (origin as OriginParts).latency.stats(Date.now(), epoch),
                }
              : undefined,
        },
        gateway:
          coord && origin
            ? {
                model: { ...version, signature: modelSignature(version, model.inputs, model.outputs, analysis.types) },
                serverVersion: SERVER_VERSION,
                limits,
                ready: () => h.ready,
                plan: () => coord.current,
                infer: (plan, inputs, deadlineMs) => p.infer(plan, inputs, deadlineMs),
                metrics,
                answered: (epoch, ms, ok) => (origin as OriginParts).latency.record(Date.now(), epoch, ms, ok),
                log,
              }
            : undefined,
        log,
      }),
    );
    const { host: addr, port } = parseListen(self.listen, `${self.name}.listen`);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, addr, () => {
        server.off('error', reject);
        resolve();
      });
    });
    load.start();
    heartbeat.start();
    log.info({ listen: `${addr}:${(server.address() as AddressInfo).port}` }, 'listening');
    return host;
  }

  get self(): HostConfig {
    return this.p.self;
  }

  get limits(): RuntimeLimits {
    return this.p.limits;
  }

  get analysis(): Analysis {
    return this.p.analysis;
  }

  /** The origin's coordinator; null on the other hosts. */
  get coordinator(): Coordinator | null {
    return this.p.coordinator;
  }

  get port(): number {
    return (this.p.server.address() as AddressInfo).port;
  }

  /** Live: the process serves. Ready: the origin has a committed plan; others have their segment warm. */
  get ready(): boolean {
    if (this.closed) return false;
    if (this.p.coordinator) return this.p.coordinator.current !== null;
    return this.current === null || this.p.segments.isWarm(this.current);
  }

  status(): HostStatus {
    const times = this.p.pipeline.computeTimes();
    return {
      host: this.p.self.name,
      tier: this.p.self.tier,
      ready: this.ready,
      cpuPercent: this.p.load.cpuPercent,
      inFlight: this.p.pipeline.inFlight,
      busy: this.p.pipeline.busy,
      threads: this.p.self.threads ?? 1,
      heapFlags: heapFlags(),
      segments: this.p.segments.held().map(({ range, warm }) => {
        const t = times.find((x) => x.from === range.start && x.to === range.end);
        return { from: range.start, to: range.end, warm, meanMs: t?.meanMs ?? null, runs: t?.runs ?? 0 };
      }),
    };
  }

  /**
   * The origin's start-up planning: wait for every link to open and be measured (RTT and throughput from
   * real traffic and probes), then plan and commit the first epoch.
   */
  async planAtStartup(): Promise<void> {
    const c = this.p.coordinator;
    if (!c) return;
    const { startupTimeoutMs, startupSamples } = this.p.limits;
    const until = Date.now() + startupTimeoutMs;
    await this.p.mesh.whenAllOpen(startupTimeoutMs).catch(() => undefined);
    const wanted = this.p.config.hosts.length * (this.p.config.hosts.length - 1);
    for (;;) {
      const links = await this.p.cluster.links().catch(() => []);
      const measured = links.filter(
        (l) => l.rttMs !== null && l.throughputBps !== null && (l.throughputSamples ?? 0) >= startupSamples,
      ).length;
      if (measured >= wanted || Date.now() > until) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    await c.replan('start-up');
    this.p.origin?.loop.start();
  }

  /** Prepare (build and warm) a segment here; once it is warm, it is the one readiness depends on. */
  async prepareLocal(start: number, end: number): Promise<void> {
    await this.p.segments.prepare({ start, end });
    this.current = { start, end };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const p = this.p;
    p.load.stop();
    p.heartbeat.stop();
    if (p.origin) {
      p.origin.loop.stop();
      clearInterval(p.origin.snapshotTimer);
      p.origin.eventsEndpoint.close();
    }
    p.pipeline.failAll(`${p.self.name} is shutting down`);
    await p.mesh.close();
    await p.peerServer.close();
    await new Promise<void>((resolve) => {
      p.server.close(() => resolve());
      p.server.closeAllConnections();
    });
    await p.executor.close();
  }
}

/** The host's profile: from the cache when this model, host, thread count and granularity were profiled. */
async function cachedProfile(
  dir: string,
  a: Analysis,
  self: HostConfig,
  threads: number,
  cfg: DeploymentConfig,
  log: Logger,
): Promise<ProfileDoc> {
  const g = cfg.granularity ?? {};
  const repeats = cfg.profile?.repeats ?? PROFILE_DEFAULTS.repeats;
  const warmup = cfg.profile?.warmup ?? PROFILE_DEFAULTS.warmup;
  const key = `${a.model.sha256.slice(0, 16)}-${self.name}-t${threads}-k${g.maxTensors ?? 'all'}-b${g.maxBytes ?? 'all'}-r${repeats}.json`;
  const file = join(dir, 'profiles', key);
  if (existsSync(file)) {
    try {
      const p = JSON.parse(readFileSync(file, 'utf8')) as ProfileDoc;
      if (
        p.format === PROFILE_FORMAT &&
        p.model.sha256 === a.model.sha256 &&
        p.model.blocks.length === a.blocks.length
      ) {
        log.info({ file }, 'profile loaded from cache');
        return p;
      }
    } catch {
      // Unreadable cache entry: profile again.
    }
  }
  const t0 = Date.now();
  const p = await profileModel(a, { host: self.name, tier: self.tier, threads, repeats, warmup });
  mkdirSync(join(dir, 'profiles'), { recursive: true });
  writeFileSync(`${file}.tmp`, JSON.stringify(p));
  renameSync(`${file}.tmp`, file);
  log.info({ ms: Date.now() - t0, wholeModelMs: p.timings.wholeModelMs.medianMs }, 'profiled');
  return p;
}
