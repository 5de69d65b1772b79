/**
 * http/: a host's HTTP API (express), built from small interfaces of what each part needs, so that it can
 * be driven with fakes. Every host: health, metrics and the control API; the origin adds the Open Inference
 * Protocol gateway. Errors are `{"error": "...", "code": "E_..."}` with the status the error's code carries.
 */
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import { CleaveError, isCleaveError, errorMessage } from '../../errors.js';
import { controlRoutes, type ControlDeps } from './control.js';
import { dashboardRoutes } from './dashboard.js';
import { gatewayRoutes, inferHandlers, INFER_PATHS, type GatewayDeps } from './gateway.js';

export interface AppDeps {
  /** Live: the process serves. Ready: the origin has a committed plan; others have their segment warm. */
  ready(): boolean;
  /** Prometheus exposition of this host's metrics. */
  metrics(): Promise<{ contentType: string; body: string }>;
  readonly control: ControlDeps;
  /** Present on the origin only. */
  readonly gateway?: GatewayDeps;
  readonly log: Logger;
}

export function buildApp(d: AppDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  // First: the endpoint every request takes is matched before any other route is tried.
  if (d.gateway) app.post(INFER_PATHS, ...inferHandlers(d.gateway));

  app.get('/v2/health/live', (_req, res) => {
    res.status(200).json({ live: true });
  });
  app.get('/v2/health/ready', (_req, res) => {
    const ready = d.ready();
    res.status(ready ? 200 : 503).json({ ready });
  });
  app.get('/metrics', (_req, res, next) => {
    d.metrics().then((m) => res.type(m.contentType).send(m.body), next);
  });
  app.use(controlRoutes(d.control));
  if (d.gateway) {
    app.use(gatewayRoutes(d.gateway));
    // The origin serves the dashboard at `/`: it is where the events stream and the plan live.
    app.use(dashboardRoutes());
  }

  app.use((req: Request, _res: Response, next: NextFunction) =>
    next(new CleaveError('E_NOT_FOUND', `no such endpoint: ${req.method} ${req.path}`)),
  );
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const e = toCleaveError(err);
    if (e.status >= 500) d.log.warn({ path: req.path, err: e.message }, 'request failed');
    // Exactly application/json, no charset parameter: some clients (KServe's SDK) read an error body only then.
    // (express's res.set and res.json add one; Node's setHeader does not).
    res.status(e.status);
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ error: e.message, code: e.code }));
  });
  return app;
}

/** express's own errors (body too large, malformed JSON) as typed errors. */
function toCleaveError(err: unknown): CleaveError {
  if (isCleaveError(err)) return err;
  const e = err as { type?: string; status?: number; message?: string; limit?: number };
  if (e?.type === 'entity.too.large')
    return new CleaveError('E_TOO_LARGE', `request body is larger than the ${e.limit} byte limit`);
  if (e?.type === 'entity.parse.failed') return new CleaveError('E_BAD_INPUT', `malformed JSON body: ${e.message}`);
  if (e?.status && e.status >= 400 && e.status < 500) return new CleaveError('E_BAD_INPUT', e.message ?? 'bad request');
  return new CleaveError('E_INTERNAL', errorMessage(err));
}
