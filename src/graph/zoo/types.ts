import type { GraphBuilder } from './builder.js';

export interface ZooOptions {
  /** Weight seed; weights do not change latency or tensor sizes, only values. Default 1. */
  seed?: number;
  /** A small variant (fewer channels, lower resolution) for fast tests. Its parameter count is not Keras's. */
  small?: boolean;
  /** Build without weight data (parameter counts and graph only; `toBytes()` refuses). */
  weights?: boolean;
}

export interface ZooEntry {
  /** Lower-case name used on the command line and as the file name: `resnet50`, `mobilenetv2`, ... */
  readonly name: string;
  /** The name Keras Applications gives it: `ResNet50`. */
  readonly kerasName: string;
  /** Parameters in the Keras Applications table (full size). */
  readonly kerasParams: number;
  /** Input height = width at full size (224, or 299 for Inception/Xception, 331 for NASNetLarge). */
  readonly inputSize: number;
  /** Builds the model: input `input` NCHW float32 [1, 3, H, W], output `probs` [1, classes] after Softmax. */
  build(opts?: ZooOptions): GraphBuilder;
}
