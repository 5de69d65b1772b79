/**
 * Segment extraction: nodes `[a, b)` of a model as a standalone ONNX model whose inputs are the frontier at
 * cut `a` and whose outputs are the frontier at cut `b`. A tensor that crosses both cuts passes straight
 * through (a graph input that is also a graph output), so later segments still receive it.
 */
import { CleaveError } from '../errors.js';
import { constantsRead, frontiers, type TensorTypes } from './cuts.js';
import { nodeReads, type OnnxModel } from './model.js';
import { onnx, dtypeInfo, type INodeProto, type IValueInfoProto } from './onnx.js';

export interface SegmentOptions {
  /** Frontiers of every cut, when the caller already has them (saves a sweep per segment). */
  readonly fronts?: readonly (readonly string[])[];
  /**
   * Measured tensor types. Segment inputs and outputs get these concrete shapes when the model's own inputs
   * are fully static; with symbolic model inputs they keep only their element type, so segments stay dynamic.
   */
  readonly types?: TensorTypes;
}

export interface Segment {
  readonly start: number;
  readonly end: number;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly bytes: Uint8Array;
}

export function extractSegment(model: OnnxModel, start: number, end: number, opts: SegmentOptions = {}): Segment {
  const n = model.nodes.length;
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > n || start >= end)
    throw new CleaveError(
      'E_BAD_CUT',
      `segment [${start}, ${end}) is not a non-empty range within 0..${n} of ${model.source}`,
    );
  const fronts = opts.fronts ?? frontiers(model);
  const inputs = [...fronts[start]];
  const outputs = [...fronts[end]];
  // Graph outputs that are constants never cross a cut: the last segment computes them itself.
  if (end === n) for (const o of model.outputs) if (model.isConstant(o.name)) outputs.push(o.name);

  const computeProtos = model.nodes.slice(start, end).map((x) => x.proto);
  const constNames = constantsRead(model, start, end);
  const constNodes = constNodesFor(model, start, end, end === n ? model.outputs.map((o) => o.name) : []);
  for (const cn of constNodes) for (const r of cn.input ?? []) if (r && model.initializers.has(r)) constNames.add(r);
  if (end === n) for (const o of model.outputs) if (model.initializers.has(o.name)) constNames.add(o.name);
  const initializers = [...model.initializers.values()].filter((t) => constNames.has(t.name ?? ''));

  const staticModel = model.inputs.every((i) => i.dims?.every((d) => typeof d === 'number'));
  const decl = (name: string): IValueInfoProto => valueInfoFor(model, name, opts.types, staticModel);

  const inner = new Set<string>();
  for (const p of [...constNodes, ...computeProtos]) for (const o of p.output ?? []) if (o) inner.add(o);
  const valueInfo = (model.graph.valueInfo ?? []).filter(
    (v) => v.name && inner.has(v.name) && !outputs.includes(v.name),
  );

  const graphInputs = inputs.map(decl);
  const ir = Number(model.proto.irVersion ?? 0);
  // Before IR 4, every initializer had to be listed as a graph input too.
  if (ir > 0 && ir < 4)
    for (const t of initializers) {
      const v = model.valueInfo.get(t.name ?? '');
      if (v) graphInputs.push(v);
    }

  const proto = onnx.ModelProto.create({
    irVersion: model.proto.irVersion,
    opsetImport: model.proto.opsetImport,
    producerName: model.proto.producerName,
    producerVersion: model.proto.producerVersion,
    domain: model.proto.domain,
    modelVersion: model.proto.modelVersion,
    graph: {
      name: `${model.name}[${start}:${end}]`,
      node: [...constNodes, ...computeProtos],
      initializer: initializers,
      input: graphInputs,
      output: outputs.map(decl),
      valueInfo,
    },
    metadataProps: [{ key: 'cleave.segment', value: JSON.stringify({ model: model.sha256, start, end }) }],
  });
  return { start, end, inputs, outputs, bytes: onnx.ModelProto.encode(proto).finish() };
}

/** Constant-computing nodes whose outputs the segment reads (transitively), in file order. */
function constNodesFor(model: OnnxModel, start: number, end: number, extra: readonly string[]): INodeProto[] {
  const need = new Set<INodeProto>();
  const visit = (t: string): void => {
    const p = model.constProducers.get(t);
    if (!p || need.has(p)) return;
    need.add(p);
    for (const r of p.input ?? []) if (r) visit(r);
  };
  for (let i = start; i < end; i++) for (const r of nodeReads(model.nodes[i].proto)) visit(r);
  for (const t of extra) visit(t);
  return (model.graph.node ?? []).filter((p) => need.has(p));
}

function valueInfoFor(
  model: OnnxModel,
  name: string,
  types: TensorTypes | undefined,
  staticModel: boolean,
): IValueInfoProto {
  const measured = types?.get(name);
  if (measured && staticModel) {
    return {
      name,
      type: {
        tensorType: {
          elemType: onnxElemType(measured.dtype),
          shape: { dim: measured.dims.map((d) => ({ dimValue: d })) },
        },
      },
    };
  }
  const declared = model.valueInfo.get(name);
  if (declared?.type?.tensorType?.elemType) return declared;
  if (measured) return { name, type: { tensorType: { elemType: onnxElemType(measured.dtype) } } };
  throw new CleaveError(
    'E_INTERNAL',
    `tensor '${name}' crosses a cut but its type is unknown; measure tensor types first`,
  );
}

function onnxElemType(dtype: Parameters<typeof dtypeInfo>[0]): number {
  return dtypeInfo(dtype).id;
}
