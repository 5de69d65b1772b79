/**
 * `npm run bench -- transport`: per-hop time of a tensor frame on loopback, no emulation. A sender process
 * sends one float32 tensor of 4 KB, 256 KB, 1 MB and 4 MB over a PeerLink to a receiver process (a child,
 * as the hosts are separate processes); the receiver's frame handler stamps the arrival time and replies.
 * Hop = handler time - send time, on the system-wide monotonic clock both processes share. Median of many,
 * one frame in flight at a time.
 *
 * Baselines in the same run: a plain ws client sending the same bytes as one message to a plain ws server
 * in the same child (compression off), hop = 'message' event time - send time; once with ws's default
 * random client mask (which copies and XORs every payload), once with the zero mask PeerLink uses.
 *
 * Goal: hop < 0.3 ms + bytes / (1 GB/s) for every size. ratio = worst (median / budget); pass when <= 1.
 *
 * Options: --quick (fewer repetitions).
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import WebSocket, { WebSocketServer } from 'ws';
import { PeerLink, PeerServer } from '../src/transport/index.js';

const SHA = 'f'.repeat(64);
const TOKEN = 'bench';
const now = (): bigint => process.hrtime.bigint();

if (process.argv.includes('--receiver')) {
  await receiver();
} else {
  await sender();
}

/** The child: a PeerServer and a plain ws server, each answering every message with its arrival time. */
async function receiver(): Promise<void> {
  const peer = await PeerServer.listen({
    self: { host: 'edge', tier: 'edge' },
    modelSha256: SHA,
    token: TOKEN,
    onFrame: (f) => {
      const at = now();
      f.reply({ kind: 'message', id: f.header.id, body: { at: at.toString(), copied: f.copiedBytes } });
    },
  });
  const raw = new WebSocketServer({
    port: 0,
    host: '127.0.0.1',
    perMessageDeflate: false,
    maxPayload: 256 * 1024 * 1024,
  });
  await new Promise<void>((r) => raw.once('listening', () => r()));
  raw.on('connection', (ws) => {
    ws.on('message', () => {
      const at = now();
      ws.send(at.toString());
    });
  });
  const rawPort = (raw.address() as { port: number }).port;
  console.log(JSON.stringify({ peerUrl: peer.url, rawUrl: `ws://127.0.0.1:${rawPort}` }));
  // Stay up until the parent closes our stdin.
  process.stdin.resume();
  await new Promise<void>((r) => process.stdin.once('end', () => r()));
  await peer.close();
  raw.close();
  process.exit(0);
}

async function sender(): Promise<void> {
  const quick = process.argv.includes('--quick');
  const child = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--receiver'], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout });
  const first = await new Promise<string>((resolve) => lines.once('line', resolve));
  const { peerUrl, rawUrl } = JSON.parse(first) as { peerUrl: string; rawUrl: string };

  // PeerLink: the reply carries the receiver's arrival time.
  let waiting: ((body: { at: string; copied: number }) => void) | null = null;
  const link = PeerLink.connect({
    url: peerUrl,
    token: TOKEN,
    self: { host: 'device', tier: 'device' },
    peerHost: 'edge',
    modelSha256: SHA,
    onFrame: (f) => waiting?.(f.header.body as { at: string; copied: number }),
  });
  await link.whenOpen();

  // Baselines: plain ws as it comes (random client mask), and with the zero mask the PeerLink uses.
  let rawWaiting: ((at: bigint) => void) | null = null;
  const plainClient = async (zeroMask: boolean): Promise<WebSocket> => {
    const ws = new WebSocket(rawUrl, {
      perMessageDeflate: false,
      ...(zeroMask ? { generateMask: (m: Buffer) => void m.fill(0) } : {}),
    });
    await new Promise<void>((r) => ws.once('open', () => r()));
    ws.on('message', (data) => rawWaiting?.(BigInt(String(data))));
    return ws;
  };
  const raw = await plainClient(false);
  const rawNoMask = await plainClient(true);
  const timePlain = async (ws: WebSocket, plain: Buffer, n: number, warm: number): Promise<number[]> => {
    const hops: number[] = [];
    for (let i = 0; i < warm + n; i++) {
      const got = new Promise<bigint>((resolve) => (rawWaiting = resolve));
      const t0 = now();
      ws.send(plain);
      const at = await got;
      if (i >= warm) hops.push(Number(at - t0) / 1e6);
    }
    return hops;
  };

  const sizes = [4 * 1024, 256 * 1024, 1024 * 1024, 4 * 1024 * 1024];
  const reps = quick ? [60, 40, 20, 10] : [1000, 300, 150, 60];
  const median = (xs: number[]): number => {
    const s = [...xs].sort((a, b) => a - b);
    return (s[(s.length - 1) >> 1] + s[s.length >> 1]) / 2;
  };

  // Warm both paths up (JIT, socket buffers) with every size before timing anything.
  for (const bytes of sizes) {
    const data = new Float32Array(bytes / 4);
    for (let i = 0; i < (quick ? 50 : 4_000_000 / Math.max(bytes, 4000)); i++) {
      const got = new Promise<unknown>((resolve) => (waiting = resolve));
      link.send({ kind: 'infer', id: 'warm' }, [{ name: 'x', dtype: 'float32', dims: [bytes / 4], data }]);
      await got;
      for (const ws of [raw, rawNoMask]) {
        const rawGot = new Promise<unknown>((resolve) => (rawWaiting = resolve));
        ws.send(Buffer.from(data.buffer));
        await rawGot;
      }
    }
  }

  const rows: Record<string, number>[] = [];
  for (let k = 0; k < sizes.length; k++) {
    const bytes = sizes[k];
    const data = Float32Array.from({ length: bytes / 4 }, (_, i) => i);
    const tensors = [{ name: 'x', dtype: 'float32' as const, dims: [1, bytes / 4], data }];
    const plain = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const n = reps[k];
    const warm = Math.max(5, n >> 2);

    const hops: number[] = [];
    let copied = 0;
    for (let i = 0; i < warm + n; i++) {
      const got = new Promise<{ at: string; copied: number }>((resolve) => (waiting = resolve));
      const t0 = now();
      link.send(
        { kind: 'infer', id: String(i), epoch: 1, route: [{ host: 'edge', tier: 'edge', from: 0, to: 1 }] },
        tensors,
      );
      const body = await got;
      if (i >= warm) {
        hops.push(Number(BigInt(body.at) - t0) / 1e6);
        copied += body.copied;
      }
    }

    const rawHops = await timePlain(raw, plain, n, warm);
    const noMaskHops = await timePlain(rawNoMask, plain, n, warm);

    const budgetMs = 0.3 + bytes / 1e6;
    const hopMs = median(hops);
    const rawMs = median(rawHops);
    const noMaskMs = median(noMaskHops);
    rows.push({
      bytes,
      hopMs: +hopMs.toFixed(4),
      p90Ms: +[...hops].sort((a, b) => a - b)[Math.floor(hops.length * 0.9)].toFixed(4),
      rawWsMs: +rawMs.toFixed(4),
      vsRawWs: +(hopMs / rawMs).toFixed(3),
      rawWsZeroMaskMs: +noMaskMs.toFixed(4),
      vsRawWsZeroMask: +(hopMs / noMaskMs).toFixed(3),
      budgetMs: +budgetMs.toFixed(4),
      ratio: +(hopMs / budgetMs).toFixed(3),
      copiedBytesPerFrame: Math.round(copied / n),
      reps: n,
    });
    console.log(
      `${String(bytes).padStart(8)} B: hop ${hopMs.toFixed(3)} ms (plain ws ${rawMs.toFixed(3)} ms, zero-mask ws ` +
        `${noMaskMs.toFixed(3)} ms), budget ${budgetMs.toFixed(3)} ms, ` +
        `ratio ${(hopMs / budgetMs).toFixed(3)}, receiver copied ${Math.round(copied / n)} B/frame`,
    );
  }

  await link.close();
  raw.close();
  rawNoMask.close();
  child.stdin.end();
  await new Promise<void>((r) => child.once('exit', () => r()));

  const worst = Math.max(...rows.map((r) => r.ratio));
  console.log(
    JSON.stringify({
      name: 'transport',
      figures: {
        hops: rows,
        baseline:
          'plain ws, same bytes as one message, same processes, no compression: rawWs with ws default ' +
          '(random) client masking, rawWsZeroMask with the zero mask PeerLink uses',
      },
      ratio: worst,
      goal: 'per-hop time < 0.3 ms + bytes at 1 GB/s for 4 KB, 256 KB, 1 MB, 4 MB (ratio = worst median / budget <= 1)',
      pass: worst <= 1,
    }),
  );
}
