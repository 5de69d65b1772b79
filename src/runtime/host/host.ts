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
import { resolveLimits, type RuntimeLimits } from '../defaults.js';
import { Executor } from '../executor/executor.js';
import { buildApp } from '../http/app.js';
import { modelSignature } from '../http/gateway.js';
import { analyze, type Analysis } from '../local/analysis.js';
import { profileModel, PROFILE_DEFAULTS, PROFILE_FORMAT, type ProfileDoc } from '../local/profiler.js';
import { loadRepoModel } from '../model-repo.js';
import { heapFlags } from '../process/node-flags.js';
import type { HostStatus } from '../plan/cluster-view.js';
import { Coordinator } from '../plan/coordinator.js';
import { SERVER_VERSION } from '../version.js';
import { Cluster } from './cluster.js';
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
  readonly server: http.Server;
  readonly peerServer: PeerServer;
  readonly log: Logger;
}

export class Host {
  /** Segment `[start, end)` this host was last asked to prepare: readiness means it is warm. */
  private current: { start: number; end: number } | null = null;
  private closed = false;

  private constructor(private readonly p: HostParts) {}

  static async start(o: HostStartOptions): Promise<Host> {
    const self = o.config.hosts.find((h) => h.name === o.name);
    if (!self) throw new CleaveError('E_BAD_INPUT', `--name ${o.name}: not a host of the config (hosts: ${o.config.hosts.map((h) => h.name).join(', ')})`);
    const log = (o.logger ?? pino({ level: process.env.LOG_LEVEL ?? 'info' })).child({ host: self.name, tier: self.tier });
    const limits = resolveLimits(o.config.limits);
    const tiers = o.config.tiers ?? DEFAULT_TIERS;
    const { entry, model } = loadRepoModel(o.modelsDir, o.config.model);
    const shapes = new Map(Object.entries(o.config.shapes ?? {}));
    const analysis = await analyze(model, resolveInputs(model, shapes), o.config.granularity ?? {});
    log.info({ model: entry.name, sha256: model.sha256.slice(0, 16), blocks: analysis.blocks.length }, 'model loaded');
    const threads = self.threads ?? 1;
    const profile = await cachedProfile(o.cacheDir, analysis, self, threads, o.config, log);
    const executor = await Executor.create({ intraOpThreads: threads, maxCachedSessions: limits.sessionCache, logger: log });
    const segments = new SegmentSessions(analysis, executor, limits.warmupRuns);
    const metrics = new HostMetrics(self.name, self.tier);
    const { token, fromDefault } = peerToken(o.config);
    if (fromDefault) log.warn('no peer token in CLEAVE_TOKEN or the config: using the development token');

    // Frames reach the pipeline through the mesh (replies) and the peer server (requests); both open only
    // after the parts exist, so the late binding below is always set before a frame arrives.
    let pipeline: Pipeline | null = null;
    const onFrame = (f: IncomingFrame): void => pipeline?.onFrame(f);
    const mesh = new PeerMesh({
      self,
      peers: o.config.hosts.filter((h) => h.name !== self.name),
      token,
      modelSha256: model.sha256,
      links: o.config.links ?? [],
      onFrame,
      onLost: (peer, ids) => pipeline?.failLost(peer, ids),
      logger: log,
      transport: o.config.transport,
    });
    pipeline = new Pipeline({ self: self.name, segments, links: mesh, metrics, logger: log, outputs: model.outputs.map((x) => x.name), maxInFlight: limits.maxInFlight });
    metrics.observeLinks(() => mesh.reports());
    const client = new PeerClient({ hosts: o.config.hosts, token, timeoutMs: limits.peerRequestTimeoutMs });
    const load = new LoadSampler(limits.loadSampleMs);
    const server = http.createServer();
    const peerServer = await PeerServer.listen({ self: { host: self.name, tier: self.tier }, modelSha256: model.sha256, token, onFrame, server, logger: log, options: o.config.transport });

    let host: Host | null = null;
    const status = (): HostStatus => (host as Host).status();
    const cluster = new Cluster({ self: self.name, hosts: o.config.hosts, isOpen: (h) => mesh.isOpen(h), client, profile, status, links: () => mesh.reports(), logger: log });
    const prepareOn = (name: string, from: number, to: number): Promise<void> =>
      name === self.name ? (host as Host).prepareLocal(from, to) : client.request(name, 'POST', '/v1/segments', { from, to }).then(() => undefined);
    const coordinator =
      self.tier === tiers[0]
        ? new Coordinator({
            self: { name: self.name, tier: self.tier },
            tiers,
            hosts: o.config.hosts.map((h) => ({ name: h.name, tier: h.tier })),
            blocks: analysis.blocks,
            cluster,
            prepare: prepareOn,
            historyLength: limits.planHistory,
            onAdopt: (a) => metrics.planEpoch.set({ host: self.name }, a.epoch),
            logger: log,
          })
        : null;
    host = new Host({ config: o.config, self, limits, analysis, profile, executor, segments, mesh, pipeline, metrics, load, cluster, coordinator, server, peerServer, log });
    const h = host;
    const version = { name: entry.name, version: entry.version };
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
          plan: coordinator ? { tiers, coordinator, cluster } : undefined,
        },
        gateway: coordinator
          ? {
              model: { ...version, signature: modelSignature(version, model.inputs, model.outputs, analysis.types) },
              serverVersion: SERVER_VERSION,
              limits,
              ready: () => h.ready,
              plan: () => coordinator.current,
              infer: (plan, inputs, deadlineMs) => (pipeline as Pipeline).infer(plan, inputs, deadlineMs),
              metrics,
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
      const measured = links.filter((l) => l.rttMs !== null && l.throughputBps !== null && (l.throughputSamples ?? 0) >= startupSamples).length;
      if (measured >= wanted || Date.now() > until) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    await c.replan('start-up');
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
async function cachedProfile(dir: string, a: Analysis, self: HostConfig, threads: number, cfg: DeploymentConfig, log: Logger): Promise<ProfileDoc> {
  const g = cfg.granularity ?? {};
  const repeats = cfg.profile?.repeats ?? PROFILE_DEFAULTS.repeats;
  const warmup = cfg.profile?.warmup ?? PROFILE_DEFAULTS.warmup;
  const key = `${a.model.sha256.slice(0, 16)}-${self.name}-t${threads}-k${g.maxTensors ?? 'all'}-b${g.maxBytes ?? 'all'}-r${repeats}.json`;
  const file = join(dir, 'profiles', key);
  if (existsSync(file)) {
    try {
      const p = JSON.parse(readFileSync(file, 'utf8')) as ProfileDoc;
      if (p.format === PROFILE_FORMAT && p.model.sha256 === a.model.sha256 && p.model.blocks.length === a.blocks.length) {
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
