/**
 * One host of the split bench's bare route (bench/_bare-route.ts): the least a three-process split can do on
 * this machine. Each hop of each route has its own WebSocket connection, so a message is the raw tensor bytes
 * and nothing else: no frame header, no msgpack, no route check, no worker (ORT runs on the main thread), no
 * logging, no measurement. Run as `node --import tsx bench/_bare-host.ts CONFIG_JSON`; it prints `port N`,
 * reads one JSON line of every host's port on stdin, connects its outgoing hops and prints `ready`.
 */
import { createInterface } from 'node:readline';
import { Worker } from 'node:worker_threads';
import ort from 'onnxruntime-node';
import WebSocket, { WebSocketServer } from 'ws';
import { ortSessionOptions } from '../src/runtime/executor/ort-options.js';

export interface BareSegment {
  readonly file: string;
  readonly input: string;
  readonly dims: readonly number[];
}
/** One hop of a route: the host it reaches, the segments it runs there, in order. The last hop replies. */
export interface BareHop {
  readonly host: string;
  readonly run: readonly number[];
}
export interface BareHostConfig {
  readonly name: string;
  readonly segments: readonly BareSegment[];
  readonly routes: readonly (readonly BareHop[])[];
  /** Run ORT in one worker thread, as Cleave's hosts do (the bytes copied to it, the answer transferred back). */
  readonly worker?: boolean;
}

const config = JSON.parse(process.argv[2]) as BareHostConfig;
const mine = new Set(config.routes.flatMap((r) => r.filter((h) => h.host === config.name).flatMap((h) => h.run)));
const sessions = new Map<number, ort.InferenceSession>();
if (!config.worker)
  for (const i of mine)
    sessions.set(i, await ort.InferenceSession.create(config.segments[i].file, ortSessionOptions(1)));

/** Runs segment `i` on `bytes`, here or in the worker. */
async function runHere(i: number, bytes: Uint8Array): Promise<Uint8Array> {
  const seg = config.segments[i];
  const f32 =
    bytes.byteOffset % 4 === 0
      ? new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4)
      : new Float32Array(bytes.slice().buffer);
  const r = await sessions.get(i)!.run({ [seg.input]: new ort.Tensor('float32', f32, seg.dims) });
  const t = r[sessions.get(i)!.outputNames[0]].data as Float32Array;
  return new Uint8Array(t.buffer, t.byteOffset, t.byteLength);
}

// The worker (plain JavaScript: a worker thread does not get the parent's tsx hooks), for `worker: true`.
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const ort = require('onnxruntime-node');
const { segments, run, options } = workerData;
const ready = Promise.all(run.map(async (i) => [i, await ort.InferenceSession.create(segments[i].file, options)]))
  .then((entries) => new Map(entries));
parentPort.on('message', async ({ i, bytes }) => {
  const s = (await ready).get(i);
  const seg = segments[i];
  const f32 = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  const t = (await s.run({ [seg.input]: new ort.Tensor('float32', f32, seg.dims) }))[s.outputNames[0]].data;
  const own = t.byteOffset === 0 && t.byteLength === t.buffer.byteLength ? t : t.slice();
  parentPort.postMessage(new Uint8Array(own.buffer), [own.buffer]);
});`;

await main();

async function main(): Promise<void> {
  const workerData = { segments: config.segments, run: [...mine], options: ortSessionOptions(1) };
  const worker = config.worker ? new Worker(WORKER, { eval: true, workerData }) : undefined;
  const run = (i: number, bytes: Uint8Array): Promise<Uint8Array> => {
    if (!worker) return runHere(i, bytes);
    const copy = bytes.slice();
    return new Promise((resolve) => {
      worker.once('message', resolve);
      worker.postMessage({ i, bytes: copy }, [copy.buffer]);
    });
  };

  const out = new Map<string, WebSocket>(); // `${route}:${hop}` -> the connection to that hop's host
  const clients = new Map<number, WebSocket>(); // route -> the connection its first hop came in on

  async function handle(route: number, hop: number, data: Buffer): Promise<void> {
    let bytes: Uint8Array = data;
    for (const i of config.routes[route][hop].run) bytes = await run(i, bytes);
    const next = hop + 1 < config.routes[route].length ? out.get(`${route}:${hop + 1}`) : clients.get(route);
    next!.send(bytes, { binary: true });
  }

  const server = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
  server.on('connection', (ws, req) => {
    const m = /^\/r(\d+)h(\d+)$/.exec(req.url ?? '');
    if (!m) return ws.close(1008, 'path');
    const [route, hop] = [Number(m[1]), Number(m[2])];
    if (hop === 0) clients.set(route, ws);
    ws.on('message', (data: Buffer) => void handle(route, hop, data));
  });
  await new Promise<void>((r) => server.once('listening', () => r()));
  console.log(`port ${(server.address() as { port: number }).port}`);

  const lines = createInterface({ input: process.stdin });
  const ports = JSON.parse(await new Promise<string>((r) => lines.once('line', r))) as Record<string, number>;
  const opening: Promise<void>[] = [];
  config.routes.forEach((r, route) =>
    r.forEach((h, hop) => {
      if (h.host !== config.name || hop + 1 >= r.length) return;
      const ws = new WebSocket(`ws://127.0.0.1:${ports[r[hop + 1].host]}/r${route}h${hop + 1}`, {
        perMessageDeflate: false,
        generateMask: (mask) => void mask.fill(0), // as Cleave's peer links: no masking copy of the payload
      });
      out.set(`${route}:${hop + 1}`, ws);
      opening.push(new Promise((res, rej) => (ws.once('open', () => res()), ws.once('error', rej))));
    }),
  );
  await Promise.all(opening);
  console.log('ready');
  lines.on('close', () => process.exit(0));
}
