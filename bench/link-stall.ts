/**
 * `npm run bench -- link-stall [--model mobilenetv2] [--seconds 20] [--clients 2]`
 *
 * A link's figures as its sender measures them while the sender itself is throttled: the default three hosts
 * (real processes, CPU quotas as `npm start`), a plan pinned `device[0:61) -> cloud` so that the 0.25-CPU
 * device computes and sends every request, and two clients in a closed loop. The device's link to the cloud
 * is emulated at 50 Mbit/s with 15 ms each way (its `emulation` settings are the truth to compare with).
 * Every 250 ms the device's report of the link is read: its latest RTT sample as read (`rttLastMs`, the
 * device's own stalls and all: the baseline), the RTT the controller plans with (`rttLeastRecentMs`, the
 * stalls taken out), and the throughput estimate it plans with (`throughputRecentBps`, timed against that RTT).
 * The same is read first with no load (the device idle).
 *
 * Goal: under load, the planned RTT's median within 10 % of the emulated round trip, and the planned
 * throughput's 90th percentile no more than 1.15 x the emulated bandwidth (an RTT inflated by the sender's
 * stalls made 50 kB frames look 1.6-3x faster than the link). `ratio`: planned over raw RTT median under load.
 */
import { rmSync } from 'node:fs';
import http from 'node:http';
import { parseArgs } from 'node:util';
import { makeFeeds } from '../src/runtime/local/ort-local.js';
import { launchDefault } from './_deploy.js';
import { binaryBody, postInfer } from './_oip.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string', default: 'mobilenetv2' },
    seconds: { type: 'string', default: '20' },
    clients: { type: 'string', default: '2' },
  },
});
const RUN_MS = Number(values.seconds) * 1000;
const CLIENTS = Number(values.clients);
if (!(RUN_MS > 0 && Number.isInteger(CLIENTS) && CLIENTS > 0))
  throw new Error('--seconds must be > 0 and --clients an integer > 0');
const NAME = values.model;
const SAMPLE_MS = 250;

const { d, dir, specs, api } = await launchDefault(NAME, 'cleave-bench-link-stall-');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const q = (xs: number[], p: number): number | null => {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
};
const r2 = (v: number | null): number | null => (v === null ? null : Math.round(v * 100) / 100);

interface Report {
  from: string;
  to: string;
  rttLastMs?: number | null;
  rttLeastRecentMs?: number | null;
  throughputRecentBps?: number | null;
  rttStalledSamples?: number;
  emulation: { bandwidthBps: number | null; delayMs: number } | null;
}

/** Samples the device's link to the cloud for `ms`. */
async function sample(ms: number): Promise<{ raw: number[]; planned: number[]; mbps: number[]; stalled: number }> {
  const out = { raw: [] as number[], planned: [] as number[], mbps: [] as number[], stalled: 0 };
  const t0 = Date.now();
  let first: number | null = null;
  let last = 0;
  while (Date.now() - t0 < ms) {
    const links = (await api('GET', '/v1/links')) as Report[];
    const l = links.find((x) => x.from === 'device' && x.to === 'cloud');
    if (l) {
      if (typeof l.rttLastMs === 'number') out.raw.push(l.rttLastMs);
      if (typeof l.rttLeastRecentMs === 'number') out.planned.push(l.rttLeastRecentMs);
      if (typeof l.throughputRecentBps === 'number') out.mbps.push(l.throughputRecentBps / 1e6);
      first ??= l.rttStalledSamples ?? 0;
      last = l.rttStalledSamples ?? 0;
    }
    await sleep(SAMPLE_MS);
  }
  out.stalled = last - (first ?? 0);
  return out;
}

let lastLine: string | null = null;
try {
  await d.ready(300_000);
  const links = (await api('GET', '/v1/links')) as Report[];
  const em = links.find((x) => x.from === 'device' && x.to === 'cloud')?.emulation;
  if (!em?.bandwidthBps) throw new Error('the device -> cloud link is not emulated: no truth to compare with');
  const trueRtt = 2 * em.delayMs;
  const trueMBps = em.bandwidthBps / 1e6;

  const idle = await sample(Math.min(RUN_MS, 10_000));
  await api('PUT', '/v1/controller', { paused: true });
  await api('PUT', '/v1/plan', {
    stages: [
      { host: 'device', blocks: [0, 61] },
      { host: 'cloud', blocks: [61, 157] },
    ],
  });
  const port = Number(d.origin.listen.split(':').pop());
  const agent = new http.Agent({ keepAlive: true, maxSockets: CLIENTS });
  const x = makeFeeds(specs)[specs[0].name].data as Float32Array;
  const { header, body } = binaryBody(specs[0], x);
  let stop = false;
  let requests = 0;
  const client = async (): Promise<void> => {
    while (!stop) {
      await postInfer({ port, model: NAME, agent, header, body });
      requests++;
    }
  };
  const clients = Array.from({ length: CLIENTS }, client);
  await sleep(5000);
  const loaded = await sample(RUN_MS);
  stop = true;
  await Promise.all(clients);

  const fig = (s: typeof idle) => ({
    rawRttMs: { p50: r2(q(s.raw, 0.5)), p90: r2(q(s.raw, 0.9)) },
    plannedRttMs: { p50: r2(q(s.planned, 0.5)), p90: r2(q(s.planned, 0.9)) },
    plannedMBps: { p10: r2(q(s.mbps, 0.1)), p50: r2(q(s.mbps, 0.5)), p90: r2(q(s.mbps, 0.9)) },
    stalledRttSamples: s.stalled,
    samples: s.raw.length,
  });
  const L = fig(loaded);
  const rttOk = L.plannedRttMs.p50 !== null && Math.abs(L.plannedRttMs.p50 - trueRtt) <= 0.1 * trueRtt;
  const tpOk = L.plannedMBps.p90 !== null && L.plannedMBps.p90 <= 1.15 * trueMBps;
  const ratio = L.plannedRttMs.p50 !== null && L.rawRttMs.p50 ? r2(L.plannedRttMs.p50 / L.rawRttMs.p50) : null;
  console.log(
    `device->cloud, emulated ${trueRtt} ms / ${r2(trueMBps)} MB/s; under load (${requests} requests): RTT as read p50 ${L.rawRttMs.p50} ms, planned p50 ${L.plannedRttMs.p50} ms; planned throughput p10/p50/p90 ${L.plannedMBps.p10}/${L.plannedMBps.p50}/${L.plannedMBps.p90} MB/s`,
  );
  lastLine = JSON.stringify({
    name: 'link-stall',
    model: NAME,
    clients: CLIENTS,
    seconds: RUN_MS / 1000,
    link: { from: 'device', to: 'cloud', rttMs: trueRtt, MBps: r2(trueMBps) },
    idle: fig(idle),
    loaded: { ...L, requests },
    ratio,
    goal: 'under load: planned RTT p50 within 10 % of the emulated RTT; planned throughput p90 <= 1.15 x the emulated bandwidth',
    checks: { rtt: rttOk, throughput: tpOk },
    pass: rttOk && tpOk,
  });
} finally {
  await d.stop();
  rmSync(dir, { recursive: true, force: true });
}
if (lastLine) console.log(lastLine);
