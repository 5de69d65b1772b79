/**
 * The origin host's Open Inference Protocol (KServe v2) gateway: server and model metadata, readiness, and
 * inference with JSON tensors or the binary tensor data extension. Requests are validated against the
 * model's signature before anything reaches a worker; each takes the current plan (its epoch and route)
 * and carries it to the end.
 */
import type { Express, Request, Response, NextFunction } from 'express';
import { CleaveError, isCleaveError } from '../../errors.js';
import { inferBody } from './body.js';
import { isTensorDType, type TensorDType, type ValueInfo } from '../executor/tensors.js';
import type { Host } from '../host/host.js';
import { encodeInferResponse, modelMetadata, parseInferRequest, signatureOf, INFERENCE_HEADER, type ModelSignature } from './oip.js';

export function signatureFor(host: Host): ModelSignature {
  const { model, types } = host.analysis;
  const info = (name: string, dims: readonly (number | string)[] | undefined): ValueInfo => {
    const t = types.get(name);
    if (!t || !isTensorDType(t.dtype)) throw new CleaveError('E_UNSUPPORTED', `tensor '${name}' has a type the gateway cannot carry`);
    return { name, dtype: t.dtype as TensorDType, shape: dims ?? t.dims };
  };
  return signatureOf(
    host.repoModel.name,
    [host.repoModel.version],
    model.inputs.map((i) => info(i.name, i.dims)),
    model.outputs.map((o) => info(o.name, undefined)),
  );
}

export function mountGateway(app: Express, host: Host): void {
  const sig = signatureFor(host);
  const name = host.repoModel.name;
  const model = (req: Request): void => {
    const m = req.params.model;
    if (m !== name) throw new CleaveError('E_UNKNOWN_MODEL', `unknown model '${m}' (this deployment serves '${name}')`);
    const v = req.params.version;
    if (v !== undefined && v !== host.repoModel.version) throw new CleaveError('E_UNKNOWN_MODEL', `model '${m}' has no version '${v}' (has ${host.repoModel.version})`);
  };

  app.get('/v2', (_req, res) => {
    res.json({ name: 'cleave', version: '0.1.0', extensions: ['binary_tensor_data', 'model_repository'] });
  });
  for (const base of ['/v2/models/:model', '/v2/models/:model/versions/:version']) {
    app.get(base, (req, res, next) => {
      try {
        model(req);
        res.json(modelMetadata(sig));
      } catch (e) {
        next(e);
      }
    });
    app.get(`${base}/ready`, (req, res, next) => {
      try {
        model(req);
        res.status(host.ready ? 200 : 503).json({ name, ready: host.ready });
      } catch (e) {
        next(e);
      }
    });
    app.post(
      `${base}/infer`,
      inferBody(host.limits.maxBodyBytes, INFERENCE_HEADER),
      async (req: Request, res: Response, next: NextFunction) => {
        const t0 = performance.now();
        const trace = host.log.isLevelEnabled('trace');
        if (trace) host.log.trace({ at: performance.timeOrigin + t0 }, 'request received');
        try {
          model(req);
          const plan = host.coordinator?.current;
          if (!plan) throw new CleaveError('E_NOT_READY', 'the deployment has no plan yet; retry when /v2/health/ready answers 200');
          const body: Buffer = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
          const parsed = parseInferRequest(body, req.get(INFERENCE_HEADER), sig, { maxBodyBytes: host.limits.maxBodyBytes });
          const timeout = parsed.parameters?.timeout;
          if (timeout !== undefined && !(typeof timeout === 'number' && Number.isFinite(timeout) && timeout > 0))
            throw new CleaveError('E_BAD_INPUT', `parameters.timeout: expected a positive number of microseconds, got ${JSON.stringify(timeout)}`);
          const deadline = timeout === undefined ? host.limits.deadlineMs : Math.min(timeout / 1000, host.limits.deadlineMs);
          const outputs = await host.pipeline.infer(plan, parsed.inputs, deadline);
          const enc = encodeInferResponse(sig, { id: parsed.id, outputs: parsed.outputs, binaryOutputs: parsed.binaryOutputs, modelVersion: host.repoModel.version }, outputs);
          res.set(enc.headers).set('x-cleave-epoch', String(plan.epoch)).status(200).send(enc.body);
          if (trace) host.log.trace({ at: performance.timeOrigin + performance.now() }, 'response sent');
          host.metrics.requestSuccess.inc({ model: name });
          host.metrics.requestDuration.observe({ model: name }, (performance.now() - t0) * 1000);
        } catch (e) {
          host.metrics.requestFailure.inc({ model: name, code: isCleaveError(e) ? e.code : 'E_INTERNAL' });
          next(e);
        }
      },
    );
  }
}
