/**
 * Whether this host's own event loop was stalled lately. A host whose loop stops turning for a while (a long
 * synchronous step, or its CPU quota spent by a busy worker thread: a 0.25-CPU origin loading a model did)
 * reads its peers' heartbeats late, and a staleness check that ran first would take every peer for down and
 * move every plan off them, for the origin's own fault. So the origin does not judge a host down by silence
 * while it was itself stalled, nor for one heartbeat timeout after (its peers get that long to be heard
 * again); a dropped link still marks a host down at once. The stalls are the transport's record of this
 * process's loop (transport/loop-lag.ts), which its links' senders read too.
 */
import type { Logger } from 'pino';
import { longestStallSince, watchLoop } from '../../transport/loop-lag.js';

/** A stall this long (ms) or longer is one the origin's silence checks allow for. */
const STALL_MS = 300;

export class StallWatch {
  private warnedAt = -Infinity;

  constructor(
    /** How long after a stall silence is not held against a peer (the heartbeat timeout). */
    private readonly graceMs: number,
    private readonly log?: Logger,
  ) {
    watchLoop();
  }

  /**
   * True while the loop is stalled for STALL_MS or more, or within `graceMs` after such a stall. Asked when a
   * peer has been silent past the timeout: the answer that spares it is logged, once per `graceMs`.
   */
  stalled(): boolean {
    const now = performance.now();
    const longest = longestStallSince(now - this.graceMs);
    if (longest < STALL_MS) return false;
    if (now - this.warnedAt > this.graceMs) {
      this.warnedAt = now;
      this.log?.warn(
        { stalledMs: Math.round(longest) },
        'event loop stalled: no host is taken for down by silence meanwhile',
      );
    }
    return true;
  }
}
