/**
 * Several models in one deployment (the config's `models`), on three real hosts on loopback: each model
 * answers with its own plan and controller, the control API takes `?model=`, a pin or an unload of one
 * leaves the other serving, the hosts' one session cache holds both models' segments, and unknown models are
 * refused by name everywhere (HTTP, control API, events stream, frames of a model a host does not serve).
 */
import { existsSync } from 'node:fs';
import ort from 'onnxruntime-node';
import { chromium } from 'playwright-core';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type * as grpc from '@grpc/grpc-js';
import { zooEntry } from '../src/graph/zoo/index.js';
import { oipClient } from './helpers/grpc.js';
import { createSession } from '../src/runtime/local/ort-local.js';
import {
  allclose,
  deleteWith,
  inferBinary,
  putJson,
  startDeployment,
  TEST_CONTROL_TOKEN,
  type Deployment,
  type OipTensor,
} from './helpers/deployment.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const A = 'mnv2';
const B = 'rn50';
/** In the repository, not in the config: loaded at run time. */
const C = 'mnv1';
let c: Uint8Array;

let d: Deployment;
const inputs: Record<string, OipTensor> = {};
const want: Record<string, Record<string, Float32Array>> = {};

function input(name: string, dims: number[], seed: number): OipTensor {
  const n = dims.reduce((a, x) => a * x, 1);
  return { name, dtype: 'float32', dims, data: Float32Array.from({ length: n }, (_, i) => ((i * seed) % 97) / 97) };
}

async function expectRight(model: string): Promise<number> {
  const r = await inferBinary(d.url, model, [inputs[model]]);
  expect(r.status, JSON.stringify(r.json)).toBe(200);
  for (const [k, v] of Object.entries(want[model])) expect(allclose(r.outputs[k], v).ok, `${model} ${k}`).toBe(true);
  return Number(r.json.outputs.length);
}

function post(path: string): Promise<Response> {
  return fetch(`${d.url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${TEST_CONTROL_TOKEN}` } });
}

beforeAll(async () => {
  const a = zooEntry('mobilenetv2')!.build({ small: true }).toBytes();
  const b = zooEntry('resnet50')!.build({ small: true }).toBytes();
  c = zooEntry('mobilenet')!.build({ small: true }).toBytes();
  d = await startDeployment({
    modelName: A,
    modelBytes: a,
    more: [{ name: B, bytes: b }],
    repoOnly: [{ name: C, bytes: c }],
    controller: { paused: true },
    grpc: true,
  });
  for (const [name, bytes] of [
    [A, a],
    [B, b],
  ] as const) {
    const spec = d.device.analysisOf(name).inputs[0];
    inputs[name] = input(spec.name, [...spec.dims], name === A ? 31 : 17);
    const s = await createSession(bytes);
    const out = await s.run({ [spec.name]: new ort.Tensor('float32', inputs[name].data, inputs[name].dims) });
    await s.release();
    want[name] = Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.data as Float32Array]));
  }
}, 180_000);

afterAll(async () => {
  await d?.close();
});

describe('several models in one deployment (real hosts on loopback)', () => {
  it('serves every model of the config: each answers right, each has its own plan, the repository index shows both ready', async () => {
    expect(d.device.models).toEqual([A, B]);
    await expectRight(A);
    await expectRight(B);
    for (const m of [A, B]) {
      const ready = await fetch(`${d.url}/v2/models/${m}/ready`);
      expect(ready.status).toBe(200);
      const meta = await (await fetch(`${d.url}/v2/models/${m}`)).json();
      expect(meta.name).toBe(m);
      expect(meta.inputs[0].name).toBe(inputs[m].name);
    }
    const a = await (await fetch(`${d.url}/v1/plan`)).json();
    const b = await (await fetch(`${d.url}/v1/plan?model=${B}`)).json();
    expect(a.model).toBe(A);
    expect(b.model).toBe(B);
    expect(b.stages.at(-1).blocks[1]).toBe(d.device.analysisOf(B).blocks.length);
    expect(a.stages.at(-1).blocks[1]).toBe(d.device.analysis.blocks.length);
    const index = await (await fetch(`${d.url}/v2/repository/index`, { method: 'POST' })).json();
    expect(index.map((m: { name: string; state: string }) => `${m.name}:${m.state}`).sort()).toEqual([
      `${C}:UNAVAILABLE`,
      `${A}:READY`,
      `${B}:READY`,
    ]);
    const stats = await (await fetch(`${d.url}/v2/models/stats`)).json();
    expect(stats.model_stats.map((s: { name: string }) => s.name)).toEqual([A, B]);
    expect(stats.model_stats.every((s: { inference_count: number }) => s.inference_count >= 1)).toBe(true);
    // Each model's metrics carry its name.
    const metrics = await (await fetch(`${d.url}/metrics`)).text();
    for (const m of [A, B])
      expect(metrics).toMatch(new RegExp(`cleave_plan_epoch\\{host="dev",model="${m}",tier="device"\\} [1-9]`));
  });

  it("pins one model's plan through every host and leaves the other's alone; both answer right; the hosts hold both models' segments", async () => {
    const before = await (await fetch(`${d.url}/v1/plan`)).json();
    const n = d.device.analysisOf(B).blocks.length;
    const third = Math.floor(n / 3);
    const pin = await putJson(`${d.url}/v1/plan?model=${B}`, {
      stages: [
        { host: 'dev', blocks: [0, third] },
        { host: 'edg', blocks: [third, 2 * third] },
        { host: 'cld', blocks: [2 * third, n] },
      ],
    });
    expect(pin.status, await pin.clone().text()).toBe(200);
    expect((await pin.json()).pinned).toBe(true);
    const after = await (await fetch(`${d.url}/v1/plan`)).json();
    expect(after.epoch).toBe(before.epoch);
    expect(after.route).toBe(before.route);
    expect(after.pinned).toBe(false);
    for (let i = 0; i < 3; i++) {
      await expectRight(B);
      await expectRight(A);
    }
    // The edge and the cloud hold B's segment, named by model, in the one executor A shares.
    for (const host of d.hosts.slice(1)) {
      const st = host.status();
      expect(st.segments.some((s) => s.model === B && s.warm)).toBe(true);
    }
    const history = await (await fetch(`${d.url}/v1/plans?model=${B}`)).json();
    expect(history.at(-1).reason).toBe('pinned by PUT /v1/plan');
    expect((await deleteWith(`${d.url}/v1/plan?model=${B}`)).status).toBe(200);
  });

  it.skipIf(!existsSync(CHROMIUM))(
    'the dashboard in Chromium follows the model its URL names, and its header switches between the models',
    async () => {
      const browser = await chromium.launch({
        executablePath: CHROMIUM,
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
      });
      const errors: string[] = [];
      try {
        const page = await browser.newPage();
        page.on('pageerror', (e) => errors.push(String(e)));
        const routeOf = async (m: string): Promise<string> =>
          (await (await fetch(`${d.url}/v1/plan?model=${m}`)).json()).route as string;
        const shows = (route: string) =>
          page.waitForFunction((r) => (document.getElementById('route')?.textContent ?? '').includes(r), route, {
            timeout: 30_000,
          });
        await page.goto(`${d.url}/?model=${B}`);
        await shows(await routeOf(B));
        await page.waitForFunction(() => !(document.getElementById('model-select') as HTMLSelectElement).hidden);
        expect(await page.$eval('#model-select', (x) => (x as HTMLSelectElement).value)).toBe(B);
        const options = await page.$$eval('#model-select option', (os) => os.map((o) => o.textContent));
        expect(options).toEqual([A, B]);
        expect(await page.textContent('#model')).toMatch(new RegExp(`^${B} `));
        await page.selectOption('#model-select', A);
        await page.waitForURL(new RegExp(`\\?model=${A}$`));
        await shows(await routeOf(A));
        expect(await page.textContent('#model')).toMatch(new RegExp(`^${A} `));
        expect(errors).toEqual([]);
      } finally {
        await browser.close();
      }
    },
    60_000,
  );

  it('unloads one model while the other keeps serving, and loads it again', async () => {
    const un = await post(`/v2/repository/models/${B}/unload`);
    expect(un.status, await un.clone().text()).toBe(200);
    const refused = await inferBinary(d.url, B, [inputs[B]]);
    expect(refused.status).toBe(503);
    expect(refused.json.error).toMatch(new RegExp(`model '${B}' is unloaded`));
    expect((await fetch(`${d.url}/v2/models/${B}/ready`)).status).toBe(503);
    await expectRight(A);
    // B's sessions are gone from every host; A's are not.
    for (const host of d.hosts) expect(host.status().segments.some((s) => s.model === B)).toBe(false);
    expect(d.hosts.some((h) => h.status().segments.some((s) => s.model === A))).toBe(true);
    const index = await (await fetch(`${d.url}/v2/repository/index`, { method: 'POST' })).json();
    expect(index.find((m: { name: string }) => m.name === B).state).toBe('UNAVAILABLE');
    const load = await post(`/v2/repository/models/${B}/load`);
    expect(load.status, await load.clone().text()).toBe(200);
    await expectRight(B);
  });

  it('refuses a model it does not serve by name: inference, control calls, the events stream; and keeps serving', async () => {
    const r = await inferBinary(d.url, 'nope', [inputs[A]]);
    expect(r.status).toBe(404);
    expect(r.json.error).toBe(`unknown model 'nope' (this deployment serves '${A}', '${B}')`);
    for (const path of [
      '/v1/plan?model=nope',
      '/v1/plans?model=nope',
      '/v1/controller?model=nope',
      '/v1/profile?model=nope',
    ]) {
      const res = await fetch(`${d.url}${path}`);
      expect(res.status, path).toBe(404);
      expect((await res.json()).error, path).toMatch(/model 'nope' is not served here \(models: mnv2, rn50\)/);
    }
    const bad = await fetch(`${d.url}/v1/plan?model=${A}&model=${B}`);
    expect(bad.status).toBe(400);
    expect((await bad.json()).error).toMatch(/^model: expected \?model=NAME once/);
    const pin = await putJson(`${d.url}/v1/plan?model=nope`, { stages: [{ host: 'dev', blocks: [0, 1] }] });
    expect(pin.status).toBe(404);
    const unload = await post('/v2/repository/models/nope/unload');
    expect(unload.status).toBe(404);
    // The events stream: an unknown model is a 404 on upgrade; a known one says which in its hello.
    const wsUrl = d.url.replace(/^http/, 'ws');
    const refusedWs = await new Promise<number>((resolve) => {
      const ws = new WebSocket(`${wsUrl}/v1/events?model=nope`);
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('open', () => resolve(101));
    });
    expect(refusedWs).toBe(404);
    const hello = await new Promise<Record<string, unknown>>((resolve, reject) => {
      const ws = new WebSocket(`${wsUrl}/v1/events?model=${B}`);
      ws.on('message', (m) => {
        resolve(JSON.parse(String(m)));
        ws.close();
      });
      ws.on('error', reject);
    });
    expect(hello).toMatchObject({ type: 'hello', model: B, models: [A, B] });
    await expectRight(A);
    await expectRight(B);
  });

  it('answers each model over gRPC too, bit-identical to HTTP', async () => {
    const client = oipClient(d.device.grpcPort as number) as grpc.Client &
      Record<string, (req: unknown, cb: (err: grpc.ServiceError | null, res: any) => void) => void>;
    try {
      for (const m of [A, B]) {
        const x = inputs[m];
        const res = await new Promise<any>((resolve, reject) =>
          client.ModelInfer(
            {
              model_name: m,
              inputs: [{ name: x.name, datatype: 'FP32', shape: x.dims }],
              raw_input_contents: [Buffer.from(x.data.buffer, x.data.byteOffset, x.data.byteLength)],
            },
            (err, r) => (err ? reject(err) : resolve(r)),
          ),
        );
        expect(res.model_name).toBe(m);
        const http = await inferBinary(d.url, m, [x]);
        for (const [i, o] of res.outputs.entries()) {
          const h = http.outputs[o.name];
          expect(Buffer.compare(res.raw_output_contents[i], Buffer.from(h.buffer, h.byteOffset, h.byteLength))).toBe(0);
        }
      }
    } finally {
      client.close();
    }
  });

  it("?model= on the events stream keeps that model's events: a pin of the other model is not among them", async () => {
    const wsUrl = d.url.replace(/^http/, 'ws');
    const seen: Record<string, unknown>[] = [];
    const ws = new WebSocket(`${wsUrl}/v1/events?model=${B}`);
    await new Promise<void>((resolve, reject) => {
      ws.on('message', (m) => {
        seen.push(JSON.parse(String(m)));
        if (seen.length === 1) resolve();
      });
      ws.on('error', reject);
    });
    try {
      const nA = d.device.analysis.blocks.length;
      const nB = d.device.analysisOf(B).blocks.length;
      expect((await putJson(`${d.url}/v1/plan`, { stages: [{ host: 'edg', blocks: [0, nA] }] })).status).toBe(200);
      expect(
        (await putJson(`${d.url}/v1/plan?model=${B}`, { stages: [{ host: 'cld', blocks: [0, nB] }] })).status,
      ).toBe(200);
      const t0 = Date.now();
      while (!seen.some((e) => e.type === 'plan-adopted') && Date.now() - t0 < 10_000)
        await new Promise((r) => setTimeout(r, 50));
      const adopted = seen.filter((e) => e.type === 'plan-adopted');
      expect(adopted.length).toBe(1);
      expect(adopted[0].model).toBe(B);
      expect(seen.every((e) => e.type === 'hello' || e.model === B)).toBe(true);
    } finally {
      ws.close();
      await deleteWith(`${d.url}/v1/plan`);
      await deleteWith(`${d.url}/v1/plan?model=${B}`);
    }
  });

  it('loads a model of the repository the config does not list: every host profiles it off its event loop, then it is planned and served', async () => {
    expect((await inferBinary(d.url, C, [inputs[A]])).status).toBe(404);
    // Every host's event loop keeps turning while it reads, analyses and profiles the model.
    let worstGapMs = 0;
    let last = performance.now();
    const ticker = setInterval(() => {
      const now = performance.now();
      worstGapMs = Math.max(worstGapMs, now - last);
      last = now;
    }, 10);
    const t0 = Date.now();
    // Two loads at once: one load, served once.
    const [load, again] = await Promise.all([
      post(`/v2/repository/models/${C}/load`),
      post(`/v2/repository/models/${C}/load`),
    ]);
    clearInterval(ticker);
    expect(load.status, await load.clone().text()).toBe(200);
    expect(await load.json()).toEqual({ name: C, state: 'READY' });
    expect(await again.json()).toEqual({ name: C, state: 'READY' });
    const loadMs = Date.now() - t0;
    expect(d.device.models).toEqual([A, B, C]);
    for (const host of d.hosts) expect(host.models).toContain(C);
    // The profile ran in a worker: the loop never stalled for the length of the load.
    expect(worstGapMs).toBeLessThan(loadMs / 2);
    const spec = d.device.analysisOf(C).inputs[0];
    inputs[C] = input(spec.name, [...spec.dims], 7);
    const s = await createSession(c);
    const out = await s.run({ [spec.name]: new ort.Tensor('float32', inputs[C].data, inputs[C].dims) });
    await s.release();
    want[C] = Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.data as Float32Array]));
    await expectRight(C);
    await expectRight(A);
    const plan = await (await fetch(`${d.url}/v1/plan?model=${C}`)).json();
    expect(plan.model).toBe(C);
    // It plans over every host like the others: a pin through the edge and the cloud answers right.
    const n = d.device.analysisOf(C).blocks.length;
    const pin = await putJson(`${d.url}/v1/plan?model=${C}`, {
      stages: [
        { host: 'edg', blocks: [0, 2] },
        { host: 'cld', blocks: [2, n] },
      ],
    });
    expect(pin.status, await pin.clone().text()).toBe(200);
    await expectRight(C);
    expect((await deleteWith(`${d.url}/v1/plan?model=${C}`)).status).toBe(200);
    const index = await (await fetch(`${d.url}/v2/repository/index`, { method: 'POST' })).json();
    expect(index.filter((m: { name: string }) => m.name === C).map((m: { state: string }) => m.state)).toEqual([
      'READY',
    ]);
    const stats = await (await fetch(`${d.url}/v2/models/stats`)).json();
    expect(stats.model_stats.map((x: { name: string }) => x.name)).toEqual([A, B, C]);
    // Loading it again does nothing; unloading it works as for the others.
    expect((await post(`/v2/repository/models/${C}/load`)).status).toBe(200);
    expect((await post(`/v2/repository/models/${C}/unload`)).status).toBe(200);
    expect((await inferBinary(d.url, C, [inputs[C]])).status).toBe(503);
    expect((await post(`/v2/repository/models/${C}/load`)).status).toBe(200);
    await expectRight(C);
  });

  it('a host that restarts is given the model loaded at run time when it rejoins, and serves it again', async () => {
    const edge = await d.restart(1);
    expect(edge.models).toEqual([A, B]); // its config's only
    const t0 = Date.now();
    while (!edge.models.includes(C) && Date.now() - t0 < 30_000) await new Promise((r) => setTimeout(r, 100));
    expect(edge.models).toEqual([A, B, C]);
    const n = d.device.analysisOf(C).blocks.length;
    // The pin waits for the edge's links to be measured again.
    const pin = await putJson(`${d.url}/v1/plan?model=${C}`, { stages: [{ host: 'edg', blocks: [0, n] }] });
    expect(pin.status, await pin.clone().text()).toBe(200);
    await expectRight(C);
    await expectRight(A);
    expect((await deleteWith(`${d.url}/v1/plan?model=${C}`)).status).toBe(200);
  });

  it("takes each model's controller settings on its own", async () => {
    const put = await putJson(`${d.url}/v1/controller?model=${B}`, { hysteresis: 0.3 });
    expect(put.status, await put.clone().text()).toBe(200);
    const a = await (await fetch(`${d.url}/v1/controller`)).json();
    const b = await (await fetch(`${d.url}/v1/controller?model=${B}`)).json();
    expect(b.settings.hysteresis).toBe(0.3);
    expect(a.settings.hysteresis).not.toBe(0.3);
  });
});
