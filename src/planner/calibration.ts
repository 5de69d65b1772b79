/**
 * Calibration from what the current plan delivers: when its requests take much longer than the live
 * estimates predict, the estimates are wrong about something, and the host at the plan's bottleneck stage is
 * taken to be slower than its slowdown says, by just enough that the plan's prediction meets what was
 * measured. The factor multiplies the host's slowdown for every plan the controller prices, fades with a
 * half-life, and is dropped when the host's own slowdown moves (its conditions changed: a new CPU quota,
 * load gone) so that a stale correction never outlives what caused it.
 *
 * Why: a host under a tight CPU quota spends it on what its profile never sees (receiving and sending
 * frames, its share of heartbeats and probes), so a short segment there costs far more than its blocks
 * (measured here: the first 61 blocks of MobileNetV2 on a 0.15-CPU edge predicted at 59 ms, took 95 ms a
 * request). The profile cannot know this, but one plan's requests show it within seconds. Pure: the caller
 * passes every timestamp.
 */
import type { Plan } from './types.js';

export const CALIBRATION_LIMITS = {
  /** Requests of the current plan, within the span, before its measured latency counts. */
  minRequests: 8,
  /** A correction never makes a host more than this many times slower than its slowdown says. */
  maxFactor: 4,
  /** A host whose slowdown moves by more than this ratio (either way) since it was corrected loses the correction. */
  resetRatio: 1.5,
} as const;

/** The current plan's requests over a recent span: their median end-to-end latency and how many. */
export interface Measured {
  readonly medianMs: number;
  readonly count: number;
  /** The span they were answered in, ending at the snapshot's `now`. */
  readonly spanMs: number;
}

interface Correction {
  readonly factor: number;
  /** The host's slowdown when it was corrected. */
  readonly base: number;
  readonly at: number;
}

/**
 * The factor g on the bottleneck stage's compute c that makes the plan's latency under load,
 * max(L + (g - 1) c, N g c), equal the measured R (> the predicted); null when the bottleneck is a hop, not
 * a stage. Both branches grow with g, so the answer is the smaller of the two solutions.
 */
export function bottleneckFactor(
  p: Plan,
  concurrency: number,
  measuredMs: number,
): { host: string; factor: number } | null {
  let stage: Plan['stages'][number] | undefined;
  for (const s of p.stages) if (!stage || s.computeMs > stage.computeMs) stage = s;
  if (!stage || !(stage.computeMs > 0) || stage.computeMs < p.bottleneckMs - 1e-6) return null;
  const c = stage.computeMs;
  const n = Math.max(1, concurrency);
  const g = Math.min(1 + (measuredMs - p.latencyMs) / c, measuredMs / (n * c));
  return g > 1 ? { host: stage.host, factor: g } : null;
}

export class Calibration {
  readonly #by = new Map<string, Correction>();
  /** The current plan's predicted latency in recent rounds, whose highest `highest` compares with. */
  #history: { at: number; route: string; ms: number }[] = [];

  /** Each host's factor at `now` (1 where none): faded by the half-life, dropped where the slowdown moved. */
  factors(slowdown: Readonly<Record<string, number>>, now: number, halfLifeMs: number): Record<string, number> {
    const out: Record<string, number> = {};
    for (const host of [...this.#by.keys()]) {
      const f = this.#factorOf(host, slowdown[host] ?? 1, now, halfLifeMs);
      if (f !== 1) out[host] = f;
    }
    return out;
  }

  #factorOf(host: string, base: number, now: number, halfLifeMs: number): number {
    const c = this.#by.get(host);
    if (!c) return 1;
    const moved = Math.max(base / c.base, c.base / base) > CALIBRATION_LIMITS.resetRatio;
    const f = halfLifeMs > 0 ? 1 + (c.factor - 1) * 0.5 ** (Math.max(0, now - c.at) / halfLifeMs) : c.factor;
    if (!moved && f >= 1.01) return f;
    this.#by.delete(host);
    return 1;
  }

  /**
   * Records this round's prediction of the current plan and returns the highest of the last `spanMs`, or
   * null before its rounds cover the span. Measured requests are compared with the highest: while an
   * estimate is still catching up with a change (a link just slowed) the prediction rises within the span,
   * and requests slowed by that change are not taken for a host slower than thought.
   */
  highest(route: string, predictedMs: number, now: number, spanMs: number): number | null {
    this.#history = this.#history.filter((h) => h.route === route && h.at >= now - 2 * spanMs);
    this.#history.push({ at: now, route, ms: predictedMs });
    if (this.#history[0].at > now - spanMs) return null;
    let top = predictedMs;
    for (const h of this.#history) if (h.at >= now - spanMs) top = Math.max(top, h.ms);
    return top;
  }

  /** `host` (whose slowdown is `base` now) is `factor` times slower than its current correction says. */
  learn(host: string, factor: number, base: number, now: number, halfLifeMs: number): number {
    const cur = this.#factorOf(host, base, now, halfLifeMs);
    const f = Math.min(CALIBRATION_LIMITS.maxFactor, cur * factor);
    this.#by.set(host, { factor: f, base, at: now });
    this.#history = [];
    return f;
  }

  clear(): void {
    this.#by.clear();
    this.#history = [];
  }
}
