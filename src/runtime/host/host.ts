/**
 * host/: one Cleave host process, and the parts it is made of (pipeline, segments, peer mesh, metrics, load).
 * `Host` is the composition root: `Host.start` loads and analyses the model, profiles it (or loads the cached
 * profile), starts the executor, builds and wires the parts, listens, and dials the peers. The origin (the
 * first tier's host) also answers inference requests and plans.
 */
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import pino, { type Logger } from 'pino';
import { CleaveError } from '../../errors.js';
import { resolveInputs } from '../../graph/shapes.js';
import { DEFAULT_TIERS } from '../../planner/criteria.js';
import type { IncomingFrame } from '../../transport/incoming.js';
import { PeerServer } from '../../transport/peer-server.js';
import { controlToken, parseListen, type DeploymentConfig, type HostConfig } from '../config.js';
import { peerCredentials } from './credentials.js';
import { checkHeader, type AccessPolicy } from '../http/access.js';
import { HOST_TRANSPORT_DEFAULTS, resolveLimits, type RuntimeLimits } from '../defaults.js';
import { Executor } from '../executor/executor.js';
import { buildApp } from '../http/app.js';
import { modelSignature, type GatewayDeps } from '../http/gateway.js';
import { InferenceStats } from '../http/triton.js';
import { GrpcFront } from '../grpc/server.js';
import { analyze, modelFrameBytes, type Analysis } from '../local/analysis.js';
import { cachedProfile } from '../local/profile-cache.js';
import type { ProfileDoc } from '../local/profiler.js';
import { listModels, loadRepoModel } from '../model-repo.js';
import { ownCpu } from '../process/cgroup.js';
import { heapFlags } from '../process/node-flags.js';
import type { Heartbeat, HostStatus } from '../plan/cluster-view.js';
import type { Coordinator } from '../plan/coordinator.js';
import type { LiveState } from '../plan/live-state.js';
import { SERVER_VERSION } from '../version.js';
import { loadTls } from '../tls.js';
import { Cluster } from './cluster.js';
import { startOrigin, type OriginParts } from './origin.js';
import { checkHeartbeat, HEARTBEAT, HeartbeatSender } from './heartbeat.js';
import { LoadSampler } from './load.js';
import { HostMetrics } from './metrics.js';
import { PeerClient } from './peer-client.js';
import { PeerMesh } from './peer-mesh.js';
import { retrying } from './retry.js';
import { PLANNED_ROUTES, PlannedRoutes, plannedRoutesOf, routeProblem, type RouteRules } from './route-check.js';
import type { RouteStage } from '../../transport/frame.js';
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
  /** The route shape rules, and the routes the origin prepared here (what infer frames are checked against). */
  readonly shapeRules: RouteRules;
  readonly planned: PlannedRoutes;
  readonly mesh: PeerMesh;
  readonly pipeline: Pipeline;
  readonly metrics: HostMetrics;
  readonly load: LoadSampler;
  readonly cluster: Cluster;
  /** The origin's adaptive parts; null elsewhere. */
  readonly origin: OriginParts | null;
  readonly heartbeat: HeartbeatSender;
  readonly server: http.Server;
  readonly peerServer: PeerServer;
  readonly log: Logger;
}

export class Host {
  /** Segment `[start, end)` this host was last asked to prepare: readiness means it is warm. */
  private current: { start: number; end: number } | null = null;
  private closed = false;
  /** The OIP gRPC front (the origin, when its config has `grpc`). */
  private grpc: GrpcFront | null = null;

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
    // Read first: a certificate that cannot be read stops the host before it loads anything.
    const tls = loadTls(o.config.tls, self.tls);
    const tiers = o.config.tiers ?? DEFAULT_TIERS;
    const { entry, model } = loadRepoModel(o.modelsDir, o.config.model);
    const shapes = new Map(Object.entries(o.config.shapes ?? {}));
    const values = new Map(Object.entries(o.config.values ?? {}));
    const analysis = await analyze(model, resolveInputs(model, shapes, values), o.config.granularity ?? {});
    log.info({ model: entry.name, sha256: model.sha256.slice(0, 16), blocks: analysis.blocks.length }, 'model loaded');
    const threads = self.threads ?? 1;
    const profile = await cachedProfile(o.cacheDir, analysis, self, threads, o.config, log, ownCpu().cpus);
    const executor = await Executor.create({
      intraOpThreads: threads,
      maxCachedSessions: limits.sessionCache,
      maxCachedBytes: limits.sessionCacheBytes,
      logger: log,
    });
    const segments = new SegmentSessions(analysis, executor, limits.warmupRuns);
    const metrics = new HostMetrics(self.name, self.tier);
    const creds = peerCredentials(o.config, self.name);
    if (creds.fromDefault) log.warn('no peer token in CLEAVE_TOKEN or the config: using the development token');
    const token = creds.token;
    const originName = o.config.hosts.find((h) => h.tier === tiers[0])?.name ?? self.name;
    const access: AccessPolicy = {
      controlToken: controlToken(o.config),
      identifyPeer: creds.identify,
      origin: originName,
      readAccess: o.config.readAccess ?? 'loopback',
    };
    if (access.controlToken === null)
      log.warn('no control token in CLEAVE_CONTROL_TOKEN or the config: the control API refuses every change');

    const frameBytes = modelFrameBytes(analysis);
    const transport = {
      ...HOST_TRANSPORT_DEFAULTS,
      ...(frameBytes !== undefined ? { maxFrameBytes: frameBytes } : {}),
      ...o.config.transport,
    };
    const isOrigin = self.tier === tiers[0];
    const shapeRules: RouteRules = { tierOf: new Map(o.config.hosts.map((h) => [h.name, h.tier])), tiers };
    const planned = new PlannedRoutes();
    const routeRules: RouteRules = { ...shapeRules, planned: (r) => planned.has(r) };

    // Frames reach the pipeline (and heartbeats the live state) through the mesh (replies) and the peer
    // server (requests); both open only after the parts exist, so the late bindings are set before a frame.
    let pipeline: Pipeline | null = null;
    let live: LiveState | null = null;
    // Set once the origin's parts exist: a lost or returning host is news to its controller at once.
    let onHostLost: ((host: string) => void) | null = null;
    let onHostRejoin: ((host: string) => void) | null = null;
    let originCoordinator: Coordinator | null = null;
    const onFrame = (f: IncomingFrame): void => {
      if (f.header.kind !== 'message') return pipeline?.onFrame(f);
      const body = f.header.body as { type?: unknown } | undefined;
      if (body?.type === PLANNED_ROUTES) {
        // Only the origin plans: what another host says it planned is not taken.
        if (f.peer.host !== originName) return log.warn({ peer: f.peer.host }, 'planned routes not from the origin');
        try {
          for (const r of plannedRoutesOf(body, self.name, shapeRules)) planned.add(r);
        } catch (e) {
          log.warn({ peer: f.peer.host, err: (e as Error).message }, 'planned routes refused');
        }
        return;
      }
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
      tls,
      onFrame,
      onLost: (peer, ids) => {
        pipeline?.failLost(peer, ids);
        onHostLost?.(peer);
      },
      onRejoin: (peer) => onHostRejoin?.(peer),
      // The origin tells a host that (re)joins which adopted routes pass through it, ahead of any of their
      // frames on this link: a host that restarted accepts the plan in force without being prepared again.
      onOpen: (peer) => {
        const through = (originCoordinator?.plans ?? [])
          .map((a) => a.route)
          .filter((r) => r.some((s) => s.host === peer));
        if (!through.length) return;
        try {
          mesh.send(peer, { kind: 'message', body: { type: PLANNED_ROUTES, routes: through } }, []);
        } catch (e) {
          log.warn({ peer, err: (e as Error).message }, 'could not hand the planned routes to a host that joined');
        }
      },
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
      checkRoute: (route, stage, sender) => routeProblem(route, stage, sender, routeRules),
    });
    metrics.observeLinks(() => mesh.reports());
    const client = new PeerClient({ hosts: o.config.hosts, token, timeoutMs: limits.peerRequestTimeoutMs, tls });
    const load = new LoadSampler(limits.loadSampleMs);
    const server: http.Server = tls ? https.createServer({ cert: tls.cert, key: tls.key }) : http.createServer();
    const peerServer = await PeerServer.listen({
      self: { host: self.name, tier: self.tier },
      modelSha256: model.sha256,
      identify: creds.identify,
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
    const prepareOn = (name: string, from: number, to: number, route: RouteStage[]): Promise<void> =>
      name === self.name
        ? (host as Host).prepareLocal(from, to, route)
        : client.request(name, 'POST', '/v1/segments', { from, to, route }).then(() => undefined);
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
    const origin = isOrigin
      ? startOrigin({
          config: o.config,
          self,
          tiers,
          limits,
          analysis,
          mesh,
          cluster,
          metrics,
          server,
          peerPath: peerServer.options.path,
          access,
          prepare: prepareOn,
          release: async (name) => {
            if (name === self.name) (host as Host).releaseLocal();
            else await client.request(name, 'DELETE', '/v1/segments');
          },
          inFlight: () => pipeline.inFlight,
          takeHeartbeat,
          logger: log,
        })
      : null;
    live = origin?.live ?? null;
    originCoordinator = origin?.coordinator ?? null;
    if (origin) {
      // A host lost: the controller's next round, now, sees it down and moves the plan around it (urgent,
      // past hysteresis and dwell). A host back: its profile is fetched again (it may have restarted
      // elsewhere or under another quota) and the usual rounds may move work back to it.
      // Before the loop starts (start-up: peers still dialing, links not measured) planAtStartup plans.
      onHostLost = (peer) => {
        if (!origin.loop.started) return;
        log.warn({ peer }, 'host lost: re-planning now');
        void origin.loop.round();
      };
      onHostRejoin = (peer) => {
        cluster.forget(peer);
        if (!origin.loop.started) return;
        log.info({ peer }, 'host back: its profile is read again');
        void origin.loop.round();
      };
    }
    const heartbeat = new HeartbeatSender({
      intervalMs: limits.heartbeatMs,
      take: takeHeartbeat,
      // The origin takes its own; the others send theirs over their link to it.
      deliver: origin
        ? (b) => origin.live.onHeartbeat(b, Date.now())
        : (b) => {
            if (mesh.isOpen(originName))
              mesh.send(originName, { kind: 'message', body: { type: HEARTBEAT, ...b } }, []);
          },
      logger: log,
    });
    host = new Host({
      config: o.config,
      self,
      limits,
      analysis,
      profile,
      executor,
      segments,
      shapeRules,
      planned,
      mesh,
      pipeline,
      metrics,
      load,
      cluster,
      origin,
      heartbeat,
      server,
      peerServer,
      log,
    });
    const h = host;
    const version = { name: entry.name, version: entry.version };
    // Triton's statistics, one set for the HTTP and the gRPC front ends.
    const stats = new InferenceStats();
    const gateway: GatewayDeps | undefined = origin
      ? {
          model: { ...version, signature: modelSignature(version, model.inputs, model.outputs, analysis.types) },
          serverVersion: SERVER_VERSION,
          limits,
          ready: () => h.ready,
          plan: () => origin.coordinator.current,
          infer: retrying({
            infer: (plan, inputs, ms) => p.infer(plan, inputs, ms),
            current: () => origin.coordinator.current,
            runnable: (plan) => origin.runnable(plan.route),
            retryWaitMs: limits.retryWaitMs,
            log,
          }),
          metrics,
          answered: (epoch, ms, ok) => origin.latency.record(Date.now(), epoch, ms, ok),
          log,
          stats,
          repository: {
            models: () => listModels(o.modelsDir).map((m) => ({ name: m.name, version: m.version })),
            unavailable: () => origin.lifecycle.unavailable(),
            load: () => origin.lifecycle.load(),
            unload: () => origin.lifecycle.unload(),
            authorize: (header, what) => checkHeader(header, access, what),
          },
        }
      : undefined;
    server.on(
      'request',
      buildApp({
        ready: () => h.ready,
        metrics: async () => ({ contentType: metrics.registry.contentType, body: await metrics.registry.metrics() }),
        control: {
          self: self.name,
          access,
          limits,
          status,
          profile: () => profile,
          links: () => mesh.reports(),
          prepareSegment: (from, to, route) => h.prepareLocal(from, to, route),
          releaseSegments: () => h.releaseLocal(),
          hasLink: (to) => mesh.has(to),
          setLinkEmulation: (to, settings) => {
            const now = mesh.setEmulation(to, settings);
            log.info({ link: `${self.name}->${to}`, settings }, 'link emulation changed');
            return now;
          },
          forward: (name, method, path, body) => client.request(name, method, path, body),
          plan: origin
            ? {
                tiers,
                coordinator: origin.coordinator,
                cluster,
                adaptive: origin.loop,
                measured: (epoch) => origin.latency.stats(Date.now(), epoch),
              }
            : undefined,
        },
        gateway,
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
    if (gateway && self.grpc) {
      try {
        h.grpc = await GrpcFront.start(gateway, { listen: self.grpc, tls, stats });
      } catch (e) {
        await h.close();
        throw e;
      }
      log.info({ grpc: self.grpc, port: h.grpc.port }, 'gRPC listening');
    }
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
    return this.p.origin?.coordinator ?? null;
  }

  get port(): number {
    return (this.p.server.address() as AddressInfo).port;
  }

  /** The port gRPC is served on; null without it. */
  get grpcPort(): number | null {
    return this.grpc?.port ?? null;
  }

  /**
   * Live: the process serves. Ready: the origin has a committed plan whose every host is up (the deployment
   * can answer: between losing a host and re-planning around it, it cannot) and its model is loaded; others
   * have their segment warm.
   */
  get ready(): boolean {
    if (this.closed) return false;
    const c = this.coordinator;
    if (c) {
      const cur = c.current;
      return cur !== null && c.loaded && (this.p.origin?.runnable(cur.route) ?? true);
    }
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
    const c = this.coordinator;
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
    // The first plan is the controller's, on the live estimates (hosts' quotas and link figures), like every
    // later one; the plain search on the profiles is the fallback if that round could not plan.
    const loop = this.p.origin?.loop;
    if (loop) await loop.round();
    if (!c.current) await c.replan('start-up');
    loop?.start();
  }

  /** Prepare (build and warm) a segment here; once it is warm, it is the one readiness depends on. */
  /**
   * Builds and warms `[start, end)` here. With `route` (the origin always sends it), the plan's route must
   * have this host's stage as `[start, end)` and be one the origin could plan; infer frames of that route
   * are accepted from then on.
   */
  async prepareLocal(start: number, end: number, route?: RouteStage[]): Promise<void> {
    if (route) {
      const i = route.findIndex((s) => s.host === this.p.self.name);
      const why =
        i < 0
          ? `it has no stage on ${this.p.self.name}`
          : route[i].from !== start || route[i].to !== end
            ? `its stage on ${this.p.self.name} is [${route[i].from}, ${route[i].to}), not [${start}, ${end})`
            : i === 0
              ? null
              : routeProblem(route, i, route[i - 1].host, this.p.shapeRules);
      if (why !== null) throw new CleaveError('E_BAD_INPUT', `route: ${why}`);
    }
    await this.p.segments.prepare({ start, end });
    if (route) this.p.planned.add(route);
    this.current = { start, end };
  }

  /** Releases every segment session here (the model is unloaded); readiness no longer waits for one. */
  releaseLocal(): number {
    this.current = null;
    const n = this.p.segments.releaseAll();
    this.p.log.info({ sessions: n }, 'segments released: the model is unloaded');
    return n;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const p = this.p;
    await this.grpc?.close();
    p.load.stop();
    p.heartbeat.stop();
    p.origin?.close();
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
