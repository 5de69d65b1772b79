/**
 * InceptionV3 and InceptionResNetV2 as in keras/applications/inception_v3.py and inception_resnet_v2.py:
 * the same layers in the same order under the same Keras layer names, so the parameter counts are Keras's
 * to the unit. conv2d_bn there is Conv2D (no bias) + BatchNormalization(scale=False) + relu; the missing
 * BN scale is an uncounted tensor of ones (see KerasNet.batchNorm).
 */
import { GraphBuilder } from './builder.js';
import { KerasNet, type Padding, type Size2, type T4 } from './layers-b.js';
import type { ZooEntry, ZooOptions } from './types.js';

/** The small variants divide channels by this (never below 4). */
const SMALL_DIVISOR = 8;
/** Keras's minimum input for both models: the last 'valid' reductions then leave 1x1. */
const SMALL_INPUT = 75;
const SMALL_CLASSES = 10;

interface Setup {
  readonly k: KerasNet;
  /** Channel count at the requested size. */
  readonly ch: (c: number) => number;
  readonly x: T4;
  readonly classes: number;
}

function setup(name: string, fullSize: number, opts: ZooOptions): Setup {
  const small = opts.small === true;
  const b = new GraphBuilder(small ? `${name}-small` : name, opts.seed ?? 1, 13, { weights: opts.weights });
  const k = new KerasNet(b);
  const ch = small ? (c: number) => Math.max(4, Math.round(c / SMALL_DIVISOR)) : (c: number) => c;
  return { k, ch, x: k.input(small ? SMALL_INPUT : fullSize), classes: small ? SMALL_CLASSES : 1000 };
}

/** GlobalAveragePooling2D 'avg_pool' then Dense 'predictions' with softmax, output `probs`. */
function head(k: KerasNet, x: T4, classes: number): GraphBuilder {
  const probs = k.denseSoftmax(k.globalAvgPool(x, 'avg_pool'), classes, 'predictions', 'probs');
  k.b.output(probs.name, [1, classes]);
  return k.b;
}

// ---- InceptionV3 ----

function buildInceptionV3(opts: ZooOptions = {}): GraphBuilder {
  const { k, ch, x: input, classes } = setup('inceptionv3', 299, opts);
  // inception_v3.conv2d_bn, every layer auto-named.
  const cbn = (x: T4, filters: number, rows: number, cols: number, padding: Padding = 'same', strides: Size2 = 1): T4 =>
    k.relu(k.batchNorm(k.conv2d(x, ch(filters), [rows, cols], { strides, padding, useBias: false }), { scale: false }));
  const avg3 = (x: T4): T4 => k.avgPool(x, 3, 1, 'same');

  let x = cbn(input, 32, 3, 3, 'valid', 2);
  x = cbn(x, 32, 3, 3, 'valid');
  x = cbn(x, 64, 3, 3);
  x = k.maxPool(x, 3, 2);
  x = cbn(x, 80, 1, 1, 'valid');
  x = cbn(x, 192, 3, 3, 'valid');
  x = k.maxPool(x, 3, 2);

  // mixed 0, 1, 2: 35 x 35
  for (const [i, poolFilters] of [32, 64, 64].entries()) {
    const b1 = cbn(x, 64, 1, 1);
    const b5 = cbn(cbn(x, 48, 1, 1), 64, 5, 5);
    const b3 = cbn(cbn(cbn(x, 64, 1, 1), 96, 3, 3), 96, 3, 3);
    const bp = cbn(avg3(x), poolFilters, 1, 1);
    x = k.concat([b1, b5, b3, bp], `mixed${i}`);
  }

  // mixed 3: 17 x 17
  {
    const b3 = cbn(x, 384, 3, 3, 'valid', 2);
    const bd = cbn(cbn(cbn(x, 64, 1, 1), 96, 3, 3), 96, 3, 3, 'valid', 2);
    const bp = k.maxPool(x, 3, 2);
    x = k.concat([b3, bd, bp], 'mixed3');
  }

  // mixed 4, 5, 6, 7: 17 x 17, the 7x7 factorised into 1x7 and 7x1
  for (const [i, c7] of [128, 160, 160, 192].entries()) {
    const b1 = cbn(x, 192, 1, 1);
    const b7 = cbn(cbn(cbn(x, c7, 1, 1), c7, 1, 7), 192, 7, 1);
    let bd = cbn(x, c7, 1, 1);
    bd = cbn(bd, c7, 7, 1);
    bd = cbn(bd, c7, 1, 7);
    bd = cbn(bd, c7, 7, 1);
    bd = cbn(bd, 192, 1, 7);
    const bp = cbn(avg3(x), 192, 1, 1);
    x = k.concat([b1, b7, bd, bp], `mixed${4 + i}`);
  }

  // mixed 8: 8 x 8
  {
    const b3 = cbn(cbn(x, 192, 1, 1), 320, 3, 3, 'valid', 2);
    let b7 = cbn(x, 192, 1, 1);
    b7 = cbn(b7, 192, 1, 7);
    b7 = cbn(b7, 192, 7, 1);
    b7 = cbn(b7, 192, 3, 3, 'valid', 2);
    const bp = k.maxPool(x, 3, 2);
    x = k.concat([b3, b7, bp], 'mixed8');
  }

  // mixed 9, 10: 8 x 8
  for (let i = 0; i < 2; i++) {
    const b1 = cbn(x, 320, 1, 1);
    const b3 = cbn(x, 384, 1, 1);
    const b3cat = k.concat([cbn(b3, 384, 1, 3), cbn(b3, 384, 3, 1)], `mixed9_${i}`);
    const bd = cbn(cbn(x, 448, 1, 1), 384, 3, 3);
    const bdcat = k.concat([cbn(bd, 384, 1, 3), cbn(bd, 384, 3, 1)]);
    const bp = cbn(avg3(x), 192, 1, 1);
    x = k.concat([b1, b3cat, bdcat, bp], `mixed${9 + i}`);
  }

  return head(k, x, classes);
}

// ---- InceptionResNetV2 ----

function buildInceptionResNetV2(opts: ZooOptions = {}): GraphBuilder {
  const { k, ch, x: input, classes } = setup('inceptionresnetv2', 299, opts);
  /** inception_resnet_v2.conv2d_bn: with a name, layers are `name`, `name_bn`, `name_ac`. */
  const cbn = (
    x: T4,
    filters: number,
    kernel: Size2,
    o: { strides?: Size2; padding?: Padding; name?: string } = {},
  ): T4 => {
    const conv = k.conv2d(x, ch(filters), kernel, {
      strides: o.strides,
      padding: o.padding ?? 'same',
      useBias: false,
      name: o.name,
    });
    const bn = k.batchNorm(conv, { scale: false, name: o.name && `${o.name}_bn` });
    return k.relu(bn, o.name && `${o.name}_ac`);
  };
  const valid2 = { strides: 2, padding: 'valid' } as const;

  /** inception_resnet_block: branches, concat, 1x1 "up" conv with bias back to x's width, x + scale * up. */
  const block = (x: T4, scale: number, type: 'block35' | 'block17' | 'block8', idx: number, activation = true): T4 => {
    let branches: T4[];
    if (type === 'block35') {
      branches = [cbn(x, 32, 1), cbn(cbn(x, 32, 1), 32, 3), cbn(cbn(cbn(x, 32, 1), 48, 3), 64, 3)];
    } else if (type === 'block17') {
      branches = [cbn(x, 192, 1), cbn(cbn(cbn(x, 128, 1), 160, [1, 7]), 192, [7, 1])];
    } else {
      branches = [cbn(x, 192, 1), cbn(cbn(cbn(x, 192, 1), 224, [1, 3]), 256, [3, 1])];
    }
    const name = `${type}_${idx}`;
    const mixed = k.concat(branches, `${name}_mixed`);
    const up = k.conv2d(mixed, x.c, 1, { padding: 'same', useBias: true, name: `${name}_conv` });
    // Keras 2 names this Lambda after the block; Keras 3 made it an unnamed CustomScaleLayer.
    const y = k.scaledAdd(x, up, scale, name);
    return activation ? k.relu(y, `${name}_ac`) : y;
  };

  let x = cbn(input, 32, 3, valid2);
  x = cbn(x, 32, 3, { padding: 'valid' });
  x = cbn(x, 64, 3);
  x = k.maxPool(x, 3, 2);
  x = cbn(x, 80, 1, { padding: 'valid' });
  x = cbn(x, 192, 3, { padding: 'valid' });
  x = k.maxPool(x, 3, 2);

  // Mixed 5b (Inception-A): 35 x 35 x 320
  x = k.concat(
    [
      cbn(x, 96, 1),
      cbn(cbn(x, 48, 1), 64, 5),
      cbn(cbn(cbn(x, 64, 1), 96, 3), 96, 3),
      cbn(k.avgPool(x, 3, 1, 'same'), 64, 1),
    ],
    'mixed_5b',
  );
  for (let i = 1; i <= 10; i++) x = block(x, 0.17, 'block35', i);

  // Mixed 6a (Reduction-A): 17 x 17 x 1088
  x = k.concat(
    [cbn(x, 384, 3, valid2), cbn(cbn(cbn(x, 256, 1), 256, 3), 384, 3, valid2), k.maxPool(x, 3, 2)],
    'mixed_6a',
  );
  for (let i = 1; i <= 20; i++) x = block(x, 0.1, 'block17', i);

  // Mixed 7a (Reduction-B): 8 x 8 x 2080
  x = k.concat(
    [
      cbn(cbn(x, 256, 1), 384, 3, valid2),
      cbn(cbn(x, 256, 1), 288, 3, valid2),
      cbn(cbn(cbn(x, 256, 1), 288, 3), 320, 3, valid2),
      k.maxPool(x, 3, 2),
    ],
    'mixed_7a',
  );
  for (let i = 1; i <= 9; i++) x = block(x, 0.2, 'block8', i);
  x = block(x, 1.0, 'block8', 10, false);

  x = cbn(x, 1536, 1, { name: 'conv_7b' });
  return head(k, x, classes);
}

export const MODELS: ZooEntry[] = [
  { name: 'inceptionv3', kerasName: 'InceptionV3', kerasParams: 23_851_784, inputSize: 299, build: buildInceptionV3 },
  {
    name: 'inceptionresnetv2',
    kerasName: 'InceptionResNetV2',
    kerasParams: 55_873_736,
    inputSize: 299,
    build: buildInceptionResNetV2,
  },
];
