/**
 * One host of the split bench's bare route (bench/_bare-route.ts): the least a three-process split can do on
 * this machine. Each hop of each route has its own WebSocket connection, so a message is the raw tensor bytes
 * and nothing else: no frame header, no msgpack, no route check, no worker (ORT runs on the main thread), no
 * logging, no measurement. Run as `node --import tsx bench/_bare-host.ts CONFIG_JSON`; it prints `port N`,
 * reads one JSON line of every host's port on stdin, connects its outgoing hops and prints `ready`.
 *
 * `worker: true` runs ORT in a worker thread as Cleave's hosts do (the sockets on the main thread, the bytes
 * posted across); `worker: 'io'` runs the whole host (its sockets and ORT) in one worker thread, the main
 * thread only relaying the start-up lines: the floor of a data plane in the ORT worker, where a frame reaches
 * the thread that computes on it, and leaves from it, without a hop between threads.
 */
import { createInterface } from 'node:readline';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
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
  /**
   * true: run ORT in one worker thread, as Cleave's hosts do (the message's buffer and the answer
   * transferred, not copied); 'io': run the sockets and ORT together in one worker thread.
   */
  readonly worker?: boolean | 'io';
}

const config = (isMainThread ? JSON.parse(process.argv[2]) : workerData) as BareHostConfig;
/** This thread only relays for the worker that is the host (`worker: 'io'`). */
const relay = isMainThread && config.worker === 'io';
const mine = new Set(config.routes.flatMap((r) => r.filter((h) => h.host === config.name).flatMap((h) => h.run)));
const sessions = new Map<number, ort.InferenceSession>();
if (!config.worker || !isMainThread)
  for (const i of mine)
    sessions.set(i, await ort.InferenceSession.create(config.segments[i].file, ortSessionOptions(1)));

/** Runs segment `i` on `bytes`, here or in the worker. */
async function runHere(i: number, bytes: Uint8Array): Promise<Uint8Array> {
  const seg = config.segments[i];
  const f32 =
    bytes.byteOffset % 4 === 0
      ? new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4)
      : new Float32Array(Uint8Array.prototype.slice.call(bytes).buffer); // a copy (a Buffer's own slice is a view)
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

if (relay) await relayFor(new Worker(new URL('./_bare-io-worker.mjs', import.meta.url), { workerData: config }));
else await main();

/** `worker: 'io'`: the host is `host`, a worker thread; this thread passes the start-up lines both ways. */
async function relayFor(host: Worker): Promise<void> {
  host.on('message', (line: string) => console.log(line));
  host.once('error', (e) => {
    console.error(e);
    process.exit(1);
  });
  const lines = createInterface({ input: process.stdin });
  host.postMessage(await new Promise<string>((r) => lines.once('line', r)));
  lines.on('close', () => process.exit(0));
}

async function main(): Promise<void> {
  const say = (line: string): void => (isMainThread ? console.log(line) : parentPort!.postMessage(line));
  const data = { segments: config.segments, run: [...mine], options: ortSessionOptions(1) };
  const worker =
    config.worker === true && isMainThread ? new Worker(WORKER, { eval: true, workerData: data }) : undefined;
  const run = (i: number, bytes: Uint8Array): Promise<Uint8Array> => {
    if (!worker) return runHere(i, bytes);
    // A ws message's Buffer#slice is a view: its own buffer (not shared with other data) moves to the worker.
    // A Uint8Array the worker answered with (the next segment on this host) is copied by its slice.
    const moved = bytes.slice();
    return new Promise((resolve) => {
      worker.once('message', resolve);
      worker.postMessage({ i, bytes: moved }, [moved.buffer]);
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
  say(`port ${(server.address() as { port: number }).port}`);

  const lines = isMainThread ? createInterface({ input: process.stdin }) : undefined;
  const portsLine = await new Promise<string>((r) => (lines ? lines.once('line', r) : parentPort!.once('message', r)));
  const ports = JSON.parse(portsLine) as Record<string, number>;
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
  say('ready');
  lines?.on('close', () => process.exit(0));
}
