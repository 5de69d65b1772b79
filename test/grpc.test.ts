/**
 * The Open Inference Protocol over gRPC against three real hosts on loopback, driven by a @grpc/grpc-js
 * client generated (by @grpc/proto-loader) from the same proto, built the way generated clients build
 * requests: raw_input_contents or typed contents, int64 shapes, call deadlines. Outputs must equal the HTTP
 * gateway's bit for bit; bad input gets the gRPC status that names it; the deployment keeps serving.
 */
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { zooEntry } from '../src/graph/zoo/index.js';
import { oipClient } from './helpers/grpc.js';
import { CleaveError } from '../src/errors.js';
import http2 from 'node:http2';
import { GRPC_RECEIVE_WINDOW, grpcError } from '../src/runtime/grpc/server.js';
import { inferBinary, putJson, startDeployment, deleteWith, type Deployment } from './helpers/deployment.js';

type Callback = (err: grpc.ServiceError | null, res: any) => void;
type Client = grpc.Client & Record<string, (req: unknown, opts: grpc.CallOptions, cb: Callback) => void>;

let d: Deployment;
let client: Client;
const bytes = zooEntry('mobilenetv2')!.build({ small: true }).toBytes();
const dims = [1, 3, 64, 64];
const x = Float32Array.from({ length: 3 * 64 * 64 }, (_, i) => ((i * 29) % 97) / 97);
let inputName: string;
let outputNames: string[];

beforeAll(async () => {
  d = await startDeployment({ modelName: 'mnv2', modelBytes: bytes, grpc: true, limits: { maxBodyBytes: 1_000_000 } });
  inputName = d.device.analysis.model.inputs[0].name;
  outputNames = d.device.analysis.model.outputs.map((o) => o.name);
  client = oipClient(d.device.grpcPort as number) as Client;
}, 120_000);

afterAll(async () => {
  client?.close();
  await d?.close();
});

function rpc(method: string, req: unknown, deadlineMs = 20_000): Promise<any> {
  return new Promise((resolve, reject) =>
    client[method](req, { deadline: Date.now() + deadlineMs }, (err, res) => (err ? reject(err) : resolve(res))),
  );
}

async function status(method: string, req: unknown, deadlineMs?: number): Promise<grpc.ServiceError> {
  try {
    await rpc(method, req, deadlineMs);
  } catch (e) {
    return e as grpc.ServiceError;
  }
  throw new Error(`${method} succeeded`);
}

const raw = (a: Float32Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
const request = (over: Record<string, unknown> = {}) => ({
  model_name: 'mnv2',
  inputs: [{ name: inputName, datatype: 'FP32', shape: dims }],
  raw_input_contents: [raw(x)],
  ...over,
});

describe('OIP over gRPC (real hosts on loopback)', () => {
  it('answers health and metadata as the HTTP side does', async () => {
    expect(await rpc('ServerLive', {})).toEqual({ live: true });
    expect(await rpc('ServerReady', {})).toEqual({ ready: true });
    expect(await rpc('ModelReady', { name: 'mnv2' })).toEqual({ ready: true });
    const meta = await rpc('ServerMetadata', {});
    expect(meta.name).toBe('cleave');
    expect(meta.version).toMatch(/^\d+\.\d+\.\d+/);
    const http = (await (await fetch(`${d.url}/v2/models/mnv2`)).json()) as any;
    const mm = await rpc('ModelMetadata', { name: 'mnv2' });
    expect(mm.name).toBe(http.name);
    expect(mm.versions).toEqual(http.versions);
    expect(mm.platform).toBe(http.platform);
    const specs = (l: any[]) => l.map((t) => ({ name: t.name, datatype: t.datatype, shape: t.shape.map(Number) }));
    expect(specs(mm.inputs)).toEqual(http.inputs);
    expect(specs(mm.outputs)).toEqual(http.outputs);
    const unknown = await status('ModelReady', { name: 'resnet' });
    expect(unknown.code).toBe(grpc.status.NOT_FOUND);
    expect(unknown.details).toMatch(/unknown model 'resnet' \(this deployment serves 'mnv2'\)/);
    expect((await status('ModelMetadata', { name: 'mnv2', version: '7' })).details).toMatch(/has no version '7'/);
  });

  it('infers with raw contents, bit-identical to the HTTP binary route, through a split across all hosts', async () => {
    const n = d.device.analysis.blocks.length;
    const pin = await putJson(`${d.url}/v1/plan`, {
      stages: [
        { host: 'dev', blocks: [0, Math.floor(n / 3)] },
        { host: 'edg', blocks: [Math.floor(n / 3), Math.floor((2 * n) / 3)] },
        { host: 'cld', blocks: [Math.floor((2 * n) / 3), n] },
      ],
    });
    expect(pin.status).toBe(200);
    try {
      const res = await rpc('ModelInfer', request({ id: 'g-1' }));
      expect(res.model_name).toBe('mnv2');
      expect(res.id).toBe('g-1');
      expect(res.outputs.map((o: any) => o.name)).toEqual(outputNames);
      const http = await inferBinary(d.url, 'mnv2', [{ name: inputName, dtype: 'float32', dims, data: x }]);
      expect(http.status).toBe(200);
      for (const [i, o] of res.outputs.entries()) {
        expect(o.datatype).toBe('FP32');
        const got = res.raw_output_contents[i] as Buffer;
        expect(o.shape.map(Number)).toEqual(http.json.outputs.find((h: any) => h.name === o.name).shape);
        expect(Buffer.compare(got, raw(http.outputs[o.name]))).toBe(0);
      }
      // Typed contents give the same answer; one output asked for gives that one.
      const typed = await rpc(
        'ModelInfer',
        request({
          inputs: [{ name: inputName, datatype: 'FP32', shape: dims, contents: { fp32_contents: Array.from(x) } }],
          raw_input_contents: [],
          outputs: [{ name: outputNames[0] }],
        }),
      );
      expect(typed.outputs.map((o: any) => o.name)).toEqual([outputNames[0]]);
      expect(Buffer.compare(typed.raw_output_contents[0], res.raw_output_contents[0])).toBe(0);
    } finally {
      await deleteWith(`${d.url}/v1/plan`);
    }
  });

  it.each([
    [
      'a wrong datatype',
      { inputs: [{ name: 'INPUT', datatype: 'FP64', shape: dims }] },
      /datatype FP64 does not match the model's FP32/,
    ],
    [
      'a wrong shape',
      { inputs: [{ name: 'INPUT', datatype: 'FP32', shape: [1, 3, 32, 32] }] },
      /shape: expected \[1,3,64,64\] but got \[1,3,32,32\]/,
    ],
    [
      'a short raw tensor',
      { raw_input_contents: [Buffer.alloc(12)] },
      /raw_input_contents\[0\] is 12 bytes but 49152 expected/,
    ],
    ['no inputs', { inputs: [], raw_input_contents: [] }, /missing input/],
    ['an unknown input', { inputs: [{ name: 'nope', datatype: 'FP32', shape: dims }] }, /unknown input 'nope'/],
    ['an unknown output', { outputs: [{ name: 'nope' }] }, /unknown output 'nope'/],
    [
      'raw and typed contents together',
      { inputs: [{ name: 'INPUT', datatype: 'FP32', shape: dims, contents: { fp32_contents: [1] } }] },
      /has both contents and raw_input_contents/,
    ],
    [
      'typed contents of the wrong count',
      {
        inputs: [{ name: 'INPUT', datatype: 'FP32', shape: dims, contents: { fp32_contents: [1, 2] } }],
        raw_input_contents: [],
      },
      /2 values in contents\.fp32_contents for shape \[1,3,64,64\] \(12288 expected\)/,
    ],
    [
      'typed contents in the wrong field',
      {
        inputs: [{ name: 'INPUT', datatype: 'FP32', shape: dims, contents: { int_contents: [1] } }],
        raw_input_contents: [],
      },
      /contents\.int_contents: not the field of FP32 \(fp32_contents\)/,
    ],
    ['two raw entries for one input', { raw_input_contents: [raw(x), raw(x)] }, /2 entries for 1 inputs/],
    [
      'a shape past 2^53',
      { inputs: [{ name: 'INPUT', datatype: 'FP32', shape: ['9007199254740993', 1, 1, 1] }] },
      /shape: expected an array of non-negative integers/,
    ],
  ])('refuses %s with INVALID_ARGUMENT naming it', async (_what, over, why) => {
    const fix = (o: any) =>
      o.inputs
        ? { ...o, inputs: o.inputs.map((t: any) => ({ ...t, name: t.name === 'INPUT' ? inputName : t.name })) }
        : o;
    const e = await status('ModelInfer', request(fix(over)));
    expect(e.code, e.details).toBe(grpc.status.INVALID_ARGUMENT);
    expect(e.details).toMatch(why);
    expect(e.metadata.get('cleave-code')).toEqual(['E_BAD_INPUT']);
    expect((await rpc('ModelInfer', request())).outputs.length).toBe(outputNames.length);
  });

  it('maps an unknown model to NOT_FOUND, an oversized message to RESOURCE_EXHAUSTED, a deadline to DEADLINE_EXCEEDED', async () => {
    const nf = await status('ModelInfer', request({ model_name: 'other' }));
    expect(nf.code).toBe(grpc.status.NOT_FOUND);
    expect((await status('ModelInfer', request({ model_version: '9' }))).code).toBe(grpc.status.NOT_FOUND);
    const big = await status('ModelInfer', request({ raw_input_contents: [Buffer.alloc(3_000_000)] }));
    expect(big.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    // A slow link on the route: the call's 150 ms deadline is the request's, and the pipeline gives up by it.
    const n = d.device.analysis.blocks.length;
    expect((await putJson(`${d.url}/v1/plan`, { stages: [{ host: 'edg', blocks: [0, n] }] })).status).toBe(200);
    expect((await putJson(`${d.url}/v1/links/dev/edg`, { delayMs: 400 })).status).toBe(200);
    try {
      const t0 = Date.now();
      const late = await status('ModelInfer', request(), 150);
      expect(late.code).toBe(grpc.status.DEADLINE_EXCEEDED);
      expect(Date.now() - t0).toBeLessThan(1500);
      await new Promise((r) => setTimeout(r, 600));
      const metrics = await (await fetch(`${d.url}/metrics`)).text();
      expect(metrics).toMatch(/cleave_request_failure\{[^}]*code="E_DEADLINE"[^}]*\} [1-9]/);
    } finally {
      await putJson(`${d.url}/v1/links/dev/edg`, null);
      await deleteWith(`${d.url}/v1/plan`);
    }
    expect((await rpc('ModelInfer', request())).outputs.length).toBe(outputNames.length);
  });

  it('maps every error code the gateway raises to its gRPC status, with the message as details', () => {
    for (const [code, want] of [
      ['E_BAD_INPUT', grpc.status.INVALID_ARGUMENT],
      ['E_UNKNOWN_MODEL', grpc.status.NOT_FOUND],
      ['E_NOT_READY', grpc.status.UNAVAILABLE],
      ['E_PEER_GONE', grpc.status.UNAVAILABLE],
      ['E_QUEUE_FULL', grpc.status.RESOURCE_EXHAUSTED],
      ['E_TOO_LARGE', grpc.status.RESOURCE_EXHAUSTED],
      ['E_DEADLINE', grpc.status.DEADLINE_EXCEEDED],
      ['E_INTERNAL', grpc.status.INTERNAL],
    ] as const) {
      const e = grpcError(new CleaveError(code, `because ${code}`));
      expect([code, e.code]).toEqual([code, want]);
      expect(e.details).toBe(`because ${code}`);
    }
    expect(grpcError(new Error('boom')).code).toBe(grpc.status.INTERNAL);
  });

  it('counts gRPC requests in the same statistics and metrics as HTTP', async () => {
    const stats = async () =>
      ((await (await fetch(`${d.url}/v2/models/mnv2/stats`)).json()) as any).model_stats[0].inference_stats;
    const before = await stats();
    for (let i = 0; i < 3; i++) await rpc('ModelInfer', request());
    await status('ModelInfer', request({ outputs: [{ name: 'nope' }] }));
    const after = await stats();
    expect(after.success.count - before.success.count).toBe(3);
    expect(after.fail.count - before.fail.count).toBe(1);
    // Triton's ModelStatistics RPC reads the same counters (uint64 as decimal strings).
    const g = (await rpc('ModelStatistics', { name: 'mnv2' })).model_stats[0];
    expect(g.name).toBe('mnv2');
    expect(Number(g.inference_stats.success.count)).toBe(after.success.count);
    expect(Number(g.inference_stats.fail.count)).toBe(after.fail.count);
    expect(Number(g.inference_stats.success.ns)).toBe(after.success.ns);
    expect((await status('ModelStatistics', { name: 'other' })).code).toBe(grpc.status.NOT_FOUND);
    const index = await rpc('RepositoryIndex', { ready: true });
    expect(index.models).toEqual([{ name: 'mnv2', version: '1', state: 'READY', reason: '' }]);
  });

  it("advertises a receive window of GRPC_RECEIVE_WINDOW, not Node's 64 KiB: a big request needs no WINDOW_UPDATE round trips", async () => {
    const session = http2.connect(`http://127.0.0.1:${d.device.grpcPort}`);
    try {
      // The server's first SETTINGS may still carry Node's default; its update follows at once.
      const seen: (number | undefined)[] = [];
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(resolve, 2000);
        session.on('remoteSettings', (st) => {
          seen.push(st.initialWindowSize);
          if (st.initialWindowSize === GRPC_RECEIVE_WINDOW) {
            clearTimeout(timer);
            resolve();
          }
        });
        session.once('error', reject);
      });
      expect(seen.at(-1)).toBe(GRPC_RECEIVE_WINDOW);
    } finally {
      session.destroy();
    }
  });

  it("answers Triton's ModelConfig as HTTP's /config, with the plan in its parameters", async () => {
    const http = (await (await fetch(`${d.url}/v2/models/mnv2/config`)).json()) as any;
    const { config } = await rpc('ModelConfig', { name: 'mnv2' });
    expect(config.name).toBe('mnv2');
    expect(config.platform).toBe('onnxruntime_onnx');
    expect(config.backend).toBe('onnxruntime');
    expect(config.max_batch_size).toBe(0);
    // int64 dims come back as decimal strings (longs: String), enums by name.
    const io = (l: any[]) => l.map((t) => ({ name: t.name, data_type: t.data_type, dims: t.dims.map(Number) }));
    expect(io(config.input)).toEqual(http.input);
    expect(io(config.output)).toEqual(http.output);
    expect(JSON.parse(config.parameters['cleave.plan'].string_value)).toEqual(http.cleave.plan);
    expect(JSON.parse(config.parameters['cleave.split'].string_value)).toBe(true);
    expect((await status('ModelConfig', { name: 'other' })).code).toBe(grpc.status.NOT_FOUND);
    expect((await status('ModelConfig', { name: 'mnv2', version: '9' })).code).toBe(grpc.status.NOT_FOUND);
  });
});
