/**
 * Wire codecs end to end: three real hosts on loopback, a slow emulated device -> edge link. The planner
 * picks a codec for the slow hop, the frames carry it, the answers stay within the error budget (lossy) or
 * equal to single-process ORT (lossless), and bad codec settings are refused by name.
 */
import ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { zooEntry } from '../src/graph/zoo/index.js';
import { createSession } from '../src/runtime/local/ort-local.js';
import {
  allclose,
  inferBinary,
  putJson,
  relativeError,
  startDeployment,
  type Deployment,
  type OipTensor,
} from './helpers/deployment.js';

const NAME = 'mnv2';
const DIMS = [1, 3, 64, 64];
const BUDGET = 0.05;

function input(seed: number): OipTensor {
  const n = DIMS.reduce((a, d) => a * d, 1);
  const data = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    data[i] = s / 4294967296;
  }
  return { name: 'input', dtype: 'float32', dims: DIMS, data };
}

describe('runtime: wire codecs on a slow link', () => {
  /** The device's bytes sent to the edge, as /metrics reports them: on the wire, and had they been raw. */
  const linkBytes = async (): Promise<{ coded: number; uncoded: number }> => {
    const text = await (await fetch(`${d.url}/metrics`)).text();
    const read = (name: string): number =>
      Number(new RegExp(`${name}\\{[^}]*from="dev"[^}]*to="edg"[^}]*\\} (\\d+)`).exec(text)?.[1] ?? NaN);
    return { coded: read('cleave_link_bytes_sent'), uncoded: read('cleave_link_uncoded_bytes_sent') };
  };
  let d: Deployment;
  let bytes: Uint8Array;
  let want: Record<string, Float32Array>;
  const x = input(9);

  beforeAll(async () => {
    bytes = zooEntry('mobilenetv2')!.build({ small: true }).toBytes();
    d = await startDeployment({
      modelName: NAME,
      modelBytes: bytes,
      // 2 Mbit/s: the 48 KiB input takes ~200 ms raw, ~50 ms in int8.
      links: [{ from: 'dev', to: 'edg', mbps: 2, delayMs: 1 }],
      controller: { paused: true, maxError: BUDGET },
    });
    const s = await createSession(bytes);
    const out = await s.run({ input: new ort.Tensor('float32', x.data, DIMS) });
    await s.release();
    want = Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.data as Float32Array]));
  }, 120_000);
  afterAll(async () => {
    await d?.close();
  });

  it('the profile measured every codec: ratios at every boundary, lossy errors at the input', async () => {
    const profile = await (await fetch(`${d.url}/v1/profile`)).json();
    const n = d.device.analysis.blocks.length;
    for (const c of ['brotli', 'fp16', 'fp16-brotli', 'int8', 'int8-brotli']) {
      expect(profile.codecs[c].ratio).toHaveLength(n + 1);
      expect(profile.codecs[c].encodeMsPerByte).toBeGreaterThan(0);
    }
    expect(profile.codecs.fp16.ratio[0]).toBe(0.5);
    expect(profile.codecs.int8.ratio[0]).toBe(0.25);
    expect(profile.codecs.brotli.error).toBeUndefined();
    const e0 = profile.codecs.int8.error[0];
    expect(e0).toBeGreaterThan(0);
    expect(e0).toBeLessThan(BUDGET);
  });

  it('a plan over the slow hop takes a lossy codec within the budget, and the answer stays within it', async () => {
    const n = d.device.analysis.blocks.length;
    const pin = await putJson(`${d.url}/v1/plan`, {
      stages: [
        { host: 'edg', blocks: [0, Math.floor(n / 2)] },
        { host: 'cld', blocks: [Math.floor(n / 2), n] },
      ],
    });
    expect(pin.status, await pin.clone().text()).toBe(200);
    const plan = await (await fetch(`${d.url}/v1/plan`)).json();
    const hop = plan.hops[0];
    expect(hop.from).toBe('dev');
    expect(['int8', 'int8-brotli', 'fp16', 'fp16-brotli']).toContain(hop.codec);
    expect(hop.bytes).toBeLessThan(hop.rawBytes * 0.6);
    expect(plan.route).toContain(`-${hop.codec}->`);
    const sentBefore = await linkBytes();
    for (let i = 0; i < 3; i++) {
      const r = await inferBinary(d.url, NAME, [x]);
      expect(r.status, JSON.stringify(r.json)).toBe(200);
      for (const [k, v] of Object.entries(r.outputs)) {
        const err = relativeError(v, want[k]);
        expect(err).toBeGreaterThan(0); // it did travel coded
        expect(err).toBeLessThan(BUDGET);
      }
    }
    // /metrics: the link sent the coded bytes, and says what they would have been raw.
    const sent = await linkBytes();
    const coded = sent.coded - sentBefore.coded;
    const uncoded = sent.uncoded - sentBefore.uncoded;
    expect(uncoded - coded).toBeGreaterThanOrEqual(3 * (hop.rawBytes - hop.bytes) * 0.9);
  });

  it('with no error budget the hop is lossless and the answer equals single-process ORT', async () => {
    const n = d.device.analysis.blocks.length;
    // The pin plans with the deployment's settings; a deployment without a budget is what this emulates.
    const r0 = await putJson(`${d.url}/v1/controller`, { codecs: ['brotli'] });
    expect(r0.status).toBe(200);
    const pin = await putJson(`${d.url}/v1/plan`, {
      stages: [
        { host: 'dev', blocks: [0, 1] },
        { host: 'edg', blocks: [1, n] },
      ],
    });
    expect(pin.status).toBe(200);
    const plan = await (await fetch(`${d.url}/v1/plan`)).json();
    expect(plan.hops[0].codec).toBe('brotli'); // compressed off the event loop (pipeline), bit-exact
    const r = await inferBinary(d.url, NAME, [x]);
    expect(r.status).toBe(200);
    for (const [k, v] of Object.entries(r.outputs)) expect(allclose(v, want[k]).ok).toBe(true);
  });

  it('refuses an unknown codec setting, naming it, and keeps serving', async () => {
    const r = await putJson(`${d.url}/v1/controller`, { codecs: ['zstd'] });
    expect(r.status).toBe(400);
    expect(r.headers.get('content-type')).toMatch(/^application\/json/);
    expect((await r.json()).error).toMatch(/'zstd' is not a codec/);
    const bad = await putJson(`${d.url}/v1/controller`, { maxError: -1 });
    expect(bad.status).toBe(400);
    expect((await bad.json()).error).toMatch(/maxError/);
    expect((await inferBinary(d.url, NAME, [x])).status).toBe(200);
  });
});
