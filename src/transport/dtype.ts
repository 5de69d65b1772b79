/**
 * Tensor element types on the wire, named as onnxruntime's `Tensor.type` strings, and the typed arrays
 * tensors are exposed as.
 */

/** The element types a frame can carry. */
export type Dtype =
  | 'float32'
  | 'float64'
  | 'float16'
  | 'int8'
  | 'uint8'
  | 'int16'
  | 'uint16'
  | 'int32'
  | 'uint32'
  | 'int64'
  | 'uint64'
  | 'bool';

/**
 * The typed arrays tensors are exposed as (what onnxruntime-node's `Tensor` accepts). float16 has no
 * typed array in Node 20 and travels as its raw bits in a Uint16Array; bool is a Uint8Array of 0/1.
 */
export type TensorData =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array;

/** A tensor to send, or one received: `data` is a view over the frame's bytes whenever alignment allows. */
export interface Tensor {
  name: string;
  dtype: Dtype;
  dims: readonly number[];
  data: TensorData;
  /**
   * The data already coded in a wire codec (codec.ts `encodeTensorAsync`, off the event loop): the frame
   * encoder uses it when the frame travels in that codec instead of coding `data` again.
   */
  coded?: { readonly codec: string; readonly bytes: Buffer; readonly params?: object };
}

/** A typed-array class: `length` zeroed elements, or a view of `length` elements over a buffer. */
export type TypedArrayConstructor = {
  new (length: number): TensorData;
  new (buffer: ArrayBufferLike, byteOffset: number, length: number): TensorData;
  readonly BYTES_PER_ELEMENT: number;
};

/** The typed array each dtype is exposed as: the one table of dtypes, their arrays and element sizes. */
export const TYPED_ARRAY: Readonly<Record<Dtype, TypedArrayConstructor>> = {
  float32: Float32Array,
  float64: Float64Array,
  float16: Uint16Array,
  int8: Int8Array,
  uint8: Uint8Array,
  int16: Int16Array,
  uint16: Uint16Array,
  int32: Int32Array,
  uint32: Uint32Array,
  int64: BigInt64Array,
  uint64: BigUint64Array,
  bool: Uint8Array,
};

export const DTYPES = Object.keys(TYPED_ARRAY) as readonly Dtype[];

/** Bytes per element for every wire dtype. */
export const DTYPE_SIZE: Readonly<Record<Dtype, number>> = Object.fromEntries(
  DTYPES.map((d) => [d, TYPED_ARRAY[d].BYTES_PER_ELEMENT]),
) as Record<Dtype, number>;

export function isDtype(s: string): s is Dtype {
  return Object.hasOwn(TYPED_ARRAY, s);
}

/**
 * `bytes` as a typed array of `dtype` (its length a whole number of elements): a view when its offset is
 * aligned for the element size, else one aligned copy (a typed array cannot start mid-element).
 */
export function typedFromBytes(dtype: Dtype, bytes: Uint8Array): { data: TensorData; copied: boolean } {
  const Ctor = TYPED_ARRAY[dtype];
  const size = Ctor.BYTES_PER_ELEMENT;
  const count = bytes.byteLength / size;
  if (bytes.byteOffset % size === 0) return { data: new Ctor(bytes.buffer, bytes.byteOffset, count), copied: false };
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return { data: new Ctor(copy.buffer, 0, count), copied: true };
}

/** Raw bytes of a typed array, as a view. */
export function tensorBytes(data: TensorData): Buffer {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}
