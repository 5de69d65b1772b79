/**
 * Keras-layer helpers for the Inception, Xception and NASNet builders. Each method adds the ONNX node(s)
 * of one Keras layer, records that layer with `GraphBuilder.keras`, and tracks the NCHW shape of its
 * output, because TF 'same' padding with a stride depends on the input size and must be written out as
 * explicit ONNX pads. Kept apart from layers.ts until the two are merged.
 */
import type { GraphBuilder, WeightInit } from './builder.js';

/** A 4-D activation, batch 1, NCHW. `name` is the ONNX tensor (and the Keras layer that produced it). */
export interface T4 {
  readonly name: string;
  readonly c: number;
  readonly h: number;
  readonly w: number;
}

/** A 2-D activation [1, units]. */
interface T2 {
  readonly name: string;
  readonly units: number;
}

export type Padding = 'same' | 'valid';
/** A kernel, pool or stride size: one number for both axes, or [rows, cols]. */
export type Size2 = number | readonly [number, number];
/** ZeroPadding2D / Cropping2D amounts: [[top, bottom], [left, right]]. */
export type Pads2 = readonly [readonly [number, number], readonly [number, number]];

/** Keras BatchNormalization's default epsilon (NASNet passes the same value explicitly). */
const BN_EPSILON = 1e-3;

/**
 * Fill of SeparableConv2D's pointwise kernel. 'he' assumes a ReLU'd input, but the pointwise conv reads the
 * depthwise output directly, so with random weights each separable conv doubles the activation variance
 * (Xception's final features reach RMS ~1e2, NASNetLarge's ~1e3). A variance-1/fan-in fill would keep them
 * O(10); the builder has no such fill yet.
 */
const POINTWISE_INIT: WeightInit = 'lecun';

const pair = (v: Size2): [number, number] => (typeof v === 'number' ? [v, v] : [v[0], v[1]]);

/**
 * TF 'same' padding for one axis: output ceil(n / s), and when the total padding is odd the extra pixel
 * goes after (bottom/right). Written out as explicit pads rather than auto_pad, which ONNX deprecates and
 * which tools that read pads (shape inference, cut analysis) would have to re-derive.
 */
export function samePads(n: number, k: number, s: number): [number, number] {
  const total = Math.max((Math.ceil(n / s) - 1) * s + k - n, 0);
  const before = Math.floor(total / 2);
  return [before, total - before];
}

/** Output size and [before, after] pads of one axis. */
function axis(n: number, k: number, s: number, padding: Padding): { out: number; pads: [number, number] } {
  if (padding === 'same') return { out: Math.ceil(n / s), pads: samePads(n, k, s) };
  const out = Math.floor((n - k) / s) + 1;
  if (out < 1) throw new RangeError(`'valid' window ${k} does not fit input size ${n}`);
  return { out, pads: [0, 0] };
}

/** Keras's automatic name stem for a layer class: `BatchNormalization` -> `batch_normalization`. */
function snake(kind: string): string {
  return kind
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/([A-Z])([A-Z][a-z])/g, '$1_$2')
    .toLowerCase();
}

export interface ConvOptions {
  strides?: Size2;
  padding?: Padding;
  useBias?: boolean;
  name?: string;
}

export class KerasNet {
  private readonly counts = new Map<string, number>();

  constructor(readonly b: GraphBuilder) {}

  /** Keras's automatic layer name: `conv2d`, `conv2d_1`, ... counted per layer class. */
  autoName(kind: string): string {
    const stem = AUTO_STEMS[kind] ?? snake(kind);
    const n = this.counts.get(stem) ?? 0;
    this.counts.set(stem, n + 1);
    return n === 0 ? stem : `${stem}_${n}`;
  }

  /** The graph input `input` [1, 3, size, size]. */
  input(size: number): T4 {
    const name = this.b.input('input', [1, 3, size, size]);
    return { name, c: 3, h: size, w: size };
  }

  conv2d(x: T4, filters: number, kernel: Size2, o: ConvOptions = {}): T4 {
    const name = o.name ?? this.autoName('Conv2D');
    const [kh, kw] = pair(kernel);
    const [sh, sw] = pair(o.strides ?? 1);
    const rows = axis(x.h, kh, sh, o.padding ?? 'valid');
    const cols = axis(x.w, kw, sw, o.padding ?? 'valid');
    const inputs = [x.name, this.b.weight(`${name}_kernel`, [filters, x.c, kh, kw], 'he')];
    if (o.useBias ?? true) inputs.push(this.b.weight(`${name}_bias`, [filters], 'bias'));
    const out = this.b.op('Conv', inputs, convAttrs([kh, kw], [sh, sw], rows.pads, cols.pads, 1), name);
    this.b.keras('Conv2D', name, [x.name], out);
    return { name: out, c: filters, h: rows.out, w: cols.out };
  }

  /**
   * SeparableConv2D (depth multiplier 1): a depthwise Conv (group = channels, carrying the stride and
   * padding) then a 1x1 pointwise Conv — two ONNX nodes for one Keras layer, as ONNX has no fused op.
   */
  separableConv2d(x: T4, filters: number, kernel: Size2, o: ConvOptions = {}): T4 {
    const name = o.name ?? this.autoName('SeparableConv2D');
    const [kh, kw] = pair(kernel);
    const [sh, sw] = pair(o.strides ?? 1);
    const rows = axis(x.h, kh, sh, o.padding ?? 'valid');
    const cols = axis(x.w, kw, sw, o.padding ?? 'valid');
    const dwk = this.b.weight(`${name}_depthwise_kernel`, [x.c, 1, kh, kw], 'he');
    const dw = this.b.op(
      'Conv',
      [x.name, dwk],
      convAttrs([kh, kw], [sh, sw], rows.pads, cols.pads, x.c),
      `${name}_depthwise`,
    );
    const inputs = [dw, this.b.weight(`${name}_pointwise_kernel`, [filters, x.c, 1, 1], POINTWISE_INIT)];
    if (o.useBias ?? true) inputs.push(this.b.weight(`${name}_bias`, [filters], 'bias'));
    const out = this.b.op('Conv', inputs, { kernel_shape: [1, 1] }, name);
    this.b.keras('SeparableConv2D', name, [x.name], out);
    return { name: out, c: filters, h: rows.out, w: cols.out };
  }

  /**
   * BatchNormalization over channels. With `scale: false` Keras has no gamma (3 parameters per channel:
   * beta, moving mean, moving variance), but ONNX BatchNormalization always takes a scale input, so it gets
   * a tensor of ones that is left out of the parameter count. `gammaInit: 'beta'` (uniform ±0.1) on the
   * last BN of a residual branch is the zero-gamma trick: random-weight activations stay O(1) through deep
   * residual stacks.
   */
  batchNorm(x: T4, o: { scale?: boolean; name?: string; gammaInit?: WeightInit } = {}): T4 {
    const name = o.name ?? this.autoName('BatchNormalization');
    const c = x.c;
    const gamma =
      o.scale === false
        ? this.b.weight(`${name}_gamma`, [c], 'ones', { keras: false })
        : this.b.weight(`${name}_gamma`, [c], o.gammaInit ?? 'gamma');
    const beta = this.b.weight(`${name}_beta`, [c], 'beta');
    const mean = this.b.weight(`${name}_moving_mean`, [c], 'mean');
    const variance = this.b.weight(`${name}_moving_variance`, [c], 'var');
    const out = this.b.op('BatchNormalization', [x.name, gamma, beta, mean, variance], { epsilon: BN_EPSILON }, name);
    this.b.keras('BatchNormalization', name, [x.name], out);
    return { ...x, name: out };
  }

  /** Activation('relu'). */
  relu(x: T4, name?: string): T4 {
    const n = name ?? this.autoName('Activation');
    const out = this.b.op('Relu', [x.name], {}, n);
    this.b.keras('Activation', n, [x.name], out);
    return { ...x, name: out };
  }

  maxPool(x: T4, pool: Size2, strides: Size2, padding: Padding = 'valid', name?: string): T4 {
    return this.pool('MaxPooling2D', x, pool, strides, padding, name);
  }

  /** AveragePooling2D: Keras averages over the window's real pixels only, hence count_include_pad 0. */
  avgPool(x: T4, pool: Size2, strides: Size2, padding: Padding = 'valid', name?: string): T4 {
    return this.pool('AveragePooling2D', x, pool, strides, padding, name);
  }

  /** ZeroPadding2D: a constant-zero Pad, which (unlike pooling pads) max pooling does see. */
  zeroPad(x: T4, p: Pads2, name?: string): T4 {
    const n = name ?? this.autoName('ZeroPadding2D');
    const [[t, bo], [l, r]] = p;
    const pads = this.b.int64s(`${n}_pads`, [0, 0, t, l, 0, 0, bo, r]);
    const out = this.b.op('Pad', [x.name, pads], { mode: 'constant' }, n);
    this.b.keras('ZeroPadding2D', n, [x.name], out);
    return { name: out, c: x.c, h: x.h + t + bo, w: x.w + l + r };
  }

  /** Cropping2D: a Slice on the spatial axes. */
  crop(x: T4, p: Pads2, name?: string): T4 {
    const n = name ?? this.autoName('Cropping2D');
    const [[t, bo], [l, r]] = p;
    const h = x.h - t - bo;
    const w = x.w - l - r;
    const starts = this.b.int64s(`${n}_starts`, [t, l]);
    const ends = this.b.int64s(`${n}_ends`, [t + h, l + w]);
    const axes = this.b.int64s(`${n}_axes`, [2, 3]);
    const out = this.b.op('Slice', [x.name, starts, ends, axes], {}, n);
    this.b.keras('Cropping2D', n, [x.name], out);
    return { name: out, c: x.c, h, w };
  }

  /** Concatenate on channels. */
  concat(xs: readonly T4[], name?: string): T4 {
    const n = name ?? this.autoName('Concatenate');
    const ins = xs.map((x) => x.name);
    const out = this.b.op('Concat', ins, { axis: 1 }, n);
    this.b.keras('Concatenate', n, ins, out);
    return { name: out, c: xs.reduce((a, x) => a + x.c, 0), h: xs[0].h, w: xs[0].w };
  }

  /** Add: ONNX Add is binary, so more than two inputs use Sum. */
  add(xs: readonly T4[], name?: string): T4 {
    const n = name ?? this.autoName('Add');
    const ins = xs.map((x) => x.name);
    const out = this.b.op(ins.length === 2 ? 'Add' : 'Sum', ins, {}, n);
    this.b.keras('Add', n, ins, out);
    return { ...xs[0], name: out };
  }

  /**
   * Inception-ResNet's residual scaling, a Keras Lambda computing `x + scale * r`: Mul then Add, the only
   * two-node layer here besides SeparableConv2D and Dense+softmax. A scale of exactly 1 needs no Mul.
   */
  scaledAdd(x: T4, r: T4, scale: number, name?: string): T4 {
    const n = name ?? this.autoName('Lambda');
    const scaled =
      scale === 1 ? r.name : this.b.op('Mul', [r.name, this.b.scalar(`${n}_scale`, scale)], {}, `${n}_mul`);
    const out = this.b.op('Add', [x.name, scaled], {}, n);
    this.b.keras('Lambda', n, [x.name, r.name], out);
    return { ...x, name: out };
  }

  /** GlobalAveragePooling2D as one ReduceMean, which (unlike GlobalAveragePool) already drops H and W. */
  globalAvgPool(x: T4, name?: string): T2 {
    const n = name ?? this.autoName('GlobalAveragePooling2D');
    const out = this.b.op('ReduceMean', [x.name], { axes: [2, 3], keepdims: 0 }, n);
    this.b.keras('GlobalAveragePooling2D', n, [x.name], out);
    return { name: out, units: x.c };
  }

  /**
   * Dense(units, activation='softmax'): Gemm then Softmax, whose output tensor is `output` (the graph's
   * `probs`). The kernel is stored [units, in] (transB) so the builder's He fan-in is the input width.
   */
  denseSoftmax(x: T2, units: number, name: string, output: string): T2 {
    const w = this.b.weight(`${name}_kernel`, [units, x.units], 'he');
    const bias = this.b.weight(`${name}_bias`, [units], 'bias');
    const logits = this.b.op('Gemm', [x.name, w, bias], { transB: 1 }, name);
    const out = this.b.op('Softmax', [logits], { axis: -1 }, output);
    this.b.keras('Dense', name, [x.name], out);
    return { name: out, units };
  }

  private pool(
    kind: 'MaxPooling2D' | 'AveragePooling2D',
    x: T4,
    pool: Size2,
    strides: Size2,
    padding: Padding,
    name?: string,
  ): T4 {
    const n = name ?? this.autoName(kind);
    const [kh, kw] = pair(pool);
    const [sh, sw] = pair(strides);
    const rows = axis(x.h, kh, sh, padding);
    const cols = axis(x.w, kw, sw, padding);
    const attrs: Record<string, number[] | number> = { kernel_shape: [kh, kw], strides: [sh, sw] };
    if (rows.pads.some((p) => p > 0) || cols.pads.some((p) => p > 0))
      attrs.pads = [rows.pads[0], cols.pads[0], rows.pads[1], cols.pads[1]];
    if (kind === 'AveragePooling2D') attrs.count_include_pad = 0;
    const out = this.b.op(kind === 'MaxPooling2D' ? 'MaxPool' : 'AveragePool', [x.name], attrs, n);
    this.b.keras(kind, n, [x.name], out);
    return { name: out, c: x.c, h: rows.out, w: cols.out };
  }
}

/** Class names whose Keras auto-name is not the plain snake case of the class. */
const AUTO_STEMS: Record<string, string> = {
  Conv2D: 'conv2d',
  SeparableConv2D: 'separable_conv2d',
  MaxPooling2D: 'max_pooling2d',
  AveragePooling2D: 'average_pooling2d',
  GlobalAveragePooling2D: 'global_average_pooling2d',
  ZeroPadding2D: 'zero_padding2d',
  Cropping2D: 'cropping2d',
};

function convAttrs(
  k: [number, number],
  s: [number, number],
  rows: [number, number],
  cols: [number, number],
  group: number,
): Record<string, number[] | number> {
  const attrs: Record<string, number[] | number> = {
    kernel_shape: k,
    strides: s,
    pads: [rows[0], cols[0], rows[1], cols[1]],
  };
  if (group !== 1) attrs.group = group;
  return attrs;
}
