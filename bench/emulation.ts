/**
 * `npm run bench -- emulation`: does what a link measures (from acks and pings, never from the settings)
 * agree with what the emulator was told? For 1, 10 and 100 Mbit/s, each with 5 and 50 ms one-way delay, a
 * sender keeps the link busy with frames of ~50 ms worth of bytes; the link's own throughput and RTT
 * estimates are read every 100 ms once warmed up, and their medians compared with the settings
 * (throughput = bandwidth, RTT = 2 x one-way delay). Goal: every figure within 10%.
 *
 * Options: --seconds N (measured seconds per case, default 3).
 */
import { performance } from 'node:perf_hooks';
import { PeerLink, PeerServer } from '../src/transport/index.js';

const arg = (name: string, def: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
};
const SECONDS = arg('seconds', 3);
const WARMUP_MS = 1500;
const TOLERANCE = 0.1;
const SHA = '0'.repeat(64);
const TOKEN = 'bench';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s[(s.length - 1) >> 1] + s[s.length >> 1]) / 2 : NaN;
};

const server = await PeerServer.listen({
  self: { host: 'cloud', tier: 'cloud' },
  modelSha256: SHA,
  token: TOKEN,
  onFrame: () => undefined,
});

interface Case {
  mbps: number;
  delayMs: number;
  throughputBps: number;
  measuredBps: number;
  throughputRatio: number;
  rttMs: number;
  measuredRttMs: number;
  rttRatio: number;
  frameBytes: number;
  frames: number;
}

async function run(mbps: number, delayMs: number): Promise<Case> {
  const bandwidthBps = (mbps * 1e6) / 8;
  const link = PeerLink.connect({
    url: server.url,
    token: TOKEN,
    self: { host: 'edge', tier: 'edge' },
    peerHost: 'cloud',
    modelSha256: SHA,
    emulation: { bandwidthBps, delayMs },
    options: { pingIntervalMs: 100 },
  });
  await link.whenOpen();
  const frameBytes = Math.round(bandwidthBps * 0.05);
  const payload = [{ name: 'x', dtype: 'uint8' as const, dims: [frameBytes], data: new Uint8Array(frameBytes) }];
  const start = performance.now();
  const end = start + WARMUP_MS + SECONDS * 1000;
  const rates: number[] = [];
  const rtts: number[] = [];
  let nextRead = start + WARMUP_MS;
  while (performance.now() < end) {
    // Keep two to three frames queued so the link never idles.
    while (link.stats().queuedBytes < 2 * frameBytes) link.send({ kind: 'infer' }, payload);
    const now = performance.now();
    if (now >= nextRead) {
      const st = link.stats();
      if (st.throughputBps !== null) rates.push(st.throughputBps);
      if (st.rttMs !== null) rtts.push(st.rttMs);
      nextRead += 100;
    }
    await sleep(5);
  }
  const frames = link.stats().framesAcked;
  await link.close();
  const measuredBps = median(rates);
  const measuredRttMs = median(rtts);
  const rttMs = 2 * delayMs;
  return {
    mbps,
    delayMs,
    throughputBps: bandwidthBps,
    measuredBps: Math.round(measuredBps),
    throughputRatio: +(measuredBps / bandwidthBps).toFixed(4),
    rttMs,
    measuredRttMs: +measuredRttMs.toFixed(3),
    rttRatio: +(measuredRttMs / rttMs).toFixed(4),
    frameBytes,
    frames,
  };
}

const cases: Case[] = [];
for (const mbps of [1, 10, 100]) {
  for (const delayMs of [5, 50]) {
    const c = await run(mbps, delayMs);
    cases.push(c);
    console.log(
      `${String(mbps).padStart(3)} Mbit/s ${String(delayMs).padStart(2)} ms: throughput ${(c.measuredBps * 8e-6).toFixed(3)} Mbit/s ` +
        `(x${c.throughputRatio}), RTT ${c.measuredRttMs} ms vs ${c.rttMs} (x${c.rttRatio}), ${c.frames} frames of ${c.frameBytes} B`,
    );
  }
}
await server.close();

const worst = Math.max(...cases.flatMap((c) => [Math.abs(c.throughputRatio - 1), Math.abs(c.rttRatio - 1)]));
console.log(
  JSON.stringify({
    name: 'emulation',
    figures: { cases, worstRelativeError: +worst.toFixed(4), secondsPerCase: SECONDS },
    ratio: +(worst / TOLERANCE).toFixed(3),
    goal: 'measured throughput and RTT within 10% of the emulator settings (ratio = worst relative error / 0.10 <= 1)',
    pass: worst <= TOLERANCE,
  }),
);
