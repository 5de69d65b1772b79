/**
 * The profiler: every block of a model timed on this machine as its own ORT session, the whole model
 * timed as one, and the host described, written as the profile JSON the planner reads.
 *
 * Block times summed overstate a fused run: each session run pays a fixed overhead, and ORT fuses
 * (Conv+BatchNormalization+activation) and keeps its blocked layout across node boundaries. Calibration:
 * blocks ORT folds into a preceding Conv get no time; the model is cut into ~16 contiguous chunks, each
 * timed as one fused session; a chunk's time, less the cost of its own edges (see `calibrate`), is shared
 * among its blocks in proportion to their times alone; the blocks plus one run overhead then sum to the
 * whole model's time exactly. A segment's estimate is the sum of its blocks' times (plus one run overhead
 * when it does not start at block 0); `checkSegments` measures how close that is for real fused segment
 * runs. What the estimate leaves out is the segment's own edge cost, about `timings.cutMsPerByte` times the
 * bytes of its input and output frontiers, half per side (the cleave cost model adds it per cut).
 */
import { cpus, totalmem } from 'node:os';
import ort from 'onnxruntime-node';
import type { Analysis } from './analysis.js';
import { extractSegment } from '../../graph/segment.js';
import { createSession, makeFeeds, runAllTensors, runSession, type Feeds } from './ort-local.js';
import { profileCodecs } from './codec-profile.js';
import { onnx } from '../../graph/onnx.js';
import { PROFILE_FORMAT, type Profile } from '../../planner/profile.js';
import { quantile } from '../../planner/estimate.js';

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
  /** Calibration chunks, each timed as one fused session (default 16; 1: scale all blocks uniformly). */
  readonly chunks?: number;
  readonly onProgress?: (done: number, total: number) => void;
  /** Boundaries at which lossy wire codecs' output error is measured (codec-profile.ts; default 16). */
  readonly codecErrorCuts?: number;
  /** Host facts; read from the OS (systeminformation where available) when absent. */
  readonly hostInfo?: { cpu: string; cores: number; memoryBytes: number };
}

export const PROFILE_DEFAULTS = { repeats: 10, warmup: 2, chunks: 16 } as const;
const CALIBRATION_PASSES = 2;

export async function profileModel(a: Analysis, opts: ProfileOptions): Promise<ProfileDoc> {
  const repeats = opts.repeats ?? PROFILE_DEFAULTS.repeats;
  const warmup = opts.warmup ?? PROFILE_DEFAULTS.warmup;
  const threads = opts.threads ?? 0;
  const feeds = makeFeeds(a.inputs);
  const values = await runAllTensors(a.model, feeds, { intraOpThreads: threads });
  const fronts = a.cuts.map((c) => c.tensors);

  const overhead = await runOverhead(repeats, warmup, threads);
  const raw: { median: number; p90: number }[] = [];
  for (const b of a.blocks) {
    const seg = segmentRun(a, fronts, values, b.start, b.end);
    raw.push(await timeSession(seg.bytes, seg.feeds, repeats, warmup, threads));
    opts.onProgress?.(raw.length, a.blocks.length);
  }
  // Nodes ORT folds into the preceding Conv in a fused run (BatchNormalization, activations) cost nothing
  // there, however long they take alone.
  const folded = a.blocks.map((b) => foldsIntoConv(a, b.start, b.end));
  const net = raw.map((r, i) => (folded[i] ? 0 : Math.max(r.median - overhead, 0)));
  const netP90 = raw.map((r, i) => (folded[i] ? 0 : Math.max(r.p90 - overhead, 0)));
  // Two-level calibration: the model cut into contiguous chunks, each timed as one fused session (one
  // chunk: the whole model alone, the blocks scaled uniformly). Each is timed warm, as a stage runs, in
  // CALIBRATION_PASSES passes over all of them, keeping each one's fastest pass: a burst of load on a
  // shared machine during one chunk would otherwise skew it against the others.
  const chunks = chunkBounds(net, folded, opts.chunks ?? PROFILE_DEFAULTS.chunks);
  const runs: { bytes: Uint8Array; feeds: Feeds }[] = [{ bytes: a.model.bytes, feeds }];
  if (chunks.length > 1) {
    for (const [lo, hi] of chunks) {
      runs.push(segmentRun(a, fronts, values, a.blocks[lo].start, a.blocks[hi - 1].end));
    }
  }
  const [whole, ...chunkTimes] = await timePasses(runs, CALIBRATION_PASSES, repeats, warmup, threads);
  const chunkMs = chunks.length > 1 ? chunkTimes.map((t) => t.median) : [whole.median];
  const cal = calibrate(
    net,
    chunks,
    chunkMs,
    a.blocks.map((b) => b.after.bytes ?? 0),
    whole.median,
    overhead,
  );
  const info = opts.hostInfo ?? (await hostFacts());
  const codecs = await profileCodecs(a, values, { threads, errorCuts: opts.codecErrorCuts });
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
        medianMs: round(cal.blockMs[i] + (i === 0 ? overhead : 0)),
        // p90 scaled as the median was.
        p90Ms: round(netP90[i] * cal.blockScale[i] + (i === 0 ? overhead : 0)),
        rawMedianMs: round(r.median),
      })),
      wholeModelMs: { medianMs: round(whole.median), p90Ms: round(whole.p90) },
      runOverheadMs: round(overhead),
      ...(cal.cutMsPerByte !== undefined ? { cutMsPerByte: cal.cutMsPerByte } : {}),
    },
    codecs,
    createdAt: new Date().toISOString(),
  };
}

const FOLDABLE = new Set([
  'BatchNormalization',
  'Relu',
  'Clip',
  'LeakyRelu',
  'HardSigmoid',
  'Sigmoid',
  'HardSwish',
  'Add',
]);
const FOLD_TARGETS = new Set(['Conv', 'BatchNormalization', 'Relu', 'Clip', 'LeakyRelu']);

/**
 * Whether every node of the block is one ORT's Conv fusions absorb: BatchNormalization or an activation
 * whose input comes straight from a Conv or from another such node (a BatchNormalization after a Concat, as
 * in DenseNet's pre-activation layers, and the Relu after it, are kept). `Add` only folds when it follows a
 * Conv (Conv+Add+Relu fusion), directly or through a folded BatchNormalization, so a residual join after a
 * Relu is kept.
 */
function foldsIntoConv(a: Analysis, start: number, end: number): boolean {
  for (let p = start; p < end; p++) if (!nodeFolds(a, p, 0)) return false;
  return true;
}

/** Node `p` folds: its input comes from a Conv, or from a node that itself folds (checked back along the chain). */
function nodeFolds(a: Analysis, p: number, depth: number): boolean {
  const { model } = a;
  const n = model.nodes[p];
  if (!FOLDABLE.has(n.opType) || depth > 8) return false;
  const src = model.producerOf.get(n.proto.input?.[0] ?? '');
  if (src === undefined) return false;
  const srcOp = model.nodes[src].opType;
  if (srcOp === 'Conv') return true;
  if (n.opType === 'Add' ? srcOp !== 'BatchNormalization' : !FOLD_TARGETS.has(srcOp)) return false;
  return nodeFolds(a, src, depth + 1);
}

/**
 * Calibration chunks: `k` contiguous block ranges of about equal block time (by `net`), each starting at a
 * block ORT does not fold into its predecessor, so no chunk edge splits a Conv from its BatchNormalization.
 */
export function chunkBounds(net: readonly number[], folded: readonly boolean[], k: number): [number, number][] {
  const n = net.length;
  const prefix = [0];
  for (const x of net) prefix.push(prefix[prefix.length - 1] + x);
  const total = prefix[n];
  const starts = [0];
  if (k > 1 && total > 0) {
    for (let j = 1; j < k; j++) {
      const target = (total * j) / k;
      let best = -1;
      for (let c = starts[starts.length - 1] + 1; c < n; c++) {
        if (folded[c]) continue;
        if (best < 0 || Math.abs(prefix[c] - target) < Math.abs(prefix[best] - target)) best = c;
        if (prefix[c] > target) break;
      }
      if (best > 0 && prefix[best] > prefix[starts[starts.length - 1]]) starts.push(best);
    }
  }
  return starts.map((s, i) => [s, i + 1 < starts.length ? starts[i + 1] : n]);
}

/**
 * Block times from the blocks' own `net` times and the chunks' fused times. A chunk timed alone pays, beyond
 * one run overhead, a cost at each edge the whole model does not: reorders out of and into ORT's blocked
 * layout and the copies of the frontier. Their total (the chunks' sum less the whole model) is charged per
 * byte of the inner edges' frontiers (`cutMsPerByte`, half on each side of a cut) and taken off each chunk;
 * the rest of the chunk's time goes to its blocks in proportion to `net`. A last uniform scale (1 unless
 * clamping or noise intervened) makes the blocks plus one overhead sum to the whole model exactly.
 */
export function calibrate(
  net: readonly number[],
  chunks: readonly (readonly [number, number])[],
  chunkMs: readonly number[],
  frontierBytes: readonly number[],
  wholeMs: number,
  overheadMs: number,
): { blockMs: number[]; blockScale: number[]; cutMsPerByte?: number } {
  const n = net.length;
  const edgeBytes = (c: number): number => (c > 0 && c < n ? frontierBytes[c - 1] : 0);
  const excess = chunkMs.reduce((s, t) => s + t, 0) - (chunks.length - 1) * overheadMs - wholeMs;
  const innerBytes = chunks.slice(1).reduce((s, [lo]) => s + edgeBytes(lo), 0);
  const perByte = chunks.length > 1 && excess > 0 && innerBytes > 0 ? excess / innerBytes : undefined;
  const blockMs = new Array<number>(n).fill(0);
  const blockScale = new Array<number>(n).fill(0);
  chunks.forEach(([lo, hi], k) => {
    let inner = chunkMs[k] - overheadMs;
    if (perByte !== undefined) inner -= (perByte / 2) * (edgeBytes(lo) + edgeBytes(hi));
    inner = Math.max(inner, 0);
    let s = 0;
    for (let i = lo; i < hi; i++) s += net[i];
    for (let i = lo; i < hi; i++) {
      blockScale[i] = s > 0 ? inner / s : 0;
      blockMs[i] = s > 0 ? net[i] * blockScale[i] : inner / (hi - lo);
    }
  });
  const sum = blockMs.reduce((x, y) => x + y, 0);
  const target = Math.max(wholeMs - overheadMs, 0);
  const scale = sum > 0 ? target / sum : 0;
  return {
    blockMs: blockMs.map((x) => (sum > 0 ? x * scale : target / n)),
    blockScale: blockScale.map((x) => x * scale),
    ...(perByte !== undefined ? { cutMsPerByte: Number(perByte.toPrecision(4)) } : {}),
  };
}

/**
 * Predicted (sum of profile block times, plus one overhead when not starting at block 0, plus the edge cost
 * `cutMsPerByte x (edge bytes at lo + edge bytes at hi) / 2`, the planner's cleave estimate) versus measured.
 */
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
    const seg = segmentRun(a, fronts, values, a.blocks[lo].start, a.blocks[hi - 1].end);
    const m = await timeSession(
      seg.bytes,
      seg.feeds,
      opts.repeats ?? PROFILE_DEFAULTS.repeats,
      opts.warmup ?? PROFILE_DEFAULTS.warmup,
      opts.threads ?? 0,
    );
    let predicted = 0;
    for (let i = lo; i < hi; i++) predicted += profile.timings.blocks[i].medianMs;
    if (lo > 0) predicted += profile.timings.runOverheadMs ?? 0;
    // The segment's own edges, as the planner's cleave model charges them (and as `calibrate` does).
    const n = profile.timings.blocks.length;
    const edgeBytes = (c: number): number => (c > 0 && c < n ? profile.model.blocks[c - 1].frontierBytes : 0);
    predicted += ((profile.timings.cutMsPerByte ?? 0) / 2) * (edgeBytes(lo) + edgeBytes(hi));
    out.push({
      blocks: [lo, hi] as [number, number],
      predictedMs: round(predicted),
      measuredMs: round(m.median),
      error: round((predicted - m.median) / m.median),
    });
  }
  return out;
}

/** Nodes `[start, end)` as a standalone model, with its inputs taken from a whole-model run's tensors. */
function segmentRun(
  a: Analysis,
  fronts: readonly (readonly string[])[],
  values: Feeds,
  start: number,
  end: number,
): { bytes: Uint8Array; feeds: Feeds } {
  const seg = extractSegment(a.model, start, end, { fronts, types: a.types });
  const feeds: Feeds = {};
  for (const t of seg.inputs) feeds[t] = values[t];
  return { bytes: seg.bytes, feeds };
}

async function timeSession(
  bytes: Uint8Array,
  feeds: Feeds,
  repeats: number,
  warmup: number,
  threads: number,
): Promise<{ median: number; p90: number }> {
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

/** Passes over several sessions, each timed warm (`timeSession`); per session, the pass with the lowest median. */
async function timePasses(
  runs: readonly { bytes: Uint8Array; feeds: Feeds }[],
  passes: number,
  repeats: number,
  warmup: number,
  threads: number,
): Promise<{ median: number; p90: number }[]> {
  const best: { median: number; p90: number }[] = [];
  for (let p = 0; p < passes; p++) {
    for (let k = 0; k < runs.length; k++) {
      const t = await timeSession(runs[k].bytes, runs[k].feeds, repeats, warmup, threads);
      if (best[k] === undefined || t.median < best[k].median) best[k] = t;
    }
  }
  return best;
}

/** The fixed cost of one session run: a one-node Identity model on a 4-byte tensor. */
async function runOverhead(repeats: number, warmup: number, threads: number): Promise<number> {
  const F = onnx.TensorProto.DataType.FLOAT;
  const vi = (name: string): object => ({
    name,
    type: { tensorType: { elemType: F, shape: { dim: [{ dimValue: 1 }] } } },
  });
  const bytes = onnx.ModelProto.encode(
    onnx.ModelProto.create({
      irVersion: 7,
      opsetImport: [{ domain: '', version: 13 }],
      graph: {
        name: 'overhead',
        node: [{ opType: 'Identity', input: ['x'], output: ['y'] }],
        input: [vi('x')],
        output: [vi('y')],
      },
    }),
  ).finish();
  const r = await timeSession(
    bytes,
    { x: new ort.Tensor('float32', new Float32Array(1), [1]) },
    Math.max(repeats, 50),
    warmup,
    threads,
  );
  return r.median;
}

function round(x: number): number {
  return Math.round(x * 1e4) / 1e4;
}

/** CPU model, cores and memory; systeminformation for the CPU brand, os as the fallback. */
async function hostFacts(): Promise<{ cpu: string; cores: number; memoryBytes: number }> {
  try {
    const si = await import('systeminformation');
    const c = await si.cpu();
    const m = await si.mem();
    return { cpu: `${c.manufacturer} ${c.brand}`.trim(), cores: c.cores, memoryBytes: m.total };
  } catch {
    return { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, memoryBytes: totalmem() };
  }
}
