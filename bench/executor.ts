/**
 * `npm run bench -- executor`: what running a session through the worker-thread executor costs per call
 * over calling `session.run` in-process, on a tiny model and a mid-size one, same ORT settings for both.
 * Calls are sequential (one in flight), measured one by one, in alternating blocks so drift hits all.
 * By default the executor copies each feed once (the caller keeps it); with `transferInputs` it moves a
 * buffer the caller gives up, which the third column measures (the buffer is made before the clock starts).
 * Goal: median overhead of the default, copying path under 0.2 ms per call.
 */
import * as ort from 'onnxruntime-node';
import { GraphBuilder } from '../src/graph/zoo/builder.js';
import { Executor, type TensorLike } from '../src/runtime/executor/executor.js';

const GOAL_MS = 0.2;
const INTRA_OP_THREADS = 1;

interface Case {
  readonly name: string;
  readonly bytes: Uint8Array;
  readonly feeds: Record<string, TensorLike>;
  readonly calls: number;
}

function tiny(): Case {
  const b = new GraphBuilder('tiny', 1);
  const x = b.input('input', [1, 3, 8, 8]);
  b.output(
    b.op('Relu', [b.op('Conv', [x, b.weight('w', [4, 3, 3, 3], 'he')], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] })]),
  );
  const data = Float32Array.from({ length: 192 }, (_, i) => Math.sin(i));
  return {
    name: 'tiny',
    bytes: b.toBytes(),
    feeds: { input: { dtype: 'float32', dims: [1, 3, 8, 8], data } },
    calls: 3000,
  };
}

/** A CNN stem on an ImageNet-sized input: 1x3x224x224 in (600 KB), 1x64x56x56 out (800 KB), ~2 ms. */
function mid(): Case {
  const b = new GraphBuilder('mid', 2);
  let x = b.input('input', [1, 3, 224, 224]);
  let c = 3;
  for (const [out, stride] of [
    [32, 2],
    [32, 1],
    [64, 2],
    [64, 1],
  ] as const) {
    const w = b.weight('w', [out, c, 3, 3], 'he');
    x = b.op('Relu', [b.op('Conv', [x, w], { kernel_shape: [3, 3], pads: [1, 1, 1, 1], strides: [stride, stride] })]);
    c = out;
  }
  b.output(x);
  const data = Float32Array.from({ length: 3 * 224 * 224 }, (_, i) => Math.sin(i) * 0.5);
  return {
    name: 'mid',
    bytes: b.toBytes(),
    feeds: { input: { dtype: 'float32', dims: [1, 3, 224, 224], data } },
    calls: 200,
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const round = (x: number, digits = 4): number => Number(x.toFixed(digits));

async function measure(ex: Executor, c: Case): Promise<Record<string, number>> {
  const session = await ort.InferenceSession.create(c.bytes, {
    intraOpNumThreads: INTRA_OP_THREADS,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
  });
  const ortFeeds: Record<string, ort.Tensor> = {};
  for (const [k, t] of Object.entries(c.feeds)) ortFeeds[k] = new ort.Tensor(t.dtype, t.data, t.dims);
  await ex.load(c.name, c.bytes, { warmup: 5 });
  for (let i = 0; i < 5; i++) await session.run(ortFeeds);

  const direct: number[] = [];
  const viaExecutor: number[] = [];
  const compute: number[] = [];
  const viaTransfer: number[] = [];
  const block = Math.max(10, Math.floor(c.calls / 20));
  while (direct.length < c.calls) {
    for (let i = 0; i < block; i++) {
      const t0 = performance.now();
      await session.run(ortFeeds);
      direct.push(performance.now() - t0);
    }
    for (let i = 0; i < block; i++) {
      const t0 = performance.now();
      const r = await ex.run(c.name, c.feeds);
      viaExecutor.push(performance.now() - t0);
      compute.push(r.computeMs);
    }
    for (let i = 0; i < block; i++) {
      const fresh: Record<string, TensorLike> = {};
      for (const [k, t] of Object.entries(c.feeds)) fresh[k] = { ...t, data: t.data.slice() };
      const t0 = performance.now();
      await ex.run(c.name, fresh, { transferInputs: true });
      viaTransfer.push(performance.now() - t0);
    }
  }
  await session.release();
  const d = median(direct);
  const e = median(viaExecutor);
  const tr = median(viaTransfer);
  return {
    calls: direct.length,
    directMedianMs: round(d),
    executorMedianMs: round(e),
    workerComputeMedianMs: round(median(compute)),
    // time outside session.run: the thread hops, copies and checks, whatever ORT's speed in each thread
    outsideRunMedianMs: round(e - median(compute)),
    overheadMs: round(e - d),
    executorTransferMedianMs: round(tr),
    overheadTransferMs: round(tr - d),
    ratio: round(e / d, 3),
  };
}

const ex = await Executor.create({ workers: 1, intraOpThreads: INTRA_OP_THREADS });
const figures: Record<string, Record<string, number>> = {};
try {
  for (const c of [tiny(), mid()]) {
    figures[c.name] = await measure(ex, c);
    console.log(`${c.name}: ${JSON.stringify(figures[c.name])}`);
  }
} finally {
  await ex.close();
}
const worst = Math.max(figures.tiny.overheadMs, figures.mid.overheadMs);
console.log(
  JSON.stringify({
    name: 'executor',
    figures: { ...figures, worstOverheadMs: worst, intraOpThreads: INTRA_OP_THREADS },
    ratio: figures.mid.ratio,
    goal: `per-call overhead of the worker-thread executor over in-process session.run < ${GOAL_MS} ms (median, tiny and mid-size models); ratio = executor/in-process median on the mid-size model`,
    pass: worst < GOAL_MS,
  }),
);
