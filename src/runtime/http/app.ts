/**
 * A host's HTTP API (express). Every host: health, metrics, status, its profile, its links, and the
 * token-protected control calls peers make (prepare a segment). The origin host adds the Open Inference
 * Protocol gateway and the plan and topology endpoints. Errors are `{"error": "..."}` with the status the
 * error's code carries.
 */
import express, { type NextFunction, type Request, type Response } from 'express';
import { CleaveError, isCleaveError, errorMessage } from '../../errors.js';
import { checkEmulationSettings } from '../../transport/emulator.js';
import { tokenMatches } from '../../transport/handshake.js';
import { describeRoute } from '../plan/coordinator.js';
import type { Host } from '../host/host.js';
import { mountGateway } from './gateway.js';
import { heapFlags } from '../process/node-flags.js';

export function buildApp(host: Host): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  const json = express.json({ limit: '1mb' });
  const internal = (req: Request, _res: Response, next: NextFunction): void => {
    if (!tokenMatches(req.headers.authorization, host.token)) return next(new CleaveError('E_UNAUTHORIZED', 'peer token missing or wrong'));
    next();
  };

  app.get('/v2/health/live', (_req, res) => {
    res.status(200).json({ live: true });
  });
  app.get('/v2/health/ready', (_req, res) => {
    res.status(host.ready ? 200 : 503).json({ ready: host.ready });
  });
  app.get('/metrics', async (_req, res, next) => {
    try {
      host.linkViews();
      res.type(host.metrics.registry.contentType).send(await host.metrics.registry.metrics());
    } catch (e) {
      next(e);
    }
  });
  app.get('/v1/status', (_req, res) => {
    res.json(status(host));
  });
  app.get('/v1/profile', (_req, res) => {
    res.json(host.profile);
  });
  app.get('/v1/links', (_req, res) => {
    res.json(host.linkViews());
  });
  app.post('/v1/segments', internal, json, async (req, res, next) => {
    try {
      const { from, to } = (req.body ?? {}) as { from?: unknown; to?: unknown };
      if (!Number.isInteger(from) || !Number.isInteger(to)) throw new CleaveError('E_BAD_INPUT', 'body must be {"from": int, "to": int}');
      const t0 = performance.now();
      await host.prepareLocal(from as number, to as number);
      res.json({ host: host.self.name, from, to, warm: true, ms: Math.round(performance.now() - t0) });
    } catch (e) {
      next(e);
    }
  });
  // Emulated link settings. Any host accepts the call and forwards it to the link's sending host, where
  // the emulator sits.
  // strict: false so that a bare `null` (emulation off) is accepted as a body.
  app.put('/v1/links/:from/:to', express.json({ limit: '64kb', strict: false }), async (req, res, next) => {
    try {
      const { from, to } = req.params;
      const settings = linkSettings(req.body);
      if (from !== host.self.name) {
        res.json(await host.peerRequest(from, 'PUT', `/v1/links/${encodeURIComponent(from)}/${encodeURIComponent(to)}`, req.body));
        return;
      }
      if (!host.mesh.has(to)) throw new CleaveError('E_BAD_INPUT', `no link from ${from} to '${to}'`);
      host.mesh.to(to).setEmulation(settings);
      host.log.info({ link: `${from}->${to}`, settings }, 'link emulation changed');
      res.json({ from, to, emulation: host.mesh.to(to).getEmulation() });
    } catch (e) {
      next(e);
    }
  });

  if (host.coordinator) {
    const c = host.coordinator;
    app.get('/v1/plan', async (_req, res, next) => {
      try {
        const p = c.current;
        if (!p) throw new CleaveError('E_NOT_READY', 'no plan yet: the deployment is starting');
        const statuses = await allStatuses(host);
        const links = await host.allLinks().catch(() => []);
        res.json({
          epoch: p.epoch,
          pinned: p.pinned,
          adoptedAt: p.adoptedAt,
          reason: p.reason,
          route: describeRoute(p.route),
          predicted: { latencyMs: p.predicted.latencyMs, throughputRps: p.predicted.throughputRps, computeMs: p.predicted.computeMs, transferMs: p.predicted.transferMs },
          stages: p.route.map((s) => {
            const predicted = p.predicted.stages.find((x) => x.host === s.host);
            const st = statuses.find((x): x is HostStatus => x.host === s.host && !('error' in x));
            return {
              host: s.host,
              tier: s.tier,
              nodes: [s.from, s.to],
              blocks: predicted ? [predicted.start, predicted.end] : null,
              predictedComputeMs: predicted?.computeMs ?? 0,
              measuredComputeMs: st?.segments[`${s.from}-${s.to}`]?.meanMs ?? null,
            };
          }),
          hops: p.predicted.hops.map((h) => {
            const l = links.find((x) => x.from === h.from && x.to === h.to);
            return { ...h, measuredRttMs: l?.rttMs ?? null, measuredThroughputBps: l?.throughputBps ?? null };
          }),
        });
      } catch (e) {
        next(e);
      }
    });
    app.get('/v1/plans', (_req, res) => {
      res.json(c.plans.map((p) => ({ epoch: p.epoch, route: describeRoute(p.route), pinned: p.pinned, adoptedAt: p.adoptedAt, reason: p.reason, predictedLatencyMs: p.predicted.latencyMs })));
    });
    app.put('/v1/plan', json, async (req, res, next) => {
      try {
        const stages = (req.body as { stages?: unknown })?.stages;
        if (!Array.isArray(stages)) throw new CleaveError('E_BAD_INPUT', 'body must be {"stages": [{"host": NAME, "blocks": [a, b]}, ...]}');
        const parsed = stages.map((s, i) => {
          const o = s as { host?: unknown; blocks?: unknown };
          if (typeof o?.host !== 'string' || !Array.isArray(o.blocks) || o.blocks.length !== 2 || !o.blocks.every((b) => Number.isInteger(b)))
            throw new CleaveError('E_BAD_INPUT', `stages[${i}]: expected {"host": NAME, "blocks": [a, b]} with integer a and b, got ${JSON.stringify(s)}`);
          return { host: o.host, blocks: [o.blocks[0], o.blocks[1]] as [number, number] };
        });
        const p = await c.pin(parsed);
        res.json({ epoch: p.epoch, route: describeRoute(p.route), pinned: true, predictedLatencyMs: p.predicted.latencyMs });
      } catch (e) {
        next(e);
      }
    });
    app.delete('/v1/plan', async (_req, res, next) => {
      try {
        const p = await c.unpin();
        res.json({ epoch: p.epoch, route: describeRoute(p.route), pinned: false, predictedLatencyMs: p.predicted.latencyMs });
      } catch (e) {
        next(e);
      }
    });
    app.get('/v1/topology', async (_req, res, next) => {
      try {
        res.json({ tiers: host.config.tiers, hosts: await allStatuses(host), links: await host.allLinks() });
      } catch (e) {
        next(e);
      }
    });
    mountGateway(app, host);
  }

  app.use((_req: Request, _res: Response, next: NextFunction) => next(new CleaveError('E_BAD_INPUT', 'no such endpoint')));
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const e = toCleaveError(err);
    if (e.status >= 500) host.log.warn({ path: req.path, err: e.message }, 'request failed');
    const status = e.message === 'no such endpoint' ? 404 : e.status;
    res.status(status).json({ error: e.message, code: e.code });
  });
  return app;
}

/** express's own errors (body too large, malformed JSON) as typed errors. */
export function toCleaveError(err: unknown): CleaveError {
  if (isCleaveError(err)) return err;
  const e = err as { type?: string; status?: number; message?: string; limit?: number };
  if (e?.type === 'entity.too.large') return new CleaveError('E_TOO_LARGE', `request body is larger than the ${e.limit} byte limit`);
  if (e?.type === 'entity.parse.failed') return new CleaveError('E_BAD_INPUT', `malformed JSON body: ${e.message}`);
  if (e?.status && e.status >= 400 && e.status < 500) return new CleaveError('E_BAD_INPUT', e.message ?? 'bad request');
  return new CleaveError('E_INTERNAL', errorMessage(err));
}

function linkSettings(body: unknown): ReturnType<typeof checkEmulationSettings> {
  try {
    return linkSettingsUnchecked(body);
  } catch (e) {
    throw new CleaveError('E_BAD_INPUT', `link settings: ${errorMessage(e)}`);
  }
}

function linkSettingsUnchecked(body: unknown): ReturnType<typeof checkEmulationSettings> {
  // Accept Mbit/s for people ({"mbps": 10, "delayMs": 5}) as well as the emulator's own bytes per second.
  const b = (body ?? {}) as Record<string, unknown>;
  if (b.off === true || body === null) return null;
  if (b.mbps !== undefined) {
    if (typeof b.mbps !== 'number' || !(b.mbps > 0)) throw new CleaveError('E_BAD_INPUT', 'mbps must be a positive number');
    const { mbps, ...rest } = b;
    return checkEmulationSettings({ delayMs: 0, ...rest, bandwidthBps: (mbps * 1e6) / 8 });
  }
  return checkEmulationSettings({ delayMs: 0, bandwidthBps: null, ...b });
}

/** Every host's status: this one's directly, the others' over their API (`{host, error}` when unreachable). */
async function allStatuses(host: Host): Promise<(HostStatus | { host: string; error: string })[]> {
  return Promise.all(
    host.config.hosts.map((h) =>
      h.name === host.self.name
        ? Promise.resolve(status(host))
        : (host.peerRequest(h.name, 'GET', '/v1/status') as Promise<HostStatus>).catch((e) => ({ host: h.name, error: errorMessage(e) })),
    ),
  );
}

export type HostStatus = ReturnType<typeof status>;

export function status(host: Host): {
  host: string;
  tier: string;
  ready: boolean;
  cpuPercent: number | null;
  inFlight: number;
  busy: number;
  threads: number;
  heapFlags: string[];
  segments: Record<string, { warm: boolean; meanMs: number | null }>;
} {
  const segments: Record<string, { warm: boolean; meanMs: number | null }> = {};
  for (const key of host.executor.keys()) {
    const range = key.split(':')[1];
    segments[range] = { warm: host.executor.isWarm(key), meanMs: host.pipeline.meanComputeMs(range) };
  }
  return {
    host: host.self.name,
    tier: host.self.tier,
    ready: host.ready,
    cpuPercent: host.load.cpuPercent,
    inFlight: host.pipeline.inFlight,
    busy: host.pipeline.busy,
    threads: host.self.threads ?? 1,
    heapFlags: heapFlags(),
    segments,
  };
}
