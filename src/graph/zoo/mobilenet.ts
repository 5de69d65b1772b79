/**
 * MobileNet (keras/applications/mobilenet.py, alpha 1, depth multiplier 1) and MobileNetV2
 * (mobilenet_v2.py, alpha 1), layer for layer. BatchNormalization uses Keras's default epsilon, 1e-3.
 *
 * MobileNet's head is current Keras's: GlobalAveragePooling2D(keepdims=True), Dropout, the `conv_preds` 1x1
 * Conv2D with bias, Reshape `reshape_2`, Activation `predictions`. Dropout is an inference no-op with no
 * parameters, so it is left out of the graph and the layer record.
 */
import type { GraphBuilder } from './builder.js';
import type { ZooEntry, ZooOptions } from './types.js';
import {
  add,
  batchNorm,
  conv2d,
  dense,
  depthwiseConv2d,
  finishModel,
  globalAvgPool,
  relu6,
  reshape,
  softmax,
  SMALL_CLASSES,
  SMALL_INPUT,
  startModel,
  widths,
  zeroPadding2d,
  type Tensor,
} from './layers.js';

/** mobilenet.py `_depthwise_conv_block`: stride-2 blocks pad ((0, 1), (0, 1)) and convolve 'valid'. */
function depthwiseBlock(b: GraphBuilder, x: Tensor, filters: number, stride: number, id: number): Tensor {
  if (stride !== 1)
    x = zeroPadding2d(
      b,
      x,
      [
        [0, 1],
        [0, 1],
      ],
      `conv_pad_${id}`,
    );
  x = depthwiseConv2d(b, x, {
    kernel: 3,
    padding: stride === 1 ? 'same' : 'valid',
    strides: stride,
    useBias: false,
    name: `conv_dw_${id}`,
  });
  x = relu6(b, batchNorm(b, x, { name: `conv_dw_${id}_bn` }), `conv_dw_${id}_relu`);
  x = conv2d(b, x, { filters, kernel: 1, padding: 'same', useBias: false, name: `conv_pw_${id}` });
  return relu6(b, batchNorm(b, x, { name: `conv_pw_${id}_bn` }), `conv_pw_${id}_relu`);
}

/** (pointwise filters, stride) of blocks 1..13. */
const V1_BLOCKS: readonly (readonly [number, number])[] = [
  [64, 1],
  [128, 2],
  [128, 1],
  [256, 2],
  [256, 1],
  [512, 2],
  [512, 1],
  [512, 1],
  [512, 1],
  [512, 1],
  [512, 1],
  [1024, 2],
  [1024, 1],
];

function mobilenet(opts: ZooOptions = {}): GraphBuilder {
  const ch = widths(opts.small, 4);
  const { b, x: input } = startModel('mobilenet', opts.small ? SMALL_INPUT : 224, opts);
  const classes = opts.small ? SMALL_CLASSES : 1000;
  let x = conv2d(b, input, { filters: ch(32), kernel: 3, padding: 'same', useBias: false, strides: 2, name: 'conv1' });
  x = relu6(b, batchNorm(b, x, { name: 'conv1_bn' }), 'conv1_relu');
  V1_BLOCKS.forEach(([f, s], i) => {
    x = depthwiseBlock(b, x, ch(f), s, i + 1);
  });
  x = globalAvgPool(b, x, { keepdims: true });
  x = conv2d(b, x, { filters: classes, kernel: 1, padding: 'same', name: 'conv_preds' });
  x = reshape(b, x, [1, classes], 'reshape_2');
  return finishModel(b, softmax(b, x, 'predictions', { output: 'probs' }));
}

/** mobilenet_v2.py `_make_divisible`: round to the nearest multiple of `divisor`, never below 90% of `v`. */
function makeDivisible(v: number, divisor = 8): number {
  let n = Math.max(divisor, Math.floor(v + divisor / 2) - (Math.floor(v + divisor / 2) % divisor));
  if (n < 0.9 * v) n += divisor;
  return n;
}

/**
 * mobilenet_v2.py `_inverted_res_block`. `residual` is decided on the full-size channel counts
 * (in == out and stride 1) and passed in, so the small variant keeps exactly the same adds.
 */
function invertedResBlock(
  b: GraphBuilder,
  x: Tensor,
  expansion: number,
  stride: number,
  filters: number,
  id: number,
  residual: boolean,
): Tensor {
  const inputs = x;
  const inChannels = x.dims[1];
  let prefix = `block_${id}_`;
  if (id) {
    x = conv2d(b, x, {
      filters: expansion * inChannels,
      kernel: 1,
      padding: 'same',
      useBias: false,
      name: `${prefix}expand`,
    });
    x = relu6(b, batchNorm(b, x, { name: `${prefix}expand_BN` }), `${prefix}expand_relu`);
  } else {
    prefix = 'expanded_conv_';
  }
  if (stride === 2) x = zeroPadding2d(b, x, correctPad(x, 3), `${prefix}pad`);
  x = depthwiseConv2d(b, x, {
    kernel: 3,
    strides: stride,
    useBias: false,
    padding: stride === 1 ? 'same' : 'valid',
    name: `${prefix}depthwise`,
  });
  x = relu6(b, batchNorm(b, x, { name: `${prefix}depthwise_BN` }), `${prefix}depthwise_relu`);
  x = conv2d(b, x, { filters, kernel: 1, padding: 'same', useBias: false, name: `${prefix}project` });
  x = batchNorm(b, x, { name: `${prefix}project_BN` });
  return residual ? add(b, [inputs, x], `${prefix}add`) : x;
}

/** imagenet_utils.correct_pad: ((k//2 - adjust, k//2), ...) with adjust 1 on even sizes. */
function correctPad(x: Tensor, k: number): [[number, number], [number, number]] {
  const c = Math.floor(k / 2);
  return [
    [c - (1 - (x.dims[2] % 2)), c],
    [c - (1 - (x.dims[3] % 2)), c],
  ];
}

/** (filters, stride, expansion) of blocks 0..16. */
const V2_BLOCKS: readonly (readonly [number, number, number])[] = [
  [16, 1, 1],
  [24, 2, 6],
  [24, 1, 6],
  [32, 2, 6],
  [32, 1, 6],
  [32, 1, 6],
  [64, 2, 6],
  [64, 1, 6],
  [64, 1, 6],
  [64, 1, 6],
  [96, 1, 6],
  [96, 1, 6],
  [96, 1, 6],
  [160, 2, 6],
  [160, 1, 6],
  [160, 1, 6],
  [320, 1, 6],
];

function mobilenetv2(opts: ZooOptions = {}): GraphBuilder {
  const ch = widths(opts.small, 4);
  const { b, x: input } = startModel('mobilenetv2', opts.small ? SMALL_INPUT : 224, opts);
  const classes = opts.small ? SMALL_CLASSES : 1000;
  const first = makeDivisible(32);
  let x = conv2d(b, input, {
    filters: ch(first),
    kernel: 3,
    strides: 2,
    padding: 'same',
    useBias: false,
    name: 'Conv1',
  });
  x = relu6(b, batchNorm(b, x, { name: 'bn_Conv1' }), 'Conv1_relu');
  let fullIn = first;
  V2_BLOCKS.forEach(([f, s, e], id) => {
    const out = makeDivisible(f);
    x = invertedResBlock(b, x, e, s, ch(out), id, fullIn === out && s === 1);
    fullIn = out;
  });
  x = conv2d(b, x, { filters: ch(1280), kernel: 1, useBias: false, name: 'Conv_1' });
  x = relu6(b, batchNorm(b, x, { name: 'Conv_1_bn' }), 'out_relu');
  x = globalAvgPool(b, x);
  x = dense(b, x, { units: classes, activation: 'softmax', name: 'predictions', output: 'probs' });
  return finishModel(b, x);
}

export const MODELS: ZooEntry[] = [
  { name: 'mobilenet', kerasName: 'MobileNet', kerasParams: 4_253_864, inputSize: 224, build: mobilenet },
  { name: 'mobilenetv2', kerasName: 'MobileNetV2', kerasParams: 3_538_984, inputSize: 224, build: mobilenetv2 },
];
