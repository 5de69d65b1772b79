/**
 * Exact top-K plans by (latency, canonical order), by dynamic programming backwards over the tier chain,
 * one run per origin host. O(n x (sum over tier pairs of hosts x hosts) x K) per origin.
 * (Past 400 lines on purpose: one algorithm whose state layout, recurrence and K-best merge share invariants
 * that read best side by side.)
 *
 * States, for the chosen origin o:
 *   E(q, g, c)  host g at tier position q has just run its last block, c - 1 (c = 0: the device ran none);
 *               its list holds the K best ways to finish from here (hop onwards, or the return when c = n).
 *   S(q, g, b)  host g at tier q is about to start at block b; the K best ways to finish, its stage first.
 * E(q, g, c) = K-best over later tiers q' (no must-use tier skipped) and their hosts g' of
 *              hop(g -> g', bytes after c) + S(q', g', c).
 * S(q, g, b) = K-best over ends c in the stage window of (PE_g[c] + E(q, g, c)) - PS_g[b] (+ run overhead),
 *              PE/PS the prefix sums with the cut atoms added at the end and taken off at the start
 *              (prepare.ts): the window slides as b falls, and a two-stack queue keeps the K best of it in
 *              O(K) per step. A host with cut costs under a compute limit scans each start's ends instead
 *              (its allowed ends are no window, window.ts).
 * Ties are broken by the canonical order (steps compared lexicographically), which is suffix-compatible:
 * two suffixes from the same state keep their order when a common prefix is put in front. Costs are
 * integer atoms, so every sum here equals `evaluate`'s exactly, and so does the ranking.
 *
 * A bottleneck threshold `lambda` (every stage's compute and every link's busy time <= lambda) is a
 * per-stage and per-hop test, which is what the throughput search needs.
 *
 * Storage: S list items live in flat arrays indexed by `node * K + j`; an item is one stage (its node
 * gives tier and host, `sC` its end) and `sE` links it to the item of the stage after it, so a suffix's
 * canonical key is that chain. E lists hold (value, first S item of the suffix).
 */
import { transfers } from './cost.js';
import { KList, copyList, mergeLists } from './klist.js';
import { slotLayout, type Prepared, type Shape } from './prepare.js';
import { stageAtoms, stageWindows } from './window.js';

/** The result of one run: the K best plans from this origin, as shapes with their latency atoms. */
interface Ranked {
  readonly shape: Shape;
  readonly latency: number;
}

/**
 * Which scan a host with cut costs gets under a finite compute limit when K = 1: `min`, a running minimum
 * (the default), or `merge`, the general K-best merge every K uses. Both give the same answer bit for bit; the
 * switch exists so that the tests and the `controller` bench can compare them in one run.
 */
export const DP_SCAN: { k1: 'min' | 'merge' } = { k1: 'min' };

export class LatencyDP {
  private readonly p: Prepared;
  private readonly K: number;
  private readonly n: number;
  private readonly stride: number;
  /** Slot 0 is the origin; slots 1.. are (tier >= 1, allowed host), grouped by tier. */
  private readonly slotQ: number[];
  private readonly slotH: number[];
  private readonly slotsOfTier: number[][];
  private readonly eV: Float64Array;
  private readonly eS: Int32Array;
  private readonly eCnt: Int32Array;
  /** The K-th best value of each full E list (Infinity until full): the E phase's fast path. */
  private readonly eKth: Float64Array;
  private readonly sV: Float64Array;
  private readonly sC: Int32Array;
  private readonly sE: Int32Array;
  private readonly sCnt: Int32Array;
  private readonly lo: Int32Array;
  private readonly hi: Int32Array;
  // The sliding window's two-stack queue, and scratch lists.
  private readonly inC: Int32Array;
  private readonly outC: Int32Array;
  private readonly outAgg: KList[];
  private readonly inAgg: KList;
  private readonly tmpA: KList;
  private readonly tmpB: KList;
  private readonly tmpMerge: KList;
  private readonly tmpMerge2: KList;
  /** Node of (slot being processed, c = 0): `mergeInto` reads that slot's E lists. */
  private curBase = 0;
  private origin = -1;
  private readonly cmpKey = (a: number, b: number): number => this.compareSuffix(a, b);

  constructor(p: Prepared, K: number) {
    this.p = p;
    this.K = K;
    this.n = p.n;
    this.stride = p.n + 1;
    ({ q: this.slotQ, h: this.slotH, ofTier: this.slotsOfTier } = slotLayout(p));
    const nodes = this.slotQ.length * this.stride;
    this.eV = new Float64Array(nodes * K);
    this.eS = new Int32Array(nodes * K);
    this.eCnt = new Int32Array(nodes);
    this.eKth = new Float64Array(nodes);
    this.sV = new Float64Array(nodes * K);
    this.sC = new Int32Array(nodes * K);
    this.sE = new Int32Array(nodes * K);
    this.sCnt = new Int32Array(nodes);
    this.lo = new Int32Array(p.n);
    this.hi = new Int32Array(p.n);
    this.inC = new Int32Array(p.n + 1);
    this.outC = new Int32Array(p.n + 1);
    this.outAgg = Array.from({ length: p.n + 1 }, () => new KList(K));
    this.inAgg = new KList(K);
    this.tmpA = new KList(K);
    this.tmpB = new KList(K);
    this.tmpMerge = new KList(K);
    this.tmpMerge2 = new KList(K);
  }

  slots(): { q: readonly number[]; h: readonly number[]; ofTier: readonly (readonly number[])[] } {
    return { q: this.slotQ, h: this.slotH, ofTier: this.slotsOfTier };
  }

  /** After `run`: the best finish from the origin's step ending at c0, for Pareto. */
  bestDeviceEnd(c0: number): { v: number; suffix: number } | undefined {
    if (this.eCnt[c0] === 0) return undefined;
    return { v: this.eV[c0 * this.K], suffix: this.eS[c0 * this.K] };
  }

  /** After `run`: the best finish from E(slot, c), Infinity if none (branch and bound's bound). */
  bestE(slot: number, c: number): number {
    const node = slot * this.stride + c;
    return this.eCnt[node] === 0 ? Infinity : this.eV[node * this.K];
  }

  /**
   * Runs the DP for one origin under bottleneck threshold `lambda`; returns the K best plans from it.
   * origin = -1: bound mode for `originBound` (tiers >= 1 only, cheapest return over all origins).
   */
  run(origin: number, lambda = Infinity): Ranked[] {
    const p = this.p;
    const K = this.K;
    this.origin = origin;
    this.slotH[0] = origin;
    this.eCnt.fill(0);
    this.eKth.fill(Infinity);
    this.sCnt.fill(0);
    for (let q = p.T - 1; q >= (origin >= 0 ? 0 : 1); q--) {
      for (const slot of this.slotsOfTier[q]) {
        this.ePhase(slot, lambda);
        if (q > 0) this.sPhase(slot, lambda);
      }
    }
    if (origin < 0) return [];
    // Root: the origin's own step (0, o, c0): its stage [0, c0), or no stage (c0 = 0, raw input sent).
    const root = this.tmpA;
    root.n = 0;
    this.curBase = 0;
    if (p.deviceMayCompute) {
      const lim = Math.min(p.computeCap[0], lambda);
      stageWindows(p, 0, origin, lim, this.lo, this.hi);
      const PE = p.endPrefix[origin];
      for (let c = this.lo[0]; c <= this.hi[0]; c++) {
        if (PE[c] > lim) continue; // the stage [0, c) with its cut cost (window.ts)
        this.mergeInto(root, c, PE[c]);
      }
    }
    const cands: { v: number; c: number; e: number }[] = [];
    for (let i = 0; i < root.n; i++) cands.push({ v: root.w[i], c: root.c[i], e: root.e[i] });
    if (!p.mustUse[0]) {
      // c0 = 0 sorts before any c0 >= 1 on equal latency, as the canonical order says.
      for (let i = 0; i < this.eCnt[0]; i++) cands.push({ v: this.eV[i], c: 0, e: this.eS[i] });
    }
    cands.sort((a, b) => a.v - b.v || a.c - b.c || this.compareSuffix(a.e, b.e));
    return cands.slice(0, K).map((x) => ({ shape: this.shapeOf(x.c, x.e), latency: x.v }));
  }

  /** The plan whose origin step ends at c0 and continues with suffix s (an S item, -1 for none). */
  shapeOf(c0: number, s: number): Shape {
    const steps = [{ q: 0, h: this.origin, end: c0 }];
    for (; s >= 0; s = this.sE[s]) {
      const slot = Math.floor(s / this.K / this.stride);
      steps.push({ q: this.slotQ[slot], h: this.slotH[slot], end: this.sC[s] });
    }
    return { origin: this.origin, steps };
  }

  /**
   * Bound mode (after `run(-1, lambda)`): a lower bound on the latency of every plan from origin o. The
   * tiers >= 1 were solved once with the cheapest return over all origins; the origin's own stage and
   * first hop are exact, and the return's excess over the cheapest is bounded by its minimum over g.
   */
  originBound(o: number, lambda = Infinity): number {
    const p = this.p;
    const n = this.n;
    let best = Infinity;
    let delta = Infinity;
    for (let q = 1; q < p.T; q++) {
      for (const g of p.tierHosts[q]) {
        const cheapest = this.finishMin(g, lambda);
        if (cheapest < Infinity) delta = Math.min(delta, this.finish(g, o, lambda) - cheapest);
      }
    }
    const opts: number[] = [];
    if (!p.mustUse[0]) opts.push(0);
    if (p.deviceMayCompute) {
      const lim = Math.min(p.computeCap[0], lambda);
      stageWindows(p, 0, o, lim, this.lo, this.hi);
      for (let c = this.lo[0]; c <= this.hi[0]; c++) if (stageAtoms(p, o, 0, c) <= lim) opts.push(c);
    }
    const qEnd = Math.min(p.nextMust[0], p.T - 1);
    for (const c0 of opts) {
      const dev = c0 > 0 ? stageAtoms(p, o, 0, c0) : 0;
      if (c0 === n) {
        if (p.nextMust[0] === p.T) best = Math.min(best, dev);
        continue;
      }
      for (let q2 = 1; q2 <= qEnd; q2++) {
        for (const slot2 of this.slotsOfTier[q2]) {
          const g2 = this.slotH[slot2];
          const xf = transfers(this.p, o, g2);
          const node2 = slot2 * this.stride + c0;
          if (!xf || xf[c0] + p.hopOvh > lambda || this.sCnt[node2] === 0) continue;
          const v = dev + p.linkFixed[o * p.H + g2] + xf[c0] + this.sV[node2 * this.K] + delta;
          if (v < best) best = v;
        }
      }
    }
    return best;
  }

  /** Canonical order of two suffixes (S items; -1 is the empty suffix). */
  private compareSuffix(a: number, b: number): number {
    const per = this.K * this.stride;
    for (;;) {
      if (a === b) return 0;
      if (a < 0) return -1;
      if (b < 0) return 1;
      const sa = Math.floor(a / per);
      const sb = Math.floor(b / per);
      const d = this.slotQ[sa] - this.slotQ[sb] || this.slotH[sa] - this.slotH[sb] || this.sC[a] - this.sC[b];
      if (d !== 0) return d;
      a = this.sE[a];
      b = this.sE[b];
    }
  }

  /** Latency atoms of finishing on g (the return to `origin` under cleave); Infinity if not allowed. */
  private finish(g: number, origin: number, lambda: number): number {
    const p = this.p;
    if (!p.returns || g === origin) return 0;
    const i = g * p.H + origin;
    const k = p.retK[i];
    if (Number.isNaN(k) || p.outputBytes > p.uploadCap[p.hostTier[g]]) return Infinity;
    const xfer = Math.round(p.outputBytes * k);
    return xfer + p.hopOvh > lambda ? Infinity : p.retFixed[i] + xfer;
  }

  private finishMin(g: number, lambda: number): number {
    let best = Infinity;
    for (const o of this.p.tierHosts[0]) best = Math.min(best, this.finish(g, o, lambda));
    return best;
  }

  private ePhase(slot: number, lambda: number): void {
    const p = this.p;
    const K = this.K;
    const n = this.n;
    const stride = this.stride;
    const q = this.slotQ[slot];
    const g = this.slotH[slot];
    const { eV, eS, eCnt, eKth, sV, sCnt } = this;
    const hopOvh = p.hopOvh;
    const base = slot * stride;
    // Finish: the last block has run on g; the result returns to the origin (cleave).
    if (p.nextMust[q] === p.T) {
      const lat = this.origin >= 0 ? this.finish(g, this.origin, lambda) : this.finishMin(g, lambda);
      if (lat < Infinity) {
        eV[(base + n) * K] = lat;
        eS[(base + n) * K] = -1;
        eCnt[base + n] = 1;
        if (K === 1) eKth[base + n] = lat;
      }
    }
    const qEnd = Math.min(p.nextMust[q], p.T - 1);
    const cFrom = q === 0 ? 0 : 1;
    // Receivers likely to be good first (scored on a sample of boundaries), so that the K-best lists
    // fill with good entries early and most later pairs take the fast path. The order changes no result.
    const order: { slot2: number; xf: Float64Array; fixed: number; score: number }[] = [];
    const step = Math.max(1, Math.floor((n - cFrom) / 16));
    for (let q2 = q + 1; q2 <= qEnd; q2++) {
      for (const slot2 of this.slotsOfTier[q2]) {
        const g2 = this.slotH[slot2];
        const xf = transfers(this.p, g, g2);
        if (!xf) continue;
        const fixed = p.linkFixed[g * p.H + g2];
        let score = 0;
        for (let c = cFrom; c < n; c += step) {
          const node2 = slot2 * stride + c;
          score += sCnt[node2] > 0 ? Math.min(sV[node2 * K] + fixed + xf[c], 1e300) : 1e300;
        }
        order.push({ slot2, xf, fixed, score });
      }
    }
    order.sort((a, b) => a.score - b.score);
    for (const { slot2, xf, fixed } of order) {
      const base2 = slot2 * stride;
      for (let c = cFrom; c < n; c++) {
        const cnt2 = sCnt[base2 + c];
        if (cnt2 === 0) continue;
        const xfer = xf[c];
        const soff = (base2 + c) * K;
        const head = sV[soff] + fixed + xfer;
        const node = base + c;
        // Fast path: most pairs cannot beat the K-th best already held.
        if (head > eKth[node]) continue;
        if (head === Infinity || xfer + hopOvh > lambda) continue;
        const hop = fixed + xfer;
        const off = node * K;
        for (let j = 0; j < cnt2; j++) {
          const s = soff + j;
          const v = sV[s] + hop;
          let cnt = eCnt[node];
          if (cnt === K) {
            if ((v - eV[off + K - 1] || this.compareSuffix(s, eS[off + K - 1])) >= 0) break; // the rest is worse still
            cnt = K - 1;
          }
          let i = off + cnt;
          while (i > off && (v - eV[i - 1] || this.compareSuffix(s, eS[i - 1])) < 0) {
            eV[i] = eV[i - 1];
            eS[i] = eS[i - 1];
            i--;
          }
          eV[i] = v;
          eS[i] = s;
          eCnt[node] = cnt + 1;
          if (cnt + 1 === K) eKth[node] = eV[off + K - 1];
        }
      }
    }
  }

  private sPhase(slot: number, lambda: number): void {
    const p = this.p;
    const n = this.n;
    const q = this.slotQ[slot];
    const g = this.slotH[slot];
    // Stage [b, c) computes PE[c] - PS[b] + ovh: the end term goes with E(c), the start term with S(b).
    const PE = p.endPrefix[g];
    const PS = p.startPrefix[g];
    const ovh = p.stageOvh[g];
    const base = slot * this.stride;
    this.curBase = base;
    const { lo, hi, inC, outC, outAgg, inAgg } = this;
    const limit = Math.min(p.computeCap[q], lambda);
    stageWindows(p, q, g, limit, lo, hi);
    if (p.hasCut[g] && limit < Infinity) {
      // Cut costs make the allowed ends no window (window.ts): each start scans its ends, O(n) each.
      if (this.K === 1 && DP_SCAN.k1 === 'min') return this.scanMin(base, g, PE, PS, ovh, limit);
      for (let b = n - 1; b >= 0; b--) {
        if (lo[b] > hi[b]) continue;
        const sub = PS[b] - (b > 0 ? ovh : 0);
        const res = this.tmpB;
        res.n = 0;
        for (let c = lo[b]; c <= hi[b]; c++) {
          if (PE[c] - sub > limit) continue;
          this.mergeInto(res, c, PE[c]);
        }
        this.emitS(base + b, res, sub);
      }
      return;
    }
    const reqMin = p.reqMin[q];
    const from = p.reqMax[q] + 1;
    let inTop = 0;
    let outTop = 0;
    inAgg.n = 0;
    let next = n + 1; // the next end to enter the window is next - 1
    for (let b = n - 1; b >= 1; b--) {
      const l = Math.max(b + 1, from);
      while (next - 1 >= l) {
        const c = --next;
        if (this.eCnt[base + c] === 0) continue; // nothing finishes from there
        inC[inTop++] = c;
        this.mergeInto(inAgg, c, PE[c]);
      }
      // Drop the oldest ends (the largest c) beyond the window.
      for (;;) {
        const oldest = outTop > 0 ? outC[outTop - 1] : inTop > 0 ? inC[0] : -1;
        if (oldest < 0 || oldest <= hi[b]) break;
        if (outTop === 0) {
          // The in-stack reversed onto the out-stack, each entry aggregating itself and all newer ones.
          while (inTop > 0) {
            const c = inC[--inTop];
            const agg = outAgg[outTop];
            if (outTop > 0) copyList(outAgg[outTop - 1], agg);
            else agg.n = 0;
            this.mergeInto(agg, c, PE[c]);
            outC[outTop++] = c;
          }
          inAgg.n = 0;
        }
        outTop--;
      }
      if ((reqMin >= 0 && b > reqMin) || lo[b] > hi[b]) continue;
      let res = inAgg;
      if (outTop > 0) {
        res = this.tmpB;
        mergeLists(outAgg[outTop - 1], inAgg, res, this.K, this.cmpKey);
      }
      this.emitS(base + b, res, PS[b] - ovh);
    }
    // b = 0 (only after an origin that ran no block): no run overhead, its own window.
    if (lo[0] <= hi[0]) {
      const res = this.tmpB;
      res.n = 0;
      for (let c = lo[0]; c <= hi[0]; c++) this.mergeInto(res, c, PE[c]);
      this.emitS(base, res, PS[0]);
    }
  }

  /**
   * The cut-cost scan for K = 1. Every host with a profile has cut costs, and the latency-under-load search
   * (plan.ts, loadedBest) runs a dozen K = 1 DPs under finite thresholds each controller round: merging each
   * end's one-item list into a one-item result, for every start and end, made this scan most of a round
   * (measured: 50 % of the controller's step on MobileNetV2 over three hosts). The merge keeps the least
   * (w, c); so does this, in O(n) amortised plus a short tail per start.
   *
   * Start b allows end c when PE[c] - sub(b) <= limit. Since PE[c] <= P[c] + maxX and sub(b) >= P[b] - maxX -
   * ovh, every end with P[c] <= limit + P[b] - ovh - 2 maxX passes for sure: with b falling, those ends are a
   * window whose both edges only fall, and a deque keeps its least (w, c) (ends enter at the low edge, the
   * high edge drops the largest). The ends above it, whose P lies within 2 maxX of the limit, are tested one
   * by one. Costs are integer atoms (prepare.ts), so the bound is exact, not a rounding risk.
   */
  private scanMin(base: number, g: number, PE: Float64Array, PS: Float64Array, ovh: number, limit: number): void {
    const { lo, hi, eCnt, eV } = this;
    const n = this.n;
    const P = this.p.prefix[g];
    const maxX = this.p.maxCut[g];
    // The deque: ends by falling c from head to tail, w rising strictly (an end that enters drops every end of
    // larger c whose w is no smaller, so a tie goes to the smaller c): the head is the least (w, c).
    const dq = this.inC;
    let head = 0;
    let tail = 0;
    let next = n + 1; // the next end to enter is next - 1
    let sure = n; // ends <= sure pass for sure (before the cap by hi[b])
    for (let b = n - 1; b >= 1; b--) {
      if (lo[b] > hi[b]) {
        this.sCnt[base + b] = 0;
        continue;
      }
      const sub = PS[b] - ovh;
      const bound = limit + P[b] - ovh - 2 * maxX;
      while (sure >= 0 && P[sure] > bound) sure--;
      const top = Math.min(sure, hi[b]);
      while (next - 1 >= lo[b]) {
        const c = --next;
        if (eCnt[base + c] === 0) continue;
        const w = eV[base + c] + PE[c];
        while (tail > head && eV[base + dq[tail - 1]] + PE[dq[tail - 1]] >= w) tail--;
        dq[tail++] = c;
      }
      while (tail > head && dq[head] > top) head++;
      const fromDeque = tail > head ? dq[head] : -1;
      this.emitOne(base, b, PE, sub, this.leastEnd(base, PE, sub, limit, Math.max(lo[b], top + 1), hi[b], fromDeque));
    }
    // b = 0 (only after an origin that ran no block): no run overhead, its own window, each end tested.
    this.emitOne(base, 0, PE, PS[0], this.leastEnd(base, PE, PS[0], limit, lo[0], hi[0], -1));
  }

  /**
   * Of the ends c in [from, to] that a start with term `sub` allows under `limit` and that finish somewhere, the
   * one of least w = E(c) + PE[c], the smaller c on ties, if it beats `best` (an end below `from`, or -1);
   * else `best`.
   */
  private leastEnd(
    base: number,
    PE: Float64Array,
    sub: number,
    limit: number,
    from: number,
    to: number,
    best: number,
  ): number {
    const { eCnt, eV } = this;
    let bestW = best < 0 ? Infinity : eV[base + best] + PE[best];
    for (let c = from; c <= to; c++) {
      if (PE[c] - sub > limit || eCnt[base + c] === 0) continue;
      const w = eV[base + c] + PE[c];
      if (w < bestW) {
        bestW = w;
        best = c;
      }
    }
    return best;
  }

  /** S(start b) of a K = 1 DP: the stage ending at c (-1: none allowed) and the suffix E(c) holds. */
  private emitOne(base: number, b: number, PE: Float64Array, sub: number, c: number): void {
    const node = base + b;
    this.sCnt[node] = c < 0 ? 0 : 1;
    if (c < 0) return;
    this.sV[node] = this.eV[base + c] + PE[c] - sub;
    this.sC[node] = c;
    this.sE[node] = this.eS[base + c];
  }

  private emitS(node: number, res: KList, sub: number): void {
    const off = node * this.K;
    for (let i = 0; i < res.n; i++) {
      this.sV[off + i] = res.w[i] - sub;
      this.sC[off + i] = res.c[i];
      this.sE[off + i] = res.e[i];
    }
    this.sCnt[node] = res.n;
  }

  /** Merge E(current slot, c)'s list, each value + shift, into `into` (kept K-best). */
  private mergeInto(into: KList, c: number, shift: number): void {
    const K = this.K;
    const node = this.curBase + c;
    const cnt = this.eCnt[node];
    if (cnt === 0) return;
    const off = node * K;
    if (into.n === K && this.eV[off] + shift > into.w[K - 1]) return; // cannot enter a full list
    const a = this.tmpMerge;
    a.n = cnt;
    for (let i = 0; i < cnt; i++) {
      a.w[i] = this.eV[off + i] + shift;
      a.c[i] = c;
      a.e[i] = this.eS[off + i];
    }
    mergeLists(into, a, this.tmpMerge2, K, this.cmpKey);
    copyList(this.tmpMerge2, into);
  }
}
