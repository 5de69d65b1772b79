/**
 * `npm run bench -- codec [--models resnet50,mobilenetv2] [--mbps 5,20,100] [--requests N] [--rounds K]
 *  [--max-error E] [--scenarios hosts,thin]`
 *
 * End-to-end latency with the planner's wire-codec choice against raw tensors, in the same run: three OS
 * processes on loopback, the device's uplinks (device -> edge and device -> cloud) emulated at each
 * bandwidth with 1 ms delay, edge -> cloud at 100 Mbit/s and 5 ms. For each bandwidth the plan is made
 * twice by the same planner on the same live measurements (`DELETE /v1/plan` re-plans): once with
 * `codecs: []` (raw) and once with every codec and the error budget `--max-error` (default 0.02, the
 * model output's relative error). The two are timed in K interleaved rounds of N sequential requests, so
 * drift on this shared machine hits both alike. Medians are quoted.
 *
 * Scenarios: `hosts` is the built-in deployment's hosts (device 1 thread at a quarter of a core, edge 1
 * thread at one core, cloud 2 threads: the device may compute); `thin` is the same with the device
 * running no block (a camera that only uploads, the Scission `--no-tier device` case).
 *
 * Goals: at the slowest bandwidth, codec latency <= 0.5 x raw for each model in the `thin` scenario, where
 * the hop is the cost; at the fastest, never slower in every scenario: the codec plans keep every hop raw
 * (plans the raw planner could make too, so a gap between the medians is the planner's near-equal choices
 * trading places between rounds) or they measure <= 1.05 x raw. The `hosts` scenario at the slowest bandwidth is reported, not a goal: there the device computes
 * the whole model rather than upload, and a codec can only beat that by as much as the device is slow.
 * Also reported per model: each codec's ratio (median over boundaries), encode and decode throughput on the
 * device, its output error at the input, and the codec answer's error against the raw one.
 */
import http from 'node:http';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ensureModel } from '../src/cli/commands/up.js';
import type { DeploymentConfig } from '../src/runtime/config.js';
import { launchDeployment } from '../src/runtime/process/launcher.js';
import { quantile } from '../src/planner/estimate.js';
import { OnnxModel } from '../src/graph/model.js';
import { resolveInputs } from '../src/graph/shapes.js';
import { makeFeeds } from '../src/runtime/local/ort-local.js';
import { deleteWith, inferBinary, loopbackHosts, putJson, relativeError } from '../test/helpers/deployment.js';
import { binaryBody, postInfer } from './_oip.js';
import { readFileSync } from 'node:fs';

const { values } = parseArgs({
  options: {
    models: { type: 'string', default: 'resnet50,mobilenetv2' },
    mbps: { type: 'string', default: '5,20,100' },
    requests: { type: 'string', default: '12' },
    rounds: { type: 'string', default: '3' },
    'max-error': { type: 'string', default: '0.02' },
    scenarios: { type: 'string', default: 'thin,hosts' },
  },
});
const N = Number(values.requests);
const ROUNDS = Number(values.rounds);
const MAX_ERROR = Number(values['max-error']);
const BANDWIDTHS = values.mbps.split(',').map(Number);
const SCENARIOS = values.scenarios.split(',');
for (const s of SCENARIOS) if (s !== 'hosts' && s !== 'thin') throw new Error(`--scenarios: hosts or thin, got ${s}`);
if (!BANDWIDTHS.every((b) => b > 0)) throw new Error(`--mbps: positive numbers, got ${values.mbps}`);
const SLOW = Math.min(...BANDWIDTHS);
const FAST = Math.max(...BANDWIDTHS);
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const log = (s: string): boolean => process.stderr.write(`${s}\n`);

interface PlanView {
  route: string;
  predicted: { latencyMs: number };
  hops: { from: string; to: string; codec: string; bytes: number; rawBytes: number; kind: string }[];
}

/** The same routes, each the same number of times (in whatever order the rounds chose them). */
const sameCounts = (a: Record<string, number>, b: Record<string, number>): boolean =>
  Object.keys(a).length === Object.keys(b).length && Object.entries(a).every(([k, v]) => b[k] === v);
const argmax = (v: Float32Array): number => v.reduce((best, x, i) => (x > v[best] ? i : best), 0);
const r2 = (x: number): number => Math.round(x * 100) / 100;
const r4 = (x: number): number => Number(x.toPrecision(4));

const rows: Record<string, unknown>[] = [];
const codecFigures: Record<string, unknown> = {};
for (const name of values.models.split(',')) {
  const dir = mkdtempSync(join(tmpdir(), 'cleave-bench-codec-'));
  const repo = join(dir, 'models');
  // Profiles are kept between runs (the hosts' cache), models rebuilt into this run's repository.
  const cache = join(homedir(), '.cache', 'cleave');
  mkdirSync(cache, { recursive: true });
  ensureModel(repo, name);
  const file = join(repo, name, '1', 'model.onnx');
  const specs = resolveInputs(OnnxModel.fromBytes(readFileSync(file), file));
  const x = makeFeeds(specs)[specs[0].name].data as Float32Array;
  const { header, body } = binaryBody(specs[0], x);
  const [device, edge, cloud] = await loopbackHosts(['device', 'edge', 'cloud'], [1, 1, 2]);
  const config: DeploymentConfig = {
    model: name,
    hosts: [{ ...device, cpus: 0.25 }, { ...edge, cpus: 1 }, cloud],
    links: [
      { from: 'device', to: 'edge', mbps: SLOW, delayMs: 1 },
      { from: 'device', to: 'cloud', mbps: SLOW, delayMs: 1 },
      { from: 'edge', to: 'cloud', mbps: 100, delayMs: 5 },
    ],
    profile: { repeats: 3, warmup: 1 },
    controller: { paused: true },
  };
  const d = launchDeployment({
    config,
    modelsDir: repo,
    runDir: dir,
    env: { CLEAVE_CACHE: cache, LOG_LEVEL: 'warn' },
    onLine: (h, l) => log(`[${h}] ${l}`),
  });
  try {
    await d.ready(900_000);
    const port = Number(d.origin.listen.split(':').pop());
    const put = async (path: string, b: unknown): Promise<void> => {
      const r = await putJson(`${d.url}${path}`, b, d.controlToken);
      if (r.status !== 200) throw new Error(`PUT ${path}: ${await r.text()}`);
    };
    const profile = (await (await fetch(`${d.url}/v1/profile`)).json()) as {
      codecs: Record<
        string,
        { encodeMsPerByte: number; decodeMsPerByte: number; ratio: number[]; error?: (number | null)[] }
      >;
    };
    codecFigures[name] = Object.fromEntries(
      Object.entries(profile.codecs).map(([c, f]) => [
        c,
        {
          ratioMedian: r4(quantile(f.ratio.slice(0, -1), 0.5)),
          ratioAtInput: f.ratio[0],
          encodeMBps: r2(1 / f.encodeMsPerByte / 1000),
          decodeMBps: r2(1 / f.decodeMsPerByte / 1000),
          ...(f.error
            ? {
                errorAtInput: f.error[0],
                errorMedian: r4(
                  quantile(
                    f.error.filter((e): e is number => e !== null),
                    0.5,
                  ),
                ),
              }
            : {}),
        },
      ]),
    );
    const plan = async (): Promise<PlanView> => (await (await fetch(`${d.url}/v1/plan`)).json()) as PlanView;
    const replan = async (wire: { codecs: string[] | null; maxError: number }, thin: boolean): Promise<PlanView> => {
      await put('/v1/controller', {
        ...wire,
        constraints: thin ? [{ kind: 'noTier', tier: 'device', source: '--no-tier device' }] : [],
      });
      const r = await deleteWith(`${d.url}/v1/plan`, d.controlToken);
      if (r.status !== 200) throw new Error(`replan: ${await r.text()}`);
      return plan();
    };
    const time = async (into: number[]): Promise<void> => {
      for (let i = 0; i < 2; i++) await postInfer({ port, model: name, agent, header, body });
      for (let i = 0; i < N; i++) {
        const t0 = performance.now();
        const r = await postInfer({ port, model: name, agent, header, body });
        if (r.status !== 200) throw new Error(`infer: ${r.status}`);
        into.push(performance.now() - t0);
      }
    };
    for (const mbps of BANDWIDTHS) {
      for (const to of ['edge', 'cloud']) await put(`/v1/links/device/${to}`, { mbps, delayMs: 1 });
      // Until the device's own measurement of both uplinks is within 25 % of the setting.
      const t0 = Date.now();
      for (;;) {
        const links = (await (await fetch(`${d.url}/v1/links`)).json()) as {
          to: string;
          throughputBps: number | null;
        }[];
        const ok = ['edge', 'cloud'].every((to) => {
          const l = links.find((x) => x.to === to);
          return l?.throughputBps && Math.abs((l.throughputBps * 8) / 1e6 / mbps - 1) < 0.25;
        });
        if (ok || Date.now() - t0 > 30_000) break;
        await postInfer({ port, model: name, agent, header, body }); // traffic measures the link too
        await new Promise((r) => setTimeout(r, 300));
      }
      for (const scenario of SCENARIOS) {
        const thin = scenario === 'thin';
        const raw: number[] = [];
        const coded: number[] = [];
        let rawPlan: PlanView | undefined;
        let codecPlan: PlanView | undefined;
        // Each round plans afresh on the live measurements: the routes of every round, with their counts.
        const rawRoutes: Record<string, number> = {};
        const codecRoutes: Record<string, number> = {};
        let answerError = NaN;
        let top1Agrees = false;
        for (let k = 0; k < ROUNDS; k++) {
          rawPlan = await replan({ codecs: [], maxError: 0 }, thin);
          rawRoutes[rawPlan.route] = (rawRoutes[rawPlan.route] ?? 0) + 1;
          await time(raw);
          const want =
            k === 0
              ? await inferBinary(d.url, name, [
                  { name: specs[0].name, dtype: 'float32', dims: specs[0].dims, data: x },
                ])
              : undefined;
          codecPlan = await replan({ codecs: null, maxError: MAX_ERROR }, thin);
          codecRoutes[codecPlan.route] = (codecRoutes[codecPlan.route] ?? 0) + 1;
          await time(coded);
          if (want) {
            const got = await inferBinary(d.url, name, [
              { name: specs[0].name, dtype: 'float32', dims: specs[0].dims, data: x },
            ]);
            const [k0] = Object.keys(want.outputs);
            answerError = relativeError(got.outputs[k0], want.outputs[k0]);
            top1Agrees = argmax(got.outputs[k0]) === argmax(want.outputs[k0]);
          }
        }
        const rawMs = quantile(raw, 0.5);
        const codecMs = quantile(coded, 0.5);
        const row = {
          model: name,
          scenario,
          mbps,
          rawMs: r2(rawMs),
          codecMs: r2(codecMs),
          ratio: r4(codecMs / rawMs),
          rawRoutes,
          codecRoutes,
          sameRoutes: sameCounts(rawRoutes, codecRoutes),
          // The last round's predictions and coded hops; the answer's error is the first round's.
          rawPredictedMs: r2(rawPlan!.predicted.latencyMs),
          codecPredictedMs: r2(codecPlan!.predicted.latencyMs),
          codecBytesOut: codecPlan!.hops
            .filter((h) => h.kind === 'forward')
            .map((h) => `${h.codec}:${Math.round(h.bytes)}/${h.rawBytes}`),
          answerError: r4(answerError),
          top1Agrees,
        };
        log(JSON.stringify(row));
        rows.push(row);
      }
    }
  } finally {
    await d.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
agent.destroy();

const at = (scenario: string, mbps: number) => rows.filter((r) => r.scenario === scenario && r.mbps === mbps);
const slowThin = at('thin', SLOW).map((r) => r.ratio as number);
// Never slower at the fastest bandwidth: the planner kept the raw plan (the same route runs the same way,
// whatever the two medians say on this shared machine), or its codec plan measured within 5 % of raw.
const fastRows = rows.filter((r) => r.mbps === FAST);
// A codec plan whose every hop stayed raw is one the raw planner could have made: any gap is the live
// estimates moving between rounds (near-equal partitions trading places), not a codec.
const CODED_HOP = /-(brotli|fp16|fp16-brotli|int8|int8-brotli)->/;
const codecUsed = (r: Record<string, unknown>): boolean =>
  Object.keys(r.codecRoutes as Record<string, number>).some((route) => CODED_HOP.test(route));
const fastOk = (r: Record<string, unknown>): boolean => !codecUsed(r) || (r.ratio as number) <= 1.05;
const goals = {
  slowThin: {
    goal: `codec <= 0.5 x raw at ${SLOW} Mbit/s (thin device), each model`,
    worst: Math.max(...slowThin),
    pass: slowThin.length > 0 && slowThin.every((r) => r <= 0.5),
  },
  fast: {
    goal: `at ${FAST} Mbit/s every hop kept raw, or codec <= 1.05 x raw, every scenario`,
    worst: Math.max(...fastRows.filter(codecUsed).map((r) => r.ratio as number), 0),
    pass: fastRows.every(fastOk),
  },
};
console.log(
  JSON.stringify({
    name: 'codec',
    maxError: MAX_ERROR,
    rows,
    codecs: codecFigures,
    goals,
    ratio: goals.slowThin.worst,
    goal: `${goals.slowThin.goal}; ${goals.fast.goal}`,
    pass: goals.slowThin.pass && goals.fast.pass,
  }),
);
