import { describe, expect, it } from 'vitest';
import ort from 'onnxruntime-node';
import { MODELS as INCEPTION } from '../src/graph/zoo/inception.js';
import { MODELS as XCEPTION } from '../src/graph/zoo/xception.js';
import { MODELS as NASNET } from '../src/graph/zoo/nasnet.js';
import { samePads } from '../src/graph/zoo/layers-b.js';
import type { ZooEntry } from '../src/graph/zoo/types.js';

const MODELS: ZooEntry[] = [...INCEPTION, ...XCEPTION, ...NASNET];

/** `len(model.layers)` of the Keras Applications model with its top, InputLayer included. */
const KERAS_LAYERS: Record<string, number> = {
  inceptionv3: 313,
  inceptionresnetv2: 782,
  xception: 134,
  nasnetmobile: 771,
  nasnetlarge: 1041,
};

function image(size: number): ort.Tensor {
  const data = new Float32Array(3 * size * size);
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 0.37);
  return new ort.Tensor('float32', data, [1, 3, size, size]);
}

async function run(bytes: Uint8Array, size: number): Promise<ort.Tensor> {
  const session = await ort.InferenceSession.create(bytes);
  try {
    return (await session.run({ input: image(size) })).probs;
  } finally {
    await session.release();
  }
}

function expectProbabilities(probs: ort.Tensor, classes: number): void {
  expect(probs.dims).toEqual([1, classes]);
  const p = probs.data as Float32Array;
  expect(p.every(Number.isFinite)).toBe(true);
  expect(p.reduce((a, v) => a + v, 0)).toBeCloseTo(1, 5);
}

describe('TF same padding', () => {
  it('puts the odd pixel after, and pads nothing when the window already fits', () => {
    expect(samePads(299, 3, 2)).toEqual([1, 1]);
    expect(samePads(4, 3, 2)).toEqual([0, 1]);
    expect(samePads(42, 5, 2)).toEqual([1, 2]);
    expect(samePads(35, 7, 1)).toEqual([3, 3]);
    expect(samePads(8, 1, 2)).toEqual([0, 0]);
  });
});

describe.each(MODELS.map((m) => [m.name, m] as const))('%s', (_name, m) => {
  it('has exactly the Keras parameter count and layer count at full size', () => {
    const b = m.build({ weights: false });
    expect(b.paramCount).toBe(m.kerasParams);
    expect(b.kerasLayers.length).toBe(KERAS_LAYERS[m.name]);
  });

  it('records a Keras layer graph whose inputs are earlier outputs', () => {
    const seen = new Set<string>();
    for (const l of m.build({ weights: false, small: true }).kerasLayers) {
      for (const i of l.inputs) expect(seen.has(i), `${l.name} reads ${i}`).toBe(true);
      seen.add(l.output);
    }
    expect(seen.has('probs')).toBe(true);
  });

  it('runs its small variant in onnxruntime', async () => {
    const b = m.build({ small: true });
    expect(b.paramCount).toBeLessThan(m.kerasParams / 4);
    const size = m.name.startsWith('nasnet') ? 64 : 75; // the small variants' input sizes
    expectProbabilities(await run(b.toBytes(), size), 10);
  });
});

describe('full-size inceptionv3 with weights', () => {
  it('runs once in onnxruntime', async () => {
    const m = INCEPTION.find((e) => e.name === 'inceptionv3')!;
    expectProbabilities(await run(m.build().toBytes(), m.inputSize), 1000);
  }, 60_000);
});
