/**
 * Live estimators the adaptive controller plans with: the extreme of a link measurement over a window (the
 * least RTT, the greatest throughput), and a host's slowdown against its profile from its segment times. Pure: the
 * caller passes every timestamp, nothing here reads a clock.
 */
import { CleaveError } from '../errors.js';

export const ESTIMATE_DEFAULTS = {
  /** WindowExtreme: samples younger than this (ms before `now`) form the estimate. */
  windowMs: 1500,
  /** WindowExtreme: samples kept at most, however fast they come. */
  maxSamples: 64,
  /** slowdownOf: segments run fewer times than this are ignored (a first run includes warm-up). */
  minRuns: 3,
  /** slowdownOf: the result is clamped to [minSlowdown, maxSlowdown]; beyond it the measurement is suspect. */
  minSlowdown: 0.25,
  maxSlowdown: 50,
  /** RecentMedian: how many of the latest samples the median is taken over. */
  recentSamples: 5,
} as const;

function bad(msg: string): never {
  throw new CleaveError('E_BAD_INPUT', msg);
}

function isNonNeg(x: unknown): x is number {
  return typeof x === 'number' && Number.isFinite(x) && x >= 0;
}

export interface ObservedSegment {
  readonly start: number;
  readonly end: number;
  readonly meanMs: number;
  readonly count: number;
}

export interface SlowdownOptions {
  /** The host's profiled cost of one session run, added to a segment that does not start at block 0, as the planner does. Default 0. */
  readonly stageOverheadMs?: number;
  readonly minRuns?: number;
  readonly minSlowdown?: number;
  readonly maxSlowdown?: number;
  /**
   * Added to each segment's observed and profiled time alike: a segment of a few tiny blocks is mostly fixed
   * per-run cost the profile folds elsewhere, so its ratio says little about the host; this pulls such
   * segments towards 1 while leaving long ones as they are. Default 0.
   */
  readonly dampMs?: number;
}

/**
 * A segment's profiled time, as the planner prices a stage: its blocks' times, plus one run's overhead
 * (`stageOverheadMs`) when it starts after block 0.
 */
export function segmentWorkMs(blockMs: readonly number[], start: number, end: number, stageOverheadMs = 0): number {
  let ms = start > 0 ? stageOverheadMs : 0;
  for (let k = start; k < end; k++) ms += blockMs[k] ?? 0;
  return ms;
}

/**
 * A host's slowdown against its profile: the sum of the observed mean times of the segments it ran (each
 * with at least `minRuns` runs) over the sum of their profiled times (`blockMs`, plus `stageOverheadMs`
 * for a segment that starts after block 0). One factor for the whole host: the controller scales all the
 * host's block times (and its stage overhead and cut costs) by it, including blocks it has not run
 * lately, on the reading that a slow host (CPU contention, thermal throttling) is slow for every block.
 * Returns 1 when nothing usable was observed (or the segments are profiled at 0 ms), otherwise a value
 * clamped to [minSlowdown, maxSlowdown] (ESTIMATE_DEFAULTS: [0.25, 50]).
 */
export function slowdownOf(
  observed: readonly ObservedSegment[],
  blockMs: readonly number[],
  opts: SlowdownOptions = {},
): number {
  const ovh = opts.stageOverheadMs ?? 0;
  const damp = opts.dampMs ?? 0;
  if (!isNonNeg(damp)) bad(`dampMs: must be a number >= 0 (got ${String(damp)})`);
  const minRuns = opts.minRuns ?? ESTIMATE_DEFAULTS.minRuns;
  const lo = opts.minSlowdown ?? ESTIMATE_DEFAULTS.minSlowdown;
  const hi = opts.maxSlowdown ?? ESTIMATE_DEFAULTS.maxSlowdown;
  if (!isNonNeg(ovh)) bad(`stageOverheadMs: must be a number >= 0 (got ${String(ovh)})`);
  if (!Number.isInteger(minRuns) || minRuns < 1) bad(`minRuns: must be an integer >= 1 (got ${String(minRuns)})`);
  if (!(isNonNeg(lo) && lo > 0 && isNonNeg(hi) && hi >= lo))
    bad(
      `minSlowdown, maxSlowdown: must be numbers with 0 < minSlowdown <= maxSlowdown (got ${String(lo)}, ${String(hi)})`,
    );
  blockMs.forEach((ms, i) => {
    if (!isNonNeg(ms)) bad(`blockMs[${i}]: must be a number >= 0 (got ${String(ms)})`);
  });
  const n = blockMs.length;
  let seen = 0;
  let predicted = 0;
  observed.forEach((o, i) => {
    const at = `observed[${i}]`;
    if (!Number.isInteger(o.start) || o.start < 0 || o.start >= n)
      bad(`${at}.start: must be a block index in [0, ${n}) (got ${String(o.start)})`);
    if (!Number.isInteger(o.end) || o.end <= o.start || o.end > n)
      bad(`${at}.end: must be an integer in (${o.start}, ${n}] (got ${String(o.end)})`);
    if (!isNonNeg(o.meanMs)) bad(`${at}.meanMs: must be a number >= 0 (got ${String(o.meanMs)})`);
    if (!Number.isInteger(o.count) || o.count < 0) bad(`${at}.count: must be an integer >= 0 (got ${String(o.count)})`);
    if (o.count < minRuns) return;
    seen += o.meanMs + damp;
    predicted += segmentWorkMs(blockMs, o.start, o.end, ovh) + damp;
  });
  if (predicted <= 0) return 1;
  return Math.min(hi, Math.max(lo, seen / predicted));
}

/**
 * The least (or greatest) sample of the last `windowMs`, or the latest sample when none is that recent.
 * For measurements that delays only ever push one way: a receiver that is slow to answer (a host under a CPU
 * quota is stalled whole when its quota runs out) makes a round trip look longer and a transfer slower,
 * never the reverse; so a link's capacity is the greatest recent throughput sample and its latency the
 * least recent round trip, and a real step still shows within one window.
 */
export class WindowExtreme {
  private readonly samples: { at: number; value: number }[] = [];

  constructor(
    private readonly kind: 'min' | 'max',
    private readonly windowMs: number = ESTIMATE_DEFAULTS.windowMs,
    private readonly maxSamples: number = ESTIMATE_DEFAULTS.maxSamples,
  ) {
    if (!(windowMs > 0)) bad(`windowMs: must be a number > 0 (got ${String(windowMs)})`);
  }

  add(atMs: number, value: number): void {
    if (!Number.isFinite(atMs)) bad(`atMs: must be a finite number (got ${String(atMs)})`);
    if (!Number.isFinite(value)) bad(`value: must be a finite number (got ${String(value)})`);
    this.samples.push({ at: atMs, value });
    if (this.samples.length > this.maxSamples) this.samples.shift();
  }

  /** Null only before the first sample. */
  value(nowMs: number): number | null {
    while (this.samples.length > 1 && this.samples[0].at < nowMs - this.windowMs) this.samples.shift();
    if (this.samples.length === 0) return null;
    let v = this.samples[0].value;
    for (const s of this.samples) v = this.kind === 'min' ? Math.min(v, s.value) : Math.max(v, s.value);
    // Everything is older than the window: the latest sample is what is known.
    if (this.samples[0].at < nowMs - this.windowMs) return this.samples[this.samples.length - 1].value;
    return v;
  }
}

/**
 * The median of the last `size` samples: a step shows in full once more than half of them are new (3 of 5),
 * and a single outlier never moves it. For segment run times, which the controller turns into a host's
 * slowdown: a smoothed mean (an EWMA of weight 0.2 was used before) still showed a third of the old figure
 * after five runs, and a host under a small CPU quota runs a segment only every few hundred ms, so its
 * estimate lagged a quota change by seconds and froze half-way once work moved off it.
 */
export class RecentMedian {
  private readonly samples: number[] = [];
  private count = 0;

  constructor(private readonly size: number = ESTIMATE_DEFAULTS.recentSamples) {
    if (!(Number.isInteger(size) && size >= 1)) bad(`size: must be an integer >= 1 (got ${String(size)})`);
  }

  add(value: number): void {
    if (!Number.isFinite(value)) bad(`value: must be a finite number (got ${String(value)})`);
    this.samples.push(value);
    if (this.samples.length > this.size) this.samples.shift();
    this.count++;
  }

  /**
   * Forgets the samples kept, not how many were added: what runs next is measured under new conditions (a new
   * CPU quota), and its first sample is the value at once instead of after most of `size` more.
   */
  restart(): void {
    this.samples.length = 0;
  }

  /** Samples added in all (not only those kept). */
  get runs(): number {
    return this.count;
  }

  /** Null before the first sample; with an even number kept, the mean of the middle two. */
  get value(): number | null {
    const n = this.samples.length;
    if (n === 0) return null;
    const s = [...this.samples].sort((a, b) => a - b);
    return n % 2 ? s[n >> 1] : (s[n / 2 - 1] + s[n / 2]) / 2;
  }
}

/**
 * The `q` quantile of `xs` (0..1), interpolated linearly between the two nearest samples (so the median of an
 * even count is the mean of the middle two); 0 for no samples.
 */
export function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo] + (s[hi] - s[lo]) * (pos - lo);
}
