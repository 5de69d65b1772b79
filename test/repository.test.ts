/**
 * Triton's model repository extension against three real hosts on loopback: unloading the deployment's model
 * while requests flow (those in flight finish, later ones get 503 naming the state, every host frees its
 * sessions), what is refused meanwhile, and loading it again (every host of the plan warms its segment, the
 * answers are bit-identical). Over HTTP and over gRPC with a client generated from the same proto.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { zooEntry } from '../src/graph/zoo/index.js';
import { oipClient } from './helpers/grpc.js';
import {
  inferBinary,
  putJson,
  startDeployment,
  TEST_CONTROL_TOKEN,
  type Deployment,
  type OipTensor,
} from './helpers/deployment.js';

type Callback = (err: grpc.ServiceError | null, res: any) => void;
type Client = grpc.Client &
  Record<string, (req: unknown, md: grpc.Metadata, opts: grpc.CallOptions, cb: Callback) => void>;

let d: Deployment;
let client: Client;
let x: OipTensor;
const bytes = zooEntry('mobilenetv2')!.build({ small: true }).toBytes();

beforeAll(async () => {
  d = await startDeployment({ modelName: 'mnv2', modelBytes: bytes, grpc: true, controller: { paused: true } });
  x = {
    name: d.device.analysis.model.inputs[0].name,
    dtype: 'float32',
    dims: [1, 3, 64, 64],
    data: Float32Array.from({ length: 3 * 64 * 64 }, (_, i) => ((i * 31) % 89) / 89),
  };
  client = oipClient(d.device.grpcPort as number) as Client;
}, 120_000);

afterAll(async () => {
  client?.close();
  await d?.close();
});

const sessions = (): number[] => d.hosts.map((h) => h.status().segments.length);

function post(path: string, body?: unknown, token: string | null = TEST_CONTROL_TOKEN): Promise<Response> {
  return fetch(`${d.url}${path}`, {
    method: 'POST',
    headers: {
      ...(token !== null && { authorization: `Bearer ${token}` }),
      ...(body !== undefined && { 'content-type': 'application/json' }),
    },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
}

function rpc(method: string, req: unknown, token: string | null = null): Promise<any> {
  const md = new grpc.Metadata();
  if (token !== null) md.set('authorization', `Bearer ${token}`);
  return new Promise((resolve, reject) =>
    client[method](req, md, { deadline: Date.now() + 30_000 }, (err, res) => (err ? reject(err) : resolve(res))),
  );
}

async function rpcStatus(method: string, req: unknown, token: string | null = null): Promise<grpc.ServiceError> {
  try {
    await rpc(method, req, token);
  } catch (e) {
    return e as grpc.ServiceError;
  }
  throw new Error(`${method} succeeded`);
}

describe('model repository: unload and load (real hosts on loopback)', () => {
  it('unloads under load without failing a request in flight, frees every session, refuses until loaded, then answers as before', async () => {
    const n = d.device.analysis.blocks.length;
    const third = Math.floor(n / 3);
    const pin = await putJson(`${d.url}/v1/plan`, {
      stages: [
        { host: 'dev', blocks: [0, third] },
        { host: 'edg', blocks: [third, 2 * third] },
        { host: 'cld', blocks: [2 * third, n] },
      ],
    });
    expect(pin.status).toBe(200);
    const before = await inferBinary(d.url, 'mnv2', [x]);
    expect(before.status).toBe(200);
    expect(sessions().every((s) => s > 0)).toBe(true);

    // Two clients in a closed loop across the unload: each answer is 200, or 503 E_NOT_READY once unloading.
    const seen: { status: number; code?: string; at: number }[] = [];
    let stop = false;
    const loop = async (): Promise<void> => {
      while (!stop) {
        const r = await inferBinary(d.url, 'mnv2', [x]);
        seen.push({ status: r.status, code: r.json?.code, at: performance.now() });
        if (r.status !== 200) await new Promise((res) => setTimeout(res, 5));
      }
    };
    const clients = [loop(), loop()];
    await new Promise((r) => setTimeout(r, 300));
    const asked = performance.now();
    const unloaded = await post('/v2/repository/models/mnv2/unload');
    const done = performance.now();
    expect(unloaded.status).toBe(200);
    expect(await unloaded.json()).toMatchObject({ name: 'mnv2', state: 'UNAVAILABLE', leftInFlight: 0, failed: [] });
    await new Promise((r) => setTimeout(r, 200));
    stop = true;
    await Promise.all(clients);
    expect(seen.filter((s) => s.at < asked).every((s) => s.status === 200)).toBe(true);
    expect(seen.filter((s) => s.at > done + 50).length).toBeGreaterThan(0);
    for (const s of seen) {
      if (s.status !== 200) expect(s).toMatchObject({ status: 503, code: 'E_NOT_READY' });
      if (s.at > done + 50) expect(s.status).toBe(503); // answered after the unload returned
    }
    expect(seen.filter((s) => s.status === 200).length).toBeGreaterThan(2);

    // Unloaded: no host holds a session; nothing answers; nothing is prepared behind the operator's back.
    expect(sessions()).toEqual([0, 0, 0]);
    expect((await fetch(`${d.url}/v2/health/ready`)).status).toBe(503);
    expect((await fetch(`${d.url}/v2/models/mnv2/ready`)).status).toBe(503);
    const r = await inferBinary(d.url, 'mnv2', [x]);
    expect(r).toMatchObject({ status: 503, json: { code: 'E_NOT_READY' } });
    expect(r.json.error).toBe("model 'mnv2' is unloaded: POST /v2/repository/models/mnv2/load loads it");
    expect(await (await post('/v2/repository/index', {}, null)).json()).toEqual([
      { name: 'mnv2', version: '1', state: 'UNAVAILABLE', reason: 'unloaded' },
    ]);
    const elsewhere = await putJson(`${d.url}/v1/plan`, { stages: [{ host: 'dev', blocks: [0, n] }] });
    expect(elsewhere.status).toBe(503);
    expect(sessions()).toEqual([0, 0, 0]);
    // Unloading again is a no-op, as in Triton; without the token it is refused.
    expect((await post('/v2/repository/models/mnv2/unload')).status).toBe(200);
    expect((await post('/v2/repository/models/mnv2/load', undefined, null)).status).toBe(401);
    expect(sessions()).toEqual([0, 0, 0]);

    const loaded = await post('/v2/repository/models/mnv2/load');
    expect(loaded.status).toBe(200);
    expect(sessions().every((s) => s > 0)).toBe(true);
    expect((await fetch(`${d.url}/v2/health/ready`)).status).toBe(200);
    const after = await inferBinary(d.url, 'mnv2', [x]);
    expect(after.status).toBe(200);
    for (const [name, y] of Object.entries(before.outputs)) expect(after.outputs[name]).toEqual(y);
    expect(after.json.model_name).toBe('mnv2');
  }, 60_000);

  it('over gRPC: RepositoryModelUnload and RepositoryModelLoad with the token in the metadata', async () => {
    const infer = {
      model_name: 'mnv2',
      inputs: [{ name: x.name, datatype: 'FP32', shape: x.dims }],
      raw_input_contents: [Buffer.from(x.data.buffer, x.data.byteOffset, x.data.byteLength)],
    };
    const y = (await rpc('ModelInfer', infer)).raw_output_contents;
    expect((await rpcStatus('RepositoryModelUnload', { model_name: 'mnv2' })).code).toBe(grpc.status.UNAUTHENTICATED);
    expect((await rpcStatus('RepositoryModelUnload', { model_name: 'mnv2' }, 'wrong')).code).toBe(
      grpc.status.PERMISSION_DENIED,
    );
    expect((await rpcStatus('RepositoryModelLoad', { model_name: 'other' }, TEST_CONTROL_TOKEN)).code).toBe(
      grpc.status.NOT_FOUND,
    );
    const params = await rpcStatus(
      'RepositoryModelLoad',
      { model_name: 'mnv2', parameters: { config: { string_param: '{}' } } },
      TEST_CONTROL_TOKEN,
    );
    expect(params.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(params.details).toMatch(/parameters\.config: load takes no parameters/);
    expect(sessions().every((s) => s > 0)).toBe(true);

    await rpc(
      'RepositoryModelUnload',
      { model_name: 'mnv2', parameters: { unload_dependents: { bool_param: true } } },
      TEST_CONTROL_TOKEN,
    );
    expect(sessions()).toEqual([0, 0, 0]);
    expect(await rpc('ModelReady', { name: 'mnv2' })).toEqual({ ready: false });
    const refused = await rpcStatus('ModelInfer', infer);
    expect(refused.code).toBe(grpc.status.UNAVAILABLE);
    expect(refused.details).toMatch(/model 'mnv2' is unloaded/);
    expect((await rpc('RepositoryIndex', {})).models).toEqual([
      { name: 'mnv2', version: '1', state: 'UNAVAILABLE', reason: 'unloaded' },
    ]);
    expect((await rpc('ServerMetadata', {})).extensions).toContain('model_repository');

    await rpc('RepositoryModelLoad', { model_name: 'mnv2' }, TEST_CONTROL_TOKEN);
    expect(await rpc('ModelReady', { name: 'mnv2' })).toEqual({ ready: true });
    expect((await rpc('ModelInfer', infer)).raw_output_contents).toEqual(y);
  }, 60_000);

  it('the CLI: cleave model list, unload and load; a wrong name or no token is a one-line error and exit 2', async () => {
    const cli = (...args: string[]) =>
      new Promise<{ code: number; out: string; err: string }>((resolve) => {
        execFile(
          process.execPath,
          [join(import.meta.dirname, '..', 'bin', 'cleave.mjs'), 'model', ...args, '--url', d.url],
          { env: { ...process.env, CLEAVE_CONTROL_TOKEN: '' }, timeout: 60_000 },
          (e, out, err) => resolve({ code: e ? ((e as { code?: number }).code ?? 1) : 0, out, err }),
        );
      });
    const token = ['--token', TEST_CONTROL_TOKEN];
    const list = await cli('list');
    expect(list.code, list.err).toBe(0);
    expect(list.out).toMatch(/mnv2\s+1\s+READY/);
    const down = await cli('unload', 'mnv2', ...token);
    expect(down.code, down.err).toBe(0);
    expect(down.out).toMatch(/^mnv2: unloaded in \d+ ms, every host freed its sessions$/m);
    expect(sessions()).toEqual([0, 0, 0]);
    expect((await cli('list')).out).toMatch(/mnv2\s+1\s+UNAVAILABLE\s+unloaded/);
    const stranger = await cli('load', 'mnv2');
    expect(stranger.code).toBe(2);
    expect(stranger.err).toMatch(/401 load of model 'mnv2' needs the control token/);
    const other = await cli('load', 'resnet', ...token);
    expect(other.code).toBe(2);
    expect(other.err).toMatch(/404 model 'resnet' is not in the repository \(has: mnv2\)/);
    const up = await cli('load', 'mnv2', ...token);
    expect(up.code, up.err).toBe(0);
    expect(up.out).toMatch(/^mnv2: loaded in \d+ ms, READY$/m);
    expect(sessions().every((n) => n > 0)).toBe(true);
    expect((await cli('list', 'mnv2')).code).toBe(2);
  }, 120_000);
});
