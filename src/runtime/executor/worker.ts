/**
 * The inside of one executor worker thread: it owns ORT sessions by key and handles load, run, release and
 * close requests one at a time, so a session never runs while it is being released and runs on one worker
 * never compete with each other for its intra-op threads. Started through worker.mjs.
 */
import { ortSessionOptions } from './ort-options.js';
import { parentPort, type MessagePort } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import * as ort from 'onnxruntime-node';
import { CleaveError, errorMessage, type ErrorCode } from '../../errors.js';
import type { LoadRequest, RunRequest, WorkerReply, WorkerRequest, ReadyMessage } from './protocol.js';
import {
  checkFeeds,
  isTensorDType,
  packForTransfer,
  zeroFeeds,
  type TensorData,
  type TensorLike,
  type ValueInfo,
} from './tensors.js';

interface Held {
  readonly session: ort.InferenceSession;
  readonly inputs: ValueInfo[];
  readonly outputs: ValueInfo[];
}

function mainPort(): MessagePort {
  if (!parentPort) throw new Error('executor-worker must run in a worker thread');
  return parentPort;
}
const port = mainPort();

const sessions = new Map<string, Held>();

function valueInfo(key: string, m: ort.InferenceSession.ValueMetadata): ValueInfo {
  if (!m.isTensor || !isTensorDType(m.type)) {
    const what = m.isTensor ? `dtype ${m.type}` : 'a non-tensor type';
    throw new CleaveError(
      'E_UNSUPPORTED',
      `session '${key}': value '${m.name}' has ${what}, which the executor does not carry`,
    );
  }
  return { name: m.name, dtype: m.type, shape: [...m.shape] };
}

function toOrt(feeds: Record<string, TensorLike>): Record<string, ort.Tensor> {
  const out: Record<string, ort.Tensor> = {};
  for (const [name, t] of Object.entries(feeds)) out[name] = new ort.Tensor(t.dtype, t.data, t.dims);
  return out;
}

async function load(req: LoadRequest): Promise<WorkerReply> {
  const old = sessions.get(req.key);
  if (old) return { id: req.id, ok: true, inputs: old.inputs, outputs: old.outputs, createMs: 0, warmupMs: 0 };
  const t0 = performance.now();
  let session: ort.InferenceSession;
  try {
    const opts = ortSessionOptions(req.intraOpThreads);
    const model = req.model;
    // ORT refuses SharedArrayBuffer-backed bytes: copy them here, off the main thread.
    session =
      typeof model === 'string'
        ? await ort.InferenceSession.create(model, opts)
        : await ort.InferenceSession.create(
            model.buffer instanceof SharedArrayBuffer ? new Uint8Array(model) : model,
            opts,
          );
  } catch (e) {
    throw new CleaveError(
      'E_BAD_MODEL',
      `session '${req.key}': ONNX Runtime could not load the model: ${errorMessage(e)}`,
      { cause: e },
    );
  }
  const t1 = performance.now();
  try {
    const inputs = session.inputMetadata.map((m) => valueInfo(req.key, m));
    const outputs = session.outputMetadata.map((m) => valueInfo(req.key, m));
    if (req.warmup > 0) {
      if (req.warmupFeeds) checkFeeds(req.key, inputs, req.warmupFeeds);
      const feeds = toOrt(req.warmupFeeds ?? zeroFeeds(req.key, inputs));
      for (let i = 0; i < req.warmup; i++) {
        try {
          await session.run(feeds);
        } catch (e) {
          // Our own zero feeds match the declared inputs, so a failure with them is the model's fault.
          const code: ErrorCode = req.warmupFeeds ? 'E_BAD_INPUT' : 'E_BAD_MODEL';
          throw new CleaveError(code, `session '${req.key}': warm-up run failed: ${errorMessage(e)}`, { cause: e });
        }
      }
    }
    sessions.set(req.key, { session, inputs, outputs });
    return { id: req.id, ok: true, inputs, outputs, createMs: t1 - t0, warmupMs: performance.now() - t1 };
  } catch (e) {
    await session.release();
    throw e;
  }
}

async function run(req: RunRequest): Promise<{ reply: WorkerReply; transfer: ArrayBuffer[] }> {
  const held = sessions.get(req.key);
  if (!held) throw new CleaveError('E_NOT_READY', `session '${req.key}' is not loaded in this worker`);
  const feeds = toOrt(req.feeds);
  const t0 = performance.now();
  let results: ort.InferenceSession.ReturnType;
  try {
    results = req.outputs ? await held.session.run(feeds, [...req.outputs]) : await held.session.run(feeds);
  } catch (e) {
    // The executor checked names, dtypes and fixed dims already; what is left is shape arithmetic the inputs
    // broke inside the graph (a Reshape, a Concat of mismatched symbolic dims) or out-of-range indices.
    throw new CleaveError('E_BAD_INPUT', `session '${req.key}': ${errorMessage(e)}`, { cause: e });
  }
  const computeMs = performance.now() - t0;
  const outputs: Record<string, TensorLike> = {};
  for (const [name, t] of Object.entries(results)) {
    outputs[name] = { dtype: t.type as TensorLike['dtype'], dims: t.dims, data: t.data as TensorData };
  }
  // On onnxruntime-node 1.30 each output comes back in a buffer of its own, which nothing here keeps.
  const packed = packForTransfer(outputs, true);
  // ORT read the feeds in place and is done with them: their buffers go back to be filled again.
  const spent: ArrayBuffer[] = [];
  for (const t of Object.values(req.feeds)) {
    const b = t.data.buffer;
    if (b instanceof ArrayBuffer && !spent.includes(b) && !packed.transfer.includes(b)) spent.push(b);
  }
  return {
    reply: { id: req.id, ok: true, outputs: packed.tensors, computeMs, spent },
    transfer: [...packed.transfer, ...spent],
  };
}

async function release(key: string): Promise<void> {
  const held = sessions.get(key);
  if (!held) return;
  sessions.delete(key);
  await held.session.release();
}

async function handle(req: WorkerRequest): Promise<void> {
  try {
    switch (req.op) {
      case 'load':
        port.postMessage(await load(req));
        return;
      case 'run': {
        const { reply, transfer } = await run(req);
        port.postMessage(reply, transfer);
        return;
      }
      case 'release':
        await release(req.key);
        port.postMessage({ id: req.id, ok: true } satisfies WorkerReply);
        return;
      case 'close':
        for (const key of [...sessions.keys()]) await release(key);
        port.postMessage({ id: req.id, ok: true } satisfies WorkerReply);
        // With the port closed the thread has nothing left to wait for and exits by itself.
        port.close();
        return;
    }
  } catch (e) {
    const code: ErrorCode = e instanceof CleaveError ? e.code : 'E_INTERNAL';
    port.postMessage({ id: req.id, ok: false, code, message: errorMessage(e) } satisfies WorkerReply);
  }
}

// One request at a time, in posting order: the chain only grows while the executor has posted ahead.
let chain: Promise<void> = Promise.resolve();
port.on('message', (req: WorkerRequest) => {
  chain = chain.then(() => handle(req));
});
port.postMessage({ op: 'ready' } satisfies ReadyMessage);
