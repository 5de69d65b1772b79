/**
 * Regression: ORT's Pad_Fusion folds a zero Pad into a following MaxPool (which pads with -inf), so the
 * whole ResNet50V2 disagreed with the same model split between its stem Pad and MaxPool. Every session —
 * in process and in the executor's workers — must disable it, so hosts compute what `verify` checked.
 */
import { describe, expect, it } from 'vitest';
import { OnnxModel } from '../src/graph/model.js';
import { resolveInputs } from '../src/graph/shapes.js';
import { extractSegment } from '../src/graph/segment.js';
import { zooEntry } from '../src/graph/zoo/index.js';
import { Executor, type TensorLike } from '../src/runtime/executor/executor.js';
import { analyze } from '../src/runtime/local/analysis.js';
import { makeFeeds } from '../src/runtime/local/ort-local.js';
import { allclose } from './helpers/deployment.js';

describe('regression: Pad_Fusion changes MaxPool results', () => {
  it('the executor runs resnet50v2 whole exactly as split between pool1_pad and pool1_pool', async () => {
    const model = OnnxModel.fromBytes(zooEntry('resnet50v2')!.build({ small: true }).toBytes(), 'resnet50v2-small');
    const a = await analyze(model, resolveInputs(model));
    const cut = model.nodes.findIndex((n) => n.name === 'pool1_pool');
    expect(cut).toBeGreaterThan(0);
    expect(model.nodes[cut - 1].opType).toBe('Pad');
    const feeds = makeFeeds(a.inputs);
    const input: TensorLike = {
      dtype: 'float32',
      dims: a.inputs[0].dims,
      data: feeds[a.inputs[0].name].data as Float32Array,
    };
    const ex = await Executor.create({ intraOpThreads: 1 });
    try {
      await ex.load('whole', model.bytes, { warmup: 0 });
      const whole = (await ex.run('whole', { [a.inputs[0].name]: input })).outputs;
      const fronts = a.cuts.map((c) => c.tensors);
      const s0 = extractSegment(model, 0, cut, { fronts, types: a.types });
      const s1 = extractSegment(model, cut, model.nodes.length, { fronts, types: a.types });
      await ex.load('s0', s0.bytes, { warmup: 0 });
      await ex.load('s1', s1.bytes, { warmup: 0 });
      const mid = (await ex.run('s0', { [a.inputs[0].name]: input })).outputs;
      const out = (await ex.run('s1', mid)).outputs;
      for (const name of Object.keys(whole)) {
        const c = allclose(out[name].data as Float32Array, whole[name].data as Float32Array, 1e-5, 1e-4);
        expect(c.ok, `${name}: max abs error ${c.maxAbs}`).toBe(true);
      }
    } finally {
      await ex.close();
    }
  });
});
