/**
 * In-process ONNX Runtime helpers for the command-line tools (inspect, verify, profile), which run one
 * thing at a time and have no event loop to protect. Servers use the worker-thread executor instead.
 */
import ort from 'onnxruntime-node';
import { CleaveError, errorMessage } from '../../errors.js';
import { ortSessionOptions } from '../executor/ort-options.js';
import type { TensorType } from '../../graph/cuts.js';
import type { OnnxModel } from '../../graph/model.js';
import type { InputSpec } from '../../graph/shapes.js';
import { onnx, dtypeInfo, isDType } from '../../graph/onnx.js';
import { TYPED_ARRAY, type Dtype } from '../../transport/dtype.js';

export type Feeds = Record<string, ort.Tensor>;

/** The element types `makeFeeds` generates (with the wire's typed arrays): floats random, the rest zeros. */
const GENERATED: ReadonlySet<string> = new Set(['float32', 'float64', 'int64', 'int32', 'uint8', 'int8', 'bool']);

export interface LocalSessionOptions {
  /** ORT intra-op threads; 0 lets ORT choose. */
  readonly intraOpThreads?: number;
  /** A label for errors: the file or segment the bytes came from. */
  readonly source?: string;
}

export async function createSession(bytes: Uint8Array, opts: LocalSessionOptions = {}): Promise<ort.InferenceSession> {
  try {
    return await ort.InferenceSession.create(bytes, ortSessionOptions(opts.intraOpThreads ?? 0));
  } catch (e) {
    throw new CleaveError(
      'E_UNSUPPORTED',
      `${opts.source ?? 'model'}: ONNX Runtime cannot load it: ${firstLine(errorMessage(e))}`,
    );
  }
}

export async function runSession(session: ort.InferenceSession, feeds: Feeds, source = 'model'): Promise<Feeds> {
  try {
    return (await session.run(feeds)) as Feeds;
  } catch (e) {
    throw new CleaveError('E_UNSUPPORTED', `${source}: ONNX Runtime failed to run it: ${firstLine(errorMessage(e))}`);
  }
}

/** Deterministic inputs: floats uniform in [0, 1) from `seed`, integers and booleans zero. */
export function makeFeeds(specs: readonly InputSpec[], seed = 7): Feeds {
  let s = seed >>> 0 || 1;
  const rnd = (): number => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
  const feeds: Feeds = {};
  for (const spec of specs) {
    if (!GENERATED.has(spec.dtype)) {
      throw new CleaveError(
        'E_UNSUPPORTED',
        `input '${spec.name}' has element type ${spec.dtype}, which Cleave cannot generate`,
      );
    }
    const data = new TYPED_ARRAY[spec.dtype as Dtype](spec.dims.reduce((a, d) => a * d, 1));
    if (spec.value !== undefined) data.fill((data instanceof BigInt64Array ? BigInt(spec.value) : spec.value) as never);
    else if (spec.dtype === 'float32' || spec.dtype === 'float64')
      for (let i = 0; i < data.length; i++) data[i] = rnd();
    feeds[spec.name] = new ort.Tensor(spec.dtype as Dtype, data as Float32Array, spec.dims);
  }
  return feeds;
}

/** The model with every non-constant intermediate tensor added as a graph output. */
function exposeIntermediates(model: OnnxModel): Uint8Array {
  const existing = new Set((model.graph.output ?? []).map((o) => o.name));
  // Not the values that are not tensors (sequences, maps, optionals): ORT cannot return those to JavaScript.
  const extra = [...model.producerOf.keys()]
    .filter((t) => !existing.has(t) && !model.nonTensors.has(t))
    .map((name) => ({ name }));
  const proto = onnx.ModelProto.create({
    ...model.proto,
    graph: { ...model.graph, output: [...(model.graph.output ?? []), ...extra] },
  });
  return onnx.ModelProto.encode(proto).finish();
}

/** Runs the model once with every intermediate exposed; returns all tensor values (inputs included). */
export async function runAllTensors(model: OnnxModel, feeds: Feeds, opts: LocalSessionOptions = {}): Promise<Feeds> {
  const session = await createSession(exposeIntermediates(model), { ...opts, source: model.source });
  try {
    const out = await runSession(session, feeds, model.source);
    return { ...feeds, ...out };
  } finally {
    await session.release();
  }
}

/** Concrete type and byte size of every tensor in a set of values. */
export function typesOf(values: Feeds): Map<string, TensorType> {
  const types = new Map<string, TensorType>();
  for (const [name, t] of Object.entries(values)) {
    if (!isDType(t.type))
      throw new CleaveError(
        'E_UNSUPPORTED',
        `tensor '${name}' has element type ${t.type}, which Cleave does not carry`,
      );
    const dims = [...t.dims];
    const bytes = t.type === 'string' ? 0 : dims.reduce((a, d) => a * d, 1) * dtypeInfo(t.type).bytes;
    types.set(name, { dtype: t.type, dims, bytes });
  }
  return types;
}

/** Measures every tensor's type for the given input shapes (one run of the model). */
export async function measureTypes(
  model: OnnxModel,
  specs: readonly InputSpec[],
  opts: LocalSessionOptions = {},
): Promise<Map<string, TensorType>> {
  return typesOf(await runAllTensors(model, makeFeeds(specs), opts));
}

function firstLine(s: string): string {
  return s.split('\n')[0].slice(0, 500);
}
