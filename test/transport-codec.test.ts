/**
 * Wire codecs: each codec's round trip (exact for the lossless ones, bounded for the lossy ones), half
 * precision at its edges, frames that carry coded tensors, and coded frames that lie about their contents.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { badFrame, rawFrame } from './helpers/frames.js';
import {
  CODECS,
  codecListProblem,
  decodeTensor,
  encodeTensor,
  encodeTensorAsync,
  shuffle,
  toHalf,
  unshuffle,
  type CodecName,
} from '../src/transport/codec.js';
import { codedSize } from '../src/runtime/local/codec-profile.js';
import { decodeFrame, encodeFrame, type RouteStage } from '../src/transport/frame.js';

const MAX = 1 << 30;

/** Post-ReLU-like activations: a third zeros, the rest spread over [0, 6). */
function activations(n: number, seed = 1): Float32Array {
  let s = seed;
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const u = s / 4294967296;
    v[i] = u < 0.35 ? 0 : u * 6;
  }
  return v;
}

function roundTrip(codec: CodecName, v: Float32Array): { out: Float32Array; bytes: number } {
  const raw = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  const enc = encodeTensor(codec, 'float32', raw);
  if (!enc.params) return { out: v, bytes: enc.bytes.length };
  const dec = decodeTensor(enc.params, 'float32', v.length, enc.bytes, 't');
  return { out: new Float32Array(dec.buffer, dec.byteOffset, v.length), bytes: enc.bytes.length };
}

const header = (tensors: unknown[]): Record<string, unknown> => ({
  kind: 'infer',
  id: 'r1',
  epoch: 1,
  route: [{ host: 'd', tier: 'device', from: 0, to: 0, codec: 'int8' }],
  stage: 0,
  deadline: 0,
  seq: 1,
  tensors,
});

describe('wire codecs', () => {
  const v = activations(10_000);

  it('brotli gives back every bit, smaller for activations full of zeros', () => {
    const withSpecials = Float32Array.from([...v.subarray(0, 100), NaN, -0, Infinity, -Infinity, 1e-45]);
    const { out, bytes } = roundTrip('brotli', withSpecials);
    expect(Buffer.from(out.buffer, out.byteOffset, out.byteLength)).toEqual(Buffer.from(withSpecials.buffer));
    expect(roundTrip('brotli', v).bytes).toBeLessThan(v.byteLength * 0.8);
    expect(bytes).toBeGreaterThan(0);
  });

  it('fp16 halves the bytes with a relative error under 2^-11; fp16-brotli gives the same values in fewer', () => {
    const { out, bytes } = roundTrip('fp16', v);
    expect(bytes).toBe(v.length * 2);
    for (let i = 0; i < v.length; i++) expect(Math.abs(out[i] - v[i])).toBeLessThanOrEqual(Math.abs(v[i]) * 2 ** -11);
    const both = roundTrip('fp16-brotli', v);
    expect(both.bytes).toBeLessThan(v.length * 2 * 0.8);
    expect(Array.from(both.out)).toEqual(Array.from(out));
  });

  it('int8 quarters the bytes, errs by at most half a step, and keeps zeros exact when the minimum is 0', () => {
    const { out, bytes } = roundTrip('int8', v);
    expect(bytes).toBe(v.length);
    const step = 6 / 255;
    for (let i = 0; i < v.length; i++) {
      expect(Math.abs(out[i] - v[i])).toBeLessThanOrEqual(step / 2 + 1e-6);
      if (v[i] === 0) expect(out[i]).toBe(0);
    }
    const both = roundTrip('int8-brotli', v);
    expect(both.bytes).toBeLessThan(v.length * 0.8);
    expect(Array.from(both.out)).toEqual(Array.from(out));
  });

  it('int8 of a constant tensor is exact; one with no affine form (NaN, infinity, a range under a float32 step) travels losslessly', () => {
    expect(Array.from(roundTrip('int8', new Float32Array(8).fill(3.5)).out)).toEqual(new Array(8).fill(3.5));
    for (const odd of [
      Float32Array.from([1, NaN, 2]),
      Float32Array.from([0, -Infinity, 0, 0]), // an additive attention mask
      Float32Array.from([0, 1e-43, 5e-44]), // its step would round to 0: the receiver refused such frames
    ])
      for (const c of ['int8', 'int8-brotli'] as const) {
        const route = [
          { host: 'd', tier: 'device', from: 0, to: 0 },
          { host: 'e', tier: 'edge', from: 0, to: 1, codec: c },
        ];
        const f = encodeFrame({ kind: 'infer', id: 'q', route, stage: 1 }, [
          { name: 'm', dtype: 'float32', dims: [odd.length], data: odd },
        ]);
        const got = decodeFrame(Buffer.concat(f.chunks), { maxFrameBytes: MAX }).tensors[0].data as Float32Array;
        expect(Buffer.from(got.buffer, got.byteOffset, got.byteLength), c).toEqual(Buffer.from(odd.buffer));
      }
  });

  it('non-float tensors travel raw under lossy codecs and exactly under brotli', () => {
    const ids = BigInt64Array.from([1n, -2n, 3n ** 30n, 0n]);
    const raw = Buffer.from(ids.buffer);
    expect(encodeTensor('int8', 'int64', raw).params).toBeUndefined();
    expect(encodeTensor('fp16', 'int64', raw).bytes).toBe(raw);
    const enc = encodeTensor('int8-brotli', 'int64', raw);
    expect(enc.params?.codec).toBe('brotli');
    expect(decodeTensor(enc.params!, 'int64', 4, enc.bytes, 'ids')).toEqual(raw);
  });

  it('half precision at its edges: rounding to even, subnormals, overflow, NaN', () => {
    expect(toHalf(1)).toBe(0x3c00);
    expect(toHalf(-2)).toBe(0xc000);
    expect(toHalf(65504)).toBe(0x7bff);
    expect(toHalf(65520)).toBe(0x7c00); // rounds up past the largest half: infinity
    expect(toHalf(1e6)).toBe(0x7c00);
    expect(toHalf(-Infinity)).toBe(0xfc00);
    expect(toHalf(NaN) & 0x7c00).toBe(0x7c00);
    expect(toHalf(NaN) & 0x3ff).not.toBe(0);
    expect(toHalf(2 ** -24)).toBe(0x0001); // the smallest subnormal
    expect(toHalf(2 ** -26)).toBe(0); // below half of it
    expect(toHalf(-0) >>> 15).toBe(1);
    expect(toHalf(1 + 2 ** -11)).toBe(0x3c00); // a tie goes to the even mantissa
    expect(toHalf(1 + 3 * 2 ** -11)).toBe(0x3c02);
  });

  it('shuffle and unshuffle are inverses for every element width', () => {
    fc.assert(
      fc.property(fc.constantFrom(1, 2, 4, 8), fc.integer({ min: 0, max: 50 }), (w, n) => {
        const b = Buffer.from(Array.from({ length: w * n }, (_, i) => (i * 37) % 256));
        expect(unshuffle(shuffle(b, w), w)).toEqual(b);
      }),
    );
  });

  it("the profiler's sampled size of a big tensor is close to its whole coded size, and exact for fixed-size codecs", () => {
    const big = activations(400_000, 3);
    const raw = Buffer.from(big.buffer);
    for (const c of ['brotli', 'int8-brotli', 'fp16-brotli'] as const) {
      const whole = encodeTensor(c, 'float32', raw).bytes.length;
      expect(Math.abs(codedSize(c, 'float32', raw) / whole - 1)).toBeLessThan(0.1);
    }
    expect(codedSize('int8', 'float32', raw)).toBe(400_000);
    expect(codedSize('fp16', 'float32', raw)).toBe(800_000);
    expect(codedSize('raw', 'float32', raw)).toBe(1_600_000);
  });

  it('encodeTensorAsync (brotli off the event loop) gives the very bytes encodeTensor does', async () => {
    const raw = Buffer.from(v.buffer);
    for (const c of CODECS) {
      const sync = encodeTensor(c, 'float32', raw);
      const async_ = await encodeTensorAsync(c, 'float32', raw);
      expect(Buffer.compare(async_.bytes, sync.bytes), c).toBe(0);
      expect(async_.params).toEqual(sync.params);
    }
    const ids = Buffer.from(BigInt64Array.from([5n, -6n]).buffer);
    expect((await encodeTensorAsync('int8-brotli', 'int64', ids)).params).toEqual({ codec: 'brotli' });
  });

  it('a frame takes a tensor coded ahead in its codec as it is, and codes it again for another', async () => {
    const x = v.subarray(0, 1024);
    const enc = await encodeTensorAsync('brotli', 'float32', Buffer.from(x.buffer, x.byteOffset, x.byteLength));
    const t = { name: 'x', dtype: 'float32' as const, dims: [1024], data: x, coded: { codec: 'brotli', ...enc } };
    const route = [
      { host: 'd', tier: 'device', from: 0, to: 1 },
      { host: 'e', tier: 'edge', from: 1, to: 2, codec: 'brotli' as const },
    ];
    const f = encodeFrame({ kind: 'infer', id: 'q', route, stage: 1 }, [t], { coalesceBytes: 0 });
    expect(f.chunks).toContain(enc.bytes); // the very buffer, not a copy or a second compression
    const d = decodeFrame(f.chunks, { maxFrameBytes: MAX });
    expect(Array.from(d.tensors[0].data as Float32Array)).toEqual(Array.from(x));
    const other = encodeFrame(
      { kind: 'infer', id: 'q', route: [route[0], { ...route[1], codec: 'int8' as const }], stage: 1 },
      [t],
    );
    expect(other.header.tensors[0].codec).toBe('int8');
  });

  it('a codec setting that names no codec is refused by name', () => {
    expect(codecListProblem(['brotli', 'int8'])).toBeNull();
    expect(codecListProblem(null)).toBeNull();
    expect(codecListProblem(['zstd'])).toMatch(/'zstd' is not a codec/);
    expect(codecListProblem(['raw'])).toMatch(/raw is always allowed/);
  });
});

describe('frames with coded tensors', () => {
  const route = (codec?: CodecName): RouteStage[] => [
    { host: 'd', tier: 'device', from: 0, to: 5 },
    { host: 'e', tier: 'edge', from: 5, to: 9, ...(codec ? { codec } : {}) },
  ];
  const x = activations(4096);
  const ids = Int32Array.from({ length: 7 }, (_, i) => i * 1000 - 3);
  const tensors = [
    { name: 'x', dtype: 'float32' as const, dims: [4, 1024], data: x },
    { name: 'ids', dtype: 'int32' as const, dims: [7], data: ids },
  ];

  it('an infer frame takes the codec its route names for the stage it is addressed to', () => {
    for (const codec of CODECS) {
      const f = encodeFrame({ kind: 'infer', id: 'q', route: route(codec), stage: 1 }, tensors);
      const d = decodeFrame(Buffer.concat(f.chunks), { maxFrameBytes: MAX });
      expect(d.tensors.map((t) => t.name)).toEqual(['x', 'ids']);
      expect(Array.from(d.tensors[1].data as Int32Array)).toEqual(Array.from(ids));
      expect(d.tensors[0].dims).toEqual([4, 1024]);
      const got = d.tensors[0].data as Float32Array;
      expect(got).toBeInstanceOf(Float32Array);
      if (codec === 'raw' || codec === 'brotli') expect(Array.from(got)).toEqual(Array.from(x));
      else for (let i = 0; i < x.length; i++) expect(Math.abs(got[i] - x[i])).toBeLessThan(0.02);
      if (codec !== 'raw') expect(f.byteLength).toBeLessThan(x.byteLength);
    }
  });

  it('results, stage 0 and frames of other kinds stay raw', () => {
    for (const f of [
      encodeFrame({ kind: 'result', id: 'q', route: route('int8'), stage: 1 }, tensors),
      encodeFrame({ kind: 'infer', id: 'q', route: route('int8'), stage: 0 }, tensors),
      encodeFrame({ kind: 'message', route: route('int8'), stage: 1 }, tensors),
    ]) {
      expect(f.header.tensors.map((t) => t.codec)).toEqual([undefined, undefined]);
      expect(f.header.tensors[0].byteLength).toBe(x.byteLength);
    }
  });

  it('refuses coded tensors that lie, naming the tensor, and a codec no wire knows', () => {
    const opts = { maxFrameBytes: MAX };
    const desc = { name: 'x', dtype: 'float32', dims: [4], byteLength: 4, codec: 'int8', lo: 0, scale: 0.1 };
    // int8 with the wrong number of bytes for its elements
    badFrame(
      () => decodeFrame(rawFrame(header([{ ...desc, byteLength: 3 }]), Buffer.alloc(3)), opts),
      /'x' \(int8\) has 3 bytes, 4 elements need 4/,
    );
    badFrame(
      () => decodeFrame(rawFrame(header([{ ...desc, codec: 'zstd' }]), Buffer.alloc(4)), opts),
      /tensors\[0\]\.codec.*'zstd'/,
    );
    badFrame(() => decodeFrame(rawFrame(header([{ ...desc, scale: 0 }]), Buffer.alloc(4)), opts), /scale/);
    badFrame(() => decodeFrame(rawFrame(header([{ ...desc, lo: 'a' }]), Buffer.alloc(4)), opts), /\blo\b/);
    badFrame(
      () => decodeFrame(rawFrame(header([{ ...desc, dtype: 'int32', codec: 'fp16' }]), Buffer.alloc(8)), opts),
      /applies to float32/,
    );
    // brotli bytes that are not brotli, or that inflate to another size
    const junk = Buffer.from('not brotli at all');
    badFrame(
      () => decodeFrame(rawFrame(header([{ ...desc, codec: 'brotli', byteLength: junk.length }]), junk), opts),
      /'x' is not valid brotli data of 16 bytes/,
    );
    const eight = encodeTensor('brotli', 'float32', Buffer.from(new Float32Array(8).buffer)).bytes;
    badFrame(
      () => decodeFrame(rawFrame(header([{ ...desc, codec: 'brotli', byteLength: eight.length }]), eight), opts),
      /'x' (decodes to|is not valid brotli)/,
    );
    // a route stage naming an unknown codec
    const h = header([]);
    badFrame(
      () =>
        decodeFrame(
          rawFrame({ ...h, route: [{ host: 'd', tier: 'device', from: 0, to: 0, codec: 'lz4' }] }, Buffer.alloc(0)),
          opts,
        ),
      /route\[0\]\.codec.*'lz4'/,
    );
  });

  it('a small coded frame cannot claim more decoded bytes than a raw frame may carry', () => {
    const big = { name: 'x', dtype: 'float32', dims: [1 << 20], byteLength: 10, codec: 'brotli' };
    badFrame(
      () => decodeFrame(rawFrame(header([big]), Buffer.alloc(10)), { maxFrameBytes: 1 << 20 }),
      /decode to 4194304 bytes, more than maxFrameBytes/,
      'E_TOO_LARGE',
    );
  });
});
