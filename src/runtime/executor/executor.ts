/**
 * executor/: ONNX Runtime in worker threads, its message protocol, tensor checks, the session cache, ORT options.
 *
 * The executor runs ONNX Runtime sessions in worker threads, so that session creation and `run()`, which
 * block the thread that calls them in onnxruntime-node, never block the host's event loop (heartbeats,
 * pings, HTTP). Sessions are keyed by a caller-chosen string (a segment: `${modelSha}:${a}-${b}`), built
 * and warmed ahead of use by `load`, and kept in a bounded LRU cache so swapping back to a recent segment
 * is instant. Every worker holds every cached session; a run goes to the least loaded worker.
 *
 * Internals: slot.ts (one worker seen from here), worker.ts (the thread itself),
 * protocol.ts (their messages), tensors.ts (tensor checks and transfer lists),
 * session-cache.ts (the LRU). Past 400 lines on purpose: the cache entries, the workers' lifecycle (with
 * respawn after a crash) and the run path share one state; what stands alone already lives beside it.
 */
import { statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import type { Logger } from 'pino';
import { CleaveError, errorMessage } from '../../errors.js';
import type { LoadedReply } from './protocol.js';
import { WorkerSlot } from './slot.js';
import {
  BufferPool,
  checkFeeds,
  checkOutputNames,
  packForTransfer,
  type TensorLike,
  type ValueInfo,
} from './tensors.js';
import { SessionCache } from './session-cache.js';

export type { TensorData, TensorDType, TensorLike, ValueInfo } from './tensors.js';

/** Every limit of the executor, with its default. */
export const EXECUTOR_DEFAULTS = {
  /** Worker threads; each holds every cached session, so memory grows with this. */
  workers: 1,
  /** Sessions kept loaded; loading one more releases the least recently used one that is not in use. */
  maxCachedSessions: 8,
  /** Bytes of model (ONNX file size, a proxy for a session's weights) the cached sessions may add up to. */
  maxCachedBytes: 1024 * 1024 * 1024,
  /** Runs accepted and not yet finished, across all workers; beyond this `run` rejects with E_QUEUE_FULL. */
  maxQueuedRuns: 256,
  /** Warm-up runs made by `load` before it resolves. */
  warmup: 2,
  /** Bytes of feed buffers kept for reuse after the workers send them back (up to 4 per size). */
  feedPoolBytes: 32 * 1024 * 1024,
} as const;

export interface ExecutorOptions {
  /** Worker threads. Default 1 (EXECUTOR_DEFAULTS.workers). */
  workers?: number;
  /** ORT intra-op threads of every session. Default: available cores divided by `workers`, at least 1. */
  intraOpThreads?: number;
  /** Default 8 (EXECUTOR_DEFAULTS.maxCachedSessions). */
  maxCachedSessions?: number;
  /** Default 1 GiB (EXECUTOR_DEFAULTS.maxCachedBytes). */
  maxCachedBytes?: number;
  /** Default 256 (EXECUTOR_DEFAULTS.maxQueuedRuns). */
  maxQueuedRuns?: number;
  logger?: Logger;
}

export interface LoadOptions {
  /** Warm-up runs. Default 2 (EXECUTOR_DEFAULTS.warmup); 0 skips warm-up. */
  warmup?: number;
  /** Feeds for the warm-up runs. Default: zeros of the declared shapes, which symbolic dims rule out. */
  warmupFeeds?: Record<string, TensorLike>;
}

export interface RunOptions {
  /** Outputs to fetch. Default: all of them. */
  outputs?: readonly string[];
  /**
   * Hand the feeds' buffers to the worker instead of copying them: every ArrayBuffer under a feed is moved
   * whole, including bytes outside the feed's view (a received frame's header, other tensors), and is left
   * detached (length 0) here. Default false: each feed is copied once.
   */
  transferInputs?: boolean;
}

export interface RunResult {
  readonly outputs: Record<string, TensorLike>;
  /** Time inside ORT's `run`, measured in the worker: no queueing, no thread crossing. */
  readonly computeMs: number;
}

interface SessionInfo {
  readonly key: string;
  readonly inputs: readonly ValueInfo[];
  readonly outputs: readonly ValueInfo[];
  /** Session creation and warm-up time on the first worker that loaded it. */
  readonly createMs: number;
  readonly warmupMs: number;
}

/**
 * A path, which the workers read themselves, or the bytes. Bytes are copied once into shared memory, a
 * chunk per event-loop turn, and shared by all workers; the copy is kept while the session is cached, so
 * that a worker that dies can be given the session again. Pass a path to keep a large model out of the
 * main thread's memory altogether. Bytes must not change until `load` resolves.
 */
type ModelSource = Uint8Array | string;

class Entry {
  /** Known once the first worker has loaded the session. */
  info?: SessionInfo;
  /** Set when every worker has loaded it; stays set until the entry leaves the cache. */
  warm = false;
  /** Set by `load` as soon as the entry is cached. */
  ready!: Promise<SessionInfo>;

  constructor(
    readonly key: string,
    /** A path, or the bytes copied into a SharedArrayBuffer. */
    readonly model: Promise<string | Uint8Array>,
    readonly warmup: number,
    readonly warmupFeeds: Record<string, TensorLike> | undefined,
    /** The model's size: what the entry counts against the cache's byte budget. */
    readonly bytes: number,
  ) {}
}

interface Resolved {
  readonly workers: number;
  readonly intraOpThreads: number;
  readonly maxCachedSessions: number;
  readonly maxCachedBytes: number;
  readonly maxQueuedRuns: number;
}

/** Bytes of a model copied per event-loop turn when sharing it with the workers: a few ms each. */
const SHARE_CHUNK_BYTES = 4 << 20;

/**
 * `bytes` copied into a SharedArrayBuffer that every worker can read without a copy of its own crossing
 * the thread boundary. Copying a chunk per turn keeps a model of hundreds of MB from blocking the loop for
 * the whole copy, as one structured clone per worker would.
 */
async function share(bytes: Uint8Array): Promise<Uint8Array> {
  const shared = new Uint8Array(new SharedArrayBuffer(bytes.byteLength));
  for (let off = 0; off < bytes.byteLength; off += SHARE_CHUNK_BYTES) {
    if (off > 0) await new Promise((resolve) => setImmediate(resolve));
    shared.set(bytes.subarray(off, off + SHARE_CHUNK_BYTES), off);
  }
  return shared;
}

/** Longest pause between attempts to replace a dead worker whose replacement fails to start. */
const RESPAWN_MAX_DELAY_MS = 5_000;

function positiveInt(name: string, v: number | undefined, dflt: number): number {
  const n = v ?? dflt;
  if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`'${name}' must be an integer >= 1, got ${String(v)}`);
  return n;
}

/** A model file's size, 0 when it cannot be read (the worker then reports why it cannot load it). */
function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

const closedError = (): CleaveError => new CleaveError('E_NOT_READY', 'executor is closed');

export class Executor {
  readonly #opts: Resolved;
  readonly #log: Logger | undefined;
  readonly #slots: WorkerSlot[] = [];
  readonly #cache: SessionCache<Entry>;
  readonly #feedPool = new BufferPool(EXECUTOR_DEFAULTS.feedPoolBytes);
  /** Runs waiting for a worker while none is alive (between a crash and its replacement). */
  readonly #slotWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  #queued = 0;
  #closed = false;

  private constructor(opts: Resolved, logger: Logger | undefined) {
    this.#opts = opts;
    this.#log = logger?.child({ component: 'executor' });
    this.#cache = new SessionCache<Entry>(
      opts.maxCachedSessions,
      (key) => {
        this.#log?.debug({ key }, 'session evicted');
        this.#releaseEverywhere(key);
      },
      { maxBytes: opts.maxCachedBytes, sizeOf: (e) => e.bytes },
    );
  }

  /** Starts the worker threads and resolves once each has ORT loaded. */
  static async create(opts: ExecutorOptions = {}): Promise<Executor> {
    const workers = positiveInt('workers', opts.workers, EXECUTOR_DEFAULTS.workers);
    const resolved: Resolved = {
      workers,
      intraOpThreads: positiveInt(
        'intraOpThreads',
        opts.intraOpThreads,
        Math.max(1, Math.floor(availableParallelism() / workers)),
      ),
      maxCachedSessions: positiveInt('maxCachedSessions', opts.maxCachedSessions, EXECUTOR_DEFAULTS.maxCachedSessions),
      maxCachedBytes: positiveInt('maxCachedBytes', opts.maxCachedBytes, EXECUTOR_DEFAULTS.maxCachedBytes),
      maxQueuedRuns: positiveInt('maxQueuedRuns', opts.maxQueuedRuns, EXECUTOR_DEFAULTS.maxQueuedRuns),
    };
    const ex = new Executor(resolved, opts.logger);
    const started = await Promise.allSettled(
      Array.from({ length: workers }, (_, i) => WorkerSlot.start(i, ex.#onDeath)),
    );
    const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    for (const s of started) if (s.status === 'fulfilled') ex.#slots.push(s.value);
    if (failed) {
      await ex.close();
      throw failed.reason;
    }
    ex.#log?.debug({ workers, intraOpThreads: resolved.intraOpThreads }, 'executor started');
    return ex;
  }

  /** Runs accepted and not yet finished. */
  get queued(): number {
    return this.#queued;
  }

  /** Model bytes the cached sessions add up to (what `maxCachedBytes` bounds). */
  get cachedBytes(): number {
    return this.#cache.bytes;
  }

  /** Keys of the cached sessions (loading or warm), least recently used first. */
  keys(): string[] {
    return this.#cache.keys();
  }

  /** Whether `key` is cached, warm or still loading. */
  has(key: string): boolean {
    return this.#cache.has(key);
  }

  /** Whether a run of `key` would start without waiting for a load. */
  isWarm(key: string): boolean {
    const e = this.#cache.peek(key);
    return e !== undefined && e.warm && this.#slots.some((s) => s.warm.has(key));
  }

  /** Declared inputs of a loaded session; E_NOT_READY before its load resolves. */
  inputsOf(key: string): readonly ValueInfo[] {
    return this.#loadedInfo(key).inputs;
  }

  outputsOf(key: string): readonly ValueInfo[] {
    return this.#loadedInfo(key).outputs;
  }

  /**
   * Creates the session in every worker and warms it up; resolves when it is warm. Loading a key that is
   * cached (or loading) joins that load and ignores `model` and `opts`. Rejects with E_BAD_MODEL when ORT
   * cannot load the model and E_BAD_INPUT when the warm-up feeds do not fit, leaving nothing cached.
   */
  load(key: string, model: ModelSource, opts: LoadOptions = {}): Promise<SessionInfo> {
    if (this.#closed) return Promise.reject(closedError());
    const existing = this.#cache.get(key);
    if (existing) return existing.ready;
    const warmup = opts.warmup ?? EXECUTOR_DEFAULTS.warmup;
    if (!Number.isSafeInteger(warmup) || warmup < 0) {
      return Promise.reject(new CleaveError('E_BAD_INPUT', `'warmup' must be an integer >= 0, got ${warmup}`));
    }
    const size = typeof model === 'string' ? fileSize(model) : model.byteLength;
    const entry = new Entry(
      key,
      typeof model === 'string' ? Promise.resolve(model) : share(model),
      warmup,
      opts.warmupFeeds,
      size,
    );
    // Pinned while loading, so that loads of other keys cannot evict it half-built.
    this.#cache.set(key, entry, { pinned: true });
    entry.ready = this.#loadEverywhere(entry).finally(() => this.#cache.peek(key) === entry && this.#cache.unpin(key));
    return entry.ready;
  }

  /**
   * Runs a loaded session on the least loaded worker. Rejects with E_NOT_READY for a key that is not
   * cached, E_BAD_INPUT (naming the input) for feeds that do not fit the model, E_QUEUE_FULL beyond
   * `maxQueuedRuns`, and E_INTERNAL when the worker dies during the run.
   */
  async run(key: string, feeds: Record<string, TensorLike>, opts: RunOptions = {}): Promise<RunResult> {
    if (this.#closed) throw closedError();
    const entry = this.#cache.peek(key);
    if (!entry) throw new CleaveError('E_NOT_READY', `session '${key}' is not loaded`);
    if (entry.warm) this.#check(entry, feeds, opts);
    if (this.#queued >= this.#opts.maxQueuedRuns) {
      throw new CleaveError(
        'E_QUEUE_FULL',
        `executor has ${this.#queued} runs queued (maxQueuedRuns ${this.#opts.maxQueuedRuns})`,
      );
    }
    // Only an accepted run counts as a use of the session.
    this.#cache.get(key);
    this.#queued++;
    this.#cache.pin(key);
    try {
      if (!entry.warm) {
        await entry.ready;
        this.#check(entry, feeds, opts);
      }
      const slot = this.#pick(key) ?? (await this.#waitForSlot(entry));
      const packed = packForTransfer(feeds, opts.transferInputs === true, this.#feedPool);
      const r = await slot.run(key, packed.tensors, opts.outputs, packed.transfer);
      for (const b of r.spent) this.#feedPool.give(b);
      return { outputs: r.outputs, computeMs: r.computeMs };
    } finally {
      this.#queued--;
      // A release during the run took the pins with it; a later load of the key holds pins of its own.
      if (this.#cache.peek(key) === entry) this.#cache.unpin(key);
    }
  }

  /** Drops `key` from the cache and releases its sessions once the runs already sent to them finish. */
  release(key: string): void {
    if (this.#cache.delete(key)) this.#releaseEverywhere(key);
  }

  /** Lets the runs already sent finish, releases every session and ends the worker threads. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#cache.clear();
    for (const w of this.#slotWaiters.splice(0)) w.reject(closedError());
    await Promise.all(this.#slots.splice(0).map((s) => s.close()));
  }

  #loadedInfo(key: string): SessionInfo {
    const info = this.#cache.peek(key)?.info;
    if (!info) throw new CleaveError('E_NOT_READY', `session '${key}' is not loaded`);
    return info;
  }

  #check(entry: Entry, feeds: Record<string, TensorLike>, opts: RunOptions): void {
    const info = entry.info as SessionInfo;
    checkFeeds(entry.key, info.inputs, feeds);
    if (opts.outputs) checkOutputNames(entry.key, info.outputs, opts.outputs);
  }

  async #loadEverywhere(entry: Entry): Promise<SessionInfo> {
    try {
      await Promise.all(this.#slots.map((s) => this.#loadOn(s, entry)));
      if (this.#slots.length === 0) await this.#waitForSlot(entry);
    } catch (e) {
      if (this.#cache.peek(entry.key) === entry) this.release(entry.key);
      throw e;
    }
    entry.warm = true;
    const info = entry.info as SessionInfo;
    this.#log?.debug({ key: entry.key, createMs: info.createMs, warmupMs: info.warmupMs }, 'session warm');
    return info;
  }

  /** The session on one worker: joins a load already under way there, or starts one. */
  #loadOn(slot: WorkerSlot, entry: Entry): Promise<LoadedReply> {
    const key = entry.key;
    const known = slot.sessions.get(key);
    if (known) return known;
    const p = entry.model.then((model) =>
      slot.load({
        op: 'load',
        key,
        model,
        intraOpThreads: this.#opts.intraOpThreads,
        warmup: entry.warmup,
        warmupFeeds: entry.warmupFeeds,
      }),
    );
    slot.sessions.set(key, p);
    void p.then(
      (r) => {
        entry.info ??= { key, inputs: r.inputs, outputs: r.outputs, createMs: r.createMs, warmupMs: r.warmupMs };
        // Released or evicted while loading: the worker releases it right after this load, so not warm.
        if (slot.sessions.get(key) === p) slot.warm.add(key);
      },
      () => {
        if (slot.sessions.get(key) === p) slot.sessions.delete(key);
      },
    );
    return p;
  }

  #releaseEverywhere(key: string): void {
    for (const s of this.#slots) {
      s.warm.delete(key);
      if (s.sessions.delete(key)) {
        s.release(key).catch((e: unknown) => this.#log?.warn({ key, err: errorMessage(e) }, 'session release failed'));
      }
    }
  }

  /** The least loaded worker holding `key` warm. */
  #pick(key: string): WorkerSlot | undefined {
    let best: WorkerSlot | undefined;
    for (const s of this.#slots) if (s.warm.has(key) && (best === undefined || s.inflight < best.inflight)) best = s;
    return best;
  }

  /**
   * A worker for a cached session that no worker holds warm: the one that first finishes loading it again.
   * This happens only after a worker died and its replacement is (re)loading the cached sessions.
   */
  async #waitForSlot(entry: Entry): Promise<WorkerSlot> {
    for (let attempt = 0; attempt < 3; attempt++) {
      if (this.#closed) throw closedError();
      if (this.#cache.peek(entry.key) !== entry)
        throw new CleaveError('E_NOT_READY', `session '${entry.key}' was released`);
      const slot = this.#pick(entry.key);
      if (slot) return slot;
      if (this.#slots.length === 0) {
        await new Promise<void>((resolve, reject) => this.#slotWaiters.push({ resolve, reject }));
        continue;
      }
      try {
        await Promise.any(this.#slots.map((s) => this.#loadOn(s, entry)));
      } catch (e) {
        const first = e instanceof AggregateError ? e.errors[0] : e;
        throw first instanceof CleaveError ? first : new CleaveError('E_INTERNAL', errorMessage(first));
      }
    }
    throw new CleaveError('E_INTERNAL', `no ORT worker could take session '${entry.key}'`);
  }

  /** A worker died: its pending requests have failed with E_INTERNAL; start its replacement. */
  readonly #onDeath = (slot: WorkerSlot, reason: string): void => {
    const i = this.#slots.indexOf(slot);
    if (i >= 0) this.#slots.splice(i, 1);
    this.#log?.error({ worker: slot.index, reason }, 'ORT worker died; replacing it');
    if (!this.#closed) this.#respawn(slot.index, 0);
  };

  #respawn(index: number, attempt: number): void {
    WorkerSlot.start(index, this.#onDeath).then(
      (slot) => {
        if (this.#closed) return void slot.close();
        this.#slots.push(slot);
        for (const w of this.#slotWaiters.splice(0)) w.resolve();
        // Give the newcomer every cached session, so it shares the load again.
        for (const entry of this.#cache.values()) {
          this.#loadOn(slot, entry).catch((e: unknown) =>
            this.#log?.warn(
              { key: entry.key, worker: index, err: errorMessage(e) },
              'reloading a session on a new worker failed',
            ),
          );
        }
      },
      (e: unknown) => {
        this.#log?.error({ worker: index, attempt, err: errorMessage(e) }, 'replacing the ORT worker failed');
        if (this.#closed) return;
        for (const w of this.#slotWaiters.splice(0)) w.reject(e instanceof Error ? e : new Error(String(e)));
        setTimeout(() => this.#respawn(index, attempt + 1), Math.min(RESPAWN_MAX_DELAY_MS, 100 * 2 ** attempt)).unref();
      },
    );
  }
}
