/**
 * ModelInferRequest in, ModelInferResponse out: the gRPC messages (as @grpc/proto-loader decodes them: field
 * names as in the proto, 64-bit integers as decimal strings, bytes as Buffers) to and from the tensors the
 * pipeline runs. The checks, and their messages, are the HTTP gateway's (oip.ts): datatype and shape against
 * the model, sizes, missing or repeated inputs. Raw contents become typed views over the message's bytes
 * where their alignment allows (typedFromBytes copies otherwise).
 */
import { CleaveError } from '../../errors.js';
import { DTYPE_SIZE, TYPED_ARRAY, tensorBytes, typedFromBytes } from '../../transport/dtype.js';
import type { TensorDType, TensorLike } from '../executor/tensors.js';
import { badBoolByte, DataShapeError, fillFromJson, JSON_CONV } from '../http/oip-binary.js';
import {
  checkAllInputs,
  checkInputHeader,
  checkRequestedOutput,
  inputSpec,
  toOipDatatype,
  type ModelSignature,
} from '../http/oip.js';

/** InferTensorContents: only the field of the tensor's datatype may be set. */
export interface TensorContents {
  bool_contents?: boolean[];
  int_contents?: number[];
  int64_contents?: string[];
  uint_contents?: number[];
  uint64_contents?: string[];
  fp32_contents?: number[];
  fp64_contents?: number[];
  bytes_contents?: Buffer[];
}

export interface InferInputTensor {
  name: string;
  datatype: string;
  shape: string[];
  contents?: TensorContents | null;
}

export interface ModelInferRequest {
  model_name: string;
  model_version: string;
  id: string;
  inputs: InferInputTensor[];
  outputs: { name: string }[];
  raw_input_contents: Buffer[];
}

export interface ModelInferResponse {
  model_name: string;
  model_version: string;
  id: string;
  outputs: { name: string; datatype: string; shape: string[] }[];
  raw_output_contents: Buffer[];
}

const bad = (msg: string): CleaveError => new CleaveError('E_BAD_INPUT', msg);

/** The contents field that carries each datatype, as InferTensorContents names it. */
const CONTENTS_FIELD: Readonly<Record<TensorDType, keyof TensorContents | null>> = {
  bool: 'bool_contents',
  int8: 'int_contents',
  int16: 'int_contents',
  int32: 'int_contents',
  int64: 'int64_contents',
  uint8: 'uint_contents',
  uint16: 'uint_contents',
  uint32: 'uint_contents',
  uint64: 'uint64_contents',
  float32: 'fp32_contents',
  float64: 'fp64_contents',
  float16: null,
};

function contentFields(c: TensorContents | null | undefined): (keyof TensorContents)[] {
  if (!c) return [];
  return (Object.keys(c) as (keyof TensorContents)[]).filter((k) => (c[k]?.length ?? 0) > 0);
}

/** A shape of int64 decimal strings as numbers; one past 2^53 stays unsafe, so the shape check names it. */
function shapeOf(shape: readonly (string | number)[]): number[] {
  return shape.map((d) => Number(d));
}

/**
 * The inputs of a request for `sig`, and the outputs it asks for (undefined: all). `maxBytes` bounds the
 * input data as maxBodyBytes bounds an HTTP body.
 */
export function inferInputs(
  req: ModelInferRequest,
  sig: ModelSignature,
  maxBytes: number,
): { id: string; inputs: Record<string, TensorLike>; outputs?: string[] } {
  const raw = req.raw_input_contents ?? [];
  const given = req.inputs ?? [];
  if (raw.length > 0 && raw.length !== given.length)
    throw bad(`raw_input_contents: ${raw.length} entries for ${given.length} inputs (one per input, in order)`);
  let total = 0;
  const inputs: Record<string, TensorLike> = {};
  given.forEach((t, i) => {
    const where = `inputs[${i}]`;
    if (typeof t.name !== 'string' || t.name === '') throw bad(`${where}.name: expected a non-empty string`);
    const spec = inputSpec(sig, t.name, where, inputs);
    const { dtype, dims, count } = checkInputHeader(
      { datatype: t.datatype, shape: shapeOf(t.shape ?? []) },
      where,
      spec,
    );
    const name = `input '${t.name}'`;
    const set = contentFields(t.contents);
    const want = count * DTYPE_SIZE[dtype];
    total += want;
    if (total > maxBytes)
      throw new CleaveError('E_TOO_LARGE', `inputs hold over ${maxBytes} bytes of data (maxBodyBytes)`);
    if (raw.length > 0) {
      if (set.length > 0) throw bad(`${name}: has both contents and raw_input_contents; give one`);
      const bytes = raw[i];
      if (bytes.length !== want)
        throw bad(
          `${name}: raw_input_contents[${i}] is ${bytes.length} bytes but ${want} expected (${spec.datatype} [${dims.join(',')}])`,
        );
      const { data } = typedFromBytes(dtype, bytes);
      if (dtype === 'bool') {
        const k = badBoolByte(data as Uint8Array);
        if (k >= 0) throw bad(`${name}: BOOL element ${k} is byte ${(data as Uint8Array)[k]} (must be 0 or 1)`);
      }
      inputs[t.name] = { dtype, dims, data };
      return;
    }
    const field = CONTENTS_FIELD[dtype];
    if (field === null) throw bad(`${name}: ${spec.datatype} travels only in raw_input_contents`);
    const other = set.find((k) => k !== field);
    if (other) throw bad(`${where}.contents.${other}: not the field of ${spec.datatype} (${field})`);
    const values = (t.contents?.[field] ?? []) as unknown[];
    if (values.length !== count)
      throw bad(
        `${name}: ${values.length} values in contents.${field} for shape [${dims.join(',')}] (${count} expected)`,
      );
    const data = new TYPED_ARRAY[dtype](count);
    if (dtype === 'float32' || dtype === 'float64') (data as Float32Array | Float64Array).set(values as number[]);
    else
      try {
        fillFromJson(values, data, JSON_CONV[dtype]);
      } catch (e) {
        if (e instanceof DataShapeError) throw bad(`${name}: contents.${field}${e.path} ${e.reason}`);
        throw e;
      }
    inputs[t.name] = { dtype, dims, data };
  });
  checkAllInputs(sig, inputs);
  let outputs: string[] | undefined;
  if ((req.outputs ?? []).length > 0) {
    outputs = [];
    for (const [i, o] of req.outputs.entries()) {
      checkRequestedOutput(sig, o.name, `outputs[${i}]`, outputs);
      outputs.push(o.name);
    }
  }
  return { id: req.id ?? '', inputs, outputs };
}

/** The response: the outputs asked for (all by default), each as raw_output_contents in the same order. */
export function inferResponse(
  sig: ModelSignature,
  req: { id: string; outputs?: readonly string[]; modelVersion: string },
  produced: Readonly<Record<string, TensorLike>>,
): ModelInferResponse {
  const names = req.outputs ?? sig.outputs.map((o) => o.name);
  const outputs: ModelInferResponse['outputs'] = [];
  const raw: Buffer[] = [];
  for (const name of names) {
    const t = Object.hasOwn(produced, name) ? produced[name] : undefined;
    if (t === undefined) throw new CleaveError('E_INTERNAL', `output '${name}' was not produced`);
    outputs.push({ name, datatype: toOipDatatype(t.dtype), shape: t.dims.map(String) });
    raw.push(tensorBytes(t.data));
  }
  return { model_name: sig.name, model_version: req.modelVersion, id: req.id, outputs, raw_output_contents: raw };
}
