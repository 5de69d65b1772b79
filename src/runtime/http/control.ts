/**
 * The control API. Every host: its status, profile and links, emulated link settings, and the
 * token-protected call peers make to prepare a segment. The origin adds the plan endpoints and the topology.
 * Changes need a credential and reads follow the read policy (access.ts).
 */
import express, { type NextFunction, type Request, type RequestHandler, type Response, type Router } from 'express';
import { CleaveError, errorMessage } from '../../errors.js';
import type { Profile } from '../../planner/profile.js';
import { CODECS, codecListProblem, isCodec } from '../../transport/codec.js';
import { checkEmulationSettings, type EmulationSettings } from '../../transport/emulator.js';
import { checkCredential, checkOrigin, checkRead, type AccessPolicy } from './access.js';
import { verifyJsonDepth } from './json-depth.js';
import type { RuntimeLimits } from '../defaults.js';
import type { ClusterView, HostStatus, LinkReport } from '../plan/cluster-view.js';
import type { ActivePlan, Coordinator } from '../plan/coordinator.js';
import type { AdaptiveState } from '../plan/adaptive.js';
import type { LatencyStats } from '../plan/latency-window.js';
import { planView } from '../plan/plan-view.js';
import { describeRoute } from '../plan/route.js';
import type { RouteStage } from '../../transport/frame.js';

/** What the control API needs of a host. */
export interface ControlDeps {
  readonly self: string;
  /** Who may change and read: the control and peer tokens and the read policy. */
  readonly access: AccessPolicy;
  readonly limits: Pick<RuntimeLimits, 'maxControlBodyBytes'>;
  status(): HostStatus;
  /** This host's profile of `model` (absent: the default model); E_UNKNOWN_MODEL for a model not served. */
  profile(model?: string): Profile;
  /** This host's outgoing links. */
  links(): LinkReport[];
  /**
   * Builds and warms node range `[from, to)` here; `route`, when given, is the plan's whole route, which the
   * host then accepts in infer frames (it must have this host's stage `[from, to)` on it).
   */
  prepareSegment(from: number, to: number, route?: RouteStage[], model?: string): Promise<void>;
  /** Releases every segment session of `model` here (it is unloaded); returns how many there were. */
  releaseSegments(model?: string): number;
  /**
   * Loads repository model `name` here while serving (the origin loading a model the config does not list):
   * analysed and profiled off the event loop; resolves with its sha256 and block count. Absent: refused.
   */
  addModel?(name: string): Promise<{ name: string; sha256: string; blocks: number }>;
  /** Whether this host has a link to `to`. */
  hasLink(to: string): boolean;
  /** Sets (null: removes) the emulation of this host's link to `to`; returns what is in force. */
  setLinkEmulation(to: string, settings: EmulationSettings | null): EmulationSettings | null;
  /** A control call to another host's API (authenticated). */
  forward(host: string, method: string, path: string, body?: unknown): Promise<unknown>;
  /** Present on the origin only: the default model's plan endpoints. */
  readonly plan?: PlanDeps;
  /** Another served model's (`?model=NAME`); E_UNKNOWN_MODEL for a model not served. Absent: only the default's. */
  planFor?(model: string): PlanDeps;
}

/** What the plan endpoints need (the origin only). */
export interface PlanDeps {
  /** The model these endpoints plan. */
  readonly model?: string;
  readonly tiers: readonly string[];
  readonly coordinator: Pick<Coordinator, 'current' | 'plans' | 'pin' | 'unpin'>;
  readonly cluster: ClusterView;
  /** The adaptive controller: its state and settings, changed live (validated, E_BAD_INPUT naming the field). */
  readonly adaptive?: { state(): AdaptiveState; update(partial: unknown): unknown };
  /** Measured end-to-end latency of the requests of `epoch` over the latency window. */
  measured?(epoch: number): LatencyStats;
}

type Handler = (req: Request, res: Response) => Promise<void> | void;

/** An async handler whose failures reach the error handler. */
function handle(fn: Handler): RequestHandler {
  return (req: Request, res: Response, next: NextFunction): void => {
    Promise.resolve()
      .then(() => fn(req, res))
      .catch(next);
  };
}

export function controlRoutes(d: ControlDeps): Router {
  const r = express.Router();
  const json = express.json({ limit: d.limits.maxControlBodyBytes, verify: verifyJsonDepth });
  const internal = guard((req) => checkOrigin(req, d.access));
  // Reads of /v1 follow the read policy; changes need a credential (before their body is read).
  const read = guard((req, what) => checkRead(req, d.access, what));
  r.use('/v1', (req, res, next) => (req.method === 'GET' || req.method === 'HEAD' ? read(req, res, next) : next()));
  const operator = guard((req, what) => checkCredential(req, d.access, what));

  r.get('/v1/status', (_req, res) => {
    res.json(d.status());
  });
  r.get('/v1/profile', (req, res) => {
    res.json(d.profile(modelQuery(req)));
  });
  r.get('/v1/links', (_req, res) => {
    res.json(d.links());
  });
  r.post(
    '/v1/segments',
    internal,
    json,
    handle(async (req, res) => {
      const b = (req.body ?? {}) as { from?: unknown; to?: unknown; route?: unknown; model?: unknown };
      const { from, to, route, model } = b;
      if (!Number.isInteger(from) || !Number.isInteger(to))
        throw new CleaveError(
          'E_BAD_INPUT',
          'body must be {"from": int, "to": int, "route"?: [stage...], "model"?: NAME}',
        );
      onlyFields(req.body as Record<string, unknown>, ['from', 'to', 'route', 'model'], '');
      if (model !== undefined && typeof model !== 'string')
        throw new CleaveError('E_BAD_INPUT', 'model: expected a model name');
      const t0 = performance.now();
      await d.prepareSegment(
        from as number,
        to as number,
        route === undefined ? undefined : routeBody(route),
        model as string | undefined,
      );
      res.json({ host: d.self, from, to, warm: true, ms: Math.round(performance.now() - t0) });
    }),
  );
  // The origin loading a repository model the deployment did not serve: this host reads and profiles it.
  r.post(
    '/v1/models',
    internal,
    json,
    handle(async (req, res) => {
      const body = (req.body ?? {}) as Record<string, unknown>;
      if (typeof body !== 'object' || Array.isArray(body) || typeof body.name !== 'string' || body.name === '')
        throw new CleaveError('E_BAD_INPUT', 'body must be {"name": MODEL}');
      onlyFields(body, ['name'], '');
      if (!d.addModel) throw new CleaveError('E_UNSUPPORTED', 'this host cannot load a model while it serves');
      const t0 = performance.now();
      const m = await d.addModel(body.name);
      res.json({ host: d.self, ...m, ms: Math.round(performance.now() - t0) });
    }),
  );
  // The origin unloading the model: every session here goes (each once the runs sent to it finish).
  r.delete(
    '/v1/segments',
    internal,
    handle((req, res) => {
      res.json({ host: d.self, released: d.releaseSegments(modelQuery(req)) });
    }),
  );
  // Emulated link settings. Any host accepts the call and forwards it to the link's sending host, where the
  // emulator sits. strict: false so that a bare `null` (emulation off) is accepted as a body.
  r.put(
    '/v1/links/:from/:to',
    operator,
    express.json({ limit: d.limits.maxControlBodyBytes, strict: false, verify: verifyJsonDepth }),
    handle(async (req, res) => {
      const from = String(req.params.from);
      const to = String(req.params.to);
      const settings = linkSettings(req.body);
      if (from !== d.self) {
        res.json(
          await d.forward(from, 'PUT', `/v1/links/${encodeURIComponent(from)}/${encodeURIComponent(to)}`, req.body),
        );
        return;
      }
      if (!d.hasLink(to)) throw new CleaveError('E_BAD_INPUT', `no link from ${from} to '${to}'`);
      res.json({ from, to, emulation: d.setLinkEmulation(to, settings) });
    }),
  );
  const plan = d.plan;
  if (plan) {
    const pick = (req: Request): PlanDeps => {
      const m = modelQuery(req);
      if (m === undefined) return plan;
      if (!d.planFor) throw new CleaveError('E_UNKNOWN_MODEL', `model '${m}': this host serves one model only`);
      return d.planFor(m);
    };
    mountPlan(r, plan, pick, json, operator);
  }
  return r;
}

/** The `?model=NAME` of a control call (absent: the default model); a repeated or empty one is refused. */
function modelQuery(req: Request): string | undefined {
  const m = req.query.model;
  if (m === undefined) return undefined;
  if (typeof m !== 'string' || m === '')
    throw new CleaveError('E_BAD_INPUT', 'model: expected ?model=NAME once, with a model name');
  return m;
}

/** A route as `POST /v1/segments` carries it: stages of `{host, tier, from, to}`, each field checked. */
function routeBody(v: unknown): RouteStage[] {
  if (!Array.isArray(v) || v.length === 0 || v.length > 64)
    throw new CleaveError('E_BAD_INPUT', 'route: expected an array of 1 to 64 stages');
  return v.map((s: unknown, i) => {
    const at = `route[${i}]`;
    if (typeof s !== 'object' || s === null || Array.isArray(s))
      throw new CleaveError('E_BAD_INPUT', `${at}: expected {"host", "tier", "from", "to", "codec"?}`);
    const o = s as Record<string, unknown>;
    onlyFields(o, ['host', 'tier', 'from', 'to', 'codec'], `${at}.`);
    for (const k of ['host', 'tier'])
      if (typeof o[k] !== 'string') throw new CleaveError('E_BAD_INPUT', `${at}.${k}: expected a string`);
    for (const k of ['from', 'to'])
      if (!Number.isInteger(o[k]) || (o[k] as number) < 0)
        throw new CleaveError('E_BAD_INPUT', `${at}.${k}: expected a non-negative integer`);
    if (o.codec !== undefined && !isCodec(o.codec))
      throw new CleaveError('E_BAD_INPUT', `${at}.codec: expected one of ${CODECS.join(', ')}`);
    const stage: RouteStage = {
      host: o.host as string,
      tier: o.tier as string,
      from: o.from as number,
      to: o.to as number,
    };
    if (o.codec !== undefined && o.codec !== 'raw') stage.codec = o.codec;
    return stage;
  });
}

/** Throws E_BAD_INPUT naming the first field of `o` not in `known` (`at` prefixes its path). */
function onlyFields(o: Record<string, unknown>, known: readonly string[], at: string): void {
  const extra = Object.keys(o).find((k) => !known.includes(k));
  if (extra !== undefined)
    throw new CleaveError('E_BAD_INPUT', `${at}${extra}: unknown field (expected ${known.join(', ')})`);
}

/**
 * A middleware that runs `check` (told what the request is, `METHOD /path`, for its messages) and passes what
 * it throws on as the request's error.
 */
function guard(check: (req: Request, what: string) => void): RequestHandler {
  return (req, _res, next) => {
    try {
      check(req, `${req.method} ${req.originalUrl.split('?')[0]}`);
    } catch (e) {
      return next(e);
    }
    next();
  };
}

function mountPlan(
  r: Router,
  defaults: PlanDeps,
  pick: (req: Request) => PlanDeps,
  json: RequestHandler,
  operator: RequestHandler,
): void {
  const brief = (a: ActivePlan, pinned: boolean): object => ({
    epoch: a.epoch,
    route: describeRoute(a.route),
    pinned,
    predictedLatencyMs: a.predicted.latencyMs,
  });
  r.get(
    '/v1/plan',
    handle(async (req, res) => {
      const p = pick(req);
      const a = p.coordinator.current;
      if (!a) throw new CleaveError('E_NOT_READY', 'no plan yet: the deployment is starting');
      const [statuses, links] = await Promise.all([p.cluster.statuses(), p.cluster.links().catch(() => [])]);
      res.json({
        ...(p.model !== undefined ? { model: p.model } : {}),
        ...planView(a, statuses, links),
        measured: p.measured?.(a.epoch) ?? null,
        controller: p.adaptive?.state() ?? null,
      });
    }),
  );
  r.get(
    '/v1/plans',
    handle((req, res) => {
      res.json(
        pick(req).coordinator.plans.map((a) => ({
          epoch: a.epoch,
          route: describeRoute(a.route),
          pinned: a.pinned,
          adoptedAt: a.adoptedAt,
          reason: a.reason,
          predictedLatencyMs: a.predicted.latencyMs,
        })),
      );
    }),
  );
  r.put(
    '/v1/plan',
    operator,
    json,
    handle(async (req, res) => {
      const c = pick(req).coordinator;
      const body = req.body as Record<string, unknown> | null;
      const stages = body?.stages;
      if (!Array.isArray(stages))
        throw new CleaveError('E_BAD_INPUT', 'body must be {"stages": [{"host": NAME, "blocks": [a, b]}, ...]}');
      onlyFields(body as Record<string, unknown>, ['stages'], '');
      const parsed = stages.map((s, i) => {
        const o = s as { host?: unknown; blocks?: unknown };
        if (o !== null && typeof o === 'object' && !Array.isArray(o))
          onlyFields(o as Record<string, unknown>, ['host', 'blocks'], `stages[${i}].`);
        if (
          typeof o?.host !== 'string' ||
          !Array.isArray(o.blocks) ||
          o.blocks.length !== 2 ||
          !o.blocks.every((b) => Number.isInteger(b))
        )
          throw new CleaveError(
            'E_BAD_INPUT',
            `stages[${i}]: expected {"host": NAME, "blocks": [a, b]} with integer a and b, got ${JSON.stringify(s)}`,
          );
        return { host: o.host, blocks: [o.blocks[0], o.blocks[1]] as [number, number] };
      });
      res.json(brief(await c.pin(parsed), true));
    }),
  );
  r.delete(
    '/v1/plan',
    operator,
    handle(async (req, res) => {
      res.json(brief(await pick(req).coordinator.unpin(), false));
    }),
  );
  if (defaults.adaptive) {
    const adaptiveOf = (req: Request): NonNullable<PlanDeps['adaptive']> => {
      const a = pick(req).adaptive;
      if (!a) throw new CleaveError('E_UNSUPPORTED', 'this model has no adaptive controller');
      return a;
    };
    r.get(
      '/v1/controller',
      handle((req, res) => {
        res.json(adaptiveOf(req).state());
      }),
    );
    r.put(
      '/v1/controller',
      operator,
      json,
      handle((req, res) => {
        const adaptive = adaptiveOf(req);
        const problem = codecListProblem((req.body as { codecs?: unknown } | null)?.codecs);
        if (problem) throw new CleaveError('E_BAD_INPUT', problem);
        adaptive.update(req.body);
        res.json(adaptive.state());
      }),
    );
  }
  r.get(
    '/v1/topology',
    handle(async (_req, res) => {
      const [hosts, links] = await Promise.all([defaults.cluster.statuses(), defaults.cluster.links()]);
      res.json({ tiers: defaults.tiers, hosts, links });
    }),
  );
}

function linkSettings(body: unknown): EmulationSettings | null {
  try {
    return linkSettingsUnchecked(body);
  } catch (e) {
    throw new CleaveError('E_BAD_INPUT', `link settings: ${errorMessage(e)}`);
  }
}

/** The fields a link body may have (besides `off`). */
const LINK_FIELDS = new Set(['mbps', 'bandwidthBps', 'delayMs', 'burstBytes']);
const LINK_SHAPE = 'expected null, {"off": true} or {"mbps" or "bandwidthBps", "delayMs", "burstBytes"}';

function linkSettingsUnchecked(body: unknown): EmulationSettings | null {
  // Accept Mbit/s for people ({"mbps": 10, "delayMs": 5}) as well as the emulator's own bytes per second.
  // Strict: anything but null or an object of known fields is refused, never read as "emulation off".
  if (body === null) return null;
  if (typeof body !== 'object' || Array.isArray(body))
    throw new CleaveError('E_BAD_INPUT', `${LINK_SHAPE}, got ${Array.isArray(body) ? 'a list' : JSON.stringify(body)}`);
  const b = body as Record<string, unknown>;
  const keys = Object.keys(b);
  if ('off' in b) {
    if (b.off !== true) throw new CleaveError('E_BAD_INPUT', `off: must be true, got ${JSON.stringify(b.off)}`);
    if (keys.length > 1)
      throw new CleaveError('E_BAD_INPUT', `off: comes alone, not with ${keys.filter((k) => k !== 'off').join(', ')}`);
    return null;
  }
  const unknown = keys.filter((k) => !LINK_FIELDS.has(k));
  if (unknown.length > 0) throw new CleaveError('E_BAD_INPUT', `unknown field '${unknown[0]}' (${LINK_SHAPE})`);
  if (keys.length === 0) throw new CleaveError('E_BAD_INPUT', `the body names no setting (${LINK_SHAPE})`);
  if (b.mbps !== undefined && b.bandwidthBps !== undefined)
    throw new CleaveError('E_BAD_INPUT', 'mbps, bandwidthBps: give one of them, not both');
  if (b.mbps !== undefined) {
    if (typeof b.mbps !== 'number' || !(b.mbps > 0))
      throw new CleaveError('E_BAD_INPUT', 'mbps must be a positive number');
    const { mbps, ...rest } = b;
    return checkEmulationSettings({ delayMs: 0, ...rest, bandwidthBps: (mbps * 1e6) / 8 });
  }
  return checkEmulationSettings({ delayMs: 0, bandwidthBps: null, ...b });
}
