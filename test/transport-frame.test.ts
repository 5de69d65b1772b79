import { describe, expect, it } from 'vitest';
import { badFrame, rawFrame } from './helpers/frames.js';
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import {
  ALIGN,
  DTYPE_SIZE,
  DTYPES,
  PREFIX_BYTES,
  decodeFrame,
  encodeFrame,
  tensorBytes,
  type Dtype,
  type Tensor,
  type TensorData,
} from '../src/transport/frame.js';

const MAX = 1 << 30;
const packr = new Packr({ useRecords: false, mapsAsObjects: true });

/** A tensor of `n` elements of `dtype` with distinct, recognisable values. */
function sample(dtype: Dtype, n: number, name: string = dtype): Tensor {
  const data: TensorData = (() => {
    switch (dtype) {
      case 'float32':
        return Float32Array.from({ length: n }, (_, i) => i * 1.5 - 7.25);
      case 'float64':
        return Float64Array.from({ length: n }, (_, i) => i * Math.PI - 1e10);
      case 'float16':
        return Uint16Array.from({ length: n }, (_, i) => 0x3c00 + i); // raw half-precision bits
      case 'int8':
        return Int8Array.from({ length: n }, (_, i) => (i % 256) - 128);
      case 'uint8':
        return Uint8Array.from({ length: n }, (_, i) => (i * 7) % 256);
      case 'int16':
        return Int16Array.from({ length: n }, (_, i) => i * 300 - 30000);
      case 'uint16':
        return Uint16Array.from({ length: n }, (_, i) => i * 601);
      case 'int32':
        return Int32Array.from({ length: n }, (_, i) => i * 100_003 - 2 ** 30);
      case 'uint32':
        return Uint32Array.from({ length: n }, (_, i) => 2 ** 32 - 1 - i * 13);
      case 'int64':
        return BigInt64Array.from({ length: n }, (_, i) => BigInt(i) * 10_000_000_007n - 2n ** 62n);
      case 'uint64':
        return BigUint64Array.from({ length: n }, (_, i) => 2n ** 64n - 1n - BigInt(i));
      case 'bool':
        return Uint8Array.from({ length: n }, (_, i) => (i % 3 === 0 ? 1 : 0));
    }
  })();
  return { name, dtype, dims: [n], data };
}

const concat = (chunks: Buffer[]): Buffer => Buffer.concat(chunks);

/** `bytes` copied into fresh memory at `offset` bytes past an 8-aligned start. */
function placed(bytes: Buffer, offset: number): Buffer {
  const ab = new ArrayBuffer(bytes.length + offset);
  const b = Buffer.from(ab, offset, bytes.length);
  bytes.copy(b);
  return b;
}

const goodHeader = (tensors: unknown[] = []): Record<string, unknown> => ({
  kind: 'infer',
  id: 'r1',
  epoch: 3,
  route: [{ host: 'd', tier: 'device', from: 0, to: 2 }],
  stage: 0,
  deadline: 0,
  seq: 1,
  tensors,
});

describe('frame codec', () => {
  it('round-trips every dtype, with the raw bytes where the layout says', () => {
    const tensors = DTYPES.map((d, i) => sample(d, 5 + i)); // odd lengths force padding between tensors
    const route = [
      { host: 'dev', tier: 'device', from: 0, to: 3 },
      { host: 'cl', tier: 'cloud', from: 3, to: 9 },
    ];
    const enc = encodeFrame(
      { kind: 'infer', id: 'req-7', epoch: 12, route, stage: 1, deadline: 1234.5, seq: 9 },
      tensors,
      {
        coalesceBytes: 0,
      },
    );
    const raw = concat(enc.chunks);
    expect(raw.length).toBe(enc.byteLength);

    // Prefix: magic, version, header length (LE); then the msgpack header.
    expect(raw.subarray(0, 3).toString('latin1')).toBe('CLV');
    expect(raw[3]).toBe(1);
    const hlen = raw.readUInt32LE(4);
    const header = packr.unpack(raw.subarray(PREFIX_BYTES, PREFIX_BYTES + hlen)) as Record<string, unknown>;
    expect(header).toMatchObject({ kind: 'infer', id: 'req-7', epoch: 12, route, stage: 1, deadline: 1234.5, seq: 9 });
    expect(header.tensors).toEqual(
      tensors.map((t) => ({ name: t.name, dtype: t.dtype, dims: [...t.dims], byteLength: t.data.byteLength })),
    );

    // Each tensor 8-aligned from the frame start, padding zeroed, bytes identical, nothing after the last.
    let at = PREFIX_BYTES + hlen;
    for (const t of tensors) {
      const start = Math.ceil(at / ALIGN) * ALIGN;
      expect(raw.subarray(at, start).every((b) => b === 0)).toBe(true);
      expect(raw.subarray(start, start + t.data.byteLength).equals(tensorBytes(t.data))).toBe(true);
      at = start + t.data.byteLength;
    }
    expect(at).toBe(raw.length);

    const dec = decodeFrame(placed(raw, 0), { maxFrameBytes: MAX });
    expect(dec.header).toMatchObject({
      kind: 'infer',
      id: 'req-7',
      epoch: 12,
      stage: 1,
      deadline: 1234.5,
      seq: 9,
      route,
    });
    expect(dec.tensors.map((t) => [t.name, t.dtype, t.dims])).toEqual(
      tensors.map((t) => [t.name, t.dtype, [...t.dims]]),
    );
    for (let i = 0; i < tensors.length; i++) {
      expect(dec.tensors[i].data.constructor).toBe(tensors[i].data.constructor);
      expect(Array.from(dec.tensors[i].data as ArrayLike<unknown>)).toEqual(
        Array.from(tensors[i].data as ArrayLike<unknown>),
      );
    }
    expect(dec.copiedBytes).toBe(0);
  });

  it('makes views, not copies, when the buffer is aligned', () => {
    const tensors = [sample('float32', 1000), sample('int64', 33), sample('float16', 7)];
    const buf = placed(concat(encodeFrame({ kind: 'infer' }, tensors).chunks), 0);
    const dec = decodeFrame(buf, { maxFrameBytes: MAX });
    expect(dec.copiedBytes).toBe(0);
    for (const t of dec.tensors) expect(t.data.buffer).toBe(buf.buffer);
  });

  it('copies exactly the misaligned tensors, once, into aligned memory', () => {
    const tensors = [sample('float32', 100), sample('uint8', 13), sample('float64', 9), sample('bool', 3)];
    const src = concat(encodeFrame({ kind: 'infer' }, tensors).chunks);
    for (const offset of [1, 2, 3, 4, 5, 6, 7]) {
      const buf = placed(src, offset);
      const dec = decodeFrame(buf, { maxFrameBytes: MAX });
      for (let i = 0; i < tensors.length; i++) {
        const got = dec.tensors[i].data;
        expect(Array.from(got as ArrayLike<unknown>)).toEqual(Array.from(tensors[i].data as ArrayLike<unknown>));
        const size = DTYPE_SIZE[tensors[i].dtype];
        expect(got.byteOffset % size).toBe(0);
        // Byte-sized tensors are always views; wider ones are views exactly when the offset suits them.
        expect(got.buffer === buf.buffer).toBe(offset % size === 0);
      }
      const expected = tensors
        .filter((t) => offset % DTYPE_SIZE[t.dtype] !== 0)
        .reduce((n, t) => n + t.data.byteLength, 0);
      expect(dec.copiedBytes).toBe(expected);
    }
  });

  it('decodes the encoder chunks as fragments without copying the tensors', () => {
    const tensors = [sample('float32', 50_000), sample('int32', 3), sample('float64', 20_000)];
    const enc = encodeFrame({ kind: 'result', id: 'x' }, tensors);
    expect(enc.chunks.length).toBeGreaterThan(1);
    expect(enc.chunks.some((c) => c.buffer === tensors[0].data.buffer)).toBe(true); // the tensor itself, not a copy
    const dec = decodeFrame(enc.chunks, { maxFrameBytes: MAX });
    expect(dec.copiedBytes).toBe(0);
    expect(dec.tensors[0].data.buffer).toBe(tensors[0].data.buffer);
    expect(dec.tensors[2].data.buffer).toBe(tensors[2].data.buffer);
  });

  it('coalesces small frames into one buffer', () => {
    const enc = encodeFrame({ kind: 'infer' }, [sample('float32', 10), sample('int8', 3)]);
    expect(enc.chunks.length).toBe(1);
    expect(enc.chunks[0].length).toBe(enc.byteLength);
  });

  it('round-trips random tensors split into random fragments', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom(...DTYPES), fc.nat(40)), { maxLength: 5 }),
        fc.array(fc.nat(2000), { maxLength: 6 }),
        fc.nat(7),
        (specs, cuts, offset) => {
          const tensors = specs.map(([d, n], i) => sample(d, n, `t${i}`));
          const raw = placed(
            concat(encodeFrame({ kind: 'infer', id: 'p' }, tensors, { coalesceBytes: 0 }).chunks),
            offset,
          );
          const points = [...new Set(cuts.map((c) => c % (raw.length + 1)))].sort((a, b) => a - b);
          const parts: Buffer[] = [];
          let prev = 0;
          for (const p of [...points, raw.length]) {
            parts.push(raw.subarray(prev, p));
            prev = p;
          }
          const dec = decodeFrame(parts, { maxFrameBytes: MAX });
          expect(dec.tensors.length).toBe(tensors.length);
          for (let i = 0; i < tensors.length; i++) {
            expect(Buffer.from(tensorBytes(dec.tensors[i].data)).equals(tensorBytes(tensors[i].data))).toBe(true);
            expect(dec.tensors[i].data.byteOffset % DTYPE_SIZE[tensors[i].dtype]).toBe(0);
          }
        },
      ),
      { numRuns: 150 },
    );
  });

  it('refuses tensors whose data does not match their dims at encode time', () => {
    badFrame(
      () => encodeFrame({ kind: 'infer' }, [{ name: 'x', dtype: 'float32', dims: [2, 3], data: new Float32Array(5) }]),
      /tensors\[0\].*dims \[2,3\]/,
      'E_BAD_INPUT',
    );
  });
});

describe('frame decoder rejects malformed frames, naming the field', () => {
  const opts = { maxFrameBytes: MAX };
  const good = concat(encodeFrame({ kind: 'infer', id: 'a' }, [sample('float32', 4), sample('int64', 2)]).chunks);

  it('bad magic', () => {
    const b = Buffer.from(good);
    b[0] = 0x58;
    badFrame(() => decodeFrame(b, opts), /magic/);
  });

  it('unsupported version', () => {
    badFrame(() => decodeFrame(rawFrame(goodHeader(), undefined, { version: 9 }), opts), /version/);
  });

  it('truncated prefix', () => {
    badFrame(() => decodeFrame(good.subarray(0, 5), opts), /prefix/);
    badFrame(() => decodeFrame(Buffer.alloc(0), opts), /prefix/);
  });

  it('header length past the end', () => {
    const b = Buffer.from(good);
    b.writeUInt32LE(good.length, 4);
    badFrame(() => decodeFrame(b, opts), /headerLength/);
  });

  it('truncated tensor bytes', () => {
    badFrame(() => decodeFrame(good.subarray(0, good.length - 3), opts), /tensors\[1\].*runs past the end/);
  });

  it('trailing bytes after the last tensor', () => {
    badFrame(() => decodeFrame(Buffer.concat([good, Buffer.alloc(8)]), opts), /byteLength.*after its last tensor/);
  });

  it('two tensors of one name, a tensor named __proto__, an infinite deadline', () => {
    const t = { name: 'x', dtype: 'float32', dims: [1], byteLength: 4 };
    badFrame(
      () => decodeFrame(rawFrame(goodHeader([t, t]), Buffer.alloc(16)), opts),
      /tensors\[1\]\.name.*'x' names two tensors/,
    );
    badFrame(
      () => decodeFrame(rawFrame(goodHeader([{ ...t, name: '__proto__' }]), Buffer.alloc(8)), opts),
      /tensors\[0\]\.name.*'__proto__' is not a tensor name/,
    );
    badFrame(() => decodeFrame(rawFrame({ ...goodHeader(), deadline: Infinity }), opts), /deadline/);
  });

  it('dims x element size != byteLength', () => {
    const h = goodHeader([{ name: 'x', dtype: 'float32', dims: [2, 3], byteLength: 20 }]);
    badFrame(() => decodeFrame(rawFrame(h, Buffer.alloc(20)), opts), /tensors\[0\]\.byteLength/);
  });

  it('unknown dtype', () => {
    const h = goodHeader([{ name: 'x', dtype: 'string', dims: [1], byteLength: 4 }]);
    badFrame(() => decodeFrame(rawFrame(h, Buffer.alloc(4)), opts), /tensors\[0\]\.dtype/);
  });

  it('bad dims', () => {
    const h = goodHeader([{ name: 'x', dtype: 'uint8', dims: [-1], byteLength: 1 }]);
    badFrame(() => decodeFrame(rawFrame(h, Buffer.alloc(1)), opts), /tensors\[0\]\.dims/);
  });

  it('too large', () => {
    badFrame(() => decodeFrame(good, { maxFrameBytes: good.length - 1 }), /maxFrameBytes/, 'E_TOO_LARGE');
  });

  it('too many tensors', () => {
    const descs = Array.from({ length: 5 }, () => ({ name: 'x', dtype: 'uint8', dims: [0], byteLength: 0 }));
    badFrame(() => decodeFrame(rawFrame(goodHeader(descs)), { maxFrameBytes: MAX, maxTensors: 4 }), /tensors has 5/);
  });

  it('header fields of the wrong type', () => {
    badFrame(() => decodeFrame(rawFrame({ ...goodHeader(), kind: 'steal' }), opts), /kind/);
    badFrame(() => decodeFrame(rawFrame({ ...goodHeader(), id: 5 }), opts), /\bid\b/);
    badFrame(() => decodeFrame(rawFrame({ ...goodHeader(), epoch: -1 }), opts), /epoch/);
    badFrame(() => decodeFrame(rawFrame({ ...goodHeader(), route: [{ host: 1 }] }), opts), /route\[0\]\.host/);
    badFrame(() => decodeFrame(rawFrame({ ...goodHeader(), kind: 'error' }), opts), /\berror\b/);
    badFrame(() => decodeFrame(rawFrame([1, 2, 3]), opts), /header is not a map/);
  });

  it('header that is not msgpack', () => {
    const b = Buffer.alloc(PREFIX_BYTES + 2);
    b.write('CLV', 0, 'latin1');
    b[3] = 1;
    b.writeUInt32LE(2, 4);
    b[8] = 0xc1; // never used in msgpack
    badFrame(() => decodeFrame(b, opts), /header/);
  });
});
