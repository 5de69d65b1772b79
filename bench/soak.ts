/**
 * `npm run bench -- soak [--minutes 10] [--warmup-minutes 2] [--model mobilenetv2] [--clients 4] [--node-flags F]`
 *
 * Memory under sustained load: the default three hosts as real processes (CPU quotas as `npm start`), a plan
 * pinned through all three (so every host works: device -> edge -> cloud), and a closed loop of binary
 * requests for the whole run. Every host's resident set (VmRSS, /proc) is sampled every 5 s. The baseline is
 * each host's RSS at the end of the warm-up (sessions loaded, pools and caches filled); the figures are its
 * growth from there to the end, per 1,000 requests, and the slope of a least-squares line over the samples
 * after the warm-up. Each host's V8 heap in use and external memory (Buffers, ArrayBuffers) are read from its
 * /metrics at the same time, so that growth can be told apart: JS objects, buffers, or native (ORT).
 *
 * Goal: no host grows more than 32 MB after the warm-up (`ratio` is the largest final / baseline RSS).
 */
import { readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { parseArgs } from 'node:util';
import { makeFeeds } from '../src/runtime/local/ort-local.js';
import { launchDefault } from './_deploy.js';
import { binaryBody, postInfer } from './_oip.js';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    'warmup-minutes': { type: 'string', default: '2' },
    model: { type: 'string', default: 'mobilenetv2' },
    clients: { type: 'string', default: '4' },
    // The hosts' Node flags instead of HOST_NODE_FLAGS (space-separated), to compare heap settings.
    'node-flags': { type: 'string' },
  },
});
const RUN_MS = Number(values.minutes) * 60_000;
const WARM_MS = Number(values['warmup-minutes']) * 60_000;
const CLIENTS = Number(values.clients);
if (!(RUN_MS > 0 && WARM_MS >= 0 && WARM_MS < RUN_MS && CLIENTS > 0))
  throw new Error('--minutes > --warmup-minutes >= 0 and --clients > 0, please');
const BOUND_MB = 32;
const SAMPLE_MS = 5000;
const NAME = values.model;

const nodeFlags = values['node-flags']?.split(/\s+/).filter(Boolean);
// Hosts started without HOST_NODE_FLAGS would re-exec themselves with them (node-flags.ts) unless told not to.
if (nodeFlags) process.env.CLEAVE_NODE_FLAGS = '0';
const { d, dir, config, specs, api } = await launchDefault(NAME, 'cleave-bench-soak-', nodeFlags ? { nodeFlags } : {});

function rssMb(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}

/** Least-squares slope of y over x. */
function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i] - mx) * (ys[i] - my);
    den += (xs[i] - mx) ** 2;
  }
  return den > 0 ? num / den : 0;
}

const r2 = (v: number): number => Math.round(v * 100) / 100;

/** A host's V8 heap in use and external memory (MB), from its Prometheus exposition; nulls when unreadable. */
async function heapOf(listen: string): Promise<{ heap: number | null; external: number | null }> {
  try {
    const text = await (await fetch(`http://${listen}/metrics`, { signal: AbortSignal.timeout(2000) })).text();
    const read = (name: string): number | null => {
      const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
      return m ? Number(m[1]) / (1024 * 1024) : null;
    };
    return {
      heap: read('cleave_process_nodejs_heap_size_used_bytes'),
      external: read('cleave_process_nodejs_external_memory_bytes'),
    };
  } catch {
    return { heap: null, external: null };
  }
}

let lastLine: string | null = null;
try {
  await d.ready(300_000);
  const plan = (await api('GET', '/v1/plan')) as { stages: { blocks: [number, number] | null }[] };
  const n = plan.stages.reduce((m, s) => Math.max(m, s.blocks?.[1] ?? 0), 0);
  await api('PUT', '/v1/plan', {
    stages: [
      { host: 'device', blocks: [0, Math.floor(n / 4)] },
      { host: 'edge', blocks: [Math.floor(n / 4), Math.floor(n / 2)] },
      { host: 'cloud', blocks: [Math.floor(n / 2), n] },
    ],
  });
  const port = Number(d.origin.listen.split(':').pop());
  const agent = new http.Agent({ keepAlive: true, maxSockets: CLIENTS });
  const x = makeFeeds(specs)[specs[0].name].data as Float32Array;
  const { header, body } = binaryBody(specs[0], x);
  let ok = 0;
  let failed = 0;
  let stop = false;
  const client = async (): Promise<void> => {
    while (!stop) {
      const r = await postInfer({ port, model: NAME, agent, header, body }).catch(() => ({ status: 0 }));
      if (r.status === 200) ok++;
      else failed++;
    }
  };
  const t0 = Date.now();
  const clients = Array.from({ length: CLIENTS }, client);
  const samples: {
    t: number;
    requests: number;
    rss: Record<string, number | null>;
    heap: Record<string, { heap: number | null; external: number | null }>;
  }[] = [];
  while (Date.now() - t0 < RUN_MS) {
    await new Promise((r) => setTimeout(r, SAMPLE_MS));
    const rss: Record<string, number | null> = {};
    const heap: Record<string, { heap: number | null; external: number | null }> = {};
    for (const h of config.hosts) {
      rss[h.name] = rssMb(d.pid(h.name));
      heap[h.name] = await heapOf(h.listen);
    }
    samples.push({ t: Date.now() - t0, requests: ok + failed, rss, heap });
    process.stdout.write(
      `soak: ${((Date.now() - t0) / 1000).toFixed(0)} s, ${ok} ok, ${failed} failed, RSS MB ${Object.entries(rss)
        .map(([h, v]) => `${h} ${v?.toFixed(1)}`)
        .join(', ')}\n`,
    );
  }
  stop = true;
  await Promise.all(clients);
  const after = samples.filter((s) => s.t >= WARM_MS);
  const first = after[0];
  const last = after[after.length - 1];
  const perHost = config.hosts.map((h) => {
    const xs = after.filter((s) => s.rss[h.name] !== null);
    const baseline = first.rss[h.name] ?? NaN;
    const final = last.rss[h.name] ?? NaN;
    const growth = final - baseline;
    const reqs = last.requests - first.requests;
    return {
      host: h.name,
      baselineMb: r2(baseline),
      finalMb: r2(final),
      peakMb: r2(Math.max(...xs.map((s) => s.rss[h.name] as number))),
      growthMb: r2(growth),
      heapGrowthMb: r2((last.heap[h.name]?.heap ?? NaN) - (first.heap[h.name]?.heap ?? NaN)),
      externalGrowthMb: r2((last.heap[h.name]?.external ?? NaN) - (first.heap[h.name]?.external ?? NaN)),
      growthMbPer1000Requests: reqs > 0 ? r2((growth * 1000) / reqs) : null,
      slopeMbPerMinute: r2(
        slope(
          xs.map((s) => s.t / 60_000),
          xs.map((s) => s.rss[h.name] as number),
        ),
      ),
    };
  });
  const worst = Math.max(...perHost.map((h) => h.finalMb / h.baselineMb));
  const pass = failed === 0 && perHost.every((h) => h.growthMb <= BOUND_MB);
  // Printed after the deployment stops: a host's last log lines (links closing) must not follow it.
  lastLine = JSON.stringify({
    name: 'soak',
    model: NAME,
    minutes: RUN_MS / 60_000,
    warmupMinutes: WARM_MS / 60_000,
    clients: CLIENTS,
    nodeFlags: nodeFlags ?? 'default',
    mallocArenaMax: process.env.MALLOC_ARENA_MAX ?? null,
    requests: ok + failed,
    failed,
    hosts: perHost,
    ratio: r2(worst),
    goal: `no host's RSS grows more than ${BOUND_MB} MB after the warm-up; 0 failed`,
    pass,
  });
} finally {
  await d.stop();
  rmSync(dir, { recursive: true, force: true });
}
if (lastLine !== null) console.log(lastLine);
