/**
 * Link measurement from what a sender observes: when it handed each data frame to the link, when the
 * receiver's ack came back, and WebSocket ping round trips. It knows nothing about the emulator: on an
 * emulated link it sees the emulated behaviour exactly as it would see a real network.
 *
 * Throughput. A frame of B bytes handed over at time e and acknowledged at k spent k - s - RTT on the wire,
 * where s is when it started to move: e if the link was idle, or, if it queued behind the previous frame,
 * when that one finished, which the previous ack (at k') tells us happened at k' - RTT. So
 *
 *     s = max(e, k' - RTT),   T = k - s - RTT,   sample = B / T.
 *
 * On a busy link T = k - k' (the ack spacing) and the RTT estimate cancels out. A frame whose T is under
 * `minSampleMs` is too quick to time against timer noise; it only tells us the link is at least
 * B / minSampleMs fast, so it may raise the estimate but never lower it.
 *
 * Both estimates are EWMAs fed through a median of the last three samples: one pong or ack held up by a GC
 * pause or a big frame ahead of it in the socket is dropped, while a real change gets through one sample late.
 * Until three samples exist the estimate is that median itself, so a cold first sample (JIT, connection
 * set-up) does not linger in the average: the start-up estimates are the ones the first plan is made from.
 * When three timed throughput samples in a row lie more than SHIFT_FACTOR from the estimate on the same side,
 * the link has changed (a new route, new emulation settings): the estimate restarts from their median instead
 * of crawling there at ewmaAlpha per sample, which on an idle link (one probe per probeIntervalMs) would take
 * a dozen intervals for a 10x drop.
 *
 * A drop also shows before any slow frame is acknowledged: a frame that started at s and was not acknowledged
 * by h, the last time anything came back from the peer (`heard`), has spent more than h - s - RTT on the
 * wire, so the link moves at most B / (h - s - RTT). (h, not the time of asking: a sender whose own event loop
 * lagged has acks waiting unread, and its frames would look overdue for its own stall.) When that bound says
 * the link is much slower than its estimate (the transfer overdue by over CEILING_MARGIN_MS and over
 * SHIFT_FACTOR times its expected time, which no receiver stall of a few ms explains) it is reported as
 * `throughputCeilingBps`, and so is the frame's timed sample once it is acknowledged, until the next sample;
 * so a planner sees a 40x drop a few hundred ms after it happens instead of after the two slow samples the
 * median needs (on a slow link, seconds).
 * Frames too small to time alone (MeterOptions.minTimedBytes) that go back to back, each queued behind the one
 * before, are summed into a train, which the same rule may take as a timed sample and a ceiling: a busy link
 * that carries only small frames leaves no gap for a probe, and must still show a drop (extendTrain).
 * Such a sample, or a timed sample far from the estimate either way, also asks for a probe at once
 * (`onProbeWanted`): an idle link's next sample then comes in milliseconds, not a probe interval later.
 */
export interface LinkStats {
  /** Smoothed round-trip time (ms) from pings, or null before the first sample. */
  rttMs: number | null;
  /** The most recent RTT sample (ms). */
  rttLastMs: number | null;
  /** Median of the last three RTT samples (ms): follows a step within two samples, ignores one outlier. */
  rttRecentMs: number | null;
  /**
   * The least of the last three RTT samples (ms): a rise shows after three samples, a fall at once, and up to
   * two late pongs (a host stalled by its CPU quota answers or reads them late; at 1 CPU, an edge running ORT
   * flat out read 5 ms pongs at 120 ms) are ignored. What an adaptive planner wants: a stall is the host's,
   * not the link's, and it goes away with the load that caused it.
   */
  rttLeastRecentMs: number | null;
  /** Smoothed throughput in bytes per second, or null before the first sample. */
  throughputBps: number | null;
  /**
   * An upper bound on the throughput now (bytes/s) when the link has shown it is much slower than its
   * estimate: the oldest unacknowledged frame is long overdue, or the latest timed sample was that slow.
   * Null when there is no such evidence (the usual case).
   */
  throughputCeilingBps: number | null;
  /** The most recent throughput sample (bytes/s), resolved or lower bound. */
  throughputLastBps: number | null;
  /**
   * Median of the last three timed throughput samples (bytes/s), raised to any lower bound seen since: what
   * an adaptive planner wants, since it follows a step within two samples where the EWMA takes many.
   */
  throughputRecentBps: number | null;
  bytesSent: number;
  /** What the data frames sent would have been with every tensor raw (their codecs' savings added back). */
  uncodedBytesSent: number;
  framesSent: number;
  bytesAcked: number;
  framesAcked: number;
  /** Data frames handed to the link and not yet acknowledged. */
  inFlightFrames: number;
  rttSamples: number;
  /** RTT samples this process stalled across, taken with the stall taken out (see LinkMeter.rttSample). */
  rttStalledSamples: number;
  throughputSamples: number;
  /** Acknowledged frames left untimed because this process stalled across their transfer (see STALL_SHARE). */
  stalledSamples: number;
  /** Date.now() of the latest RTT or throughput sample, or null. */
  lastSampleAt: number | null;
  /** Date.now() of the latest timed (not lower-bound) throughput sample, or null. */
  lastThroughputSampleAt: number | null;
}

export interface MeterOptions {
  ewmaAlpha: number;
  minSampleMs: number;
  /**
   * After this long without a timed sample, frames sent as untimed (too small to trust) are timed after
   * all: on a link that carries nothing bigger they are all there is, and a link that really slowed down
   * must show it. Default: never (untimed stays untimed).
   */
  probeIntervalMs?: number;
  /** Told when a sample says the estimate is off (see the file comment): the link should probe now. */
  onProbeWanted?: () => void;
  /**
   * The longest stall of this process's event loop since `at` (loop-lag.ts; ms, in the clock `sent` and
   * `acked` are given in). A frame whose measured transfer such a stall could have moved by a quarter or more
   * (its ack read late, in a burst with others) bounds the link from below only. Absent: no stall is known.
   */
  longestStallSince?: (at: number) => number;
  /**
   * Bytes of back-to-back untimed frames that, together, may time the link when they show it slower (see
   * extendTrain): on a busy link that carries only small frames no probe finds a gap. Default: never.
   */
  minTimedBytes?: number;
}

/** Back-to-back untimed frames, timed together: their bytes, the sum of their transfers, when the first was sent. */
interface Train {
  bytes: number;
  ms: number;
  sentAt: number;
}

interface InFlight {
  seq: number;
  id: string;
  bytes: number;
  sentAt: number;
  /** Whether its transfer may time the link (false: it can only show the link is at least this fast). */
  timed: boolean;
}

/** A transfer is timed only if no stall of this process while it was out was over 1/STALL_SHARE of it. */
const STALL_SHARE = 4;
/** A timed throughput sample more than this factor above or below the estimate counts toward a level shift. */
const SHIFT_FACTOR = 2;
/** This many such samples in a row, all on one side, restart the throughput estimate from their median. */
const SHIFT_RUN = 3;

/**
 * A transfer counts as evidence of a slower link only when it is overdue by this much (ms) beyond its
 * expected time (as well as by SHIFT_FACTOR times it): a receiver stalled by a CPU quota period or a GC pause
 * delays an ack by a few ms to tens of ms.
 */
const CEILING_MARGIN_MS = 100;

/**
 * Probe sizing (LinkMeter.probeBytes). A probe is sized by the best timed sample of the last PEAK_MS, not by
 * the estimate alone, and lasts longer, up to PROBE_STALL_FACTOR times the link's recent stall (the recent
 * RTT over the least RTT seen), at most PROBE_MAX_STRETCH times the target: a host that stalls (a CPU quota
 * period, a GC pause) adds its stall to every probe's transfer, and a probe sized by the lowered estimate came
 * out smaller and looked slower still, so the estimate of an idle 50 Mbit/s link whose sender ran under a
 * 0.25-CPU quota settled at 0.74 MB/s, an eighth of the link (`npm run bench -- adapt`: the planner then kept
 * work off that link). A real drop still shows: the big probe is slow too, and once the recent median is
 * more than SHIFT_FACTOR below a peak, that peak no longer sizes probes.
 */
const PEAK_MS = 10_000;
/** Timed samples kept for PEAK_MS at most, however fast they come. */
const PEAK_SAMPLES = 64;
const PROBE_STALL_FACTOR = 3;
const PROBE_MAX_STRETCH = 4;

/** At most this many probes in a row are sent at once on request (`onProbeWanted`); then the interval rules. */
const QUICK_PROBES = 4;

/**
 * Round trips whose least is taken as the link's propagation time when bounding a frame's transfer: many (at
 * 500 ms pings, half a minute), since a lower bound must stay one. Too small a floor (the delay rose since)
 * only makes a bound lower; too large a one (every recent pong delayed by a lagging host) would make a quick
 * frame look near-instant and the link far faster than it is.
 */
const RTT_FLOOR_SAMPLES = 64;
/**
 * A timed frame's transfer is its round trip less the least of this many latest RTTs: one or two pongs a
 * stalled receiver (or a throttled sender) was slow with inflate the RTT, and subtracting that would make
 * the transfer look shorter, the link faster than it is (seen here: 12 MB/s on a 6.25 MB/s link while the
 * RTT read 54 ms for 30); a real rise in delay still shows after this many pings (2 s at a host's 500 ms).
 */
const RTT_TIMED_SAMPLES = 4;

/** Beyond this many unacknowledged frames the oldest are forgotten (a peer that never acks is a bug). */
const MAX_IN_FLIGHT = 4096;

/** Median of the last three values (of fewer, while starting). */
class Median3 {
  private readonly last: number[] = [];

  push(x: number): number {
    this.last.push(x);
    if (this.last.length > 3) this.last.shift();
    return this.median() as number;
  }

  /** The greatest of the last three values, or null before the first. */
  max(): number | null {
    return this.last.length === 0 ? null : Math.max(...this.last);
  }

  /** The median of the last three values (of fewer, while starting), or null before the first. */
  median(): number | null {
    const n = this.last.length;
    if (n === 0) return null;
    const [a, b, c] = this.last;
    if (n === 1) return a;
    if (n === 2) return (a + b) / 2;
    return Math.max(Math.min(a, b), Math.min(Math.max(a, b), c));
  }

  /** The least of the last three values, or null before the first. */
  min(): number | null {
    return this.last.length === 0 ? null : Math.min(...this.last);
  }

  /** The lesser of the last two values, or null before the first. */
  min2(): number | null {
    const n = this.last.length;
    return n === 0 ? null : n === 1 ? this.last[0] : Math.min(this.last[n - 1], this.last[n - 2]);
  }

  reset(): void {
    this.last.length = 0;
  }
}

export class LinkMeter {
  private readonly inFlight: InFlight[] = [];
  private readonly rttFilter = new Median3();
  private readonly rateFilter = new Median3();
  private rtt: number | null = null;
  /** Median of the last three RTT samples (stalls taken out, see rttSample). */
  private rttRecent: number | null = null;
  /** Median of the last three RTT samples as read, stalls and all: over the floor, the link's recent stall. */
  private readonly rawRttFilter = new Median3();
  private rttLast: number | null = null;
  /** The last RTT_FLOOR_SAMPLES round trips as read: their least bounds a frame's transfer time from above. */
  private readonly rttHistory: number[] = [];
  /** The last RTT_TIMED_SAMPLES round trips, stalls taken out: their least is what a timed transfer subtracts. */
  private readonly rttTimed: number[] = [];
  private rttStalledSamples = 0;
  private rate: number | null = null;
  private rateLast: number | null = null;
  private rateRecent: number | null = null;
  private lastAckAt = -Infinity;
  private bytesSent = 0;
  private uncodedBytesSent = 0;
  private framesSent = 0;
  private bytesAcked = 0;
  private framesAcked = 0;
  private rttSamples = 0;
  private rateSamples = 0;
  private stalledSamples = 0;
  private resolvedSamples = 0;
  /** Consecutive timed samples beyond SHIFT_FACTOR of the estimate, and on which side (1 above, -1 below). */
  private shiftRun = 0;
  private shiftSide = 0;
  private lastSampleAt: number | null = null;
  private lastRateAt: number | null = null;
  /** Monotonic time of the last timed throughput sample, for the probe scheduler. */
  lastResolvedAt = -Infinity;
  /**
   * The highest lower bound (bytes/s) seen since the last timed sample, or null: the link is at least this
   * fast. Probes size themselves from it, so a probe too quick to time is followed by one big enough to time,
   * even when the lower bound did not raise the (smoothed) estimate that far.
   */
  lowerBoundBps: number | null = null;
  /** The latest timed sample (bytes/s), when its frame was overdue before its ack came (a ceiling); else null. */
  private slowSample: number | null = null;
  /** Monotonic time anything last came back from the peer (an ack, a frame, a pong). */
  private heardAt = -Infinity;
  /** Set when a sample asks for a quick probe; the next probe clears it. */
  probeWanted = false;
  private quickProbes = 0;
  /** The current train of back-to-back untimed frames (see extendTrain), or null. */
  private train: Train | null = null;
  /** Timed samples of the last PEAK_MS (monotonic time, bytes/s), for sizing probes. */
  private readonly peaks: { at: number; bps: number }[] = [];

  constructor(private readonly options: MeterOptions) {}

  /** The estimate a planner reads: the recent median, raised to any lower bound seen since. */
  private recentBps(): number | null {
    return this.rateRecent === null ? this.rate : Math.max(this.rateRecent, this.lowerBoundBps ?? 0);
  }

  /** Whether `transferMs` for `bytes` is overdue enough, against the estimate, to bound the link from above. */
  private overdue(bytes: number, transferMs: number): boolean {
    const est = this.recentBps();
    if (est === null || !(est > 0)) return false;
    const expected = (bytes * 1000) / est;
    return transferMs >= Math.max(SHIFT_FACTOR * expected, expected + CEILING_MARGIN_MS);
  }

  /** Something came back from the peer at monotonic time `at` (after any ack it carried was counted). */
  heard(at: number): void {
    if (at > this.heardAt) this.heardAt = at;
  }

  /** An upper bound on the throughput at monotonic time `now`, or null (see LinkStats.throughputCeilingBps). */
  ceilingBps(now: number): number | null {
    const bound = this.inFlightBound(Math.min(now, this.heardAt));
    if (bound === null) return this.slowSample;
    return this.slowSample === null ? bound : Math.min(this.slowSample, bound);
  }

  /**
   * B / (at - start - RTT) for the oldest frame in flight if, as of `at`, it is overdue (see `overdue`); else
   * null. The oldest only: its start is known (the previous ack tells when it could begin to move).
   */
  private inFlightBound(at: number): number | null {
    const f = this.inFlight[0];
    if (!f || !f.timed || f.bytes === 0) return null;
    const rtt = this.rttFilter.min2() ?? 0;
    const elapsed = at - Math.max(f.sentAt, this.lastAckAt - rtt) - rtt;
    return elapsed > 0 && this.overdue(f.bytes, elapsed) ? (f.bytes * 1000) / elapsed : null;
  }

  /** A probe was sent: one quick probe request is used up. */
  probed(): void {
    if (this.probeWanted) this.quickProbes++;
    this.probeWanted = false;
  }

  private wantProbe(): void {
    if (this.quickProbes >= QUICK_PROBES || this.probeWanted) return;
    this.probeWanted = true;
    this.options.onProbeWanted?.();
  }

  /**
   * A data frame of `bytes` was handed to the link at monotonic time `at` (ms). `timed` false: the frame is
   * too small to time the link by (see TransportOptions.minTimedBytes); it only ever raises the estimate.
   */
  sent(seq: number, id: string, bytes: number, at: number, timed = true, uncodedBytes = bytes): void {
    this.inFlight.push({ seq, id, bytes, sentAt: at, timed });
    if (this.inFlight.length > MAX_IN_FLIGHT) this.inFlight.shift();
    this.bytesSent += bytes;
    this.uncodedBytesSent += uncodedBytes;
    this.framesSent++;
  }

  /** The receiver acknowledged frame `seq`; the ack was observed at monotonic time `at`. */
  acked(seq: number, at: number): void {
    let i = 0;
    while (i < this.inFlight.length && this.inFlight[i].seq !== seq) i++;
    if (i === this.inFlight.length) return; // unknown or from a previous connection
    const f = this.inFlight[i];
    // Overdue already by the last time the peer was heard from before this ack: the link, not a stall of ours.
    const wasOverdue = i === 0 && this.inFlightBound(this.heardAt) !== null;
    this.inFlight.splice(0, i + 1);
    this.bytesAcked += f.bytes;
    this.framesAcked++;
    // The least of the last RTT_TIMED_SAMPLES RTTs, not the median of three: a pong the receiver was slow to
    // send (its process stalled, say under a CPU quota) inflates RTT samples, and subtracting one from this
    // frame's round trip would make its transfer look shorter, the link faster than it is.
    const rtt = this.recentRttFloor();
    const roundTrip = at - f.sentAt;
    const start = Math.max(f.sentAt, this.lastAckAt - rtt);
    const transferMs = at - start - rtt;
    this.lastAckAt = at;
    if (f.bytes === 0) return;
    const est = this.recentBps();
    const train = this.extendTrain(f, start > f.sentAt, transferMs, est);
    if (train) {
      this.slowTrain(train, at);
      return;
    }
    // Small frames count only while nothing better has been timed lately (see MeterOptions.probeIntervalMs),
    // and then, where they say the link is slower, only when no stall explains it: overdue by the ceiling's
    // rule. A 4 kB result read 60 ms late by a host under a CPU quota said 0.066 MB/s of a 25 MB/s link, and
    // the planner priced every result's return at 60 ms (`npm run bench -- adapt`); probes in the link's gaps
    // time it properly, and a drop too deep for any stall still shows here.
    let timed = f.timed || at - this.lastResolvedAt > (this.options.probeIntervalMs ?? Infinity);
    // This process stalled while the frame was out, for a quarter of the transfer measured or more: the ack
    // was read late (the transfer looks longer by up to the stall), perhaps in a burst with others that then
    // seem to have taken no time (shorter by up to it).
    if (timed && this.stalledAcross(f.sentAt, transferMs)) {
      timed = false;
      this.stalledSamples++;
    }
    if (timed && !f.timed && est !== null && (f.bytes * 1000) / transferMs < est && !this.overdue(f.bytes, transferMs))
      timed = false;
    if (transferMs >= this.options.minSampleMs && timed) {
      const bps = (f.bytes * 1000) / transferMs;
      this.peaks.push({ at, bps });
      if (this.peaks.length > PEAK_SAMPLES) this.peaks.shift();
      this.rateSample(bps, true, at);
      this.slowSample = wasOverdue ? bps : null;
      const off = est !== null && (bps > est * SHIFT_FACTOR || bps * SHIFT_FACTOR < est);
      if (off) this.wantProbe();
      else this.quickProbes = 0;
    } else {
      // Too quick (or too small) to time: the link is at least this fast, by what bounds its transfer from
      // above: the frame's round trip less the least RTT seen lately (not the recent RTT, which a stalled
      // receiver inflates, and which would make any frame look too quick), and never under minSampleMs. When
      // it came back sooner than that (the delay fell), its round trip itself.
      const floorRtt = this.rttFloor();
      const upper = roundTrip < floorRtt ? roundTrip : roundTrip - floorRtt;
      const floor = (f.bytes * 1000) / Math.max(this.options.minSampleMs, upper);
      this.lowerBoundBps = Math.max(this.lowerBoundBps ?? 0, floor);
      if (this.rate === null || floor > this.rate) this.rateSample(floor, false, at);
      // Far faster than thought: time it with a probe sized to the new bound.
      if (est !== null && floor > est * SHIFT_FACTOR) this.wantProbe();
    }
  }

  /**
   * Adds an untimed frame to the train of back-to-back untimed frames (`queued`: it started to move only when
   * the one before it finished, so its transfer is the ack spacing), or starts a new train with it. Returns the
   * train when it is evidence of a slower link: at least minTimedBytes, and overdue as a whole by the ceiling's
   * rule against the estimate `est` (which no receiver stall of a few tens of ms explains), with no stall of
   * this process over a quarter of it. A timed frame ends any train.
   */
  private extendTrain(f: InFlight, queued: boolean, transferMs: number, est: number | null): Train | null {
    if (f.timed) {
      this.train = null;
      return null;
    }
    let train = this.train;
    if (train && queued) {
      train.bytes += f.bytes;
      train.ms += transferMs;
    } else train = this.train = { bytes: f.bytes, ms: Math.max(0, transferMs), sentAt: f.sentAt };
    if (est === null || train.bytes < (this.options.minTimedBytes ?? Infinity) || !this.overdue(train.bytes, train.ms))
      return null;
    this.train = null;
    return this.stalledAcross(train.sentAt, train.ms) ? null : train;
  }

  /** Whether a stall of this process since `sentAt` was a quarter of `transferMs` or more (see STALL_SHARE). */
  private stalledAcross(sentAt: number, transferMs: number): boolean {
    return (this.options.longestStallSince?.(sentAt) ?? 0) * STALL_SHARE >= transferMs;
  }

  /** A train of small frames showed the link slower (see extendTrain): a timed sample, and a ceiling till the next. */
  private slowTrain(train: Train, at: number): void {
    const bps = (train.bytes * 1000) / train.ms;
    this.rateSample(bps, true, at);
    this.slowSample = bps;
    this.wantProbe();
  }

  /** The least of the last RTT_TIMED_SAMPLES round trips, stalls taken out (0 before the first). */
  private recentRttFloor(): number {
    return this.rttTimed.length === 0 ? 0 : Math.min(...this.rttTimed);
  }

  /** The least of the last RTT_FLOOR_SAMPLES round trips (0 before the first). */
  private rttFloor(): number {
    return this.rttHistory.length === 0 ? 0 : Math.min(...this.rttHistory);
  }

  /**
   * A round trip of `ms` was measured, its pong read at `at` (monotonic ms, the clock of `sent`/`acked`).
   * When this process stalled while the ping was out (MeterOptions.longestStallSince), the longest such stall
   * is taken out of the sample, down to the least round trip seen lately at most: the stall delayed reading
   * the pong (and, on an emulated link, the timers that hold the ping and the pong), and it is this host's,
   * not the link's. Measured here (`npm run bench -- adapt`'s device at 0.25 CPU running 61 of MobileNetV2's
   * 157 blocks): its 30 ms link to the cloud read 35-40 ms in most samples, each with a 9-14 ms stall, and
   * a 50 KB frame timed against that figure said 10-20 MB/s on the 6.25 MB/s link, so the planner moved
   * the whole input onto it. A real rise in delay still shows: a sample with no stall is taken as read, and
   * a stall takes out no more than its own length.
   */
  rttSample(ms: number, at: number = performance.now()): void {
    this.rttLast = ms;
    this.rttHistory.push(ms);
    if (this.rttHistory.length > RTT_FLOOR_SAMPLES) this.rttHistory.shift();
    this.rawRttFilter.push(ms);
    const stall = this.options.longestStallSince?.(at - ms) ?? 0;
    const floor = stall > 0 ? this.rttFloor() : ms;
    if (ms > floor) {
      ms = Math.max(floor, ms - stall);
      this.rttStalledSamples++;
    }
    this.rttTimed.push(ms);
    if (this.rttTimed.length > RTT_TIMED_SAMPLES) this.rttTimed.shift();
    const x = this.rttFilter.push(ms);
    this.rttRecent = x;
    this.rttSamples++;
    this.rtt = this.rtt === null || this.rttSamples <= 3 ? x : this.rtt + this.options.ewmaAlpha * (x - this.rtt);
    this.lastSampleAt = Date.now();
  }

  /** The connection is gone: forget in-flight frames and return their request ids (for failing them fast). */
  dropInFlight(): string[] {
    const ids = this.inFlight.map((f) => f.id);
    this.inFlight.length = 0;
    this.lastAckAt = -Infinity;
    this.slowSample = null;
    this.train = null;
    this.heardAt = -Infinity;
    return ids;
  }

  get inFlightFrames(): number {
    return this.inFlight.length;
  }

  /** Current estimate in bytes/s, or null. */
  get throughputBps(): number | null {
    return this.rate;
  }

  /**
   * What a probe is sized by (bytes/s): the greatest of the last three timed samples, the estimate and any
   * lower bound since. Not the estimate alone: a receiver that stalls (a CPU quota) makes a small probe look
   * slow, and a probe sized by that estimate comes out smaller still, until the stall is all it measures.
   */
  get probeRateBps(): number | null {
    const xs = [this.rateFilter.max(), this.rate, this.lowerBoundBps].filter((x): x is number => x !== null);
    return xs.length === 0 ? null : Math.max(...xs);
  }

  /**
   * How big the next probe should be (bytes): `targetMs` at the best timed sample of the last PEAK_MS (of
   * those within SHIFT_FACTOR of the recent median; probeRateBps when there is none), stretched to
   * PROBE_STALL_FACTOR times the link's recent stall (at most PROBE_MAX_STRETCH x `targetMs`), clamped to
   * [minBytes, maxBytes]. `now`: monotonic ms.
   */
  probeBytes(targetMs: number, minBytes: number, maxBytes: number, now: number = performance.now()): number {
    while (this.peaks.length && this.peaks[0].at < now - PEAK_MS) this.peaks.shift();
    // A peak more than SHIFT_FACTOR above the recent median is from before a real drop (a stall costs a
    // probe less than that, the stretch sees to it): sized by it, a probe would hold the slower link for
    // hundreds of ms. Without a peak left, probeRateBps (the estimate, the last three samples).
    const recent = this.rateRecent;
    const peaks = recent === null ? this.peaks : this.peaks.filter((p) => p.bps <= SHIFT_FACTOR * recent);
    let rate = peaks.length ? (this.lowerBoundBps ?? 0) : (this.probeRateBps ?? 0);
    for (const p of peaks) rate = Math.max(rate, p.bps);
    const raw = this.rawRttFilter.median();
    const stallMs = raw === null ? 0 : Math.max(0, raw - this.rttFloor());
    const ms = Math.min(PROBE_MAX_STRETCH * targetMs, Math.max(targetMs, PROBE_STALL_FACTOR * stallMs));
    return Math.min(maxBytes, Math.max(minBytes, Math.round((rate * ms) / 1000)));
  }

  /** `now`: monotonic ms (performance.now()), for the ceiling. */
  stats(now: number = performance.now()): LinkStats {
    return {
      rttMs: this.rtt,
      rttLastMs: this.rttLast,
      rttRecentMs: this.rttRecent,
      rttLeastRecentMs: this.rttFilter.min(),
      throughputBps: this.rate,
      throughputCeilingBps: this.ceilingBps(now),
      throughputLastBps: this.rateLast,
      throughputRecentBps: this.recentBps(),
      bytesSent: this.bytesSent,
      uncodedBytesSent: this.uncodedBytesSent,
      framesSent: this.framesSent,
      bytesAcked: this.bytesAcked,
      framesAcked: this.framesAcked,
      inFlightFrames: this.inFlight.length,
      rttSamples: this.rttSamples,
      rttStalledSamples: this.rttStalledSamples,
      throughputSamples: this.rateSamples,
      stalledSamples: this.stalledSamples,
      lastSampleAt: this.lastSampleAt,
      lastThroughputSampleAt: this.lastRateAt,
    };
  }

  private rateSample(bps: number, resolved: boolean, at: number): void {
    this.rateLast = bps;
    this.rateSamples++;
    if (resolved) {
      const x = this.rateFilter.push(bps);
      this.rateRecent = x;
      this.resolvedSamples++;
      const side =
        this.rate === null ? 0 : bps > this.rate * SHIFT_FACTOR ? 1 : bps * SHIFT_FACTOR < this.rate ? -1 : 0;
      this.shiftRun = side !== 0 && side === this.shiftSide ? this.shiftRun + 1 : side !== 0 ? 1 : 0;
      this.shiftSide = side;
      if (this.rate === null || this.resolvedSamples <= 3 || this.shiftRun >= SHIFT_RUN) {
        // The median of three samples that all lie past SHIFT_FACTOR on one side lies there too.
        this.rate = x;
        this.shiftRun = 0;
        this.shiftSide = 0;
      } else {
        this.rate = this.rate + this.options.ewmaAlpha * (x - this.rate);
      }
    } else {
      // Lower bounds bypass the filter: they only ever raise the estimate, and must when a link speeds up.
      this.rate = this.rate === null ? bps : this.rate + this.options.ewmaAlpha * (bps - this.rate);
    }
    this.lastSampleAt = Date.now();
    if (resolved) {
      this.lastRateAt = this.lastSampleAt;
      this.lastResolvedAt = at;
      this.lowerBoundBps = null;
    }
  }
}
