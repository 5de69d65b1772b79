/**
 * host/: one Cleave host process, and the parts it is made of (pipeline, segments, peer mesh, metrics, load).
 * `Host` is the composition root: `Host.start` loads and analyses the model, profiles it (or loads the cached
 * profile), starts the executor, builds and wires the parts, listens, and dials the peers. The origin (the
 * first tier's host) also answers inference requests and plans.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import pino, { type Logger } from 'pino';
import { CleaveError, errorMessage } from '../../errors.js';
import { resolveInputs } from '../../graph/shapes.js';
import { DEFAULT_TIERS } from '../../planner/criteria.js';
import type { IncomingFrame } from '../../transport/incoming.js';
import { PeerServer } from '../../transport/peer-server.js';
import {
  controlToken,
  parseListen,
  servedModels,
  type DeploymentConfig,
  type HostConfig,
  type ModelConfig,
} from '../config.js';
import { profileOffThread } from '../local/profile-thread.js';
import { peerCredentials } from './credentials.js';
import { checkHeader, type AccessPolicy } from '../http/access.js';
import { HOST_TRANSPORT_DEFAULTS, resolveLimits, type RuntimeLimits } from '../defaults.js';
import { Executor } from '../executor/executor.js';
import { buildApp } from '../http/app.js';
import { modelSignature, type GatewayDeps, type ServedModel } from '../http/gateway.js';
import type { PlanDeps } from '../http/control.js';
import { mountEvents, type EventsEndpoint } from '../http/events.js';
import { EventBus } from '../plan/events.js';
import { describeRoute } from '../plan/route.js';
import type { OnnxModel } from '../../graph/model.js';
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
import { SERVER_VERSION } from '../version.js';
import { loadTls } from '../tls.js';
import { Cluster } from './cluster.js';
import { startOrigin, type OriginParts } from './origin.js';
import { FrameCpu } from './frame-cpu.js';
import { checkHeartbeat, HEARTBEAT, HeartbeatSender } from './heartbeat.js';
import { LoadSampler } from './load.js';
import { HostMetrics } from './metrics.js';
import { PeerClient } from './peer-client.js';
import { PeerMesh } from './peer-mesh.js';
import { retrying } from './retry.js';
import { PLANNED_ROUTES, PlannedRoutes, plannedRoutesOf, routeProblem, type RouteRules } from './route-check.js';
import type { RouteStage } from '../../transport/frame.js';
import { Pipeline } from './pipeline.js';
import { StallWatch } from './stall-watch.js';
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

/**
 * One model this host serves: its analysis and profile, its segment sessions (in the host's one executor,
 * whose cache budget every model shares), the routes the origin planned for it, and its pipeline. On the
 * origin, also its planning parts (coordinator, live state, controller, lifecycle) and Triton statistics.
 */
interface ModelPart {
  readonly name: string;
  readonly version: string;
  readonly model: OnnxModel;
  readonly analysis: Analysis;
  readonly profile: ProfileDoc;
  readonly segments: SegmentSessions;
  readonly planned: PlannedRoutes;
  readonly pipeline: Pipeline;
  readonly cluster: Cluster;
  readonly origin: OriginParts | null;
  readonly stats: InferenceStats;
  /** Segment `[start, end)` this host was last asked to prepare: readiness means it is warm. */
  current: { start: number; end: number } | null;
}

/** A model read from the repository, analysed and profiled: what a ModelPart is built from. */
interface LoadedModel {
  readonly entry: { readonly name: string; readonly version: string };
  readonly model: OnnxModel;
  readonly analysis: Analysis;
  readonly profile: ProfileDoc;
}

/** Reads `spec`'s model from the repository and analyses it at its input shapes and values. */
async function loadAndAnalyze(
  modelsDir: string,
  spec: ModelConfig,
  log: Logger,
): Promise<Omit<LoadedModel, 'profile'>> {
  const { entry, model } = loadRepoModel(modelsDir, spec.name);
  const shapes = new Map(Object.entries(spec.shapes ?? {}));
  const values = new Map(Object.entries(spec.values ?? {}));
  const analysis = await analyze(model, resolveInputs(model, shapes, values), spec.granularity ?? {});
  log.info({ model: entry.name, sha256: model.sha256.slice(0, 16), blocks: analysis.blocks.length }, 'model loaded');
  return { entry, model, analysis };
}

/** What the models share in a started host. */
interface HostParts {
  readonly config: DeploymentConfig;
  readonly self: HostConfig;
  readonly limits: RuntimeLimits;
  /** The served models by name, the default first (in insertion order); one loaded at run time joins. */
  readonly parts: Map<string, ModelPart>;
  /** Builds a model's part (and on the origin its planning parts), as at start. */
  readonly build: (l: LoadedModel) => ModelPart;
  /** The config's models (loaded at start), as against those loaded at run time. */
  readonly listed: ReadonlySet<string>;
  /** Models being added at run time (addModel), so that two loads of one model share the work. */
  readonly adding: Map<string, Promise<ModelPart>>;
  /** Where models loaded at run time are read from and their profiles cached. */
  readonly loadFrom: { readonly modelsDir: string; readonly cacheDir: string; readonly logLevel: string };
  readonly client: PeerClient;
  /** The origin: a model added at run time, once planned, is served (the gateway's and events' lists). */
  readonly publish: (m: ModelPart) => void;
  readonly executor: Executor;
  /** The route shape rules (what infer frames are checked against, with each model's planned routes). */
  readonly shapeRules: RouteRules;
  readonly mesh: PeerMesh;
  readonly metrics: HostMetrics;
  readonly load: LoadSampler;
  readonly heartbeat: HeartbeatSender;
  readonly server: http.Server;
  readonly peerServer: PeerServer;
  readonly events: EventsEndpoint | null;
  readonly log: Logger;
}

/** What a handshake compares: the model's sha256, or for several models one digest of all of theirs. */
function modelsDigest(models: readonly { readonly model: OnnxModel }[]): string {
  if (models.length === 1) return models[0].model.sha256;
  const h = createHash('sha256');
  for (const m of models) h.update(`${m.model.sha256}\n`);
  return h.digest('hex');
}

export class Host {
  private closed = false;
  /** Loads of a model the deployment did not serve, under way (loadModel). */
  private readonly loads = new Map<string, Promise<{ failed: { host: string; error: string }[] }>>();
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
    const threads = self.threads ?? 1;
    // Every model is loaded, analysed and profiled (or its cached profile read) before the host serves.
    const loaded: LoadedModel[] = [];
    for (const spec of servedModels(o.config)) {
      const { entry, model, analysis } = await loadAndAnalyze(o.modelsDir, spec, log);
      const cfg = { ...o.config, granularity: spec.granularity };
      const profile = await cachedProfile(o.cacheDir, analysis, self, threads, cfg, log, ownCpu().cpus);
      loaded.push({ entry, model, analysis, profile });
    }
    const executor = await Executor.create({
      intraOpThreads: threads,
      maxCachedSessions: limits.sessionCache,
      maxCachedBytes: limits.sessionCacheBytes,
      logger: log,
    });
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

    // The largest frame any model's frontiers need (a model with unknown sizes: the transport's default).
    const sizes = loaded.map((m) => modelFrameBytes(m.analysis));
    const frameBytes = sizes.some((x) => x === undefined) ? undefined : Math.max(...(sizes as number[]));
    const transport = {
      ...HOST_TRANSPORT_DEFAULTS,
      ...(frameBytes !== undefined ? { maxFrameBytes: frameBytes } : {}),
      ...o.config.transport,
    };
    const isOrigin = self.tier === tiers[0];
    const shapeRules: RouteRules = { tierOf: new Map(o.config.hosts.map((h) => [h.name, h.tier])), tiers };
    const defaultModel = loaded[0].entry.name;
    const digest = modelsDigest(loaded);

    // Frames reach the pipelines (and heartbeats the live states) through the mesh (replies) and the peer
    // server (requests); both open only after the parts exist, so the late bindings are set before a frame.
    const parts = new Map<string, ModelPart>();
    const partOf = (name: string | undefined): ModelPart | undefined => parts.get(name ?? defaultModel);
    // Set once the origin's parts exist: a lost or returning host is news to its controllers at once.
    let onHostLost: ((host: string) => void) | null = null;
    let onHostRejoin: ((host: string) => void) | null = null;
    const onFrame = (f: IncomingFrame): void => {
      if (f.header.kind !== 'message') {
        const m = partOf(f.header.model);
        if (m) return m.pipeline.onFrame(f);
        return log.warn({ peer: f.peer.host, model: f.header.model }, 'frame for a model not served here: dropped');
      }
      const body = f.header.body as { type?: unknown; model?: unknown } | undefined;
      if (body?.type === PLANNED_ROUTES) {
        // Only the origin plans: what another host says it planned is not taken.
        if (f.peer.host !== originName) return log.warn({ peer: f.peer.host }, 'planned routes not from the origin');
        const m = partOf(typeof body.model === 'string' ? body.model : undefined);
        if (!m) return log.warn({ peer: f.peer.host, model: body.model }, 'planned routes of a model not served here');
        try {
          for (const r of plannedRoutesOf(body, self.name, shapeRules)) m.planned.add(r);
        } catch (e) {
          log.warn({ peer: f.peer.host, err: (e as Error).message }, 'planned routes refused');
        }
        return;
      }
      if (body?.type !== HEARTBEAT) return;
      try {
        const beat = checkHeartbeat(body, f.peer.host);
        for (const m of parts.values()) m.origin?.live.onHeartbeat(beat, Date.now());
      } catch (e) {
        log.warn({ peer: f.peer.host, err: (e as Error).message }, 'heartbeat refused');
      }
    };
    const mesh = new PeerMesh({
      self,
      peers: o.config.hosts.filter((h) => h.name !== self.name),
      token,
      modelSha256: digest,
      links: o.config.links ?? [],
      tls,
      onFrame,
      onLost: (peer, ids) => {
        for (const m of parts.values()) m.pipeline.failLost(peer, ids);
        onHostLost?.(peer);
      },
      onRejoin: (peer) => onHostRejoin?.(peer),
      // The origin tells a host that (re)joins which adopted routes pass through it, ahead of any of their
      // frames on this link: a host that restarted accepts the plan in force without being prepared again.
      onOpen: (peer) => {
        for (const m of parts.values()) {
          const through = (m.origin?.coordinator.plans ?? [])
            .map((a) => a.route)
            .filter((r) => r.some((x) => x.host === peer));
          if (!through.length) continue;
          try {
            const body = { type: PLANNED_ROUTES, model: m.name, routes: through };
            mesh.send(peer, { kind: 'message', body }, []);
          } catch (e) {
            log.warn({ peer, err: (e as Error).message }, 'could not hand the planned routes to a host that joined');
          }
        }
      },
      logger: log,
      transport,
    });
    metrics.observeLinks(() => mesh.reports());
    const client = new PeerClient({ hosts: o.config.hosts, token, timeoutMs: limits.peerRequestTimeoutMs, tls });
    const load = new LoadSampler(limits.loadSampleMs);
    const server: http.Server = tls ? https.createServer({ cert: tls.cert, key: tls.key }) : http.createServer();
    const peerServer = await PeerServer.listen({
      self: { host: self.name, tier: self.tier },
      modelSha256: digest,
      identify: creds.identify,
      onFrame,
      server,
      logger: log,
      options: transport,
    });

    const status = (): HostStatus => (host as Host).status();
    const frameCpu = new FrameCpu();
    let quotaSeen: number | null | undefined;
    const takeHeartbeat = (): Heartbeat => {
      const cpu = ownCpu();
      const ms = [...parts.values()];
      const busy = ms.reduce((a, m) => a + m.pipeline.busy, 0);
      // A new CPU quota: what ran under the old one no longer says how fast this host is.
      if (quotaSeen !== undefined && cpu.cpus !== quotaSeen) for (const m of ms) m.pipeline.restartComputeTimes();
      quotaSeen = cpu.cpus;
      return {
        host: self.name,
        tier: self.tier,
        cpuPercent: load.cpuPercent,
        quotaCpus: cpu.cpus,
        throttledMs: cpu.throttledMs,
        threads,
        queueDepth: executor.queued,
        inFlight: ms.reduce((a, m) => a + m.pipeline.inFlight, 0),
        busy,
        segments: ms.flatMap((m) => m.pipeline.computeTimes().map((t) => ({ model: m.name, ...t }))),
        links: mesh.reports(),
        frameCpuMs: frameCpu.beat(
          performance.now(),
          ms.reduce((a, m) => a + m.pipeline.stagesFromFrames, 0),
          busy,
        ),
      };
    };
    const bus = isOrigin ? new EventBus() : null;
    const stalls = isOrigin ? new StallWatch(limits.heartbeatTimeoutMs, log) : null;
    let host: Host | null = null;
    const h = (): Host | null => host;
    /** The served models of the gateway and gRPC front (a model loaded at run time joins it once planned). */
    const servedList: ServedModel[] = [];
    /** The models the events stream knows (`?model=`). */
    const eventModels: string[] = [];
    const originsNow = (): ModelPart[] => [...parts.values()].filter((m) => m.origin !== null);
    /** One model's part: its sessions, pipeline and cluster view, and on the origin its planning parts. */
    const build = (l: LoadedModel): ModelPart => {
      const name = l.entry.name;
      const planned = new PlannedRoutes();
      const routeRules: RouteRules = { ...shapeRules, planned: (r) => planned.has(r) };
      const segments = new SegmentSessions(l.analysis, executor, limits.warmupRuns);
      const pipeline = new Pipeline({
        self: self.name,
        model: name,
        segments,
        links: mesh,
        metrics,
        logger: log,
        outputs: l.model.outputs.map((x) => x.name),
        maxInFlight: limits.maxInFlight,
        checkRoute: (route, stage, sender) => routeProblem(route, stage, sender, routeRules),
      });
      const cluster = new Cluster({
        self: self.name,
        hosts: o.config.hosts,
        isOpen: (h) => mesh.isOpen(h),
        client,
        model: name,
        profile: l.profile,
        status,
        links: () => mesh.reports(),
        logger: log,
      });
      const origin =
        isOrigin && bus
          ? startOrigin({
              model: name,
              config: o.config,
              self,
              tiers,
              limits,
              analysis: l.analysis,
              mesh,
              cluster,
              metrics,
              events: bus.tagged({ model: name }),
              stalled: () => stalls?.stalled() ?? false,
              prepare: (host, from, to, route) =>
                host === self.name
                  ? (h() as Host).prepareLocal(from, to, route, name)
                  : client
                      .request(host, 'POST', '/v1/segments', { from, to, route, model: name })
                      .then(() => undefined),
              release: async (host) => {
                if (host === self.name) (h() as Host).releaseLocal(name);
                else await client.request(host, 'DELETE', `/v1/segments?model=${encodeURIComponent(name)}`);
              },
              inFlight: () => pipeline.inFlight,
              takeHeartbeat,
              logger: log.child({ model: name }),
            })
          : null;
      return {
        name,
        version: l.entry.version,
        model: l.model,
        analysis: l.analysis,
        profile: l.profile,
        segments,
        planned,
        pipeline,
        cluster,
        origin,
        stats: new InferenceStats(),
        current: null,
      };
    };
    for (const l of loaded) parts.set(l.entry.name, build(l));
    const models = [...parts.values()];
    if (isOrigin) {
      // A host lost: each controller's next round, now, sees it down and moves the plan around it (urgent,
      // past hysteresis and dwell). A host back: it is given the models loaded since it started, its profiles
      // are fetched again (it may have restarted elsewhere or under another quota) and the usual rounds may
      // move work back to it. Before the loops start (start-up: peers still dialing, links not measured)
      // planAtStartup plans.
      onHostLost = (peer) => {
        for (const m of originsNow()) {
          const loop = (m.origin as OriginParts).loop;
          if (!loop.started) continue;
          log.warn({ peer, model: m.name }, 'host lost: re-planning now');
          void loop.round();
        }
      };
      onHostRejoin = (peer) => {
        void (h() as Host).rejoined(peer);
      };
    }
    const heartbeat = new HeartbeatSender({
      intervalMs: limits.heartbeatMs,
      take: takeHeartbeat,
      // The origin takes its own; the others send theirs over their link to it.
      deliver: isOrigin
        ? (b) => {
            for (const m of originsNow()) (m.origin as OriginParts).live.onHeartbeat(b, Date.now());
          }
        : (b) => {
            if (mesh.isOpen(originName))
              mesh.send(originName, { kind: 'message', body: { type: HEARTBEAT, ...b } }, []);
          },
      logger: log,
    });
    const first = models[0];
    eventModels.push(...models.map((m) => m.name));
    const events =
      bus && first.origin
        ? mountEvents(server, bus, {
            maxBufferedBytes: limits.eventBufferBytes,
            peerPath: peerServer.options.path,
            access,
            models: eventModels,
            hello: (asked) => {
              const m = parts.get(asked ?? defaultModel) as ModelPart;
              const c = (m.origin as OriginParts).coordinator;
              return {
                host: self.name,
                model: m.name,
                models: [...eventModels],
                epoch: c.current?.epoch ?? null,
                route: c.current ? describeRoute(c.current.route) : null,
                controller: (m.origin as OriginParts).loop.controller.settings,
              };
            },
            logger: log,
          })
        : null;
    const served = (m: ModelPart, origin: OriginParts): ServedModel => ({
      model: {
        name: m.name,
        version: m.version,
        signature: modelSignature(
          { name: m.name, version: m.version },
          m.model.inputs,
          m.model.outputs,
          m.analysis.types,
        ),
      },
      ready: () => (h() as Host).modelReady(m),
      plan: () => origin.coordinator.current,
      infer: retrying({
        infer: (plan, inputs, ms) => m.pipeline.infer(plan, inputs, ms),
        current: () => origin.coordinator.current,
        runnable: (plan) => origin.runnable(plan.route),
        retryWaitMs: limits.retryWaitMs,
        hedgeAfterMs: limits.hedgeAfterMs,
        onSecondAttempt: (kind) => metrics.secondAttempts.inc({ model: m.name, kind }),
        log,
      }),
      answered: (epoch, ms, ok) => origin.latency.record(Date.now(), epoch, ms, ok),
      stats: m.stats,
      lifecycle: {
        unavailable: () => origin.lifecycle.unavailable(),
        load: () => origin.lifecycle.load(),
        unload: () => origin.lifecycle.unload(),
      },
    });
    servedList.push(...models.filter((m) => m.origin).map((m) => served(m, m.origin as OriginParts)));
    host = new Host({
      config: o.config,
      self,
      limits,
      parts,
      listed: new Set(loaded.map((l) => l.entry.name)),
      build,
      adding: new Map(),
      loadFrom: { modelsDir: o.modelsDir, cacheDir: o.cacheDir, logLevel: log.level },
      client,
      publish: (m) => {
        servedList.push(served(m, m.origin as OriginParts));
        eventModels.push(m.name);
      },
      executor,
      shapeRules,
      mesh,
      metrics,
      load,
      heartbeat,
      server,
      peerServer,
      events,
      log,
    });
    const hostRef = host;
    const gateway: GatewayDeps | undefined = isOrigin
      ? {
          models: servedList,
          serverVersion: SERVER_VERSION,
          limits,
          ready: () => hostRef.ready,
          metrics,
          log,
          repository: {
            models: () => listModels(o.modelsDir).map((m) => ({ name: m.name, version: m.version })),
            authorize: (header, what) => checkHeader(header, access, what),
            add: (name) => hostRef.loadModel(name),
          },
        }
      : undefined;
    const planDeps = (m: ModelPart): PlanDeps => {
      const origin = m.origin as OriginParts;
      return {
        model: m.name,
        tiers,
        coordinator: origin.coordinator,
        cluster: m.cluster,
        adaptive: origin.loop,
        measured: (epoch) => origin.latency.stats(Date.now(), epoch),
      };
    };
    const part = (name: string | undefined): ModelPart => hostRef.part(name);
    server.on(
      'request',
      buildApp({
        ready: () => hostRef.ready,
        metrics: async () => ({ contentType: metrics.registry.contentType, body: await metrics.registry.metrics() }),
        control: {
          self: self.name,
          access,
          limits,
          status,
          profile: (name) => part(name).profile,
          links: () => mesh.reports(),
          prepareSegment: (from, to, route, name) => hostRef.prepareLocal(from, to, route, name),
          releaseSegments: (name) => hostRef.releaseLocal(name),
          addModel: (name) => hostRef.addModel(name),
          hasLink: (to) => mesh.has(to),
          setLinkEmulation: (to, settings) => {
            const now = mesh.setEmulation(to, settings);
            log.info({ link: `${self.name}->${to}`, settings }, 'link emulation changed');
            return now;
          },
          forward: (name, method, path, body) => client.request(name, method, path, body),
          plan: first.origin ? planDeps(first) : undefined,
          planFor: first.origin ? (name) => planDeps(part(name)) : undefined,
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
        hostRef.grpc = await GrpcFront.start(gateway, { listen: self.grpc, tls });
      } catch (e) {
        await hostRef.close();
        throw e;
      }
      log.info({ grpc: self.grpc, port: hostRef.grpc.port }, 'gRPC listening');
    }
    load.start();
    heartbeat.start();
    log.info(
      { listen: `${addr}:${(server.address() as AddressInfo).port}`, models: models.map((m) => m.name) },
      'listening',
    );
    return host;
  }

  /** The served model `name` (absent: the default); E_UNKNOWN_MODEL naming the models served. */
  private part(name: string | undefined): ModelPart {
    if (name === undefined) return this.all[0];
    const m = this.all.find((x) => x.name === name);
    if (!m)
      throw new CleaveError(
        'E_UNKNOWN_MODEL',
        `model '${name}' is not served here (models: ${this.all.map((x) => x.name).join(', ')})`,
      );
    return m;
  }

  private get all(): ModelPart[] {
    return [...this.p.parts.values()];
  }

  /**
   * Loads `name` from the repository here while the host serves: reads and analyses it, profiles it in a
   * worker thread (or reads its cached profile), and builds its part (sessions, pipeline, and on the origin
   * its planning parts, which do not plan yet). Every host does this when the origin loads a model the config
   * does not list (`loadModel`). A model already served: nothing to do.
   */
  async addModel(name: string): Promise<{ name: string; sha256: string; blocks: number }> {
    const done = (m: ModelPart): { name: string; sha256: string; blocks: number } => ({
      name: m.name,
      sha256: m.model.sha256,
      blocks: m.analysis.blocks.length,
    });
    const have = this.p.parts.get(name);
    if (have) return done(have);
    let adding = this.p.adding.get(name);
    if (!adding) {
      adding = this.build(name).finally(() => this.p.adding.delete(name));
      this.p.adding.set(name, adding);
    }
    return done(await adding);
  }

  private async build(name: string): Promise<ModelPart> {
    const { modelsDir, cacheDir, logLevel } = this.p.loadFrom;
    const spec: ModelConfig = { name };
    const log = this.p.log.child({ model: name });
    const t0 = Date.now();
    const { entry, model, analysis } = await loadAndAnalyze(modelsDir, spec, log);
    const threads = this.p.self.threads ?? 1;
    const profile = await profileOffThread({
      modelsDir,
      cacheDir,
      spec,
      self: this.p.self,
      threads,
      config: this.p.config,
      quotaCpus: ownCpu().cpus,
      logLevel,
    });
    if (profile.model.sha256 !== model.sha256)
      throw new CleaveError('E_INTERNAL', `model '${name}' changed in the repository while it was profiled`);
    if (this.closed) throw new CleaveError('E_NOT_READY', `${this.p.self.name} is shutting down`);
    const part = this.p.build({ entry, model, analysis, profile });
    this.p.parts.set(name, part);
    log.info({ ms: Date.now() - t0 }, 'model added');
    return part;
  }

  /**
   * The origin: loads a repository model the deployment does not serve yet on every host (each reads,
   * analyses and profiles it: `POST /v1/models` on the others), then plans it as at start-up and serves it.
   * A host that cannot be told (down, or failing) is left out of its plans and is given the model when it
   * rejoins. A host whose file differs from the origin's (its sha256) fails the load.
   */
  loadModel(name: string): Promise<{ failed: { host: string; error: string }[] }> {
    // Two loads of one model at once share the one load (and publish it once).
    let load = this.loads.get(name);
    if (!load) {
      load = this.loadEverywhere(name).finally(() => this.loads.delete(name));
      this.loads.set(name, load);
    }
    return load;
  }

  private async loadEverywhere(name: string): Promise<{ failed: { host: string; error: string }[] }> {
    if (!this.all[0].origin) throw new CleaveError('E_UNSUPPORTED', 'only the origin loads a model for the deployment');
    const served = this.p.parts.get(name);
    if (served?.origin?.coordinator.current) return { failed: [] };
    const peers = this.p.config.hosts.filter((x) => x.name !== this.p.self.name).map((x) => x.name);
    const [mine, ...theirs] = await Promise.allSettled([
      this.addModel(name),
      ...peers.map(
        (peer) => this.p.client.request(peer, 'POST', '/v1/models', { name }) as Promise<{ sha256?: string }>,
      ),
    ]);
    if (mine.status === 'rejected') throw mine.reason;
    const failed: { host: string; error: string }[] = [];
    theirs.forEach((r, i) => {
      if (r.status === 'rejected') failed.push({ host: peers[i], error: errorMessage(r.reason) });
      else if (r.value.sha256 !== mine.value.sha256)
        throw new CleaveError(
          'E_BAD_INPUT',
          `model '${name}': ${peers[i]} holds sha256 ${String(r.value.sha256).slice(0, 12)}..., ` +
            `this host ${mine.value.sha256.slice(0, 12)}... (every host must hold the same file)`,
        );
    });
    for (const f of failed)
      this.p.log.warn({ model: name, ...f }, 'a host could not load the model: planning without it');
    const m = this.part(name);
    const { loop, coordinator: c } = m.origin as OriginParts;
    await loop.round();
    if (!c.current) await c.replan('model loaded');
    loop.start();
    this.p.publish(m);
    return { failed };
  }

  /**
   * The origin, when a host comes back: it is given every model loaded since the deployment started (a
   * restarted host holds only its config's), then each model's view forgets its profile (fetched again) and
   * the controllers plan with it again.
   */
  async rejoined(peer: string): Promise<void> {
    for (const m of this.all) {
      if (!m.origin) continue;
      if (!this.p.listed.has(m.name)) {
        try {
          await this.p.client.request(peer, 'POST', '/v1/models', { name: m.name });
        } catch (e) {
          this.p.log.warn({ peer, model: m.name, err: errorMessage(e) }, 'a host back could not load the model');
        }
      }
      m.cluster.forget(peer);
      const loop = m.origin.loop;
      if (!loop.started) continue;
      this.p.log.info({ peer, model: m.name }, 'host back: its profile is read again');
      void loop.round();
    }
  }

  /** The names of the models served, the default first. */
  get models(): string[] {
    return this.all.map((m) => m.name);
  }

  get self(): HostConfig {
    return this.p.self;
  }

  get limits(): RuntimeLimits {
    return this.p.limits;
  }

  /** The default model's analysis (`analysisOf` for another). */
  get analysis(): Analysis {
    return this.all[0].analysis;
  }

  analysisOf(model: string): Analysis {
    return this.part(model).analysis;
  }

  /** The origin's coordinator of the default model (`coordinatorOf` for another); null on the other hosts. */
  get coordinator(): Coordinator | null {
    return this.all[0].origin?.coordinator ?? null;
  }

  coordinatorOf(model: string): Coordinator | null {
    return this.part(model).origin?.coordinator ?? null;
  }

  get port(): number {
    return (this.p.server.address() as AddressInfo).port;
  }

  /** The port gRPC is served on; null without it. */
  get grpcPort(): number | null {
    return this.grpc?.port ?? null;
  }

  /**
   * Live: the process serves. Ready: every model served is (`modelReady`): on the origin, it has a committed
   * plan whose every host is up (between losing a host and re-planning around it, it cannot answer) and it
   * is loaded; on the others, the segment last prepared for it is warm.
   */
  get ready(): boolean {
    // A model being loaded at run time is not served yet: readiness is that of those served.
    return this.all.every(
      (m) =>
        (m.origin !== null && m.origin.coordinator.current === null && !this.p.listed.has(m.name)) ||
        this.modelReady(m),
    );
  }

  /** One model: see `ready`. */
  modelReady(m: ModelPart): boolean {
    if (this.closed) return false;
    const c = m.origin?.coordinator;
    if (c) {
      const cur = c.current;
      return cur !== null && c.loaded && (m.origin?.runnable(cur.route) ?? true);
    }
    return m.current === null || m.segments.isWarm(m.current);
  }

  status(): HostStatus {
    const many = this.all.length > 1;
    return {
      host: this.p.self.name,
      tier: this.p.self.tier,
      ready: this.ready,
      cpuPercent: this.p.load.cpuPercent,
      inFlight: this.all.reduce((a, m) => a + m.pipeline.inFlight, 0),
      busy: this.all.reduce((a, m) => a + m.pipeline.busy, 0),
      threads: this.p.self.threads ?? 1,
      heapFlags: heapFlags(),
      segments: this.all.flatMap((m) => {
        const times = m.pipeline.computeTimes();
        return m.segments.held().map(({ range, warm }) => {
          const t = times.find((x) => x.from === range.start && x.to === range.end);
          return {
            ...(many ? { model: m.name } : {}),
            from: range.start,
            to: range.end,
            warm,
            meanMs: t?.meanMs ?? null,
            runs: t?.runs ?? 0,
          };
        });
      }),
    };
  }

  /**
   * The origin's start-up planning: wait for every link to open and be measured (RTT and throughput from
   * real traffic and probes), then plan and commit each model's first epoch.
   */
  async planAtStartup(): Promise<void> {
    const origins = this.all.filter((m) => m.origin !== null);
    if (origins.length === 0) return;
    const { startupTimeoutMs, startupSamples } = this.p.limits;
    const until = Date.now() + startupTimeoutMs;
    await this.p.mesh.whenAllOpen(startupTimeoutMs).catch(() => undefined);
    const wanted = this.p.config.hosts.length * (this.p.config.hosts.length - 1);
    for (;;) {
      const links = await origins[0].cluster.links().catch(() => []);
      const measured = links.filter(
        (l) => l.rttMs !== null && l.throughputBps !== null && (l.throughputSamples ?? 0) >= startupSamples,
      ).length;
      if (measured >= wanted || Date.now() > until) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    // The first plan is the controller's, on the live estimates (hosts' quotas and link figures), like every
    // later one; the plain search on the profiles is the fallback if that round could not plan.
    for (const m of origins) {
      const { loop, coordinator: c } = m.origin as OriginParts;
      await loop.round();
      if (!c.current) await c.replan('start-up');
      loop.start();
    }
  }

  /**
   * Builds and warms `[start, end)` of `model` (absent: the default) here; once it is warm, it is the one
   * readiness depends on. With `route` (the origin always sends it), the plan's route must have this host's
   * stage as `[start, end)` and be one the origin could plan; infer frames of that route are accepted from
   * then on.
   */
  async prepareLocal(start: number, end: number, route?: RouteStage[], model?: string): Promise<void> {
    const m = this.part(model);
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
    await m.segments.prepare({ start, end });
    if (route) m.planned.add(route);
    m.current = { start, end };
  }

  /** Releases every segment session of `model` here (it is unloaded); readiness no longer waits for one. */
  releaseLocal(model?: string): number {
    const m = this.part(model);
    m.current = null;
    const n = m.segments.releaseAll();
    this.p.log.info({ model: m.name, sessions: n }, 'segments released: the model is unloaded');
    return n;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const p = this.p;
    await this.grpc?.close();
    p.load.stop();
    p.heartbeat.stop();
    p.events?.close();
    for (const m of this.all) {
      m.origin?.close();
      m.pipeline.failAll(`${p.self.name} is shutting down`);
    }
    await p.mesh.close();
    await p.peerServer.close();
    await new Promise<void>((resolve) => {
      p.server.close(() => resolve());
      p.server.closeAllConnections();
    });
    await p.executor.close();
  }
}
