/**
 * The wire codecs measured on one host for one model, for the planner's codec choice per hop:
 * - each codec's encode and decode cost on this host, in ms per raw byte, timed on the model's largest
 *   tensors that cross a cut;
 * - its ratio (coded over raw bytes) at every boundary, on the tensors of the profile's input run;
 * - for lossy codecs, the model output's relative error (||y' - y|| / ||y||, the worst output) and top-1
 *   agreement (argmax of the first float output's last axis) when the tensors at a boundary travel in the
 *   codec and the rest of the model runs on them. That takes a session of the model's tail per boundary, so
 *   it is measured at `errorCuts` boundaries spread over the model (and at the input); elsewhere it is null,
 *   and the planner does not use a lossy codec there. A boundary with no float32 tensor is exact (0).
 */
import ort from 'onnxruntime-node';
import { extractSegment } from '../../graph/segment.js';
import { CODECS, decodeTensor, encodeTensor, isLossless, valuesOf, type CodecName } from '../../transport/codec.js';
import { DTYPE_SIZE, tensorBytes, typedFromBytes, type Dtype } from '../../transport/dtype.js';
import type { ProfileCodec } from '../../planner/profile.js';
import type { Analysis } from './analysis.js';
import { createSession, runSession, type Feeds } from './ort-local.js';

export const CODEC_PROFILE_DEFAULTS = {
  errorCuts: 16,
  timingTensors: 3,
  timingRepeats: 3,
  /** Tensors above samples x sampleBytes have their compressed size estimated from that many even slices. */
  samples: 4,
  sampleBytes: 64 * 1024,
} as const;

/**
 * The coded size of a tensor's bytes. A big tensor is estimated from `samples` slices spread over it, each
 * coded on its own (a compressor with less context does no better, so the estimate errs towards more
 * bytes); a brotli pass over every frontier of a big model would cost a throttled host minutes.
 */
export function codedSize(codec: CodecName, dtype: Dtype, raw: Buffer): number {
  if (codec === 'raw') return raw.length;
  const { samples, sampleBytes } = CODEC_PROFILE_DEFAULTS;
  const width = DTYPE_SIZE[dtype];
  const slice = Math.floor(sampleBytes / width) * width;
  if (raw.length <= samples * slice) return encodeTensor(codec, dtype, raw).bytes.length;
  const elements = raw.length / width;
  let out = 0;
  for (let k = 0; k < samples; k++) {
    const at = Math.floor((k * (elements - slice / width)) / (samples - 1)) * width;
    out += encodeTensor(codec, dtype, raw.subarray(at, at + slice)).bytes.length;
  }
  return Math.round((out * raw.length) / (samples * slice));
}

export interface CodecProfileOptions {
  readonly threads?: number;
  /** Boundaries (besides the input) at which lossy codecs' output error is measured. Default 16. */
  readonly errorCuts?: number;
}

const CODED = CODECS.filter((c) => c !== 'raw');

/** The tensors at boundary c (0: the model's inputs). */
function tensorsAt(a: Analysis, c: number): readonly string[] {
  return c === 0 ? a.inputs.map((i) => i.name) : a.blocks[c - 1].after.tensors;
}

function roundTrip(codec: CodecName, t: ort.Tensor): ort.Tensor {
  const dtype = t.type as Dtype;
  const data = t.data as Float32Array;
  const enc = encodeTensor(codec, dtype, tensorBytes(data));
  if (!enc.params) return t;
  const out = decodeTensor(enc.params, dtype, data.length, enc.bytes, 'probe');
  return new ort.Tensor(dtype, typedFromBytes(dtype, out).data as Float32Array, t.dims);
}

/** Worst relative L2 error over the float outputs, and top-1 agreement on the first one's last axis. */
export function outputError(ref: Feeds, got: Feeds, names: readonly string[]): { error: number; top1: number | null } {
  let worst = 0;
  let top1: number | null = null;
  for (const name of names) {
    const y = ref[name];
    const z = got[name];
    if (!y || !z || (y.type !== 'float32' && y.type !== 'float64')) continue;
    const a = y.data as Float32Array;
    const b = z.data as Float32Array;
    let e = 0;
    let s = 0;
    for (let i = 0; i < a.length; i++) {
      e += (b[i] - a[i]) ** 2;
      s += a[i] ** 2;
    }
    const rel = s > 0 ? Math.sqrt(e / s) : Math.sqrt(e) > 0 ? Infinity : 0;
    worst = Math.max(worst, Number.isNaN(rel) ? Infinity : rel);
    if (top1 === null) {
      const w = y.dims.length ? y.dims[y.dims.length - 1] : 1;
      const rows = w > 0 ? a.length / w : 0;
      let agree = 0;
      for (let r = 0; r < rows; r++) {
        let ia = 0;
        let ib = 0;
        for (let k = 1; k < w; k++) {
          if (a[r * w + k] > a[r * w + ia]) ia = k;
          if (b[r * w + k] > b[r * w + ib]) ib = k;
        }
        if (ia === ib) agree++;
      }
      top1 = rows > 0 ? agree / rows : null;
    }
  }
  return { error: worst, top1 };
}

/** The boundaries at which output error is measured: the input and `k` spread over 1..n-1. */
export function errorBoundaries(n: number, k: number): number[] {
  const out = new Set<number>([0]);
  const inner = n - 1;
  if (inner > 0 && k > 0) {
    if (inner <= k) for (let c = 1; c < n; c++) out.add(c);
    else for (let j = 1; j <= k; j++) out.add(Math.round((j * n) / (k + 1)));
  }
  return [...out].sort((x, y) => x - y);
}

export async function profileCodecs(
  a: Analysis,
  values: Feeds,
  opts: CodecProfileOptions = {},
): Promise<Record<string, ProfileCodec>> {
  const n = a.blocks.length;
  const threads = opts.threads ?? 0;
  // Ratios: coded bytes per tensor, once per distinct tensor, estimated on samples of big ones.
  const coded = new Map<string, number>();
  const codedBytes = (codec: CodecName, name: string): number => {
    const key = `${codec}\u0000${name}`;
    let b = coded.get(key);
    if (b === undefined) {
      const t = values[name];
      b = codedSize(codec, t.type as Dtype, tensorBytes(t.data as Float32Array));
      coded.set(key, b);
    }
    return b;
  };
  const ratio = (codec: CodecName, c: number): number => {
    let raw = 0;
    let out = 0;
    for (const name of tensorsAt(a, c)) {
      const t = values[name];
      if (!t) continue;
      raw += (t.data as Float32Array).byteLength;
      out += codedBytes(codec, name);
    }
    return raw > 0 ? round(out / raw) : 1;
  };

  // Timing: the largest distinct float32 tensors that cross a cut.
  const seen = new Set<string>();
  const big: ort.Tensor[] = [];
  for (let c = 0; c < n; c++)
    for (const name of tensorsAt(a, c)) {
      if (seen.has(name)) continue;
      seen.add(name);
      const t = values[name];
      if (t && t.type === 'float32') big.push(t);
    }
  big.sort((x, y) => (y.data as Float32Array).byteLength - (x.data as Float32Array).byteLength);
  const timed = big.slice(0, CODEC_PROFILE_DEFAULTS.timingTensors);

  // Output error at the chosen boundaries, one tail session each.
  const outputs = a.model.outputs.map((o) => o.name);
  const lossy = CODED.filter((c) => !isLossless(c));
  const error: Record<string, (number | null)[]> = {};
  const top1: Record<string, (number | null)[]> = {};
  for (const c of lossy) {
    error[c] = new Array<number | null>(n + 1).fill(null);
    top1[c] = new Array<number | null>(n + 1).fill(null);
  }
  const fronts = a.cuts.map((cut) => cut.tensors);
  const nodes = a.model.nodes.length;
  for (const c of errorBoundaries(n, opts.errorCuts ?? CODEC_PROFILE_DEFAULTS.errorCuts)) {
    if (c >= n) continue;
    const names = tensorsAt(a, c);
    const floats = names.filter((t) => values[t]?.type === 'float32');
    if (floats.length === 0) {
      for (const k of lossy) {
        error[k][c] = 0;
        top1[k][c] = 1;
      }
      continue;
    }
    const start = a.blocks[c].start;
    const seg = extractSegment(a.model, start, nodes, { fronts, types: a.types });
    const session = await createSession(seg.bytes, { intraOpThreads: threads, source: a.model.source });
    try {
      // A lossless stage on top gives the same values (int8 and int8-brotli): one run serves both.
      const results = new Map<string, { error: number; top1: number | null }>();
      for (const k of lossy) {
        const same = valuesOf(k);
        let r = results.get(same);
        if (!r) {
          const feeds: Feeds = {};
          for (const t of seg.inputs) feeds[t] = floats.includes(t) ? roundTrip(k, values[t]) : values[t];
          r = outputError(values, await runSession(session, feeds, a.model.source), outputs);
          results.set(same, r);
        }
        error[k][c] = Number.isFinite(r.error) ? round(r.error) : null;
        top1[k][c] = r.top1;
      }
    } finally {
      await session.release();
    }
  }

  const out: Record<string, ProfileCodec> = {};
  for (const codec of CODED) {
    let ms = 0;
    let dms = 0;
    let bytes = 0;
    for (let r = 0; r < CODEC_PROFILE_DEFAULTS.timingRepeats; r++) {
      for (const t of timed) {
        const raw = tensorBytes(t.data as Float32Array);
        const t0 = performance.now();
        const enc = encodeTensor(codec, 'float32', raw);
        const t1 = performance.now();
        if (enc.params) decodeTensor(enc.params, 'float32', raw.length / DTYPE_SIZE.float32, enc.bytes, 'probe');
        dms += performance.now() - t1;
        ms += t1 - t0;
        bytes += raw.length;
      }
    }
    out[codec] = {
      encodeMsPerByte: bytes > 0 ? Number((ms / bytes).toPrecision(4)) : 0,
      decodeMsPerByte: bytes > 0 ? Number((dms / bytes).toPrecision(4)) : 0,
      ratio: Array.from({ length: n + 1 }, (_, c) => ratio(codec, c)),
      ...(isLossless(codec) ? {} : { error: error[codec], top1: top1[codec] }),
    };
  }
  return out;
}

function round(x: number): number {
  return Number(x.toPrecision(4));
}
