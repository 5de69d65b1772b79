/**
 * What a controller round reads, and how it prices plans on it: the live snapshot (profiles with live link
 * estimates, host slowdowns, down hosts, load), the planner input made from it, and a given partition
 * priced on that input, the same way the search prices its own.
 */
import { CleaveError } from '../errors.js';
import type { Measured } from './calibration.js';
import { violated } from './constraints.js';
import { codedHop, evaluate } from './cost.js';
import { describeConstraint, prepare, type Prepared, type Shape } from './prepare.js';
import { toPlan } from './result.js';
import type { Constraint, Objective, Plan, PlanInput } from './types.js';

function bad(msg: string): never {
  throw new CleaveError('E_BAD_INPUT', msg);
}

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
  /**
   * What the current plan delivered lately: the median latency of its own requests (its epoch only) answered
   * over the last `spanMs`. The controller calibrates on it (calibration.ts); absent, it does not.
   */
  readonly measured?: Measured;
  /**
   * Per host, what it ran at lately by the work it carried, under its current CPU quota (work-slowdown.ts):
   * a plan's stage on the host is priced at the figure observed for about its work, not at `slowdown`.
   * Absent, or a host missing: `slowdown` alone.
   */
  readonly slowdownByWork?: Readonly<Record<string, readonly WorkSlowdown[]>>;
  /**
   * Each host's CPU quota as its heartbeats report it (null: none). Flap damping forgets what was moved off
   * a host under another quota than its current one: that was a reaction to conditions that are gone.
   */
  readonly quotaCpus?: Readonly<Record<string, number | null>>;
  /**
   * Per host, its event loop's CPU (ms) per stage it runs from a frame, as measured live (runtime
   * host/frame-cpu.ts): the host's `frameMs`, before its slowdown. Absent, or a host missing: the input's own.
   */
  readonly frameMs?: Readonly<Record<string, number>>;
  /**
   * Per host under a CPU quota, the share of the last few seconds its cgroup spent throttled (its quota used
   * up; the kernel counts a throttled period once per CPU waited on, so up to about the machine's CPU count).
   * Contingency warming (contingency.ts) builds nothing on a host that runs a stage of the plan in force and
   * is throttled. Absent, or a host missing: not throttled.
   */
  readonly throttledShare?: Readonly<Record<string, number>>;
}

/** One observation of a host: it ran a segment profiled at `workMs` at `factor` times its profile. */
export interface WorkSlowdown {
  readonly workMs: number;
  readonly factor: number;
}

export interface CurrentPlan {
  /** `codec`: the wire codec of the hop into the stage, as it runs (absent: priced with the fastest codec). */
  readonly stages: readonly {
    readonly host: string;
    readonly start: number;
    readonly end: number;
    readonly codec?: string;
  }[];
  /** The origin (device) host; needed only when it runs no block and its tier has several hosts. */
  readonly origin?: string;
  readonly pinned: boolean;
  readonly adoptedAt: number;
}

/**
 * The input the controller plans on: each up host's block times, stage overhead, frame cost (the live one where
 * measured), cut and codec costs scaled by its slowdown; the codecs `wire` allows, with its error budget; down hosts and their links removed (and constraints naming them adjusted); links not measured
 * yet make a pair unusable instead of an error; top 1, no Pareto set. Throws E_NO_PLAN when every origin
 * host is down or a `useHost` names only down hosts.
 */
export function liveInput(
  s: LiveSnapshot,
  objective: Objective,
  constraints: readonly Constraint[],
  /** Which of the input's codecs the hops may use (null: all) and the lossy codecs' error budget. */
  wire: { readonly codecs?: readonly string[] | null; readonly maxError?: number } = {},
): PlanInput {
  const down = new Set(s.down);
  for (const [name, f] of Object.entries(s.slowdown)) {
    if (typeof f !== 'number' || !Number.isFinite(f) || f <= 0)
      bad(`slowdown.${name}: must be a number > 0 (got ${String(f)})`);
  }
  const hosts = s.input.hosts
    .filter((h) => !down.has(h.name))
    .map((h) => {
      const f = s.slowdown[h.name] ?? 1;
      const frame = s.frameMs?.[h.name] ?? h.frameMs;
      if (f === 1) return frame === h.frameMs ? h : { ...h, frameMs: frame };
      return {
        ...h,
        frameMs: frame === undefined ? undefined : frame * f,
        blockMs: h.blockMs.map((ms) => ms * f),
        stageOverheadMs: h.stageOverheadMs === undefined ? undefined : h.stageOverheadMs * f,
        cutMsPerByte: h.cutMsPerByte === undefined ? undefined : h.cutMsPerByte * f,
        codecMsPerByte:
          h.codecMsPerByte === undefined
            ? undefined
            : Object.fromEntries(
                Object.entries(h.codecMsPerByte).map(([c, m]) => [c, { encode: m.encode * f, decode: m.decode * f }]),
              ),
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
  const allowed = wire.codecs ?? null;
  return {
    ...s.input,
    hosts,
    codecs: (s.input.codecs ?? []).filter((c) => allowed === null || allowed.includes(c.name)),
    maxError: wire.maxError ?? s.input.maxError,
    links: s.input.links.filter((l) => !down.has(l.from) && !down.has(l.to)),
    constraints: cs,
    objective,
    topN: 1,
    pareto: false,
    options: { ...s.input.options, missingLinks: 'skip' },
  };
}

/**
 * A plan's route, for logs and for telling plans apart: `device[0:5) -> edge[5:18)`, `device[none] ->
 * cloud[0:18)` when the origin runs nothing, and `device[0:5) -int8-> edge[5:18)` for a hop in a codec.
 */
export function routeOf(p: {
  readonly origin?: string;
  readonly stages: readonly { readonly host: string; readonly start: number; readonly end: number }[];
  readonly hops?: readonly { readonly codec: string; readonly kind: 'forward' | 'return' }[];
}): string {
  const parts = p.stages.map((s) => `${s.host}[${s.start}:${s.end})`);
  if (p.origin !== undefined && p.stages[0]?.host !== p.origin) parts.unshift(`${p.origin}[none]`);
  const codecs = (p.hops ?? []).filter((h) => h.kind === 'forward').map((h) => h.codec);
  return parts.reduce((out, part, i) => {
    if (i === 0) return part;
    const c = codecs[i - 1];
    return `${out} ${c && c !== 'raw' ? `-${c}->` : '->'} ${part}`;
  }, '');
}

/**
 * The codec of the hop into each stage of `p` (undefined for the origin's own stage, which nothing sends
 * to), from its forward hops in order.
 */
export function stageCodecs(p: Plan, origin: string): (string | undefined)[] {
  const forward = p.hops.filter((h) => h.kind === 'forward');
  const originRuns = p.stages[0]?.host === origin;
  return p.stages.map((_, i) => (originRuns ? (i === 0 ? undefined : forward[i - 1]?.codec) : forward[i]?.codec));
}

/** A plan's stages as `priceOn` takes them, each with the codec of the hop into it. */
export function stagesOf(p: Plan): CurrentPlan['stages'] {
  const codecs = stageCodecs(p, p.origin);
  return p.stages.map((s, i) => {
    const codec = codecs[i];
    return { host: s.host, start: s.start, end: s.end, ...(codec !== undefined ? { codec } : {}) };
  });
}

export type Priced = { readonly plan: Plan; readonly broken: Constraint | undefined };

/**
 * Prices a given partition on prepared input; a string says why it cannot run (a host that is not there,
 * a link that is missing). A malformed partition (gaps, tiers out of order) throws E_BAD_INPUT.
 */
export function priceOn(p: Prepared, stages: CurrentPlan['stages'], originName?: string): Priced | string {
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
  const steps: { q: number; h: number; end: number; codec?: number }[] =
    origin === firstH ? [] : [{ q: 0, h: origin, end: 0 }];
  for (const [i, st] of stages.entries()) {
    const h = idx(st.host);
    const q = p.hostTier[h];
    if (steps.length > 0 && q <= steps[steps.length - 1].q)
      bad(
        `stages[${i}]: ${st.host} (tier ${p.tiers[q]}) does not come after tier ${p.tiers[steps[steps.length - 1].q]}`,
      );
    const step: { q: number; h: number; end: number; codec?: number } = { q, h, end: st.end };
    if (st.codec !== undefined && steps.length > 0) {
      const k = p.codecs.names.indexOf(st.codec);
      if (k < 0) return `its codec ${st.codec} into ${st.host} is not offered in the live input`;
      // A lossy codec whose error at this cut is over the budget now (it was lowered) cannot go on running.
      const { h: sender, end: at } = steps[steps.length - 1];
      if (!p.codecs.usable[k][at])
        return `its codec ${st.codec} into ${st.host} (at block ${at}) is over the error budget of ${p.input.maxError ?? 0}`;
      if (codedHop(p, sender, h, k, at) === null)
        return `${p.hostNames[sender]} or ${st.host} has no figure for codec ${st.codec}`;
      step.codec = k;
    }
    steps.push(step);
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
