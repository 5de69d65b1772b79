/**
 * Link emulation at the sender: a token bucket (bandwidth) followed by a fixed one-way delay, between the
 * connection and its socket. Frames keep their order. Settings can change at any time; frames already held
 * are re-timed from that moment.
 *
 * The model of one directed link A->B, emulated entirely at A:
 * - data frames (`shaped`) wait for tokens at `bandwidthBps`, then travel for `delayMs`;
 * - control frames (acks, hello, pings) skip the bucket, as a small packet would slip between a big
 *   transfer's segments, but still travel for `delayMs` and never overtake what is already travelling;
 * - what comes back on the same connection (acks, pongs, replies) is held for `delayMs` on arrival, so the
 *   link's round trip is 2 x delayMs, as on a real path with that one-way delay each way.
 *
 * With no settings (`null`) and nothing held, items pass straight through with no timer and no allocation.
 * Nothing outside this file reads the settings back for measurement: links measure what they observe.
 */
import { performance } from 'node:perf_hooks';

export interface EmulationSettings {
  /** Bytes per second; null or 0 = unlimited. */
  bandwidthBps: number | null;
  /** One-way delay in ms; 0 = none. */
  delayMs: number;
  /**
   * Token bucket depth in bytes: how much may pass at once after an idle spell. Default 0 (pure pacing):
   * a bottleneck link lets nothing through faster than its rate, and with a deep bucket a small frame on
   * an idle link would look infinitely fast to the measurement.
   */
  burstBytes?: number;
}

/** The sender-side path a connection writes through: the emulator, or a pass-through on the server side. */
export interface Pipe {
  /**
   * Hand `deliver` an item of `bytes` to write out when the (emulated) link lets it go. `shaped` marks a data
   * frame (it waits for bandwidth); control items (acks, hello, pings, pongs) only serve the delay.
   */
  send(bytes: number, shaped: boolean, deliver: () => void): void;
  /** Run `fn` for something that arrived, after the (emulated) return delay. */
  receive(fn: () => void): void;
  /**
   * Bytes of data frames (`shaped` items) held and not yet delivered. Control items are not counted: they are
   * the link's own chatter, not queued work, and on an emulated link a ping or ack is almost always in transit
   * for `delayMs`, so counting them would make an idle link look busy (no probe would ever go) and could
   * refuse a large frame on an empty queue.
   */
  readonly heldBytes: number;
  /** Drop everything held (the connection is gone). */
  clear(): void;
}

/** The longest single setTimeout Node honours. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;
/** Bounds on settings from outside: a link slower or later than this is a typo, not an experiment. */
const MAX_DELAY_MS = 60_000;
const MIN_BANDWIDTH_BPS = 1;

export const PASSTHROUGH: Pipe = {
  send: (_bytes, _shaped, deliver) => deliver(),
  receive: (fn) => fn(),
  heldBytes: 0,
  clear: () => undefined,
};

interface Held {
  bytes: number;
  /** Counted in `heldBytes`: a data frame. */
  data: boolean;
  deliver: () => void;
  /** Time the item leaves the current stage. */
  at: number;
}

type Clock = () => number;

/**
 * A timer that fires within a fraction of a millisecond: setTimeout alone is up to ~1 ms late, which is 10% of
 * a 5 ms link. It sleeps until 1 ms before the deadline and yields to the event loop (setImmediate) for the
 * rest, so I/O keeps flowing while it waits.
 */
class Alarm {
  private at = Infinity;
  private timeout: NodeJS.Timeout | null = null;
  private immediate: NodeJS.Immediate | null = null;

  constructor(
    private readonly fire: () => void,
    private readonly clock: Clock,
  ) {}

  set(at: number): void {
    if (at === this.at && (this.timeout || this.immediate)) return;
    this.clear();
    this.at = at;
    this.arm();
  }

  clear(): void {
    if (this.timeout) clearTimeout(this.timeout);
    if (this.immediate) clearImmediate(this.immediate);
    this.timeout = null;
    this.immediate = null;
    this.at = Infinity;
  }

  private readonly arm = (): void => {
    this.timeout = null;
    this.immediate = null;
    const left = this.at - this.clock();
    if (left <= 0) {
      this.at = Infinity;
      this.fire();
    } else if (left > 1) {
      // Node fires a timeout past 2^31-1 ms after 1 ms instead: wait in steps up to that, then look again.
      this.timeout = setTimeout(this.arm, Math.min(left - 1, MAX_TIMEOUT_MS));
    } else {
      this.immediate = setImmediate(this.arm);
    }
  };
}

export class LinkEmulator implements Pipe {
  private settings: Required<EmulationSettings> | null = null;
  /** Waiting for tokens, FIFO; the head has been debited from the bucket when `headDebited`. */
  private readonly shaping: Held[] = [];
  private headDebited = false;
  /** Past the bucket, serving the one-way delay; `at` is non-decreasing, so order holds. */
  private readonly travelling: Held[] = [];
  private readonly returning: { fn: () => void; at: number }[] = [];
  /** Token count in bytes; negative while the head frame is still being paid for. */
  private tokens = 0;
  /**
   * Time up to which the bucket is accounted. While frames queue back to back this runs on their scheduled
   * release times rather than on the clock, so a timer that fires late does not slow the emulated link.
   */
  private bucketTime = 0;
  /** The delay the travelling and returning items were scheduled with. */
  private appliedDelay = 0;
  /** Bytes of data frames held (shaping or travelling); control items are not counted. */
  private held = 0;
  private readonly shapeAlarm: Alarm;
  private readonly travelAlarm: Alarm;
  private readonly returnAlarm: Alarm;

  constructor(
    settings: EmulationSettings | null = null,
    private readonly clock: Clock = () => performance.now(),
  ) {
    this.shapeAlarm = new Alarm(() => this.pumpShaping(), clock);
    this.travelAlarm = new Alarm(() => this.pumpTravelling(), clock);
    this.returnAlarm = new Alarm(() => this.pumpReturning(), clock);
    this.set(settings);
  }

  get heldBytes(): number {
    return this.held;
  }

  /** Current settings, for the API that shows them. The measurement code never calls this. */
  get(): EmulationSettings | null {
    return this.settings ? { ...this.settings } : null;
  }

  /** Change the emulation. `null` (or no bandwidth and no delay) turns it off; held frames leave in order. */
  set(settings: EmulationSettings | null): void {
    const now = this.clock();
    const wasShaping = this.rate() > 0;
    // Settle the bucket at the old rate up to now, so the new rate applies from this moment on.
    if (wasShaping) this.refill(now);
    this.settings = normalize(settings);
    if (!wasShaping && this.rate() > 0) {
      this.tokens = this.burst();
      this.bucketTime = now;
    }
    // What is already travelling keeps the part of its delay it has served.
    const shift = this.delay() - this.appliedDelay;
    this.appliedDelay = this.delay();
    let floor = now;
    for (const t of this.travelling) floor = t.at = Math.max(floor, t.at + shift);
    floor = now;
    for (const r of this.returning) floor = r.at = Math.max(floor, r.at + shift);
    this.pumpShaping();
    this.pumpTravelling();
    this.pumpReturning();
  }

  send(bytes: number, shaped: boolean, deliver: () => void): void {
    if (!this.settings && this.shaping.length === 0 && this.travelling.length === 0) {
      deliver();
      return;
    }
    if (shaped) this.held += bytes;
    const item: Held = { bytes, data: shaped, deliver, at: 0 };
    if (shaped && this.rate() > 0) {
      this.shaping.push(item);
      if (this.shaping.length === 1) {
        this.refill(this.clock()); // the link was idle: saved-up tokens (up to the burst) count
        this.pumpShaping();
      }
    } else {
      this.travel(item, this.clock());
    }
  }

  receive(fn: () => void): void {
    if (this.delay() === 0 && this.returning.length === 0) {
      fn();
      return;
    }
    const last = this.returning.length ? this.returning[this.returning.length - 1].at : 0;
    const at = Math.max(this.clock() + this.delay(), last);
    this.returning.push({ fn, at });
    if (this.returning.length === 1) this.returnAlarm.set(at);
  }

  clear(): void {
    // A frame dropped while being paid for leaves no debt: the next connection's first frame must not wait
    // for the rest of a frame that never went.
    if (this.headDebited) this.tokens = Math.min(this.burst(), this.tokens + this.shaping[0].bytes);
    this.shaping.length = 0;
    this.travelling.length = 0;
    this.returning.length = 0;
    this.headDebited = false;
    this.held = 0;
    this.shapeAlarm.clear();
    this.travelAlarm.clear();
    this.returnAlarm.clear();
  }

  private rate(): number {
    return this.settings?.bandwidthBps ?? 0;
  }

  private delay(): number {
    return this.settings?.delayMs ?? 0;
  }

  private burst(): number {
    return this.settings?.burstBytes ?? 0;
  }

  private refill(t: number): void {
    if (t <= this.bucketTime) return;
    // The cap limits saved-up tokens only; a debt is paid off at the full rate.
    this.tokens = Math.min(this.burst(), this.tokens + (this.rate() * (t - this.bucketTime)) / 1000);
    this.bucketTime = t;
  }

  private pumpShaping(): void {
    const now = this.clock();
    while (this.shaping.length) {
      const rate = this.rate();
      if (rate <= 0) {
        // Shaping was turned off: everything waiting leaves now, in order.
        this.headDebited = false;
        this.travel(this.shaping.shift() as Held, now);
        continue;
      }
      if (!this.headDebited) {
        this.tokens -= this.shaping[0].bytes;
        this.headDebited = true;
      }
      const releaseAt = this.tokens >= 0 ? this.bucketTime : this.bucketTime + (-this.tokens * 1000) / rate;
      if (releaseAt > now) {
        this.shapeAlarm.set(releaseAt);
        return;
      }
      if (this.tokens < 0) {
        this.tokens = 0;
        this.bucketTime = releaseAt;
      }
      this.headDebited = false;
      this.travel(this.shaping.shift() as Held, releaseAt);
    }
    this.shapeAlarm.clear();
  }

  /** Start an item's one-way delay at `from`: its serialization end, which may lie slightly in the past. */
  private travel(item: Held, from: number): void {
    const last = this.travelling.length ? this.travelling[this.travelling.length - 1].at : 0;
    item.at = Math.max(from + this.delay(), last);
    this.travelling.push(item);
    if (this.travelling.length === 1) this.pumpTravelling();
  }

  private pumpTravelling(): void {
    const now = this.clock();
    while (this.travelling.length && this.travelling[0].at <= now) {
      const item = this.travelling.shift() as Held;
      if (item.data) this.held -= item.bytes;
      item.deliver();
    }
    if (this.travelling.length) this.travelAlarm.set(this.travelling[0].at);
    else this.travelAlarm.clear();
  }

  private pumpReturning(): void {
    const now = this.clock();
    while (this.returning.length && this.returning[0].at <= now) {
      (this.returning.shift() as { fn: () => void }).fn();
    }
    if (this.returning.length) this.returnAlarm.set(this.returning[0].at);
    else this.returnAlarm.clear();
  }
}

function normalize(s: EmulationSettings | null): Required<EmulationSettings> | null {
  if (!s) return null;
  const bandwidthBps = s.bandwidthBps && s.bandwidthBps > 0 ? s.bandwidthBps : null;
  const delayMs = s.delayMs > 0 ? s.delayMs : 0;
  if (bandwidthBps === null && delayMs === 0) return null;
  return { bandwidthBps, delayMs, burstBytes: Math.max(0, s.burstBytes ?? 0) };
}

/** Checks settings coming from outside (config file, HTTP body); names the offending field. */
export function checkEmulationSettings(value: unknown): EmulationSettings | null {
  if (value === null) return null;
  if (typeof value !== 'object' || Array.isArray(value))
    throw new TypeError('emulation settings must be an object or null');
  const v = value as Record<string, unknown>;
  const num = (k: string, nullable: boolean): number | null => {
    const x = v[k];
    if (x === undefined || (nullable && x === null)) return null;
    if (typeof x !== 'number' || !Number.isFinite(x) || x < 0)
      throw new TypeError(`'${k}' must be a non-negative number`);
    return x;
  };
  const out = {
    bandwidthBps: num('bandwidthBps', true),
    delayMs: num('delayMs', false) ?? 0,
    burstBytes: num('burstBytes', false) ?? 0,
  };
  if (out.delayMs > MAX_DELAY_MS)
    throw new TypeError(`'delayMs' must be at most ${MAX_DELAY_MS} (one minute), got ${out.delayMs}`);
  if (out.bandwidthBps !== null && out.bandwidthBps > 0 && out.bandwidthBps < MIN_BANDWIDTH_BPS)
    throw new TypeError(
      `'bandwidthBps' must be at least ${MIN_BANDWIDTH_BPS} (8 bit/s) or null, got ${out.bandwidthBps}`,
    );
  return out;
}
