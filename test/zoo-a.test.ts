import { describe, expect, it } from 'vitest';
import ort from 'onnxruntime-node';
import type { ZooEntry } from '../src/graph/zoo/types.js';
import { MODELS as VGG } from '../src/graph/zoo/vgg.js';
import { MODELS as RESNET } from '../src/graph/zoo/resnet.js';
import { MODELS as MOBILENET } from '../src/graph/zoo/mobilenet.js';
import { MODELS as DENSENET } from '../src/graph/zoo/densenet.js';
import {
  SMALL_CLASSES,
  SMALL_INPUT,
  avgPool2d,
  batchNorm,
  conv2d,
  separableConv2d,
  startModel,
  windowAxis,
  zeroPadding2d,
} from '../src/graph/zoo/layers.js';

const ALL: ZooEntry[] = [...VGG, ...RESNET, ...MOBILENET, ...DENSENET];

/** Keras's `len(model.layers)` with the top (MobileNet: 91 less its Dropout, which the zoo leaves out). */
const KERAS_LAYERS: Record<string, number> = {
  vgg16: 23,
  vgg19: 26,
  resnet50: 177,
  resnet101: 347,
  resnet152: 517,
  resnet50v2: 192,
  resnet101v2: 379,
  resnet152v2: 566,
  mobilenet: 90,
  mobilenetv2: 156,
  densenet121: 429,
  densenet169: 597,
  densenet201: 709,
};

function image(size: number): ort.Tensor {
  const x = new Float32Array(3 * size * size).map((_, i) => Math.sin(i * 0.37));
  return new ort.Tensor('float32', x, [1, 3, size, size]);
}

async function run(bytes: Uint8Array, size: number): Promise<ort.Tensor> {
  const s = await ort.InferenceSession.create(bytes);
  try {
    return (await s.run({ input: image(size) })).probs;
  } finally {
    await s.release();
  }
}

function expectProbs(probs: ort.Tensor, classes: number): void {
  expect(probs.dims).toEqual([1, classes]);
  const d = probs.data as Float32Array;
  expect(d.every(Number.isFinite)).toBe(true);
  expect(d.some((v) => v > 0)).toBe(true);
  expect(d.reduce((a, v) => a + v, 0)).toBeCloseTo(1, 4);
}

describe('zoo A: full-size architectures', () => {
  it('has the thirteen families A models, each named once', () => {
    expect(ALL.map((m) => m.name).sort()).toEqual(Object.keys(KERAS_LAYERS).sort());
  });

  for (const m of ALL) {
    it(`${m.name}: parameters and layers as Keras counts them`, () => {
      const b = m.build({ weights: false });
      expect(b.paramCount).toBe(m.kerasParams);
      expect(b.kerasLayers.length).toBe(KERAS_LAYERS[m.name]);
      // Every layer's inbound tensors are outputs of earlier layers: the record is a well-formed DAG.
      const seen = new Set<string>();
      for (const l of b.kerasLayers) {
        for (const i of l.inputs) expect(seen.has(i), `${l.name} <- ${i}`).toBe(true);
        seen.add(l.output);
      }
      expect(b.kerasLayers.at(-1)?.output).toBe('probs');
    });
  }

  it('mobilenetv2 and resnet50 run in ORT with weights', async () => {
    for (const name of ['mobilenetv2', 'resnet50']) {
      const m = ALL.find((e) => e.name === name)!;
      expectProbs(await run(m.build().toBytes(), m.inputSize), 1000);
    }
  });
});

describe('zoo A: small variants', () => {
  for (const m of ALL) {
    it(`${m.name}: same layer structure, runs in ORT`, async () => {
      const small = m.build({ small: true });
      const full = m.build({ weights: false });
      expect(small.kerasLayers.map((l) => l.kind)).toEqual(full.kerasLayers.map((l) => l.kind));
      expectProbs(await run(small.toBytes(), SMALL_INPUT), SMALL_CLASSES);
    });
  }
});

describe('zoo A: Keras layer helpers', () => {
  it('pads SAME like TensorFlow, the odd pixel after', () => {
    expect(windowAxis(224, 3, 2, 1, 'same')).toEqual({ out: 112, pads: [0, 1] });
    expect(windowAxis(225, 3, 2, 1, 'same')).toEqual({ out: 113, pads: [1, 1] });
    expect(windowAxis(224, 7, 2, 1, 'same')).toEqual({ out: 112, pads: [2, 3] });
    expect(windowAxis(56, 1, 2, 1, 'same')).toEqual({ out: 28, pads: [0, 0] });
    expect(windowAxis(230, 7, 2, 1, 'valid')).toEqual({ out: 112, pads: [0, 0] });
  });

  it('counts parameters as Keras does', () => {
    const { b, x } = startModel('t', 8, { weights: false });
    const y = conv2d(b, x, { filters: 4, kernel: 3, useBias: false });
    expect(b.paramCount).toBe(4 * 3 * 9);
    const before = b.paramCount;
    batchNorm(b, y, { scale: false }); // ONNX still gets a scale of ones, uncounted
    expect(b.paramCount - before).toBe(3 * 4);
    const mid = b.paramCount;
    separableConv2d(b, y, { filters: 6, kernel: 3, padding: 'same' });
    expect(b.paramCount - mid).toBe(9 * 4 + 4 * 6 + 6);
  });

  it('average pooling excludes the padding, as Keras does', async () => {
    const { b, x } = startModel('t', 2);
    const p = zeroPadding2d(
      b,
      x,
      [
        [0, 0],
        [0, 0],
      ],
      'p',
    );
    const y = avgPool2d(b, p, { pool: 2, strides: 1, padding: 'same', name: 'probs' });
    b.output(y.name, [...y.dims]);
    const s = await ort.InferenceSession.create(b.toBytes());
    const ones = new ort.Tensor('float32', new Float32Array(12).fill(1), [1, 3, 2, 2]);
    const out = (await s.run({ input: ones })).probs;
    await s.release();
    expect(out.dims).toEqual([1, 3, 2, 2]);
    expect(Array.from(out.data as Float32Array)).toEqual(new Array(12).fill(1));
  });
});
