/**
 * local/: in-process ORT for the CLI and start-up: model analysis, the profiler, split verification.
 *
 * A model analysed for given input shapes: every tensor's measured type, every cut's frontier and bytes,
 * and the blocks a granularity selects. `inspect`, `split`, `profile` and the hosts all start here.
 */
import {
  allCuts,
  blocksOf,
  selectCuts,
  type Block,
  type Cut,
  type Granularity,
  type TensorTypes,
} from '../../graph/cuts.js';
import type { OnnxModel } from '../../graph/model.js';
import type { InputSpec } from '../../graph/shapes.js';
import { measureTypes } from './ort-local.js';

export interface Analysis {
  readonly model: OnnxModel;
  readonly inputs: readonly InputSpec[];
  readonly types: TensorTypes;
  readonly cuts: readonly Cut[];
  readonly boundaries: readonly number[];
  readonly blocks: readonly Block[];
  readonly inputBytes: number;
  readonly outputBytes: number;
}

export async function analyze(
  model: OnnxModel,
  inputs: readonly InputSpec[],
  granularity: Granularity = {},
): Promise<Analysis> {
  const types = await measureTypes(model, inputs);
  return analysisFrom(model, inputs, types, granularity);
}

function analysisFrom(
  model: OnnxModel,
  inputs: readonly InputSpec[],
  types: TensorTypes,
  granularity: Granularity = {},
): Analysis {
  const cuts = allCuts(model, types);
  const boundaries = selectCuts(cuts, granularity);
  const blocks = blocksOf(model, cuts, boundaries);
  return {
    model,
    inputs,
    types,
    cuts,
    boundaries,
    blocks,
    inputBytes: cuts[0].bytes ?? 0,
    outputBytes: cuts[cuts.length - 1].bytes ?? 0,
  };
}

/**
 * The largest frame a deployment of this model needs: twice its largest frontier (the input, any cut, the
 * output) plus 1 MiB for headers, at least 4 MiB; undefined when a frontier's size is not known. Hosts take
 * it as the transport's `maxFrameBytes` unless the config sets one, so a peer cannot make a host buffer a
 * 256 MiB message for a model whose biggest tensor is a few MB.
 */
export function modelFrameBytes(a: Analysis): number | undefined {
  let most = Math.max(a.inputBytes, a.outputBytes);
  for (const b of a.blocks) {
    if (b.after.bytes === undefined) return undefined;
    most = Math.max(most, b.after.bytes);
  }
  return Math.max(4 * 1024 * 1024, 2 * most + 1024 * 1024);
}
