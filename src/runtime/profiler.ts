/**
 * The profiler: every block of a model timed on this machine as its own ORT session, the whole model
 * timed as one, and the host described, written as the profile JSON the planner reads.
 *
 * Block times summed overstate a fused run: each session run pays a fixed overhead, and ORT fuses and
 * re-lays out across node boundaries. We measure the per-run overhead (a one-node session) and scale the
 * blocks' net times so that, with one overhead added back, the whole model's blocks sum to the measured
 * whole-model time. A segment's estimate is then the sum of its blocks' times; `checkSegments` measures
 * how close that is for real fused segment runs.
 */
import { cpus, totalmem } from 'node:os';
import ort from 'onnxruntime-node';
import type { Analysis } from './analysis.js';
import { extractSegment } from '../graph/segment.js';
import { createSession, makeFeeds, runAllTensors, runSession, type Feeds } from './ort-local.js';
import { onnx } from '../graph/onnx.js';
import { PROFILE_FORMAT, type Profile } from '../planner/profile.js';

/** The profile format is the planner's (src/planner/profile.ts): it reads what this writes. */
export type ProfileDoc = Profile;
export { PROFILE_FORMAT };

export interface ProfileOptions {
  readonly host: string;
  readonly tier: string;
  readonly repeats?: number;
  readonly warmup?: number;
  /** ORT intra-op threads (0: ORT's default). */
  readonly threads?: number;
  readonly onProgress?: (done: number, total: number) => void;
  /** Host facts; read from the OS (systeminformation where available) when absent. */
  readonly hostInfo?: { cpu: string; cores: number; memoryBytes: number };
}

export const PROFILE_DEFAULTS = { repeats: 10, warmup: 2 } as const;

export async function profileModel(a: Analysis, opts: ProfileOptions): Promise<ProfileDoc> {
  const repeats = opts.repeats ?? PROFILE_DEFAULTS.repeats;
  const warmup = opts.warmup ?? PROFILE_DEFAULTS.warmup;
  const threads = opts.threads ?? 0;
  const feeds = makeFeeds(a.inputs);
  const values = await runAllTensors(a.model, feeds, { intraOpThreads: threads });
  const fronts = a.cuts.map((c) => c.tensors);

  const whole = await timeSession(a.model.bytes, feeds, repeats, warmup, threads);
  const overhead = await runOverhead(repeats, warmup, threads);
  const raw: { median: number; p90: number }[] = [];
  for (const b of a.blocks) {
    const seg = extractSegment(a.model, b.start, b.end, { fronts, types: a.types });
    const segFeeds: Feeds = {};
    for (const t of seg.inputs) segFeeds[t] = values[t];
    raw.push(await timeSession(seg.bytes, segFeeds, repeats, warmup, threads));
    opts.onProgress?.(raw.length, a.blocks.length);
  }
  // Nodes ORT folds into the preceding Conv in a fused run (BatchNormalization, activations) cost nothing
  // there, however long they take alone; leaving them out before scaling keeps the scale uniform.
  const folded = a.blocks.map((b) => foldsIntoConv(a, b.start, b.end));
  const net = raw.map((r, i) => (folded[i] ? 0 : Math.max(r.median - overhead, 0)));
  const netSum = net.reduce((x, y) => x + y, 0);
  const scale = netSum > 0 ? Math.max(whole.median - overhead, 0) / netSum : 1;
  const info = opts.hostInfo ?? (await hostFacts());
  return {
    format: PROFILE_FORMAT,
    model: {
      name: a.model.name,
      sha256: a.model.sha256,
      inputBytes: a.inputBytes,
      outputBytes: a.outputBytes,
      blocks: a.blocks.map((b) => ({
        index: b.index,
        name: b.name,
        nodes: [b.start, b.end],
        frontierBytes: b.after.bytes ?? 0,
        frontierTensors: b.after.tensors.length,
        weightBytes: b.weightBytes,
      })),
    },
    host: { name: opts.host, tier: opts.tier, ...info, threads },
    timings: {
      repeats,
      warmup,
      blocks: raw.map((r, i) => ({
        // The first block also carries the one run overhead a segment pays.
        medianMs: round(net[i] * scale + (i === 0 ? overhead : 0)),
        p90Ms: round((folded[i] ? 0 : Math.max(r.p90 - overhead, 0)) * scale + (i === 0 ? overhead : 0)),
        rawMedianMs: round(r.median),
      })),
      wholeModelMs: { medianMs: round(whole.median), p90Ms: round(whole.p90) },
      runOverheadMs: round(overhead),
    },
    createdAt: new Date().toISOString(),
  };
}

const FOLDABLE = new Set(['BatchNormalization', 'Relu', 'Clip', 'LeakyRelu', 'HardSigmoid', 'Sigmoid', 'HardSwish', 'Add']);
const FOLD_TARGETS = new Set(['Conv', 'BatchNormalization', 'Relu', 'Clip', 'LeakyRelu']);

/**
 * Whether every node of the block is one ORT's Conv fusions absorb: BatchNormalization or an activation
 * whose input comes straight from a Conv (or from another such node). `Add` only folds when it follows a
 * Conv directly (Conv+Add+Relu fusion), so a residual join after a Relu is kept.
 */
function foldsIntoConv(a: Analysis, start: number, end: number): boolean {
  const { model } = a;
  for (let p = start; p < end; p++) {
    const n = model.nodes[p];
    if (!FOLDABLE.has(n.opType)) return false;
    const src = model.producerOf.get(n.proto.input?.[0] ?? '');
    if (src === undefined) return false;
    const srcOp = model.nodes[src].opType;
    if (n.opType === 'Add' ? srcOp !== 'Conv' && srcOp !== 'BatchNormalization' : !FOLD_TARGETS.has(srcOp)) return false;
  }
  return true;
}

/** Predicted (sum of profile block times, plus one overhead when not starting at block 0) versus measured. */
export async function checkSegments(
  a: Analysis,
  profile: ProfileDoc,
  ranges: readonly [number, number][],
  opts: { repeats?: number; warmup?: number; threads?: number } = {},
): Promise<{ blocks: [number, number]; predictedMs: number; measuredMs: number; error: number }[]> {
  const feeds = makeFeeds(a.inputs);
  const values = await runAllTensors(a.model, feeds, { intraOpThreads: opts.threads ?? 0 });
  const fronts = a.cuts.map((c) => c.tensors);
  const out = [];
  for (const [lo, hi] of ranges) {
    const seg = extractSegment(a.model, a.blocks[lo].start, a.blocks[hi - 1].end, { fronts, types: a.types });
    const segFeeds: Feeds = {};
    for (const t of seg.inputs) segFeeds[t] = values[t];
    const m = await timeSession(seg.bytes, segFeeds, opts.repeats ?? PROFILE_DEFAULTS.repeats, opts.warmup ?? PROFILE_DEFAULTS.warmup, opts.threads ?? 0);
    let predicted = 0;
    for (let i = lo; i < hi; i++) predicted += profile.timings.blocks[i].medianMs;
    if (lo > 0) predicted += profile.timings.runOverheadMs ?? 0;
    out.push({ blocks: [lo, hi] as [number, number], predictedMs: round(predicted), measuredMs: round(m.median), error: round((predicted - m.median) / m.median) });
  }
  return out;
}

async function timeSession(bytes: Uint8Array, feeds: Feeds, repeats: number, warmup: number, threads: number): Promise<{ median: number; p90: number }> {
  const s = await createSession(bytes, { intraOpThreads: threads });
  try {
    for (let i = 0; i < warmup; i++) await runSession(s, feeds);
    const times: number[] = [];
    for (let i = 0; i < repeats; i++) {
      const t0 = performance.now();
      await runSession(s, feeds);
      times.push(performance.now() - t0);
    }
    return { median: quantile(times, 0.5), p90: quantile(times, 0.9) };
  } finally {
    await s.release();
  }
}

/** The fixed cost of one session run: a one-node Identity model on a 4-byte tensor. */
async function runOverhead(repeats: number, warmup: number, threads: number): Promise<number> {
  const F = onnx.TensorProto.DataType.FLOAT;
  const vi = (name: string): object => ({ name, type: { tensorType: { elemType: F, shape: { dim: [{ dimValue: 1 }] } } } });
  const bytes = onnx.ModelProto.encode(
    onnx.ModelProto.create({
      irVersion: 7,
      opsetImport: [{ domain: '', version: 13 }],
      graph: { name: 'overhead', node: [{ opType: 'Identity', input: ['x'], output: ['y'] }], input: [vi('x')], output: [vi('y')] },
    }),
  ).finish();
  const r = await timeSession(bytes, { x: new ort.Tensor('float32', new Float32Array(1), [1]) }, Math.max(repeats, 50), warmup, threads);
  return r.median;
}

export function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo] + (s[hi] - s[lo]) * (pos - lo);
}

function round(x: number): number {
  return Math.round(x * 1e4) / 1e4;
}

/** CPU model, cores and memory; systeminformation for the CPU brand, os as the fallback. */
export async function hostFacts(): Promise<{ cpu: string; cores: number; memoryBytes: number }> {
  try {
    const si = await import('systeminformation');
    const c = await si.cpu();
    const m = await si.mem();
    return { cpu: `${c.manufacturer} ${c.brand}`.trim(), cores: c.cores, memoryBytes: m.total };
  } catch {
    return { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, memoryBytes: totalmem() };
  }
}
