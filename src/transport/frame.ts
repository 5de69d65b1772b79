/**
 * The tensor frame codec: pure functions, no sockets.
 *
 * One frame is one binary WebSocket message:
 *
 * ```
 * offset 0   'C' 'L' 'V'            magic
 *        3   version (1)            uint8
 *        4   header length H        uint32 little-endian
 *        8   msgpack header         H bytes
 *            zero padding           to the next multiple of 8
 *            tensor 0 raw bytes     byteLength0, starts at a multiple of 8
 *            zero padding           to the next multiple of 8
 *            tensor 1 raw bytes ... the last tensor ends the frame (no trailing padding)
 * ```
 *
 * Tensor offsets are not written anywhere: both sides derive them from the header's byte lengths, so a
 * frame cannot point outside itself. Every tensor starts 8-aligned relative to the frame start, so when the
 * receiver's buffer is itself 8-aligned the tensors become typed-array views without a copy; when it is not,
 * each tensor is copied exactly once into fresh (aligned) memory.
 *
 * The encoder returns the frame as a list of chunks (header, then each tensor's own bytes as a view, with
 * small padding chunks between) so a big tensor is never concatenated; small frames are coalesced into one
 * buffer because one small copy is cheaper than several socket writes.
 */
import { Packr } from 'msgpackr';
import { CleaveError } from '../errors.js';
import {
  CODECS,
  decodeTensor,
  encodeTensor,
  isCodec,
  paramsProblem,
  type CodecName,
  type CodecParams,
} from './codec.js';
import {
  DTYPE_SIZE,
  DTYPES,
  isDtype,
  tensorBytes,
  typedFromBytes,
  type Dtype,
  type Tensor,
  type TensorData,
} from './dtype.js';

export { DTYPE_SIZE, DTYPES, tensorBytes, type Dtype, type Tensor, type TensorData };

/** How a tensor is described in the header. */
export interface TensorDesc {
  name: string;
  dtype: Dtype;
  dims: number[];
  /** Bytes in the frame: the raw size, or the coded size when `codec` is set. */
  byteLength: number;
  /** The wire codec the bytes are in (codec.ts); absent: raw. */
  codec?: CodecName;
  /** int8 codecs' affine map. */
  lo?: number;
  scale?: number;
}

/**
 * What a frame is for. `infer` carries a request's tensors to the next stage, `result` carries outputs back
 * to the origin, `error` carries a failure along the route, `message` carries an opaque control-plane `body`
 * (profiles, heartbeats). `hello`, `ack` and `probe` belong to the transport and never reach a handler.
 */
export type FrameKind = 'hello' | 'ack' | 'probe' | 'infer' | 'result' | 'error' | 'message';

export const FRAME_KINDS: readonly FrameKind[] = ['hello', 'ack', 'probe', 'infer', 'result', 'error', 'message'];

/** One stage of a route. The transport checks the shape and carries it; what it means is the runtime's. */
export interface RouteStage {
  host: string;
  tier: string;
  from: number;
  to: number;
  /** The codec the tensors of an infer frame addressed to this stage travel in; absent: raw. */
  codec?: CodecName;
}

export interface FrameError {
  code: string;
  message: string;
}

export interface FrameHeader {
  kind: FrameKind;
  /** Request id; '' for frames that belong to no request. */
  id: string;
  /** Plan epoch the request was stamped with. */
  epoch: number;
  route: RouteStage[];
  /** Index into `route` of the stage this frame is addressed to. */
  stage: number;
  /** Milliseconds the request had left when the frame was sent, 0 for none (no clock readings: hosts' clocks differ). */
  deadline: number;
  /** Per-connection sequence number, set by the connection; an ack carries the seq it acknowledges. */
  seq: number;
  tensors: TensorDesc[];
  /** Which of the deployment's models an infer, result or error frame belongs to; absent: its default model. */
  model?: string;
  error?: FrameError;
  /** Opaque msgpack-able data of `message` and `hello` frames; on an ack, the ms the receiver held the frame
   * (its handler ran) before acking, which the sender does not count as transfer time. */
  body?: unknown;
}

/** What a sender supplies: the kind, and any header field it cares about (the rest default to empty). */
export type HeaderInput = Partial<Omit<FrameHeader, 'kind' | 'tensors'>> & { kind: FrameKind };

export interface EncodedFrame {
  /** The frame in order; tensor chunks are views over the caller's tensor memory, not copies. */
  chunks: Buffer[];
  byteLength: number;
  /** What the frame would have been with every tensor raw (= byteLength when no codec applied). */
  uncodedBytes: number;
  header: FrameHeader;
}

export interface DecodedFrame {
  header: FrameHeader;
  tensors: Tensor[];
  byteLength: number;
  /** Tensor bytes that had to be copied because they were misaligned or split across buffers. */
  copiedBytes: number;
}

export interface EncodeOptions {
  /** Frames up to this many bytes are written as one buffer. Default 64 KiB. */
  coalesceBytes?: number;
}

export interface DecodeOptions {
  /** Larger frames are refused with E_TOO_LARGE. */
  maxFrameBytes: number;
  /** More tensors than this are refused with E_BAD_FRAME. Default 4096. */
  maxTensors?: number;
}

export const FRAME_VERSION = 1;
/** Fixed bytes before the msgpack header: magic (3), version (1), header length (4). */
export const PREFIX_BYTES = 8;
/** Tensor alignment relative to the frame start: enough for every dtype, including 64-bit ones. */
export const ALIGN = 8;

const MAGIC0 = 0x43; // 'C'
const MAGIC1 = 0x4c; // 'L'
const MAGIC2 = 0x56; // 'V'
const ZEROS = Buffer.alloc(ALIGN);
const DEFAULT_COALESCE = 64 * 1024;
const DEFAULT_MAX_TENSORS = 4096;

// Plain maps and arrays only: records/structures would make the wire depend on the packer's shared state.
const packr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number', variableMapSize: true });

// Arithmetic, not bit masks: frames may pass 2 GiB.
const align = (n: number): number => Math.ceil(n / ALIGN) * ALIGN;

function bad(field: string, message: string): CleaveError {
  return new CleaveError('E_BAD_FRAME', `bad frame: ${field} ${message}`);
}

/** Element count for dims, or -1 when the dims are not a list of non-negative safe integers. */
function elementCount(dims: unknown): number {
  if (!Array.isArray(dims)) return -1;
  let n = 1;
  for (const d of dims) {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) return -1;
    n *= d;
  }
  return Number.isSafeInteger(n) ? n : -1;
}

/** The codec a frame's tensors travel in: an infer frame's is the one its route names for its stage. */
export function frameCodec(input: HeaderInput): CodecName {
  return input.kind === 'infer' ? (input.route?.[input.stage ?? 0]?.codec ?? 'raw') : 'raw';
}

/**
 * Encode a frame. Checks the tensors against their dims (a programming error on the sending side, reported as
 * E_BAD_INPUT) but not the size limit: the connection does that, since it knows the limit.
 */
export function encodeFrame(
  input: HeaderInput,
  tensors: readonly Tensor[] = [],
  options: EncodeOptions = {},
): EncodedFrame {
  const descs: TensorDesc[] = [];
  const datas: Buffer[] = [];
  let saved = 0; // raw tensor bytes less their coded bytes
  const codec = frameCodec(input);
  for (let i = 0; i < tensors.length; i++) {
    const t = tensors[i];
    const size = DTYPE_SIZE[t.dtype];
    if (size === undefined)
      throw new CleaveError('E_BAD_INPUT', `tensors[${i}].dtype '${String(t.dtype)}' cannot travel in a frame`);
    const count = elementCount(t.dims);
    if (count < 0 || count * size !== t.data.byteLength) {
      throw new CleaveError(
        'E_BAD_INPUT',
        `tensors[${i}] (${t.name}): dims [${t.dims.join(',')}] x ${size} bytes != data byteLength ${t.data.byteLength}`,
      );
    }
    const enc =
      t.coded && t.coded.codec === codec
        ? { bytes: t.coded.bytes, params: t.coded.params as CodecParams | undefined }
        : encodeTensor(codec, t.dtype, tensorBytes(t.data));
    saved += t.data.byteLength - enc.bytes.length;
    const desc: TensorDesc = { name: t.name, dtype: t.dtype, dims: [...t.dims], byteLength: enc.bytes.length };
    if (enc.params) Object.assign(desc, enc.params);
    descs.push(desc);
    datas.push(enc.bytes);
  }
  const header: FrameHeader = {
    kind: input.kind,
    id: input.id ?? '',
    epoch: input.epoch ?? 0,
    route: input.route ?? [],
    stage: input.stage ?? 0,
    deadline: input.deadline ?? 0,
    seq: input.seq ?? 0,
    tensors: descs,
  };
  if (input.model !== undefined) header.model = input.model;
  if (input.error !== undefined) header.error = input.error;
  if (input.body !== undefined) header.body = input.body;

  const packed = packr.pack(header); // a view into the packer's reusable buffer: copied below
  const headerEnd = PREFIX_BYTES + packed.length;
  const dataStart = datas.length ? align(headerEnd) : headerEnd;
  let byteLength = dataStart;
  for (let i = 0; i < datas.length; i++) byteLength = (i ? align(byteLength) : byteLength) + datas[i].length;

  const coalesce = byteLength <= (options.coalesceBytes ?? DEFAULT_COALESCE);
  const head = Buffer.allocUnsafe(coalesce ? byteLength : dataStart);
  head[0] = MAGIC0;
  head[1] = MAGIC1;
  head[2] = MAGIC2;
  head[3] = FRAME_VERSION;
  head.writeUInt32LE(packed.length, 4);
  packed.copy(head, PREFIX_BYTES);
  head.fill(0, headerEnd, dataStart);
  if (coalesce) {
    let at = dataStart;
    for (let i = 0; i < datas.length; i++) {
      const start = i ? align(at) : at;
      head.fill(0, at, start);
      datas[i].copy(head, start);
      at = start + datas[i].length;
    }
    return { chunks: [head], byteLength, uncodedBytes: byteLength + saved, header };
  }
  const chunks: Buffer[] = [head];
  let at = dataStart;
  for (let i = 0; i < datas.length; i++) {
    const pad = i ? align(at) - at : 0;
    if (pad) chunks.push(ZEROS.subarray(0, pad));
    if (datas[i].length) chunks.push(datas[i]);
    at += pad + datas[i].length;
  }
  return { chunks, byteLength, uncodedBytes: byteLength + saved, header };
}

/** Reads byte ranges out of a frame held as one buffer or as the fragments of a WebSocket message. */
class Bytes {
  readonly length: number;
  private chunk = 0;
  private chunkStart = 0;

  constructor(private readonly parts: readonly Buffer[]) {
    let n = 0;
    for (const p of parts) n += p.length;
    this.length = n;
  }

  /** The bytes [start, start+len) as a view when they lie in one part, else as a fresh copy. Ranges must be
   * requested in increasing order. */
  range(start: number, len: number): { buf: Buffer; copied: boolean } {
    while (this.chunk < this.parts.length - 1 && start >= this.chunkStart + this.parts[this.chunk].length) {
      this.chunkStart += this.parts[this.chunk].length;
      this.chunk++;
    }
    const part = this.parts[this.chunk];
    const local = start - this.chunkStart;
    if (local + len <= part.length) return { buf: part.subarray(local, local + len), copied: false };
    const out = Buffer.allocUnsafeSlow(len);
    let written = 0;
    let i = this.chunk;
    let from = local;
    while (written < len) {
      const p = this.parts[i++];
      written += p.copy(out, written, from, Math.min(p.length, from + len - written));
      from = 0;
    }
    return { buf: out, copied: true };
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

function checkHeader(raw: unknown, maxTensors: number): FrameHeader {
  if (!isObject(raw)) throw bad('header', 'is not a map');
  const h = raw;
  if (typeof h.kind !== 'string' || !FRAME_KINDS.includes(h.kind as FrameKind)) {
    throw bad('kind', `'${String(h.kind)}' is not one of ${FRAME_KINDS.join(', ')}`);
  }
  if (typeof h.id !== 'string') throw bad('id', 'is not a string');
  if (!isCount(h.epoch)) throw bad('epoch', 'is not a non-negative integer');
  if (!isCount(h.stage)) throw bad('stage', 'is not a non-negative integer');
  if (!isCount(h.seq)) throw bad('seq', 'is not a non-negative integer');
  if (typeof h.deadline !== 'number' || !Number.isFinite(h.deadline) || h.deadline < 0)
    throw bad('deadline', 'is not a finite non-negative number');
  if (!Array.isArray(h.route)) throw bad('route', 'is not an array');
  h.route.forEach((s: unknown, i) => {
    if (!isObject(s)) throw bad(`route[${i}]`, 'is not a map');
    if (typeof s.host !== 'string') throw bad(`route[${i}].host`, 'is not a string');
    if (typeof s.tier !== 'string') throw bad(`route[${i}].tier`, 'is not a string');
    if (!isCount(s.from)) throw bad(`route[${i}].from`, 'is not a non-negative integer');
    if (!isCount(s.to)) throw bad(`route[${i}].to`, 'is not a non-negative integer');
    if (s.codec !== undefined && !isCodec(s.codec))
      throw bad(`route[${i}].codec`, `'${String(s.codec)}' is not one of ${CODECS.join(', ')}`);
  });
  if (h.model !== undefined && (typeof h.model !== 'string' || h.model === ''))
    throw bad('model', 'is not a non-empty string');
  if (h.error !== undefined) {
    if (!isObject(h.error)) throw bad('error', 'is not a map');
    if (typeof h.error.code !== 'string') throw bad('error.code', 'is not a string');
    if (typeof h.error.message !== 'string') throw bad('error.message', 'is not a string');
  } else if (h.kind === 'error') {
    throw bad('error', "is missing on an 'error' frame");
  }
  if (!Array.isArray(h.tensors)) throw bad('tensors', 'is not an array');
  if (h.tensors.length > maxTensors)
    throw bad('tensors', `has ${h.tensors.length} entries, more than the limit ${maxTensors}`);
  const names = new Set<string>();
  h.tensors.forEach((t: unknown, i) => {
    const f = `tensors[${i}]`;
    if (!isObject(t)) throw bad(f, 'is not a map');
    if (typeof t.name !== 'string') throw bad(`${f}.name`, 'is not a string');
    // Receivers key tensors by name in plain objects: a repeat would hide one, '__proto__' would set a prototype.
    if (names.has(t.name)) throw bad(`${f}.name`, `'${t.name}' names two tensors`);
    if (t.name === '__proto__') throw bad(`${f}.name`, "'__proto__' is not a tensor name");
    names.add(t.name);
    if (typeof t.dtype !== 'string' || !isDtype(t.dtype)) {
      throw bad(`${f}.dtype`, `'${String(t.dtype)}' is not one of ${DTYPES.join(', ')}`);
    }
    const count = elementCount(t.dims);
    if (count < 0) throw bad(`${f}.dims`, 'is not a list of non-negative integers');
    if (!isCount(t.byteLength)) throw bad(`${f}.byteLength`, 'is not a non-negative integer');
    const size = DTYPE_SIZE[t.dtype];
    if (t.codec !== undefined) {
      const problem = paramsProblem(t, t.dtype);
      if (problem) throw bad(`${f}.codec`, problem);
    } else if (count * size !== t.byteLength) {
      throw bad(
        `${f}.byteLength`,
        `${t.byteLength} != dims [${(t.dims as number[]).join(',')}] x ${size} bytes (${t.dtype}) = ${count * size}`,
      );
    }
  });
  return h as unknown as FrameHeader;
}

/**
 * Decode and validate a frame held as one buffer or as a list of fragments (ws `binaryType: 'fragments'`).
 * Throws CleaveError E_BAD_FRAME naming the offending field, or E_TOO_LARGE past `maxFrameBytes`.
 */
export function decodeFrame(data: Buffer | readonly Buffer[], options: DecodeOptions): DecodedFrame {
  const bytes = new Bytes(Buffer.isBuffer(data) ? [data] : data);
  const total = bytes.length;
  if (total > options.maxFrameBytes) {
    throw new CleaveError(
      'E_TOO_LARGE',
      `bad frame: byteLength ${total} exceeds maxFrameBytes ${options.maxFrameBytes}`,
    );
  }
  if (total < PREFIX_BYTES)
    throw bad('prefix', `is truncated: the frame has ${total} bytes, the prefix needs ${PREFIX_BYTES}`);
  const prefix = bytes.range(0, PREFIX_BYTES).buf;
  if (prefix[0] !== MAGIC0 || prefix[1] !== MAGIC1 || prefix[2] !== MAGIC2) {
    throw bad('magic', `is 0x${prefix.subarray(0, 3).toString('hex')}, expected 0x434c56 ('CLV')`);
  }
  if (prefix[3] !== FRAME_VERSION) throw bad('version', `${prefix[3]} is not supported (expected ${FRAME_VERSION})`);
  const headerLength = prefix.readUInt32LE(4);
  const headerEnd = PREFIX_BYTES + headerLength;
  if (headerEnd > total) throw bad('headerLength', `${headerLength} runs past the end of the ${total}-byte frame`);

  let raw: unknown;
  try {
    raw = packr.unpack(bytes.range(PREFIX_BYTES, headerLength).buf);
  } catch (e) {
    throw bad('header', `is not valid msgpack (${e instanceof Error ? e.message : String(e)})`);
  }
  const header = checkHeader(raw, options.maxTensors ?? DEFAULT_MAX_TENSORS);

  // Coded tensors decode to their dims' size: together no more than a raw frame could carry.
  let decodedTotal = 0;
  for (const d of header.tensors) if (d.codec) decodedTotal += elementCount(d.dims) * DTYPE_SIZE[d.dtype];
  if (decodedTotal > options.maxFrameBytes)
    throw new CleaveError(
      'E_TOO_LARGE',
      `bad frame: its coded tensors decode to ${decodedTotal} bytes, more than maxFrameBytes ${options.maxFrameBytes}`,
    );
  const tensors: Tensor[] = [];
  let copiedBytes = 0;
  let at = header.tensors.length ? align(headerEnd) : headerEnd;
  for (let i = 0; i < header.tensors.length; i++) {
    const d = header.tensors[i];
    const start = i ? align(at) : at;
    if (start + d.byteLength > total) {
      throw bad(
        `tensors[${i}]`,
        `(${d.name}, ${d.byteLength} bytes at offset ${start}) runs past the end of the ${total}-byte frame`,
      );
    }
    const { buf, copied: split } = bytes.range(start, d.byteLength);
    if (d.codec) {
      const count = elementCount(d.dims);
      const { data } = typedFromBytes(
        d.dtype,
        decodeTensor({ codec: d.codec, lo: d.lo, scale: d.scale }, d.dtype, count, buf, d.name),
      );
      tensors.push({ name: d.name, dtype: d.dtype, dims: d.dims, data });
      at = start + d.byteLength;
      continue;
    }
    const { data, copied } = typedFromBytes(d.dtype, buf);
    if (split || copied) copiedBytes += d.byteLength;
    tensors.push({ name: d.name, dtype: d.dtype, dims: d.dims, data });
    at = start + d.byteLength;
  }
  if (at !== total) throw bad('byteLength', `the frame has ${total - at} bytes after its last tensor`);
  return { header, tensors, byteLength: total, copiedBytes };
}
