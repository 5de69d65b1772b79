import { describe, expect, it, vi } from 'vitest';
import type { Worker as NodeWorker, WorkerOptions } from 'node:worker_threads';
import { GraphBuilder } from '../src/graph/zoo/builder.js';
import { CleaveError } from '../src/errors.js';
import { Executor, type TensorLike } from '../src/runtime/executor/executor.js';
import { OnnxModel } from '../src/graph/model.js';
import { resolveInputs } from '../src/graph/shapes.js';
import { zooEntry } from '../src/graph/zoo/index.js';
import { analyze } from '../src/runtime/local/analysis.js';
import { SegmentSessions } from '../src/runtime/host/segments.js';

// The executor has no way to kill its own workers, and a test must not terminate() one from outside while
// it runs a session: onnxruntime-node then aborts the whole process. So the test wraps the Worker class the
// executor constructs: each worker runs a two-line prelude that exits the thread on a 'test-crash' message,
// then the real entry point. The exit happens in JavaScript, between runs, as an uncaught error would.
const spawned = vi.hoisted(() => [] as NodeWorker[]);
vi.mock('node:worker_threads', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:worker_threads')>();
  class CrashableWorker extends real.Worker {
    constructor(entry: string | URL, options?: WorkerOptions) {
      const prelude = [
        "require('node:worker_threads').parentPort.on('message', (m) => { if (m && m.op === 'test-crash') process.exit(70); });",
        `import(${JSON.stringify(String(entry))});`,
      ].join('\n');
      super(prelude, { ...options, eval: true });
      spawned.push(this);
    }
  }
  return { ...real, Worker: CrashableWorker, default: { ...real, Worker: CrashableWorker } };
});

// Counts graph surgery: a segment cached in the executor must not be extracted again after a crash.
const extractions = vi.hoisted(() => ({ n: 0 }));
vi.mock('../src/graph/segment.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../src/graph/segment.js')>();
  return {
    ...real,
    extractSegment: (...a: Parameters<typeof real.extractSegment>) => {
      extractions.n++;
      return real.extractSegment(...a);
    },
  };
});

/** A few convolutions at 192x192: ~10 ms per run, so the runs queued behind the first are still waiting. */
function model(): Uint8Array {
  const b = new GraphBuilder('crash', 3);
  let x = b.input('input', [1, 8, 192, 192]);
  let c = 8;
  for (let i = 0; i < 3; i++) {
    x = b.op('Conv', [x, b.weight('w', [32, c, 3, 3], 'he')], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] });
    c = 32;
  }
  b.output(x);
  return b.toBytes();
}

let cached: Record<string, TensorLike> | undefined;
/** The same feeds every time: runs copy them, so they can be shared. */
const feeds = (): Record<string, TensorLike> =>
  (cached ??= {
    input: {
      dtype: 'float32',
      dims: [1, 8, 192, 192],
      data: Float32Array.from({ length: 8 * 192 * 192 }, (_, i) => (i % 13) / 13),
    },
  });

describe('Executor worker crash', () => {
  it('fails the calls in flight with E_INTERNAL, replaces the worker and reloads its sessions', async () => {
    const ex = await Executor.create({ workers: 1, intraOpThreads: 1 });
    try {
      await ex.load('m', model(), { warmup: 1 });
      const before = await ex.run('m', feeds());
      expect(spawned).toHaveLength(1);

      // Posted back to back, then the crash: at most the first can finish before the worker exits.
      const inputs = [feeds(), feeds(), feeds()];
      const calls = inputs.map((f) => ex.run('m', f));
      spawned[0].postMessage({ op: 'test-crash' });
      const settled = await Promise.allSettled(calls);
      // The worker exits between runs: the last call posted never ran.
      const failed = settled.filter((s): s is PromiseRejectedResult => s.status === 'rejected');
      expect(failed.length).toBeGreaterThan(0);
      expect(settled[2].status).toBe('rejected');
      for (const f of failed) {
        expect(f.reason).toBeInstanceOf(CleaveError);
        expect((f.reason as CleaveError).code).toBe('E_INTERNAL');
        expect((f.reason as CleaveError).message).toMatch(/exited with code 70 during run of 'm'/);
      }

      // The session stays cached; the next run waits for the replacement worker to reload it.
      expect(ex.has('m')).toBe(true);
      const after = await ex.run('m', feeds());
      expect(spawned).toHaveLength(2);
      expect(ex.isWarm('m')).toBe(true);
      const name = Object.keys(before.outputs)[0];
      expect(Array.from(after.outputs[name].data as Float32Array)).toEqual(
        Array.from(before.outputs[name].data as Float32Array),
      );
    } finally {
      await ex.close();
    }
  });

  it('fails a load in flight with E_INTERNAL, caches nothing, and loads again on the replacement', async () => {
    const ex = await Executor.create({ workers: 1, intraOpThreads: 1 });
    try {
      const n = spawned.length;
      const loading = ex.load('m', model(), { warmup: 1 });
      // The load is posted once the model bytes are staged, a few microtasks from now: the crash overtakes
      // it, so the worker dies with the load posted and unanswered.
      spawned[n - 1].postMessage({ op: 'test-crash' });
      const e = await loading.then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(e).toBeInstanceOf(CleaveError);
      expect((e as CleaveError).code).toBe('E_INTERNAL');
      expect(ex.has('m')).toBe(false);
      await ex.load('m', model(), { warmup: 1 });
      expect(spawned).toHaveLength(n + 1);
      expect((await ex.run('m', feeds())).computeMs).toBeGreaterThan(0);
    } finally {
      await ex.close();
    }
  });

  it('a segment cached before the crash runs again on the replacement without being extracted again', async () => {
    const m = OnnxModel.fromBytes(zooEntry('mobilenetv2')!.build({ small: true }).toBytes());
    const a = await analyze(m, resolveInputs(m));
    const ex = await Executor.create({ workers: 1, intraOpThreads: 1 });
    const segs = new SegmentSessions(a, ex, 1);
    const range = { start: 0, end: m.nodes.length };
    try {
      const before = extractions.n;
      await segs.prepare(range);
      expect(extractions.n).toBe(before + 1);
      const [name] = segs.io(range).inputs;
      const dims = [...(a.types.get(name)?.dims ?? [])] as number[];
      const f = {
        [name]: { dtype: 'float32' as const, dims, data: new Float32Array(dims.reduce((x, y) => x * y, 1)).fill(0.5) },
      };
      const want = await segs.run(range, f);
      const first = spawned.length - 1;
      spawned[first].postMessage({ op: 'test-crash' });
      await new Promise((r) => spawned[first].once('exit', r));
      const runs = [];
      for (let i = 0; i < 5; i++) {
        runs.push(segs.run(range, f));
        await new Promise((r) => setTimeout(r, 5));
      }
      const got = await Promise.all(runs);
      expect(extractions.n).toBe(before + 1);
      for (const g of got) expect(Object.keys(g.outputs)).toEqual(Object.keys(want.outputs));
    } finally {
      await ex.close();
    }
  });
});
