/**
 * Split-and-chain checks shared by the graph tests: extract the segments of a split, check each is a
 * well-formed standalone model, run them one after another in ORT, and compare with the whole model.
 */
import { expect } from 'vitest';
import { nodeReads, type OnnxModel } from '../../src/graph/model.js';
import { extractSegment, type Segment } from '../../src/graph/segment.js';
import { resolveInputs } from '../../src/graph/shapes.js';
import { analyze, type Analysis } from '../../src/runtime/local/analysis.js';
import { makeFeeds } from '../../src/runtime/local/ort-local.js';
import type ort from 'onnxruntime-node';
import { decode, runBytes, type Feeds } from './tiny-onnx.js';

/** Structural checks on one extracted segment: opsets kept, I/O as the frontiers say, only used initializers. */
export function checkSegment(model: OnnxModel, seg: Segment): void {
  const p = decode(seg.bytes);
  const g = p.graph;
  expect(p.opsetImport.map((o) => `${o.domain}:${Number(o.version)}`)).toEqual(
    (model.proto.opsetImport ?? []).map((o) => `${o.domain ?? ''}:${Number(o.version)}`),
  );
  const inits = new Set(g.initializer.map((t) => t.name));
  const declaredInputs = g.input.map((i) => i.name).filter((n) => !inits.has(n));
  expect(declaredInputs).toEqual([...seg.inputs]);
  expect(g.output.map((o) => o.name)).toEqual([...seg.outputs]);
  const read = new Set<string>();
  for (const n of g.node) for (const r of nodeReads(n)) read.add(r);
  for (const t of inits)
    expect(read.has(t), `segment [${seg.start}, ${seg.end}) carries unused initializer '${t}'`).toBe(true);
}

/** Runs the segments of `bounds` one after another; returns every segment and the last one's outputs. */
export async function chain(
  model: OnnxModel,
  a: Analysis,
  bounds: readonly number[],
  feeds: Feeds,
): Promise<{ segments: Segment[]; out: Feeds }> {
  const fronts = a.cuts.map((c) => c.tensors);
  let carried: Feeds = { ...feeds };
  const segments: Segment[] = [];
  for (let i = 0; i + 1 < bounds.length; i++) {
    const seg = extractSegment(model, bounds[i], bounds[i + 1], { fronts, types: a.types });
    checkSegment(model, seg);
    const segFeeds: Feeds = {};
    for (const t of seg.inputs) {
      expect(
        carried[t],
        `segment [${seg.start}, ${seg.end}) needs '${t}', which no earlier segment passed on`,
      ).toBeDefined();
      segFeeds[t] = carried[t];
    }
    carried = await runBytes(seg.bytes, segFeeds);
    segments.push(seg);
  }
  return { segments, out: carried };
}

/** Every subset of the inner cuts when there are few, else each cut alone plus every cut at once. */
export function splitsOf(n: number, maxExhaustive = 7): number[][] {
  const inner = Array.from({ length: Math.max(0, n - 1) }, (_, i) => i + 1);
  if (inner.length <= maxExhaustive) {
    const out: number[][] = [];
    for (let mask = 1; mask < 1 << inner.length; mask++) out.push([0, ...inner.filter((_, i) => mask & (1 << i)), n]);
    return out;
  }
  return [...inner.map((c) => [0, c, n]), [0, ...inner, n]];
}

/** Analyses the model, runs it whole, then checks every split of `splitsOf` reproduces every output. */
export async function expectSplitsMatch(
  model: OnnxModel,
  shapes: ReadonlyMap<string, number[]> = new Map(),
): Promise<{ analysis: Analysis; feeds: Feeds; whole: Feeds; splits: number }> {
  const specs = resolveInputs(model, shapes);
  const analysis = await analyze(model, specs);
  const feeds = makeFeeds(specs);
  const whole = await runBytes(model.bytes, feeds);
  const splits = splitsOf(model.nodes.length);
  for (const bounds of splits) {
    const { out } = await chain(model, analysis, bounds, feeds);
    for (const o of model.outputs)
      expectClose(out[o.name], whole[o.name], `split ${bounds.join(',')}: output '${o.name}'`);
  }
  return { analysis, feeds, whole, splits: splits.length };
}

/** numpy.allclose on two tensors; integer tensors must match exactly. */
export function expectClose(
  got: ort.Tensor | undefined,
  want: ort.Tensor | undefined,
  what: string,
  atol = 1e-5,
  rtol = 1e-5,
): void {
  expect(got, `${what}: missing`).toBeDefined();
  expect(want, `${what}: no reference`).toBeDefined();
  if (!got || !want) return;
  expect(got.type, `${what}: dtype`).toBe(want.type);
  expect([...got.dims], `${what}: dims`).toEqual([...want.dims]);
  const a = got.data as ArrayLike<number | bigint>;
  const b = want.data as ArrayLike<number | bigint>;
  if (typeof b[0] === 'bigint' || want.type === 'bool') {
    expect(Array.from(a), `${what}: values`).toEqual(Array.from(b));
    return;
  }
  let worst = 0;
  for (let i = 0; i < b.length; i++) {
    const e = Math.abs(Number(a[i]) - Number(b[i])) - rtol * Math.abs(Number(b[i]));
    if (e > worst) worst = e;
  }
  expect(worst, `${what}: error beyond rtol`).toBeLessThanOrEqual(atol);
}
