/**
 * The split bench's floor: the same segments on the same three kinds of process, with nothing of Cleave's
 * between them (bench/_bare-host.ts: raw tensor bytes over one WebSocket connection per hop, ORT on the main
 * thread). Two routes, as the bench times them: 0 = device -> edge -> cloud -> device (the three-host route),
 * 1 = the three segments on the device. The client sends the input over a WebSocket instead of HTTP. With
 * `worker: true`, each host runs ORT in a worker thread as Cleave's do; with `'io'`, its sockets too.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import WebSocket from 'ws';
import type { BareHop, BareHostConfig, BareSegment } from './_bare-host.js';

const HOSTS = ['device', 'edge', 'cloud'] as const;
const ROUTES: readonly (readonly BareHop[])[] = [
  [
    { host: 'device', run: [0] },
    { host: 'edge', run: [1] },
    { host: 'cloud', run: [2] },
    { host: 'device', run: [] },
  ],
  [{ host: 'device', run: [0, 1, 2] }],
];

export interface BareRoute {
  /** Sends `x` along route 0 (three hosts) or 1 (all on the device) and resolves with the answer's bytes. */
  infer(route: 0 | 1, x: Uint8Array): Promise<number>;
  /** The hosts' process ids, by name. */
  readonly pids: Readonly<Record<string, number>>;
  stop(): Promise<void>;
}

export async function startBareRoute(
  segments: readonly BareSegment[],
  nodeFlags: readonly string[] = [],
  worker: boolean | 'io' = false,
): Promise<BareRoute> {
  const children: ChildProcess[] = [];
  const ports: Record<string, number> = {};
  const lineOf = new Map<ChildProcess, (match: RegExp) => Promise<string>>();
  for (const name of HOSTS) {
    const config: BareHostConfig = { name, segments, routes: ROUTES, worker };
    const child = spawn(
      process.execPath,
      [...nodeFlags, '--import', 'tsx', new URL('./_bare-host.ts', import.meta.url).pathname, JSON.stringify(config)],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    children.push(child);
    const lines = createInterface({ input: child.stdout! });
    const waiting: { match: RegExp; resolve: (l: string) => void }[] = [];
    lines.on('line', (l) => {
      const i = waiting.findIndex((w) => w.match.test(l));
      if (i >= 0) waiting.splice(i, 1)[0].resolve(l);
    });
    lineOf.set(
      child,
      (match) =>
        new Promise((resolve, reject) => {
          waiting.push({ match, resolve });
          child.once('exit', (code) => reject(new Error(`bare ${name} exited with ${code}`)));
        }),
    );
    ports[name] = Number((await lineOf.get(child)!(/^port \d+$/)).split(' ')[1]);
  }
  for (const child of children) child.stdin!.write(`${JSON.stringify(ports)}\n`);
  await Promise.all(children.map((c) => lineOf.get(c)!(/^ready$/)));

  const open = (route: number): Promise<WebSocket> =>
    new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${ports.device}/r${route}h0`, {
        perMessageDeflate: false,
        generateMask: (mask) => void mask.fill(0), // as Cleave's peer links: no masking copy of the payload
      });
      ws.once('open', () => resolve(ws));
      ws.once('error', reject);
    });
  const sockets = [await open(0), await open(1)];
  const pids = Object.fromEntries(HOSTS.map((h, i) => [h, children[i].pid ?? -1]));
  return {
    pids,
    infer: (route, x) =>
      new Promise((resolve) => {
        sockets[route].once('message', (d: Buffer) => resolve(d.byteLength));
        sockets[route].send(x, { binary: true });
      }),
    async stop() {
      for (const s of sockets) s.close();
      await Promise.all(
        children.map(
          (c) =>
            new Promise<void>((r) => {
              if (c.exitCode !== null) return r();
              c.once('exit', () => r());
              c.stdin!.end();
            }),
        ),
      );
    },
  };
}
