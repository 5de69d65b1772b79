/**
 * Whether this host's own event loop was stalled lately. A host whose loop stops turning for a while (a long
 * synchronous step, or its CPU quota spent by a busy worker thread: a 0.25-CPU origin loading a model did)
 * reads its peers' heartbeats late, and a staleness check that ran first would take every peer for down and
 * move every plan off them, for the origin's own fault. So the origin does not judge a host down by silence
 * while it was itself stalled, nor for one heartbeat timeout after (its peers get that long to be heard
 * again); a dropped link still marks a host down at once.
 */
import type { Logger } from 'pino';

/** The ticks' period (ms). */
const TICK_MS = 100;
/** A tick this late (ms) is a stall. */
const STALL_MS = 300;

export class StallWatch {
  private last = performance.now();
  private graceUntil = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(
    /** How long after a stall silence is not held against a peer (the heartbeat timeout). */
    private readonly graceMs: number,
    private readonly log?: Logger,
  ) {
    this.timer = setInterval(() => this.tick(), TICK_MS);
    this.timer.unref();
  }

  /** True while the loop is stalled (its tick is overdue) or within `graceMs` after a stall. */
  stalled(): boolean {
    const now = performance.now();
    return now - this.last > STALL_MS || now < this.graceUntil;
  }

  close(): void {
    clearInterval(this.timer);
  }

  private tick(): void {
    const now = performance.now();
    const late = now - this.last - TICK_MS;
    this.last = now;
    if (late <= STALL_MS - TICK_MS) return;
    if (now >= this.graceUntil)
      this.log?.warn(
        { stalledMs: Math.round(late) },
        'event loop stalled: no host is taken for down by silence meanwhile',
      );
    this.graceUntil = now + this.graceMs;
  }
}
