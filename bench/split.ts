/**
 * `npm run bench -- split [--requests N] [--models resnet50,mobilenetv2]`
 *
 * End-to-end latency of a three-host route (device -> edge -> cloud, three OS processes on loopback, no
 * link emulation, no CPU quotas, one ORT thread each) measured at an HTTP client sending binary Open
 * Inference Protocol requests, divided by the same model run in one process with the same thread settings
 * (baseline, measured in the same run). Also reports the all-device route through the same gateway, which
 * separates the gateway's own cost from the split's. Goal: ratio <= 1.05 for each model.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import ort from 'onnxruntime-node';
import { OnnxModel } from '../src/graph/model.js';
import { resolveInputs } from '../src/graph/shapes.js';
import { analyze } from '../src/runtime/analysis.js';
import type { DeploymentConfig } from '../src/runtime/config.js';
import { launchDeployment } from '../src/runtime/launcher.js';
import { createSession, makeFeeds } from '../src/runtime/ort-local.js';
import { quantile } from '../src/runtime/profiler.js';
import { ensureModel } from '../src/cli/commands/up.js';
import { freePort } from '../test/helpers/deployment.js';


const { values } = parseArgs({ options: { requests: { type: 'string', default: '60' }, models: { type: 'string', default: 'resnet50,mobilenetv2' } } });
const N = Number(values.requests);
const GOAL = 1.05;
const agent = new http.Agent({ keepAlive: true });

async function timeLoop(n: number, fn: () => Promise<void>): Promise<number> {
  for (let i = 0; i < Math.max(5, n / 5); i++) await fn();
  const t: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await fn();
    t.push(performance.now() - t0);
  }
  return quantile(t, 0.5);
}

const results = [];
for (const name of values.models.split(',')) {
  const dir = mkdtempSync(join(tmpdir(), 'cleave-bench-split-'));
  const repo = join(dir, 'models');
  const quiet = process.stdout.write.bind(process.stdout);
  ensureModel(repo, name);
  const file = join(repo, name, '1', 'model.onnx');
  const model = OnnxModel.fromBytes(readFileSync(file), file);
  const specs = resolveInputs(model);
  const a = await analyze(model, specs);
  const n = a.blocks.length;
  // Cut where one small tensor crosses, near a third and two thirds of the model.
  const pick = (target: number): number => {
    let best = -1;
    for (let i = 1; i < n - 1; i++) {
      const c = a.blocks[i - 1].after;
      if (c.tensors.length !== 1) continue;
      if (best < 0 || Math.abs(i - target) < Math.abs(best - target)) best = i;
    }
    return best;
  };
  // A cut between an Add and its Relu breaks ORT's Add+Relu fusion: prefer the later of two neighbouring
  // single-tensor cuts of the same size (the block's output).
  const settle = (c: number): number => (c + 1 < n - 1 && a.blocks[c].after.tensors.length === 1 && a.blocks[c].after.bytes === a.blocks[c - 1].after.bytes ? c + 1 : c);
  const c1 = settle(pick(n / 3));
  const c2 = settle(pick((2 * n) / 3));
  const ports = [await freePort(), await freePort(), await freePort()];
  const config: DeploymentConfig = {
    model: name,
    hosts: [
      { name: 'device', tier: 'device', listen: `127.0.0.1:${ports[0]}`, threads: 1 },
      { name: 'edge', tier: 'edge', listen: `127.0.0.1:${ports[1]}`, threads: 1 },
      { name: 'cloud', tier: 'cloud', listen: `127.0.0.1:${ports[2]}`, threads: 1 },
    ],
    profile: { repeats: 3, warmup: 1 },
  };
  const d = launchDeployment({ config, modelsDir: repo, runDir: dir, env: { CLEAVE_CACHE: join(dir, 'cache'), LOG_LEVEL: 'warn' }, onLine: (h, l) => quiet(`[${h}] ${l}\n`) });
  try {
    await d.ready(180_000);
    const feeds = makeFeeds(specs);
    const x = feeds[specs[0].name];
    const xData = x.data as Float32Array;
    const header = Buffer.from(JSON.stringify({ inputs: [{ name: specs[0].name, shape: specs[0].dims, datatype: 'FP32', parameters: { binary_data_size: xData.byteLength } }], parameters: { binary_data_output: true } }));
    const body = Buffer.concat([header, Buffer.from(xData.buffer, xData.byteOffset, xData.byteLength)]);
    // node:http with keep-alive: fetch (undici) adds ~0.5 ms per request here, which is the client's cost.
    const port = Number(d.origin.listen.split(':').pop());
    const infer = (): Promise<void> =>
      new Promise((resolve, reject) => {
        const req = http.request(
          { host: '127.0.0.1', port, path: `/v2/models/${name}/infer`, method: 'POST', agent, headers: { 'inference-header-content-length': String(header.length), 'content-type': 'application/octet-stream', 'content-length': body.length } },
          (res) => {
            res.resume();
            res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`infer: ${res.statusCode}`))));
          },
        );
        req.on('error', reject);
        req.end(body);
      });
    // Stage compute as the hosts measured it (inside their ORT workers), to split e2e into compute and the rest.
    const stageCompute = async (): Promise<number[]> => {
      const p = (await (await fetch(`${d.url}/v1/plan`)).json()) as { stages: { measuredComputeMs: number | null }[] };
      return p.stages.map((s) => s.measuredComputeMs ?? 0);
    };
    const pin = async (stages: { host: string; blocks: [number, number] }[]): Promise<void> => {
      const r = await fetch(`${d.url}/v1/plan`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ stages }) });
      if (r.status !== 200) throw new Error(`pin: ${await r.text()}`);
    };
    await pin([{ host: 'device', blocks: [0, c1] }, { host: 'edge', blocks: [c1, c2] }, { host: 'cloud', blocks: [c2, n] }]);
    const split = await timeLoop(N, infer);
    const splitCompute = await stageCompute();
    await pin([{ host: 'device', blocks: [0, n] }]);
    const single = await timeLoop(N, infer);
    const singleCompute = await stageCompute();

    const s = await createSession(model.bytes, { intraOpThreads: 1 });
    const baseline = await timeLoop(N, async () => {
      await s.run({ [specs[0].name]: new ort.Tensor('float32', xData, specs[0].dims) });
    });
    await s.release();
    const frontier = (i: number): number => a.blocks[i - 1].after.bytes ?? 0;
    results.push({
      model: name,
      blocks: n,
      cuts: [c1, c2],
      frontierBytes: [frontier(c1), frontier(c2)],
      baselineMs: round(baseline),
      allDeviceViaGatewayMs: round(single),
      threeHostMs: round(split),
      threeHostStageComputeMs: splitCompute.map(round),
      threeHostOverheadMs: round(split - splitCompute.reduce((x, y) => x + y, 0)),
      allDeviceComputeMs: round(singleCompute[0] ?? 0),
      ratio: round(split / baseline),
      gatewayRatio: round(single / baseline),
    });
  } finally {
    await d.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

const ratio = Math.max(...results.map((r) => r.ratio));
console.log(
  JSON.stringify({
    name: 'split',
    figures: { requests: N, models: results, baseline: 'same model, one process, in-process session.run with 1 intra-op thread (median)' },
    ratio,
    goal: `three-host route end to end (HTTP binary request, median) / one-process run <= ${GOAL} for each model`,
    pass: ratio <= GOAL,
  }),
);
