/**
 * The requests the gateway answered recently, for what `GET /v1/plan`, the events' snapshots and the
 * metrics call "measured": end-to-end latency percentiles and request rate over a sliding window, overall
 * and per plan epoch. Bounded: samples older than the window go, and at most `maxSamples` are kept.
 */
export interface LatencyStats {
  readonly count: number;
  readonly failed: number;
  /** Answered requests per second over the window. */
  readonly rps: number;
  readonly meanMs: number | null;
  readonly p50Ms: number | null;
  readonly p99Ms: number | null;
}

interface Sample {
  readonly at: number;
  readonly epoch: number;
  readonly ms: number;
  readonly ok: boolean;
}

export class LatencyWindow {
  private readonly samples: Sample[] = [];

  constructor(
    private readonly windowMs: number,
    private readonly maxSamples = 20_000,
  ) {}

  record(at: number, epoch: number, ms: number, ok: boolean): void {
    this.samples.push({ at, epoch, ms, ok });
    if (this.samples.length > this.maxSamples) this.samples.splice(0, this.samples.length - this.maxSamples);
  }

  /** Over the window ending at `now`; only requests of `epoch` when given. */
  stats(now: number, epoch?: number): LatencyStats {
    this.expire(now);
    const mine = epoch === undefined ? this.samples : this.samples.filter((s) => s.epoch === epoch);
    const ok = mine.filter((s) => s.ok).map((s) => s.ms);
    ok.sort((a, b) => a - b);
    const q = (p: number): number | null =>
      ok.length === 0 ? null : ok[Math.min(ok.length - 1, Math.floor(p * ok.length))];
    const span = mine.length === 0 ? this.windowMs : Math.max(1000, Math.min(this.windowMs, now - mine[0].at));
    return {
      count: ok.length,
      failed: mine.length - ok.length,
      rps: (ok.length * 1000) / span,
      meanMs: ok.length === 0 ? null : ok.reduce((a, b) => a + b, 0) / ok.length,
      p50Ms: q(0.5),
      p99Ms: q(0.99),
    };
  }

  /**
   * The median latency of `epoch`'s requests answered in the last `spanMs` (failures left out), or
   * undefined when there were none: what the controller calibrates on (planner/calibration.ts).
   */
  recent(now: number, epoch: number, spanMs: number): { medianMs: number; count: number; spanMs: number } | undefined {
    const ms: number[] = [];
    for (let i = this.samples.length - 1; i >= 0 && this.samples[i].at >= now - spanMs; i--) {
      const x = this.samples[i];
      if (x.epoch === epoch && x.ok) ms.push(x.ms);
    }
    if (ms.length === 0) return undefined;
    ms.sort((a, b) => a - b);
    return { medianMs: ms[Math.floor(ms.length / 2)], count: ms.length, spanMs };
  }

  /**
   * Requests in flight on average over the last `spanMs` (Little's law: the summed latency of the requests
   * answered in the span, over the span). What the controller's latency-under-load objective needs.
   */
  concurrency(now: number, spanMs: number): number {
    let sum = 0;
    for (let i = this.samples.length - 1; i >= 0 && this.samples[i].at >= now - spanMs; i--) sum += this.samples[i].ms;
    return sum / spanMs;
  }

  private expire(now: number): void {
    let i = 0;
    while (i < this.samples.length && this.samples[i].at < now - this.windowMs) i++;
    if (i > 0) this.samples.splice(0, i);
  }
}
