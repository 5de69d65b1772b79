/**
 * Every runtime limit with its default, in one place. Hosts take a partial object from the config file;
 * `resolveLimits` fills in the rest. Transport limits (frame size, link queue) live in
 * src/transport/options.ts and are passed through `transport`.
 */
export interface RuntimeLimits {
  /** Largest HTTP request body accepted by the gateway (413 beyond). Default 64 MiB. */
  maxBodyBytes: number;
  /** Requests in flight at the gateway at once; more are refused with 503 E_QUEUE_FULL. Default 64. */
  maxInFlight: number;
  /** Per-request deadline from arrival to answer, unless the request sets a smaller `timeout` parameter
   * (ms). Default 30 000 ms; a request past it is answered 504 E_DEADLINE. */
  deadlineMs: number;
  /** Segment sessions kept warm per host (LRU). Default 8. */
  sessionCache: number;
  /** Warm-up runs when a segment session is created. Default 2. */
  warmupRuns: number;
  /** How long the device waits for peers' profiles and first link measurements at start-up. Default 60 000 ms. */
  startupTimeoutMs: number;
  /** How often a host samples its CPU load (systeminformation). Default 1000 ms. */
  loadSampleMs: number;
}

export const DEFAULT_LIMITS: Readonly<RuntimeLimits> = Object.freeze({
  maxBodyBytes: 64 * 1024 * 1024,
  maxInFlight: 64,
  deadlineMs: 30_000,
  sessionCache: 8,
  warmupRuns: 2,
  startupTimeoutMs: 60_000,
  loadSampleMs: 1000,
});

export function resolveLimits(input: Partial<RuntimeLimits> = {}): RuntimeLimits {
  const out = { ...DEFAULT_LIMITS };
  for (const [k, v] of Object.entries(input)) if (v !== undefined) (out as Record<string, number>)[k] = v;
  return out;
}
