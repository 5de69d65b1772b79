/**
 * Xception as in keras/applications/xception.py: separable convolutions (depthwise + pointwise, no bias),
 * and 1x1 stride-2 Conv2D + BatchNormalization shortcuts around the entry and exit flow blocks.
 */
import { GraphBuilder } from './builder.js';
import { KerasNet, type T4 } from './layers-b.js';
import type { ZooEntry, ZooOptions } from './types.js';

/** The small variant divides channels by this (never below 4). */
const SMALL_DIVISOR = 8;
/** Keras's minimum is 71; 75 leaves 3x3 after the last pool, as 299 leaves 10x10. */
const SMALL_INPUT = 75;
const SMALL_CLASSES = 10;

function buildXception(opts: ZooOptions = {}): GraphBuilder {
  const small = opts.small === true;
  const b = new GraphBuilder(small ? 'xception-small' : 'xception', opts.seed ?? 1, 13, { weights: opts.weights });
  const k = new KerasNet(b);
  const ch = (c: number): number => (small ? Math.max(4, Math.round(c / SMALL_DIVISOR)) : c);
  const classes = small ? SMALL_CLASSES : 1000;

  const sep = (x: T4, filters: number, name: string): T4 =>
    k.separableConv2d(x, ch(filters), 3, { padding: 'same', useBias: false, name });
  /** The auto-named 1x1 stride-2 shortcut: Conv2D then BatchNormalization. */
  const shortcut = (x: T4, filters: number): T4 =>
    k.batchNorm(k.conv2d(x, ch(filters), 1, { strides: 2, padding: 'same', useBias: false }));

  let x = k.input(small ? SMALL_INPUT : 299);
  x = k.conv2d(x, ch(32), 3, { strides: 2, useBias: false, name: 'block1_conv1' });
  x = k.relu(k.batchNorm(x, { name: 'block1_conv1_bn' }), 'block1_conv1_act');
  x = k.conv2d(x, ch(64), 3, { useBias: false, name: 'block1_conv2' });
  x = k.relu(k.batchNorm(x, { name: 'block1_conv2_bn' }), 'block1_conv2_act');

  // Entry flow blocks 2-4; block 2 has no relu before its first separable conv, and Keras names the
  // relu inside it block2_sepconv2_act.
  for (const [blk, filters] of [
    [2, 128],
    [3, 256],
    [4, 728],
  ] as const) {
    const residual = shortcut(x, filters);
    const p = `block${blk}`;
    if (blk !== 2) x = k.relu(x, `${p}_sepconv1_act`);
    x = k.batchNorm(sep(x, filters, `${p}_sepconv1`), { name: `${p}_sepconv1_bn` });
    x = k.relu(x, `${p}_sepconv2_act`);
    x = k.batchNorm(sep(x, filters, `${p}_sepconv2`), { name: `${p}_sepconv2_bn` });
    x = k.maxPool(x, 3, 2, 'same', `${p}_pool`);
    x = k.add([x, residual]);
  }

  // Middle flow: blocks 5-12, identity shortcuts.
  for (let i = 0; i < 8; i++) {
    const residual = x;
    const p = `block${i + 5}`;
    for (let j = 1; j <= 3; j++) {
      x = k.relu(x, `${p}_sepconv${j}_act`);
      // Zero-gamma on the branch's last BN keeps the eight identity-shortcut sums from compounding.
      x = k.batchNorm(sep(x, 728, `${p}_sepconv${j}`), {
        name: `${p}_sepconv${j}_bn`,
        gammaInit: j === 3 ? 'beta' : undefined,
      });
    }
    x = k.add([x, residual]);
  }

  // Exit flow.
  const residual = shortcut(x, 1024);
  x = k.relu(x, 'block13_sepconv1_act');
  x = k.batchNorm(sep(x, 728, 'block13_sepconv1'), { name: 'block13_sepconv1_bn' });
  x = k.relu(x, 'block13_sepconv2_act');
  x = k.batchNorm(sep(x, 1024, 'block13_sepconv2'), { name: 'block13_sepconv2_bn' });
  x = k.maxPool(x, 3, 2, 'same', 'block13_pool');
  x = k.add([x, residual]);

  x = k.relu(k.batchNorm(sep(x, 1536, 'block14_sepconv1'), { name: 'block14_sepconv1_bn' }), 'block14_sepconv1_act');
  x = k.relu(k.batchNorm(sep(x, 2048, 'block14_sepconv2'), { name: 'block14_sepconv2_bn' }), 'block14_sepconv2_act');

  const probs = k.denseSoftmax(k.globalAvgPool(x, 'avg_pool'), classes, 'predictions', 'probs');
  b.output(probs.name, [1, classes]);
  return b;
}

export const MODELS: ZooEntry[] = [
  { name: 'xception', kerasName: 'Xception', kerasParams: 22_910_480, inputSize: 299, build: buildXception },
];
