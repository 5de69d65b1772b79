/**
 * ResNet v1 (keras/applications/resnet.py) and v2 (resnet_v2.py), layer for layer.
 *
 * v1: bottleneck `block1` with conv biases and BatchNormalization after every conv, ReLU after the add; the
 * stride sits on the first block of a stack, which also has the conv shortcut.
 * v2: pre-activation `block2` (BN + ReLU before the convs, none after the add); the conv shortcut is only in
 * the first block, the stride on the last block of a stack (its shortcut a 1x1 max pool), and `post_bn` /
 * `post_relu` close the network.
 */
import type { GraphBuilder, WeightInit } from './builder.js';
import type { ZooEntry, ZooOptions } from './types.js';
import {
  add,
  batchNorm,
  conv2d,
  dense,
  finishModel,
  globalAvgPool,
  maxPool2d,
  relu,
  SMALL_CLASSES,
  SMALL_INPUT,
  startModel,
  widths,
  zeroPadding2d,
  type Tensor,
} from './layers.js';

const EPS = 1.001e-5;

interface Ctx {
  readonly b: GraphBuilder;
  readonly ch: (c: number) => number;
}

function bn(c: Ctx, x: Tensor, name: string, gammaInit?: WeightInit): Tensor {
  return batchNorm(c.b, x, { epsilon: EPS, name, gammaInit });
}

/** resnet.py `block1`. */
function block1(c: Ctx, x: Tensor, filters: number, stride: number, convShortcut: boolean, name: string): Tensor {
  const { b } = c;
  const f = c.ch(filters);
  let shortcut = x;
  if (convShortcut) {
    shortcut = conv2d(b, x, { filters: 4 * f, kernel: 1, strides: stride, name: `${name}_0_conv` });
    shortcut = bn(c, shortcut, `${name}_0_bn`);
  }
  let y = conv2d(b, x, { filters: f, kernel: 1, strides: stride, name: `${name}_1_conv` });
  y = relu(b, bn(c, y, `${name}_1_bn`), `${name}_1_relu`);
  y = conv2d(b, y, { filters: f, kernel: 3, padding: 'same', name: `${name}_2_conv` });
  y = relu(b, bn(c, y, `${name}_2_bn`), `${name}_2_relu`);
  y = conv2d(b, y, { filters: 4 * f, kernel: 1, name: `${name}_3_conv` });
  // Small gamma on the branch's last BN: with random weights the trunk would otherwise grow ~1.4x per block.
  y = bn(c, y, `${name}_3_bn`, 'beta');
  return relu(b, add(b, [shortcut, y], `${name}_add`), `${name}_out`);
}

/** resnet.py `stack1`. */
function stack1(c: Ctx, x: Tensor, filters: number, blocks: number, stride1: number, name: string): Tensor {
  x = block1(c, x, filters, stride1, true, `${name}_block1`);
  for (let i = 2; i <= blocks; i++) x = block1(c, x, filters, 1, false, `${name}_block${i}`);
  return x;
}

/** resnet.py `block2` (pre-activation). */
function block2(c: Ctx, x: Tensor, filters: number, stride: number, convShortcut: boolean, name: string): Tensor {
  const { b } = c;
  const f = c.ch(filters);
  const preact = relu(b, bn(c, x, `${name}_preact_bn`), `${name}_preact_relu`);
  let shortcut = x;
  if (convShortcut)
    shortcut = conv2d(b, preact, { filters: 4 * f, kernel: 1, strides: stride, name: `${name}_0_conv` });
  else if (stride > 1) shortcut = maxPool2d(b, x, { pool: 1, strides: stride }); // unnamed in Keras: max_pooling2d[_k]
  let y = conv2d(b, preact, { filters: f, kernel: 1, useBias: false, name: `${name}_1_conv` });
  y = relu(b, bn(c, y, `${name}_1_bn`), `${name}_1_relu`);
  y = zeroPadding2d(
    b,
    y,
    [
      [1, 1],
      [1, 1],
    ],
    `${name}_2_pad`,
  );
  y = conv2d(b, y, { filters: f, kernel: 3, strides: stride, useBias: false, name: `${name}_2_conv` });
  y = relu(b, bn(c, y, `${name}_2_bn`), `${name}_2_relu`);
  // Small kernel on the branch's last conv (v2 has no BN there): keeps the trunk O(1) with random weights.
  y = conv2d(b, y, { filters: 4 * f, kernel: 1, kernelInit: 'bias', name: `${name}_3_conv` });
  return add(b, [shortcut, y], `${name}_out`);
}

/** resnet.py `stack2`. */
function stack2(c: Ctx, x: Tensor, filters: number, blocks: number, stride1: number, name: string): Tensor {
  x = block2(c, x, filters, 1, true, `${name}_block1`);
  for (let i = 2; i < blocks; i++) x = block2(c, x, filters, 1, false, `${name}_block${i}`);
  return block2(c, x, filters, stride1, false, `${name}_block${blocks}`);
}

/** resnet.py `ResNet`: blocks per stack conv2..conv5; v1 uses stack1 (conv1 bias + BN), v2 stack2 (preact). */
function resnet(
  name: string,
  blocks: readonly [number, number, number, number],
  v2: boolean,
  opts: ZooOptions = {},
): GraphBuilder {
  const { b, x: input } = startModel(name, opts.small ? SMALL_INPUT : 224, opts);
  const c: Ctx = { b, ch: widths(opts.small, 8) };
  const classes = opts.small ? SMALL_CLASSES : 1000;
  let x = zeroPadding2d(
    b,
    input,
    [
      [3, 3],
      [3, 3],
    ],
    'conv1_pad',
  );
  x = conv2d(b, x, { filters: c.ch(64), kernel: 7, strides: 2, name: 'conv1_conv' });
  if (!v2) x = relu(b, bn(c, x, 'conv1_bn'), 'conv1_relu');
  x = zeroPadding2d(
    b,
    x,
    [
      [1, 1],
      [1, 1],
    ],
    'pool1_pad',
  );
  x = maxPool2d(b, x, { pool: 3, strides: 2, name: 'pool1_pool' });
  const filters = [64, 128, 256, 512];
  for (let i = 0; i < 4; i++) {
    const stack = `conv${i + 2}`;
    if (v2) x = stack2(c, x, filters[i], blocks[i], i === 3 ? 1 : 2, stack);
    else x = stack1(c, x, filters[i], blocks[i], i === 0 ? 1 : 2, stack);
  }
  if (v2) x = relu(b, bn(c, x, 'post_bn'), 'post_relu');
  x = globalAvgPool(b, x, { name: 'avg_pool' });
  x = dense(b, x, { units: classes, activation: 'softmax', name: 'predictions', output: 'probs' });
  return finishModel(b, x);
}

const entry = (
  name: string,
  kerasName: string,
  kerasParams: number,
  blocks: [number, number, number, number],
  v2: boolean,
): ZooEntry => ({
  name,
  kerasName,
  kerasParams,
  inputSize: 224,
  build: (o) => resnet(name, blocks, v2, o),
});

export const MODELS: ZooEntry[] = [
  entry('resnet50', 'ResNet50', 25_636_712, [3, 4, 6, 3], false),
  entry('resnet101', 'ResNet101', 44_707_176, [3, 4, 23, 3], false),
  entry('resnet152', 'ResNet152', 60_419_944, [3, 8, 36, 3], false),
  entry('resnet50v2', 'ResNet50V2', 25_613_800, [3, 4, 6, 3], true),
  entry('resnet101v2', 'ResNet101V2', 44_675_560, [3, 4, 23, 3], true),
  entry('resnet152v2', 'ResNet152V2', 60_380_648, [3, 8, 36, 3], true),
];
