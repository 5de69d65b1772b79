/**
 * Wire codecs: how a tensor's bytes travel on one hop. Pure: node:zlib's brotli and typed-array loops,
 * synchronous except `encodeTensorAsync`, which runs brotli in libuv's thread pool. The frame codec
 * (frame.ts) applies them, the planner chooses one per hop.
 *
 * | codec         | lossless | what it does                                                                 |
 * | ---           | ---      | ---                                                                          |
 * | `raw`         | yes      | the tensor's own bytes                                                       |
 * | `brotli`      | yes      | bytes shuffled by element (byte 0 of every element, then byte 1, ...), then brotli quality 1 |
 * | `fp16`        | no       | float32 -> IEEE half (round to nearest even), 2 bytes per element           |
 * | `fp16-brotli` | no       | `fp16`, then its bytes shuffled and brotli quality 1                        |
 * | `int8`        | no       | float32 -> uint8 by a per-tensor affine map `x = lo + q x scale` over [min, max]; a tensor with no such map (NaN, infinity, a range under float32's step) travels losslessly |
 * | `int8-brotli` | no       | `int8`, then brotli quality 1                                               |
 *
 * The lossy codecs change float32 tensors only; a tensor of any other dtype travels raw under them (and
 * shuffled + brotli under `fp16-brotli` and `int8-brotli`). Post-ReLU activations are a third to a half zeros: `int8` keeps
 * a zero exact when the tensor's minimum is 0, and brotli then finds long runs.
 *
 * A coded tensor's description in the frame header carries `codec` and, for `int8`, `lo` and `scale`; its
 * `byteLength` is the coded length. The decoder refuses a coded tensor whose decoded length is not what its
 * dims and dtype say, and never inflates past that length (a small frame cannot make it allocate more).
 */
import zlib from 'node:zlib';
import { CleaveError } from '../errors.js';
import { DTYPE_SIZE, type Dtype } from './dtype.js';

export type CodecName = 'raw' | 'brotli' | 'fp16' | 'fp16-brotli' | 'int8' | 'int8-brotli';

export const CODECS: readonly CodecName[] = ['raw', 'brotli', 'fp16', 'fp16-brotli', 'int8', 'int8-brotli'];

/** The codec whose decoded values a codec gives (a lossless stage on top changes only the bytes). */
export function valuesOf(c: CodecName): CodecName {
  return c === 'int8-brotli' ? 'int8' : c === 'fp16-brotli' ? 'fp16' : c;
}
/** The codecs that give back exactly the bytes they were given. */
export const LOSSLESS_CODECS: readonly CodecName[] = ['raw', 'brotli'];

export function isCodec(s: unknown): s is CodecName {
  return typeof s === 'string' && (CODECS as readonly string[]).includes(s);
}

/**
 * Why a `codecs` setting (a list the planner may choose from, null for all) names no codec of this wire;
 * null when it is fine. The planner takes codec names as strings; this is the check from outside.
 */
export function codecListProblem(v: unknown): string | null {
  if (v === null || v === undefined || !Array.isArray(v)) return null; // the planner's check says the rest
  const unknown = v.find((c) => !isCodec(c) || c === 'raw');
  if (unknown === undefined) return null;
  return `codecs: '${String(unknown)}' is not a codec (known: ${CODECS.filter((c) => c !== 'raw').join(', ')}; raw is always allowed)`;
}

export function isLossless(c: CodecName): boolean {
  return LOSSLESS_CODECS.includes(c);
}

/** What a coded tensor's header entry carries beside its dtype and dims. */
export interface CodecParams {
  codec: CodecName;
  /** int8 codecs: the value of q = 0, and the step per q. */
  lo?: number;
  scale?: number;
}

export interface Encoded {
  bytes: Buffer;
  /** Absent for `raw` (and for a tensor the codec leaves raw). */
  params?: CodecParams;
}

const BROTLI_QUALITY = 1;

const brotliOptions = (bytes: Uint8Array): zlib.BrotliOptions => ({
  params: {
    [zlib.constants.BROTLI_PARAM_QUALITY]: BROTLI_QUALITY,
    [zlib.constants.BROTLI_PARAM_SIZE_HINT]: bytes.byteLength,
  },
});

function brotli(bytes: Uint8Array): Buffer {
  return zlib.brotliCompressSync(bytes, brotliOptions(bytes));
}

/** Whether a codec's last stage is brotli, the costly one, which `encodeTensorAsync` runs off the event loop. */
export function usesBrotli(c: CodecName): boolean {
  return c === 'brotli' || c === 'fp16-brotli' || c === 'int8-brotli';
}

function unbrotli(bytes: Uint8Array, expected: number, name: string): Buffer {
  let out: Buffer;
  try {
    // maxOutputLength: a frame that claims a small tensor cannot make the receiver inflate a big one.
    out = zlib.brotliDecompressSync(bytes, { maxOutputLength: Math.max(expected, 1) });
  } catch (e) {
    throw new CleaveError(
      'E_BAD_FRAME',
      `bad frame: tensor '${name}' is not valid brotli data of ${expected} bytes (${e instanceof Error ? e.message : String(e)})`,
    );
  }
  if (out.length !== expected)
    throw new CleaveError(
      'E_BAD_FRAME',
      `bad frame: tensor '${name}' decodes to ${out.length} bytes, its dims and dtype say ${expected}`,
    );
  return out;
}

/** `bytes` read as a `rows` x `cols` matrix of bytes, written out transposed (`cols` x `rows`). */
function transpose(bytes: Uint8Array, rows: number, cols: number): Buffer {
  const out = Buffer.allocUnsafe(bytes.byteLength);
  if (rows === 1 || cols === 1) {
    out.set(bytes);
    return out;
  }
  for (let c = 0; c < cols; c++) {
    const base = c * rows;
    for (let r = 0, j = c; r < rows; r++, j += cols) out[base + r] = bytes[j];
  }
  return out;
}

/** Byte k of every `width`-byte element, for k = 0..width-1, one plane after another. */
export function shuffle(bytes: Uint8Array, width: number): Buffer {
  return transpose(bytes, bytes.byteLength / width, width);
}

/** The elements back from their byte planes (`shuffle`'s inverse). */
export function unshuffle(bytes: Uint8Array, width: number): Buffer {
  return transpose(bytes, width, bytes.byteLength / width);
}

// float32 <-> float16 through one shared scratch word.
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE 754 half bits of a float32, rounded to nearest even; overflow to infinity, NaN kept NaN. */
export function toHalf(x: number): number {
  f32[0] = x;
  const b = u32[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && h & 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++;
  e = h >>> 10;
  return sign | (e >= 0x1f ? 0x7c00 : h);
}

const HALF_TO_FLOAT = new Float32Array(65536);
for (let h = 0; h < 65536; h++) {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  HALF_TO_FLOAT[h] =
    e === 0 ? sign * m * 2 ** -24 : e === 0x1f ? (m ? NaN : sign * Infinity) : sign * (1 + m / 1024) * 2 ** (e - 15);
}

/**
 * The affine uint8 form of `v`, or null when it has none: a NaN or an infinity (an attention mask of -inf,
 * say) has no finite range, and a range so small that its step rounds to 0 in float32 has no step. The
 * encoders then send the tensor losslessly instead.
 */
function quantize(v: Float32Array): { q: Uint8ClampedArray; lo: number; scale: number } | null {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < v.length; i++) {
    const x = v[i];
    if (!Number.isFinite(x)) return null;
    if (x < lo) lo = x;
    if (x > hi) hi = x;
  }
  if (v.length === 0) lo = hi = 0;
  lo = Math.fround(lo);
  const scale = Math.fround(hi > lo ? (hi - lo) / 255 : 1);
  if (!(scale > 0) || !Number.isFinite(scale)) return null;
  const inv = 1 / scale;
  // A clamped array rounds to nearest (ties to even) and clamps to [0, 255] on assignment.
  const q = new Uint8ClampedArray(v.length);
  for (let i = 0; i < v.length; i++) q[i] = (v[i] - lo) * inv;
  return { q, lo, scale };
}

const asBuffer = (a: ArrayBufferView): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/**
 * Encode one tensor's bytes (`bytes` is its raw little-endian memory). `raw` returns the same memory; the
 * others return fresh buffers.
 */
export function encodeTensor(codec: CodecName, dtype: Dtype, bytes: Buffer): Encoded {
  if (codec === 'raw') return { bytes };
  if (usesBrotli(codec)) {
    const { pre, params } = brotliInput(codec, dtype, bytes);
    return { bytes: brotli(pre), params };
  }
  if (dtype !== 'float32') return { bytes };
  const v = floatView(bytes);
  if (codec === 'fp16') return { bytes: halves(v), params: { codec } };
  const quantized = quantize(v);
  if (!quantized) return { bytes }; // no affine form: raw
  const { q, lo, scale } = quantized;
  return { bytes: asBuffer(q), params: { codec, lo, scale } };
}

/** IEEE half bits of every element. */
function halves(v: Float32Array): Buffer {
  const h = new Uint16Array(v.length);
  for (let i = 0; i < v.length; i++) h[i] = toHalf(v[i]);
  return asBuffer(h);
}

/**
 * `encodeTensor`, with the brotli stage run in libuv's thread pool instead of on the event loop (the element
 * transforms before it stay here: they are a pass over the data, brotli is several). Same bytes.
 */
export async function encodeTensorAsync(codec: CodecName, dtype: Dtype, bytes: Buffer): Promise<Encoded> {
  if (!usesBrotli(codec)) return encodeTensor(codec, dtype, bytes);
  const { pre, params } = brotliInput(codec, dtype, bytes);
  const out = await new Promise<Buffer>((resolve, reject) =>
    zlib.brotliCompress(pre, brotliOptions(pre), (err, res) => (err ? reject(err) : resolve(res))),
  );
  return { bytes: out, params };
}

/** What a brotli codec compresses, and the params its tensor will carry. */
function brotliInput(codec: CodecName, dtype: Dtype, bytes: Buffer): { pre: Buffer; params: CodecParams } {
  if (dtype !== 'float32' || codec === 'brotli')
    return { pre: shuffle(bytes, DTYPE_SIZE[dtype]), params: { codec: 'brotli' } };
  const v = floatView(bytes);
  if (codec === 'fp16-brotli') return { pre: shuffle(halves(v), 2), params: { codec } };
  const quantized = quantize(v);
  if (!quantized) return { pre: shuffle(bytes, 4), params: { codec: 'brotli' } }; // no affine form: lossless
  const { q, lo, scale } = quantized;
  return { pre: asBuffer(q), params: { codec, lo, scale } };
}

/** The float32 elements of `bytes`, as a view when aligned. */
function floatView(bytes: Uint8Array): Float32Array {
  if (bytes.byteOffset % 4 === 0) return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return new Float32Array(copy.buffer);
}

/** Coded bytes a `dtype` tensor of `count` elements must arrive in, for the codecs whose size is fixed. */
function fixedLength(codec: CodecName, count: number): number | undefined {
  if (codec === 'fp16') return count * 2;
  if (codec === 'int8') return count;
  return undefined;
}

/** Why `params` cannot describe a coded `dtype` tensor; null when they can. */
export function paramsProblem(params: Record<string, unknown>, dtype: Dtype): string | null {
  if (!isCodec(params.codec) || params.codec === 'raw')
    return `codec '${String(params.codec)}' is not one of ${CODECS.filter((c) => c !== 'raw').join(', ')}`;
  const c = params.codec;
  if (c !== 'brotli' && dtype !== 'float32') return `codec '${c}' applies to float32 tensors, not ${dtype}`;
  if (c === 'int8' || c === 'int8-brotli') {
    if (typeof params.lo !== 'number' || !Number.isFinite(params.lo)) return 'lo is not a finite number';
    if (typeof params.scale !== 'number' || !Number.isFinite(params.scale) || params.scale <= 0)
      return 'scale is not a finite positive number';
  }
  return null;
}

/**
 * Decode one coded tensor of `count` elements of `dtype` into fresh aligned memory. `params` must have
 * passed `paramsProblem`. Throws E_BAD_FRAME naming the tensor when the bytes do not decode to its size.
 */
export function decodeTensor(
  params: CodecParams,
  dtype: Dtype,
  count: number,
  bytes: Uint8Array,
  name: string,
): Buffer {
  const size = count * DTYPE_SIZE[dtype];
  const fixed = fixedLength(params.codec, count);
  if (fixed !== undefined && bytes.byteLength !== fixed)
    throw new CleaveError(
      'E_BAD_FRAME',
      `bad frame: tensor '${name}' (${params.codec}) has ${bytes.byteLength} bytes, ${count} elements need ${fixed}`,
    );
  switch (params.codec) {
    case 'brotli':
      return unshuffle(unbrotli(bytes, size, name), DTYPE_SIZE[dtype]);
    case 'fp16':
    case 'fp16-brotli': {
      const h = params.codec === 'fp16' ? bytes : unshuffle(unbrotli(bytes, count * 2, name), 2);
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = HALF_TO_FLOAT[h[2 * i] | (h[2 * i + 1] << 8)];
      return asBuffer(out);
    }
    case 'int8':
    case 'int8-brotli': {
      const q = params.codec === 'int8' ? bytes : unbrotli(bytes, count, name);
      const lo = params.lo as number;
      const scale = params.scale as number;
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = lo + q[i] * scale;
      return asBuffer(out);
    }
    default:
      throw new CleaveError(
        'E_BAD_FRAME',
        `bad frame: tensor '${name}' has codec '${params.codec}', which is not coded`,
      );
  }
}
