/**
 * Which stages host g may run at tier q: for each start boundary b, the end boundaries c form one range
 * [lo[b], hi[b]] (empty when lo > hi). Every per-stage constraint narrows it: blocks that must run on the
 * tier (b <= first, c > last), blocks that must not (c <= the next forbidden block), the host's weight cap,
 * and the tier's compute cap (or a bottleneck threshold). For b >= 1 both ends only move down as b moves
 * down, which is what lets the searches slide one window over all b in O(n).
 *
 * The compute limit is applied to the blocks and the run overhead only. A host with cut costs
 * (`p.hasCut[g]`, cleave's `cutMsPerByte`) adds cut[b] + cut[c] >= 0, not monotone in c, so its window is
 * then a superset of the allowed ends whenever the limit is finite: callers test each end with
 * `stageAtoms(...) <= limit` (exact either way, as for a host without cut costs the test always holds).
 */
import type { Prepared } from './prepare.js';

export function stageWindows(p: Prepared, q: number, g: number, limit: number, lo: Int32Array, hi: Int32Array): void {
  const n = p.n;
  const P = p.prefix[g];
  const W = p.weightPrefix;
  const wcap = p.weightCap[g];
  const nf = p.nextForbidden[q];
  const ovh = p.stageOvh[g];
  const reqMin = p.reqMin[q];
  const from = p.reqMax[q] + 1;
  let cw = n;
  let ct = n;
  for (let b = n - 1; b >= 0; b--) {
    while (cw > b && W[cw] - W[b] > wcap) cw--;
    let t: number;
    if (b > 0) {
      while (ct > b && P[ct] - P[b] + ovh > limit) ct--;
      t = ct;
    } else {
      // Block 0's stage pays no run overhead, so its end is found afresh.
      t = n;
      while (t > 0 && P[t] - P[0] > limit) t--;
    }
    lo[b] = reqMin >= 0 && b > reqMin ? n + 1 : Math.max(b + 1, from);
    hi[b] = Math.min(nf[b], cw, t);
  }
}

/** Compute atoms of stage [b, c) on host g: its blocks, the run overhead when b > 0, and its cut costs. */
export function stageAtoms(p: Prepared, g: number, b: number, c: number): number {
  return p.endPrefix[g][c] - p.startPrefix[g][b] + (b > 0 ? p.stageOvh[g] : 0);
}
