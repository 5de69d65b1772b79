/**
 * A host's slowdown by the work it carries. Under a CPU quota a host's segment runs are slower the more of
 * the model it runs: a short segment fits in a period's quota and often runs at full speed, a long one runs
 * out of it and waits, and the host's own overhead (frames in and out, heartbeats, probes) takes its share
 * of the same quota. One figure per host, taken from the segment it ran last, prices every other split on it
 * wrongly: measured here (`npm run bench -- adapt`, the edge at 0.15 CPU), the edge ran the whole of
 * MobileNetV2 at 15.4x its profile and blocks 34-157 at 6.7x, and the controller, pricing the whole model at
 * 6.7x, moved it all back onto the edge, where it took 140 ms against the 72 ms of the best plan.
 *
 * So the live state keeps, per host and for its current quota, what each segment it ran lately was observed
 * at (its profiled work and the ratio), and the controller prices a plan's stage on a host at the figure
 * observed for about that much work there. Pure.
 */
import { segmentWorkMs } from './estimate.js';
import type { CurrentPlan, LiveSnapshot, WorkSlowdown } from './live-input.js';

export const WORK_SLOWDOWN_LIMITS = {
  /** The least or the most work observed stands for work within this ratio of it beyond. */
  nearRatio: 1.25,
  /** Factors of one plan's hosts closer than this ratio to those it was searched with are taken as settled. */
  settledRatio: 1.03,
  /** Searches a round runs at most to settle the factors of its best plan. */
  maxSearches: 4,
} as const;

/**
 * The factor for `workMs` of work on a host observed at `points`. Between two observations, their factors
 * interpolated on the log of the work (the host's one figure, `fallback`, comes from whatever it ran last and
 * prices nothing in between: measured, the 0.15-CPU edge's one figure fell to 6.7x while it ran one block,
 * and 141 of MobileNetV2's 157 blocks, priced at that, went back onto it at 20x); within `nearRatio` of the
 * least or the most work observed, that observation; past them, `fallback`, but no slower than the least
 * work and no faster than the most work was observed at (more work on a host never makes its runs faster).
 */
export function factorAt(points: readonly WorkSlowdown[], workMs: number, fallback: number): number {
  const pts = points.filter((p) => p.workMs > 0 && p.factor > 0);
  if (!(workMs > 0) || pts.length === 0) return fallback;
  let below: WorkSlowdown | null = null;
  let above: WorkSlowdown | null = null;
  for (const p of pts) {
    if (p.workMs <= workMs && (!below || p.workMs > below.workMs)) below = p;
    if (p.workMs >= workMs && (!above || p.workMs < above.workMs)) above = p;
  }
  if (below && above) {
    if (above.workMs === below.workMs) return above.factor;
    const t = Math.log(workMs / below.workMs) / Math.log(above.workMs / below.workMs);
    return below.factor + t * (above.factor - below.factor);
  }
  const near = Math.log(WORK_SLOWDOWN_LIMITS.nearRatio);
  if (below) return Math.log(workMs / below.workMs) <= near ? below.factor : Math.max(fallback, below.factor);
  const a = above as WorkSlowdown;
  return Math.log(a.workMs / workMs) <= near ? a.factor : Math.min(fallback, a.factor);
}

/** The profiled work (ms) each host carries in `stages`: its blocks, plus a run's overhead for a stage after block 0. */
export function workByHost(input: LiveSnapshot['input'], stages: CurrentPlan['stages']): Map<string, number> {
  const out = new Map<string, number>();
  for (const st of stages) {
    const h = input.hosts.find((x) => x.name === st.host);
    if (!h) continue;
    out.set(st.host, (out.get(st.host) ?? 0) + segmentWorkMs(h.blockMs, st.start, st.end, h.stageOverheadMs));
  }
  return out;
}

/**
 * The slowdowns to price `stages` with: for each host the plan gives work, the factor observed for that
 * much work (times `scale`, the host's calibration), in place of the snapshot's one figure (which already
 * carries `scale`); the others as in the snapshot. Returns the snapshot's own record when nothing changes.
 */
export function slowdownsFor(
  s: LiveSnapshot,
  stages: CurrentPlan['stages'],
  scale: Readonly<Record<string, number>>,
): Readonly<Record<string, number>> {
  const curves = s.slowdownByWork;
  if (!curves) return s.slowdown;
  let out: Record<string, number> | null = null;
  for (const [host, work] of workByHost(s.input, stages)) {
    const pts = curves[host];
    if (!pts || pts.length === 0) continue;
    const k = scale[host] ?? 1;
    const now = s.slowdown[host] ?? 1;
    const f = factorAt(pts, work, now / k) * k;
    if (Math.abs(Math.log(f / now)) < 1e-9) continue;
    out ??= { ...s.slowdown };
    out[host] = f;
  }
  return out ?? s.slowdown;
}

/** Whether `a` and `b` agree, within `settledRatio`, on every host `stages` gives work. */
export function settled(
  a: Readonly<Record<string, number>>,
  b: Readonly<Record<string, number>>,
  stages: CurrentPlan['stages'],
): boolean {
  return stages.every(
    (st) => Math.abs(Math.log((a[st.host] ?? 1) / (b[st.host] ?? 1))) <= Math.log(WORK_SLOWDOWN_LIMITS.settledRatio),
  );
}
