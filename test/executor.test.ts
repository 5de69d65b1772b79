import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { GraphBuilder } from '../src/graph/zoo/builder.js';
import { onnx } from '../src/graph/onnx.js';
import { CleaveError } from '../src/errors.js';
import { Executor, type TensorLike } from '../src/runtime/executor/executor.js';

/** Conv then Relu, both exposed as outputs. */
function convModel(): Uint8Array {
  const b = new GraphBuilder('conv', 1);
  const x = b.input('input', [1, 3, 8, 8]);
  const w = b.weight('w', [4, 3, 3, 3], 'he');
  const bias = b.weight('b', [4], 'bias');
  const y = b.op('Conv', [x, w, bias], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] });
  const r = b.op('Relu', [y]);
  b.output(y, [1, 4, 8, 8]);
  b.output(r, [1, 4, 8, 8]);
  return b.toBytes();
}

/** Reshape of a [N,3] input to [2,-1]: fine for even N, an ORT error inside the graph for odd N. */
function reshapeModel(): Uint8Array {
  const b = new GraphBuilder('reshape', 1);
  const x = b.input('x', [1, 3]);
  const shape = b.int64s('shape', [2, -1]);
  b.output(b.op('Reshape', [x, shape]));
  const m = onnx.ModelProto.decode(b.toBytes());
  m.graph!.input![0].type!.tensorType!.shape!.dim![0] = onnx.TensorShapeProto.Dimension.create({ dimParam: 'N' });
  return onnx.ModelProto.encode(m).finish();
}

/**
 * Heavy enough that loading and running it in-process visibly blocks the event loop: ~40 MB of MatMul
 * weights to load, and three 64-channel 3x3 convolutions at 160x160 to run.
 */
function heavyModel(): Uint8Array {
  const b = new GraphBuilder('heavy', 7);
  let x = b.input('input', [1, 16, 160, 160]);
  let c = 16;
  for (let i = 0; i < 3; i++) {
    const w = b.weight('w', [64, c, 3, 3], 'he');
    x = b.op('Relu', [b.op('Conv', [x, w], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] })]);
    c = 64;
  }
  const f = b.op('Flatten', [b.op('GlobalAveragePool', [x])]);
  b.output(b.op('MatMul', [f, b.weight('fc', [64, 160_000], 'he')]));
  return b.toBytes();
}

const input = (seed = 1): TensorLike => ({
  dtype: 'float32',
  dims: [1, 3, 8, 8],
  data: Float32Array.from({ length: 192 }, (_, i) => Math.sin(i * seed)),
});

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

async function direct(bytes: Uint8Array, feeds: Record<string, TensorLike>): Promise<Record<string, ort.Tensor>> {
  const s = await ort.InferenceSession.create(bytes);
  const t: Record<string, ort.Tensor> = {};
  for (const [k, v] of Object.entries(feeds)) t[k] = new ort.Tensor(v.dtype, v.data, v.dims);
  const out = await s.run(t);
  await s.release();
  return out;
}

async function rejection(p: Promise<unknown>): Promise<CleaveError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(CleaveError);
    return e as CleaveError;
  }
  throw new Error('expected a rejection');
}

/** Largest lateness of a 5 ms interval timer while `work` runs: how long the event loop was blocked. */
async function maxLoopLag(work: () => Promise<unknown>): Promise<number> {
  let last = performance.now();
  let max = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    max = Math.max(max, now - last - 5);
    last = now;
  }, 5);
  try {
    await work();
    await new Promise((r) => setTimeout(r, 10));
  } finally {
    clearInterval(timer);
  }
  return max;
}

describe('Executor', () => {
  let ex: Executor;
  const conv = convModel();

  beforeAll(async () => {
    ex = await Executor.create({ workers: 2, intraOpThreads: 1 });
    await ex.load('conv', conv);
  });
  afterAll(async () => {
    await ex.close();
  });

  it('gives the same outputs as an in-process ORT session, with metadata and timings', async () => {
    const feeds = { input: input() };
    const want = await direct(conv, feeds);
    const got = await ex.run('conv', feeds);
    expect(Object.keys(got.outputs).sort()).toEqual(Object.keys(want).sort());
    for (const [name, t] of Object.entries(want)) {
      expect(got.outputs[name].dtype).toBe('float32');
      expect(got.outputs[name].dims).toEqual([1, 4, 8, 8]);
      expect(maxAbsDiff(got.outputs[name].data as Float32Array, t.data as Float32Array)).toBeLessThanOrEqual(1e-6);
    }
    expect(got.computeMs).toBeGreaterThan(0);
    expect(ex.has('conv') && ex.isWarm('conv')).toBe(true);
    expect(ex.inputsOf('conv')).toEqual([{ name: 'input', dtype: 'float32', shape: [1, 3, 8, 8] }]);
    expect(ex.outputsOf('conv').map((o) => o.name)).toEqual(Object.keys(want));
  });

  it('fetches only the requested outputs', async () => {
    const relu = ex.outputsOf('conv')[1].name;
    const got = await ex.run('conv', { input: input() }, { outputs: [relu] });
    expect(Object.keys(got.outputs)).toEqual([relu]);
    expect(Math.min(...(got.outputs[relu].data as Float32Array))).toBeGreaterThanOrEqual(0);
  });

  it('answers many concurrent runs across two workers, each with its own result', async () => {
    const feeds = Array.from({ length: 16 }, (_, i) => ({ input: input(i + 1) }));
    // twice: the second round's feeds are copied into buffers the first round's runs sent back
    for (let round = 0; round < 2; round++) {
      const got = await Promise.all(feeds.map((f) => ex.run('conv', f)));
      const session = await ort.InferenceSession.create(conv);
      for (let i = 0; i < feeds.length; i++) {
        const f = feeds[i].input;
        const want = await session.run({ input: new ort.Tensor(f.dtype, f.data, f.dims) });
        for (const name of Object.keys(want)) {
          expect(
            maxAbsDiff(got[i].outputs[name].data as Float32Array, want[name].data as Float32Array),
          ).toBeLessThanOrEqual(1e-6);
        }
      }
      await session.release();
    }
    expect(ex.queued).toBe(0);
  });

  it('copies feeds that are views on a larger buffer, and leaves them intact', async () => {
    const slab = new Float32Array(1000).fill(7);
    const view = slab.subarray(100, 292);
    view.set(input().data as Float32Array);
    const got = await ex.run('conv', { input: { dtype: 'float32', dims: [1, 3, 8, 8], data: view } });
    const want = await ex.run('conv', { input: input() });
    const name = ex.outputsOf('conv')[0].name;
    expect(maxAbsDiff(got.outputs[name].data as Float32Array, want.outputs[name].data as Float32Array)).toBe(0);
    expect(slab.length).toBe(1000);
    expect(slab[0]).toBe(7);
  });

  it('moves feed buffers with transferInputs, detaching them', async () => {
    const feed = input();
    const data = feed.data as Float32Array;
    const got = await ex.run('conv', { input: feed }, { transferInputs: true });
    expect(data.length).toBe(0);
    expect(got.outputs[ex.outputsOf('conv')[0].name].data.length).toBe(64 * 4);
  });

  it('moves a buffer holding several feeds once, views and offsets intact, with transferInputs', async () => {
    const b = new GraphBuilder('add', 1);
    b.output(b.op('Add', [b.input('a', [1, 4]), b.input('b', [1, 4])]));
    await ex.load('add', b.toBytes());
    // as a received frame: a header, then the two tensors
    const frame = new ArrayBuffer(8 + 32);
    const a = new Float32Array(frame, 8, 4);
    const c = new Float32Array(frame, 24, 4);
    a.set([1, 2, 3, 4]);
    c.set([10, 20, 30, 40]);
    const got = await ex.run(
      'add',
      { a: { dtype: 'float32', dims: [1, 4], data: a }, b: { dtype: 'float32', dims: [1, 4], data: c } },
      { transferInputs: true },
    );
    expect(frame.byteLength).toBe(0);
    expect(Array.from(Object.values(got.outputs)[0].data as Float32Array)).toEqual([11, 22, 33, 44]);
    ex.release('add');
  });

  describe('bad input gives E_BAD_INPUT naming the field, and the next good run succeeds', () => {
    const data = input().data as Float32Array;
    const cases: [string, Record<string, TensorLike>, RegExp][] = [
      ['unknown input name', { input: input(), extra: input() }, /unknown input 'extra'/],
      ['missing input', {}, /missing input 'input'/],
      [
        'wrong dims',
        { input: { dtype: 'float32', dims: [1, 3, 8, 4], data: data.subarray(0, 96) } },
        /input 'input'.*dim 3 is 4, expected 8/,
      ],
      ['wrong rank', { input: { dtype: 'float32', dims: [3, 8, 8], data } }, /input 'input'.*rank 3, expected rank 4/],
      [
        'wrong dtype',
        { input: { dtype: 'int32', dims: [1, 3, 8, 8], data: new Int32Array(192) } },
        /input 'input': dtype int32, expected float32/,
      ],
      [
        'data of another type',
        { input: { dtype: 'float32', dims: [1, 3, 8, 8], data: new Float64Array(192) as never } },
        /input 'input': data is Float64Array/,
      ],
      [
        'element count mismatch',
        { input: { dtype: 'float32', dims: [1, 3, 8, 8], data: new Float32Array(100) } },
        /input 'input': data has 100 elements/,
      ],
      [
        'negative dims',
        { input: { dtype: 'float32', dims: [1, 3, 8, -8], data } },
        /input 'input': dims must be non-negative integers/,
      ],
    ];
    for (const [what, feeds, message] of cases) {
      it(what, async () => {
        const e = await rejection(ex.run('conv', feeds));
        expect(e.code).toBe('E_BAD_INPUT');
        expect(e.status).toBe(400);
        expect(e.message).toMatch(message);
        expect((await ex.run('conv', { input: input() })).computeMs).toBeGreaterThan(0);
      });
    }

    it('unknown output name', async () => {
      const e = await rejection(ex.run('conv', { input: input() }, { outputs: ['nope'] }));
      expect(e.code).toBe('E_BAD_INPUT');
      expect(e.message).toMatch(/unknown output 'nope'/);
    });

    it('an ORT error inside the graph comes back without killing the worker', async () => {
      const info = await ex.load('reshape', reshapeModel(), {
        warmupFeeds: { x: { dtype: 'float32', dims: [2, 3], data: new Float32Array(6) } },
      });
      expect(info.inputs[0].shape).toEqual(['N', 3]);
      for (let i = 0; i < 2; i++) {
        // one failure per worker, whichever gets it
        const e = await rejection(
          ex.run('reshape', { x: { dtype: 'float32', dims: [1, 3], data: new Float32Array(3) } }),
        );
        expect(e.code).toBe('E_BAD_INPUT');
        expect(e.message).toMatch(/session 'reshape'/);
      }
      const ok = await ex.run('reshape', { x: { dtype: 'float32', dims: [4, 3], data: new Float32Array(12).fill(1) } });
      expect(Object.values(ok.outputs)[0].dims).toEqual([2, 6]);
      ex.release('reshape');
      expect(ex.has('reshape')).toBe(false);
    });
  });

  it('refuses to warm a model with symbolic dims without warm-up feeds, leaving nothing cached', async () => {
    const e = await rejection(ex.load('sym', reshapeModel()));
    expect(e.code).toBe('E_BAD_INPUT');
    expect(e.message).toMatch(/input 'x' has symbolic dims \[N,3\]/);
    expect(ex.has('sym')).toBe(false);
    await ex.load('sym', reshapeModel(), { warmup: 0 });
    expect(ex.isWarm('sym')).toBe(true);
    ex.release('sym');
  });

  it('rejects a model ORT cannot load with E_BAD_MODEL', async () => {
    const e = await rejection(ex.load('junk', new Uint8Array([1, 2, 3, 4, 5])));
    expect(e.code).toBe('E_BAD_MODEL');
    expect(ex.has('junk')).toBe(false);
  });

  it('loads from a file path', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cleave-executor-'));
    try {
      const path = join(dir, 'conv.onnx');
      writeFileSync(path, conv);
      await ex.load('conv-file', path);
      const a = await ex.run('conv-file', { input: input() });
      const b = await ex.run('conv', { input: input() });
      const name = ex.outputsOf('conv')[0].name;
      expect(maxAbsDiff(a.outputs[name].data as Float32Array, b.outputs[name].data as Float32Array)).toBe(0);
      ex.release('conv-file');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('runs a key whose load is still under way once it is warm', async () => {
    const loading = ex.load('late', conv);
    expect(ex.has('late')).toBe(true);
    expect(ex.isWarm('late')).toBe(false);
    const r = await ex.run('late', { input: input() });
    expect(r.computeMs).toBeGreaterThan(0);
    await loading;
    ex.release('late');
  });

  it('rejects runs of keys it does not hold with E_NOT_READY', async () => {
    const e = await rejection(ex.run('never-loaded', { input: input() }));
    expect(e.code).toBe('E_NOT_READY');
    expect(() => ex.inputsOf('never-loaded')).toThrow(/not loaded/);
  });
});

describe('Executor session cache', () => {
  const conv = convModel();

  it('dedupes concurrent loads of one key', async () => {
    const ex = await Executor.create({ intraOpThreads: 1 });
    try {
      const infos = await Promise.all([ex.load('k', conv), ex.load('k', conv), ex.load('k', conv)]);
      expect(infos[1]).toBe(infos[0]);
      expect(infos[2]).toBe(infos[0]);
      expect(ex.keys()).toEqual(['k']);
    } finally {
      await ex.close();
    }
  });

  it('evicts the least recently used session, never one in use, and bounds runs in flight', async () => {
    const ex = await Executor.create({ workers: 1, intraOpThreads: 1, maxCachedSessions: 2, maxQueuedRuns: 2 });
    try {
      await ex.load('a', conv);
      await ex.load('b', conv);
      await ex.run('a', { input: input() }); // a is now more recent than b
      await ex.load('c', conv);
      expect(ex.keys().sort()).toEqual(['a', 'c']);
      const e = await rejection(ex.run('b', { input: input() }));
      expect(e.code).toBe('E_NOT_READY');

      // Runs of 'a' and 'c' are in flight (one worker: 'c' waits behind 'a') when 'd' loads: rather than
      // release a session mid-run, the cache holds one more than its bound...
      const ra = ex.run('a', { input: input() });
      const rc = ex.run('c', { input: input() });
      const full = await rejection(ex.run('a', { input: input() }));
      expect(full.code).toBe('E_QUEUE_FULL');
      const ld = ex.load('d', conv);
      expect(ex.keys()).toEqual(['a', 'c', 'd']);
      await Promise.all([ra, rc, ld]);
      // ...and lets the least recent go as soon as its run ends.
      expect(ex.keys()).toEqual(['c', 'd']);
      expect((await ex.run('d', { input: input() })).computeMs).toBeGreaterThan(0);
    } finally {
      await ex.close();
    }
    const closed = await rejection(ex.run('d', { input: input() }));
    expect(closed.code).toBe('E_NOT_READY');
    expect(closed.message).toMatch(/closed/);
  });
});

describe('Executor and the event loop', () => {
  it('keeps the event loop responsive while a heavy model loads and runs', async () => {
    const heavy = heavyModel();
    const feeds = {
      input: { dtype: 'float32' as const, dims: [1, 16, 160, 160], data: new Float32Array(16 * 160 * 160).fill(0.5) },
    };
    const opts = { intraOpNumThreads: 1, interOpNumThreads: 1 };

    let want: ort.InferenceSession.ReturnType | undefined;
    const inProcessLag = await maxLoopLag(async () => {
      const s = await ort.InferenceSession.create(heavy, opts);
      want = await s.run({ input: new ort.Tensor('float32', feeds.input.data, feeds.input.dims) });
      await s.release();
    });

    const ex = await Executor.create({ intraOpThreads: 1 });
    try {
      let got: Record<string, TensorLike> | undefined;
      const executorLag = await maxLoopLag(async () => {
        await ex.load('heavy', heavy, { warmup: 1 });
        got = (await ex.run('heavy', feeds)).outputs;
      });
      const name = Object.keys(want!)[0];
      expect(maxAbsDiff(got![name].data as Float32Array, want![name].data as Float32Array)).toBeLessThanOrEqual(1e-6);
      // Loose on purpose (shared cores): in-process blocks for the whole load, the executor for a copy.
      expect(executorLag).toBeLessThan(150);
      expect(executorLag).toBeLessThan(inProcessLag);
    } finally {
      await ex.close();
    }
  });
});
