/**
 * The smallest bottleneck over all plans from one origin, and the smallest bottleneck above a threshold,
 * by min-max dynamic programming over the same states as the latency DP (dp.ts).
 *
 * A stage's term is D(c) = P[c] - P[b] (+ run overhead), nondecreasing in its end c, so
 *   min over c in [lo, hi] of max(D(c), E[c]) = min over x of max(D(x), min E[lo..x]),
 * a nondecreasing and a nonincreasing function of x whose crossing is found by binary search with a
 * sparse-table range minimum: O(log n) per start instead of O(n).
 *
 * A host with cut costs (cleave's `cutMsPerByte`) has a stage term PE[c] - PS[b] (+ run overhead) that is
 * not monotone in c; its starts scan their ends instead, O(n) each.
 *
 * `above(theta)` carries one bit, "some stage or link already exceeds theta", to find the smallest
 * bottleneck strictly above theta: the next level the throughput search needs.
 */
import { transfers } from './cost.js';
import { slotLayout, type Prepared } from './prepare.js';
import { stageWindows } from './window.js';

class RangeMin {
  private levels: Float64Array[] = [];
  private readonly lg: Uint8Array;
  constructor(size: number) {
    this.lg = new Uint8Array(size + 1);
    for (let i = 2; i <= size; i++) this.lg[i] = this.lg[i >> 1] + 1;
    for (let k = 0; 1 << k <= size; k++) this.levels.push(new Float64Array(size));
  }
  build(a: Float64Array, off: number, size: number): void {
    const L0 = this.levels[0];
    for (let i = 0; i < size; i++) L0[i] = a[off + i];
    for (let k = 1; 1 << k <= size; k++) {
      const prev = this.levels[k - 1];
      const cur = this.levels[k];
      const half = 1 << (k - 1);
      for (let i = 0; i + (1 << k) <= size; i++) cur[i] = Math.min(prev[i], prev[i + half]);
    }
  }
  /** min over [l, r], l <= r. */
  min(l: number, r: number): number {
    const k = this.lg[r - l + 1];
    const L = this.levels[k];
    return Math.min(L[l], L[r - (1 << k) + 1]);
  }
}

export class MinMaxDP {
  private readonly p: Prepared;
  private readonly n: number;
  private readonly stride: number;
  private readonly slotQ: number[];
  private readonly slotH: number[];
  private readonly slotsOfTier: number[][];
  private readonly E0: Float64Array;
  private readonly S0: Float64Array;
  private readonly E1: Float64Array;
  private readonly S1: Float64Array;
  private readonly lo: Int32Array;
  private readonly hi: Int32Array;
  private readonly rmq0: RangeMin;
  private readonly rmq1: RangeMin;
  private origin = -1;

  constructor(p: Prepared) {
    this.p = p;
    this.n = p.n;
    this.stride = p.n + 1;
    ({ q: this.slotQ, h: this.slotH, ofTier: this.slotsOfTier } = slotLayout(p));
    const nodes = this.slotQ.length * this.stride;
    this.E0 = new Float64Array(nodes);
    this.S0 = new Float64Array(nodes);
    this.E1 = new Float64Array(nodes);
    this.S1 = new Float64Array(nodes);
    this.lo = new Int32Array(p.n);
    this.hi = new Int32Array(p.n);
    this.rmq0 = new RangeMin(p.n + 1);
    this.rmq1 = new RangeMin(p.n + 1);
  }

  /** Best (smallest) E0 value at (slot, c), for branch-and-bound bounds. Valid after `run`. */
  bestE(slot: number, c: number): number {
    return this.E0[slot * this.stride + c];
  }

  /** The smallest bottleneck (atoms) of any plan from `origin`, Infinity if none. */
  run(origin: number): number {
    this.origin = origin;
    this.slotH[0] = origin;
    this.pass(-1);
    return this.root(-1);
  }

  /**
   * Lower bounds on `run(o)` for every origin at the cost of about one run: the tiers >= 1 are solved
   * once with the least return busy time over all origins, then each origin's own step exactly.
   * Leaves the instance in no usable state for `above` (call `run` or `restore` first).
   */
  originBounds(origins: readonly number[]): Map<number, number> {
    this.origin = -1;
    this.pass(-1);
    const out = new Map<number, number>();
    for (const o of origins) {
      this.origin = o;
      this.slotH[0] = o;
      this.E0.fill(Infinity, 0, this.stride);
      this.ePhase(0, -1);
      out.set(o, this.root(-1));
    }
    return out;
  }

  /** The plain pass's tables after `run(o)`, to return to that origin later without recomputing. */
  snapshot(): { origin: number; E0: Float64Array; S0: Float64Array } {
    return { origin: this.origin, E0: this.E0.slice(), S0: this.S0.slice() };
  }

  restore(s: { origin: number; E0: Float64Array; S0: Float64Array }): void {
    this.origin = s.origin;
    this.slotH[0] = s.origin;
    this.E0.set(s.E0);
    this.S0.set(s.S0);
  }

  /** The smallest bottleneck strictly above `theta` from the origin of the last `run`, Infinity if none. */
  above(theta: number): number {
    this.pass(theta);
    return this.root(theta);
  }

  /** theta < 0: the plain pass (E0/S0); else the flagged pass (E1/S1), which reads E0/S0. */
  private pass(theta: number): void {
    const p = this.p;
    const flagged = theta >= 0;
    const E = flagged ? this.E1 : this.E0;
    const S = flagged ? this.S1 : this.S0;
    E.fill(Infinity);
    S.fill(Infinity);
    for (let q = p.T - 1; q >= (this.origin >= 0 ? 0 : 1); q--) {
      for (const slot of this.slotsOfTier[q]) {
        this.ePhase(slot, theta);
        if (q > 0) this.sPhase(slot, theta);
      }
    }
  }

  /** Busy atoms of the return from g to origin o (0 when none is sent), Infinity if not allowed. */
  private finishBusy(g: number, o: number): number {
    const p = this.p;
    if (!p.returns || g === o) return 0;
    const k = p.retK[g * p.H + o];
    if (Number.isNaN(k) || p.outputBytes > p.uploadCap[p.hostTier[g]]) return Infinity;
    return Math.round(p.outputBytes * k) + p.hopOvh;
  }

  private ePhase(slot: number, theta: number): void {
    const p = this.p;
    const n = this.n;
    const flagged = theta >= 0;
    const E = flagged ? this.E1 : this.E0;
    const q = this.slotQ[slot];
    const g = this.slotH[slot];
    const base = slot * this.stride;
    if (p.nextMust[q] === p.T) {
      let busy = Infinity;
      if (this.origin >= 0) busy = this.finishBusy(g, this.origin);
      else for (const o of p.tierHosts[0]) busy = Math.min(busy, this.finishBusy(g, o));
      if (busy < Infinity && (!flagged || busy > theta)) E[base + n] = busy;
    }
    const qEnd = Math.min(p.nextMust[q], p.T - 1);
    const cFrom = q === 0 ? 0 : 1;
    const hopOvh = p.hopOvh;
    const { S0, S1 } = this;
    for (let q2 = q + 1; q2 <= qEnd; q2++) {
      for (const slot2 of this.slotsOfTier[q2]) {
        const xf = transfers(p, g, this.slotH[slot2]);
        if (!xf) continue;
        const base2 = slot2 * this.stride;
        for (let c = cFrom; c < n; c++) {
          const e = E[base + c];
          if (S0[base2 + c] >= e) continue; // cannot improve (S1 >= S0)
          const busy = xf[c] + hopOvh;
          if (busy >= e) continue;
          const rest = !flagged || busy > theta ? S0[base2 + c] : S1[base2 + c];
          const v = busy > rest ? busy : rest;
          if (v < e) E[base + c] = v;
        }
      }
    }
  }

  private sPhase(slot: number, theta: number): void {
    const p = this.p;
    const n = this.n;
    const flagged = theta >= 0;
    const q = this.slotQ[slot];
    const g = this.slotH[slot];
    const base = slot * this.stride;
    const PE = p.endPrefix[g];
    const PS = p.startPrefix[g];
    const cap = p.computeCap[q];
    stageWindows(p, q, g, cap, this.lo, this.hi);
    const cut = p.hasCut[g] === 1;
    if (!cut) {
      this.rmq0.build(this.E0, base, n + 1);
      if (flagged) this.rmq1.build(this.E1, base, n + 1);
    }
    const S = flagged ? this.S1 : this.S0;
    for (let b = 0; b < n; b++) {
      const lo = this.lo[b];
      const hi = this.hi[b];
      if (lo > hi) continue;
      const sub = PS[b] - (b > 0 ? p.stageOvh[g] : 0);
      S[base + b] = cut
        ? this.stageScan(PE, sub, base, lo, hi, cap, theta, flagged)
        : this.stageMin(PE, sub, lo, hi, theta, flagged);
    }
  }

  /**
   * `stageMin` for a host with cut costs, whose stage term PE[c] - sub is not monotone in c: every end
   * scanned (O(n) per start), each tested against the compute cap (the window is a superset, window.ts).
   */
  private stageScan(
    PE: Float64Array,
    sub: number,
    base: number,
    lo: number,
    hi: number,
    cap: number,
    theta: number,
    flagged: boolean,
  ): number {
    const { E0, E1 } = this;
    let best = Infinity;
    for (let c = lo; c <= hi; c++) {
      const d = PE[c] - sub;
      if (d > cap || d >= best) continue;
      const rest = !flagged || d > theta ? E0[base + c] : E1[base + c];
      const v = d > rest ? d : rest;
      if (v < best) best = v;
    }
    return best;
  }

  /** min over stage ends c in [lo, hi] of max(P[c] - sub, rest(c)), flagged or not. */
  private stageMin(P: Float64Array, sub: number, lo: number, hi: number, theta: number, flagged: boolean): number {
    if (!flagged) return windowMinMax(P, sub, lo, hi, this.rmq0);
    let best = windowMinMax(P, sub, lo, hi, this.rmq1);
    // Ends where the stage itself exceeds theta: any completion will do.
    let a = lo;
    let b = hi + 1;
    while (a < b) {
      const m = (a + b) >> 1;
      if (P[m] - sub > theta) b = m;
      else a = m + 1;
    }
    if (a <= hi) best = Math.min(best, windowMinMax(P, sub, a, hi, this.rmq0));
    return best;
  }

  private root(theta: number): number {
    const p = this.p;
    const flagged = theta >= 0;
    let best = Infinity;
    if (p.deviceMayCompute) {
      stageWindows(p, 0, this.origin, p.computeCap[0], this.lo, this.hi);
      const lo = this.lo[0];
      const hi = this.hi[0];
      if (lo <= hi && p.hasCut[this.origin]) {
        best = this.stageScan(p.endPrefix[this.origin], 0, 0, lo, hi, p.computeCap[0], theta, flagged);
      } else if (lo <= hi) {
        this.rmq0.build(this.E0, 0, this.n + 1);
        if (flagged) this.rmq1.build(this.E1, 0, this.n + 1);
        best = this.stageMin(p.prefix[this.origin], 0, lo, hi, theta, flagged);
      }
    }
    if (!p.mustUse[0]) best = Math.min(best, flagged ? this.E1[0] : this.E0[0]);
    return best;
  }
}

function windowMinMax(P: Float64Array, sub: number, lo: number, hi: number, rmq: RangeMin): number {
  // Smallest x in [lo, hi] with D(x) >= min E[lo..x]; the optimum is at x or x - 1.
  let a = lo;
  let b = hi + 1;
  while (a < b) {
    const m = (a + b) >> 1;
    if (P[m] - sub >= rmq.min(lo, m)) b = m;
    else a = m + 1;
  }
  let best = Infinity;
  if (a <= hi) best = P[a] - sub;
  if (a - 1 >= lo) best = Math.min(best, rmq.min(lo, a - 1));
  return best;
}
