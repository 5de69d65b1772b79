/**
 * Open Inference Protocol (KServe v2) REST codec for the gateway: an infer request body (JSON, or JSON plus
 * the binary tensor data extension) in, typed tensors out; output tensors in, a response body and its
 * headers out; the model metadata body. Pure: bytes and JSON only, no express, no sockets, no ORT.
 *
 * Every malformed request throws CleaveError E_BAD_INPUT (400) naming the field; a body past
 * `maxBodyBytes` throws E_TOO_LARGE (413). (Past 400 lines on purpose: request and response codecs share
 * the datatype and shape rules below; the element codecs already live in oip-binary.ts.)
 *
 * Decisions where the protocol leaves room (see oip-binary.ts for the element codecs):
 * - INT64/UINT64 in JSON: numbers are accepted only as safe integers (|v| <= 2^53-1), because JSON.parse
 *   has already rounded anything larger; decimal strings ("9007199254740993") carry the full range. In
 *   responses they are written as exact decimal digits.
 * - FP16 in JSON: accepted as numbers, rounded to the nearest binary16 (ties to even), |v| >= 65520 refused;
 *   written as the exact numbers the halves hold. (Triton refuses FP16 in JSON; binary is always exact.)
 * - BOOL: JSON true/false only; binary bytes 0 or 1 only.
 * - NaN and +-Infinity: JSON has no literal for them, so they travel as the strings "NaN", "Infinity",
 *   "-Infinity", accepted for FP16/FP32/FP64 inputs and written in JSON outputs. Binary carries them as is.
 * - `data` may be flat or nested (row-major, at most as deep as the rank); only the leaf count must match.
 * - An empty `outputs` list means all outputs, like an absent one.
 */
import { checkJsonDepth } from './json-depth.js';
import { CleaveError } from '../../errors.js';
import type { TensorDType, TensorLike, ValueInfo } from '../executor/tensors.js';
import { DTYPE_SIZE, TYPED_ARRAY, tensorBytes, typedFromBytes } from '../../transport/dtype.js';
import {
  DataShapeError,
  JSON_CONV,
  badBoolByte,
  countLeaves,
  fillFromJson,
  jsonDataText,
  locateJsonError,
} from './oip-binary.js';

export type OipDatatype =
  | 'BOOL'
  | 'UINT8'
  | 'UINT16'
  | 'UINT32'
  | 'UINT64'
  | 'INT8'
  | 'INT16'
  | 'INT32'
  | 'INT64'
  | 'FP16'
  | 'FP32'
  | 'FP64'
  | 'BYTES';

/** One input or output as the model metadata describes it. -1 in `shape` is a dimension of any size. */
export interface OipTensorSpec {
  readonly name: string;
  readonly datatype: OipDatatype;
  readonly shape: readonly number[];
}

export interface ModelSignature {
  readonly name: string;
  readonly versions: readonly string[];
  /** Reported in the metadata; default 'onnxruntime_onnx'. */
  readonly platform?: string;
  readonly inputs: readonly OipTensorSpec[];
  readonly outputs: readonly OipTensorSpec[];
}

interface OipLimits {
  /** Largest request body, JSON and binary parts together (413 E_TOO_LARGE beyond). Default 64 MiB, the
   * same as RuntimeLimits.maxBodyBytes, so the gateway can pass its RuntimeLimits as they are. */
  maxBodyBytes: number;
}

const DEFAULT_OIP_LIMITS: Readonly<OipLimits> = Object.freeze({ maxBodyBytes: 64 * 1024 * 1024 });

/** The HTTP header giving the length of the JSON part of a body that carries binary tensor data. */
export const INFERENCE_HEADER = 'Inference-Header-Content-Length';

interface RequestedOutput {
  readonly name: string;
  /** Resolved: the output's `parameters.binary_data`, else the request's `binary_data_output`. */
  readonly binary: boolean;
}

interface InferRequest {
  readonly id?: string;
  /** Every model input, keyed by name; binary data are views over the body where alignment allows. */
  readonly inputs: Record<string, TensorLike>;
  /** The outputs asked for, in the order asked; undefined means all of them. */
  readonly outputs?: readonly RequestedOutput[];
  /** The request's `parameters.binary_data_output`: the default for outputs not listed. */
  readonly binaryOutputs: boolean;
  /** The request-level `parameters` as sent (e.g. `timeout`, `priority`), for the gateway to read. */
  readonly parameters?: Readonly<Record<string, unknown>>;
}

interface EncodedResponse {
  readonly body: Buffer;
  /** Content-Type, and Inference-Header-Content-Length when any output is binary. */
  readonly headers: Record<string, string>;
}

// ---------------------------------------------------------------------------------------------------------
// Datatypes

const TO_OIP: Readonly<Record<TensorDType, OipDatatype>> = {
  bool: 'BOOL',
  uint8: 'UINT8',
  uint16: 'UINT16',
  uint32: 'UINT32',
  uint64: 'UINT64',
  int8: 'INT8',
  int16: 'INT16',
  int32: 'INT32',
  int64: 'INT64',
  float16: 'FP16',
  float32: 'FP32',
  float64: 'FP64',
};
const FROM_OIP = new Map(Object.entries(TO_OIP).map(([k, v]) => [v, k as TensorDType]));
const OIP_NAMES = [...FROM_OIP.keys(), 'BYTES'];

function isOipDatatype(s: string): s is OipDatatype {
  return OIP_NAMES.includes(s);
}

export function toOipDatatype(dtype: TensorDType): OipDatatype {
  return TO_OIP[dtype];
}

/** The tensor dtype of an OIP datatype; BYTES throws E_UNSUPPORTED (no string tensors), others E_BAD_INPUT. */
export function fromOipDatatype(dt: string): TensorDType {
  const t = FROM_OIP.get(dt as OipDatatype);
  if (t !== undefined) return t;
  if (dt === 'BYTES') throw new CleaveError('E_UNSUPPORTED', 'datatype BYTES (string tensors) is not supported');
  throw new CleaveError('E_BAD_INPUT', `unknown datatype '${dt}' (expected one of ${OIP_NAMES.join(', ')})`);
}

/** A signature from a session's declared inputs and outputs; symbolic and unknown dims become -1. */
export function signatureOf(
  name: string,
  versions: readonly string[],
  inputs: readonly ValueInfo[],
  outputs: readonly ValueInfo[],
): ModelSignature {
  const spec = (v: ValueInfo): OipTensorSpec => ({
    name: v.name,
    datatype: toOipDatatype(v.dtype),
    shape: v.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : -1)),
  });
  return { name, versions, inputs: inputs.map(spec), outputs: outputs.map(spec) };
}

/** The body of `GET /v2/models/{m}` ($metadata_model_response). */
export function modelMetadata(sig: ModelSignature): {
  name: string;
  versions: string[];
  platform: string;
  inputs: OipTensorSpec[];
  outputs: OipTensorSpec[];
} {
  const spec = (t: OipTensorSpec): OipTensorSpec => ({ name: t.name, datatype: t.datatype, shape: [...t.shape] });
  return {
    name: sig.name,
    versions: [...sig.versions],
    platform: sig.platform ?? 'onnxruntime_onnx',
    inputs: sig.inputs.map(spec),
    outputs: sig.outputs.map(spec),
  };
}

// ---------------------------------------------------------------------------------------------------------
// Requests

const bad = (msg: string): CleaveError => new CleaveError('E_BAD_INPUT', msg);
const fmt = (dims: readonly number[]): string => `[${dims.join(',')}]`;

function kind(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Optional object field: undefined when absent, else the object or an error naming `field`. */
function optObject(v: unknown, field: string): Record<string, unknown> | undefined {
  if (v === undefined) return undefined;
  if (!isObject(v)) throw bad(`${field}: expected an object, got ${kind(v)}`);
  return v;
}

function optBool(v: unknown, field: string): boolean | undefined {
  if (v === undefined || typeof v === 'boolean') return v;
  throw bad(`${field}: expected true or false, got ${kind(v)}`);
}

/** Where the JSON part ends: the header's value, or the whole body when there is no header. */
function jsonEnd(header: string | number | undefined, bodyBytes: number): number {
  if (header === undefined) return bodyBytes;
  const text = String(header).trim();
  const n = /^\d{1,15}$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n)) throw bad(`${INFERENCE_HEADER} '${String(header)}' is not a non-negative integer`);
  if (n > bodyBytes) throw bad(`${INFERENCE_HEADER} ${n} is past the end of the ${bodyBytes}-byte body`);
  return n;
}

function parseJson(text: string): unknown {
  checkJsonDepth(text, 'request');
  try {
    return JSON.parse(text);
  } catch {
    const e = locateJsonError(text);
    throw bad(`malformed JSON at position ${e.pos} (line ${e.line}, column ${e.column}): ${e.reason}`);
  }
}

/**
 * Parses `POST /v2/models/{m}/infer`. `body` is the raw body; `headerLength` the Inference-Header-Content-Length
 * header as received (a string from node's headers, or a number), undefined when absent. Binary inputs are
 * taken from the bytes after the JSON part, in the order of the inputs that carry `binary_data_size`, and
 * must use those bytes exactly.
 */
export function parseInferRequest(
  body: Uint8Array,
  headerLength: string | number | undefined,
  sig: ModelSignature,
  limits: Partial<OipLimits> = {},
): InferRequest {
  const maxBody = limits.maxBodyBytes ?? DEFAULT_OIP_LIMITS.maxBodyBytes;
  if (body.length > maxBody) {
    throw new CleaveError(
      'E_TOO_LARGE',
      `request body is ${body.length} bytes, over the ${maxBody}-byte limit (maxBodyBytes)`,
    );
  }
  if (body.length === 0) throw bad('request body is empty (expected an inference request JSON object)');
  const end = jsonEnd(headerLength, body.length);
  if (end === 0) throw bad(`${INFERENCE_HEADER} is 0: the JSON part of the body is empty`);
  const doc = parseJson(Buffer.from(body.buffer, body.byteOffset, end).toString('utf8'));
  if (!isObject(doc)) throw bad(`request body: expected a JSON object, got ${kind(doc)}`);

  if (doc.id !== undefined && typeof doc.id !== 'string') throw bad(`id: expected a string, got ${kind(doc.id)}`);
  const parameters = optObject(doc.parameters, 'parameters');
  const binaryOutputs = optBool(parameters?.binary_data_output, 'parameters.binary_data_output') ?? false;

  if (!Array.isArray(doc.inputs)) {
    throw bad(doc.inputs === undefined ? 'inputs: missing' : `inputs: expected an array, got ${kind(doc.inputs)}`);
  }
  const inputs: Record<string, TensorLike> = {};
  let offset = end; // next unread binary byte
  doc.inputs.forEach((raw: unknown, i: number) => {
    const where = `inputs[${i}]`;
    if (!isObject(raw)) throw bad(`${where}: expected an object, got ${kind(raw)}`);
    if (typeof raw.name !== 'string' || raw.name === '') {
      throw bad(`${where}.name: expected a non-empty string, got ${kind(raw.name)}`);
    }
    const name = raw.name;
    const spec = inputSpec(sig, name, where, inputs);
    const tensor = parseInput(raw, where, spec, body, offset, headerLength !== undefined);
    inputs[name] = tensor.tensor;
    offset += tensor.binaryBytes;
  });
  checkAllInputs(sig, inputs);
  if (offset !== body.length) {
    throw bad(
      `${body.length - offset} bytes after the JSON part and the binary inputs are unused ` +
        `(body ${body.length} bytes, ${INFERENCE_HEADER} ${end}, binary inputs ${offset - end} bytes)`,
    );
  }

  return {
    ...(doc.id !== undefined && { id: doc.id }),
    inputs,
    ...(parseOutputs(doc.outputs, sig, binaryOutputs) ?? {}),
    binaryOutputs,
    ...(parameters !== undefined && { parameters }),
  };
}

/** The model's spec of input `name`, given at `where`; E_BAD_INPUT when it has none or `given` holds it already. */
export function inputSpec(
  sig: ModelSignature,
  name: string,
  where: string,
  given: Readonly<Record<string, unknown>>,
): OipTensorSpec {
  const spec = sig.inputs.find((s) => s.name === name);
  if (spec === undefined)
    throw bad(`unknown input '${name}' (model inputs: ${sig.inputs.map((s) => s.name).join(', ')})`);
  if (Object.hasOwn(given, name)) throw bad(`${where}.name: input '${name}' is given twice`);
  return spec;
}

/** E_BAD_INPUT naming the first model input `given` lacks. */
export function checkAllInputs(sig: ModelSignature, given: Readonly<Record<string, unknown>>): void {
  for (const s of sig.inputs) if (!Object.hasOwn(given, s.name)) throw bad(`missing input '${s.name}'`);
}

/** E_BAD_INPUT when the model has no output `name` (asked at `where`), or `asked` holds it already. */
export function checkRequestedOutput(sig: ModelSignature, name: string, where: string, asked: readonly string[]): void {
  if (!sig.outputs.some((s) => s.name === name))
    throw bad(`unknown output '${name}' (model outputs: ${sig.outputs.map((s) => s.name).join(', ')})`);
  if (asked.includes(name)) throw bad(`${where}.name: output '${name}' is asked for twice`);
}

/**
 * An input's datatype and shape checked against the model's (what every front end checks, with the same
 * messages): its tensor dtype, dims and element count.
 */
export function checkInputHeader(
  raw: { readonly datatype?: unknown; readonly shape?: unknown },
  where: string,
  spec: OipTensorSpec,
): { dtype: TensorDType; dims: number[]; count: number } {
  const name = `input '${spec.name}'`;
  if (typeof raw.datatype !== 'string') throw bad(`${where}.datatype: expected a string, got ${kind(raw.datatype)}`);
  if (!isOipDatatype(raw.datatype)) {
    throw bad(
      `${where}.datatype: unknown datatype '${raw.datatype}' for ${name} (expected one of ${OIP_NAMES.join(', ')})`,
    );
  }
  if (raw.datatype !== spec.datatype)
    throw bad(`${name}: datatype ${raw.datatype} does not match the model's ${spec.datatype}`);
  const dtype = fromOipDatatype(spec.datatype);

  const shape = raw.shape;
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
    throw bad(
      `${where}.shape: expected an array of non-negative integers for ${name}, got ${JSON.stringify(shape) ?? 'nothing'}`,
    );
  }
  const dims = [...(shape as number[])];
  // An empty declared shape fixes nothing: ORT reports undeclared shapes as [] (as checkFeeds assumes).
  if (spec.shape.length > 0) {
    const fits = dims.length === spec.shape.length && dims.every((d, k) => spec.shape[k] < 0 || spec.shape[k] === d);
    if (!fits) throw bad(`${where}.shape: expected ${fmt(spec.shape)} but got ${fmt(dims)} (${name})`);
  }
  const count = dims.reduce((a, d) => a * d, 1);
  if (!Number.isSafeInteger(count)) throw bad(`${where}.shape: ${fmt(dims)} has too many elements (${name})`);

  return { dtype, dims, count };
}

function parseInput(
  raw: Record<string, unknown>,
  where: string,
  spec: OipTensorSpec,
  body: Uint8Array,
  offset: number,
  headerGiven: boolean,
): { tensor: TensorLike; binaryBytes: number } {
  const name = `input '${spec.name}'`;
  const { dtype, dims, count } = checkInputHeader(raw, where, spec);

  const params = optObject(raw.parameters, `${where}.parameters`);
  const size = params?.binary_data_size;
  if (size !== undefined) {
    if (raw.data !== undefined) throw bad(`${name}: has both data and parameters.binary_data_size; give one`);
    if (!Number.isSafeInteger(size) || (size as number) < 0) {
      throw bad(
        `${where}.parameters.binary_data_size: expected a non-negative integer for ${name}, got ${JSON.stringify(size)}`,
      );
    }
    const want = count * DTYPE_SIZE[dtype];
    if (size !== want) {
      throw bad(`${name}: binary_data_size ${String(size)} but ${want} bytes expected (${spec.datatype} ${fmt(dims)})`);
    }
    if (offset + want > body.length) {
      throw bad(
        headerGiven
          ? `${name}: binary data (bytes ${offset}..${offset + want}) runs past the end of the ${body.length}-byte body`
          : `${name}: binary_data_size ${want} but the request has no ${INFERENCE_HEADER}, so no binary data`,
      );
    }
    const { data } = typedFromBytes(dtype, body.subarray(offset, offset + want));
    if (dtype === 'bool') {
      const k = badBoolByte(data as Uint8Array);
      if (k >= 0) throw bad(`${name}: BOOL element ${k} is byte ${(data as Uint8Array)[k]} (must be 0 or 1)`);
    }
    return { tensor: { dtype, dims, data }, binaryBytes: want };
  }

  if (raw.data === undefined) throw bad(`${name}: no data (give data, or parameters.binary_data_size and binary data)`);
  if (!Array.isArray(raw.data)) throw bad(`${name}: data must be an array, got ${kind(raw.data)}`);
  try {
    const values = countLeaves(raw.data, Math.max(dims.length, 1));
    if (values !== count) throw bad(`${name}: ${values} values for shape ${fmt(dims)} (${count} expected)`);
    const data = new TYPED_ARRAY[dtype](count);
    fillFromJson(raw.data, data, JSON_CONV[dtype]);
    return { tensor: { dtype, dims, data }, binaryBytes: 0 };
  } catch (e) {
    if (e instanceof DataShapeError) throw bad(`${name}: data${e.path} ${e.reason}`);
    throw e;
  }
}

function parseOutputs(
  raw: unknown,
  sig: ModelSignature,
  binaryOutputs: boolean,
): { outputs: RequestedOutput[] } | undefined {
  if (raw === undefined) return undefined;
  if (!Array.isArray(raw)) throw bad(`outputs: expected an array, got ${kind(raw)}`);
  if (raw.length === 0) return undefined;
  const outputs: RequestedOutput[] = [];
  raw.forEach((o: unknown, i: number) => {
    const where = `outputs[${i}]`;
    if (!isObject(o)) throw bad(`${where}: expected an object, got ${kind(o)}`);
    if (typeof o.name !== 'string') throw bad(`${where}.name: expected a string, got ${kind(o.name)}`);
    const name = o.name;
    checkRequestedOutput(
      sig,
      name,
      where,
      outputs.map((r) => r.name),
    );
    const params = optObject(o.parameters, `${where}.parameters`);
    const binary = optBool(params?.binary_data, `${where}.parameters.binary_data`) ?? binaryOutputs;
    outputs.push({ name, binary });
  });
  return { outputs };
}

// ---------------------------------------------------------------------------------------------------------
// Responses

/**
 * The response to an infer request: the outputs asked for (all of them by default), JSON or binary as each
 * asked, with the binary parts after the JSON in output order. A missing output or one whose data does not
 * fit its dims is our bug, not the client's: E_INTERNAL.
 */
export function encodeInferResponse(
  sig: ModelSignature,
  req: Pick<InferRequest, 'id' | 'outputs' | 'binaryOutputs'> & { readonly modelVersion?: string },
  outputs: Readonly<Record<string, TensorLike>>,
): EncodedResponse {
  const wanted = req.outputs ?? sig.outputs.map((o) => ({ name: o.name, binary: req.binaryOutputs }));
  const parts: string[] = [];
  const binary: Buffer[] = [];
  for (const { name, binary: asBinary } of wanted) {
    const t = Object.hasOwn(outputs, name) ? outputs[name] : undefined;
    if (t === undefined) throw new CleaveError('E_INTERNAL', `output '${name}' was not produced`);
    const count = t.dims.reduce((a, d) => a * d, 1);
    if (t.data.length !== count) {
      throw new CleaveError('E_INTERNAL', `output '${name}': ${t.data.length} values for dims ${fmt(t.dims)}`);
    }
    const head = `{"name":${JSON.stringify(name)},"datatype":"${toOipDatatype(t.dtype)}","shape":${fmt(t.dims)}`;
    if (asBinary) {
      binary.push(tensorBytes(t.data));
      parts.push(`${head},"parameters":{"binary_data_size":${t.data.byteLength}}}`);
    } else {
      parts.push(`${head},"data":${jsonDataText(t)}}`);
    }
  }
  const version = req.modelVersion ?? sig.versions[0];
  const json = Buffer.from(
    `{${req.id !== undefined ? `"id":${JSON.stringify(req.id)},` : ''}"model_name":${JSON.stringify(sig.name)},` +
      `${version !== undefined ? `"model_version":${JSON.stringify(version)},` : ''}"outputs":[${parts.join(',')}]}`,
  );
  if (binary.length === 0) return { body: json, headers: { 'Content-Type': 'application/json' } };
  return {
    body: Buffer.concat([json, ...binary]),
    headers: { 'Content-Type': 'application/octet-stream', [INFERENCE_HEADER]: String(json.length) },
  };
}
