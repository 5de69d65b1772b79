/**
 * Tensors as they cross the worker boundary: the plain `TensorLike` shape, the typed array each dtype uses,
 * feed checks against a session's declared inputs, and the transfer lists that move buffers instead of
 * copying them. Shared by the executor and its worker, so it imports no ORT and nothing that starts work.
 */
import { CleaveError } from '../../errors.js';
import type { DType } from '../../graph/onnx.js';
import { TYPED_ARRAY, type Dtype, type TensorData, type TypedArrayConstructor } from '../../transport/dtype.js';

export { isDtype as isTensorDType, type TensorData } from '../../transport/dtype.js';

/**
 * ORT element types a tensor may carry across the boundary: the wire's dtypes, which are the graph's less
 * `string` (string tensors are not supported).
 */
export type TensorDType = Dtype;

// Fails to compile if the wire's dtypes and the graph's (less `string`) ever drift apart.
const _sameDtypes: [TensorDType, Exclude<DType, 'string'>] extends [Exclude<DType, 'string'>, TensorDType]
  ? true
  : never = true;

/** A tensor as plain data, structured-clonable. `bool` is carried as Uint8Array, `float16` as Uint16Array. */
export interface TensorLike {
  readonly dtype: TensorDType;
  readonly dims: readonly number[];
  readonly data: TensorData;
}

/** One declared input or output of a session. Strings in `shape` are symbolic dims; -1 is an unnamed one. */
export interface ValueInfo {
  readonly name: string;
  readonly dtype: TensorDType;
  readonly shape: readonly (number | string)[];
}

function fixedDim(d: number | string): number | undefined {
  return typeof d === 'number' && d >= 0 ? d : undefined;
}

const fmt = (dims: readonly (number | string)[]): string => `[${dims.join(',')}]`;

/**
 * Throws E_BAD_INPUT, naming the input, unless `feeds` holds exactly the declared inputs with their dtype,
 * rank, fixed dims and element count. ORT would refuse most of these too, but its messages do not always
 * name the input (a dtype mismatch does not), and a check here costs microseconds.
 */
export function checkFeeds(
  key: string,
  inputs: readonly ValueInfo[],
  feeds: Readonly<Record<string, TensorLike>>,
): void {
  const bad = (msg: string): CleaveError => new CleaveError('E_BAD_INPUT', `session '${key}': ${msg}`);
  for (const name of Object.keys(feeds)) {
    if (!inputs.some((i) => i.name === name)) {
      throw bad(`unknown input '${name}' (inputs: ${inputs.map((i) => i.name).join(', ')})`);
    }
  }
  for (const info of inputs) {
    const t = feeds[info.name];
    if (t === undefined) throw bad(`missing input '${info.name}'`);
    const name = `input '${info.name}'`;
    if (t.dtype !== info.dtype) throw bad(`${name}: dtype ${String(t.dtype)}, expected ${info.dtype}`);
    const Ctor = TYPED_ARRAY[info.dtype];
    if (!(t.data instanceof Ctor)) {
      throw bad(
        `${name}: data is ${t.data?.constructor?.name ?? typeof t.data}, dtype ${info.dtype} needs ${Ctor.name}`,
      );
    }
    if (!Array.isArray(t.dims) || !t.dims.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw bad(`${name}: dims must be non-negative integers, got ${JSON.stringify(t.dims)}`);
    }
    // ORT reports an undeclared shape as [], which a scalar also is: only a non-empty shape fixes the rank.
    if (info.shape.length > 0) {
      if (t.dims.length !== info.shape.length) {
        throw bad(
          `${name}: dims ${fmt(t.dims)} have rank ${t.dims.length}, expected rank ${info.shape.length} ${fmt(info.shape)}`,
        );
      }
      for (let i = 0; i < t.dims.length; i++) {
        const want = fixedDim(info.shape[i]);
        if (want !== undefined && t.dims[i] !== want) {
          throw bad(`${name}: dims ${fmt(t.dims)}, dim ${i} is ${t.dims[i]}, expected ${want} ${fmt(info.shape)}`);
        }
      }
    }
    const count = t.dims.reduce((a, d) => a * d, 1);
    if (t.data.length !== count)
      throw bad(`${name}: data has ${t.data.length} elements, dims ${fmt(t.dims)} need ${count}`);
  }
}

/** Throws E_BAD_INPUT naming the first requested output the session does not have. */
export function checkOutputNames(key: string, outputs: readonly ValueInfo[], wanted: readonly string[]): void {
  for (const name of wanted) {
    if (!outputs.some((o) => o.name === name)) {
      throw new CleaveError(
        'E_BAD_INPUT',
        `session '${key}': unknown output '${name}' (outputs: ${outputs.map((o) => o.name).join(', ')})`,
      );
    }
  }
}

/**
 * Zero-filled feeds of the declared shapes, for warm-up runs. Symbolic dims have no size to use, so they
 * throw E_BAD_INPUT naming the input: the caller must pass warm-up feeds.
 */
export function zeroFeeds(key: string, inputs: readonly ValueInfo[]): Record<string, TensorLike> {
  const feeds: Record<string, TensorLike> = {};
  for (const info of inputs) {
    const dims = info.shape.map(fixedDim);
    if (dims.some((d) => d === undefined)) {
      throw new CleaveError(
        'E_BAD_INPUT',
        `session '${key}': input '${info.name}' has symbolic dims ${fmt(info.shape)}; pass warmupFeeds or warmup: 0`,
      );
    }
    const fixed = dims as number[];
    feeds[info.name] = {
      dtype: info.dtype,
      dims: fixed,
      data: new TYPED_ARRAY[info.dtype](fixed.reduce((a, d) => a * d, 1)),
    };
  }
  return feeds;
}

/**
 * ArrayBuffers that came back from a worker after a run, kept for the next feed copies of the same size:
 * a fresh buffer of a few hundred KB costs page faults and GC pressure that a reused warm one does not
 * (measured: a 600 KB copy takes ~25 us into a warm buffer, ~240 us at p90 into a new one).
 */
export class BufferPool {
  private readonly free = new Map<number, ArrayBuffer[]>();
  private bytes = 0;

  /** At most `maxBytes` in all, and `perSize` buffers of one length (about the runs in flight at once). */
  constructor(
    private readonly maxBytes: number,
    private readonly perSize = 4,
  ) {}

  take(byteLength: number): ArrayBuffer | undefined {
    const b = this.free.get(byteLength)?.pop();
    if (b) this.bytes -= byteLength;
    return b;
  }

  give(b: ArrayBuffer): void {
    if (b.byteLength === 0 || this.bytes + b.byteLength > this.maxBytes) return;
    let list = this.free.get(b.byteLength);
    if (!list) this.free.set(b.byteLength, (list = []));
    if (list.length >= this.perSize) return;
    list.push(b);
    this.bytes += b.byteLength;
  }
}

/** An exact copy of `d`, in a pooled buffer when one of its size is free. */
function copyOf(d: TensorData, pool: BufferPool | undefined): TensorData {
  const buf = pool?.take(d.byteLength);
  if (!buf) return d.slice();
  new Uint8Array(buf).set(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
  return new (d.constructor as TypedArrayConstructor)(buf, 0, d.length);
}

/**
 * Makes `tensors` cheap to post. When the caller gives its buffers up, each distinct ArrayBuffer under the
 * tensors is moved whole, views and offsets intact (so several tensors in one received frame move as one
 * buffer, with no copy); Node copies instead of moving the few buffers it marks untransferable, like its
 * Buffer pool. Otherwise each tensor's bytes are copied exactly once and the copy is moved: structured
 * cloning a view would copy its whole backing buffer, a pooled Buffer's 8 KB slab or a socket's receive
 * buffer. SharedArrayBuffer-backed data is always copied, because ORT does not accept it.
 */
export function packForTransfer(
  tensors: Readonly<Record<string, TensorLike>>,
  giveUp: boolean,
  pool?: BufferPool,
): { tensors: Record<string, TensorLike>; transfer: ArrayBuffer[] } {
  const out: Record<string, TensorLike> = {};
  const transfer: ArrayBuffer[] = [];
  for (const [name, t] of Object.entries(tensors)) {
    const d = t.data;
    if (giveUp && d.buffer instanceof ArrayBuffer) {
      if (!transfer.includes(d.buffer)) transfer.push(d.buffer);
      out[name] = t;
    } else {
      const copy = copyOf(d, pool);
      transfer.push(copy.buffer as ArrayBuffer);
      out[name] = { dtype: t.dtype, dims: t.dims, data: copy };
    }
  }
  return { tensors: out, transfer };
}
