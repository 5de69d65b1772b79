/**
 * What waking an idle thread or process costs on this machine: the floor under every hop of a split route,
 * where each host sleeps while the others compute. Both are one-way figures (half a round trip), each
 * message sent after `idleMs` of sleep on both sides, medians.
 * - thread: the main thread posts to a worker thread that echoes (the executor's hop to its ORT worker);
 * - process: a message to a child process over a loopback TCP socket, echoed (the hop between two hosts,
 *   without WebSocket, frames or tensors).
 */
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { Worker } from 'node:worker_threads';
import { quantile } from '../src/planner/estimate.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Half the median of `n` round trips `echo` makes, each after `idleMs` of sleep (3 more, untimed, first). */
async function oneWayMs(idleMs: number, n: number, echo: () => Promise<void>): Promise<number> {
  const rts: number[] = [];
  for (let i = 0; i < n + 3; i++) {
    await sleep(idleMs);
    const t0 = performance.now();
    await echo();
    if (i >= 3) rts.push(performance.now() - t0);
  }
  return quantile(rts, 0.5) / 2;
}

export async function threadWakeMs(idleMs: number, n: number): Promise<number> {
  const w = new Worker(
    `require('node:worker_threads').parentPort.on('message', (m) => require('node:worker_threads').parentPort.postMessage(m));`,
    { eval: true },
  );
  try {
    return await oneWayMs(
      idleMs,
      n,
      () =>
        new Promise<void>((resolve) => {
          w.once('message', () => resolve());
          w.postMessage(0);
        }),
    );
  } finally {
    await w.terminate();
  }
}

const ECHO = `const s = require('node:net').createServer((c) => { c.setNoDelay(true); c.on('data', (d) => c.write(d)); });
s.listen(0, '127.0.0.1', () => console.log(s.address().port));`;

export async function processWakeMs(idleMs: number, n: number): Promise<number> {
  const child = spawn(process.execPath, ['-e', ECHO], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      child.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
      child.once('exit', (code) => reject(new Error(`echo child exited with ${code}`)));
    });
    const sock = connect(port, '127.0.0.1');
    sock.setNoDelay(true);
    await new Promise<void>((resolve) => sock.once('connect', () => resolve()));
    const byte = Buffer.from([1]);
    const ms = await oneWayMs(
      idleMs,
      n,
      () =>
        new Promise<void>((resolve) => {
          sock.once('data', () => resolve());
          sock.write(byte);
        }),
    );
    sock.destroy();
    return ms;
  } finally {
    child.kill();
  }
}
