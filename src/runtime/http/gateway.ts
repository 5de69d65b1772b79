/**
 * The origin host's Open Inference Protocol (KServe v2) gateway: server and model metadata, readiness, and
 * inference with JSON tensors or the binary tensor data extension. Requests are validated against the
 * model's signature before anything reaches a worker; each takes the current plan (its epoch and route)
 * and carries it to the end.
 */
import express, { type Request, type RequestHandler, type Response, type NextFunction, type Router } from 'express';
import type { Logger } from 'pino';
import { CleaveError, isCleaveError } from '../../errors.js';
import type { TensorType } from '../../graph/cuts.js';
import type { RuntimeLimits } from '../defaults.js';
import { isTensorDType, type TensorDType, type TensorLike, type ValueInfo } from '../executor/tensors.js';
import type { HostMetrics } from '../host/metrics.js';
import type { Routed } from '../host/pipeline.js';
import { describeRoute } from '../plan/route.js';
import { inferBody } from './body.js';
import type { UnloadResult } from '../plan/lifecycle.js';
import { singleAuthorization } from '../../transport/handshake.js';
import { verifyJsonDepth } from './json-depth.js';
import {
  checkRepositoryChange,
  InferenceStats,
  modelConfig,
  modelStats,
  repositoryIndex,
  type RepoEntry,
} from './triton.js';
import {
  encodeInferResponse,
  modelMetadata,
  parseInferRequest,
  signatureOf,
  INFERENCE_HEADER,
  type ModelSignature,
} from './oip.js';

/** One model the gateway serves: its signature, the plan its requests take, and a way to run one. */
export interface ServedModel {
  readonly model: { readonly name: string; readonly version: string; readonly signature: ModelSignature };
  /** The model can answer: it has a plan whose every host is up, and it is loaded. */
  ready(): boolean;
  /** The plan new requests are stamped with; null before the first. */
  plan(): Routed | null;
  infer(plan: Routed, inputs: Record<string, TensorLike>, deadlineMs: number): Promise<Record<string, TensorLike>>;
  /** Told of every request that was stamped with a plan, answered or failed, and its latency. */
  answered?(epoch: number, ms: number, ok: boolean): void;
  /** Triton's statistics of this model, shared by every front end (HTTP and gRPC). */
  readonly stats: InferenceStats;
  /** Unloading and loading it (the repository extension); absent: refused. */
  readonly lifecycle?: ModelLifecycleDeps;
}

/** Unloading and loading one served model. */
export interface ModelLifecycleDeps {
  /** Why the model cannot answer now ('unloading', 'unloaded', 'loading'); null when loaded. */
  unavailable(): string | null;
  load(): Promise<unknown>;
  unload(): Promise<UnloadResult>;
}

/** What the gateway needs: the models it serves (the default first), and the server's own parts. */
export interface GatewayDeps {
  readonly models: readonly ServedModel[];
  readonly serverVersion: string;
  readonly limits: Pick<RuntimeLimits, 'maxBodyBytes' | 'deadlineMs'>;
  /** Every served model is ready (Triton's server readiness). */
  ready(): boolean;
  readonly metrics: Pick<HostMetrics, 'requestSuccess' | 'requestFailure' | 'requestDuration'>;
  /** The model repository extension; without it, the index lists the served models alone and load and unload are refused. */
  readonly repository?: RepositoryDeps;
  readonly log: Logger;
}

/** The model repository extension: the folder's models, and who may unload and load. */
export interface RepositoryDeps {
  models(): readonly RepoEntry[];
  /** Throws E_UNAUTHORIZED or E_FORBIDDEN unless `authorization` (the one header) is a control credential. */
  authorize(authorization: string | undefined, what: string): void;
  /**
   * Loads a model of the repository the deployment does not serve yet (every host reads and profiles it,
   * then it is planned and served); the hosts that could not be told. Absent: such a load is refused.
   */
  add?(name: string): Promise<{ failed: UnloadResult['failed'] }>;
}

/** The served model `name` (and `version`, when given and not ''); E_UNKNOWN_MODEL naming what is served. */
export function servedModel(d: GatewayDeps, name: string, version?: string): ServedModel {
  const m = d.models.find((x) => x.model.name === name);
  if (!m)
    throw new CleaveError(
      'E_UNKNOWN_MODEL',
      `unknown model '${name}' (this deployment serves ${d.models.map((x) => `'${x.model.name}'`).join(', ')})`,
    );
  if (version !== undefined && version !== '' && version !== m.model.version)
    throw new CleaveError('E_UNKNOWN_MODEL', `model '${name}' has no version '${version}' (has ${m.model.version})`);
  return m;
}

/** The served model a request's `:model` (and `:version`) path parameters name. */
function pickModel(d: GatewayDeps, req: Request): ServedModel {
  return servedModel(
    d,
    String(req.params.model),
    req.params.version === undefined ? undefined : String(req.params.version),
  );
}

/** Why a served model cannot answer, for the repository index: its load state, else readiness. */
export function servedUnavailable(m: ServedModel): string | null {
  return m.lifecycle?.unavailable() ?? (m.ready() ? null : 'not ready: no plan yet, or a host of the plan is down');
}

/** The repository index both front ends answer (`readyOnly`: the READY entries only). */
export function repositoryIndexOf(d: GatewayDeps, readyOnly: boolean): Record<string, string>[] {
  return repositoryIndex(
    d.models.map((m) => ({ signature: m.model.signature, unavailable: servedUnavailable(m) })),
    d.repository?.models() ?? [],
    readyOnly,
  );
}

/**
 * Who may unload or load (the front ends' shared check, before any body is read): `authorization` is the
 * request's one credential (null: it sent several). Returns the repository deps to change it through.
 */
export function authorizeChange(
  d: GatewayDeps,
  op: 'load' | 'unload',
  name: string,
  authorization: string | undefined | null,
): RepositoryDeps {
  if (authorization === null) throw new CleaveError('E_UNAUTHORIZED', 'more than one authorization credential');
  if (!d.repository) throw new CleaveError('E_UNSUPPORTED', `this deployment cannot ${op} its models`);
  d.repository.authorize(authorization, `${op} of model '${name}'`);
  return d.repository;
}

/** Unloads or loads a served model after checking which model and parameters (the front ends' shared step). */
export async function changeRepository(
  d: GatewayDeps,
  repo: RepositoryDeps,
  op: 'load' | 'unload',
  name: string,
  parameters: Readonly<Record<string, unknown>>,
): Promise<{ name: string; state: string; leftInFlight?: number; failed?: UnloadResult['failed'] }> {
  const served = d.models.map((m) => m.model.name);
  checkRepositoryChange(op, name, served, repo.models(), parameters, op === 'load' && repo.add !== undefined);
  if (!served.includes(name) && repo.add) {
    const r = await repo.add(name);
    return { name, state: 'READY', ...(r.failed.length ? { failed: r.failed } : {}) };
  }
  const life = servedModel(d, name).lifecycle;
  if (!life) throw new CleaveError('E_UNSUPPORTED', `model '${name}' cannot be ${op}ed here`);
  if (op === 'load') {
    await life.load();
    return { name, state: 'READY' };
  }
  const r = await life.unload();
  return { name, state: 'UNAVAILABLE', ...r };
}

/**
 * One inference request as every front end serves it, counted once: `pick` first (which model), then the
 * plan new requests take (503 E_NOT_READY before the first), then `work`, which parses the request, calls
 * `run` (stamping it with the plan's epoch) and answers. Success and failure reach the request metrics,
 * Triton's statistics and, once stamped, the latency window the controller reads.
 */
export async function serveInference<R>(
  d: GatewayDeps,
  pick: () => ServedModel,
  work: (
    m: ServedModel,
    plan: Routed,
    run: (inputs: Record<string, TensorLike>, deadlineMs: number) => Promise<Record<string, TensorLike>>,
  ) => Promise<R>,
): Promise<R> {
  const t0 = performance.now();
  let epoch: number | null = null;
  let m: ServedModel | null = null;
  try {
    m = pick();
    const served = m;
    const name = served.model.name;
    const why = served.lifecycle?.unavailable();
    if (why)
      throw new CleaveError(
        'E_NOT_READY',
        why === 'loading'
          ? `model '${name}' is loading; retry when /v2/models/${name}/ready answers 200`
          : `model '${name}' is ${why}: POST /v2/repository/models/${name}/load loads it`,
      );
    const plan = served.plan();
    if (!plan)
      throw new CleaveError(
        'E_NOT_READY',
        `model '${name}' has no plan yet; retry when /v2/models/${name}/ready answers 200`,
      );
    const r = await work(served, plan, (inputs, deadlineMs) => {
      epoch = plan.epoch;
      return served.infer(plan, inputs, deadlineMs);
    });
    const ms = performance.now() - t0;
    d.metrics.requestSuccess.inc({ model: name });
    served.stats.record(true, ms);
    d.metrics.requestDuration.observe({ model: name }, ms * 1000);
    if (epoch !== null) served.answered?.(epoch, ms, true);
    return r;
  } catch (e) {
    // A request for a model not served is counted under the name it asked for.
    if (m) {
      d.metrics.requestFailure.inc({ model: m.model.name, code: isCleaveError(e) ? e.code : 'E_INTERNAL' });
      m.stats.record(false, performance.now() - t0);
      if (epoch !== null) m.answered?.(epoch, performance.now() - t0, false);
    }
    throw e;
  }
}

/** The deadline of a request: its own (ms, when it sets one) capped by the deployment's `deadlineMs`. */
export function requestDeadlineMs(own: number | undefined, limits: Pick<RuntimeLimits, 'deadlineMs'>): number {
  return own === undefined ? limits.deadlineMs : Math.min(own, limits.deadlineMs);
}

/** The model's OIP signature: its inputs (with the shapes it is served at) and outputs, typed. */
export function modelSignature(
  model: { readonly name: string; readonly version: string },
  inputs: readonly { readonly name: string; readonly dims?: readonly (number | string)[] }[],
  outputs: readonly { readonly name: string }[],
  types: ReadonlyMap<string, TensorType>,
): ModelSignature {
  const info = (name: string, dims: readonly (number | string)[] | undefined): ValueInfo => {
    const t = types.get(name);
    if (!t || !isTensorDType(t.dtype))
      throw new CleaveError('E_UNSUPPORTED', `tensor '${name}' has a type the gateway cannot carry`);
    return { name, dtype: t.dtype as TensorDType, shape: dims ?? t.dims };
  };
  return signatureOf(
    model.name,
    [model.version],
    inputs.map((i) => info(i.name, i.dims)),
    outputs.map((o) => info(o.name, undefined)),
  );
}

export function gatewayRoutes(d: GatewayDeps): Router {
  const app = express.Router();
  app.get('/v2', (_req, res) => {
    // Triton's names for what is here.
    res.json({
      name: 'cleave',
      version: d.serverVersion,
      extensions: [
        'binary_tensor_data',
        'model_configuration',
        'statistics',
        ...(d.repository ? ['model_repository'] : []),
      ],
    });
  });
  // Before the per-model routes, which would take 'stats' for a model name.
  app.get('/v2/models/stats', (_req, res) => {
    res.json({ model_stats: d.models.flatMap((m) => modelStats(m.model.signature, m.stats).model_stats) });
  });
  const repoBody = express.json({ limit: 64 * 1024, verify: verifyJsonDepth });
  app.post('/v2/repository/index', repoBody, (req, res) => {
    const body = objectBody(req.body, '{"repository_name"?: string, "ready"?: bool}');
    if (body.ready !== undefined && typeof body.ready !== 'boolean')
      throw new CleaveError('E_BAD_INPUT', `ready: expected a boolean, got ${JSON.stringify(body.ready)}`);
    res.json(repositoryIndexOf(d, body.ready === true));
  });
  for (const op of ['load', 'unload'] as const) {
    app.post(
      `/v2/repository/models/:model/${op}`,
      (req, res, next) => {
        // The credential before the body is read: a stranger's upload is not parsed.
        try {
          res.locals.repository = authorizeChange(d, op, String(req.params.model), singleAuthorization(req));
          next();
        } catch (e) {
          req.resume();
          next(e);
        }
      },
      repoBody,
      (req, res, next) => {
        const body = objectBody(req.body, '{"parameters"?: {...}}');
        const params = body.parameters ?? {};
        if (typeof params !== 'object' || params === null || Array.isArray(params))
          return next(new CleaveError('E_BAD_INPUT', 'parameters: expected an object'));
        const repo = res.locals.repository as RepositoryDeps;
        changeRepository(d, repo, op, String(req.params.model), params as Record<string, unknown>)
          .then((r) => res.json(r))
          .catch(next);
      },
    );
  }
  for (const base of ['/v2/models/:model', '/v2/models/:model/versions/:version']) {
    app.get(base, (req, res, next) => {
      try {
        res.json(modelMetadata(pickModel(d, req).model.signature));
      } catch (e) {
        next(e);
      }
    });
    app.get(`${base}/config`, (req, res, next) => {
      try {
        const m = pickModel(d, req);
        const p = m.plan();
        res.json(modelConfig(m.model.signature, p ? { epoch: p.epoch, route: describeRoute(p.route) } : null));
      } catch (e) {
        next(e);
      }
    });
    app.get(`${base}/stats`, (req, res, next) => {
      try {
        const m = pickModel(d, req);
        res.json(modelStats(m.model.signature, m.stats));
      } catch (e) {
        next(e);
      }
    });
    app.get(`${base}/ready`, (req, res, next) => {
      try {
        const m = pickModel(d, req);
        const ready = m.ready();
        res.status(ready ? 200 : 503).json({ name: m.model.name, ready });
      } catch (e) {
        next(e);
      }
    });
  }
  return app;
}

/** The paths of the Open Inference Protocol's infer endpoint. */
export const INFER_PATHS = ['/v2/models/:model/infer', '/v2/models/:model/versions/:version/infer'];

/**
 * The infer endpoint's handlers (content type, body, the request itself), for `INFER_PATHS`. The app mounts
 * them ahead of every other route: express tries each route's pattern in turn, and the ~25 read and control
 * routes in front of it cost the busiest endpoint ~0.3 ms of CPU a request (a CPU profile of the
 * MobileNetV2 origin), which on a quarter of a CPU is over a millisecond.
 */
export function inferHandlers(d: GatewayDeps): RequestHandler[] {
  return [
    checkContentType,
    inferBody(d.limits.maxBodyBytes, INFERENCE_HEADER),
    (req: Request, res: Response, next: NextFunction) => {
      const trace = d.log.isLevelEnabled('trace');
      if (trace) d.log.trace({ at: performance.timeOrigin + performance.now() }, 'request received');
      serveInference(
        d,
        () => pickModel(d, req),
        async (m, plan, run) => {
          const sig = m.model.signature;
          const body: Buffer = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
          const parsed = parseInferRequest(body, req.get(INFERENCE_HEADER), sig, {
            maxBodyBytes: d.limits.maxBodyBytes,
          });
          const timeout = parsed.parameters?.timeout;
          if (timeout !== undefined && !(typeof timeout === 'number' && Number.isFinite(timeout) && timeout > 0))
            throw new CleaveError(
              'E_BAD_INPUT',
              `parameters.timeout: expected a positive number of microseconds, got ${JSON.stringify(timeout)}`,
            );
          const outputs = await run(
            parsed.inputs,
            requestDeadlineMs(timeout === undefined ? undefined : timeout / 1000, d.limits),
          );
          const enc = encodeInferResponse(
            sig,
            {
              id: parsed.id,
              outputs: parsed.outputs,
              binaryOutputs: parsed.binaryOutputs,
              modelVersion: m.model.version,
            },
            outputs,
          );
          res.set(enc.headers).set('x-cleave-epoch', String(plan.epoch)).status(200).send(enc.body);
          if (trace) d.log.trace({ at: performance.timeOrigin + performance.now() }, 'response sent');
        },
      ).catch(next);
    },
  ];
}

/** A JSON body that must be an object (absent: empty); `shape` names what was expected. */
function objectBody(body: unknown, shape: string): Record<string, unknown> {
  if (body === undefined) return {};
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw new CleaveError('E_BAD_INPUT', `body: expected ${shape}`);
  return body as Record<string, unknown>;
}

/**
 * An infer body's Content-Type: JSON (application/json or a +json type), the binary extension's
 * application/octet-stream (which a request without binary parts may send too), or none. Anything else is a
 * 400 naming it, before the body is read.
 */
function checkContentType(req: Request, _res: Response, next: NextFunction): void {
  const raw = req.get('content-type');
  if (raw === undefined) return next();
  const type = raw.split(';')[0].trim().toLowerCase();
  const json = type === 'application/json' || (type.startsWith('application/') && type.endsWith('+json'));
  if (json || type === 'application/octet-stream') return next();
  req.resume();
  next(
    new CleaveError(
      'E_BAD_INPUT',
      `Content-Type '${raw}': an infer request is application/json, or application/octet-stream with the binary extension's ${INFERENCE_HEADER}`,
    ),
  );
}
