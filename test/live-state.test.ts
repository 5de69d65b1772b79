/**
 * The origin's live state from scripted heartbeats: link estimates, host slowdowns (observed, kept while
 * idle, floored by a CPU quota), down hosts, and the events it emits.
 */
import { describe, expect, it } from 'vitest';
import type { Heartbeat, LinkReport } from '../src/runtime/plan/cluster-view.js';
import { EventBus, type CleaveEvent } from '../src/runtime/plan/events.js';
import { LiveState } from '../src/runtime/plan/live-state.js';
import { StallWatch } from '../src/runtime/host/stall-watch.js';
import { blockRanges, profile } from './helpers/fakes.js';

const BLOCKS = blockRanges(4); // node ranges [0,10) [10,20) [20,30) [30,40)
const PROFILES = [
  profile('dev', 'device', [10, 10, 10, 10]),
  profile('edg', 'edge', [5, 5, 5, 5]),
  profile('cld', 'cloud', [2, 2, 2, 2]),
];

function link(from: string, to: string, rttMs: number, throughputBps: number): LinkReport {
  return {
    from,
    to,
    rttMs,
    throughputBps,
    rttRecentMs: rttMs,
    throughputRecentBps: throughputBps,
    throughputSamples: 5,
    state: 'open',
    bytesSent: 0,
    queuedBytes: 0,
    emulation: null,
  };
}

function beat(host: string, o: Partial<Heartbeat> = {}): Heartbeat {
  return {
    host,
    tier: 'x',
    cpuPercent: 50,
    quotaCpus: null,
    throttledMs: null,
    threads: 1,
    queueDepth: 0,
    inFlight: 0,
    busy: 0,
    segments: [],
    links: [],
    ...o,
  };
}

function state(
  open: Set<string> = new Set(['edg', 'cld']),
  stalled?: () => boolean,
  onMoved?: (why: string) => void,
): { s: LiveState; events: CleaveEvent[] } {
  const bus = new EventBus();
  const events: CleaveEvent[] = [];
  bus.subscribe((e) => events.push(e));
  const s = new LiveState({
    self: 'dev',
    hosts: ['dev', 'edg', 'cld'],
    blocks: BLOCKS,
    heartbeatTimeoutMs: 2000,
    observedFreshMs: 5000,
    isOpen: (h) => open.has(h),
    stalled,
    events: bus,
    onMoved,
  });
  return { s, events };
}

describe('LiveState', () => {
  it('link estimates: the least RTT and greatest throughput of the window, and a link-changed event on a real move', () => {
    const { s, events } = state();
    s.onHeartbeat(beat('dev', { links: [link('dev', 'edg', 2, 25e6)] }), 0);
    s.onHeartbeat(beat('dev', { links: [link('dev', 'edg', 40, 1e5)] }), 500); // one stalled report
    expect(s.linkViews(500)).toEqual([{ from: 'dev', to: 'edg', rttMs: 2, throughputBps: 25e6, throughputSamples: 5 }]);
    for (let t = 1000; t <= 3000; t += 500) s.onHeartbeat(beat('dev', { links: [link('dev', 'edg', 10, 6e5)] }), t);
    expect(s.linkViews(3000)[0]).toMatchObject({ rttMs: 10, throughputBps: 6e5 });
    expect(events.filter((e) => e.type === 'link-changed')).toHaveLength(1);
    expect(events.find((e) => e.type === 'link-changed')).toMatchObject({ from: 'dev', to: 'edg', throughputBps: 6e5 });
  });

  it("takes a report's least recent RTT over its median: late pongs of a stalled host are not the link's delay", () => {
    const { s } = state();
    // The median of the last three pings says 120 ms (two of them read late); the least says 5 ms.
    for (let t = 0; t <= 1000; t += 500)
      s.onHeartbeat(beat('dev', { links: [{ ...link('dev', 'edg', 120, 25e6), rttLeastRecentMs: 5 }] }), t);
    expect(s.linkViews(1000)[0]).toMatchObject({ rttMs: 5 });
    // A report without it (an older host) still counts by its median.
    s.onHeartbeat(beat('dev', { links: [link('dev', 'cld', 30, 6e6)] }), 1000);
    expect(s.linkViews(1000).find((l) => l.to === 'cld')).toMatchObject({ rttMs: 30 });
  });

  it("a link's ceiling caps the window's greatest throughput at once, and lapses with the next report without one", () => {
    const { s } = state();
    s.onHeartbeat(beat('dev', { links: [link('dev', 'edg', 2, 25e6)] }), 0);
    // A frame long overdue: the link moves at most 600 kB/s, whatever the window's 25 MB/s says.
    s.onHeartbeat(beat('dev', { links: [{ ...link('dev', 'edg', 2, 25e6), throughputCeilingBps: 6e5 }] }), 300);
    expect(s.linkViews(300)[0]).toMatchObject({ throughputBps: 6e5 });
    // The next report has none (the frame was acknowledged, and what it timed is in the median now).
    s.onHeartbeat(beat('dev', { links: [link('dev', 'edg', 2, 25e6)] }), 600);
    expect(s.linkViews(600)[0]).toMatchObject({ throughputBps: 25e6 });
    // A host that stopped reporting: past the window, its last report is what is known, its ceiling included.
    s.onHeartbeat(beat('dev', { links: [{ ...link('dev', 'edg', 2, 25e6), throughputCeilingBps: 1e5 }] }), 700);
    expect(s.linkViews(1000)[0].throughputBps).toBe(1e5);
    expect(s.linkViews(1700)[0].throughputBps).toBe(1e5);
  });

  it('figures reported under a ceiling stay capped in the window when the ceiling lifts', () => {
    const { s } = state();
    // Before the drop: 125 MB/s. Then a 256 kB probe is 4 s overdue: the meter's median still says 125 MB/s
    // (one slow sample of three), its ceiling 62.5 kB/s.
    s.onHeartbeat(beat('dev', { links: [link('dev', 'edg', 0.2, 125e6)] }), 0);
    for (let t = 1000; t <= 4000; t += 500)
      s.onHeartbeat(beat('dev', { links: [{ ...link('dev', 'edg', 0.2, 125e6), throughputCeilingBps: 62_500 }] }), t);
    expect(s.linkViews(4000)[0].throughputBps).toBe(62_500);
    // The next timed sample lifts the ceiling, and the median falls to it: the window's older reports said
    // at most 62.5 kB/s, not 125 MB/s.
    s.onHeartbeat(beat('dev', { links: [link('dev', 'edg', 0.2, 61_000)] }), 4200);
    expect(s.linkViews(4200)[0].throughputBps).toBe(62_500);
    expect(s.linkViews(5000)[0].throughputBps).toBe(61_000);
  });

  it('slowdown: observed segment times over the profile, kept while the host idles, dropped when its quota changes', () => {
    const { s } = state();
    // The edge ran blocks [1, 4) (nodes 10-40) at 45 ms where its profile says 15 (+ no stage overhead): 3x,
    // damped by 1 ms on both sides (a tiny segment's ratio is mostly per-run cost): 46 / 16.
    const x = 46 / 16;
    s.onHeartbeat(beat('edg', { quotaCpus: 1, segments: [{ from: 10, to: 40, meanMs: 45, runs: 10, ageMs: 0 }] }), 0);
    expect(s.slowdowns(PROFILES, 0).edg).toBeCloseTo(x, 9);
    // Idle for 10 s (past observedFreshMs), same quota: still 3x.
    s.onHeartbeat(
      beat('edg', { quotaCpus: 1, segments: [{ from: 10, to: 40, meanMs: 45, runs: 10, ageMs: 10_000 }] }),
      10_000,
    );
    expect(s.hosts(PROFILES, 10_000).find((h) => h.host === 'edg')).toMatchObject({
      slowdown: x,
      slowdownFrom: 'observed',
    });
    // Its quota goes up while idle: what it was observed to be no longer holds; nothing but the floor (none).
    s.onHeartbeat(
      beat('edg', { quotaCpus: 2, segments: [{ from: 10, to: 40, meanMs: 45, runs: 10, ageMs: 11_000 }] }),
      11_000,
    );
    expect(s.slowdowns(PROFILES, 11_000).edg).toBe(1);
  });

  it("slowdown: a CPU quota below the host's threads is a floor, at once when the quota changes", () => {
    const { s } = state();
    // Short bursts run unthrottled: observed 1.2x, but a quarter of a CPU sustains at most a quarter speed.
    s.onHeartbeat(beat('dev', { quotaCpus: 0.25, segments: [{ from: 0, to: 10, meanMs: 12, runs: 20, ageMs: 0 }] }), 0);
    expect(s.hosts(PROFILES, 0).find((h) => h.host === 'dev')).toMatchObject({ slowdown: 4, slowdownFrom: 'quota' });
    s.onHeartbeat(beat('edg', { quotaCpus: 0.15 }), 0);
    expect(s.slowdowns(PROFILES, 0).edg).toBeCloseTo(1 / 0.15, 9);
    // Observed slower than the floor: the observation wins.
    s.onHeartbeat(
      beat('dev', { quotaCpus: 0.25, segments: [{ from: 0, to: 10, meanMs: 60, runs: 20, ageMs: 0 }] }),
      100,
    );
    expect(s.slowdowns(PROFILES, 100).dev).toBeCloseTo(61 / 11, 9);
    // Segments with too few runs do not count.
    const fresh = state().s;
    fresh.onHeartbeat(beat('cld', { segments: [{ from: 0, to: 40, meanMs: 80, runs: 2, ageMs: 0 }] }), 0);
    expect(fresh.slowdowns(PROFILES, 0).cld).toBe(1);
  });

  it('slowdown by work: each segment run at its own ratio, under the quota, floored by it, forgotten when it changes or ages', () => {
    const { s } = state();
    const seg = (from: number, to: number, meanMs: number, ageMs = 0) => ({ from, to, meanMs, runs: 10, ageMs });
    // At half a CPU (floor 2x): blocks [1, 4) (15 ms profiled) ran at 45 ms, damped 46 / 16.
    s.onHeartbeat(beat('edg', { quotaCpus: 0.5, segments: [seg(10, 40, 45)] }), 0);
    expect(s.slowdownsByWork(PROFILES, 0)).toEqual({ edg: [{ workMs: 15, factor: 46 / 16 }] });
    // Then the whole model (20 ms) at 100 ms, and the first segment still fresh: both are kept, by work.
    s.onHeartbeat(beat('edg', { quotaCpus: 0.5, segments: [seg(10, 40, 45, 1000), seg(0, 40, 100)] }), 1000);
    const both = s.slowdownsByWork(PROFILES, 1000).edg;
    expect([...both].sort((a, b) => a.workMs - b.workMs)).toEqual([
      { workMs: 15, factor: 46 / 16 },
      { workMs: 20, factor: 101 / 21 },
    ]);
    // The one figure is their pooled ratio, which prices neither alone.
    expect(s.slowdowns(PROFILES, 1000).edg).toBeCloseTo((46 + 101) / (16 + 21), 9);
    // A short segment that ran fast is never reported under the quota's floor.
    s.onHeartbeat(beat('edg', { quotaCpus: 0.5, segments: [seg(0, 10, 5)] }), 2000);
    expect(s.slowdownsByWork(PROFILES, 2000).edg).toContainEqual({ workMs: 5, factor: 2 });
    // 30 s without a run: the observations are gone.
    s.onHeartbeat(beat('edg', { quotaCpus: 0.5 }), 33_000);
    expect(s.slowdownsByWork(PROFILES, 33_000)).toEqual({});
    // A new quota starts afresh: what ran under the old one is not kept.
    s.onHeartbeat(beat('edg', { quotaCpus: 0.5, segments: [seg(10, 40, 45)] }), 34_000);
    expect(s.slowdownsByWork(PROFILES, 34_000).edg).toHaveLength(1);
    s.onHeartbeat(beat('edg', { quotaCpus: 1, segments: [seg(0, 10, 20)] }), 35_000);
    expect(s.slowdownsByWork(PROFILES, 35_000)).toEqual({ edg: [{ workMs: 5, factor: 21 / 6 }] });
    expect(s.quotas()).toEqual({ edg: 1 });
  });

  it("frame costs: each host's latest figure, kept while it runs nothing; the others' median for a host with none", () => {
    const { s } = state();
    const all = ['dev', 'edg', 'cld'];
    expect(s.frameCosts(all)).toEqual({});
    s.onHeartbeat(beat('edg', { frameCpuMs: 1.5 }), 0);
    expect(s.frameCosts(all)).toEqual({ dev: 1.5, edg: 1.5, cld: 1.5 });
    s.onHeartbeat(beat('cld', { frameCpuMs: 2.5 }), 100);
    s.onHeartbeat(beat('dev', { frameCpuMs: 0.5 }), 100);
    // An idle beat (null: too few stages lately) keeps the last figure.
    s.onHeartbeat(beat('edg', { frameCpuMs: null }), 600);
    expect(s.frameCosts(all)).toEqual({ dev: 0.5, edg: 1.5, cld: 2.5 });
    expect(s.frameCosts(['edg', 'other'])).toEqual({ edg: 1.5, other: 1.5 });
  });

  it("throttled shares: each quota'd host's throttled time over the wall time of its last few seconds of beats", () => {
    const { s } = state();
    const q = { quotaCpus: 0.25 };
    // Not before two beats 0.9 s apart; no figure for a host without a quota.
    s.onHeartbeat(beat('edg', { ...q, throttledMs: 1000 }), 0);
    s.onHeartbeat(beat('cld', { throttledMs: 0 }), 0);
    s.onHeartbeat(beat('edg', { ...q, throttledMs: 1100 }), 500);
    expect(s.throttledShares(500)).toEqual({});
    s.onHeartbeat(beat('edg', { ...q, throttledMs: 1400 }), 1000);
    s.onHeartbeat(beat('cld', { throttledMs: 50 }), 1000);
    expect(s.throttledShares(1000)).toEqual({ edg: 0.4 });
    // Only the last 3 s count: the burst at the start has left the span.
    for (let t = 1500; t <= 5000; t += 500)
      s.onHeartbeat(beat('edg', { ...q, throttledMs: 1400 + (t - 1000) * 0.02 }), t);
    expect(s.throttledShares(5000).edg).toBeCloseTo(0.02, 6);
    // A restarted host's counter starts again from its next beats; a quota lifted drops the figure.
    s.onHeartbeat(beat('edg', { ...q, throttledMs: 10 }), 5500);
    expect(s.throttledShares(5500)).toEqual({});
    s.onHeartbeat(beat('edg', { ...q, throttledMs: 510 }), 6500);
    expect(s.throttledShares(6500).edg).toBeCloseTo(0.5, 6);
    // A new quota starts the figure over: the edge back at 1 CPU is not taken for throttled by what 0.25 did.
    s.onHeartbeat(beat('edg', { quotaCpus: 1, throttledMs: 1500 }), 7000);
    s.onHeartbeat(beat('edg', { quotaCpus: 1, throttledMs: 1500 }), 8000);
    expect(s.throttledShares(8000)).toEqual({ edg: 0 });
    s.onHeartbeat(beat('edg', { quotaCpus: null, throttledMs: 1600 }), 8500);
    expect(s.throttledShares(8500)).toEqual({});
  });

  it('says a measurement moved (a link-changed event, a new CPU quota), and nothing else', () => {
    const moved: string[] = [];
    const { s } = state(undefined, undefined, (why) => moved.push(why));
    s.onHeartbeat(beat('dev', { links: [link('dev', 'edg', 2, 25e6)] }), 0);
    s.onHeartbeat(beat('edg', { quotaCpus: 1 }), 0);
    // The first figures, the same ones again, and a move under 25 %: nothing.
    s.onHeartbeat(beat('dev', { links: [link('dev', 'edg', 2, 25e6)] }), 500);
    s.onHeartbeat(beat('edg', { quotaCpus: 1, cpuPercent: 90 }), 500);
    s.onHeartbeat(beat('dev', { links: [link('dev', 'edg', 2, 24e6)] }), 2000);
    expect(moved).toEqual([]);
    s.onHeartbeat(beat('edg', { quotaCpus: 0.15 }), 2500);
    s.onHeartbeat(beat('dev', { links: [link('dev', 'edg', 2, 6e5)] }), 4000);
    expect(moved).toEqual(["edg's CPU quota 1 -> 0.15", 'link dev->edg moved']);
  });

  it('down: a dropped link at once, silent heartbeats after the timeout; host-down and host-up events', () => {
    const open = new Set(['edg', 'cld']);
    const { s, events } = state(open);
    s.onHeartbeat(beat('edg'), 0);
    s.onHeartbeat(beat('cld'), 0);
    expect(s.down(1000)).toEqual([]);
    expect(s.down(2500)).toEqual(['edg', 'cld']);
    s.onHeartbeat(beat('edg'), 2500);
    s.onHeartbeat(beat('cld'), 2500);
    s.hosts(PROFILES, 2600);
    open.delete('cld');
    expect(s.down(2600)).toEqual(['cld']);
    s.hosts(PROFILES, 2600);
    open.add('cld');
    s.hosts(PROFILES, 2700);
    expect(
      events.filter((e) => e.type === 'host-down' || e.type === 'host-up').map((e) => `${e.type} ${String(e.host)}`),
    ).toEqual(['host-down cld', 'host-up cld']);
  });

  it("down: silence is not held against a host while the origin's own loop was stalled; a dropped link still is", () => {
    let stalled = true;
    const open = new Set(['edg', 'cld']);
    const { s } = state(open, () => stalled);
    s.onHeartbeat(beat('edg'), 0);
    s.onHeartbeat(beat('cld'), 0);
    expect(s.down(5000)).toEqual([]); // silent for 5 s, but the origin was not listening
    open.delete('cld');
    expect(s.down(5000)).toEqual(['cld']);
    stalled = false;
    expect(s.down(5000)).toEqual(['edg', 'cld']);
  });
});

describe('StallWatch', () => {
  it('says the loop is stalled while its tick is overdue and for the grace after, then not', async () => {
    const w = new StallWatch(300);
    await new Promise((r) => setTimeout(r, 250));
    const t0 = performance.now();
    while (performance.now() - t0 < 500); // the loop held for 500 ms
    expect(w.stalled()).toBe(true); // its tick is overdue now
    await new Promise((r) => setTimeout(r, 150));
    expect(w.stalled()).toBe(true); // the tick came late: within the grace
    const t1 = performance.now();
    while (w.stalled() && performance.now() - t1 < 5000) await new Promise((r) => setTimeout(r, 50));
    expect(w.stalled()).toBe(false);
    expect(performance.now() - t1).toBeGreaterThanOrEqual(100);
  });
});
