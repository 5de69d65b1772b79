/**
 * Every limit of the runtime with its default and its meaning, in one place. Hosts take a partial object from
 * the deployment config's `limits`; `resolveLimits` checks it and fills in the rest. The README's Limits table
 * is generated from `LIMITS` (`limitsTable`), and a test keeps the two equal. Transport limits (frame size,
 * link queue, pings) live in src/transport/options.ts and come through the config's `transport`.
 */
import { CleaveError } from '../errors.js';

interface LimitSpec {
  readonly default: number;
  readonly unit: 'bytes' | 'ms' | 'count';
  /** Smallest accepted value. */
  readonly min: number;
  readonly doc: string;
}

const MiB = 1024 * 1024;

/** Requests an origin hedges at once, at most (host/retry.ts): a plan change under overload must not double the load. */
export const MAX_HEDGES = 8;

export const LIMITS = {
  maxBodyBytes: {
    default: 64 * MiB,
    unit: 'bytes',
    min: 1024,
    doc: 'Largest inference request body (413 E_TOO_LARGE beyond).',
  },
  maxControlBodyBytes: {
    default: 1 * MiB,
    unit: 'bytes',
    min: 1024,
    doc: 'Largest control-API JSON body (plans, links, segments).',
  },
  maxInFlight: {
    default: 64,
    unit: 'count',
    min: 1,
    doc: 'Requests in flight at the gateway at once; more are refused with 503 E_QUEUE_FULL.',
  },
  deadlineMs: {
    default: 30_000,
    unit: 'ms',
    min: 1,
    doc: 'Per-request deadline from arrival to answer, unless the request sets a smaller `timeout` parameter; 504 E_DEADLINE past it.',
  },
  sessionCache: {
    default: 8,
    unit: 'count',
    min: 1,
    doc: 'Segment sessions each host keeps loaded (LRU), so swapping back to a recent split is instant.',
  },
  sessionCacheBytes: {
    default: 1024 * MiB,
    unit: 'bytes',
    min: 1,
    doc: 'Model bytes the cached segment sessions of a host may add up to; the least recently used go first (the one in use always stays).',
  },
  contingencyWarmups: {
    default: 4,
    unit: 'count',
    min: 0,
    doc: "Contingency plans (the best if one host got 4x or 16x slower, or two hosts' links 10x or 50x slower) whose segments the origin has warmed after each plan change, so that a move answering such a change waits for no session (none is built on a host whose quota is used up while it runs a stage of the plan in force); 0: none.",
  },
  warmupRuns: {
    default: 2,
    unit: 'count',
    min: 0,
    doc: 'Warm-up runs when a segment session is created, before it is reported warm.',
  },
  startupTimeoutMs: {
    default: 60_000,
    unit: 'ms',
    min: 1,
    doc: "How long the origin waits for its peers' links and first measurements before the first plan.",
  },
  startupSamples: {
    default: 3,
    unit: 'count',
    min: 0,
    doc: 'Throughput samples every link needs before the first plan (the first ones after a link opens are rough).',
  },
  peerRequestTimeoutMs: {
    default: 60_000,
    unit: 'ms',
    min: 1,
    doc: "A control call to a peer's API (its profile, status, links; preparing a segment) fails after this.",
  },
  retryWaitMs: {
    default: 2000,
    unit: 'ms',
    min: 0,
    doc: 'A request whose route lost a host is run again once, on the plan adopted around it, if one is committed within this (and its deadline); 0: never retried.',
  },
  hedgeAfterMs: {
    default: 1000,
    unit: 'ms',
    min: 0,
    doc: `A request still unanswered this long, on a plan since replaced by one that sends over none of its links, also runs on the plan in force; the first answer wins (at most ${MAX_HEDGES} such at once); 0: never.`,
  },
  loadSampleMs: {
    default: 1000,
    unit: 'ms',
    min: 10,
    doc: "How often a host samples its machine's CPU load (one read of /proc/stat on Linux; systeminformation elsewhere).",
  },
  planHistory: { default: 50, unit: 'count', min: 1, doc: 'Adopted plans kept for `GET /v1/plans`.' },
  heartbeatMs: {
    default: 500,
    unit: 'ms',
    min: 50,
    doc: 'How often every host reports its load, queue, segment times and link measurements to the origin (over its peer link).',
  },
  heartbeatTimeoutMs: {
    default: 2000,
    unit: 'ms',
    min: 100,
    doc: 'A host whose heartbeats stop this long is down for planning (a dropped link marks it down at once).',
  },
  observedFreshMs: {
    default: 5000,
    unit: 'ms',
    min: 100,
    doc: "Segment times observed within this window are a host's slowdown; past it the host's CPU quota (if any) predicts it.",
  },
  latencyWindowMs: {
    default: 10_000,
    unit: 'ms',
    min: 100,
    doc: "Window of answered requests behind the measured latency (median, p99) of `GET /v1/plan` and the events' snapshots.",
  },
  concurrencySpanMs: {
    default: 3000,
    unit: 'ms',
    min: 100,
    doc: "Span of recent requests behind the controller's load figure (requests in flight on average, by Little's law), which the latency objective plans for.",
  },
  snapshotMs: {
    default: 1000,
    unit: 'ms',
    min: 100,
    doc: 'How often `/v1/events` sends a `snapshot` (links, hosts, latency, rps).',
  },
  eventBufferBytes: {
    default: 1 * MiB,
    unit: 'bytes',
    min: 1024,
    doc: 'An events client that lets this much queue up unread is dropped (close code 4429) rather than buffered without bound.',
  },
} as const satisfies Record<string, LimitSpec>;

/**
 * Transport settings hosts use unless the config's `transport` says otherwise: pings twice a second and
 * idle-link probes four times a second, so that the adaptive loop's link estimates follow a step within
 * about a second, on links that carry traffic and on idle ones (an idle link that got faster shows it at its
 * next probe, and a sample far off the estimate sends the next probe at once). A probe is sized to take
 * ~10 ms at the link's best recent rate: at most ~4% of an idle link's capacity (src/transport/options.ts).
 */
export const HOST_TRANSPORT_DEFAULTS = { pingIntervalMs: 500, probeIntervalMs: 250 } as const;

export type RuntimeLimits = { -readonly [K in keyof typeof LIMITS]: number };

export const DEFAULT_LIMITS: Readonly<RuntimeLimits> = Object.freeze(
  Object.fromEntries(Object.entries(LIMITS).map(([k, v]) => [k, v.default])) as RuntimeLimits,
);

/** The defaults with `input` on top; an unknown key or a bad value throws E_BAD_INPUT naming `limits.KEY`. */
export function resolveLimits(input: Partial<RuntimeLimits> = {}): RuntimeLimits {
  const out: RuntimeLimits = { ...DEFAULT_LIMITS };
  for (const [k, v] of Object.entries(input)) {
    if (v === undefined) continue;
    if (!Object.hasOwn(LIMITS, k))
      throw new CleaveError('E_BAD_INPUT', `limits.${k}: unknown limit (known: ${Object.keys(LIMITS).join(', ')})`);
    const spec: LimitSpec = LIMITS[k as keyof RuntimeLimits];
    const integer = spec.unit !== 'ms';
    if (typeof v !== 'number' || !Number.isFinite(v) || v < spec.min || (integer && !Number.isInteger(v)))
      throw new CleaveError(
        'E_BAD_INPUT',
        `limits.${k}: must be ${integer ? 'an integer' : 'a number'} >= ${spec.min}, got ${JSON.stringify(v)}`,
      );
    out[k as keyof RuntimeLimits] = v;
  }
  return out;
}

function human(spec: LimitSpec): string {
  if (spec.unit === 'bytes') return spec.default % MiB === 0 ? `${spec.default / MiB} MiB` : `${spec.default} B`;
  if (spec.unit === 'ms') return spec.default % 1000 === 0 ? `${spec.default / 1000} s` : `${spec.default} ms`;
  return String(spec.default);
}

/** The README's Limits table (markdown), one row per limit. */
export function limitsTable(): string {
  const rows = Object.entries(LIMITS).map(([k, v]) => `| \`${k}\` | ${human(v)} | ${v.doc} |`);
  return ['| limit | default | meaning |', '| --- | --- | --- |', ...rows].join('\n');
}
