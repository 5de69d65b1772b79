/**
 * A real three-host deployment on loopback inside the test process: a model repository in a temp folder,
 * free ports, real hosts (ORT worker threads, WebSocket links, HTTP gateway), and helpers to send Open
 * Inference Protocol requests over HTTP in JSON and binary form.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import type { DeploymentConfig, HostConfig, LinkConfig } from '../../src/runtime/config.js';
import { Host } from '../../src/runtime/host/host.js';
import { launchDeployment, type Launched, type LaunchOptions } from '../../src/runtime/process/launcher.js';
import type { RuntimeLimits } from '../../src/runtime/defaults.js';

/** Whether a listener can take `port` on loopback now (0: any port; resolves with the port taken, or null). */
function bindable(port: number): Promise<number | null> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(null));
    s.listen(port, '127.0.0.1', () => {
      const got = (s.address() as { port: number }).port;
      s.close(() => resolve(got));
    });
  });
}

/** The lowest port the kernel hands out by itself (to client sockets and port-0 listeners). */
function ephemeralLow(): number {
  try {
    const lo = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    if (Number.isInteger(lo) && lo > 0) return lo;
  } catch {
    // not Linux: the IANA default
  }
  return 49152;
}

const PORT_FLOOR = 20_000;

/**
 * A loopback port that is free now, for a host to listen on by number a moment later. Chosen at random below
 * the kernel's ephemeral range: a port the kernel picked (port 0) could be handed to another test file's
 * client socket in between, and was (EADDRINUSE in a full run); below that range only a listener asking for
 * that very number can take it.
 */
export async function freePort(): Promise<number> {
  const top = ephemeralLow();
  for (let i = 0; top > PORT_FLOOR && i < 50; i++) {
    const port = await bindable(PORT_FLOOR + Math.floor(Math.random() * (top - PORT_FLOOR)));
    if (port !== null) return port;
  }
  const port = await bindable(0);
  if (port === null) throw new Error('freePort: no loopback port could be bound');
  return port;
}

/** A device, an edge and a cloud host named `names`, each on a free loopback port, with `threads` ORT threads. */
export async function loopbackHosts(
  names: readonly [string, string, string],
  threads: readonly [number, number, number] = [1, 1, 1],
): Promise<HostConfig[]> {
  const tiers = ['device', 'edge', 'cloud'];
  const hosts: HostConfig[] = [];
  for (let i = 0; i < 3; i++)
    hosts.push({ name: names[i], tier: tiers[i], listen: `127.0.0.1:${await freePort()}`, threads: threads[i] });
  return hosts;
}

/** The control token of test deployments: their control API's changes need it. */
export const TEST_CONTROL_TOKEN = 'test-control-token';

/** PUT `body` as JSON to `url` (pinning a plan, setting an emulated link), with the control token. */
export function putJson(url: string, body: unknown, token: string = TEST_CONTROL_TOKEN): Promise<Response> {
  return fetch(url, {
    method: 'PUT',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
  });
}

/** DELETE `url` (unpinning a plan) with the control token. */
export function deleteWith(url: string, token: string = TEST_CONTROL_TOKEN): Promise<Response> {
  return fetch(url, { method: 'DELETE', headers: { authorization: `Bearer ${token}` } });
}

export interface Deployment {
  readonly hosts: Host[];
  readonly device: Host;
  readonly url: string;
  readonly model: string;
  readonly token: string;
  /** Stops host `i` (not the origin) and starts it again on its address, as a restarted process would. */
  restart(i: number): Promise<Host>;
  close(): Promise<void>;
}

export async function startDeployment(o: {
  modelName: string;
  modelBytes: Uint8Array;
  shapes?: Record<string, number[]>;
  limits?: Partial<RuntimeLimits>;
  links?: LinkConfig[];
  threads?: [number, number, number];
  controller?: DeploymentConfig['controller'];
  /** The hosts' listen addresses (a deployment started again where another ran); free loopback ports by default. */
  listen?: readonly [string, string, string];
  /** HTTPS and wss:// for every host (the URL is then https://). */
  tls?: DeploymentConfig['tls'];
  /** The origin serves OIP over gRPC too, on a free port (`device.grpcPort`). */
  grpc?: boolean;
  /** More models the deployment serves beside `modelName` (the config's `models`). */
  more?: readonly { name: string; bytes: Uint8Array; shapes?: Record<string, number[]> }[];
  /** Models in the repository that the config does not list (a load adds them at run time). */
  repoOnly?: readonly { name: string; bytes: Uint8Array }[];
}): Promise<Deployment> {
  const dir = mkdtempSync(join(tmpdir(), 'cleave-deploy-'));
  const repo = join(dir, 'models');
  mkdirSync(join(repo, o.modelName, '1'), { recursive: true });
  writeFileSync(join(repo, o.modelName, '1', 'model.onnx'), o.modelBytes);
  for (const m of [...(o.more ?? []), ...(o.repoOnly ?? [])]) {
    mkdirSync(join(repo, m.name, '1'), { recursive: true });
    writeFileSync(join(repo, m.name, '1', 'model.onnx'), m.bytes);
  }
  const free = await loopbackHosts(['dev', 'edg', 'cld'], o.threads);
  const placed = o.listen ? free.map((h, i) => ({ ...h, listen: o.listen![i] })) : free;
  const hosts = o.grpc ? [{ ...placed[0], grpc: `127.0.0.1:${await freePort()}` }, ...placed.slice(1)] : placed;
  const token = 'test-token-123';
  const config: DeploymentConfig = {
    model: o.modelName,
    ...(o.more
      ? { models: [o.modelName, ...o.more.map((m) => (m.shapes ? { name: m.name, shapes: m.shapes } : m.name))] }
      : {}),
    token,
    controlToken: TEST_CONTROL_TOKEN,
    hosts,
    links: o.links ?? [],
    shapes: o.shapes,
    profile: { repeats: 2, warmup: 1 },
    limits: { startupTimeoutMs: 20_000, ...o.limits },
    transport: { probeIntervalMs: 200 },
    controller: o.controller,
    tls: o.tls,
  };
  const logger = pino({ level: process.env.LOG_LEVEL ?? 'silent' });
  const started: Host[] = [];
  try {
    for (const h of hosts)
      started.push(await Host.start({ config, name: h.name, modelsDir: repo, cacheDir: join(dir, 'cache'), logger }));
    await started[0].planAtStartup();
  } catch (e) {
    await Promise.all(started.map((h) => h.close()));
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return {
    hosts: started,
    device: started[0],
    url: `${o.tls ? 'https' : 'http'}://${hosts[0].listen}`,
    model: o.modelName,
    token,
    async restart(i: number) {
      if (i === 0) throw new Error('restart: not the origin');
      await started[i].close();
      started[i] = await Host.start({
        config,
        name: hosts[i].name,
        modelsDir: repo,
        cacheDir: join(dir, 'cache'),
        logger,
      });
      return started[i];
    },
    async close() {
      await Promise.all(started.map((h) => h.close()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface OipTensor {
  name: string;
  dtype: 'float32';
  dims: number[];
  data: Float32Array;
}

/** POST a JSON inference request; returns status and parsed body. */
export async function inferJson(
  url: string,
  model: string,
  inputs: OipTensor[],
): Promise<{ status: number; body: any }> {
  const res = await fetch(`${url}/v2/models/${model}/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      id: 'req-json',
      inputs: inputs.map((t) => ({ name: t.name, shape: t.dims, datatype: 'FP32', data: Array.from(t.data) })),
    }),
  });
  return { status: res.status, body: await res.json() };
}

/** POST a binary-extension inference request asking for binary outputs; returns outputs as Float32Arrays. */
export async function inferBinary(
  url: string,
  model: string,
  inputs: OipTensor[],
): Promise<{ status: number; outputs: Record<string, Float32Array>; json: any }> {
  const header = Buffer.from(
    JSON.stringify({
      id: 'req-bin',
      inputs: inputs.map((t) => ({
        name: t.name,
        shape: t.dims,
        datatype: 'FP32',
        parameters: { binary_data_size: t.data.byteLength },
      })),
      parameters: { binary_data_output: true },
    }),
  );
  const body = Buffer.concat([
    header,
    ...inputs.map((t) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)),
  ]);
  const res = await fetch(`${url}/v2/models/${model}/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(header.length) },
    body,
  });
  const buf = Buffer.from(await res.arrayBuffer());
  if (res.status !== 200) return { status: res.status, outputs: {}, json: JSON.parse(buf.toString()) };
  const hl = Number(res.headers.get('inference-header-content-length'));
  const json = JSON.parse(buf.subarray(0, hl).toString());
  const outputs: Record<string, Float32Array> = {};
  let off = hl;
  for (const o of json.outputs) {
    const n = o.parameters.binary_data_size;
    outputs[o.name] = new Float32Array(buf.buffer.slice(buf.byteOffset + off, buf.byteOffset + off + n));
    off += n;
  }
  return { status: res.status, outputs, json };
}

/** ||got - want|| / ||want||, the relative L2 error (the codecs' error budget is in these terms). */
export function relativeError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let e = 0;
  let s = 0;
  for (let i = 0; i < want.length; i++) {
    e += (got[i] - want[i]) ** 2;
    s += want[i] ** 2;
  }
  return s > 0 ? Math.sqrt(e / s) : Math.sqrt(e);
}

/** numpy.allclose. */
export function allclose(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  atol = 1e-4,
  rtol = 1e-3,
): { ok: boolean; maxAbs: number } {
  if (a.length !== b.length) return { ok: false, maxAbs: Infinity };
  let ok = true;
  let maxAbs = 0;
  for (let i = 0; i < a.length; i++) {
    const e = Math.abs(a[i] - b[i]);
    maxAbs = Math.max(maxAbs, e);
    if (!(e <= atol + rtol * Math.abs(b[i]))) ok = false;
  }
  return { ok, maxAbs };
}

/**
 * The launcher's deployment of `config` (real OS processes) with its model repository and run folder under
 * `dir`, each host's output lines kept in `lines`; resolves once the origin is ready (the error carries the
 * lines when it is not).
 */
export async function launchReady(
  dir: string,
  repo: string,
  config: DeploymentConfig,
  lines: string[],
  more: Partial<LaunchOptions> = {},
): Promise<Launched> {
  const d = launchDeployment({
    config,
    modelsDir: repo,
    runDir: dir,
    env: { CLEAVE_CACHE: join(dir, 'cache'), LOG_LEVEL: 'warn' },
    onLine: (h, l) => lines.push(`[${h}] ${l}`),
    ...more,
  });
  await d.ready(90_000).catch(async (e: Error) => {
    await d.stop();
    throw new Error(`${e.message}\n${lines.join('\n')}`);
  });
  return d;
}
