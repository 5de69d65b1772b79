/**
 * What the origin knows now, from the heartbeats every host sends: live link estimates (each link's recent
 * figures, themselves medians of three samples, taken as the least RTT and the greatest throughput of the
 * last 1.5 s, since a stalled receiver only ever makes a link look slower; a step shows within 1-2 s), each
 * host's slowdown, its CPU, queue and quota, and which hosts are down. This is the adaptive loop's
 * measurement source; it never sees the emulator's settings, only what the links measured.
 */
import { quantile, segmentWorkMs, slowdownOf, WindowExtreme } from '../../planner/estimate.js';
import type { WorkSlowdown } from '../../planner/live-input.js';
import type { Profile } from '../../planner/profile.js';
import type { Heartbeat, LinkView } from './cluster-view.js';
import type { EventBus } from './events.js';
import type { BlockRange } from './route.js';

export interface LiveStateOptions {
  /** The origin's name: it is never down to itself. */
  readonly self: string;
  readonly hosts: readonly string[];
  readonly blocks: readonly BlockRange[];
  /** A host whose heartbeats stop this long is down. */
  readonly heartbeatTimeoutMs: number;
  /** Segment times older than this do not count toward a host's slowdown. */
  readonly observedFreshMs: number;
  /** Whether the origin's link to `host` is open now (a dropped link marks a host down at once). */
  isOpen(host: string): boolean;
  /**
   * Whether this host's own loop was stalled lately (StallWatch): then a host's silence is this host's not
   * listening, and it is not taken for down by it. Absent: never.
   */
  stalled?(): boolean;
  /** The model whose segment times count toward the hosts' slowdowns (absent: every segment reported). */
  readonly model?: string;
  readonly events?: EventBus;
  /**
   * A measurement moved enough to be worth a controller round now: a link estimate by LINK_EVENT_SHARE (the
   * `link-changed` event) or a host's CPU quota (its heartbeat says another than its last one).
   */
  onMoved?(why: string): void;
}

/**
 * Window of the link estimates: about the last two heartbeats, so that a real drop shows within a second
 * while a single stalled report is outvoted.
 */
const LINK_WINDOW_MS = 900;

/** Runs a segment needs before its mean time counts toward its host's slowdown. */
const SLOWDOWN_MIN_RUNS = 3;
/** What a segment's slowdown ratio is damped by (estimate.ts `dampMs`): per-run costs of ~0.1-0.5 ms here. */
const SLOWDOWN_DAMP_MS = 1;

/**
 * How long what a host was observed at for a given amount of work (a segment it ran) prices that much work
 * there (work-slowdown.ts), under the same CPU quota: about the flap damping's and the calibration's half-life.
 */
const WORK_POINT_FRESH_MS = 30_000;
/** Observations kept per host at most (the latest). */
const WORK_POINTS_MAX = 16;

/**
 * Span over which a host's throttled share is taken (`throttledShares`): a few heartbeats, so that one beat
 * taken across a build or a burst does not decide alone.
 */
const THROTTLED_SPAN_MS = 3000;

/** A link estimate moving by this share since it was last announced is a `link-changed` event. */
const LINK_EVENT_SHARE = 0.25;

interface LinkEstimate {
  readonly from: string;
  readonly to: string;
  readonly rtt: WindowExtreme;
  readonly throughput: WindowExtreme;
  samples: number;
  /** The latest report's ceiling (bytes/s) and when it came: it holds until the next report of the link. */
  ceiling: { at: number; bps: number } | null;
  announced: { rttMs: number; throughputBps: number } | null;
}

export interface HostLive {
  readonly host: string;
  readonly tier: string;
  readonly down: boolean;
  readonly cpuPercent: number | null;
  readonly quotaCpus: number | null;
  readonly throttledMs: number | null;
  readonly queueDepth: number;
  readonly inFlight: number;
  readonly slowdown: number;
  /** 'observed' (its own recent segment times), 'quota' (its CPU quota, when idle) or 'none'. */
  readonly slowdownFrom: 'observed' | 'quota' | 'none';
  /** Its event loop's CPU per stage from a frame (ms, its latest figure; Heartbeat.frameCpuMs), or null. */
  readonly frameCpuMs: number | null;
  readonly lastHeartbeatMs: number | null;
}

export class LiveState {
  private readonly beats = new Map<string, { beat: Heartbeat; at: number }>();
  /** Each host's last observed slowdown and the CPU quota it had then: what an idle host is still taken to be. */
  private readonly observed = new Map<string, { factor: number; quotaCpus: number | null }>();
  private readonly links = new Map<string, LinkEstimate>();
  /** Per host: its CPU quota and, by segment, what each segment it ran under that quota was observed at. */
  private readonly byWork = new Map<
    string,
    { quotaCpus: number | null; points: Map<string, WorkSlowdown & { at: number }> }
  >();
  private wasDown = new Set<string>();
  /** Each host's latest figure of its loop's CPU per stage from a frame (Heartbeat.frameCpuMs): kept while it is idle. */
  private readonly frameCpu = new Map<string, number>();
  /** Per host, its cgroup's cumulative throttled time (ms) at each heartbeat of about the last THROTTLED_SPAN_MS. */
  private readonly throttled = new Map<string, { at: number; ms: number }[]>();

  constructor(private readonly o: LiveStateOptions) {}

  /** A heartbeat arrived (or the origin's own was taken) at `now`. */
  onHeartbeat(b: Heartbeat, now: number): void {
    const before = this.beats.get(b.host);
    this.beats.set(b.host, { beat: b, at: now });
    const quotaMoved = before !== undefined && before.beat.quotaCpus !== b.quotaCpus;
    if (quotaMoved)
      this.o.onMoved?.(`${b.host}'s CPU quota ${before.beat.quotaCpus ?? 'none'} -> ${b.quotaCpus ?? 'none'}`);
    if (typeof b.frameCpuMs === 'number') this.frameCpu.set(b.host, b.frameCpuMs);
    this.noteThrottled(b, now, quotaMoved);
    for (const l of b.links) {
      const key = `${l.from}\u0000${l.to}`;
      let e = this.links.get(key);
      if (!e) {
        e = {
          from: l.from,
          to: l.to,
          rtt: new WindowExtreme('min', LINK_WINDOW_MS),
          throughput: new WindowExtreme('max', LINK_WINDOW_MS),
          samples: 0,
          ceiling: null,
          announced: null,
        };
        this.links.set(key, e);
      }
      // The least of the latest pings: a stalled host's late pongs are its own delay, not the link's.
      const rtt = l.rttLeastRecentMs ?? l.rttRecentMs ?? l.rttMs;
      const bps = l.throughputRecentBps ?? l.throughputBps;
      const c = l.throughputCeilingBps;
      e.ceiling = c !== null && c !== undefined && c > 0 ? { at: now, bps: c } : null;
      if (rtt !== null && rtt !== undefined && rtt >= 0) e.rtt.add(now, rtt);
      // The window keeps what the report meant, its figure under its ceiling: when the ceiling lifts (the next
      // timed sample), the faster figures reported under it must not come back as the window's greatest. A
      // 256 kB probe took 4.2 s on a link that had just dropped to 0.5 Mbit/s, the next sample lifted the
      // ceiling, and the window's 125 MB/s (the meter's median still held two samples from before the drop)
      // moved the plan back onto the slow link.
      if (bps !== null && bps !== undefined && bps > 0) e.throughput.add(now, Math.min(bps, e.ceiling?.bps ?? bps));
      e.samples = l.throughputSamples ?? e.samples;
      this.announce(e, now);
    }
  }

  /** Live link estimates of the links that are measured in both RTT and throughput. */
  linkViews(now: number): LinkView[] {
    const out: LinkView[] = [];
    for (const e of this.links.values()) {
      const v = this.estimate(e, now);
      if (v) out.push({ from: e.from, to: e.to, ...v, throughputSamples: e.samples });
    }
    return out;
  }

  /**
   * A link's live figures: the least RTT and the greatest throughput of the window, the latter capped by the
   * latest report's ceiling (a frame long overdue, or a sample that slow, is evidence the window's older,
   * faster samples no longer hold; a stale ceiling, from a host that stopped reporting, is not).
   */
  private estimate(e: LinkEstimate, now: number): { rttMs: number; throughputBps: number } | null {
    const rttMs = e.rtt.value(now);
    let throughputBps = e.throughput.value(now);
    if (rttMs === null || throughputBps === null) return null;
    if (e.ceiling && now - e.ceiling.at <= LINK_WINDOW_MS) throughputBps = Math.min(throughputBps, e.ceiling.bps);
    return { rttMs, throughputBps };
  }

  /** Hosts down now: their link from the origin is not open, or their heartbeats stopped. */
  down(now: number): string[] {
    return this.o.hosts.filter((h) => h !== this.o.self && (!this.o.isOpen(h) || !this.fresh(h, now)));
  }

  /** Each host's slowdown against its profile (1 where nothing is known). */
  slowdowns(profiles: readonly Profile[], now: number): Record<string, number> {
    const out: Record<string, number> = {};
    for (const p of profiles) out[p.host.name] = this.slowdownOf(p, now).factor;
    return out;
  }

  /**
   * Per host, what it ran at lately by the work it carried, under its current CPU quota (never under the
   * floor its quota implies): the controller prices each plan's stage at the figure for its work. Each
   * segment a heartbeat reports is taken in when figures are asked for (every round and snapshot); a
   * heartbeat goes on reporting a segment's recent runs until they are `observedFreshMs` old.
   */
  slowdownsByWork(profiles: readonly Profile[], now: number): Record<string, WorkSlowdown[]> {
    const out: Record<string, WorkSlowdown[]> = {};
    for (const p of profiles) {
      const name = p.host.name;
      this.slowdownOf(p, now);
      const w = this.byWork.get(name);
      const b = this.beats.get(name);
      if (!w || !b || w.quotaCpus !== b.beat.quotaCpus) continue;
      const q = b.beat.quotaCpus;
      const floor = q !== null && q < b.beat.threads ? b.beat.threads / q : 1;
      const pts: WorkSlowdown[] = [];
      for (const [k, x] of w.points)
        if (now - x.at > WORK_POINT_FRESH_MS) w.points.delete(k);
        else pts.push({ workMs: x.workMs, factor: Math.max(floor, x.factor) });
      if (pts.length > 0) out[name] = pts;
    }
    return out;
  }

  /**
   * Per host of `hosts`, its event loop's CPU per stage from a frame (ms; what the planner's `frameMs` takes
   * before the host's slowdown): its latest figure, kept while it runs nothing; a host with none yet is taken
   * at the median of the others' (the same code handles the frames). Empty while no host has a figure.
   */
  frameCosts(hosts: readonly string[]): Record<string, number> {
    const known = [...this.frameCpu.values()];
    if (known.length === 0) return {};
    const mid = quantile(known, 0.5);
    return Object.fromEntries(hosts.map((h) => [h, this.frameCpu.get(h) ?? mid]));
  }

  /**
   * Per host under a CPU quota, how much of the last few seconds its cgroup spent throttled: the growth of its
   * cumulative throttled time over the wall time between its oldest and newest heartbeat of the span (at
   * least 0.9 s apart). The kernel adds a throttled period once per CPU the cgroup's threads were waiting on,
   * so on a machine of n CPUs this is at most about n. Its own signal that the host uses all its quota, where
   * the machine's load would speak for every host on the machine. Hosts without a quota, or without two beats
   * far enough apart under their current quota, are missing.
   */
  throttledShares(now: number): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [host, xs] of this.throttled) {
      const live = xs.filter((x) => now - x.at <= THROTTLED_SPAN_MS);
      if (live.length < 2) continue;
      const a = live[0];
      const b = live[live.length - 1];
      if (b.at - a.at >= 900) out[host] = Math.max(0, b.ms - a.ms) / (b.at - a.at);
    }
    return out;
  }

  private noteThrottled(b: Heartbeat, now: number, quotaMoved: boolean): void {
    const ms = b.throttledMs;
    if (typeof ms !== 'number' || b.quotaCpus === null) {
      this.throttled.delete(b.host);
      return;
    }
    const xs = this.throttled.get(b.host) ?? [];
    // A restarted host (its counter went back) starts over, and so does one under a new quota: what it was
    // throttled under the old one says nothing of the new.
    if (quotaMoved || (xs.length > 0 && ms < xs[xs.length - 1].ms)) xs.length = 0;
    xs.push({ at: now, ms });
    while (xs.length > 2 && now - xs[1].at > THROTTLED_SPAN_MS) xs.shift();
    this.throttled.set(b.host, xs);
  }

  /** Each host's CPU quota as its last heartbeat reported it (null: none). */
  quotas(): Record<string, number | null> {
    const out: Record<string, number | null> = {};
    for (const [h, b] of this.beats) out[h] = b.beat.quotaCpus;
    return out;
  }

  /** Per host, for snapshots and `GET /v1/plan`. Emits host-up / host-down on changes. */
  hosts(profiles: readonly Profile[], now: number): HostLive[] {
    const down = new Set(this.down(now));
    for (const h of down) if (!this.wasDown.has(h)) this.o.events?.emit('host-down', { host: h });
    for (const h of this.wasDown) if (!down.has(h)) this.o.events?.emit('host-up', { host: h });
    this.wasDown = down;
    return this.o.hosts.map((name) => {
      const b = this.beats.get(name);
      const p = profiles.find((x) => x.host.name === name);
      const s = p ? this.slowdownOf(p, now) : { factor: 1, from: 'none' as const };
      return {
        host: name,
        tier: b?.beat.tier ?? p?.host.tier ?? '',
        down: down.has(name),
        cpuPercent: b?.beat.cpuPercent ?? null,
        quotaCpus: b?.beat.quotaCpus ?? null,
        throttledMs: b?.beat.throttledMs ?? null,
        queueDepth: b?.beat.queueDepth ?? 0,
        inFlight: b?.beat.inFlight ?? 0,
        slowdown: s.factor,
        slowdownFrom: s.from,
        frameCpuMs: this.frameCpu.get(name) ?? null,
        lastHeartbeatMs: b ? now - b.at : null,
      };
    });
  }

  private fresh(host: string, now: number): boolean {
    const b = this.beats.get(host);
    return b !== undefined && (now - b.at <= this.o.heartbeatTimeoutMs || (this.o.stalled?.() ?? false));
  }

  /**
   * Observed: the host's recent segment times over what its profile predicts for them; idle (nothing ran
   * lately): what it was last observed to be (a host that only looked fast because it stopped working would
   * otherwise win work back and lose it again), as long as its CPU quota is the one it had then. Either way at
   * least what its quota implies, t/q for q CPUs and t ORT threads (when q < t): short bursts run unthrottled
   * under a cgroup quota (a burst under ~25 ms per period runs at full speed), and a profile is made of such
   * bursts, some throttled and some not, while under sustained load the host also spends its quota on what
   * is not ORT (its HTTP gateway, frames, heartbeats) and runs at most q/t as fast. The floor moves at once
   * when the quota changes, before the host has run anything under it. (Measured here: a floor relative to
   * the quota at profile time, or profiles taken before the quota, both predicted the 0.25-CPU device 2-3x
   * too fast once it ran most of the model under load; `npm run bench -- adapt`.)
   */
  private slowdownOf(p: Profile, now: number): { factor: number; from: HostLive['slowdownFrom'] } {
    const name = p.host.name;
    const b = this.beats.get(name);
    if (!b) return { factor: 1, from: 'none' };
    const q = b.beat.quotaCpus;
    const floor = q !== null && q < b.beat.threads ? b.beat.threads / q : 1;
    const age = now - b.at;
    const observed = [];
    for (const s of b.beat.segments) {
      if (s.ageMs + age > this.o.observedFreshMs) continue;
      if (this.o.model !== undefined && s.model !== undefined && s.model !== this.o.model) continue;
      const start = this.o.blocks.findIndex((x) => x.start === s.from);
      const endIdx = this.o.blocks.findIndex((x) => x.end === s.to);
      if (start < 0 || endIdx < start) continue;
      observed.push({ start, end: endIdx + 1, meanMs: s.meanMs, count: s.runs });
    }
    const blockMs = p.timings.blocks.map((x) => x.medianMs);
    let seen: number | null = null;
    const opts = { stageOverheadMs: p.timings.runOverheadMs, minRuns: SLOWDOWN_MIN_RUNS, dampMs: SLOWDOWN_DAMP_MS };
    // slowdownOf answers 1 when no segment has enough runs to count.
    if (observed.some((x) => x.count >= SLOWDOWN_MIN_RUNS)) {
      seen = slowdownOf(observed, blockMs, opts);
      this.observed.set(name, { factor: seen, quotaCpus: q });
      this.record(name, q, observed, blockMs, opts, now - age);
    } else {
      // Not scaled by the quota's move: a host's slowdown is far from proportional to its quota (one at 0.15
      // CPU was observed 15-20x slower, not 6.7x, as what is not ORT takes its share), so after a change only
      // the floor is known until it runs again.
      const last = this.observed.get(name);
      if (last && last.quotaCpus === q) seen = last.factor;
    }
    if (seen !== null && seen >= floor) return { factor: seen, from: 'observed' };
    if (floor > 1) return { factor: floor, from: 'quota' };
    return { factor: seen ?? 1, from: seen === null ? 'none' : 'observed' };
  }

  /** Each segment `host` ran enough times, as a point of its slowdown by work, under quota `q`, at `at`. */
  private record(
    host: string,
    q: number | null,
    observed: readonly { start: number; end: number; meanMs: number; count: number }[],
    blockMs: readonly number[],
    opts: { stageOverheadMs?: number; minRuns: number; dampMs: number },
    at: number,
  ): void {
    let w = this.byWork.get(host);
    if (!w || w.quotaCpus !== q) {
      w = { quotaCpus: q, points: new Map() };
      this.byWork.set(host, w);
    }
    for (const o of observed) {
      if (o.count < opts.minRuns) continue;
      const workMs = segmentWorkMs(blockMs, o.start, o.end, opts.stageOverheadMs);
      if (!(workMs > 0)) continue;
      const key = `${o.start}:${o.end}`;
      w.points.delete(key);
      w.points.set(key, { workMs, factor: slowdownOf([o], blockMs, opts), at });
    }
    for (const k of w.points.keys()) {
      if (w.points.size <= WORK_POINTS_MAX) break;
      w.points.delete(k);
    }
  }

  private announce(e: LinkEstimate, now: number): void {
    const v = this.estimate(e, now);
    if (!v) return;
    const { rttMs, throughputBps } = v;
    const a = e.announced;
    const moved = (x: number, y: number): boolean => Math.abs(x - y) > LINK_EVENT_SHARE * Math.max(Math.abs(y), 1e-9);
    if (a && !moved(throughputBps, a.throughputBps) && !(moved(rttMs, a.rttMs) && Math.abs(rttMs - a.rttMs) > 1))
      return;
    e.announced = { rttMs, throughputBps };
    if (!a) return;
    this.o.events?.emit('link-changed', { from: e.from, to: e.to, rttMs, throughputBps, before: a });
    this.o.onMoved?.(`link ${e.from}->${e.to} moved`);
  }
}
