/**
 * `npm run bench -- oip [--model mobilenetv2] [--requests 100] [--rounds 5] [--seconds 5] [--clients 4]`
 *
 * The Open Inference Protocol's two front ends on one deployment: HTTP with the binary tensor extension
 * (node:http, keep-alive) against gRPC (@grpc/grpc-js, raw_input_contents), for one 600 KB FP32 input
 * (MobileNetV2's 1x3x224x224) through the all-device route. Three hosts as OS processes on loopback, no
 * link emulation, no CPU quotas, one ORT thread each. Latency: K interleaved rounds of N sequential requests
 * per protocol, medians; throughput: `clients` closed loops for `seconds` per protocol.
 *
 * HTTP binary is the baseline. Goal: gRPC's median latency <= 1.15 x HTTP binary's (the ratio), so a client
 * that can only speak gRPC loses little, and the two answers are bit-identical.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ensureModel } from '../src/cli/commands/up.js';
import { OnnxModel } from '../src/graph/model.js';
import { resolveInputs } from '../src/graph/shapes.js';
import type { DeploymentConfig } from '../src/runtime/config.js';
import { OIP_PROTO, PROTO_OPTIONS } from '../src/runtime/grpc/server.js';
import { makeFeeds } from '../src/runtime/local/ort-local.js';
import { quantile } from '../src/planner/estimate.js';
import { launchDeployment } from '../src/runtime/process/launcher.js';
import { freePort, loopbackHosts, putJson } from '../test/helpers/deployment.js';
import { binaryBody } from './_oip.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string', default: 'mobilenetv2' },
    requests: { type: 'string', default: '100' },
    rounds: { type: 'string', default: '5' },
    seconds: { type: 'string', default: '5' },
    clients: { type: 'string', default: '4' },
  },
});
const N = Number(values.requests);
const ROUNDS = Number(values.rounds);
const SECONDS = Number(values.seconds);
const CLIENTS = Number(values.clients);
const GOAL = 1.15;
const NAME = values.model;

const dir = mkdtempSync(join(tmpdir(), 'cleave-bench-oip-'));
const repo = join(dir, 'models');
ensureModel(repo, NAME);
const file = join(repo, NAME, '1', 'model.onnx');
const specs = resolveInputs(OnnxModel.fromBytes(readFileSync(file), file));
const hosts = await loopbackHosts(['device', 'edge', 'cloud']);
const grpcPort = await freePort();
const config: DeploymentConfig = {
  model: NAME,
  hosts: [{ ...hosts[0], grpc: `127.0.0.1:${grpcPort}` }, ...hosts.slice(1)],
  profile: { repeats: 2, warmup: 1 },
};
const d = launchDeployment({
  config,
  modelsDir: repo,
  runDir: dir,
  env: { CLEAVE_CACHE: join(dir, 'cache'), LOG_LEVEL: 'warn' },
  onLine: (h, l) => process.stderr.write(`[${h}] ${l}\n`),
});

let lastLine: string | null = null;
try {
  await d.ready(180_000);
  const feeds = makeFeeds(specs);
  const input = specs[0];
  const x = feeds[input.name].data as Float32Array;
  const xBytes = Buffer.from(x.buffer, x.byteOffset, x.byteLength);
  const n = (await (await fetch(`${d.url}/v1/plan`)).json()) as { stages: { blocks: [number, number] | null }[] };
  const blocks = n.stages.reduce((m, s) => Math.max(m, s.blocks?.[1] ?? 0), 0);
  const pin = await putJson(`${d.url}/v1/plan`, { stages: [{ host: 'device', blocks: [0, blocks] }] }, d.controlToken);
  if (pin.status !== 200) throw new Error(`pinning all-device: ${pin.status} ${await pin.text()}`);

  // HTTP binary: header + raw bytes, binary outputs.
  const { header, body } = binaryBody(input, x);
  const port = Number(d.url.split(':').pop());
  const agent = new http.Agent({ keepAlive: true, maxSockets: CLIENTS });
  const httpOnce = (): Promise<Buffer> =>
    new Promise((resolve, reject) => {
      const req = http.request(
        {
          host: '127.0.0.1',
          port,
          path: `/v2/models/${NAME}/infer`,
          method: 'POST',
          agent,
          headers: {
            'inference-header-content-length': String(header.length),
            'content-type': 'application/octet-stream',
            'content-length': body.length,
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const all = Buffer.concat(chunks);
            if (res.statusCode !== 200) return reject(new Error(`HTTP ${res.statusCode}: ${all.toString()}`));
            resolve(all.subarray(Number(res.headers['inference-header-content-length'])));
          });
        },
      );
      req.on('error', reject);
      req.end(body);
    });

  // gRPC: one channel, raw contents.
  const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(OIP_PROTO, PROTO_OPTIONS)) as any;
  const client = new pkg.inference.GRPCInferenceService(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure(), {
    'grpc.max_receive_message_length': -1,
    'grpc.max_send_message_length': -1,
  });
  const request = {
    model_name: NAME,
    inputs: [{ name: input.name, datatype: 'FP32', shape: input.dims }],
    raw_input_contents: [xBytes],
  };
  const grpcOnce = (): Promise<Buffer> =>
    new Promise((resolve, reject) =>
      client.ModelInfer(request, { deadline: Date.now() + 30_000 }, (err: Error | null, res: any) =>
        err ? reject(err) : resolve(Buffer.concat(res.raw_output_contents as Buffer[])),
      ),
    );

  // Same answer both ways, and both warm.
  const [a, b] = [await httpOnce(), await grpcOnce()];
  const identical = Buffer.compare(a, b) === 0;
  for (let i = 0; i < 20; i++) await Promise.all([httpOnce(), grpcOnce()]);

  // The device host's GC time (every kind), from its /metrics: what each protocol's garbage costs it.
  const gcSeconds = async (): Promise<number> => {
    const text = await (await fetch(`${d.url}/metrics`)).text();
    let sum = 0;
    for (const m of text.matchAll(/^cleave_process_nodejs_gc_duration_seconds_sum\{[^}]*\} ([\d.e+-]+)/gm))
      sum += Number(m[1]);
    return sum;
  };
  const times: Record<'http' | 'grpc', number[]> = { http: [], grpc: [] };
  const gcMs: Record<'http' | 'grpc', number> = { http: 0, grpc: 0 };
  for (let r = 0; r < ROUNDS; r++)
    for (const [k, once] of [
      ['http', httpOnce],
      ['grpc', grpcOnce],
    ] as const) {
      const g0 = await gcSeconds();
      for (let i = 0; i < N; i++) {
        const t0 = performance.now();
        await once();
        times[k].push(performance.now() - t0);
      }
      gcMs[k] += ((await gcSeconds()) - g0) * 1000;
    }

  const rps = async (once: () => Promise<Buffer>): Promise<number> => {
    let done = 0;
    const until = performance.now() + SECONDS * 1000;
    await Promise.all(
      Array.from({ length: CLIENTS }, async () => {
        while (performance.now() < until) {
          await once();
          done++;
        }
      }),
    );
    return done / SECONDS;
  };
  const httpRps = await rps(httpOnce);
  const grpcRps = await rps(grpcOnce);
  client.close();
  agent.destroy();

  const med = (k: 'http' | 'grpc'): number => quantile(times[k], 0.5);
  const p90 = (k: 'http' | 'grpc'): number => quantile(times[k], 0.9);
  const ratio = med('grpc') / med('http');
  const r2 = (v: number): number => Math.round(v * 100) / 100;
  console.log(
    `oip: ${NAME}, ${x.byteLength} B input, all-device: HTTP binary median ${r2(med('http'))} ms (p90 ${r2(p90('http'))}), ` +
      `gRPC ${r2(med('grpc'))} ms (p90 ${r2(p90('grpc'))}); ${CLIENTS} clients: HTTP ${r2(httpRps)} req/s, gRPC ${r2(grpcRps)} req/s`,
  );
  // Printed after the deployment stops: a host's last log lines (links closing) must not follow it.
  lastLine = JSON.stringify({
    name: 'oip',
    model: NAME,
    inputBytes: x.byteLength,
    requests: N * ROUNDS,
    http: {
      medianMs: r2(med('http')),
      p90Ms: r2(p90('http')),
      rps: r2(httpRps),
      deviceGcMsPerRequest: r2(gcMs.http / (N * ROUNDS)),
    },
    grpc: {
      medianMs: r2(med('grpc')),
      p90Ms: r2(p90('grpc')),
      rps: r2(grpcRps),
      deviceGcMsPerRequest: r2(gcMs.grpc / (N * ROUNDS)),
    },
    identical,
    ratio: r2(ratio),
    goal: `gRPC median latency <= ${GOAL} x HTTP binary's, answers bit-identical`,
    pass: ratio <= GOAL && identical,
  });
} finally {
  await d.stop();
  rmSync(dir, { recursive: true, force: true });
}
if (lastLine !== null) console.log(lastLine);
