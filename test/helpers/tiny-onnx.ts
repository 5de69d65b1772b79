/**
 * Tiny hand-written ONNX models for the graph tests, written straight against the protobuf schema so a test
 * can produce what real exporters emit and GraphBuilder never does: int64 tensors, `Constant` nodes,
 * initializers listed as graph inputs, symbolic dimensions, control flow with outer-scope reads, custom
 * domains. Plus running bytes in ORT. No vitest here, so scripts can use it too.
 */
import ort from 'onnxruntime-node';
import {
  onnx,
  dtypeInfo,
  toNum,
  type DType,
  type IAttributeProto,
  type IGraphProto,
  type INodeProto,
  type ITensorProto,
  type IValueInfoProto,
} from '../../src/graph/onnx.js';

export type Dim = number | string;

export interface TensorSpec {
  readonly name: string;
  /** Default float32. */
  readonly dtype?: DType;
  /** Omitted: no shape at all (rank unknown). */
  readonly dims?: readonly Dim[];
}

export type Attr = number | number[] | string | { f: number } | IGraphProto | ITensorProto;

export interface NodeSpec {
  readonly op: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly name?: string;
  readonly domain?: string;
  readonly attrs?: Readonly<Record<string, Attr>>;
}

export interface ModelSpec {
  readonly name?: string;
  readonly inputs: readonly TensorSpec[];
  readonly outputs: readonly TensorSpec[];
  readonly nodes: readonly NodeSpec[];
  readonly inits?: readonly ITensorProto[];
  /** List every initializer as a graph input too, as exporters did before IR 4. */
  readonly initsAsInputs?: boolean;
  readonly valueInfo?: readonly TensorSpec[];
  /** Default 13. */
  readonly opset?: number;
  /** Default 7. */
  readonly irVersion?: number;
  readonly extraOpsets?: readonly { domain: string; version: number }[];
}

export function valueInfo(t: TensorSpec): IValueInfoProto {
  const elemType = dtypeInfo(t.dtype ?? 'float32').id;
  const shape = t.dims
    ? { dim: t.dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) }
    : undefined;
  return { name: t.name, type: { tensorType: { elemType, shape } } };
}

/** A float32 tensor with deterministic values (a smooth, signed pattern) unless `values` is given. */
export function floats(name: string, dims: readonly number[], values?: readonly number[]): ITensorProto {
  const count = dims.reduce((a, d) => a * d, 1);
  const data = Float32Array.from(
    values ?? Array.from({ length: count }, (_, i) => Math.sin(i * 1.7 + name.length) * 0.5),
  );
  return { name, dims: [...dims], dataType: onnx.TensorProto.DataType.FLOAT, rawData: new Uint8Array(data.buffer) };
}

export function int64s(name: string, dims: readonly number[], values: readonly number[]): ITensorProto {
  const data = BigInt64Array.from(values.map((v) => BigInt(v)));
  return { name, dims: [...dims], dataType: onnx.TensorProto.DataType.INT64, rawData: new Uint8Array(data.buffer) };
}

export function attr(name: string, v: Attr): IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof v === 'string') return { name, type: T.STRING, s: new TextEncoder().encode(v) };
  if (Array.isArray(v)) return { name, type: T.INTS, ints: v };
  if (typeof v === 'number') return Number.isInteger(v) ? { name, type: T.INT, i: v } : { name, type: T.FLOAT, f: v };
  if ('f' in v && typeof v.f === 'number') return { name, type: T.FLOAT, f: v.f };
  if ('node' in v) return { name, type: T.GRAPH, g: v as IGraphProto };
  return { name, type: T.TENSOR, t: v as ITensorProto };
}

export function node(n: NodeSpec, index = 0): INodeProto {
  return {
    name: n.name ?? `${n.op.toLowerCase()}_${index}`,
    opType: n.op,
    domain: n.domain,
    input: [...n.inputs],
    output: [...n.outputs],
    attribute: Object.entries(n.attrs ?? {}).map(([k, v]) => attr(k, v)),
  };
}

/** A (sub)graph: the body of an `If` branch, say. */
export function graph(
  name: string,
  spec: Omit<ModelSpec, 'opset' | 'irVersion' | 'extraOpsets' | 'initsAsInputs'>,
): IGraphProto {
  return {
    name,
    node: spec.nodes.map(node),
    initializer: [...(spec.inits ?? [])],
    input: spec.inputs.map(valueInfo),
    output: spec.outputs.map(valueInfo),
    valueInfo: (spec.valueInfo ?? []).map(valueInfo),
  };
}

export function tinyModel(spec: ModelSpec): Uint8Array {
  const g = graph(spec.name ?? 'tiny', spec);
  if (spec.initsAsInputs)
    for (const t of spec.inits ?? [])
      g.input?.push(valueInfo({ name: t.name ?? '', dtype: dtypeOf(t), dims: (t.dims ?? []).map(Number) }));
  const proto = onnx.ModelProto.create({
    irVersion: spec.irVersion ?? 7,
    producerName: 'cleave-test',
    opsetImport: [{ domain: '', version: spec.opset ?? 13 }, ...(spec.extraOpsets ?? [])],
    graph: g,
  });
  return onnx.ModelProto.encode(proto).finish();
}

function dtypeOf(t: ITensorProto): DType {
  return t.dataType === onnx.TensorProto.DataType.INT64 ? 'int64' : 'float32';
}

type Named<T> = T & { name: string };

/** A decoded model with the fields the tests read made non-optional. */
export interface DecodedModel {
  readonly irVersion: number;
  readonly opsetImport: { domain: string; version: number }[];
  readonly graph: {
    readonly name: string;
    readonly node: Named<INodeProto & { opType: string }>[];
    readonly initializer: Named<ITensorProto>[];
    readonly input: Named<IValueInfoProto>[];
    readonly output: Named<IValueInfoProto>[];
    readonly valueInfo: Named<IValueInfoProto>[];
  };
}

/** Decodes model bytes (a segment, say) for inspection. */
export function decode(bytes: Uint8Array): DecodedModel {
  const p = onnx.ModelProto.decode(bytes);
  const g = p.graph ?? onnx.GraphProto.create();
  return {
    irVersion: toNum(p.irVersion),
    opsetImport: p.opsetImport.map((o) => ({ domain: o.domain ?? '', version: toNum(o.version) })),
    graph: {
      name: g.name ?? '',
      node: g.node as DecodedModel['graph']['node'],
      initializer: g.initializer as Named<ITensorProto>[],
      input: g.input as Named<IValueInfoProto>[],
      output: g.output as Named<IValueInfoProto>[],
      valueInfo: g.valueInfo as Named<IValueInfoProto>[],
    },
  };
}

export type Feeds = Record<string, ort.Tensor>;

/** Runs model bytes once in a fresh session (single-threaded, default optimizations). */
export async function runBytes(bytes: Uint8Array, feeds: Feeds): Promise<Feeds> {
  const s = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1 });
  try {
    return (await s.run(feeds)) as Feeds;
  } finally {
    await s.release();
  }
}
