/**
 * An ONNX model read into a DAG: compute nodes in a chosen topological order, the tensors between them,
 * and the constants (initializers, `Constant` nodes and anything computed only from constants), which are
 * weights rather than traffic: a segment carries its own copy of every constant it reads.
 */
import { createHash } from 'node:crypto';
import { CleaveError, errorMessage } from '../errors.js';
import {
  onnx,
  toNum,
  dtypeFromOnnx,
  tensorProtoBytes,
  tensorProtoElements,
  type DType,
  type IGraphProto,
  type INodeProto,
  type ITensorProto,
  type IValueInfoProto,
  type ModelProto,
} from './onnx.js';
import { chooseOrder } from './order.js';

/** A declared graph input or output. `dims` entries are numbers or symbolic names (`batch`, `?`). */
export interface TensorDecl {
  readonly name: string;
  readonly dtype: DType | undefined;
  readonly dims: (number | string)[] | undefined;
}

/** A compute node: `deps` are the non-constant tensors it reads, including outer-scope reads of subgraphs. */
interface GraphNode {
  /** Index in the original `graph.node` list. */
  readonly protoIndex: number;
  readonly name: string;
  readonly opType: string;
  readonly proto: INodeProto;
  readonly deps: readonly string[];
  readonly outputs: readonly string[];
}

const RANDOM_OPS = new Set([
  'RandomNormal',
  'RandomUniform',
  'RandomNormalLike',
  'RandomUniformLike',
  'Multinomial',
  'Bernoulli',
]);
const CONTROL_FLOW = new Set(['If', 'Loop', 'Scan']);

export class OnnxModel {
  /** Compute nodes in execution order; cut `p` lies before `nodes[p]`. */
  readonly nodes: readonly GraphNode[];
  /** Graph inputs that are not initializers, i.e. what a caller must feed. */
  readonly inputs: readonly TensorDecl[];
  readonly outputs: readonly TensorDecl[];
  /** Initializers by name. */
  readonly initializers: ReadonlyMap<string, ITensorProto>;
  /** Nodes that compute constants (Constant, or only constant inputs), by output tensor name. */
  readonly constProducers: ReadonlyMap<string, INodeProto>;
  /** Producer position (in `nodes`) of each non-constant tensor; graph inputs are absent. */
  readonly producerOf: ReadonlyMap<string, number>;
  /** Last consuming position of each non-constant tensor; graph outputs count as consumed at `nodes.length`. */
  readonly lastUse: ReadonlyMap<string, number>;
  /** Declared types by tensor name, from graph inputs, outputs and value_info. */
  readonly valueInfo: ReadonlyMap<string, IValueInfoProto>;

  private constructor(
    readonly proto: ModelProto,
    readonly sha256: string,
    /** The file as read (initializer data are views into it, so keeping it costs nothing extra). */
    readonly bytes: Uint8Array,
    readonly source: string,
  ) {
    const graph = proto.graph;
    if (!graph) throw new CleaveError('E_BAD_MODEL', `${source}: the model has no graph`);
    const inits = new Map<string, ITensorProto>();
    for (const t of graph.initializer ?? []) if (t.name) inits.set(t.name, t);
    this.initializers = inits;

    const vi = new Map<string, IValueInfoProto>();
    for (const v of [...(graph.valueInfo ?? []), ...(graph.input ?? []), ...(graph.output ?? [])])
      if (v.name) vi.set(v.name, v);
    this.valueInfo = vi;
    this.inputs = (graph.input ?? []).filter((v) => v.name && !inits.has(v.name)).map(declOf);
    this.outputs = (graph.output ?? []).map(declOf);
    if (this.outputs.length === 0) throw new CleaveError('E_BAD_MODEL', `${source}: the graph has no outputs`);

    // Constants: initializers, then every node with no random output whose inputs are all constants.
    const constant = new Set<string>(inits.keys());
    const constProducers = new Map<string, INodeProto>();
    const inputNames = new Set(this.inputs.map((i) => i.name));
    const compute: { proto: INodeProto; protoIndex: number; deps: string[] }[] = [];
    (graph.node ?? []).forEach((n, protoIndex) => {
      const reads = nodeReads(n);
      const isConst =
        !RANDOM_OPS.has(n.opType ?? '') &&
        !CONTROL_FLOW.has(n.opType ?? '') &&
        (n.output ?? []).length > 0 &&
        reads.every((r) => constant.has(r) && !inputNames.has(r));
      if (isConst) {
        for (const o of n.output ?? [])
          if (o) {
            constant.add(o);
            constProducers.set(o, n);
          }
      } else {
        compute.push({ proto: n, protoIndex, deps: reads.filter((r) => !constant.has(r) || inputNames.has(r)) });
      }
    });
    this.constProducers = constProducers;

    // Every dependency must be produced somewhere: a graph input or a compute node's output.
    const produced = new Set<string>(inputNames);
    for (const c of compute) for (const o of c.proto.output ?? []) if (o) produced.add(o);
    for (const c of compute)
      for (const d of c.deps)
        if (!produced.has(d))
          throw new CleaveError(
            'E_BAD_MODEL',
            `${source}: node '${c.proto.name || c.proto.opType}' reads '${d}', which nothing produces`,
          );
    for (const o of this.outputs)
      if (!produced.has(o.name) && !constant.has(o.name))
        throw new CleaveError('E_BAD_MODEL', `${source}: graph output '${o.name}' is not produced by any node`);

    const order = chooseOrder(
      compute.map((c) => ({ deps: c.deps, outputs: (c.proto.output ?? []).filter((o) => o) })),
      this.outputs.map((o) => o.name),
      source,
    );
    this.nodes = order.map((i) => {
      const c = compute[i];
      return {
        protoIndex: c.protoIndex,
        name: c.proto.name || `${c.proto.opType}_${c.protoIndex}`,
        opType: c.proto.opType ?? '',
        proto: c.proto,
        deps: c.deps,
        outputs: (c.proto.output ?? []).filter((o) => o),
      };
    });

    const producerOf = new Map<string, number>();
    const lastUse = new Map<string, number>();
    this.nodes.forEach((n, p) => {
      for (const o of n.outputs) producerOf.set(o, p);
      for (const d of n.deps) lastUse.set(d, Math.max(lastUse.get(d) ?? -1, p));
    });
    for (const o of this.outputs) if (!constant.has(o.name)) lastUse.set(o.name, this.nodes.length);
    this.producerOf = producerOf;
    this.lastUse = lastUse;
  }

  /** Parses ONNX bytes. Anything that is not a readable ONNX model is an E_BAD_MODEL naming `source`. */
  static fromBytes(bytes: Uint8Array, source = 'model'): OnnxModel {
    let proto: ModelProto;
    try {
      proto = onnx.ModelProto.decode(bytes);
    } catch (e) {
      throw new CleaveError(
        'E_BAD_MODEL',
        `${source}: not a valid ONNX file (${decodeProblem(errorMessage(e), bytes.length)})`,
      );
    }
    if (!proto.graph || (proto.graph.node ?? []).length === 0)
      throw new CleaveError('E_BAD_MODEL', `${source}: not a valid ONNX file (no graph or no nodes)`);
    if ((proto.opsetImport ?? []).length === 0)
      throw new CleaveError('E_BAD_MODEL', `${source}: not a valid ONNX file (no opset import)`);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    return new OnnxModel(proto, sha256, bytes, source);
  }

  get name(): string {
    return this.proto.graph?.name || 'model';
  }

  get graph(): IGraphProto {
    return this.proto.graph as IGraphProto;
  }

  /** Opset version of the default ONNX domain. */
  get opset(): number {
    const d = (this.proto.opsetImport ?? []).find((o) => !o.domain || o.domain === 'ai.onnx');
    return toNum(d?.version);
  }

  /** Total nodes in the file, constant-producing ones included. */
  get nodeCount(): number {
    return (this.graph.node ?? []).length;
  }

  /** Tensors stored in the file: initializers and `Constant` node values (exporters such as Paddle2ONNX use the latter). */
  storedTensors(): ITensorProto[] {
    const out = [...this.initializers.values()];
    for (const n of this.graph.node ?? []) out.push(...nodeStoredTensors(n));
    return out;
  }

  /** Elements of every stored tensor, the usual "parameter" count. */
  get parameterCount(): number {
    return this.storedTensors().reduce((a, t) => a + tensorProtoElements(t), 0);
  }

  get weightBytes(): number {
    return this.storedTensors().reduce((a, t) => a + tensorProtoBytes(t), 0);
  }

  /**
   * Values that are not tensors: sequences, maps and optionals, as declared (graph outputs, value_info,
   * subgraph outputs of an If or Loop) or as produced by the ops that make them. ORT cannot return them to
   * JavaScript and no frame can carry them.
   */
  get nonTensors(): ReadonlySet<string> {
    if (!this.#nonTensors) this.#nonTensors = nonTensorValues(this.graph);
    return this.#nonTensors;
  }

  #nonTensors: ReadonlySet<string> | undefined;

  /** Whether a tensor name is a constant (initializer or computed only from constants). */
  isConstant(name: string): boolean {
    return this.initializers.has(name) || this.constProducers.has(name);
  }

  /** Metadata property by key. */
  metadata(key: string): string | undefined {
    return (this.proto.metadataProps ?? []).find((p) => p.key === key)?.value ?? undefined;
  }
}

/** Ops whose outputs are sequences, maps or optionals, not tensors. */
const NON_TENSOR_OPS: ReadonlySet<string> = new Set([
  'SequenceConstruct',
  'SequenceEmpty',
  'SequenceInsert',
  'SequenceErase',
  'SplitToSequence',
  'SequenceMap',
  'Optional',
  'ZipMap',
]);

function isNonTensorType(v: IValueInfoProto): boolean {
  const t = v.type;
  return !!t && !t.tensorType && !!(t.sequenceType || t.mapType || t.optionalType);
}

function nonTensorValues(g: IGraphProto): Set<string> {
  const out = new Set<string>();
  for (const v of [...(g.valueInfo ?? []), ...(g.output ?? []), ...(g.input ?? [])])
    if (v.name && isNonTensorType(v)) out.add(v.name);
  for (const n of g.node ?? []) {
    const outputs = n.output ?? [];
    if (NON_TENSOR_OPS.has(n.opType ?? '')) for (const o of outputs) if (o) out.add(o);
    // Control flow: an output whose subgraph declares it a sequence or optional (If: branch outputs in
    // order; Loop: the body's outputs after its condition).
    for (const a of n.attribute ?? [])
      for (const sub of [a.g, ...(a.graphs ?? [])]) {
        if (!sub) continue;
        const skip = n.opType === 'Loop' ? 1 : 0;
        (sub.output ?? []).forEach((v, i) => {
          const o = outputs[i - skip];
          if (i >= skip && o && isNonTensorType(v)) out.add(o);
        });
      }
  }
  return out;
}

/**
 * Tensors a node itself stores: a `Constant`'s value (with `everyAttribute`, every tensor attribute of any
 * op), and for control flow (If, Loop, Scan) every initializer and such tensor inside its subgraphs, nested
 * ones included.
 */
export function nodeStoredTensors(n: INodeProto, everyAttribute = false): ITensorProto[] {
  const out: ITensorProto[] = [];
  for (const a of n.attribute ?? []) {
    if (everyAttribute) {
      if (a.t) out.push(a.t);
      out.push(...(a.tensors ?? []));
    } else if (n.opType === 'Constant' && a.name === 'value' && a.t) out.push(a.t);
    for (const g of [a.g, ...(a.graphs ?? [])]) if (g) out.push(...graphStoredTensors(g, everyAttribute));
  }
  return out;
}

/** Every tensor a graph stores: its initializers and what its nodes store (`nodeStoredTensors`). */
export function graphStoredTensors(g: IGraphProto, everyAttribute = false): ITensorProto[] {
  const out = [...(g.initializer ?? [])];
  for (const n of g.node ?? []) out.push(...nodeStoredTensors(n, everyAttribute));
  return out;
}

/** Every tensor a node reads: its non-empty inputs plus, for control flow, outer-scope reads of its subgraphs. */
export function nodeReads(n: INodeProto): string[] {
  const reads = new Set<string>();
  for (const i of n.input ?? []) if (i) reads.add(i);
  for (const a of n.attribute ?? []) {
    for (const g of [a.g, ...(a.graphs ?? [])]) if (g) for (const r of outerReads(g)) reads.add(r);
  }
  return [...reads];
}

/** Names a subgraph reads from enclosing scopes: read inside, but not defined inside. */
function outerReads(g: IGraphProto): Set<string> {
  const defined = new Set<string>();
  for (const i of g.input ?? []) if (i.name) defined.add(i.name);
  for (const t of g.initializer ?? []) if (t.name) defined.add(t.name);
  for (const n of g.node ?? []) for (const o of n.output ?? []) if (o) defined.add(o);
  const reads = new Set<string>();
  for (const n of g.node ?? []) for (const r of nodeReads(n)) if (!defined.has(r)) reads.add(r);
  for (const o of g.output ?? []) if (o.name && !defined.has(o.name)) reads.add(o.name);
  return reads;
}

function declOf(v: IValueInfoProto): TensorDecl {
  const tt = v.type?.tensorType;
  const dtype = tt?.elemType ? dtypeFromOnnx(tt.elemType)?.name : undefined;
  const dims = tt?.shape?.dim?.map((d) => {
    if (d.dimParam) return d.dimParam;
    if (d.dimValue !== null && d.dimValue !== undefined) {
      const n = toNum(d.dimValue);
      return n > 0 ? n : '?';
    }
    return '?';
  });
  return { name: v.name ?? '', dtype, dims };
}

/** protobufjs's decode errors in words: a field running past the end means the file was cut short. */
function decodeProblem(message: string, size: number): string {
  const m = /index out of range: (\d+) \+ (\d+) > (\d+)/.exec(message);
  if (m)
    return `it ends early: a ${m[2]}-byte field at byte ${m[1]} runs past the end of its ${size} bytes; is the file truncated?`;
  return message;
}
