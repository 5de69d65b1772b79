/**
 * DenseNet121/169/201 as keras/applications/densenet.py builds them: every `conv_block` concatenates 32 new
 * channels onto its input, `transition_block`s halve channels and resolution between dense blocks.
 */
import type { GraphBuilder } from './builder.js';
import type { ZooEntry, ZooOptions } from './types.js';
import {
  avgPool2d,
  batchNorm,
  concat,
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

/** densenet.py `conv_block`. */
function convBlock(b: GraphBuilder, x: Tensor, growthRate: number, name: string): Tensor {
  let y = relu(b, batchNorm(b, x, { epsilon: EPS, name: `${name}_0_bn` }), `${name}_0_relu`);
  y = conv2d(b, y, { filters: 4 * growthRate, kernel: 1, useBias: false, name: `${name}_1_conv` });
  y = relu(b, batchNorm(b, y, { epsilon: EPS, name: `${name}_1_bn` }), `${name}_1_relu`);
  y = conv2d(b, y, { filters: growthRate, kernel: 3, padding: 'same', useBias: false, name: `${name}_2_conv` });
  return concat(b, [x, y], `${name}_concat`);
}

/** densenet.py `transition_block`. */
function transitionBlock(b: GraphBuilder, x: Tensor, reduction: number, name: string): Tensor {
  x = relu(b, batchNorm(b, x, { epsilon: EPS, name: `${name}_bn` }), `${name}_relu`);
  x = conv2d(b, x, { filters: Math.floor(x.dims[1] * reduction), kernel: 1, useBias: false, name: `${name}_conv` });
  return avgPool2d(b, x, { pool: 2, strides: 2, name: `${name}_pool` });
}

function densenet(name: string, blocks: readonly number[], opts: ZooOptions = {}): GraphBuilder {
  const ch = widths(opts.small, 4);
  const { b, x: input } = startModel(name, opts.small ? SMALL_INPUT : 224, opts);
  const classes = opts.small ? SMALL_CLASSES : 1000;
  const growth = ch(32);
  let x = zeroPadding2d(b, input, [
    [3, 3],
    [3, 3],
  ]); // unnamed in Keras: zero_padding2d
  x = conv2d(b, x, { filters: ch(64), kernel: 7, strides: 2, useBias: false, name: 'conv1/conv' });
  x = relu(b, batchNorm(b, x, { epsilon: EPS, name: 'conv1/bn' }), 'conv1/relu');
  x = zeroPadding2d(b, x, [
    [1, 1],
    [1, 1],
  ]); // zero_padding2d_1
  x = maxPool2d(b, x, { pool: 3, strides: 2, name: 'pool1' });
  blocks.forEach((n, i) => {
    for (let j = 1; j <= n; j++) x = convBlock(b, x, growth, `conv${i + 2}_block${j}`);
    if (i < blocks.length - 1) x = transitionBlock(b, x, 0.5, `pool${i + 2}`);
  });
  x = relu(b, batchNorm(b, x, { epsilon: EPS, name: 'bn' }), 'relu');
  x = globalAvgPool(b, x, { name: 'avg_pool' });
  x = dense(b, x, { units: classes, activation: 'softmax', name: 'predictions', output: 'probs' });
  return finishModel(b, x);
}

export const MODELS: ZooEntry[] = [
  {
    name: 'densenet121',
    kerasName: 'DenseNet121',
    kerasParams: 8_062_504,
    inputSize: 224,
    build: (o) => densenet('densenet121', [6, 12, 24, 16], o),
  },
  {
    name: 'densenet169',
    kerasName: 'DenseNet169',
    kerasParams: 14_307_880,
    inputSize: 224,
    build: (o) => densenet('densenet169', [6, 12, 32, 32], o),
  },
  {
    name: 'densenet201',
    kerasName: 'DenseNet201',
    kerasParams: 20_242_984,
    inputSize: 224,
    build: (o) => densenet('densenet201', [6, 12, 48, 32], o),
  },
];
