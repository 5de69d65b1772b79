/**
 * One worker thread of the executor, seen from the main thread: it posts requests, matches replies by id,
 * counts runs in flight (the executor's measure of load), remembers which sessions the worker holds, and
 * fails every pending request with E_INTERNAL if the thread dies.
 */
import { Worker } from 'node:worker_threads';
import { CleaveError } from '../../errors.js';
import type {
  DoneReply,
  LoadedReply,
  LoadRequest,
  RanReply,
  WorkerMessage,
  WorkerReply,
  WorkerRequest,
} from './protocol.js';
import type { TensorLike } from './tensors.js';

const WORKER_URL = new URL('./worker.mjs', import.meta.url);

/** How long `close()` lets a worker that has released its sessions take to exit before terminating it. */
const EXIT_GRACE_MS = 1_000;

/** Distributive so that `Omit` keeps each request's own fields. */
type Unsent<T> = T extends WorkerRequest ? Omit<T, 'id'> : never;

interface Pending {
  readonly resolve: (r: WorkerReply) => void;
  readonly reject: (e: Error) => void;
  readonly what: string;
}

export class WorkerSlot {
  /** Sessions this worker holds or is loading, by key; a settled promise means loaded. */
  readonly sessions = new Map<string, Promise<LoadedReply>>();
  /** Keys whose load has finished here: the ones a run may be sent to without waiting. */
  readonly warm = new Set<string>();
  /** Runs posted and not yet answered. */
  inflight = 0;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closing = false;
  private dead = false;
  /** Set by an uncaught error in the worker, which is followed by its exit. */
  private deathReason: string | undefined;

  /** Settles when the worker posts 'ready' (resolve) or fails first (reject). */
  private startup: { resolve: () => void; reject: (e: Error) => void } | undefined;

  private constructor(
    readonly index: number,
    private readonly worker: Worker,
    private readonly onDeath: (slot: WorkerSlot, reason: string) => void,
  ) {
    worker.on('message', (m: WorkerMessage) => this.onMessage(m));
    worker.on('error', (e) => {
      this.deathReason = `worker ${index} failed: ${e.message}`;
    });
    worker.on('exit', (code) => this.onExit(code));
  }

  /** Starts a worker and resolves once it has imported ORT and accepts requests. */
  static async start(index: number, onDeath: (slot: WorkerSlot, reason: string) => void): Promise<WorkerSlot> {
    // execArgv: [] keeps the worker clean of the parent's loader flags (tsx's own --import, vitest's
    // --conditions); worker.mjs registers tsx itself.
    const slot = new WorkerSlot(index, new Worker(WORKER_URL, { name: `cleave-ort-${index}`, execArgv: [] }), onDeath);
    await new Promise<void>((resolve, reject) => {
      slot.startup = { resolve, reject };
    });
    return slot;
  }

  get alive(): boolean {
    return !this.dead && !this.closing;
  }

  load(req: Unsent<LoadRequest>): Promise<LoadedReply> {
    return this.request(req, [], `load of '${req.key}'`) as Promise<LoadedReply>;
  }

  async run(
    key: string,
    feeds: Record<string, TensorLike>,
    outputs: readonly string[] | undefined,
    transfer: ArrayBuffer[],
  ): Promise<RanReply> {
    this.inflight++;
    try {
      return (await this.request({ op: 'run', key, feeds, outputs }, transfer, `run of '${key}'`)) as RanReply;
    } finally {
      this.inflight--;
    }
  }

  release(key: string): Promise<DoneReply> {
    return this.request({ op: 'release', key }, [], `release of '${key}'`) as Promise<DoneReply>;
  }

  /**
   * Lets the worker finish the requests already posted, release its sessions and exit. It is never
   * terminated inside `session.run`: onnxruntime-node then aborts the whole process (measured on 1.30).
   */
  async close(): Promise<void> {
    if (this.dead || this.closing) return;
    const exited = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
    const released = this.request({ op: 'close' }, [], 'close');
    this.closing = true;
    await released.catch(() => undefined);
    // Sessions are gone now, so terminating is safe if the thread is slow to wind down.
    const timer = setTimeout(() => void this.worker.terminate(), EXIT_GRACE_MS);
    await exited;
    clearTimeout(timer);
  }

  private request(msg: Unsent<WorkerRequest>, transfer: ArrayBuffer[], what: string): Promise<WorkerReply> {
    if (!this.alive) return Promise.reject(new CleaveError('E_INTERNAL', `ORT worker ${this.index} is gone (${what})`));
    const id = this.nextId++;
    return new Promise<WorkerReply>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, what });
      try {
        this.worker.postMessage({ ...msg, id }, transfer);
      } catch (e) {
        this.pending.delete(id);
        reject(
          new CleaveError(
            'E_INTERNAL',
            `could not post the ${what} to ORT worker ${this.index}: ${(e as Error).message}`,
            { cause: e },
          ),
        );
      }
    });
  }

  private onMessage(m: WorkerMessage): void {
    if (!('id' in m)) {
      this.startup?.resolve();
      this.startup = undefined;
      return;
    }
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    if (m.ok) p.resolve(m);
    else p.reject(new CleaveError(m.code, m.message));
  }

  private onExit(code: number): void {
    const expected = this.closing;
    this.dead = true;
    const reason = this.deathReason ?? `worker ${this.index} exited with code ${code}`;
    if (this.startup) {
      this.startup.reject(new CleaveError('E_INTERNAL', `ORT worker ${this.index} did not start: ${reason}`));
      this.startup = undefined;
      return;
    }
    for (const p of this.pending.values()) {
      p.reject(
        new CleaveError(
          expected ? 'E_NOT_READY' : 'E_INTERNAL',
          expected ? `executor closed during ${p.what}` : `${reason} during ${p.what}`,
        ),
      );
    }
    this.pending.clear();
    this.sessions.clear();
    this.warm.clear();
    if (!expected) this.onDeath(this, reason);
  }
}
