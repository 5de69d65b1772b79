import { performance } from 'node:perf_hooks';
import { afterEach, describe, expect, it } from 'vitest';
import { LinkEmulator, checkEmulationSettings } from '../src/transport/emulator.js';
import { LinkMeter } from '../src/transport/measure.js';
import { PeerLink, PeerServer, type IncomingFrame, type PeerLinkOptions } from '../src/transport/index.js';

const SHA = '12'.repeat(32);
const TOKEN = 't';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) throw new Error('condition not met in time');
    await sleep(5);
  }
}

async function pair(over: Partial<PeerLinkOptions> = {}): Promise<{ link: PeerLink; frames: IncomingFrame[] }> {
  const frames: IncomingFrame[] = [];
  const s = await PeerServer.listen({
    self: { host: 'cloud', tier: 'cloud' },
    modelSha256: SHA,
    token: TOKEN,
    onFrame: (f) => frames.push(f),
  });
  cleanups.push(() => s.close());
  const link = PeerLink.connect({
    url: s.url,
    token: TOKEN,
    self: { host: 'edge', tier: 'edge' },
    modelSha256: SHA,
    ...over,
  });
  cleanups.push(() => link.close());
  await link.whenOpen();
  return { link, frames };
}

const bytes = (n: number): { name: string; dtype: 'uint8'; dims: number[]; data: Uint8Array } => ({
  name: 'b',
  dtype: 'uint8',
  dims: [n],
  data: new Uint8Array(n),
});

describe('LinkEmulator', () => {
  it('passes straight through when off', () => {
    const e = new LinkEmulator(null);
    const out: number[] = [];
    e.send(10, true, () => out.push(1));
    e.receive(() => out.push(2));
    expect(out).toEqual([1, 2]);
    expect(e.heldBytes).toBe(0);
  });

  it('paces frames at the bandwidth, in order, with control frames slipping past the bucket', async () => {
    const e = new LinkEmulator({ bandwidthBps: 100_000, delayMs: 10 });
    const t0 = performance.now();
    const out: [string, number][] = [];
    const mark = (name: string) => () => out.push([name, performance.now() - t0]);
    e.send(5000, true, mark('a')); // 50 ms
    e.send(5000, true, mark('b')); // 100 ms
    e.send(10, false, mark('ack')); // 10 ms: only the delay
    expect(e.heldBytes).toBe(10_000); // data frames only: the ack is not queued work
    await until(() => out.length === 3);
    expect(out.map((o) => o[0])).toEqual(['ack', 'a', 'b']);
    const at = Object.fromEntries(out);
    expect(at.ack).toBeGreaterThanOrEqual(9);
    expect(at.a).toBeGreaterThanOrEqual(55);
    expect(at.b).toBeGreaterThanOrEqual(105);
    expect(at.b).toBeLessThan(3000); // generous: only catches a frame that was never paced out
    expect(e.heldBytes).toBe(0);
  });

  it('counts only data frames as held: control frames in transit leave an idle link with an empty queue', async () => {
    const e = new LinkEmulator({ bandwidthBps: 1_000_000, delayMs: 20 });
    const out: string[] = [];
    e.send(8, false, () => out.push('ping'));
    e.send(20, false, () => out.push('ack'));
    expect(e.heldBytes).toBe(0);
    e.send(1000, true, () => out.push('data'));
    expect(e.heldBytes).toBe(1000);
    await until(() => out.length === 3);
    expect(out).toEqual(['ping', 'ack', 'data']);
    expect(e.heldBytes).toBe(0);
  });

  it('forgets the bandwidth debt of a frame dropped with the connection', async () => {
    const e = new LinkEmulator({ bandwidthBps: 10_000, delayMs: 0 });
    const out: string[] = [];
    e.send(100_000, true, () => out.push('lost')); // 10 s at 10 kB/s
    e.clear(); // the connection dropped
    e.send(100, true, () => out.push('next')); // 10 ms, not 10 s
    await until(() => out.length === 1, 5000);
    expect(out).toEqual(['next']);
  });

  it('delays what comes back, in order', async () => {
    const e = new LinkEmulator({ bandwidthBps: null, delayMs: 20 });
    const t0 = performance.now();
    const out: number[] = [];
    e.receive(() => out.push(performance.now() - t0));
    e.receive(() => out.push(performance.now() - t0));
    expect(out).toEqual([]);
    await until(() => out.length === 2);
    expect(out[0]).toBeGreaterThanOrEqual(19);
    expect(out[1]).toBeGreaterThanOrEqual(out[0]);
  });

  it('releases held frames in order when turned off, and re-times them when the rate changes', async () => {
    const e = new LinkEmulator({ bandwidthBps: 1000, delayMs: 0 });
    const out: string[] = [];
    e.send(1000, true, () => out.push('a'));
    e.send(1000, true, () => out.push('b'));
    e.set({ bandwidthBps: 1e9, delayMs: 0 });
    await until(() => out.length === 2, 900); // un-retimed, 'a' alone would take 1000 ms
    e.set({ bandwidthBps: 10, delayMs: 0 });
    e.send(1000, true, () => out.push('c'));
    e.send(1, true, () => out.push('d'));
    e.set(null);
    expect(out).toEqual(['a', 'b', 'c', 'd']);
  });

  it('lets a burst through at once after an idle spell', async () => {
    const e = new LinkEmulator({ bandwidthBps: 1000, delayMs: 0, burstBytes: 5000 });
    await sleep(30);
    const out: string[] = [];
    e.send(4000, true, () => out.push('a')); // bucket starts full
    expect(out).toEqual(['a']);
    e.send(4000, true, () => out.push('b')); // 1000 tokens left: waits ~3 s
    expect(out).toEqual(['a']);
    e.clear();
  });

  it('checks settings from outside, naming the field', () => {
    expect(checkEmulationSettings({ bandwidthBps: 1e6, delayMs: 5 })).toEqual({
      bandwidthBps: 1e6,
      delayMs: 5,
      burstBytes: 0,
    });
    expect(checkEmulationSettings(null)).toBeNull();
    expect(() => checkEmulationSettings({ delayMs: -1 })).toThrow(/delayMs/);
    expect(() => checkEmulationSettings({ bandwidthBps: 'fast' })).toThrow(/bandwidthBps/);
    expect(() => checkEmulationSettings({ delayMs: 3e9 })).toThrow(/'delayMs' must be at most 60000/);
    expect(() => checkEmulationSettings({ bandwidthBps: 0.001 })).toThrow(/'bandwidthBps' must be at least 1/);
  });

  it('holds a frame longer than the longest setTimeout without spinning', async () => {
    // 1 B/s and a 4 GB frame: a wait past 2^31-1 ms, which Node would otherwise cut to 1 ms and warn about.
    const warnings: string[] = [];
    const onWarning = (w: Error): void => void warnings.push(w.name);
    process.on('warning', onWarning);
    const e = new LinkEmulator({ bandwidthBps: 1, delayMs: 0 });
    let delivered = false;
    try {
      e.send(4e9, true, () => (delivered = true));
      await new Promise((r) => setTimeout(r, 100));
      expect(delivered).toBe(false);
      expect(e.heldBytes).toBe(4e9);
      expect(warnings).not.toContain('TimeoutOverflowWarning');
    } finally {
      e.clear();
      process.off('warning', onWarning);
    }
  });
});

describe('LinkMeter', () => {
  // 10 kB frames on a 1 MB/s link: 10 ms of transfer each, one at a time on an idle link.
  const frames = (m: LinkMeter, from: number, count: number, t0: number, roundTripMs: number): number => {
    let t = t0;
    for (let i = 0; i < count; i++) {
      m.sent(from + i, `f${from + i}`, 10_000, t);
      m.acked(from + i, t + 10 + roundTripMs);
      t += 1000;
    }
    return t;
  };

  it('takes no throughput samples while the pings still say the delay is higher than it now is', () => {
    const m = new LinkMeter({ ewmaAlpha: 0.2, minSampleMs: 1 });
    for (let i = 0; i < 3; i++) m.rttSample(100);
    let t = frames(m, 1, 3, 0, 100);
    expect(m.stats().throughputBps).toBeCloseTo(1e6, -3);
    // The delay drops to 2.5 ms each way; frames come back long before the 100 ms the pings still say.
    t = frames(m, 4, 5, t, 5);
    expect(m.stats().throughputBps).toBeCloseTo(1e6, -3);
    // Two pings at the new delay make the median of the last three: samples are timed right again.
    m.rttSample(5);
    m.rttSample(5);
    frames(m, 9, 5, t, 5);
    expect(m.stats().throughputBps).toBeCloseTo(1e6, -3);
  });

  it('holds the throughput estimate when the delay rises: four pings on, transfers are timed against the new delay', () => {
    const m = new LinkMeter({ ewmaAlpha: 0.2, minSampleMs: 1 });
    for (let i = 0; i < 3; i++) m.rttSample(5);
    const t = frames(m, 1, 3, 0, 5);
    expect(m.stats().throughputBps).toBeCloseTo(1e6, -3);
    m.rttSample(150);
    m.rttSample(150);
    // Two slow pongs could be a receiver that stalled: the frame's extra 145 ms count as transfer for now.
    const t2 = frames(m, 4, 1, t, 150);
    m.rttSample(150);
    m.rttSample(150);
    frames(m, 5, 4, t2, 150);
    const bps = m.stats().throughputBps ?? 0;
    expect(bps).toBeGreaterThan(0.9e6);
    expect(bps).toBeLessThan(1.1e6);
  });

  it('a receiver that stalls every other pong does not make the link look faster (transfers subtract the lesser recent RTT)', () => {
    const m = new LinkMeter({ ewmaAlpha: 0.2, minSampleMs: 1 });
    // Real RTT 5 ms; every other pong held up 145 ms by a stalled receiver: the median of three is 150.
    for (const ms of [5, 150, 5, 150]) m.rttSample(ms);
    // 100 kB on a 1 MB/s link: 100 ms on the wire plus the 5 ms round trip.
    m.sent(1, 'r1', 100_000, 0);
    m.acked(1, 105);
    expect(m.stats().throughputBps).toBeCloseTo(1e6, -3);
  });

  it("acks read in a burst after the sender's own stall do not time the link (an edge at 0.15 CPU read 53-489 MB/s on a 25 MB/s link)", () => {
    const run = (stalls: boolean): number => {
      // The sender's stalls: [end, length] (ms).
      const seen: [number, number][] = [];
      const longestStallSince = (at: number): number =>
        Math.max(0, ...seen.filter(([end]) => end > at).map(([, ms]) => ms));
      const m = new LinkMeter({
        ewmaAlpha: 0.2,
        minSampleMs: 1,
        longestStallSince: stalls ? longestStallSince : undefined,
      });
      for (let i = 0; i < 3; i++) m.rttSample(2);
      let seq = 0;
      let t = 0;
      for (let i = 0; i < 3; i++, t += 1000) {
        m.sent(++seq, `f${seq}`, 1_000_000, t); // 1 MB in 40 ms: 25 MB/s
        m.acked(seq, t + 42);
      }
      expect(m.stats().throughputBps).toBeCloseTo(25e6, -5);
      // Three frames back to back; the sender's loop stops for 90 ms, then reads the three acks at once.
      for (let k = 0; k < 4; k++, t += 1000) {
        const first = seq + 1;
        for (let j = 0; j < 3; j++) m.sent(++seq, `f${seq}`, 1_000_000, t);
        seen.push([t + 200, 90]);
        for (let j = 0; j < 3; j++) m.acked(first + j, t + 200 + 2 * j);
      }
      return m.stats().throughputBps ?? 0;
    };
    // Without knowing of the stall, the second and third acks of each burst read 500 MB/s; knowing, the
    // estimate stays the link's.
    expect(run(false)).toBeGreaterThan(100e6);
    const known = run(true);
    expect(known).toBeGreaterThan(20e6);
    expect(known).toBeLessThan(30e6);
  });

  it('a small frame acked late (a stalled receiver) never lowers the estimate; a frame sent as timed does', () => {
    const m = new LinkMeter({ ewmaAlpha: 0.2, minSampleMs: 1 });
    for (let i = 0; i < 3; i++) m.rttSample(2);
    for (let i = 1; i <= 3; i++) {
      m.sent(i, `r${i}`, 1_000_000, i * 1000); // 1 MB in 100 ms: 10 MB/s
      m.acked(i, i * 1000 + 102);
    }
    expect(m.stats().throughputBps).toBeCloseTo(1e7, -4);
    // 4 kB results, each acked 40 ms late: untimed, they bound the link from below at 0.1 MB/s only.
    for (let i = 4; i <= 9; i++) {
      m.sent(i, `r${i}`, 4000, i * 1000, false);
      m.acked(i, i * 1000 + 42);
    }
    expect(m.stats().throughputBps).toBeCloseTo(1e7, -4);
    expect(m.stats().throughputRecentBps).toBeCloseTo(1e7, -4);
    // The same frames sent as timed would have been taken at their word.
    const t = new LinkMeter({ ewmaAlpha: 0.2, minSampleMs: 1 });
    for (let i = 0; i < 3; i++) t.rttSample(2);
    for (let i = 1; i <= 3; i++) {
      t.sent(i, `r${i}`, 4000, i * 1000, true);
      t.acked(i, i * 1000 + 42);
    }
    expect(t.stats().throughputBps).toBeCloseTo(1e5, -3);
  });

  it('a link that carries only small frames still shows a real slowdown once no timed sample is fresh', () => {
    const m = new LinkMeter({ ewmaAlpha: 0.2, minSampleMs: 1, probeIntervalMs: 500 });
    for (let i = 0; i < 3; i++) m.rttSample(2);
    for (let i = 1; i <= 3; i++) {
      m.sent(i, `r${i}`, 1_000_000, i * 1000); // 10 MB/s, timed
      m.acked(i, i * 1000 + 102);
    }
    // 4 kB frames, each acked 60 ms late, from 4 s on (past 500 ms of staleness): as late as a host under a
    // CPU quota reads an ack, so no evidence of a slower link; the estimate holds.
    for (let i = 4; i <= 9; i++) {
      m.sent(i, `r${i}`, 4000, i * 1000, false);
      m.acked(i, i * 1000 + 62);
    }
    expect(m.stats().throughputRecentBps).toBeCloseTo(1e7, -4);
    // The link drops to 0.025 MB/s: 160 ms each, more than any stall explains.
    for (let i = 10; i <= 15; i++) {
      m.sent(i, `r${i}`, 4000, i * 1000, false);
      m.acked(i, i * 1000 + 162);
    }
    expect(m.stats().throughputBps).toBeCloseTo(2.5e4, -3);
    expect(m.stats().throughputRecentBps).toBeCloseTo(2.5e4, -3);
  });

  it('back-to-back small frames on a busy link show a drop no probe can (the link is never idle), and stalls do not', () => {
    const m = new LinkMeter({ ewmaAlpha: 0.2, minSampleMs: 1, probeIntervalMs: 200, minTimedBytes: 16_384 });
    for (let i = 0; i < 3; i++) m.rttSample(0.2);
    for (let i = 1; i <= 3; i++) {
      m.sent(i, `p${i}`, 262_144, i * 1000); // 262 MB/s, timed
      m.acked(i, i * 1000 + 1.2);
    }
    expect(m.stats().throughputRecentBps!).toBeGreaterThan(1e8);
    // Two clients' 2 kB frames, each queued behind the other: 2 kB per 25 ms of ack spacing (a receiver
    // stall of that size would explain one frame, not a train), 80 kB/s.
    let seq = 4;
    let t = 4000;
    m.sent(seq, `r${seq}`, 2048, t, false);
    const frames = (count: number): void => {
      for (let k = 0; k < count; k++) {
        m.sent(seq + 1, `r${seq + 1}`, 2048, t + 1, false); // the other client's frame, queued behind
        t += 25;
        m.acked(seq, t);
        seq++;
      }
    };
    frames(7);
    expect(m.stats().throughputCeilingBps).toBeNull(); // 14 kB: too few bytes to time yet
    frames(2);
    // 16 kB in 200 ms: a ceiling at once, the median (one sample of three) at the third train.
    expect(m.stats().throughputCeilingBps!).toBeLessThan(1e5);
    frames(16);
    expect(m.stats().throughputRecentBps!).toBeLessThan(1e5);
    expect(m.stats().throughputRecentBps!).toBeGreaterThan(7e4);
    // The same frames one at a time, each 60 ms late (a stalled receiver): each starts a train of its own,
    // and the estimate is the lower bound they leave.
    const n = new LinkMeter({ ewmaAlpha: 0.2, minSampleMs: 1, probeIntervalMs: 200, minTimedBytes: 16_384 });
    for (let i = 0; i < 3; i++) n.rttSample(0.2);
    for (let i = 1; i <= 3; i++) {
      n.sent(i, `p${i}`, 262_144, i * 1000);
      n.acked(i, i * 1000 + 1.2);
    }
    for (let i = 4; i <= 30; i++) {
      n.sent(i, `r${i}`, 2048, i * 1000, false);
      n.acked(i, i * 1000 + 60);
    }
    expect(n.stats().throughputRecentBps!).toBeGreaterThan(1e8);
  });

  it('an RTT estimate inflated by a stalled receiver does not turn a frame into a huge lower bound', () => {
    const m = new LinkMeter({ ewmaAlpha: 0.2, minSampleMs: 1 });
    // Propagation 2 ms; the last pings were held up by the receiver (40 ms), so the frame below looks "too quick".
    for (const ms of [2, 2, 2, 40, 40]) m.rttSample(ms);
    m.sent(1, 'r1', 256_000, 0); // 256 kB at 25.6 MB/s: 10 ms on the wire, back at 12 ms
    m.acked(1, 12);
    // Bounded by its round trip less the least recent RTT: 256 kB / 10 ms, not 256 kB / minSampleMs.
    expect(m.stats().throughputBps).toBeCloseTo(25.6e6, -5);
  });

  it("takes this host's own stall out of an RTT sample, down to the floor, and times frames against that", () => {
    // Stalls of this process (the loop-lag record): when each ended and how long it was.
    const stalls: { end: number; ms: number }[] = [];
    const longestStallSince = (since: number): number =>
      Math.max(0, ...stalls.filter((s) => s.end > since).map((s) => s.ms));
    const m = new LinkMeter({ ewmaAlpha: 0.2, minSampleMs: 1, longestStallSince });
    // A 30 ms link, idle host.
    for (const at of [1000, 1500, 2000]) m.rttSample(30, at);
    // Under load: every pong read late, each time just after a 12 ms stall (as the 0.25-CPU device at work).
    for (const at of [2500, 3000, 3500, 4000]) {
      stalls.push({ end: at - 1, ms: 12 });
      m.rttSample(39, at);
    }
    let s = m.stats();
    expect(s.rttLastMs).toBe(39);
    expect(s.rttLeastRecentMs).toBe(30);
    expect(s.rttRecentMs).toBe(30);
    expect(s.rttStalledSamples).toBe(4);
    // A 50 kB frame on a 6.25 MB/s link: 8 ms on the wire, back in 38 ms (read 2 ms late). Against the
    // stalled RTTs (39 ms) it said 50 kB in under 1 ms; against 30 ms it is 50 kB / 8 ms.
    m.sent(1, 'r1', 50_000, 5000);
    m.acked(1, 5040);
    expect(m.stats().throughputLastBps).toBeGreaterThan(4.5e6);
    expect(m.stats().throughputLastBps).toBeLessThan(6.5e6);
    // A stall takes out no more than its own length: a real rise to 80 ms shows through 12 ms stalls.
    for (const at of [6000, 6500, 7000]) {
      stalls.push({ end: at - 1, ms: 12 });
      m.rttSample(80, at);
    }
    expect(m.stats().rttLeastRecentMs).toBe(68);
    // And with no stall at all, as read.
    for (const at of [9000, 9500, 10_000]) m.rttSample(80, at);
    s = m.stats();
    expect(s.rttLeastRecentMs).toBe(80);
    expect(s.rttStalledSamples).toBe(7);
  });

  it('measures back-to-back frames from the ack spacing, whatever the RTT estimate', () => {
    const m = new LinkMeter({ ewmaAlpha: 0.5, minSampleMs: 1 });
    m.rttSample(30); // wrong on purpose: the real RTT is 20 ms
    // 10 frames of 100 kB handed over at t=0 on a 1 MB/s link with 10 ms one-way delay each way.
    for (let i = 1; i <= 10; i++) m.sent(i, `r${i}`, 100_000, 0);
    for (let i = 1; i <= 10; i++) m.acked(i, i * 100 + 20);
    const s = m.stats();
    // The first sample is biased by the RTT error; the following ones are exact.
    expect(s.throughputBps).toBeGreaterThan(0.99e6);
    expect(s.throughputBps).toBeLessThan(1.01e6);
    expect(s.framesAcked).toBe(10);
    expect(s.inFlightFrames).toBe(0);
  });

  it('treats frames too quick to time as a lower bound only', () => {
    const m = new LinkMeter({ ewmaAlpha: 0.5, minSampleMs: 1 });
    m.rttSample(0.2);
    m.sent(1, 'a', 1_000_000, 0);
    m.acked(1, 10.2); // 100 MB/s, timed
    m.sent(2, 'b', 1000, 20);
    m.acked(2, 20.3); // 1 kB in 0.1 ms: says only ">= 1 MB/s"
    expect(m.stats().throughputBps).toBeCloseTo(100e6, -6);
    expect(m.stats().throughputSamples).toBe(1);
  });

  it('restarts the throughput estimate when three timed samples in a row say the link changed', () => {
    const m = new LinkMeter({ ewmaAlpha: 0.2, minSampleMs: 1 });
    m.rttSample(4);
    let t = 0;
    // One 100 kB frame at a time on an idle link, `ms` of transfer each.
    const frame = (ms: number): void => {
      t += 1000;
      m.sent(t, `r${t}`, 100_000, t);
      m.acked(t, t + 4 + ms);
    };
    for (let i = 0; i < 5; i++) frame(10); // 10 MB/s
    expect(m.throughputBps).toBeCloseTo(10e6, -5);
    frame(100); // one slow sample is an outlier: the median drops it
    expect(m.throughputBps).toBeCloseTo(10e6, -5);
    frame(10);
    frame(100); // 1 MB/s from here on
    frame(100);
    expect(m.throughputBps).toBeGreaterThan(5e6); // two in a row: still smoothing
    frame(100); // the third in a row: a new level, not a crawl at ewmaAlpha per sample
    expect(m.throughputBps).toBeCloseTo(1e6, -4);
    frame(10); // and back up
    frame(10);
    frame(10);
    expect(m.throughputBps).toBeCloseTo(10e6, -5);
  });

  it('keeps the lower bound of a frame too quick to time, until a timed sample', () => {
    const m = new LinkMeter({ ewmaAlpha: 0.2, minSampleMs: 1 });
    m.rttSample(4);
    m.sent(1, 'a', 100_000, 0);
    m.acked(1, 14); // 10 MB/s, timed
    expect(m.lowerBoundBps).toBeNull();
    m.sent(2, 'b', 4000, 100);
    m.acked(2, 104.5); // 4 kB in 0.5 ms: only ">= 4 MB/s", under the estimate
    expect(m.lowerBoundBps).toBe(4e6);
    expect(m.throughputBps).toBeCloseTo(10e6, -5);
    m.sent(3, 'c', 100_000, 200);
    m.acked(3, 214);
    expect(m.lowerBoundBps).toBeNull();
  });

  it('bounds the throughput from above while a frame is long overdue, and by a sample that slow until the next', () => {
    let wanted = 0;
    const m = new LinkMeter({ ewmaAlpha: 0.2, minSampleMs: 1, onProbeWanted: () => wanted++ });
    for (let i = 0; i < 3; i++) m.rttSample(2);
    // 600 kB frames at 25 MB/s: 24 ms on the wire each.
    let t = 0;
    for (let i = 1; i <= 3; i++, t += 1000) {
      m.sent(i, `f${i}`, 600_000, t);
      m.acked(i, t + 24 + 2);
    }
    expect(m.stats(t).throughputRecentBps).toBeCloseTo(25e6, -5);
    expect(m.stats(t).throughputCeilingBps).toBeNull();
    // The link drops to 600 kB/s. A frame 80 ms out (a pong just came back) is late, but could be a stalled
    // receiver: no ceiling yet.
    m.sent(4, 'f4', 600_000, t);
    m.heard(t + 80);
    expect(m.stats(t + 80).throughputCeilingBps).toBeNull();
    // Still unacknowledged when the next pong comes back, 300 ms out: overdue by far more than any stall; the
    // link moves at most 600 kB / (300 - 2) ms.
    m.heard(t + 300);
    expect(m.stats(t + 310).throughputCeilingBps).toBeCloseTo(600_000 / 0.298, -3);
    expect(m.stats(t + 310).throughputRecentBps).toBeCloseTo(25e6, -5); // the median needs two slow samples
    // Acked after 1 s: one slow sample; the median still says 25 MB/s, the ceiling says 600 kB/s until the next
    // sample, and the sample asked for a probe at once.
    m.acked(4, t + 1002);
    m.heard(t + 1002);
    expect(m.stats(t + 1002).throughputCeilingBps).toBeCloseTo(600e3, -3);
    expect(wanted).toBe(1);
    m.probed();
    m.sent(5, 'p5', 100_000, t + 1010);
    m.acked(5, t + 1010 + 2 + 166.7);
    // Two slow samples: the median has moved (no ceiling needed), and the sample, far off the estimate
    // before it, asked for another probe.
    expect(m.stats(t + 1200).throughputRecentBps).toBeCloseTo(600e3, -3);
    expect(m.stats(t + 1200).throughputCeilingBps).toBeNull();
    expect(wanted).toBe(2);
    m.probed();
    m.sent(6, 'p6', 6000, t + 1300);
    m.acked(6, t + 1300 + 2 + 10);
    // In line with the estimate: no ceiling, no more probes wanted.
    expect(m.stats(t + 1400).throughputCeilingBps).toBeNull();
    expect(m.probeWanted).toBe(false);
    expect(wanted).toBe(2);
  });

  it('a sender whose own event loop lagged (acks waiting unread) does not see its frames as overdue', () => {
    const m = new LinkMeter({ ewmaAlpha: 0.2, minSampleMs: 1 });
    for (let i = 0; i < 3; i++) m.rttSample(2);
    for (let i = 1; i <= 3; i++) {
      m.sent(i, `f${i}`, 600_000, i * 1000);
      m.acked(i, i * 1000 + 26);
      m.heard(i * 1000 + 26);
    }
    m.sent(4, 'f4', 600_000, 4000);
    m.heard(4010); // a pong; then this process stalls for 500 ms with the ack unread
    expect(m.stats(4500).throughputCeilingBps).toBeNull();
  });

  it('a receiver stall of tens of ms on a small probe does not set a ceiling', () => {
    const m = new LinkMeter({ ewmaAlpha: 0.2, minSampleMs: 1 });
    for (let i = 0; i < 3; i++) m.rttSample(2);
    // 10 ms probes at 25 MB/s, then one held 30 ms by a receiver frozen by its CPU quota: 2.5x slow looking.
    for (let i = 1; i <= 3; i++) {
      m.sent(i, `p${i}`, 250_000, i * 500);
      m.acked(i, i * 500 + 12);
    }
    m.sent(4, 'p4', 250_000, 2000);
    m.acked(4, 2000 + 42);
    expect(m.stats(2050).throughputCeilingBps).toBeNull();
    expect(m.stats(2050).throughputRecentBps).toBeCloseTo(25e6, -5);
  });

  it('sizes probes by the best recent sample: a stalled receiver does not shrink them until stalls are all they time', () => {
    const m = new LinkMeter({ ewmaAlpha: 0.2, minSampleMs: 1 });
    for (let i = 0; i < 3; i++) m.rttSample(2);
    // Timed at 25 MB/s once, then twice slowed to 10 MB/s by stalls: the estimate falls, the probe rate does not.
    const ms = [12, 27, 27];
    ms.forEach((d, i) => {
      m.sent(i + 1, `p${i}`, 250_000, i * 500);
      m.acked(i + 1, i * 500 + d);
    });
    expect(m.stats().throughputRecentBps).toBeCloseTo(10e6, -5);
    expect(m.probeRateBps).toBeCloseTo(25e6, -5);
  });

  // Probes as PeerLink sizes them (LinkMeter.probeBytes: 10 ms, within [4 kB, 256 kB]) over a link of
  // `realBps`, every 250 ms, each ack read `stallMs` late (a host under a CPU quota), and a ping between every
  // two probes that the same stall delays by up to twice as much.
  // (A probe is never sent while one is in flight: one that is still out at its tick waits for its ack.)
  let lastAck = 0;
  const probeRounds = (m: LinkMeter, seq0: number, n: number, realBps: number, stallMs: number): number => {
    for (let i = 0; i < n; i++) {
      const seq = seq0 + i;
      const t = Math.max(seq * 250, lastAck + 1);
      if (seq % 2 === 0) m.rttSample(2 + ((seq * 7) % 10) * 0.2 * stallMs);
      const bytes = m.probeBytes(10, 4096, 256 * 1024, t);
      m.sent(seq, `p${seq}`, bytes, t);
      lastAck = t + 2 + (bytes * 1000) / realBps + stallMs;
      m.acked(seq, lastAck);
    }
    return seq0 + n;
  };

  it('probes that stalls make look slow neither shrink nor collapse the estimate of an idle link', () => {
    for (const stallMs of [9, 20]) {
      lastAck = 0;
      const m = new LinkMeter({ ewmaAlpha: 0.2, minSampleMs: 1 });
      for (let i = 0; i < 4; i++) m.rttSample(2);
      // 50 Mbit/s, timed right by three probes; then every ack late. Sized by the estimate alone, each probe
      // came out smaller than the last and the estimate settled at a tenth of the link (0.2-0.4 MB/s here,
      // at a 20 ms stall); sized by the recent best and stretched by the stall, they stay big.
      let seq = probeRounds(m, 1, 3, 6.25e6, 0);
      expect(m.stats().throughputRecentBps).toBeCloseTo(6.25e6, -5);
      const after: number[] = [];
      for (let i = 0; i < 40; i++) {
        seq = probeRounds(m, seq, 1, 6.25e6, stallMs);
        after.push(m.stats().throughputRecentBps as number);
      }
      expect(Math.min(...after.slice(10))).toBeGreaterThan(0.4 * 6.25e6);
      expect(m.probeBytes(10, 4096, 256 * 1024, seq * 250)).toBeGreaterThan(100_000);
    }
  });

  it('a real drop on an idle link still shows through stalls: 10x within a probe or two, 2x within a few; probes shrink to it', () => {
    for (const [realBps, within] of [
      [0.625e6, 2],
      [3.125e6, 6],
    ] as const) {
      lastAck = 0;
      const m = new LinkMeter({ ewmaAlpha: 0.2, minSampleMs: 1 });
      for (let i = 0; i < 4; i++) m.rttSample(2);
      const seq = probeRounds(m, 1, 3, 6.25e6, 0);
      const next = probeRounds(m, seq, within, realBps, 9);
      expect(m.stats().throughputRecentBps).toBeLessThan(1.3 * realBps);
      // Once the recent median is down, the old best no longer sizes probes: they are sized for the slower link.
      probeRounds(m, next, 1, realBps, 9);
      expect(m.probeBytes(10, 4096, 256 * 1024, lastAck + 1)).toBeLessThan(((4 * 10 * 1.3 * realBps) / 1000) | 0);
    }
  });

  it('reports the least of the last three RTTs: two late pongs are ignored, a rise shows on the third', () => {
    const m = new LinkMeter({ ewmaAlpha: 0.2, minSampleMs: 1 });
    for (const r of [5, 120, 90]) m.rttSample(r);
    expect(m.stats().rttRecentMs).toBe(90);
    expect(m.stats().rttLeastRecentMs).toBe(5);
    m.rttSample(40);
    expect(m.stats().rttLeastRecentMs).toBe(40);
    m.rttSample(2);
    expect(m.stats().rttLeastRecentMs).toBe(2);
  });

  it('returns the ids of unacknowledged frames when the connection drops', () => {
    const m = new LinkMeter({ ewmaAlpha: 0.2, minSampleMs: 1 });
    m.sent(1, 'a', 10, 0);
    m.sent(2, 'b', 10, 0);
    m.acked(1, 5);
    expect(m.dropInFlight()).toEqual(['b']);
    expect(m.stats().inFlightFrames).toBe(0);
  });
});

describe('emulated links', () => {
  it('takes about a second to carry 1 MB at 8 Mbit/s', async () => {
    const { link, frames } = await pair({ emulation: { bandwidthBps: 1_000_000, delayMs: 0 } });
    const t0 = performance.now();
    link.send({ kind: 'infer', id: 'mb' }, [bytes(1_000_000)]);
    await until(() => frames.length === 1);
    const ms = performance.now() - t0;
    expect(ms).toBeGreaterThanOrEqual(800);
    expect(ms).toBeLessThan(10_000);
  });

  it('measurement converges toward the emulated rate and delay (without reading the settings)', async () => {
    const rate = 4_000_000; // 32 Mbit/s
    const { link } = await pair({
      emulation: { bandwidthBps: rate, delayMs: 15 },
      options: { pingIntervalMs: 100, ewmaAlpha: 0.3 },
    });
    const frame = bytes(100_000); // 25 ms each
    const end = performance.now() + 1200;
    while (performance.now() < end) {
      while (link.stats().queuedBytes < 250_000) link.send({ kind: 'infer' }, [frame]);
      await sleep(10);
    }
    const st = link.stats();
    expect(st.throughputBps).toBeGreaterThan(rate * 0.7);
    expect(st.throughputBps).toBeLessThan(rate * 1.4);
    expect(st.rttMs).toBeGreaterThan(30 * 0.8); // 2 x 15 ms one-way
    expect(st.rttMs).toBeLessThan(30 * 2.5); // upper bound loose: a loaded machine adds event-loop lag
  });

  // The bug: with emulation, a ping or ack was always in transit when the probe timer fired (the probe timer,
  // period probeIntervalMs / 2, ran in step with the ping timer), the emulator counted it as queued data, and
  // the link never probed: throughput stayed null and the runtime's start-up planner waited out its timeout.
  // The ping period here is half the probe interval, in step with the probe timer, as with the defaults.
  it('an emulated idle link gets a throughput estimate within a few probe intervals', async () => {
    const probeIntervalMs = 40;
    const rate = 2_000_000;
    const { link } = await pair({
      emulation: { bandwidthBps: rate, delayMs: 2 },
      options: { probeIntervalMs, pingIntervalMs: probeIntervalMs / 2 },
    });
    await until(() => link.stats().throughputBps !== null, 10_000);
    // Counted in probes rather than time, so a slow machine cannot fail it: the first probes must do.
    expect(link.probes).toBeGreaterThanOrEqual(1);
    expect(link.probes).toBeLessThanOrEqual(5);
    expect(link.stats().rttMs).not.toBeNull();
    // Then the estimate is right within a dozen probes. A sample that a stall of this (busy, shared) test
    // process stretched may read low at first (0.38 of 2 MB/s was seen in a full parallel run): the next
    // probes correct it.
    const near = (): boolean => {
      const bps = link.stats().throughputBps ?? 0;
      return link.stats().throughputSamples >= 3 && bps > rate * 0.5 && bps < rate * 2;
    };
    await until(near, 10_000);
    expect(link.probes).toBeLessThanOrEqual(12);
    // Pings and acks in transit are not queued data: between probes nothing is queued (a probe in flight is).
    await until(() => link.stats().queuedBytes === 0, 2000);
  });

  it('follows a bandwidth change on an idle link within a few probe intervals, growing probes until they can be timed', async () => {
    const probeIntervalMs = 40;
    const { link } = await pair({
      emulation: { bandwidthBps: 12_500_000, delayMs: 2 }, // 100 Mbit/s: a 4 KiB probe takes 0.33 ms, too quick to time
      options: { probeIntervalMs, pingIntervalMs: probeIntervalMs / 2 },
    });
    const near = (rate: number): boolean => {
      const bps = link.stats().throughputBps;
      return bps !== null && bps > rate * 0.6 && bps < rate * 1.6;
    };
    // Convergence is counted in probes, not milliseconds: a loaded CI machine may be slow, but the estimate
    // must follow each change within a dozen probes. Probes the sender left untimed because its own loop
    // stalled across them (a loaded machine: 13 on one run beside a busy process) do not count: they are
    // the stall rule working. The time limits only stop a test that never converges.
    const within = async (rate: number): Promise<void> => {
      const before = link.probes - link.stats().stalledSamples;
      await until(() => near(rate), 10_000);
      const probes = link.probes - link.stats().stalledSamples - before;
      expect(probes, `probes to converge on ${rate} B/s`).toBeLessThanOrEqual(12);
    };
    await within(12_500_000);
    link.setEmulation({ bandwidthBps: 1_250_000, delayMs: 2 }); // 10x slower: probes sized for 100 Mbit/s take 100 ms
    await within(1_250_000);
    link.setEmulation({ bandwidthBps: 25_000_000, delayMs: 2 }); // 20x faster: the first probes are too quick to time
    await within(25_000_000);
  });

  it('probes an idle link, and notices when it gets faster', async () => {
    const { link } = await pair({
      emulation: { bandwidthBps: 400_000, delayMs: 2 },
      options: { probeIntervalMs: 60, probeMinBytes: 4096, probeMaxBytes: 256 * 1024 },
    });
    await until(() => link.stats().throughputSamples >= 3, 3000);
    const slow = link.stats().throughputBps ?? 0;
    expect(slow).toBeGreaterThan(400_000 * 0.5);
    expect(slow).toBeLessThan(400_000 * 2);
    expect(link.probes).toBeGreaterThanOrEqual(3);

    link.setEmulation({ bandwidthBps: 20_000_000, delayMs: 2 });
    await until(() => (link.stats().throughputBps ?? 0) > 4 * slow, 4000);
  });
});
