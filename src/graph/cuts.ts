/**
 * Cuts, frontiers and blocks. A cut `p` (0..n) lies before compute node `p` of the model's order; its
 * frontier is every non-constant tensor produced before it (or a graph input) that is read at or after it,
 * or is a graph output. Blocks are the node ranges between consecutive selected cuts.
 */
import { CleaveError } from '../errors.js';
import { nodeReads as readsOf, nodeStoredTensors, type OnnxModel } from './model.js';
import { tensorProtoBytes, type DType, type INodeProto } from './onnx.js';

/** A tensor's concrete type for one set of input shapes. */
export interface TensorType {
  readonly dtype: DType;
  readonly dims: readonly number[];
  readonly bytes: number;
}

export type TensorTypes = ReadonlyMap<string, TensorType>;

export interface Cut {
  /** Position in the execution order: the cut lies before `model.nodes[index]`. */
  readonly index: number;
  readonly tensors: readonly string[];
  /** Frontier bytes (of the tensors measured); undefined when tensor types were not measured. */
  readonly bytes: number | undefined;
  /**
   * Why no segment may end here, when a frontier value cannot travel between hosts: a string tensor (the
   * wire carries numbers and booleans only), or a value that is not a tensor at all (a sequence, a map, an
   * optional). Such a cut is never a block boundary.
   */
  readonly blocked?: { readonly tensor: string; readonly why: string };
}

export interface Block {
  readonly index: number;
  /** Node positions `[start, end)`. */
  readonly start: number;
  readonly end: number;
  /** `firstNode..lastNode`, for people. */
  readonly name: string;
  readonly weightBytes: number;
  /** The cut after this block (for the last block: the graph outputs). */
  readonly after: Cut;
}

/** Which cuts become block boundaries. No limit means every node boundary. */
export interface Granularity {
  /** Only cuts whose frontier holds at most this many tensors. */
  readonly maxTensors?: number;
  /** Only cuts whose frontier holds at most this many bytes (needs tensor types). */
  readonly maxBytes?: number;
}

/** Frontier tensor names for every cut 0..n, in one sweep. */
export function frontiers(model: OnnxModel): string[][] {
  const n = model.nodes.length;
  const born = new Map<string, number>();
  for (const i of model.inputs) born.set(i.name, -1);
  for (const [t, p] of model.producerOf) born.set(t, p);
  const start: string[][] = Array.from({ length: n + 1 }, () => []);
  for (const [t, last] of model.lastUse) {
    const b = born.get(t);
    if (b === undefined) continue;
    // Alive across cuts b+1 .. last.
    for (let p = b + 1; p <= last; p++) start[p].push(t);
  }
  return start.map((ts) => ts.sort(byBirth(born)));
}

function byBirth(born: Map<string, number>): (a: string, b: string) => number {
  return (a, b) => (born.get(a) ?? 0) - (born.get(b) ?? 0) || (a < b ? -1 : a > b ? 1 : 0);
}

/**
 * Every cut 0..n with its frontier and bytes (when `types` is given), and, with types, whether a value on it
 * cannot travel (`blocked`): a string tensor, or one with no measured type because it is not a tensor
 * (`model.nonTensors`: sequences, maps, optionals, which the measuring run does not expose).
 */
export function allCuts(model: OnnxModel, types?: TensorTypes): Cut[] {
  const nonTensors = model.nonTensors;
  return frontiers(model).map((tensors, index) => {
    if (!types) return { index, tensors, bytes: undefined };
    const blocked = blockedBy(tensors, types, nonTensors);
    const known = blocked ? tensors.filter((t) => types.has(t)) : tensors;
    return { index, tensors, bytes: frontierBytes(known, types), ...(blocked ? { blocked } : {}) };
  });
}

function blockedBy(
  tensors: readonly string[],
  types: TensorTypes,
  nonTensors: ReadonlySet<string>,
): Cut['blocked'] | undefined {
  for (const t of tensors) {
    if (nonTensors.has(t) || !types.has(t))
      return { tensor: t, why: `'${t}' is not a tensor (a sequence, map or optional), which no frame can carry` };
    if (types.get(t)?.dtype === 'string')
      return {
        tensor: t,
        why: `'${t}' is a string tensor, which no frame can carry (frames carry numbers and booleans)`,
      };
  }
  return undefined;
}

export function frontierBytes(tensors: readonly string[], types: TensorTypes): number {
  let sum = 0;
  for (const t of tensors) {
    const ty = types.get(t);
    if (!ty) throw new CleaveError('E_INTERNAL', `no measured type for tensor '${t}'`);
    sum += ty.bytes;
  }
  return sum;
}

/** Block boundaries under a granularity: always 0 and n, plus each inner cut within the limits. */
export function selectCuts(cuts: readonly Cut[], g: Granularity = {}): number[] {
  const n = cuts.length - 1;
  const out = [0];
  for (let p = 1; p < n; p++) {
    const c = cuts[p];
    if (c.blocked) continue;
    if (g.maxTensors !== undefined && c.tensors.length > g.maxTensors) continue;
    if (g.maxBytes !== undefined && (c.bytes === undefined || c.bytes > g.maxBytes)) continue;
    out.push(p);
  }
  if (n > 0) out.push(n);
  return out;
}

/** Validates user-given cut positions (strictly inside 0..n, increasing after sorting, no duplicates). */
export function checkCuts(model: OnnxModel, positions: readonly number[], flag = '--cuts'): number[] {
  const n = model.nodes.length;
  const sorted = [...positions].sort((a, b) => a - b);
  for (const p of sorted) {
    if (!Number.isInteger(p) || p < 1 || p >= n)
      throw new CleaveError(
        'E_BAD_CUT',
        `${flag}: cut ${p} is out of range; inner cuts are 1..${n - 1} for ${model.source}`,
      );
  }
  for (let i = 1; i < sorted.length; i++)
    if (sorted[i] === sorted[i - 1]) throw new CleaveError('E_BAD_CUT', `${flag}: cut ${sorted[i]} is given twice`);
  return sorted;
}

/** Blocks between consecutive boundaries (which must include 0 and n). */
export function blocksOf(model: OnnxModel, cuts: readonly Cut[], boundaries: readonly number[]): Block[] {
  const blocks: Block[] = [];
  for (let i = 0; i + 1 < boundaries.length; i++) {
    const start = boundaries[i];
    const end = boundaries[i + 1];
    const first = model.nodes[start].name;
    const last = model.nodes[end - 1].name;
    blocks.push({
      index: i,
      start,
      end,
      name: start + 1 === end ? first : `${first}..${last}`,
      weightBytes: weightBytesOf(model, start, end),
      after: cuts[end],
    });
  }
  return blocks;
}

/**
 * Bytes of the constants nodes `[start, end)` read (initializers, and `Constant` values, directly or through
 * constant-computing nodes), each counted once, plus what the nodes store inside their own subgraphs.
 */
function weightBytesOf(model: OnnxModel, start: number, end: number): number {
  const { initializers, constants } = constantSources(model, start, end);
  let sum = 0;
  for (const name of initializers) {
    const t = model.initializers.get(name);
    if (t) sum += tensorProtoBytes(t);
  }
  for (const producer of constants) for (const t of nodeStoredTensors(producer)) sum += tensorProtoBytes(t);
  for (let p = start; p < end; p++) for (const t of nodeStoredTensors(model.nodes[p].proto)) sum += tensorProtoBytes(t);
  return sum;
}

/** Initializer names read by nodes `[start, end)`, directly or through constant-computing nodes. */
export function constantsRead(model: OnnxModel, start: number, end: number): Set<string> {
  return constantSources(model, start, end).initializers;
}

/**
 * Where the constants nodes `[start, end)` read come from, directly or through constant-computing nodes: the
 * initializers (by name) and the `Constant` nodes.
 */
function constantSources(
  model: OnnxModel,
  start: number,
  end: number,
): { initializers: Set<string>; constants: Set<INodeProto> } {
  const seen = new Set<string>();
  const initializers = new Set<string>();
  const constants = new Set<INodeProto>();
  const visit = (t: string): void => {
    if (seen.has(t)) return;
    seen.add(t);
    if (model.initializers.has(t)) initializers.add(t);
    const producer = model.constProducers.get(t);
    if (!producer) return;
    if (producer.opType === 'Constant') constants.add(producer);
    for (const r of readsOf(producer)) visit(r);
  };
  for (let p = start; p < end; p++) for (const r of readsOf(model.nodes[p].proto)) if (model.isConstant(r)) visit(r);
  return { initializers, constants };
}
