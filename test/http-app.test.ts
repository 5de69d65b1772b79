/**
 * The HTTP app built from fake ControlDeps and GatewayDeps, driven without a socket by light-my-request.
 * Errors come back as `{"error", "code"}` with the status their code carries.
 */
import { depthExceededAt } from '../src/runtime/http/json-depth.js';
import inject from 'light-my-request';
import { identifyBy, tokenDigest } from '../src/transport/identity.js';
import { describe, expect, it, vi } from 'vitest';
import { CleaveError } from '../src/errors.js';
import type { Plan } from '../src/planner/types.js';
import type { TensorLike } from '../src/runtime/executor/executor.js';
import { HostMetrics } from '../src/runtime/host/metrics.js';
import type { Routed } from '../src/runtime/host/pipeline.js';
import { buildApp } from '../src/runtime/http/app.js';
import type { ControlDeps, PlanDeps } from '../src/runtime/http/control.js';
import type { GatewayDeps, ServedModel } from '../src/runtime/http/gateway.js';
import { InferenceStats } from '../src/runtime/http/triton.js';
import { signatureOf } from '../src/runtime/http/oip.js';
import type { ActivePlan } from '../src/runtime/plan/coordinator.js';
import type { HostStatus, LinkReport } from '../src/runtime/plan/cluster-view.js';
import { f32, profile, silent } from './helpers/fakes.js';

const TOKEN = 'peer-secret';
/** The edge host's own peer credential: it may forward link settings, not prepare segments. */
const EDGE_TOKEN = 'edge-own-secret';
const CONTROL = 'operator-secret';
const SIG = signatureOf(
  'tiny',
  ['1'],
  [{ name: 'x', dtype: 'float32', shape: [1, 4] }],
  [{ name: 'y', dtype: 'float32', shape: [1, 2] }],
);

const PREDICTED: Plan = {
  origin: 'device',
  originTier: 'device',
  stages: [
    { tier: 'device', host: 'device', start: 0, end: 2, computeMs: 3, weightBytes: 10 },
    { tier: 'edge', host: 'edge', start: 2, end: 4, computeMs: 4, weightBytes: 10 },
  ],
  hops: [
    { from: 'device', to: 'edge', bytes: 1000, rawBytes: 1000, codec: 'raw', ms: 5.35, busyMs: 0.35, kind: 'forward' },
    { from: 'edge', to: 'device', bytes: 1000, rawBytes: 1000, codec: 'raw', ms: 5.35, busyMs: 0.35, kind: 'return' },
  ],
  latencyMs: 17.7,
  computeMs: 7,
  transferMs: 10.7,
  bottleneckMs: 4,
  throughputRps: 250,
  deviceBytesOut: 1000,
  deviceComputeMs: 3,
  bytesTransferred: 2000,
};

function active(epoch: number, pinned = false): ActivePlan {
  return {
    epoch,
    route: [
      { host: 'device', tier: 'device', from: 0, to: 20 },
      { host: 'edge', tier: 'edge', from: 20, to: 40 },
    ],
    predicted: PREDICTED,
    pinned,
    adoptedAt: '2026-01-01T00:00:00.000Z',
    reason: pinned ? 'pinned by PUT /v1/plan' : 'start-up',
  };
}

function status(host: string, segments: HostStatus['segments']): HostStatus {
  return { host, tier: host, ready: true, cpuPercent: null, inFlight: 0, busy: 0, threads: 1, heapFlags: [], segments };
}

const LINK: LinkReport = {
  from: 'device',
  to: 'edge',
  rttMs: 9,
  throughputBps: 5e6,
  state: 'open',
  bytesSent: 0,
  queuedBytes: 0,
  emulation: null,
};

function rig(o: { gateway?: boolean; plan?: boolean; readAccess?: 'loopback' | 'token' | 'open'; add?: boolean } = {}) {
  const state = { ready: true, plan: { epoch: 7, route: active(7).route } as Routed | null };
  const repo = { unavailable: null as string | null };
  const coordinator = {
    current: null as ActivePlan | null,
    plans: [] as ActivePlan[],
    pin: vi.fn(async (_stages: readonly { host: string; blocks: readonly [number, number] }[]) => active(8, true)),
    unpin: vi.fn(async () => active(9)),
  };
  const cluster: PlanDeps['cluster'] = {
    profiles: async () => [],
    links: vi.fn(async () => [LINK]),
    statuses: async () => [
      status('device', [
        { from: 0, to: 40, warm: true, meanMs: 99, runs: 1 },
        { from: 0, to: 20, warm: true, meanMs: 2.5, runs: 3 },
      ]),
      status('edge', [{ from: 20, to: 40, warm: true, meanMs: 3.5, runs: 3 }]),
      { host: 'cloud', error: 'timed out' },
    ],
  };
  const control = {
    self: 'device',
    access: {
      controlToken: CONTROL,
      // The master peer token (any host), and the edge's own credential.
      identifyPeer: identifyBy(new Map([['edge', tokenDigest(EDGE_TOKEN)]]), tokenDigest(TOKEN)),
      origin: 'device',
      readAccess: o.readAccess ?? 'loopback',
    },
    limits: { maxControlBodyBytes: 1024 },
    status: () => status('device', []),
    profile: () => profile('device', 'device', [1, 1]),
    links: () => [LINK],
    prepareSegment: vi.fn(async (_from: number, _to: number) => undefined),
    releaseSegments: vi.fn(() => 2),
    addModel: vi.fn(async (name: string) => ({ name, sha256: 'ab'.repeat(32), blocks: 7 })),
    hasLink: (to: string) => to === 'edge',
    setLinkEmulation: vi.fn((_to: string, s: unknown) => s as never),
    forward: vi.fn(async (host: string, method: string, path: string, _body?: unknown): Promise<unknown> => ({
      forwardedTo: host,
      method,
      path,
    })),
    ...(o.plan !== false && { plan: { tiers: ['device', 'edge', 'cloud'], coordinator, cluster } }),
  } satisfies ControlDeps;
  const metrics = new HostMetrics('device', 'device');
  const lifecycle = {
    unavailable: () => repo.unavailable,
    load: vi.fn(async () => {
      repo.unavailable = null;
    }),
    unload: vi.fn(async () => {
      repo.unavailable = 'unloaded';
      return { leftInFlight: 0, failed: [] };
    }),
  };
  const served = {
    model: { name: 'tiny', version: '1', signature: SIG },
    ready: () => state.ready,
    plan: () => state.plan,
    infer: vi.fn(
      async (
        _plan: Routed,
        _inputs: Record<string, TensorLike>,
        _deadlineMs: number,
      ): Promise<Record<string, TensorLike>> => ({ y: f32([0.5, 1.5], [1, 2]) }),
    ),
    stats: new InferenceStats(),
    lifecycle,
  } satisfies ServedModel;
  const add = vi.fn(async (_name: string) => ({ failed: [{ host: 'cloud', error: 'timed out' }] }));
  const deps = {
    models: [served],
    serverVersion: '9.9.9-test',
    limits: { maxBodyBytes: 64 * 1024, deadlineMs: 5000 },
    ready: () => state.ready,
    metrics,
    log: silent,
    repository: {
      models: () => [
        { name: 'other', version: '3' },
        { name: 'tiny', version: '1' },
      ],
      authorize: (header: string | undefined, what: string) => {
        if (header === undefined) throw new CleaveError('E_UNAUTHORIZED', `${what} needs the control token`);
        if (header !== `Bearer ${CONTROL}`) throw new CleaveError('E_FORBIDDEN', `${what}: the token is wrong`);
      },
      ...(o.add && { add }),
    },
  } satisfies GatewayDeps;
  // What the tests look at: the model's infer, and its unload and load.
  const gateway = { infer: served.infer, repository: lifecycle, add };
  const app = buildApp({
    ready: () => state.ready,
    metrics: async () => ({ contentType: 'text/plain; version=0.0.4; charset=utf-8', body: 'cleave_test 1\n' }),
    control,
    ...(o.gateway !== false && { gateway: deps }),
    log: silent,
  });
  return { app, state, repo, control, coordinator, cluster, gateway, metrics };
}

type App = ReturnType<typeof rig>['app'];

/** A request; changes (PUT, DELETE) carry the control token unless `headers` says otherwise. */
async function call(
  app: App,
  method: 'GET' | 'POST' | 'PUT' | 'DELETE',
  url: string,
  payload?: unknown,
  headers: Record<string, string> = {},
  remoteAddress?: string,
) {
  const raw = typeof payload === 'string';
  const operator = method === 'PUT' || method === 'DELETE' ? { authorization: `Bearer ${CONTROL}` } : {};
  const res = await inject(app, {
    method,
    url,
    ...(remoteAddress !== undefined && { remoteAddress }),
    ...(payload !== undefined && { payload: raw ? payload : JSON.stringify(payload) }),
    headers: { ...operator, ...(payload !== undefined && { 'content-type': 'application/json' }), ...headers },
  });
  const body: unknown = res.headers['content-type']?.toString().includes('json') ? res.json() : res.body;
  return { status: res.statusCode, headers: res.headers, body: body as Record<string, unknown> & unknown[] };
}

const X = { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] }] };
const auth = { authorization: `Bearer ${TOKEN}` };

describe('health, metrics, unknown endpoints', () => {
  it('live is 200; ready follows ready()', async () => {
    const { app, state } = rig();
    expect(await call(app, 'GET', '/v2/health/live')).toMatchObject({ status: 200, body: { live: true } });
    expect(await call(app, 'GET', '/v2/health/ready')).toMatchObject({ status: 200, body: { ready: true } });
    state.ready = false;
    expect(await call(app, 'GET', '/v2/health/ready')).toMatchObject({ status: 503, body: { ready: false } });
  });

  it('an unknown endpoint is 404 E_NOT_FOUND as a JSON error', async () => {
    const r = await call(rig().app, 'GET', '/v3/nothing');
    expect(r.status).toBe(404);
    expect(r.headers['content-type']).toMatch(/^application\/json/);
    expect(r.body).toEqual({ error: 'no such endpoint: GET /v3/nothing', code: 'E_NOT_FOUND' });
  });

  it('without a gateway (a non-origin host) the inference routes are unknown', async () => {
    const { app } = rig({ gateway: false });
    expect(await call(app, 'GET', '/v2')).toMatchObject({ status: 404, body: { code: 'E_NOT_FOUND' } });
    expect(await call(app, 'POST', '/v2/models/tiny/infer', X)).toMatchObject({
      status: 404,
      body: { code: 'E_NOT_FOUND' },
    });
  });

  it('GET /metrics returns the exposition with its content type', async () => {
    const r = await call(rig().app, 'GET', '/metrics');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(r.body).toBe('cleave_test 1\n');
  });
});

describe('gateway', () => {
  it('GET /v2 reports the server version', async () => {
    const r = await call(rig().app, 'GET', '/v2');
    expect(r).toMatchObject({ status: 200, body: { name: 'cleave', version: '9.9.9-test' } });
  });

  it('model metadata, and model readiness following ready()', async () => {
    const { app, state } = rig();
    const inputs = [{ name: 'x', datatype: 'FP32', shape: [1, 4] }];
    const meta = {
      name: 'tiny',
      versions: ['1'],
      platform: 'onnxruntime_onnx',
      inputs,
      outputs: [{ name: 'y', datatype: 'FP32', shape: [1, 2] }],
    };
    expect(await call(app, 'GET', '/v2/models/tiny')).toEqual(expect.objectContaining({ status: 200, body: meta }));
    expect(await call(app, 'GET', '/v2/models/tiny/versions/1')).toEqual(
      expect.objectContaining({ status: 200, body: meta }),
    );
    state.ready = false;
    expect(await call(app, 'GET', '/v2/models/tiny/ready')).toMatchObject({
      status: 503,
      body: { name: 'tiny', ready: false },
    });
  });

  it('an unknown model or version is 404 E_UNKNOWN_MODEL', async () => {
    const { app, gateway } = rig();
    expect(await call(app, 'GET', '/v2/models/huge')).toMatchObject({ status: 404, body: { code: 'E_UNKNOWN_MODEL' } });
    expect(await call(app, 'GET', '/v2/models/tiny/versions/2')).toMatchObject({
      status: 404,
      body: { code: 'E_UNKNOWN_MODEL' },
    });
    expect(await call(app, 'POST', '/v2/models/huge/infer', X)).toMatchObject({
      status: 404,
      body: { code: 'E_UNKNOWN_MODEL' },
    });
    expect(gateway.infer).not.toHaveBeenCalled();
  });

  it("a JSON infer returns the outputs and the plan's epoch in x-cleave-epoch", async () => {
    const { app, gateway, state, metrics } = rig();
    const r = await call(app, 'POST', '/v2/models/tiny/infer', { id: 'q1', ...X });
    expect(r.status).toBe(200);
    expect(r.headers['x-cleave-epoch']).toBe('7');
    expect(r.body).toEqual({
      id: 'q1',
      model_name: 'tiny',
      model_version: '1',
      outputs: [{ name: 'y', datatype: 'FP32', shape: [1, 2], data: [0.5, 1.5] }],
    });
    expect(gateway.infer).toHaveBeenCalledTimes(1);
    const [plan, inputs, deadline] = gateway.infer.mock.calls[0];
    expect(plan).toBe(state.plan);
    expect(Object.keys(inputs)).toEqual(['x']);
    expect([inputs.x.dims, Array.from(inputs.x.data as Float32Array)]).toEqual([
      [1, 4],
      [1, 2, 3, 4],
    ]);
    expect(deadline).toBe(5000);
    expect((await metrics.requestSuccess.get()).values[0]?.value).toBe(1);
  });

  it('a timeout parameter (microseconds) shortens the deadline, never lengthens it', async () => {
    const { app, gateway } = rig();
    await call(app, 'POST', '/v2/models/tiny/infer', { ...X, parameters: { timeout: 250_000 } });
    await call(app, 'POST', '/v2/models/tiny/infer', { ...X, parameters: { timeout: 60_000_000 } });
    expect(gateway.infer.mock.calls.map((c) => c[2])).toEqual([250, 5000]);
    const bad = await call(app, 'POST', '/v2/models/tiny/infer', { ...X, parameters: { timeout: -1 } });
    expect(bad).toMatchObject({ status: 400, body: { code: 'E_BAD_INPUT' } });
    expect(bad.body.error).toMatch(/^parameters\.timeout/);
  });

  it('no plan yet is 503 E_NOT_READY', async () => {
    const { app, state, gateway } = rig();
    state.plan = null;
    expect(await call(app, 'POST', '/v2/models/tiny/infer', X)).toMatchObject({
      status: 503,
      body: { code: 'E_NOT_READY' },
    });
    expect(gateway.infer).not.toHaveBeenCalled();
  });

  const failures: [CleaveError, number][] = [
    [new CleaveError('E_DEADLINE', 'missed its deadline'), 504],
    [new CleaveError('E_QUEUE_FULL', 'too many in flight'), 503],
    [new CleaveError('E_PEER_GONE', 'edge dropped'), 502],
  ];
  for (const [err, statusCode] of failures) {
    it(`an infer failing ${err.code} answers ${statusCode} with that code`, async () => {
      const { app, gateway, metrics } = rig();
      gateway.infer.mockRejectedValueOnce(err);
      const r = await call(app, 'POST', '/v2/models/tiny/infer', X);
      expect(r).toMatchObject({ status: statusCode, body: { code: err.code, error: err.message } });
      const failed = (await metrics.requestFailure.get()).values;
      expect(failed.map((v) => [v.labels.code, v.value])).toEqual([[err.code, 1]]);
    });
  }

  it('a bad body is 400 naming the field', async () => {
    const { app, gateway } = rig();
    const shape = await call(app, 'POST', '/v2/models/tiny/infer', {
      inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3], data: [1, 2, 3] }],
    });
    expect(shape).toMatchObject({ status: 400, body: { code: 'E_BAD_INPUT' } });
    expect(shape.body.error).toMatch(/^inputs\[0\]\.shape: expected \[1,4\] but got \[1,3\]/);
    const missing = await call(app, 'POST', '/v2/models/tiny/infer', { outputs: [] });
    expect(missing.body.error).toBe('inputs: missing');
    const json = await call(app, 'POST', '/v2/models/tiny/infer', '{"inputs": [');
    expect(json).toMatchObject({ status: 400, body: { code: 'E_BAD_INPUT' } });
    expect(json.body.error).toMatch(/^malformed JSON at position 12/);
    expect(gateway.infer).not.toHaveBeenCalled();
  });

  it('a body past maxBodyBytes is 413 E_TOO_LARGE', async () => {
    const { app, gateway } = rig();
    const r = await call(app, 'POST', '/v2/models/tiny/infer', { ...X, pad: 'x'.repeat(70 * 1024) });
    expect(r).toMatchObject({ status: 413, body: { code: 'E_TOO_LARGE' } });
    expect(gateway.infer).not.toHaveBeenCalled();
  });
});

describe("gateway: what Triton's and KServe's clients call", () => {
  it('GET /v2 advertises what is there', async () => {
    const r = await call(rig().app, 'GET', '/v2');
    expect(r.body.extensions).toEqual(['binary_tensor_data', 'model_configuration', 'statistics', 'model_repository']);
  });

  it('model config in Triton shape, with the current plan in its cleave section', async () => {
    const { app, state } = rig();
    const r = await call(app, 'GET', '/v2/models/tiny/config');
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({
      name: 'tiny',
      platform: 'onnxruntime_onnx',
      backend: 'onnxruntime',
      max_batch_size: 0,
      input: [{ name: 'x', data_type: 'TYPE_FP32', dims: [1, 4] }],
      output: [{ name: 'y', data_type: 'TYPE_FP32', dims: [1, 2] }],
      cleave: { split: true, plan: { epoch: 7, route: expect.stringContaining('edge') } },
    });
    state.plan = null;
    expect((await call(app, 'GET', '/v2/models/tiny/versions/1/config')).body.cleave).toEqual({
      split: true,
      plan: null,
    });
    expect((await call(app, 'GET', '/v2/models/huge/config')).status).toBe(404);
  });

  it('statistics count successes and failures with their durations in ns, per model and for all', async () => {
    const { app, gateway } = rig();
    const zero = await call(app, 'GET', '/v2/models/tiny/stats');
    expect((zero.body as any).model_stats[0]).toMatchObject({
      name: 'tiny',
      version: '1',
      inference_count: 0,
      last_inference: 0,
    });
    expect((await call(app, 'POST', '/v2/models/tiny/infer', X)).status).toBe(200);
    expect((await call(app, 'POST', '/v2/models/tiny/infer', X)).status).toBe(200);
    gateway.infer.mockRejectedValueOnce(new CleaveError('E_PEER_GONE', 'edge is gone'));
    expect((await call(app, 'POST', '/v2/models/tiny/infer', X)).status).toBe(502);
    for (const path of ['/v2/models/tiny/stats', '/v2/models/stats']) {
      const m = ((await call(app, 'GET', path)).body as any).model_stats[0];
      expect(m.inference_count).toBe(2);
      expect(m.inference_stats.success.count).toBe(2);
      expect(m.inference_stats.success.ns).toBeGreaterThan(0);
      expect(m.inference_stats.fail.count).toBe(1);
      expect(m.inference_stats.compute_infer).toEqual(m.inference_stats.success);
      expect(m.last_inference).toBeGreaterThan(Date.now() - 60_000);
    }
  });

  it("the repository index lists the folder's models: the served one ready, unloaded or not ready; the others not served", async () => {
    const { app, state, repo } = rig();
    expect(await call(app, 'POST', '/v2/repository/index', { ready: true })).toMatchObject({
      status: 200,
      body: [{ name: 'tiny', version: '1', state: 'READY' }],
    });
    const other = {
      name: 'other',
      version: '3',
      state: 'UNAVAILABLE',
      reason: "not loaded (this deployment serves 'tiny')",
    };
    state.ready = false;
    expect((await call(app, 'POST', '/v2/repository/index')).body).toEqual([
      other,
      {
        name: 'tiny',
        version: '1',
        state: 'UNAVAILABLE',
        reason: 'not ready: no plan yet, or a host of the plan is down',
      },
    ]);
    repo.unavailable = 'unloaded';
    expect((await call(app, 'POST', '/v2/repository/index', {})).body).toEqual([
      other,
      { name: 'tiny', version: '1', state: 'UNAVAILABLE', reason: 'unloaded' },
    ]);
    expect((await call(app, 'POST', '/v2/repository/index', { ready: true })).body).toEqual([]);
    expect(await call(app, 'POST', '/v2/repository/index', { ready: 'yes' })).toMatchObject({
      status: 400,
      body: { error: 'ready: expected a boolean, got "yes"' },
    });
    expect((await call(app, 'POST', '/v2/repository/index', [1])).status).toBe(400);
    expect((await call(app, 'POST', '/v2/repository/index', '{"ready": tru', {})).status).toBe(400);
  });

  it('unload and load the served model with the control token; an unloaded model answers 503 until loaded', async () => {
    const { app, gateway } = rig();
    const op = (model: string, what: 'load' | 'unload', body?: unknown, auth = `Bearer ${CONTROL}`) =>
      call(app, 'POST', `/v2/repository/models/${model}/${what}`, body, auth ? { authorization: auth } : {});
    expect(await op('tiny', 'unload', undefined, '')).toMatchObject({ status: 401, body: { code: 'E_UNAUTHORIZED' } });
    expect(await op('tiny', 'unload', undefined, 'Bearer nope')).toMatchObject({
      status: 403,
      body: { code: 'E_FORBIDDEN' },
    });
    expect(gateway.repository.unload).not.toHaveBeenCalled();
    expect(await op('tiny', 'unload', { parameters: { unload_dependents: true } })).toMatchObject({
      status: 200,
      body: { name: 'tiny', state: 'UNAVAILABLE', leftInFlight: 0, failed: [] },
    });
    const refused = await call(app, 'POST', '/v2/models/tiny/infer', X);
    expect(refused).toMatchObject({ status: 503, body: { code: 'E_NOT_READY' } });
    expect(refused.body.error).toBe("model 'tiny' is unloaded: POST /v2/repository/models/tiny/load loads it");
    expect(gateway.infer).not.toHaveBeenCalled();
    expect(await op('tiny', 'load')).toMatchObject({ status: 200, body: { name: 'tiny', state: 'READY' } });
    expect((await call(app, 'POST', '/v2/models/tiny/infer', X)).status).toBe(200);
    // What cannot be done is named, and changes nothing.
    expect(await op('other', 'load')).toMatchObject({ status: 400, body: { code: 'E_UNSUPPORTED' } });
    expect((await op('other', 'load')).body.error).toBe(
      "cannot load 'other': this deployment serves 'tiny' and cannot load another while it runs; add 'other' to the config's models to serve it",
    );
    expect(await op('nothing', 'unload')).toMatchObject({ status: 404, body: { code: 'E_UNKNOWN_MODEL' } });
    expect((await op('tiny', 'load', { parameters: { config: '{}' } })).body.error).toBe(
      "parameters.config: load takes no parameters (the model loads from the repository's files as they are)",
    );
    expect((await op('tiny', 'unload', { parameters: { unload_dependents: 'yes' } })).status).toBe(400);
    expect((await op('tiny', 'unload', { parameters: [] })).body.error).toBe('parameters: expected an object');
    expect(gateway.repository.unload).toHaveBeenCalledTimes(1);
    expect(gateway.repository.load).toHaveBeenCalledTimes(1);
    expect((await call(app, 'POST', '/v2/models/tiny/infer', X)).status).toBe(200);
  });

  it('with run-time loading, a load of a repository model not served adds it; its unload, or a load with parameters, is refused', async () => {
    const { app, gateway } = rig({ add: true });
    const op = (name: string, what: string, body?: unknown) =>
      call(app, 'POST', `/v2/repository/models/${name}/${what}`, body, { authorization: `Bearer ${CONTROL}` });
    expect(await op('other', 'load')).toMatchObject({
      status: 200,
      body: { name: 'other', state: 'READY', failed: [{ host: 'cloud', error: 'timed out' }] },
    });
    expect(gateway.add.mock.calls).toEqual([['other']]);
    const un = await op('other', 'unload');
    expect(un.status).toBe(400);
    expect(un.body.error).toBe("cannot unload 'other': it is not loaded (this deployment serves 'tiny')");
    expect((await op('other', 'load', { parameters: { config: '{}' } })).status).toBe(400);
    expect((await op('missing', 'load')).status).toBe(404);
    expect(gateway.add).toHaveBeenCalledTimes(1);
    expect((await call(app, 'POST', '/v2/repository/models/other/load')).status).toBe(401);
  });

  it('errors are Content-Type application/json exactly (KServe reads an error body only then)', async () => {
    const r = await call(rig().app, 'GET', '/v2/models/huge');
    expect(r.status).toBe(404);
    expect(r.headers['content-type']).toBe('application/json');
    expect(r.body.error).toMatch(/unknown model 'huge'/);
  });

  it('a JSON infer body under a content type that is not JSON is a 400 naming it; JSON types and none pass', async () => {
    const { app, gateway } = rig();
    for (const type of ['text/plain', 'image/png', 'multipart/form-data; boundary=x']) {
      const r = await call(app, 'POST', '/v2/models/tiny/infer', JSON.stringify(X), { 'content-type': type });
      expect(r.status, type).toBe(400);
      expect(r.body.error).toContain(`Content-Type '${type}': an infer request is application/json, or`);
    }
    for (const type of ['application/json', 'application/json; charset=utf-8', 'application/vnd.kserve+json'])
      expect(
        (await call(app, 'POST', '/v2/models/tiny/infer', JSON.stringify(X), { 'content-type': type })).status,
      ).toBe(200);
    // No Content-Type at all: light-my-request sends none for a Buffer payload given no header.
    const bare = await inject(app, {
      method: 'POST',
      url: '/v2/models/tiny/infer',
      payload: Buffer.from(JSON.stringify(X)),
    });
    expect(bare.statusCode).toBe(200);
    // The binary extension: octet-stream passes, text/plain does not.
    const header = Buffer.from(
      JSON.stringify({
        inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], parameters: { binary_data_size: 16 } }],
      }),
    );
    const body = Buffer.concat([header, Buffer.from(new Float32Array([1, 2, 3, 4]).buffer)]);
    const bin = (type: string) =>
      inject(app, {
        method: 'POST',
        url: '/v2/models/tiny/infer',
        payload: body,
        headers: { 'content-type': type, 'inference-header-content-length': String(header.length) },
      });
    expect((await bin('application/octet-stream')).statusCode).toBe(200);
    const refused = await bin('text/plain');
    expect(refused.statusCode).toBe(400);
    expect(refused.json().error).toMatch(/or application\/octet-stream with the binary extension's/);
    expect(gateway.infer).toHaveBeenCalledTimes(5);
  });
});

describe('control: segments and links', () => {
  it("POST /v1/models (the origin loading a model here) needs the origin's credential and a {name} body", async () => {
    const { app, control } = rig();
    expect((await call(app, 'POST', '/v1/models', { name: 'other' })).status).toBe(401);
    const edge = { authorization: `Bearer ${EDGE_TOKEN}` };
    expect((await call(app, 'POST', '/v1/models', { name: 'other' }, edge)).status).toBe(403);
    const ok = await call(app, 'POST', '/v1/models', { name: 'other' }, auth);
    expect(ok).toMatchObject({ status: 200, body: { host: 'device', name: 'other', blocks: 7 } });
    expect(control.addModel.mock.calls).toEqual([['other']]);
    for (const [body, why] of [
      [{}, /^body must be \{"name": MODEL\}/],
      [{ name: 3 }, /^body must be \{"name": MODEL\}/],
      [{ name: 'x', shapes: {} }, /^shapes: unknown field \(expected name\)/],
    ] as const) {
      const r = await call(app, 'POST', '/v1/models', body, auth);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.body.error).toMatch(why);
    }
    control.addModel.mockRejectedValueOnce(new CleaveError('E_UNKNOWN_MODEL', "model 'nope' is not in the repository"));
    expect(await call(app, 'POST', '/v1/models', { name: 'nope' }, auth)).toMatchObject({ status: 404 });
    expect(control.addModel).toHaveBeenCalledTimes(2);
  });

  it('POST /v1/segments needs the peer token, then prepares the range', async () => {
    const { app, control } = rig();
    expect(await call(app, 'POST', '/v1/segments', { from: 0, to: 20 })).toMatchObject({
      status: 401,
      body: { code: 'E_UNAUTHORIZED' },
    });
    expect(
      await call(app, 'POST', '/v1/segments', { from: 0, to: 20 }, { authorization: 'Bearer wrong' }),
    ).toMatchObject({ status: 401 });
    expect(await call(app, 'POST', '/v1/segments', { from: 0, to: 20 }, { authorization: TOKEN })).toMatchObject({
      status: 401,
    });
    // Another host's own credential is a host, but not the origin: only the origin prepares segments.
    const edge = await call(
      app,
      'POST',
      '/v1/segments',
      { from: 0, to: 20 },
      { authorization: `Bearer ${EDGE_TOKEN}` },
    );
    expect(edge).toMatchObject({ status: 403, body: { code: 'E_FORBIDDEN' } });
    expect(edge.body.error).toMatch(/edge's credential: only the origin \(device\) may do this/);
    expect(control.prepareSegment).not.toHaveBeenCalled();

    const r = await call(app, 'POST', '/v1/segments', { from: 0, to: 20 }, auth);
    expect(r).toMatchObject({ status: 200, body: { host: 'device', from: 0, to: 20, warm: true } });
    const route = [
      { host: 'origin', tier: 'device', from: 0, to: 0 },
      { host: 'device', tier: 'edge', from: 0, to: 20 },
    ];
    expect(await call(app, 'POST', '/v1/segments', { from: 0, to: 20, route }, auth)).toMatchObject({ status: 200 });
    expect(control.prepareSegment.mock.calls).toEqual([
      [0, 20, undefined, undefined],
      [0, 20, route, undefined],
    ]);
    // A model named: passed on; a model that is not a name is refused.
    expect(await call(app, 'POST', '/v1/segments', { from: 0, to: 20, route, model: 'other' }, auth)).toMatchObject({
      status: 200,
    });
    expect(control.prepareSegment.mock.calls[2]).toEqual([0, 20, route, 'other']);
    const bad = await call(app, 'POST', '/v1/segments', { from: 0, to: 20, model: 7 }, auth);
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatch(/^model: expected a model name/);
  });

  it('a bad segments body is 400, and a failing prepare keeps its code', async () => {
    const { app, control } = rig();
    for (const body of [{ from: '0', to: 20 }, { from: 0 }, [0, 20], { from: 0.5, to: 20 }]) {
      const r = await call(app, 'POST', '/v1/segments', body, auth);
      expect(r, JSON.stringify(body)).toMatchObject({ status: 400, body: { code: 'E_BAD_INPUT' } });
    }
    expect(control.prepareSegment).not.toHaveBeenCalled();
    control.prepareSegment.mockRejectedValueOnce(new CleaveError('E_BAD_CUT', 'no cut at 7'));
    expect(await call(app, 'POST', '/v1/segments', { from: 0, to: 7 }, auth)).toMatchObject({
      status: 400,
      body: { code: 'E_BAD_CUT', error: 'no cut at 7' },
    });
  });

  it('PUT /v1/links/self/to in Mbit/s sets the emulation in bytes per second; null turns it off', async () => {
    const { app, control } = rig();
    const r = await call(app, 'PUT', '/v1/links/device/edge', { mbps: 10, delayMs: 5 });
    expect(r.status).toBe(200);
    expect(control.setLinkEmulation.mock.calls[0]).toEqual([
      'edge',
      { bandwidthBps: 1.25e6, delayMs: 5, burstBytes: 0 },
    ]);
    expect(r.body).toEqual({
      from: 'device',
      to: 'edge',
      emulation: { bandwidthBps: 1.25e6, delayMs: 5, burstBytes: 0 },
    });

    const off = await call(app, 'PUT', '/v1/links/device/edge', 'null');
    expect(off).toMatchObject({ status: 200, body: { emulation: null } });
    expect(await call(app, 'PUT', '/v1/links/device/edge', { off: true })).toMatchObject({
      status: 200,
      body: { emulation: null },
    });
    expect(control.setLinkEmulation.mock.calls.slice(1)).toEqual([
      ['edge', null],
      ['edge', null],
    ]);
    expect(control.forward).not.toHaveBeenCalled();
  });

  it("another host's link is forwarded to that host", async () => {
    const { app, control } = rig();
    const r = await call(app, 'PUT', '/v1/links/edge/cloud', { mbps: 10, delayMs: 5 });
    expect(r).toMatchObject({ status: 200, body: { forwardedTo: 'edge' } });
    expect(control.forward.mock.calls).toEqual([['edge', 'PUT', '/v1/links/edge/cloud', { mbps: 10, delayMs: 5 }]]);
    expect(control.setLinkEmulation).not.toHaveBeenCalled();
  });

  it("a forward failing with a peer's code answers with that code", async () => {
    const { app, control } = rig();
    control.forward.mockRejectedValueOnce(new CleaveError('E_NOT_READY', 'edge: starting'));
    expect(await call(app, 'PUT', '/v1/links/edge/cloud', { delayMs: 5 })).toMatchObject({
      status: 503,
      body: { code: 'E_NOT_READY', error: 'edge: starting' },
    });
  });

  it('an unknown link or bad settings are 400 naming the problem, and change nothing', async () => {
    const { app, control } = rig();
    const unknown = await call(app, 'PUT', '/v1/links/device/laptop', { delayMs: 5 });
    expect(unknown).toMatchObject({
      status: 400,
      body: { code: 'E_BAD_INPUT', error: "no link from device to 'laptop'" },
    });
    const mbps = await call(app, 'PUT', '/v1/links/device/edge', { mbps: -1 });
    expect(mbps).toMatchObject({ status: 400, body: { error: 'link settings: mbps must be a positive number' } });
    const delay = await call(app, 'PUT', '/v1/links/device/edge', { delayMs: 'soon' });
    expect(delay.body.error).toMatch(/'delayMs' must be a non-negative number/);
    expect(control.setLinkEmulation).not.toHaveBeenCalled();
  });

  it.each([
    ['""', /expected null, \{"off": true\}/],
    ['[]', /got a list/],
    ['1', /got 1/],
    ['true', /got true/],
    ['{}', /names no setting/],
    ['{"extra":1}', /unknown field 'extra'/],
    ['{"off":"yes"}', /off: must be true, got "yes"/],
    ['{"off":true,"mbps":5}', /off: comes alone/],
    ['{"mbps":5,"bandwidthBps":1000}', /give one of them, not both/],
  ])('a link body %s is 400 naming the problem, and changes nothing', async (body, message) => {
    const { app, control } = rig();
    const r = await call(app, 'PUT', '/v1/links/device/edge', body);
    expect(r).toMatchObject({ status: 400, body: { code: 'E_BAD_INPUT' } });
    expect(r.body.error).toMatch(message);
    expect(control.setLinkEmulation).not.toHaveBeenCalled();
  });

  it('a malformed JSON body is 400; one past maxControlBodyBytes is 413', async () => {
    const { app, control } = rig();
    const bad = await call(app, 'PUT', '/v1/links/device/edge', '{"mbps": 10,');
    expect(bad).toMatchObject({ status: 400, body: { code: 'E_BAD_INPUT' } });
    expect(bad.body.error).toMatch(/^malformed JSON body/);
    const big = await call(app, 'PUT', '/v1/links/device/edge', { delayMs: 5, note: 'x'.repeat(2000) });
    expect(big).toMatchObject({
      status: 413,
      body: { code: 'E_TOO_LARGE', error: 'request body is larger than the 1024 byte limit' },
    });
    expect(await call(app, 'POST', '/v1/segments', { from: 0, to: 20, note: 'x'.repeat(2000) }, auth)).toMatchObject({
      status: 413,
    });
    expect(control.setLinkEmulation).not.toHaveBeenCalled();
    expect(control.prepareSegment).not.toHaveBeenCalled();
  });
});

describe('control: credentials and bounds', () => {
  const CHANGES: ['PUT' | 'DELETE', string, unknown][] = [
    ['PUT', '/v1/links/device/edge', { mbps: 10 }],
    ['PUT', '/v1/plan', { stages: [{ host: 'device', blocks: [0, 4] }] }],
    ['DELETE', '/v1/plan', undefined],
  ];

  it.each(CHANGES)('%s %s: no credential is 401, a wrong one 403, and nothing changes', async (method, url, body) => {
    const { app, control, coordinator } = rig();
    const none = await call(app, method, url, body, { authorization: '' });
    expect(none).toMatchObject({ status: 401, body: { code: 'E_UNAUTHORIZED' } });
    expect(none.body.error).toMatch(/needs the control token/);
    const wrong = await call(app, method, url, body, { authorization: 'Bearer nope' });
    expect(wrong).toMatchObject({
      status: 403,
      body: { code: 'E_FORBIDDEN', error: `${method} ${url}: the token is wrong` },
    });
    const spaced = await call(app, method, url, body, { authorization: `Bearer  ${CONTROL}` });
    expect(spaced.status).toBe(403);
    const basic = await call(app, method, url, body, { authorization: `Basic ${CONTROL}` });
    expect(basic.status).toBe(403);
    expect(control.setLinkEmulation).not.toHaveBeenCalled();
    expect(coordinator.pin).not.toHaveBeenCalled();
    expect(coordinator.unpin).not.toHaveBeenCalled();
  });

  it('the control token and the peer token (hosts forwarding a change) are both accepted', async () => {
    const { app, control } = rig();
    expect((await call(app, 'PUT', '/v1/links/device/edge', { mbps: 10 })).status).toBe(200);
    expect((await call(app, 'PUT', '/v1/links/device/edge', { mbps: 10 }, auth)).status).toBe(200);
    expect(control.setLinkEmulation).toHaveBeenCalledTimes(2);
  });

  it("reads: open on loopback, a token from elsewhere; 'token' always; 'open' never", async () => {
    const loop = rig();
    expect((await call(loop.app, 'GET', '/v1/status')).status).toBe(200);
    expect((await call(loop.app, 'GET', '/v1/status', undefined, {}, '10.1.2.3')).status).toBe(401);
    const ok = await call(loop.app, 'GET', '/v1/status', undefined, { authorization: `Bearer ${CONTROL}` }, '10.1.2.3');
    expect(ok.status).toBe(200);
    // A wrong token is refused even on loopback: a mistake worth hearing about.
    expect((await call(loop.app, 'GET', '/v1/links', undefined, { authorization: 'Bearer x' })).status).toBe(403);
    const strict = rig({ readAccess: 'token' });
    expect((await call(strict.app, 'GET', '/v1/profile')).status).toBe(401);
    expect((await call(strict.app, 'GET', '/v1/profile', undefined, auth)).status).toBe(200);
    const open = rig({ readAccess: 'open' });
    expect((await call(open.app, 'GET', '/v1/links', undefined, {}, '10.1.2.3')).status).toBe(200);
    // Health, metrics and inference are not the control API.
    expect((await call(strict.app, 'GET', '/v2/health/ready', undefined, {}, '10.1.2.3')).status).toBe(200);
  });

  it('a plan body with a field it does not know is a 400 naming the field', async () => {
    const { app, coordinator } = rig();
    const top = await call(app, 'PUT', '/v1/plan', { stages: [{ host: 'device', blocks: [0, 4] }], force: true });
    expect(top).toMatchObject({ status: 400, body: { error: 'force: unknown field (expected stages)' } });
    const inner = await call(app, 'PUT', '/v1/plan', { stages: [{ host: 'device', blocks: [0, 4], tier: 'x' }] });
    expect(inner).toMatchObject({
      status: 400,
      body: { error: 'stages[0].tier: unknown field (expected host, blocks)' },
    });
    expect(coordinator.pin).not.toHaveBeenCalled();
  });

  it('JSON nested past 64 levels is a 400 naming it, in a control body and in an infer request', async () => {
    const { app, coordinator, gateway } = rig();
    const deep = (n: number): string => '['.repeat(n) + ']'.repeat(n);
    const plan = await call(app, 'PUT', '/v1/plan', `{"stages": [{"host": "device", "blocks": ${deep(400)}}]}`);
    expect(plan).toMatchObject({ status: 400, body: { code: 'E_BAD_INPUT' } });
    expect(plan.body.error).toMatch(/JSON nested deeper than 64 levels/);
    expect(coordinator.pin).not.toHaveBeenCalled();
    const infer = await call(
      app,
      'POST',
      '/v2/models/tiny/infer',
      `{"inputs": [{"name": "x", "datatype": "FP32", "shape": ${deep(5000)}, "data": [1, 2, 3, 4]}]}`,
    );
    expect(infer).toMatchObject({ status: 400, body: { code: 'E_BAD_INPUT' } });
    expect(infer.body.error).toMatch(/JSON nested deeper than 64 levels/);
    expect(gateway.infer).not.toHaveBeenCalled();
    // Brackets inside strings do not count; 64 levels are fine.
    expect(depthExceededAt(`{"a": "${'['.repeat(100)}"}`)).toBe(-1);
    expect(depthExceededAt(deep(64))).toBe(-1);
    expect(depthExceededAt(deep(65))).toBe(64);
    // The server goes on answering.
    expect((await call(app, 'POST', '/v2/models/tiny/infer', X)).status).toBe(200);
  });
});

describe('control: plans', () => {
  it('GET /v1/plan is 503 E_NOT_READY before the first plan', async () => {
    expect(await call(rig().app, 'GET', '/v1/plan')).toMatchObject({ status: 503, body: { code: 'E_NOT_READY' } });
  });

  it('GET /v1/plan reports epoch, route and stages with the measured compute of each stage', async () => {
    const { app, coordinator } = rig();
    coordinator.current = active(7);
    const r = await call(app, 'GET', '/v1/plan');
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({
      epoch: 7,
      pinned: false,
      route: 'device[0:20) -> edge[20:40)',
      predicted: { latencyMs: 17.7, throughputRps: 250 },
    });
    expect(r.body.stages).toEqual([
      { host: 'device', tier: 'device', nodes: [0, 20], blocks: [0, 2], predictedComputeMs: 3, measuredComputeMs: 2.5 },
      { host: 'edge', tier: 'edge', nodes: [20, 40], blocks: [2, 4], predictedComputeMs: 4, measuredComputeMs: 3.5 },
    ]);
    expect((r.body.hops as { measuredRttMs: number | null }[]).map((h) => h.measuredRttMs)).toEqual([9, null]);
  });

  it('GET /v1/plan still answers when the links cannot be had', async () => {
    const { app, coordinator, cluster } = rig();
    coordinator.current = active(7);
    vi.mocked(cluster.links).mockRejectedValueOnce(new Error('edge unreachable'));
    const r = await call(app, 'GET', '/v1/plan');
    expect(r.status).toBe(200);
    expect((r.body.hops as { measuredRttMs: number | null }[]).map((h) => h.measuredRttMs)).toEqual([null, null]);
  });

  it('PUT /v1/plan validates the body shape, naming stages[i], then pins', async () => {
    const { app, coordinator } = rig();
    expect(await call(app, 'PUT', '/v1/plan', { stage: [] })).toMatchObject({
      status: 400,
      body: { code: 'E_BAD_INPUT' },
    });
    for (const s of [
      { host: 'edge', blocks: [2, '4'] },
      { host: 3, blocks: [2, 4] },
      { host: 'edge', blocks: [2] },
    ]) {
      const r = await call(app, 'PUT', '/v1/plan', { stages: [{ host: 'device', blocks: [0, 2] }, s] });
      expect(r, JSON.stringify(s)).toMatchObject({ status: 400, body: { code: 'E_BAD_INPUT' } });
      expect(r.body.error).toMatch(/^stages\[1\]: expected/);
    }
    expect(coordinator.pin).not.toHaveBeenCalled();

    const stages = [
      { host: 'device', blocks: [0, 2] },
      { host: 'edge', blocks: [2, 4] },
    ];
    const r = await call(app, 'PUT', '/v1/plan', { stages });
    expect(r).toMatchObject({
      status: 200,
      body: { epoch: 8, pinned: true, route: 'device[0:20) -> edge[20:40)', predictedLatencyMs: 17.7 },
    });
    expect(coordinator.pin.mock.calls).toEqual([[stages]]);
  });

  it("the coordinator's refusal of a pin keeps its code and message", async () => {
    const { app, coordinator } = rig();
    coordinator.pin.mockRejectedValueOnce(
      new CleaveError('E_BAD_INPUT', "stages[0].host: 'laptop' is not a host of this deployment"),
    );
    const r = await call(app, 'PUT', '/v1/plan', { stages: [{ host: 'laptop', blocks: [0, 4] }] });
    expect(r).toMatchObject({
      status: 400,
      body: { code: 'E_BAD_INPUT', error: "stages[0].host: 'laptop' is not a host of this deployment" },
    });
  });

  it('DELETE /v1/plan unpins', async () => {
    const { app, coordinator } = rig();
    const r = await call(app, 'DELETE', '/v1/plan');
    expect(r).toMatchObject({ status: 200, body: { epoch: 9, pinned: false } });
    expect(coordinator.unpin).toHaveBeenCalledTimes(1);
  });

  it('GET /v1/plans lists the history', async () => {
    const { app, coordinator } = rig();
    coordinator.plans = [active(1), active(2, true)];
    const r = await call(app, 'GET', '/v1/plans');
    expect(r.body).toEqual([
      {
        epoch: 1,
        route: 'device[0:20) -> edge[20:40)',
        pinned: false,
        adoptedAt: '2026-01-01T00:00:00.000Z',
        reason: 'start-up',
        predictedLatencyMs: 17.7,
      },
      {
        epoch: 2,
        route: 'device[0:20) -> edge[20:40)',
        pinned: true,
        adoptedAt: '2026-01-01T00:00:00.000Z',
        reason: 'pinned by PUT /v1/plan',
        predictedLatencyMs: 17.7,
      },
    ]);
  });

  it('without plan deps (not the origin) the plan endpoints are unknown', async () => {
    expect(await call(rig({ plan: false }).app, 'GET', '/v1/plan')).toMatchObject({
      status: 404,
      body: { code: 'E_NOT_FOUND' },
    });
  });
});
