/**
 * NASNetMobile and NASNetLarge as in keras/applications/nasnet.py (NASNet-A): normal and reduction cells
 * over two inputs (the previous cell's output `x` and the one before, `p`), stride-2 separable convs fed
 * through explicit ZeroPadding2D (imagenet_utils.correct_pad), and the adjust block that brings `p` to
 * `x`'s size by two offset 1x1 stride-2 average-pool paths.
 */
import { GraphBuilder } from './builder.js';
import { KerasNet, type Pads2, type T4 } from './layers-b.js';
import type { ZooEntry, ZooOptions } from './types.js';

interface NasnetConfig {
  readonly penultimateFilters: number;
  readonly numBlocks: number;
  readonly stemFilters: number;
  readonly skipReduction: boolean;
  readonly filterMultiplier: number;
}

const MOBILE: NasnetConfig = {
  penultimateFilters: 1056,
  numBlocks: 4,
  stemFilters: 32,
  skipReduction: false,
  filterMultiplier: 2,
};
const LARGE: NasnetConfig = {
  penultimateFilters: 4032,
  numBlocks: 6,
  stemFilters: 96,
  skipReduction: true,
  filterMultiplier: 2,
};

/**
 * Small variants: penultimate filters 384 (cells of 16, 32, 64 filters; the first stem cell 4, the
 * smallest allowed) and stem filters / 8. Same cells and depth. A 64x64 input passes through
 * 31, 16, 8, 4, 2 — odd and even sizes, so both correct_pad cases are exercised.
 */
const SMALL_PENULTIMATE = 384;
const SMALL_STEM_DIVISOR = 8;
const SMALL_INPUT = 64;
const SMALL_CLASSES = 10;

/** The adjust block's second path: pad bottom/right, crop top/left, i.e. shift the image by one pixel. */
const SHIFT_PAD: Pads2 = [
  [0, 1],
  [0, 1],
];
const SHIFT_CROP: Pads2 = [
  [1, 0],
  [1, 0],
];

/** imagenet_utils.correct_pad: TF-'same'-like padding for a following 'valid' stride-2 window. */
function correctPad(x: T4, kernel: number): Pads2 {
  const c = Math.floor(kernel / 2);
  return [
    [c - (1 - (x.h % 2)), c],
    [c - (1 - (x.w % 2)), c],
  ];
}

class Nasnet {
  constructor(private readonly k: KerasNet) {}

  /** _separable_conv_block: twice [relu, separable conv, BN]; a stride-2 first conv is zero-padded, 'valid'. */
  sepBlock(ip: T4, filters: number, kernel: number, strides: 1 | 2, id: string): T4 {
    const k = this.k;
    let x = k.relu(ip);
    if (strides === 2) x = k.zeroPad(x, correctPad(x, kernel), `separable_conv_1_pad_${id}`);
    x = k.separableConv2d(x, filters, kernel, {
      strides,
      padding: strides === 2 ? 'valid' : 'same',
      useBias: false,
      name: `separable_conv_1_${id}`,
    });
    x = k.batchNorm(x, { name: `separable_conv_1_bn_${id}` });
    x = k.relu(x);
    x = k.separableConv2d(x, filters, kernel, { padding: 'same', useBias: false, name: `separable_conv_2_${id}` });
    return k.batchNorm(x, { name: `separable_conv_2_bn_${id}` });
  }

  /** _adjust_block: bring `p` to `ip`'s spatial size (factorised reduction) or to `filters` channels. */
  adjust(p: T4 | undefined, ip: T4, filters: number, id: string): T4 {
    const k = this.k;
    if (p === undefined) return ip;
    if (p.w !== ip.w) {
      const r = k.relu(p, `adjust_relu_1_${id}`);
      let p1 = k.avgPool(r, 1, 2, 'valid', `adjust_avg_pool_1_${id}`);
      p1 = k.conv2d(p1, Math.floor(filters / 2), 1, { padding: 'same', useBias: false, name: `adjust_conv_1_${id}` });
      // Shifted by one pixel, the second stride-2 path samples the pixels the first one skips.
      let p2 = k.crop(k.zeroPad(r, SHIFT_PAD), SHIFT_CROP);
      p2 = k.avgPool(p2, 1, 2, 'valid', `adjust_avg_pool_2_${id}`);
      p2 = k.conv2d(p2, Math.floor(filters / 2), 1, { padding: 'same', useBias: false, name: `adjust_conv_2_${id}` });
      return k.batchNorm(k.concat([p1, p2]), { name: `adjust_bn_${id}` });
    }
    if (p.c !== filters) {
      const r = k.relu(p);
      const c = k.conv2d(r, filters, 1, { padding: 'same', useBias: false, name: `adjust_conv_projection_${id}` });
      return k.batchNorm(c, { name: `adjust_bn_${id}` });
    }
    return p;
  }

  /** relu, 1x1 conv, BN: the `h` both cells start from. */
  private squeeze(ip: T4, filters: number, kind: 'normal' | 'reduction', id: string): T4 {
    const k = this.k;
    const c = k.conv2d(k.relu(ip), filters, 1, { padding: 'same', useBias: false, name: `${kind}_conv_1_${id}` });
    return k.batchNorm(c, { name: `${kind}_bn_1_${id}` });
  }

  /** _normal_a_cell; returns [x, ip] as Keras does (the new `x` and the next cell's `p`). */
  normal(ip: T4, pIn: T4 | undefined, filters: number, id: string): [T4, T4] {
    const k = this.k;
    const p = this.adjust(pIn, ip, filters, id);
    const h = this.squeeze(ip, filters, 'normal', id);
    const x1 = k.add(
      [this.sepBlock(h, filters, 5, 1, `normal_left1_${id}`), this.sepBlock(p, filters, 3, 1, `normal_right1_${id}`)],
      `normal_add_1_${id}`,
    );
    const x2 = k.add(
      [this.sepBlock(p, filters, 5, 1, `normal_left2_${id}`), this.sepBlock(p, filters, 3, 1, `normal_right2_${id}`)],
      `normal_add_2_${id}`,
    );
    const x3 = k.add([k.avgPool(h, 3, 1, 'same', `normal_left3_${id}`), p], `normal_add_3_${id}`);
    const x4 = k.add(
      [k.avgPool(p, 3, 1, 'same', `normal_left4_${id}`), k.avgPool(p, 3, 1, 'same', `normal_right4_${id}`)],
      `normal_add_4_${id}`,
    );
    const x5 = k.add([this.sepBlock(h, filters, 3, 1, `normal_left5_${id}`), h], `normal_add_5_${id}`);
    return [k.concat([p, x1, x2, x3, x4, x5], `normal_concat_${id}`), ip];
  }

  /** _reduction_a_cell; returns [x, ip]. Pools read `h3`, `h` zero-padded by correct_pad (pads are real zeros). */
  reduction(ip: T4, pIn: T4 | undefined, filters: number, id: string): [T4, T4] {
    const k = this.k;
    const p = this.adjust(pIn, ip, filters, id);
    const h = this.squeeze(ip, filters, 'reduction', id);
    const h3 = k.zeroPad(h, correctPad(h, 3), `reduction_pad_1_${id}`);
    const x1 = k.add(
      [
        this.sepBlock(h, filters, 5, 2, `reduction_left1_${id}`),
        this.sepBlock(p, filters, 7, 2, `reduction_right1_${id}`),
      ],
      `reduction_add_1_${id}`,
    );
    const x2 = k.add(
      [
        k.maxPool(h3, 3, 2, 'valid', `reduction_left2_${id}`),
        this.sepBlock(p, filters, 7, 2, `reduction_right2_${id}`),
      ],
      `reduction_add_2_${id}`,
    );
    const x3 = k.add(
      [
        k.avgPool(h3, 3, 2, 'valid', `reduction_left3_${id}`),
        this.sepBlock(p, filters, 5, 2, `reduction_right3_${id}`),
      ],
      `reduction_add3_${id}`,
    );
    const x4 = k.add([x2, k.avgPool(x1, 3, 1, 'same', `reduction_left4_${id}`)]);
    const x5 = k.add(
      [
        this.sepBlock(x1, filters, 3, 1, `reduction_left4_${id}`),
        k.maxPool(h3, 3, 2, 'valid', `reduction_right5_${id}`),
      ],
      `reduction_add4_${id}`,
    );
    return [k.concat([x2, x3, x4, x5], `reduction_concat_${id}`), ip];
  }
}

function buildNasnet(name: string, fullSize: number, full: NasnetConfig, opts: ZooOptions): GraphBuilder {
  const small = opts.small === true;
  const cfg = small
    ? { ...full, penultimateFilters: SMALL_PENULTIMATE, stemFilters: full.stemFilters / SMALL_STEM_DIVISOR }
    : full;
  const classes = small ? SMALL_CLASSES : 1000;
  const b = new GraphBuilder(small ? `${name}-small` : name, opts.seed ?? 1, 13, { weights: opts.weights });
  const k = new KerasNet(b);
  const cells = new Nasnet(k);
  const fm = cfg.filterMultiplier;
  const n = cfg.numBlocks;
  const filters = cfg.penultimateFilters / 24;

  let x = k.conv2d(k.input(small ? SMALL_INPUT : fullSize), cfg.stemFilters, 3, {
    strides: 2,
    padding: 'valid',
    useBias: false,
    name: 'stem_conv1',
  });
  x = k.batchNorm(x, { name: 'stem_bn1' });

  let p: T4 | undefined;
  [x, p] = cells.reduction(x, p, Math.floor(filters / fm ** 2), 'stem_1');
  [x, p] = cells.reduction(x, p, Math.floor(filters / fm), 'stem_2');
  for (let stage = 0; stage < 3; stage++) {
    if (stage > 0) {
      let p0: T4;
      [x, p0] = cells.reduction(x, p, filters * fm ** stage, `reduce_${stage * n}`);
      // NASNetLarge keeps feeding the cell before the reduction as `p` (skip_reduction).
      if (!cfg.skipReduction) p = p0;
    }
    for (let i = 0; i < n; i++)
      [x, p] = cells.normal(x, p, filters * fm ** stage, `${stage * n + (stage > 0 ? 1 : 0) + i}`);
  }
  x = k.relu(x);

  const probs = k.denseSoftmax(k.globalAvgPool(x), classes, 'predictions', 'probs');
  b.output(probs.name, [1, classes]);
  return b;
}

export const MODELS: ZooEntry[] = [
  {
    name: 'nasnetmobile',
    kerasName: 'NASNetMobile',
    kerasParams: 5_326_716,
    inputSize: 224,
    build: (o = {}) => buildNasnet('nasnetmobile', 224, MOBILE, o),
  },
  {
    name: 'nasnetlarge',
    kerasName: 'NASNetLarge',
    kerasParams: 88_949_818,
    inputSize: 331,
    build: (o = {}) => buildNasnet('nasnetlarge', 331, LARGE, o),
  },
];
