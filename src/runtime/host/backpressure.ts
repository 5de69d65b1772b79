/**
 * Backpressure on stage hops. A link's `send` returns false when its queue passed half of maxQueueBytes (the
 * frame is still taken) and throws E_QUEUE_FULL when a frame would not fit; it emits 'drain' when the queue
 * has room again. `SendGate` holds later frames for a full link until that drain, in arrival order, each
 * for no longer than its request's deadline, so a slow link costs waiting requests time, not memory.
 */
import { CleaveError, isCleaveError } from '../../errors.js';
import type { HeaderInput, Tensor } from '../../transport/frame.js';

/** What the gate needs of the links (PeerMesh, or a fake in tests). */
export interface LinkPort {
  /** Sends now; false = sent, but wait for drain before the next. Throws E_QUEUE_FULL, E_PEER_GONE. */
  send(host: string, header: HeaderInput, tensors: readonly Tensor[]): boolean;
  onDrain(host: string, listener: () => void): void;
  onDown(host: string, listener: () => void): void;
  /** Resolves true once the link to `host` is open, false after `timeoutMs` (absent: never waits). */
  whenOpen?(host: string, timeoutMs: number): Promise<boolean>;
}

interface Waiter {
  readonly header: HeaderInput;
  readonly tensors: readonly Tensor[];
  readonly resolve: () => void;
  readonly reject: (e: CleaveError) => void;
  readonly timer: NodeJS.Timeout | null;
}

interface LinkState {
  full: boolean;
  readonly waiting: Waiter[];
}

export class SendGate {
  private readonly state = new Map<string, LinkState>();

  constructor(private readonly links: LinkPort) {}

  /** Frames waiting for a drain, over all links. */
  get waiting(): number {
    let n = 0;
    for (const s of this.state.values()) n += s.waiting.length;
    return n;
  }

  /**
   * Sends `header` + `tensors` to `host` now if its link takes them, else once it drains. `deadline` is a
   * `Date.now()` time after which a frame still waiting fails with E_DEADLINE (0: no deadline). Resolves
   * once the link has taken the frame.
   */
  send(host: string, header: HeaderInput, tensors: readonly Tensor[], deadline: number): Promise<void> {
    const s = this.linkState(host);
    if (!s.full && s.waiting.length === 0) {
      try {
        if (!this.links.send(host, header, tensors)) s.full = true;
        return Promise.resolve();
      } catch (e) {
        if (!(isCleaveError(e) && e.code === 'E_QUEUE_FULL')) return Promise.reject(e);
        s.full = true;
      }
    }
    return new Promise<void>((resolve, reject) => {
      const left = deadline > 0 ? deadline - Date.now() : Infinity;
      if (left <= 0) return reject(expired(header, host));
      const timer =
        left === Infinity
          ? null
          : setTimeout(() => {
              const i = s.waiting.indexOf(w);
              if (i >= 0) s.waiting.splice(i, 1);
              reject(expired(header, host));
            }, left);
      const w: Waiter = { header, tensors, resolve, reject, timer };
      s.waiting.push(w);
    });
  }

  private linkState(host: string): LinkState {
    let s = this.state.get(host);
    if (!s) {
      const created: LinkState = { full: false, waiting: [] };
      this.links.onDrain(host, () => this.flush(host, created));
      this.links.onDown(host, () => {
        // The next connection starts with an empty queue; what waited for this one fails now.
        created.full = false;
        for (const w of created.waiting.splice(0))
          settle(
            w,
            new CleaveError(
              'E_PEER_GONE',
              `the link to ${host} dropped while request ${w.header.id ?? ''} waited to be sent`,
            ),
          );
      });
      this.state.set(host, created);
      s = created;
    }
    return s;
  }

  /** The link drained: send waiting frames in order until it is full again. */
  private flush(host: string, s: LinkState): void {
    s.full = false;
    while (!s.full && s.waiting.length > 0) {
      const w = s.waiting[0];
      try {
        s.full = !this.links.send(host, w.header, w.tensors);
      } catch (e) {
        if (isCleaveError(e) && e.code === 'E_QUEUE_FULL') {
          s.full = true;
          return;
        }
        s.waiting.shift();
        settle(w, isCleaveError(e) ? e : new CleaveError('E_INTERNAL', String(e)));
        continue;
      }
      s.waiting.shift();
      settle(w, null);
    }
  }
}

function settle(w: Waiter, e: CleaveError | null): void {
  if (w.timer) clearTimeout(w.timer);
  if (e) w.reject(e);
  else w.resolve();
}

function expired(header: HeaderInput, host: string): CleaveError {
  return new CleaveError(
    'E_DEADLINE',
    `request ${header.id ?? ''} missed its deadline waiting for the link to ${host} to drain`,
  );
}
