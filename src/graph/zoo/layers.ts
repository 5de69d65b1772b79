/**
 * (Past 400 lines on purpose: one small helper per Keras layer, a flat catalogue read by name.)
 *
 * Keras layers as ONNX nodes, for writing the zoo's architectures the way keras/applications writes them:
 * one helper call per Keras layer, with Keras's own defaults (Conv2D and Dense have a bias, padding is
 * 'valid', pooling strides default to the pool size, BatchNormalization epsilon is 1e-3) so a family file
 * reads like the Python it mirrors and only spells out what the Python spells out.
 *
 * Conventions:
 * - Tensors are NCHW, batch 1, and carry their dims: Keras computes shapes while building (SAME padding,
 *   `int(C * reduction)` channel counts), so the helpers must too.
 * - `name` is the Keras layer name. When the Python leaves it out, Keras names the layer after its class
 *   with a per-model counter (`max_pooling2d`, `max_pooling2d_1`, ...); the helpers do the same.
 * - Every helper records its Keras layer with `b.keras(kind, name, inputs, output)` and emits one ONNX node
 *   named after the layer, except where ONNX has no single op for it: a layer with a fused `activation`
 *   adds the activation node (`<name>_<act>`), SeparableConv2D is a depthwise Conv then a pointwise Conv,
 *   GlobalAveragePooling2D without `keepdims` is GlobalAveragePool then Flatten. The recorded layer output is
 *   always the last of those nodes.
 * - Parameters are counted as Keras's `count_params()` counts them (BatchNormalization: gamma, beta, moving
 *   mean and moving variance); tensors ONNX needs but Keras does not have are created with `keras: false`.
 * - Keras's Flatten flattens NHWC in (H, W, C) order, ONNX's NCHW Flatten in (C, H, W) order: same size,
 *   different element order, which matters only if real Keras weights are ever imported into a Dense after it.
 */
import { CleaveError } from '../../errors.js';
import { GraphBuilder, float, type WeightInit } from './builder.js';
import type { ZooOptions } from './types.js';

/** A tensor of the graph being built, with its dims: [N, C, H, W] for images, [N, C] after flattening. */
export interface Tensor {
  readonly name: string;
  readonly dims: readonly number[];
}

/** A size given once for both spatial axes, or as (height, width) like Keras's tuples. */
type Pair = number | readonly [number, number];

/** Keras padding modes. 'same' pads like TensorFlow: total `max((out-1)*s + k_eff - in, 0)`, the odd pixel after. */
export type Padding = 'same' | 'valid';

/** Activations a layer can fuse (`Conv2D(..., activation='relu')`); 'linear' is none. */
export type Activation = 'linear' | 'relu' | 'softmax';

// ---------------------------------------------------------------------------------------------------------
// Model frame

/**
 * Input height = width of the `small` variants where the architecture allows it (the fast test suite feeds
 * them this size; ImageNet-style nets downsample by 32, leaving 2x2 at the end).
 */
export const SMALL_INPUT = 64;
/** Classes of the `small` variants. */
export const SMALL_CLASSES = 10;

/**
 * A builder for one zoo model with its image input `input` [1, 3, size, size]. Seed and weights come from the
 * zoo options (seed 1 by default).
 */
export function startModel(name: string, size: number, opts: ZooOptions = {}): { b: GraphBuilder; x: Tensor } {
  const b = new GraphBuilder(name, opts.seed ?? 1, 13, { weights: opts.weights });
  const dims = [1, 3, size, size];
  return { b, x: { name: b.input('input', dims), dims } };
}

/** Marks the classifier's probabilities as the graph output (they must be the tensor named `probs`). */
export function finishModel(b: GraphBuilder, probs: Tensor): GraphBuilder {
  if (probs.name !== 'probs')
    throw new CleaveError('E_BAD_MODEL', `zoo model '${b.name}' must end in 'probs', not '${probs.name}'`);
  b.output(probs.name, [...probs.dims]);
  return b;
}

/**
 * Channel counts for a model variant: identity at full size; for `small`, `c / divisor` rounded down but at
 * least 4, so the small variant keeps the topology with a fraction of the work.
 */
export function widths(small: boolean | undefined, divisor: number): (c: number) => number {
  return small ? (c) => Math.max(4, Math.floor(c / divisor)) : (c) => c;
}

// ---------------------------------------------------------------------------------------------------------
// Naming and shapes

const counters = new WeakMap<GraphBuilder, Map<string, number>>();

/** The layer name Keras would give: `name` if given, else `<snake_class>` then `<snake_class>_1`, ... */
function layerName(b: GraphBuilder, snake: string, name?: string): string {
  if (name !== undefined) return name;
  let m = counters.get(b);
  if (!m) counters.set(b, (m = new Map()));
  const k = m.get(snake) ?? 0;
  m.set(snake, k + 1);
  return k === 0 ? snake : `${snake}_${k}`;
}

const pair = (p: Pair): [number, number] => (typeof p === 'number' ? [p, p] : [p[0], p[1]]);

function spatial(x: Tensor, layer: string): [number, number, number] {
  if (x.dims.length !== 4)
    throw new CleaveError('E_BAD_SHAPE', `${layer}: needs an NCHW input, got [${x.dims.join(', ')}]`);
  return [x.dims[1], x.dims[2], x.dims[3]];
}

/** Output size and [before, after] padding along one axis, exactly as TensorFlow computes them. */
export function windowAxis(
  size: number,
  kernel: number,
  stride: number,
  dilation: number,
  padding: Padding,
): { out: number; pads: [number, number] } {
  const eff = (kernel - 1) * dilation + 1;
  if (padding === 'valid') return { out: Math.floor((size - eff) / stride) + 1, pads: [0, 0] };
  const out = Math.ceil(size / stride);
  const total = Math.max((out - 1) * stride + eff - size, 0);
  const before = Math.floor(total / 2);
  return { out, pads: [before, total - before] };
}

/** Output [H, W] and ONNX `pads` ([top, left, bottom, right]) of a 2-D window op. */
function window(
  layer: string,
  h: number,
  w: number,
  kernel: Pair,
  strides: Pair,
  dilation: Pair,
  padding: Padding,
): { oh: number; ow: number; pads: number[] } {
  const [kh, kw] = pair(kernel);
  const [sh, sw] = pair(strides);
  const [dh, dw] = pair(dilation);
  const y = windowAxis(h, kh, sh, dh, padding);
  const x = windowAxis(w, kw, sw, dw, padding);
  if (y.out < 1 || x.out < 1)
    throw new CleaveError('E_BAD_SHAPE', `${layer}: a ${kh}x${kw} window does not fit a ${h}x${w} input`);
  return { oh: y.out, ow: x.out, pads: [y.pads[0], x.pads[0], y.pads[1], x.pads[1]] };
}

/** Appends the node of a fused activation, if any; returns the layer's output. */
function activate(b: GraphBuilder, y: Tensor, act: Activation | undefined, name: string, output?: string): Tensor {
  if (act === undefined || act === 'linear') return y;
  if (act === 'relu') return { name: b.op('Relu', [y.name], {}, output ?? `${name}_relu`), dims: y.dims };
  return { name: b.op('Softmax', [y.name], { axis: -1 }, output ?? `${name}_softmax`), dims: y.dims };
}

// ---------------------------------------------------------------------------------------------------------
// Convolutions

export interface Conv2DOptions {
  filters: number;
  kernel: Pair;
  /** Default 1. */
  strides?: Pair;
  /** Default 'valid', as in Keras. */
  padding?: Padding;
  /** Default 1. */
  dilation?: Pair;
  /** Default true, as in Keras. */
  useBias?: boolean;
  activation?: Activation;
  name?: string;
  /**
   * Fill of the kernel; default 'he'. A smaller fill ('bias', uniform ±0.05) on the last conv of a residual
   * branch keeps random-weight activations O(1) through deep residual stacks (no effect on shapes or counts).
   */
  kernelInit?: WeightInit;
}

/**
 * Keras Conv2D. Kernel [filters, C, kh, kw] (Keras's (kh, kw, C, filters) transposed), He-initialised; SAME
 * padding becomes explicit, possibly asymmetric `pads` so the output matches TensorFlow's exactly.
 */
export function conv2d(b: GraphBuilder, x: Tensor, o: Conv2DOptions): Tensor {
  const name = layerName(b, 'conv2d', o.name);
  const [c, h, w] = spatial(x, name);
  const [kh, kw] = pair(o.kernel);
  const strides = pair(o.strides ?? 1);
  const dilations = pair(o.dilation ?? 1);
  const win = window(name, h, w, o.kernel, strides, dilations, o.padding ?? 'valid');
  const inputs = [x.name, b.weight(`${name}_kernel`, [o.filters, c, kh, kw], o.kernelInit ?? 'he')];
  if (o.useBias ?? true) inputs.push(b.weight(`${name}_bias`, [o.filters], 'bias'));
  const y = b.op('Conv', inputs, { kernel_shape: [kh, kw], strides, dilations, pads: win.pads }, name);
  const out = activate(b, { name: y, dims: [1, o.filters, win.oh, win.ow] }, o.activation, name);
  b.keras('Conv2D', name, [x.name], out.name);
  return out;
}

export interface DepthwiseConv2DOptions {
  kernel: Pair;
  strides?: Pair;
  padding?: Padding;
  dilation?: Pair;
  /** Output channels per input channel. Default 1. */
  depthMultiplier?: number;
  /** Default true, as in Keras (MobileNet passes false). */
  useBias?: boolean;
  activation?: Activation;
  name?: string;
}

/** Keras DepthwiseConv2D: a grouped Conv with group = C and kernel [C * multiplier, 1, kh, kw]. */
export function depthwiseConv2d(b: GraphBuilder, x: Tensor, o: DepthwiseConv2DOptions): Tensor {
  const name = layerName(b, 'depthwise_conv2d', o.name);
  const y = depthwise(b, x, name, o, o.useBias ?? true);
  const out = activate(b, y, o.activation, name);
  b.keras('DepthwiseConv2D', name, [x.name], out.name);
  return out;
}

function depthwise(b: GraphBuilder, x: Tensor, name: string, o: DepthwiseConv2DOptions, useBias: boolean): Tensor {
  const [c, h, w] = spatial(x, name);
  const [kh, kw] = pair(o.kernel);
  const strides = pair(o.strides ?? 1);
  const dilations = pair(o.dilation ?? 1);
  const m = o.depthMultiplier ?? 1;
  const win = window(name, h, w, o.kernel, strides, dilations, o.padding ?? 'valid');
  const inputs = [x.name, b.weight(`${name}_depthwise_kernel`, [c * m, 1, kh, kw], 'he')];
  if (useBias) inputs.push(b.weight(`${name}_bias`, [c * m], 'bias'));
  const y = b.op('Conv', inputs, { kernel_shape: [kh, kw], strides, dilations, pads: win.pads, group: c }, name);
  return { name: y, dims: [1, c * m, win.oh, win.ow] };
}

export interface SeparableConv2DOptions extends Omit<DepthwiseConv2DOptions, 'name'> {
  filters: number;
  name?: string;
}

/**
 * Keras SeparableConv2D: depthwise kernel (padding and strides apply here), then a 1x1 pointwise kernel and
 * the bias. One Keras layer, two ONNX Convs (`<name>_depthwise`, `<name>`); parameters are depthwise +
 * pointwise + bias, as Keras counts them.
 */
export function separableConv2d(b: GraphBuilder, x: Tensor, o: SeparableConv2DOptions): Tensor {
  const name = layerName(b, 'separable_conv2d', o.name);
  const d = depthwise(b, x, `${name}_depthwise`, o, false);
  const inputs = [d.name, b.weight(`${name}_pointwise_kernel`, [o.filters, d.dims[1], 1, 1], 'he')];
  if (o.useBias ?? true) inputs.push(b.weight(`${name}_bias`, [o.filters], 'bias'));
  const y = b.op('Conv', inputs, { kernel_shape: [1, 1] }, name);
  const out = activate(b, { name: y, dims: [1, o.filters, d.dims[2], d.dims[3]] }, o.activation, name);
  b.keras('SeparableConv2D', name, [x.name], out.name);
  return out;
}

/**
 * Keras ZeroPadding2D as an ONNX Pad. `padding` is Keras's: one number for all sides, (rows, cols), or
 * ((top, bottom), (left, right)).
 */
export function zeroPadding2d(
  b: GraphBuilder,
  x: Tensor,
  padding: number | readonly [number, number] | readonly [readonly [number, number], readonly [number, number]],
  name?: string,
): Tensor {
  const n = layerName(b, 'zero_padding2d', name);
  const [c, h, w] = spatial(x, n);
  let t: number, bo: number, l: number, r: number;
  if (typeof padding === 'number') [t, bo, l, r] = [padding, padding, padding, padding];
  else if (typeof padding[0] === 'number') {
    const [ph, pw] = padding as readonly [number, number];
    [t, bo, l, r] = [ph, ph, pw, pw];
  } else {
    const [[pt, pb], [pl, pr]] = padding as readonly [readonly [number, number], readonly [number, number]];
    [t, bo, l, r] = [pt, pb, pl, pr];
  }
  const pads = b.int64s(`${n}_pads`, [0, 0, t, l, 0, 0, bo, r]);
  const y = b.op('Pad', [x.name, pads], { mode: 'constant' }, n);
  b.keras('ZeroPadding2D', n, [x.name], y);
  return { name: y, dims: [1, c, h + t + bo, w + l + r] };
}

// ---------------------------------------------------------------------------------------------------------
// Normalisation and activations

export interface BatchNormOptions {
  /** Keras's default is 1e-3 (MobileNet, Inception); ResNet and DenseNet pass 1.001e-5. */
  epsilon?: number;
  /** Keras `scale`: learn gamma. Default true; the Inception family passes false. */
  scale?: boolean;
  /** Keras `center`: learn beta. Default true. */
  center?: boolean;
  name?: string;
  /**
   * Fill of gamma; default 'gamma' (uniform 0.8..1.2). A small fill ('beta', uniform ±0.1) on the last BN of
   * a residual branch is the "zero-gamma" trick: random-weight activations stay O(1) through deep stacks.
   */
  gammaInit?: WeightInit;
}

/**
 * Keras BatchNormalization (inference): one ONNX BatchNormalization. Keras counts gamma, beta, moving mean
 * and moving variance (4 per channel). With `scale: false` Keras has no gamma, but ONNX's node still needs a
 * scale input: it gets a tensor of ones created with `keras: false`, so it is not counted (likewise a zero
 * bias for `center: false`).
 */
export function batchNorm(b: GraphBuilder, x: Tensor, o: BatchNormOptions = {}): Tensor {
  const name = layerName(b, 'batch_normalization', o.name);
  const c = x.dims[1];
  const gamma =
    o.scale === false
      ? b.weight(`${name}_gamma`, [c], 'ones', { keras: false })
      : b.weight(`${name}_gamma`, [c], o.gammaInit ?? 'gamma');
  const beta =
    o.center === false
      ? b.weight(`${name}_beta`, [c], 'zeros', { keras: false })
      : b.weight(`${name}_beta`, [c], 'beta');
  const mean = b.weight(`${name}_moving_mean`, [c], 'mean');
  const variance = b.weight(`${name}_moving_variance`, [c], 'var');
  const y = b.op(
    'BatchNormalization',
    [x.name, gamma, beta, mean, variance],
    { epsilon: float(o.epsilon ?? 1e-3) },
    name,
  );
  b.keras('BatchNormalization', name, [x.name], y);
  return { name: y, dims: x.dims };
}

/**
 * ReLU as Keras `Activation('relu')` (the default `kind`) or as a `ReLU()` layer (`kind: 'ReLU'`): one Relu.
 */
export function relu(b: GraphBuilder, x: Tensor, name?: string, kind: 'Activation' | 'ReLU' = 'Activation'): Tensor {
  const n = layerName(b, kind === 'ReLU' ? 're_lu' : 'activation', name);
  const y = b.op('Relu', [x.name], {}, n);
  b.keras(kind, n, [x.name], y);
  return { name: y, dims: x.dims };
}

const clipBounds = new WeakMap<GraphBuilder, [string, string]>();

/** Keras `ReLU(6.)`: an opset-13 Clip whose bounds are scalar inputs, shared by every relu6 of the model. */
export function relu6(b: GraphBuilder, x: Tensor, name?: string): Tensor {
  const n = layerName(b, 're_lu', name);
  let bounds = clipBounds.get(b);
  if (!bounds) clipBounds.set(b, (bounds = [b.scalar('relu6_min', 0), b.scalar('relu6_max', 6)]));
  const y = b.op('Clip', [x.name, bounds[0], bounds[1]], {}, n);
  b.keras('ReLU', n, [x.name], y);
  return { name: y, dims: x.dims };
}

/**
 * Softmax over the last axis, as Keras `Activation('softmax')` (default `kind`) or a `Softmax()` layer.
 * `output` names the ONNX tensor when it must differ from the layer name (the zoo's `probs`).
 */
export function softmax(
  b: GraphBuilder,
  x: Tensor,
  name?: string,
  o: { kind?: 'Activation' | 'Softmax'; output?: string } = {},
): Tensor {
  const kind = o.kind ?? 'Activation';
  const n = layerName(b, kind === 'Softmax' ? 'softmax' : 'activation', name);
  const y = b.op('Softmax', [x.name], { axis: -1 }, o.output ?? n);
  b.keras(kind, n, [x.name], y);
  return { name: y, dims: x.dims };
}

// ---------------------------------------------------------------------------------------------------------
// Pooling

export interface Pool2DOptions {
  pool: Pair;
  /** Default: the pool size, as in Keras. */
  strides?: Pair;
  /** Default 'valid'. */
  padding?: Padding;
  name?: string;
}

/** Keras MaxPooling2D: one MaxPool (ONNX ignores padded cells, as TensorFlow's SAME max pooling does). */
export function maxPool2d(b: GraphBuilder, x: Tensor, o: Pool2DOptions): Tensor {
  return pool(b, x, o, 'MaxPool', 'MaxPooling2D', 'max_pooling2d', {});
}

/** Keras AveragePooling2D: one AveragePool that, like Keras, averages over real cells only (count_include_pad=0). */
export function avgPool2d(b: GraphBuilder, x: Tensor, o: Pool2DOptions): Tensor {
  return pool(b, x, o, 'AveragePool', 'AveragePooling2D', 'average_pooling2d', { count_include_pad: 0 });
}

function pool(
  b: GraphBuilder,
  x: Tensor,
  o: Pool2DOptions,
  opType: string,
  kind: string,
  snake: string,
  extra: Record<string, number>,
): Tensor {
  const name = layerName(b, snake, o.name);
  const [c, h, w] = spatial(x, name);
  const kernel = pair(o.pool);
  const strides = pair(o.strides ?? o.pool);
  const win = window(name, h, w, kernel, strides, 1, o.padding ?? 'valid');
  const y = b.op(opType, [x.name], { kernel_shape: kernel, strides, pads: win.pads, ...extra }, name);
  b.keras(kind, name, [x.name], y);
  return { name: y, dims: [1, c, win.oh, win.ow] };
}

/**
 * Keras GlobalAveragePooling2D. Keras gives [N, C]: GlobalAveragePool then Flatten (`<name>_flatten`), two
 * ONNX nodes for one layer. With `keepdims` (Keras's `keepdims=True`) it is the single GlobalAveragePool,
 * [N, C, 1, 1].
 */
export function globalAvgPool(b: GraphBuilder, x: Tensor, o: { name?: string; keepdims?: boolean } = {}): Tensor {
  const name = layerName(b, 'global_average_pooling2d', o.name);
  const [c] = spatial(x, name);
  let y = b.op('GlobalAveragePool', [x.name], {}, name);
  if (!o.keepdims) y = b.op('Flatten', [y], { axis: 1 }, `${name}_flatten`);
  b.keras('GlobalAveragePooling2D', name, [x.name], y);
  return { name: y, dims: o.keepdims ? [1, c, 1, 1] : [1, c] };
}

// ---------------------------------------------------------------------------------------------------------
// Shape layers

/** Keras Flatten: one ONNX Flatten to [N, C*H*W] (see the module note on element order). */
export function flatten(b: GraphBuilder, x: Tensor, name?: string): Tensor {
  const n = layerName(b, 'flatten', name);
  const y = b.op('Flatten', [x.name], { axis: 1 }, n);
  b.keras('Flatten', n, [x.name], y);
  return { name: y, dims: [x.dims[0], x.dims.slice(1).reduce((a, d) => a * d, 1)] };
}

/** Keras Reshape: one ONNX Reshape. `dims` are the full NCHW-order dims including the batch. */
export function reshape(b: GraphBuilder, x: Tensor, dims: readonly number[], name?: string): Tensor {
  const n = layerName(b, 'reshape', name);
  const size = (d: readonly number[]): number => d.reduce((a, v) => a * v, 1);
  if (size(dims) !== size(x.dims))
    throw new CleaveError('E_BAD_SHAPE', `${n}: cannot reshape [${x.dims.join(', ')}] to [${dims.join(', ')}]`);
  const y = b.op('Reshape', [x.name, b.int64s(`${n}_shape`, [...dims])], {}, n);
  b.keras('Reshape', n, [x.name], y);
  return { name: y, dims };
}

// ---------------------------------------------------------------------------------------------------------
// Dense

export interface DenseOptions {
  units: number;
  /** Default true, as in Keras. */
  useBias?: boolean;
  activation?: Activation;
  name?: string;
  /** Names the ONNX tensor of the layer's output (after the activation), e.g. the zoo's `probs`. */
  output?: string;
}

/** Keras Dense: Gemm with the kernel stored [units, in] and transB=1, plus the fused activation's node. */
export function dense(b: GraphBuilder, x: Tensor, o: DenseOptions): Tensor {
  const name = layerName(b, 'dense', o.name);
  if (x.dims.length !== 2)
    throw new CleaveError('E_BAD_SHAPE', `${name}: needs an [N, C] input, got [${x.dims.join(', ')}]`);
  const inputs = [x.name, b.weight(`${name}_kernel`, [o.units, x.dims[1]], 'he')];
  if (o.useBias ?? true) inputs.push(b.weight(`${name}_bias`, [o.units], 'bias'));
  const act = o.activation ?? 'linear';
  const y = b.op('Gemm', inputs, { transB: 1 }, act === 'linear' ? (o.output ?? name) : name);
  const out = activate(b, { name: y, dims: [x.dims[0], o.units] }, act, name, o.output);
  b.keras('Dense', name, [x.name], out.name);
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Merges

/** Keras Add: one ONNX Add for two inputs, one Sum for more. */
export function add(b: GraphBuilder, xs: readonly Tensor[], name?: string): Tensor {
  const n = layerName(b, 'add', name);
  const dims = xs[0].dims;
  for (const x of xs) {
    if (x.dims.join() !== dims.join())
      throw new CleaveError('E_BAD_SHAPE', `${n}: inputs [${dims.join(', ')}] and [${x.dims.join(', ')}] differ`);
  }
  const names = xs.map((x) => x.name);
  const y = b.op(xs.length === 2 ? 'Add' : 'Sum', names, {}, n);
  b.keras('Add', n, names, y);
  return { name: y, dims };
}

/** Keras Concatenate on the channel axis (Keras's -1 in NHWC is 1 in NCHW): one ONNX Concat. */
export function concat(b: GraphBuilder, xs: readonly Tensor[], name?: string): Tensor {
  const n = layerName(b, 'concatenate', name);
  const rest = xs[0].dims.slice(2).join();
  for (const x of xs) {
    if (x.dims.slice(2).join() !== rest)
      throw new CleaveError('E_BAD_SHAPE', `${n}: inputs differ outside the channel axis`);
  }
  const names = xs.map((x) => x.name);
  const y = b.op('Concat', names, { axis: 1 }, n);
  b.keras('Concatenate', n, names, y);
  return { name: y, dims: [xs[0].dims[0], xs.reduce((a, x) => a + x.dims[1], 0), ...xs[0].dims.slice(2)] };
}
