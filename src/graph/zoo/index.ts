/** The model zoo: every architecture Cleave can build, by name. */
import type { ZooEntry } from './types.js';
import { MODELS as VGG } from './vgg.js';
import { MODELS as RESNET } from './resnet.js';
import { MODELS as MOBILENET } from './mobilenet.js';
import { MODELS as DENSENET } from './densenet.js';
import { MODELS as INCEPTION } from './inception.js';
import { MODELS as XCEPTION } from './xception.js';
import { MODELS as NASNET } from './nasnet.js';

export type { ZooEntry, ZooOptions } from './types.js';
export { GraphBuilder, KERAS_LAYERS_KEY } from './builder.js';

export const ZOO: readonly ZooEntry[] = [
  ...VGG,
  ...RESNET,
  ...MOBILENET,
  ...DENSENET,
  ...INCEPTION,
  ...XCEPTION,
  ...NASNET,
];

export function zooEntry(name: string): ZooEntry | undefined {
  const key = name.toLowerCase().replace(/[-_]/g, '');
  return ZOO.find((e) => e.name === key);
}
