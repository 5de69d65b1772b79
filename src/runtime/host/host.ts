/**
 * One Cleave host process: it serves HTTP and peer WebSockets on one port, holds the deployment's model,
 * runs its segments in ORT worker threads, and passes frontier tensors to the next stage. The origin
 * (device) host also answers inference requests and plans. `Host.start` does everything in order: load and
 * analyse the model, profile (or load the cached profile), start the executor, listen, dial the peers.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import { CleaveError } from '../../errors.js';
import { resolveInputs } from '../../graph/shapes.js';
import { PeerServer } from '../../transport/peer-server.js';
import type { IncomingFrame } from '../../transport/incoming.js';
import { analyze, type Analysis } from '../local/analysis.js';
import { parseListen, peerToken, type DeploymentConfig, type HostConfig } from '../config.js';
import { Coordinator, type LinkView } from '../plan/coordinator.js';
import { Executor } from '../executor/executor.js';
import { resolveLimits, type RuntimeLimits } from '../defaults.js';
import { HostMetrics } from './metrics.js';
import { loadRepoModel, type RepoModel } from '../model-repo.js';
import { PeerMesh } from './peer-mesh.js';
import { Pipeline } from './pipeline.js';
import { profileModel, PROFILE_FORMAT, type ProfileDoc } from '../local/profiler.js';
import { SegmentSessions } from './segments.js';
import { buildApp } from '../http/app.js';
import { LoadSampler } from './load.js';

/** Timed throughput samples each link needs before the first plan (the first ones after a link opens are rough). */
const STARTUP_SAMPLES = 3;

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

export class Host {
  readonly self: HostConfig;
  readonly limits: RuntimeLimits;
  readonly metrics: HostMetrics;
  readonly mesh: PeerMesh;
  readonly pipeline: Pipeline;
  readonly coordinator: Coordinator | null;
  readonly load: LoadSampler;
  /** Segment `[from, to)` this host was last asked to prepare: readiness means it is warm. */
  private current: { start: number; end: number } | null = null;
  private readonly peerProfiles = new Map<string, ProfileDoc>();
  private closed = false;

  private constructor(
    readonly config: DeploymentConfig,
    readonly repoModel: RepoModel,
    readonly analysis: Analysis,
    readonly profile: ProfileDoc,
    readonly executor: Executor,
    readonly segments: SegmentSessions,
    readonly server: http.Server,
    readonly peerServer: PeerServer,
    readonly token: string,
    readonly log: Logger,
    self: HostConfig,
    mesh: PeerMesh,
    pipeline: Pipeline,
    metrics: HostMetrics,
  ) {
    this.self = self;
    this.limits = resolveLimits(config.limits);
    this.metrics = metrics;
    this.mesh = mesh;
    this.pipeline = pipeline;
    this.load = new LoadSampler(this.limits.loadSampleMs);
    const tiers = config.tiers ?? ['device', 'edge', 'cloud'];
    this.coordinator =
      self.tier === tiers[0]
        ? new Coordinator({
            self: { name: self.name, tier: self.tier },
            tiers,
            hosts: config.hosts.map((h) => ({ name: h.name, tier: h.tier })),
            blocks: analysis.blocks,
            profiles: () => this.allProfiles(),
            links: () => this.allLinks(),
            prepare: (host, from, to) => this.prepareOn(host, from, to),
            logger: log,
          })
        : null;
  }

  static async start(o: HostStartOptions): Promise<Host> {
    const self = o.config.hosts.find((h) => h.name === o.name);
    if (!self) throw new CleaveError('E_BAD_INPUT', `--name ${o.name}: not a host of the config (hosts: ${o.config.hosts.map((h) => h.name).join(', ')})`);
    const log = (o.logger ?? pino({ level: process.env.LOG_LEVEL ?? 'info' })).child({ host: self.name, tier: self.tier });
    const limits = resolveLimits(o.config.limits);
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

    // The pipeline and the mesh refer to each other through the frame handler; `host` is set before any
    // frame can arrive (frames need the listening socket, which opens below).
    let host: Host | null = null;
    const onFrame = (f: IncomingFrame): void => host?.pipeline.onFrame(f);
    const mesh = new PeerMesh({
      self,
      peers: o.config.hosts.filter((h) => h.name !== self.name),
      token,
      modelSha256: model.sha256,
      links: o.config.links ?? [],
      onFrame,
      onLost: (peer, ids) => host?.pipeline.failLost(peer, ids),
      logger: log,
      transport: o.config.transport,
    });
    const pipeline = new Pipeline({
      self: self.name,
      segments,
      mesh,
      metrics,
      logger: log,
      outputs: model.outputs.map((x) => x.name),
      maxInFlight: limits.maxInFlight,
    });
    const server = http.createServer();
    const peerServer = await PeerServer.listen({
      self: { host: self.name, tier: self.tier },
      modelSha256: model.sha256,
      token,
      onFrame,
      server,
      logger: log,
      options: o.config.transport,
    });
    host = new Host(o.config, entry, analysis, profile, executor, segments, server, peerServer, token, log, self, mesh, pipeline, metrics);
    server.on('request', buildApp(host));
    const { host: addr, port } = parseListen(self.listen, `${self.name}.listen`);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, addr, () => {
        server.off('error', reject);
        resolve();
      });
    });
    host.load.start();
    log.info({ listen: `${addr}:${(server.address() as AddressInfo).port}` }, 'listening');
    return host;
  }

  get isOrigin(): boolean {
    return this.coordinator !== null;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** Live: the process serves. Ready: the origin has a committed plan; others have their segment warm. */
  get ready(): boolean {
    if (this.closed) return false;
    if (this.coordinator) return this.coordinator.current !== null;
    return this.current === null || this.segments.isWarm(this.current);
  }

  /**
   * The origin's start-up planning: wait for every link to open and be measured (RTT and throughput from
   * real traffic and probes), then plan and commit the first epoch.
   */
  async planAtStartup(): Promise<void> {
    if (!this.coordinator) return;
    const until = Date.now() + this.limits.startupTimeoutMs;
    await this.mesh.whenAllOpen(this.limits.startupTimeoutMs).catch(() => undefined);
    for (;;) {
      const links = await this.allLinks().catch(() => [] as LinkView[]);
      const measured = links.filter((l) => l.rttMs !== null && l.throughputBps !== null && (l.throughputSamples ?? 0) >= STARTUP_SAMPLES).length;
      const wanted = this.config.hosts.length * (this.config.hosts.length - 1);
      if (measured >= wanted || Date.now() > until) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    await this.coordinator.replan('start-up');
  }

  /** Prepare (build and warm) a segment here; once it is warm, it is the one readiness depends on. */
  async prepareLocal(start: number, end: number): Promise<void> {
    await this.segments.prepare({ start, end });
    this.current = { start, end };
  }

  private async prepareOn(host: string, from: number, to: number): Promise<void> {
    if (host === this.self.name) return this.prepareLocal(from, to);
    await this.peerRequest(host, 'POST', '/v1/segments', { from, to });
  }

  /** Outgoing link measurements of this host. */
  linkViews(): (LinkView & { state: string; bytesSent: number; queuedBytes: number; emulation: unknown })[] {
    return this.mesh.all().map((l) => {
      const s = l.stats();
      const to = l.name.split('->')[1] ?? '';
      this.metrics.linkRtt.set({ from: this.self.name, to }, s.rttMs ?? 0);
      this.metrics.linkThroughput.set({ from: this.self.name, to }, s.throughputBps ?? 0);
      return { from: this.self.name, to, rttMs: s.rttMs, throughputBps: s.throughputBps, throughputSamples: s.throughputSamples, state: s.state, bytesSent: s.bytesSent, queuedBytes: s.queuedBytes, emulation: l.getEmulation() };
    });
  }

  /** Hosts the origin can plan with now: itself and every peer whose link from here is open. */
  private reachablePeers(): HostConfig[] {
    return this.config.hosts.filter((h) => h.name !== this.self.name && this.mesh.has(h.name) && this.mesh.to(h.name).state === 'open');
  }

  /** Profiles of the reachable hosts (a peer's profile is fetched once; it only changes with a restart). */
  async allProfiles(): Promise<ProfileDoc[]> {
    const got = await Promise.all(
      this.reachablePeers().map(async (h) => {
        const cached = this.peerProfiles.get(h.name);
        if (cached) return cached;
        try {
          const p = (await this.peerRequest(h.name, 'GET', '/v1/profile')) as ProfileDoc;
          this.peerProfiles.set(h.name, p);
          return p;
        } catch (e) {
          this.log.warn({ peer: h.name, err: (e as Error).message }, 'no profile from peer; planning without it');
          return null;
        }
      }),
    );
    return [this.profile, ...got.filter((p): p is ProfileDoc => p !== null)];
  }

  /** Link measurements: this host's own and those of every reachable peer that answers. */
  async allLinks(): Promise<LinkView[]> {
    const got = await Promise.all(this.reachablePeers().map((h) => (this.peerRequest(h.name, 'GET', '/v1/links') as Promise<LinkView[]>).catch(() => [] as LinkView[])));
    return [...this.linkViews(), ...got.flat()];
  }

  /** An authenticated control-plane call to another host's HTTP API. */
  async peerRequest(host: string, method: string, path: string, body?: unknown): Promise<unknown> {
    const h = this.config.hosts.find((x) => x.name === host);
    if (!h) throw new CleaveError('E_BAD_INPUT', `'${host}' is not a host of this deployment`);
    let res: Response;
    try {
      res = await fetch(`http://${h.listen}${path}`, {
        method,
        headers: { authorization: `Bearer ${this.token}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.limits.startupTimeoutMs),
      });
    } catch (e) {
      throw new CleaveError('E_PEER_GONE', `${host}: ${method} ${path} failed: ${(e as Error).message}`);
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = { error: text };
    }
    if (!res.ok) {
      const msg = (json as { error?: string }).error ?? res.statusText;
      throw new CleaveError(res.status === 404 ? 'E_BAD_INPUT' : res.status >= 500 ? 'E_PEER_GONE' : 'E_BAD_INPUT', `${host}: ${msg}`);
    }
    return json;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.load.stop();
    this.pipeline.failAll(`${this.self.name} is shutting down`);
    await this.mesh.close();
    await this.peerServer.close();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    await this.executor.close();
  }
}

/** The host's profile: from the cache when this model, host, thread count and granularity were profiled. */
async function cachedProfile(dir: string, a: Analysis, self: HostConfig, threads: number, cfg: DeploymentConfig, log: Logger): Promise<ProfileDoc> {
  const g = cfg.granularity ?? {};
  const key = `${a.model.sha256.slice(0, 16)}-${self.name}-t${threads}-k${g.maxTensors ?? 'all'}-b${g.maxBytes ?? 'all'}.json`;
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
  const p = await profileModel(a, { host: self.name, tier: self.tier, threads, repeats: cfg.profile?.repeats ?? 5, warmup: cfg.profile?.warmup ?? 1 });
  mkdirSync(join(dir, 'profiles'), { recursive: true });
  writeFileSync(`${file}.tmp`, JSON.stringify(p));
  renameSync(`${file}.tmp`, file);
  log.info({ ms: Date.now() - t0, wholeModelMs: p.timings.wholeModelMs.medianMs }, 'profiled');
  return p;
}
