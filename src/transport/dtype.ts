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

/** Bytes per element for every wire dtype. */
export const DTYPE_SIZE: Readonly<Record<Dtype, number>> = {
  float32: 4,
  float64: 8,
  float16: 2,
  int8: 1,
  uint8: 1,
  int16: 2,
  uint16: 2,
  int32: 4,
  uint32: 4,
  int64: 8,
  uint64: 8,
  bool: 1,
};

export const DTYPES = Object.keys(DTYPE_SIZE) as readonly Dtype[];

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
}

export type TypedArrayConstructor = { new (buffer: ArrayBufferLike, byteOffset: number, length: number): TensorData };

/** The typed array each dtype is exposed as. */
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

/** Raw bytes of a typed array, as a view. */
export function tensorBytes(data: TensorData): Buffer {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}
