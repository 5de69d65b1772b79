/**
 * VGG16 and VGG19 as keras/applications/vgg16.py and vgg19.py build them: five blocks of 3x3 'same' Conv2D
 * with a fused ReLU (two ONNX nodes per Keras layer), each ending in a 2x2 max pool, then Flatten and three
 * Dense layers.
 */
import type { GraphBuilder } from './builder.js';
import type { ZooEntry, ZooOptions } from './types.js';
import {
  conv2d,
  dense,
  finishModel,
  flatten,
  maxPool2d,
  SMALL_CLASSES,
  SMALL_INPUT,
  startModel,
  widths,
} from './layers.js';

/** Convolutions per block: VGG16 has [2, 2, 3, 3, 3], VGG19 [2, 2, 4, 4, 4]. */
function vgg(name: string, convs: readonly number[], opts: ZooOptions = {}): GraphBuilder {
  const ch = widths(opts.small, 8);
  const { b, x: input } = startModel(name, opts.small ? SMALL_INPUT : 224, opts);
  const classes = opts.small ? SMALL_CLASSES : 1000;
  const filters = [64, 128, 256, 512, 512];
  let x = input;
  convs.forEach((n, i) => {
    for (let j = 1; j <= n; j++) {
      x = conv2d(b, x, {
        filters: ch(filters[i]),
        kernel: 3,
        padding: 'same',
        activation: 'relu',
        name: `block${i + 1}_conv${j}`,
      });
    }
    x = maxPool2d(b, x, { pool: 2, strides: 2, name: `block${i + 1}_pool` });
  });
  x = flatten(b, x, 'flatten');
  x = dense(b, x, { units: ch(4096), activation: 'relu', name: 'fc1' });
  x = dense(b, x, { units: ch(4096), activation: 'relu', name: 'fc2' });
  x = dense(b, x, { units: classes, activation: 'softmax', name: 'predictions', output: 'probs' });
  return finishModel(b, x);
}

export const MODELS: ZooEntry[] = [
  {
    name: 'vgg16',
    kerasName: 'VGG16',
    kerasParams: 138_357_544,
    inputSize: 224,
    build: (o) => vgg('vgg16', [2, 2, 3, 3, 3], o),
  },
  {
    name: 'vgg19',
    kerasName: 'VGG19',
    kerasParams: 143_667_240,
    inputSize: 224,
    build: (o) => vgg('vgg19', [2, 2, 4, 4, 4], o),
  },
];
