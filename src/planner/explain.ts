/**
 * How a controller round scores plans (the objective, under load) and says why it decided what it did: the
 * measurements that moved since the current plan was adopted, and the predicted gain, in words for a log.
 */
import type { ControllerSettings } from './controller-settings.js';
import type { LiveSnapshot } from './live-input.js';
import type { Constraint, Objective, Plan } from './types.js';

/** How much of what moved a reason tells. */
export const EXPLAIN_LIMITS = {
  /** Measurements named per reason, largest move first. */
  maxMoves: 3,
  /** Smallest relative move named (0.10: 10 %). */
  minMove: 0.1,
  /** Smallest RTT move named, in ms: on loopback 0.1 -> 0.5 ms is a 5x move that changes no plan. */
  minRttMoveMs: 1,
} as const;

/**
 * Latency with `concurrency` requests in flight: a request also waits behind the others at the slowest
 * stage or link (a closed system's asymptotic bound, see plan.ts `loadedBest`). Equal to the plan's latency
 * at a concurrency of 1 or less.
 */
export function loadedLatencyMs(p: Plan, concurrency: number): number {
  return Math.max(p.latencyMs, concurrency * p.bottleneckMs);
}

/** What a round compares plans by: the objective and, for latency, the load being served. */
export interface Scoring {
  readonly objective: Objective;
  readonly concurrency: number;
}

export function scoreOf(sc: Scoring, p: Plan): number {
  return sc.objective === 'throughput' ? p.bottleneckMs : loadedLatencyMs(p, sc.concurrency);
}

export function gainOf(sc: Scoring, cur: Plan, best: Plan): number {
  const a = scoreOf(sc, cur);
  const b = scoreOf(sc, best);
  return a > 0 ? (a - b) / a : 0;
}

export function num(x: number): string {
  const a = Math.abs(x);
  return a >= 100 ? x.toFixed(0) : a >= 10 ? x.toFixed(1) : a >= 1 ? x.toFixed(2) : x.toPrecision(2);
}

/** A slowdown factor: 1.0, 6.2, 0.25. */
function times(x: number): string {
  return x >= 1 ? x.toFixed(1) : x.toPrecision(2);
}

function pct(from: number, to: number): string {
  if (from === 0) return to === 0 ? '0%' : 'new';
  const v = Math.round(((to - from) / from) * 100);
  return `${v > 0 ? '+' : ''}${v}%`;
}

function loadText(sc: Scoring): string {
  return sc.concurrency > 1 ? ` with ${num(sc.concurrency)} requests in flight` : '';
}

export function predicted(sc: Scoring, cur: Plan, best: Plan): string {
  if (sc.objective === 'latency') {
    const [a, b] = [scoreOf(sc, cur), scoreOf(sc, best)];
    return `predicted ${num(a)} -> ${num(b)} ms${loadText(sc)}, ${pct(a, b)}`;
  }
  const rps = (p: Plan): string => (Number.isFinite(p.throughputRps) ? num(p.throughputRps) : 'unbounded');
  return `predicted bottleneck ${num(cur.bottleneckMs)} -> ${num(best.bottleneckMs)} ms (${rps(cur)} -> ${rps(best)} req/s), ${pct(cur.bottleneckMs, best.bottleneckMs)}`;
}

export function priceText(sc: Scoring, p: Plan): string {
  return sc.objective === 'latency'
    ? `${num(scoreOf(sc, p))} ms${loadText(sc)}`
    : `bottleneck ${num(p.bottleneckMs)} ms`;
}

export interface Baseline {
  readonly at: number;
  readonly snap: LiveSnapshot;
  readonly objective: Objective;
  readonly constraints: readonly Constraint[];
  /** The wire settings in force then (absent: the defaults). */
  readonly codecs?: readonly string[] | null;
  readonly maxError?: number;
}

/**
 * What moved since the current plan was adopted, largest first (EXPLAIN_LIMITS). Moves of the links and
 * hosts that the compared plans use (`plans`) come before the others, by how many ms they changed those
 * plans' times (the bytes a hop carries over the old and new throughput, half an RTT per hop, a stage's
 * compute under the old and new slowdown): they are why those plans changed places. The rest follow by
 * relative size.
 */
export function moves(
  base: Baseline | null,
  s: LiveSnapshot,
  set: ControllerSettings,
  plans: readonly (Plan | null)[] = [],
): string {
  if (!base) return "no snapshot from the current plan's adoption to compare with";
  const used = new Set<string>();
  for (const p of plans) {
    if (!p) continue;
    for (const h of p.hops) used.add(`${h.from}->${h.to}`);
    for (const st of p.stages) used.add(st.host);
  }
  /** The most ms a move changed one of the compared plans by, given what it does to one hop or stage. */
  const impact = (f: (p: Plan) => number): number => Math.max(0, ...plans.map((p) => (p ? f(p) : 0)));
  const hopImpact = (key: string, perHop: (bytes: number) => number): number =>
    impact((p) => p.hops.filter((h) => `${h.from}->${h.to}` === key).reduce((t, h) => t + perHop(h.bytes), 0));
  const out: { mag: number; text: string; used?: boolean; ms?: number }[] = [];
  if (base.objective !== set.objective)
    out.push({ mag: Infinity, text: `objective ${base.objective} -> ${set.objective}` });
  if (base.constraints !== set.constraints)
    out.push({ mag: Infinity, text: `constraints changed (${set.constraints.length} now)` });
  const codecsText = (c: readonly string[] | null | undefined): string =>
    c == null ? 'every measured' : c.length === 0 ? 'none (raw)' : c.join(',');
  if (codecsText(base.codecs) !== codecsText(set.codecs))
    out.push({ mag: Infinity, text: `codecs ${codecsText(base.codecs)} -> ${codecsText(set.codecs)}` });
  if ((base.maxError ?? 0) !== set.maxError)
    out.push({ mag: Infinity, text: `maxError ${base.maxError ?? 0} -> ${set.maxError}` });
  const wasDown = new Set(base.snap.down);
  const isDown = new Set(s.down);
  for (const h of isDown) if (!wasDown.has(h)) out.push({ mag: Infinity, text: `${h} down` });
  for (const h of wasDown) if (!isDown.has(h)) out.push({ mag: Infinity, text: `${h} back up` });
  const change = (key: string, what: string, from: number, to: number, unit: string, ms: number, minAbs = 0): void => {
    const mag = Math.abs(Math.log(Math.max(to, 1e-9) / Math.max(from, 1e-9)));
    if (mag >= Math.log(1 + EXPLAIN_LIMITS.minMove) && Math.abs(to - from) >= minAbs)
      out.push({ mag, ms, used: used.has(key), text: `${what} ${num(from)} -> ${num(to)}${unit} (${pct(from, to)})` });
  };
  for (const h of new Set([...Object.keys(base.snap.slowdown), ...Object.keys(s.slowdown)])) {
    const a = base.snap.slowdown[h] ?? 1;
    const b = s.slowdown[h] ?? 1;
    const mag = Math.abs(Math.log(b / a));
    // A stage's compute is priced at the new slowdown b; at the old one it was a/b of that.
    const ms = impact((p) =>
      p.stages.filter((st) => st.host === h).reduce((t, st) => t + st.computeMs * Math.abs(1 - a / b), 0),
    );
    if (mag >= Math.log(1 + EXPLAIN_LIMITS.minMove))
      out.push({ mag, ms, used: used.has(h), text: `${h} slowdown ${times(a)} -> ${times(b)}x` });
  }
  const old = new Map(base.snap.input.links.map((l) => [`${l.from}->${l.to}`, l]));
  for (const l of s.input.links) {
    const key = `${l.from}->${l.to}`;
    const o = old.get(key);
    if (!o) continue;
    const bytesMs = hopImpact(key, (b) => Math.abs(b / l.bytesPerSecond - b / o.bytesPerSecond) * 1000);
    change(key, `link ${key} throughput`, o.bytesPerSecond / 1e6, l.bytesPerSecond / 1e6, ' MB/s', bytesMs);
    const rttMs = hopImpact(key, () => Math.abs(l.rttMs - o.rttMs) / 2);
    change(key, `link ${key} rtt`, o.rttMs, l.rttMs, ' ms', rttMs, EXPLAIN_LIMITS.minRttMoveMs);
  }
  if (out.length === 0)
    return `no measurement moved by ${EXPLAIN_LIMITS.minMove * 100}% or more since the current plan was adopted`;
  // Infinite moves (objective, down hosts) first, then those on the compared plans by the ms they changed
  // them by, then the rest by relative size.
  const rank = (x: { mag: number; used?: boolean }): number => (x.mag === Infinity ? 0 : x.used ? 1 : 2);
  out.sort((a, b) => rank(a) - rank(b) || (rank(a) === 1 ? (b.ms ?? 0) - (a.ms ?? 0) : 0) || b.mag - a.mag);
  return `since adoption: ${out
    .slice(0, EXPLAIN_LIMITS.maxMoves)
    .map((x) => x.text)
    .join(', ')}`;
}
