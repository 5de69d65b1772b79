/**
 * Split verification: the model cut at every block boundary and run segment by segment must reproduce the
 * whole model. Every segment's outputs are checked against the same tensors in an unsplit run, the final
 * outputs against the plain model, and random multi-cut splits are chained end to end as well.
 */
import type ort from 'onnxruntime-node';
import { allCuts, selectCuts, type Granularity } from '../../graph/cuts.js';
import type { OnnxModel } from '../../graph/model.js';
import type { InputSpec } from '../../graph/shapes.js';
import { extractSegment } from '../../graph/segment.js';
import { createSession, makeFeeds, runAllTensors, runSession, typesOf, type Feeds } from './ort-local.js';

export interface VerifyOptions {
  readonly granularity?: Granularity;
  /** Random multi-cut splits chained end to end, besides the split at every boundary. Default 8. */
  readonly combos?: number;
  /** Also split at each boundary alone (two segments per cut). Default false. */
  readonly exhaustive?: boolean;
  readonly atol?: number;
  readonly rtol?: number;
  readonly seed?: number;
  readonly intraOpThreads?: number;
  readonly onProgress?: (done: number, total: number, what: string) => void;
}

interface Mismatch {
  readonly split: string;
  readonly tensor: string;
  readonly maxAbs: number;
}

interface VerifyResult {
  readonly model: string;
  readonly cuts: number;
  readonly splitsChecked: number;
  readonly segmentsRun: number;
  /** Worst errors on the model's outputs, the figures the tolerances are stated for. */
  readonly worstAbs: number;
  readonly worstRel: number;
  /** Worst absolute error on intermediate frontier tensors, relative to each tensor's largest magnitude. */
  readonly worstIntermediateScaled: number;
  readonly atol: number;
  readonly rtol: number;
  readonly pass: boolean;
  readonly mismatches: Mismatch[];
}

export const VERIFY_DEFAULTS = { atol: 1e-4, rtol: 1e-3, combos: 8, seed: 11 } as const;

export async function verifyModel(
  model: OnnxModel,
  specs: readonly InputSpec[],
  opts: VerifyOptions = {},
): Promise<VerifyResult> {
  const atol = opts.atol ?? VERIFY_DEFAULTS.atol;
  const rtol = opts.rtol ?? VERIFY_DEFAULTS.rtol;
  const sessionOpts = { intraOpThreads: opts.intraOpThreads };
  const feeds = makeFeeds(specs);

  const whole = await createSession(model.bytes, { ...sessionOpts, source: model.source });
  const reference = await runSession(whole, feeds, model.source);
  await whole.release();
  const values = await runAllTensors(model, feeds, sessionOpts);
  const types = typesOf(values);
  const cuts = allCuts(model, types);
  const fronts = cuts.map((c) => c.tensors);
  const boundaries = selectCuts(cuts, opts.granularity);
  const inner = boundaries.slice(1, -1);

  const splits: number[][] = [boundaries];
  let rng = (opts.seed ?? VERIFY_DEFAULTS.seed) >>> 0 || 1;
  const rand = (k: number): number => {
    rng = (Math.imul(rng, 1664525) + 1013904223) >>> 0;
    return rng % k;
  };
  for (let i = 0; i < (opts.combos ?? VERIFY_DEFAULTS.combos) && inner.length > 0; i++) {
    const k = 1 + rand(Math.min(3, inner.length));
    const pick = new Set<number>();
    while (pick.size < k) pick.add(inner[rand(inner.length)]);
    splits.push([0, ...[...pick].sort((a, b) => a - b), model.nodes.length]);
  }
  if (opts.exhaustive) for (const c of inner) splits.push([0, c, model.nodes.length]);

  const mismatches: Mismatch[] = [];
  let worstAbs = 0;
  let worstRel = 0;
  let worstScaled = 0;
  let segmentsRun = 0;
  const total = splits.reduce((a, s) => a + s.length - 1, 0);
  // Model outputs must meet atol/rtol element by element. Intermediate tensors are checked against their
  // own scale instead: a conv output whose values reach 100 legitimately differs by ~1e-4 between a fused
  // whole-model kernel and a split one, even where single elements are near zero.
  const compare = (split: string, name: string, got: ort.Tensor, want: ort.Tensor, isOutput: boolean): void => {
    if (isOutput) {
      const d = diff(got, want, atol, rtol);
      worstAbs = Math.max(worstAbs, d.maxAbs);
      worstRel = Math.max(worstRel, d.maxRel);
      if (!d.ok) mismatches.push({ split, tensor: name, maxAbs: d.maxAbs });
      return;
    }
    const scale = Math.max(1, maxMagnitude(want));
    const d = diff(got, want, atol * scale, rtol);
    worstScaled = Math.max(worstScaled, d.maxAbs / scale);
    if (!d.ok) mismatches.push({ split, tensor: name, maxAbs: d.maxAbs });
  };

  for (const split of splits) {
    const label =
      split.length > 8 ? `every boundary (${split.length - 2} cuts)` : `cuts ${split.slice(1, -1).join(',')}`;
    let carried: Feeds = {};
    for (const t of fronts[0]) carried[t] = values[t];
    for (let i = 0; i + 1 < split.length; i++) {
      const seg = extractSegment(model, split[i], split[i + 1], { fronts, types });
      const session = await createSession(seg.bytes, {
        ...sessionOpts,
        source: `${model.source} segment [${seg.start}, ${seg.end})`,
      });
      const segFeeds: Feeds = {};
      for (const t of seg.inputs) segFeeds[t] = carried[t];
      const out = await runSession(session, segFeeds, `${model.source} segment [${seg.start}, ${seg.end})`);
      await session.release();
      segmentsRun++;
      opts.onProgress?.(segmentsRun, total, label);
      const last = split[i + 1] === model.nodes.length;
      for (const t of seg.outputs) {
        const isOutput = last && reference[t] !== undefined;
        const want = isOutput ? reference[t] : values[t];
        if (want) compare(label, t, out[t], want, isOutput);
      }
      carried = out;
    }
  }
  return {
    model: model.source,
    cuts: inner.length,
    splitsChecked: splits.length,
    segmentsRun,
    worstAbs,
    worstRel,
    worstIntermediateScaled: worstScaled,
    atol,
    rtol,
    pass: mismatches.length === 0,
    mismatches: mismatches.slice(0, 20),
  };
}

function maxMagnitude(t: ort.Tensor): number {
  const a = t.data as ArrayLike<number | bigint>;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const v = Math.abs(Number(a[i]));
    if (v > m) m = v;
  }
  return m;
}

/** numpy.allclose semantics: |got - want| <= atol + rtol * |want| for every element. */
function diff(
  got: ort.Tensor,
  want: ort.Tensor,
  atol: number,
  rtol: number,
): { ok: boolean; maxAbs: number; maxRel: number } {
  if (got.type !== want.type || got.dims.join(',') !== want.dims.join(','))
    return { ok: false, maxAbs: Infinity, maxRel: Infinity };
  const a = got.data as ArrayLike<number | bigint>;
  const b = want.data as ArrayLike<number | bigint>;
  let ok = true;
  let maxAbs = 0;
  let maxRel = 0;
  for (let i = 0; i < a.length; i++) {
    const x = Number(a[i]);
    const y = Number(b[i]);
    if (Number.isNaN(x) !== Number.isNaN(y)) return { ok: false, maxAbs: Infinity, maxRel: Infinity };
    if (Number.isNaN(x)) continue;
    const e = Math.abs(x - y);
    if (e > maxAbs) maxAbs = e;
    if (Math.abs(y) > atol && e / Math.abs(y) > maxRel) maxRel = e / Math.abs(y);
    if (e > atol + rtol * Math.abs(y)) ok = false;
  }
  return { ok, maxAbs, maxRel };
}
