/**
 * Load test of a running deployment's inference endpoint with autocannon:
 *
 *   node --import tsx loadtest/infer.ts [--url http://127.0.0.1:8000] [--model resnet50]
 *        [--connections 4] [--seconds 10] [--json]
 *
 * Reads the model's input signature from GET /v2/models/{m}, sends binary-extension requests with random
 * inputs (one body reused), and prints requests/s and latency percentiles; the last line is JSON (with
 * --json, the only line). Only targets the URL given (loopback by default), and stops after --seconds.
 */
import autocannon from 'autocannon';
import { parseArgs } from 'node:util';

const USAGE =
  'usage: npm run loadtest -- [--url http://127.0.0.1:8000] [--model resnet50] [--connections 4] [--seconds 10] [--json]';
let values;
try {
  values = parseArgs({
    options: {
      url: { type: 'string', default: 'http://127.0.0.1:8000' },
      model: { type: 'string' },
      connections: { type: 'string', default: '4' },
      seconds: { type: 'string', default: '10' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  }).values;
} catch (e) {
  console.error(`loadtest: ${(e as Error).message}\n${USAGE}`);
  process.exit(2);
}
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
for (const k of ['connections', 'seconds'] as const) {
  const n = Number(values[k]);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`loadtest: --${k} must be a positive integer, got '${values[k]}'`);
    process.exit(2);
  }
}
const url = values.url.replace(/\/$/, '');
const name = values.model ?? 'resnet50';
const meta = (await (await fetch(`${url}/v2/models/${name}`)).json()) as {
  inputs?: { name: string; datatype: string; shape: number[] }[];
  error?: string;
};
if (!meta.inputs) {
  console.error(`loadtest: ${url}/v2/models/${name}: ${meta.error ?? 'no metadata'}`);
  process.exit(2);
}
const SIZE: Record<string, number> = { FP32: 4, FP64: 8, INT64: 8, INT32: 4, UINT8: 1, INT8: 1, BOOL: 1, FP16: 2 };
const parts: Buffer[] = [];
const inputs = meta.inputs.map((i) => {
  const dims = i.shape.map((d) => (d < 0 ? 1 : d));
  const bytes = dims.reduce((a, d) => a * d, 1) * (SIZE[i.datatype] ?? 4);
  const data = Buffer.alloc(bytes);
  if (i.datatype === 'FP32') for (let k = 0; k < bytes / 4; k++) data.writeFloatLE(Math.random(), k * 4);
  parts.push(data);
  return { name: i.name, shape: dims, datatype: i.datatype, parameters: { binary_data_size: bytes } };
});
const header = Buffer.from(JSON.stringify({ inputs }));
const body = Buffer.concat([header, ...parts]);
const result = await autocannon({
  url: `${url}/v2/models/${name}/infer`,
  method: 'POST',
  connections: Number(values.connections),
  duration: Number(values.seconds),
  headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(header.length) },
  body,
});
const summary = {
  name: 'loadtest-infer',
  model: name,
  connections: Number(values.connections),
  seconds: Number(values.seconds),
  requests: result.requests.total,
  non2xx: result.non2xx,
  errors: result.errors,
  timeouts: result.timeouts,
  rps: result.requests.average,
  latencyMs: { p50: result.latency.p50, p90: result.latency.p90, p99: result.latency.p99, max: result.latency.max },
};
if (!values.json)
  console.log(
    `${summary.requests} requests in ${summary.seconds} s (${summary.rps.toFixed(1)} req/s), p50 ${summary.latencyMs.p50} ms, p99 ${summary.latencyMs.p99} ms, non-2xx ${summary.non2xx}`,
  );
console.log(JSON.stringify(summary));
