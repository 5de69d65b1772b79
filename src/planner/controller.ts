/**
 * The adaptive controller: on each round (the runtime's timer, `replanIntervalMs`) it re-runs the exact
 * search on live estimates, prices the current plan on the very same estimates, and decides keep, propose
 * or adopt. Plain data in, plain data out: no clock (the snapshot carries `now`), no I/O; the runtime
 * prepares and commits an adopted plan and then calls `adopted()`.
 *
 * Rules, in order: paused -> keep; pinned -> keep; no feasible plan -> keep; no current plan, or one that
 * cannot run on the live input (a down host, a link no longer measured) -> adopt the best at once
 * ("urgent"); otherwise adopt a candidate only when it beats the current plan by `hysteresis` for
 * `confirmRounds` rounds in a row with the same route, and not within `minDwellMs` of the last change.
 * A current plan that breaks a constraint (say one just added) is beaten by any plan, but still waits for
 * confirmation and dwell.
 */
import { CleaveError, isCleaveError } from '../errors.js';
import { violated } from './constraints.js';
import { evaluate } from './cost.js';
import { loadedBest, plan as planFull, search } from './plan.js';
import { describeConstraint, prepare, type Prepared, type Shape } from './prepare.js';
import { toPlan } from './result.js';
import type { Constraint, Objective, Plan, PlanInput } from './types.js';

export interface ControllerSettings {
  /** What a better plan means. Default 'latency'. */
  readonly objective: Objective;
  /** How often the runtime calls `step()`, in ms. Default 500, at least 100. */
  readonly replanIntervalMs: number;
  /** Share (0..1) of the objective a candidate must save to be adopted. Default 0.10. */
  readonly hysteresis: number;
  /** Consecutive rounds the same candidate route must win. Default 2. */
  readonly confirmRounds: number;
  /** No non-urgent change sooner than this after the last one, in ms. Default 3000. */
  readonly minDwellMs: number;
  /**
   * Flap damping: a plan already adopted k times within this window must beat the current one by
   * hysteresis x 2^k to be adopted again, so two near-equal plans whose estimates cross back and forth do
   * not take turns; a real change (a link or host several times slower) clears the bar at once. 0 turns it
   * off. Default 60 000.
   */
  readonly flapWindowMs: number;
  /** Keep whatever runs. Default false. */
  readonly paused: boolean;
  /** The deployment's constraints, added to the snapshot input's own. Default []. */
  readonly constraints: readonly Constraint[];
}

export const CONTROLLER_DEFAULTS: Readonly<ControllerSettings> = Object.freeze({
  objective: 'latency',
  // Two confirming rounds 500 ms apart: a change adopted within ~1.5 s of the links measuring it.
  replanIntervalMs: 500,
  hysteresis: 0.1,
  confirmRounds: 2,
  minDwellMs: 3000,
  flapWindowMs: 60_000,
  paused: false,
  constraints: Object.freeze([]) as readonly Constraint[],
});

/** How much of what moved a reason tells. */
export const EXPLAIN_LIMITS = {
  /** Measurements named per reason, largest move first. */
  maxMoves: 3,
  /** Smallest relative move named (0.10: 10 %). */
  minMove: 0.1,
} as const;

export interface LiveSnapshot {
  readonly now: number;
  /** Profiles and live link estimates; `blockMs` are the profiled times (slowdown applies on top). */
  readonly input: PlanInput;
  /** Per host name; missing = 1. */
  readonly slowdown: Readonly<Record<string, number>>;
  readonly down: readonly string[];
  /**
   * Requests in flight on average (Little's law over recent requests): with more than 1, the latency
   * objective compares plans by their latency under that load (`loadedLatencyMs`). Default 1.
   */
  readonly concurrency?: number;
}

export interface CurrentPlan {
  readonly stages: readonly { readonly host: string; readonly start: number; readonly end: number }[];
  /** The origin (device) host; needed only when it runs no block and its tier has several hosts. */
  readonly origin?: string;
  readonly pinned: boolean;
  readonly adoptedAt: number;
}

/**
 * `current` and `best`/`candidate`/`plan` are priced on the same live input. `gain`: the share of the
 * objective saved (latency, or bottleneck time for throughput), negative when the current plan breaks a
 * constraint and the best is slower; 1 for an urgent adoption (the current plan cannot run).
 */
export type Decision =
  | { kind: 'keep'; reason: string; current: Plan | null; best: Plan | null }
  | {
      kind: 'propose';
      reason: string;
      candidate: Plan;
      current: Plan | null;
      gain: number;
      round: number;
      rounds: number;
    }
  | { kind: 'adopt'; reason: string; plan: Plan; current: Plan | null; gain: number; urgent: boolean };

const KINDS: ReadonlySet<string> = new Set([
  'blockOn',
  'blockNotOn',
  'useTier',
  'noTier',
  'useHost',
  'noHost',
  'maxUpload',
  'maxCompute',
  'maxComputeShare',
  'maxWeights',
]);

function bad(msg: string): never {
  throw new CleaveError('E_BAD_INPUT', msg);
}

/** Validates settings from outside (config, HTTP): unknown fields and wrong types throw E_BAD_INPUT naming the field. */
export function checkControllerSettings(partial: unknown): Partial<ControllerSettings> {
  if (typeof partial !== 'object' || partial === null || Array.isArray(partial))
    bad('controller settings: must be an object');
  const out: { -readonly [K in keyof ControllerSettings]?: ControllerSettings[K] } = {};
  const num = (k: string, v: unknown, ok: (x: number) => boolean, what: string): number => {
    if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) bad(`${k}: must be ${what} (got ${JSON.stringify(v)})`);
    return v;
  };
  for (const [k, v] of Object.entries(partial)) {
    if (v === undefined) continue;
    switch (k) {
      case 'objective':
        if (v !== 'latency' && v !== 'throughput')
          bad(`objective: must be 'latency' or 'throughput' (got ${JSON.stringify(v)})`);
        out.objective = v;
        break;
      case 'replanIntervalMs':
        out.replanIntervalMs = num(k, v, (x) => x >= 100, 'a number >= 100 (ms)');
        break;
      case 'hysteresis':
        out.hysteresis = num(k, v, (x) => x >= 0 && x <= 1, 'a number in [0, 1]');
        break;
      case 'confirmRounds':
        out.confirmRounds = num(k, v, (x) => Number.isInteger(x) && x >= 1, 'an integer >= 1');
        break;
      case 'minDwellMs':
        out.minDwellMs = num(k, v, (x) => x >= 0, 'a number >= 0 (ms)');
        break;
      case 'flapWindowMs':
        out.flapWindowMs = num(k, v, (x) => x >= 0, 'a number >= 0 (ms)');
        break;
      case 'paused':
        if (typeof v !== 'boolean') bad(`paused: must be true or false (got ${JSON.stringify(v)})`);
        out.paused = v;
        break;
      case 'constraints':
        if (!Array.isArray(v)) bad('constraints: must be an array of constraints');
        v.forEach((c: unknown, i) => {
          const kind = typeof c === 'object' && c !== null ? (c as { kind?: unknown }).kind : undefined;
          if (typeof kind !== 'string' || !KINDS.has(kind))
            bad(`constraints[${i}]: unknown constraint kind ${JSON.stringify(kind)} (known: ${[...KINDS].join(', ')})`);
        });
        out.constraints = Object.freeze([...(v as Constraint[])]);
        break;
      default:
        bad(`${k}: unknown setting (known: ${Object.keys(CONTROLLER_DEFAULTS).join(', ')})`);
    }
  }
  return out;
}

/**
 * The input the controller plans on: each up host's block times, stage overhead and cut cost scaled by its
 * slowdown; down hosts and their links removed (and constraints naming them adjusted); links not measured
 * yet make a pair unusable instead of an error; top 1, no Pareto set. Throws E_NO_PLAN when every origin
 * host is down or a `useHost` names only down hosts.
 */
export function liveInput(s: LiveSnapshot, objective: Objective, constraints: readonly Constraint[]): PlanInput {
  const down = new Set(s.down);
  for (const [name, f] of Object.entries(s.slowdown)) {
    if (typeof f !== 'number' || !Number.isFinite(f) || f <= 0)
      bad(`slowdown.${name}: must be a number > 0 (got ${String(f)})`);
  }
  const hosts = s.input.hosts
    .filter((h) => !down.has(h.name))
    .map((h) => {
      const f = s.slowdown[h.name] ?? 1;
      if (f === 1) return h;
      return {
        ...h,
        blockMs: h.blockMs.map((ms) => ms * f),
        stageOverheadMs: h.stageOverheadMs === undefined ? undefined : h.stageOverheadMs * f,
        cutMsPerByte: h.cutMsPerByte === undefined ? undefined : h.cutMsPerByte * f,
      };
    });
  const origin = s.input.tiers[0];
  if (!hosts.some((h) => h.tier === origin)) {
    const all = s.input.hosts.filter((h) => h.tier === origin).map((h) => h.name);
    throw new CleaveError(
      'E_NO_PLAN',
      `no plan: every host of the origin tier '${origin}' is down (${all.join(', ')})`,
    );
  }
  const cs: Constraint[] = [];
  for (const c of [...(s.input.constraints ?? []), ...constraints]) {
    if ((c.kind === 'noHost' || c.kind === 'maxWeights') && down.has(c.host)) continue;
    if (c.kind === 'useHost' && c.hosts.some((h) => down.has(h))) {
      const up = c.hosts.filter((h) => !down.has(h));
      if (up.length === 0)
        throw new CleaveError(
          'E_NO_PLAN',
          `no plan: ${c.source ?? describeConstraint(c)} names only hosts that are down (${c.hosts.join(', ')})`,
        );
      cs.push({ ...c, hosts: up });
    } else cs.push(c);
  }
  return {
    ...s.input,
    hosts,
    links: s.input.links.filter((l) => !down.has(l.from) && !down.has(l.to)),
    constraints: cs,
    objective,
    topN: 1,
    pareto: false,
    options: { ...s.input.options, missingLinks: 'skip' },
  };
}

/** A plan's route, for logs: `device[0:5) -> edge[5:18)`, `device[none] -> cloud[0:18)` when the origin runs nothing. */
export function routeOf(p: {
  readonly origin?: string;
  readonly stages: readonly { readonly host: string; readonly start: number; readonly end: number }[];
}): string {
  const parts = p.stages.map((s) => `${s.host}[${s.start}:${s.end})`);
  if (p.origin !== undefined && p.stages[0]?.host !== p.origin) parts.unshift(`${p.origin}[none]`);
  return parts.join(' -> ');
}

type Priced = { readonly plan: Plan; readonly broken: Constraint | undefined };

/**
 * Prices a given partition on prepared input; a string says why it cannot run (a host that is not there,
 * a link that is missing). A malformed partition (gaps, tiers out of order) throws E_BAD_INPUT.
 */
function priceOn(p: Prepared, stages: CurrentPlan['stages'], originName?: string): Priced | string {
  if (stages.length === 0) bad('stages: a plan needs at least one stage');
  stages.forEach((st, i) => {
    const from = i === 0 ? 0 : stages[i - 1].end;
    if (st.start !== from || !Number.isInteger(st.end) || st.end <= st.start)
      bad(`stages[${i}]: [${st.start}, ${st.end}) does not continue from block ${from}`);
  });
  if (stages[stages.length - 1].end !== p.n)
    bad(`stages: end at block ${stages[stages.length - 1].end}, the model has ${p.n} blocks`);
  const idx = (name: string): number => p.hostNames.indexOf(name);
  for (const st of stages) if (idx(st.host) < 0) return `${st.host} is not in the live input`;
  const firstH = idx(stages[0].host);
  const origins = p.hostNames.map((_, h) => h).filter((h) => p.hostTier[h] === 0);
  let origin: number;
  if (p.hostTier[firstH] === 0) {
    if (originName !== undefined && originName !== stages[0].host)
      bad(`stages[0]: ${stages[0].host} is in the origin tier but the origin is ${originName}`);
    origin = firstH;
  } else if (originName !== undefined) {
    origin = idx(originName);
    if (origin < 0) return `its origin ${originName} is not in the live input`;
  } else {
    if (origins.length !== 1)
      bad('origin: the first stage is not in the origin tier and that tier has several hosts; name the origin');
    origin = origins[0];
  }
  const steps: { q: number; h: number; end: number }[] = origin === firstH ? [] : [{ q: 0, h: origin, end: 0 }];
  for (const [i, st] of stages.entries()) {
    const h = idx(st.host);
    const q = p.hostTier[h];
    if (steps.length > 0 && q <= steps[steps.length - 1].q)
      bad(
        `stages[${i}]: ${st.host} (tier ${p.tiers[q]}) does not come after tier ${p.tiers[steps[steps.length - 1].q]}`,
      );
    steps.push({ q, h, end: st.end });
  }
  const shape: Shape = { origin, steps };
  const m = evaluate(p, shape);
  if (!m) {
    const hs = steps.map((x) => x.h);
    for (let i = 1; i < hs.length; i++)
      if (Number.isNaN(p.linkK[hs[i - 1] * p.H + hs[i]]))
        return `no measured link ${p.hostNames[hs[i - 1]]}->${p.hostNames[hs[i]]}`;
    return `no measured link between ${p.hostNames[hs[hs.length - 1]]} and ${p.hostNames[origin]} for the result`;
  }
  return { plan: toPlan(p, { shape, m }), broken: violated(p, shape, m, p.input.constraints ?? []) };
}

/** Prices a given partition on a (live) input; null when it cannot run there (a host removed, a link missing). */
export function evaluateStages(input: PlanInput, stages: CurrentPlan['stages'], origin?: string): Plan | null {
  const r = priceOn(prepare({ ...input, topN: 1, pareto: false }), stages, origin);
  return typeof r === 'string' ? null : r.plan;
}

/**
 * Latency with `concurrency` requests in flight: a request also waits behind the others at the slowest
 * stage or link (a closed system's asymptotic bound, see plan.ts `loadedBest`). Equal to the plan's latency
 * at a concurrency of 1 or less.
 */
export function loadedLatencyMs(p: Plan, concurrency: number): number {
  return Math.max(p.latencyMs, concurrency * p.bottleneckMs);
}

/** What a round compares plans by: the objective and, for latency, the load being served. */
interface Scoring {
  readonly objective: Objective;
  readonly concurrency: number;
}

function scoreOf(sc: Scoring, p: Plan): number {
  return sc.objective === 'throughput' ? p.bottleneckMs : loadedLatencyMs(p, sc.concurrency);
}

function gainOf(sc: Scoring, cur: Plan, best: Plan): number {
  const a = scoreOf(sc, cur);
  const b = scoreOf(sc, best);
  return a > 0 ? (a - b) / a : 0;
}

function num(x: number): string {
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

function predicted(sc: Scoring, cur: Plan, best: Plan): string {
  if (sc.objective === 'latency') {
    const [a, b] = [scoreOf(sc, cur), scoreOf(sc, best)];
    return `predicted ${num(a)} -> ${num(b)} ms${loadText(sc)}, ${pct(a, b)}`;
  }
  const rps = (p: Plan): string => (Number.isFinite(p.throughputRps) ? num(p.throughputRps) : 'unbounded');
  return `predicted bottleneck ${num(cur.bottleneckMs)} -> ${num(best.bottleneckMs)} ms (${rps(cur)} -> ${rps(best)} req/s), ${pct(cur.bottleneckMs, best.bottleneckMs)}`;
}

function priceText(sc: Scoring, p: Plan): string {
  return sc.objective === 'latency'
    ? `${num(scoreOf(sc, p))} ms${loadText(sc)}`
    : `bottleneck ${num(p.bottleneckMs)} ms`;
}

interface Baseline {
  readonly at: number;
  readonly snap: LiveSnapshot;
  readonly objective: Objective;
  readonly constraints: readonly Constraint[];
}

/** What moved between the baseline and now, largest first (EXPLAIN_LIMITS). */
function moves(base: Baseline | null, s: LiveSnapshot, set: ControllerSettings): string {
  if (!base) return "no snapshot from the current plan's adoption to compare with";
  const out: { mag: number; text: string }[] = [];
  if (base.objective !== set.objective)
    out.push({ mag: Infinity, text: `objective ${base.objective} -> ${set.objective}` });
  if (base.constraints !== set.constraints)
    out.push({ mag: Infinity, text: `constraints changed (${set.constraints.length} now)` });
  const wasDown = new Set(base.snap.down);
  const isDown = new Set(s.down);
  for (const h of isDown) if (!wasDown.has(h)) out.push({ mag: Infinity, text: `${h} down` });
  for (const h of wasDown) if (!isDown.has(h)) out.push({ mag: Infinity, text: `${h} back up` });
  const change = (what: string, from: number, to: number, unit: string): void => {
    const mag = Math.abs(Math.log(Math.max(to, 1e-9) / Math.max(from, 1e-9)));
    if (mag >= Math.log(1 + EXPLAIN_LIMITS.minMove))
      out.push({ mag, text: `${what} ${num(from)} -> ${num(to)}${unit} (${pct(from, to)})` });
  };
  for (const h of new Set([...Object.keys(base.snap.slowdown), ...Object.keys(s.slowdown)])) {
    const a = base.snap.slowdown[h] ?? 1;
    const b = s.slowdown[h] ?? 1;
    const mag = Math.abs(Math.log(b / a));
    if (mag >= Math.log(1 + EXPLAIN_LIMITS.minMove))
      out.push({ mag, text: `${h} slowdown ${times(a)} -> ${times(b)}x` });
  }
  const old = new Map(base.snap.input.links.map((l) => [`${l.from}->${l.to}`, l]));
  for (const l of s.input.links) {
    const key = `${l.from}->${l.to}`;
    const o = old.get(key);
    if (!o) continue;
    change(`link ${key} throughput`, o.bytesPerSecond / 1e6, l.bytesPerSecond / 1e6, ' MB/s');
    change(`link ${key} rtt`, o.rttMs, l.rttMs, ' ms');
  }
  if (out.length === 0)
    return `no measurement moved by ${EXPLAIN_LIMITS.minMove * 100}% or more since the current plan was adopted`;
  out.sort((a, b) => b.mag - a.mag);
  return `since adoption: ${out
    .slice(0, EXPLAIN_LIMITS.maxMoves)
    .map((x) => x.text)
    .join(', ')}`;
}

export class Controller {
  #set: ControllerSettings;
  #base: Baseline | null = null;
  #lastAdopt = -Infinity;
  /** Routes the controller adopted, and when: what flap damping counts. */
  #adoptions: { route: string; at: number }[] = [];
  #pending: { candidate: string; current: string; rounds: number } | null = null;

  constructor(settings: Partial<ControllerSettings> = {}) {
    this.#set = Object.freeze({ ...CONTROLLER_DEFAULTS, ...checkControllerSettings(settings) });
  }

  get settings(): Readonly<ControllerSettings> {
    return this.#set;
  }

  /** Validated like the constructor's; restarts any confirmation in progress. */
  update(partial: Partial<ControllerSettings>): void {
    this.#set = Object.freeze({ ...this.#set, ...checkControllerSettings(partial) });
    this.#pending = null;
  }

  /**
   * After a plan is committed: starts the dwell, `s` becomes the baseline reasons compare with, and `plan`
   * (the one adopted) counts for flap damping.
   */
  adopted(at: number, s: LiveSnapshot, plan?: Plan): void {
    this.#lastAdopt = at;
    if (plan) {
      this.#adoptions = this.#adoptions.filter((a) => at - a.at < this.#set.flapWindowMs);
      this.#adoptions.push({ route: routeOf(plan), at });
    }
    this.#base = { at, snap: s, objective: this.#set.objective, constraints: this.#set.constraints };
    this.#pending = null;
  }

  /**
   * One round: one search (top 1) and one pricing of the current plan on the same live input. Never
   * throws E_NO_PLAN or the search's E_UNSUPPORTED (they become keep); a malformed snapshot or current plan
   * throws E_BAD_INPUT.
   */
  step(s: LiveSnapshot, current: CurrentPlan | null): Decision {
    const set = this.#set;
    const sc: Scoring = { objective: set.objective, concurrency: Math.max(1, s.concurrency ?? 1) };
    // A plan adopted around the controller (an operator's PUT): its first snapshot is the baseline.
    if (current && (!this.#base || current.adoptedAt > this.#base.at)) {
      this.#base = { at: current.adoptedAt, snap: s, objective: set.objective, constraints: set.constraints };
    }
    let live: PlanInput | null = null;
    let p: Prepared | null = null;
    let best: Plan | null = null;
    let failure = '';
    try {
      live = liveInput(s, set.objective, set.constraints);
      p = prepare(live);
      best =
        sc.objective === 'latency' && sc.concurrency > 1 && p.shares.length === 0
          ? loadedBest(p, sc.concurrency)
          : (search(p).plans[0] ?? null);
      if (!best) planFull(live); // throws E_NO_PLAN with the planner's diagnosis
    } catch (e) {
      if (!isCleaveError(e) || (e.code !== 'E_NO_PLAN' && e.code !== 'E_UNSUPPORTED')) throw e;
      failure = e.message;
    }
    const priced = current && p ? priceOn(p, current.stages, current.origin) : null;
    const cur = priced && typeof priced !== 'string' ? priced : null;
    const down = current
      ? [current.origin, ...current.stages.map((x) => x.host)].find((h) => h !== undefined && s.down.includes(h))
      : undefined;
    const why =
      down !== undefined
        ? `runs through ${down}, which is down`
        : typeof priced === 'string'
          ? `cannot run: ${priced}`
          : '';
    const keep = (reason: string): Decision => {
      this.#pending = null;
      return { kind: 'keep', reason, current: cur?.plan ?? null, best };
    };
    const origins = s.input.hosts.filter((h) => h.tier === s.input.tiers[0]).map((h) => h.name);
    const curRoute = current
      ? routeOf(
          cur?.plan ?? {
            origin: current.origin ?? (origins.length === 1 ? origins[0] : undefined),
            stages: current.stages,
          },
        )
      : '';
    const bestText = best
      ? `the best plan is ${routeOf(best)} (${priceText(sc, best)})`
      : `no feasible plan (${failure})`;

    if (set.paused) return keep(`paused: keeping ${current ? curRoute : 'no plan'}; ${bestText}`);
    if (current?.pinned) {
      if (why)
        return keep(`pinned plan ${curRoute} ${why}; keeping it, the runtime decides (unpin to re-plan); ${bestText}`);
      return keep(`pinned: keeping ${curRoute}; ${bestText}`);
    }
    if (!best)
      return keep(
        `no feasible plan on the live estimates, keeping ${current ? curRoute : 'no plan'}${why ? ` (which ${why})` : ''}: ${failure}; ${moves(this.#base, s, set)}`,
      );
    const route = routeOf(best);
    if (!current || !cur) {
      this.#pending = null;
      const what = current ? `current plan ${curRoute} ${why}` : 'no current plan';
      const base = current ? `; ${moves(this.#base, s, set)}` : '';
      return {
        kind: 'adopt',
        reason: `${what}: adopting ${route} at once (predicted ${priceText(sc, best)})${base}`,
        plan: best,
        current: null,
        gain: 1,
        urgent: true,
      };
    }
    const gain = gainOf(sc, cur.plan, best);
    const moved = moves(this.#base, s, set);
    if (route === curRoute)
      return keep(`current plan ${curRoute} is still the best (${priceText(sc, best)}); ${moved}`);
    const broken = cur.broken ? ` current plan breaks ${cur.broken.source ?? describeConstraint(cur.broken)};` : '';
    const flaps = this.#adoptions.filter((a) => a.route === route && s.now - a.at < set.flapWindowMs).length;
    const need = Math.min(1, set.hysteresis * 2 ** flaps);
    if (!broken && !(gain >= need && gain > 0)) {
      const bar =
        flaps > 0
          ? `the ${Math.round(need * 100)}% it needs (adopted ${flaps} time${flaps === 1 ? '' : 's'} in the last ${num(set.flapWindowMs / 1000)} s)`
          : `the ${Math.round(set.hysteresis * 100)}% hysteresis`;
      return keep(
        `keeping ${curRoute}: the best alternative ${route} saves ${Math.round(gain * 100)}% (${predicted(sc, cur.plan, best)}), below ${bar}; ${moved}`,
      );
    }
    const pend = this.#pending;
    const rounds = pend && pend.candidate === route && pend.current === curRoute ? pend.rounds + 1 : 1;
    this.#pending = { candidate: route, current: curRoute, rounds };
    const dwellLeft = Math.max(current.adoptedAt, this.#lastAdopt) + set.minDwellMs - s.now;
    const story = `${moved};${broken} ${predicted(sc, cur.plan, best)}: ${route} over ${curRoute}`;
    if (rounds >= set.confirmRounds && dwellLeft <= 0) {
      this.#pending = null;
      return {
        kind: 'adopt',
        reason: `${story}; confirmed for ${rounds} round${rounds === 1 ? '' : 's'}, adopting`,
        plan: best,
        current: cur.plan,
        gain,
        urgent: false,
      };
    }
    const wait =
      rounds < set.confirmRounds
        ? `round ${rounds} of ${set.confirmRounds}`
        : `confirmed, waiting out the dwell (${num(dwellLeft / 1000)} s of ${num(set.minDwellMs / 1000)} s left)`;
    return {
      kind: 'propose',
      reason: `${story}; ${wait}`,
      candidate: best,
      current: cur.plan,
      gain,
      round: rounds,
      rounds: set.confirmRounds,
    };
  }
}
