/**
 * Exact top-K plans by (latency, canonical order), by dynamic programming backwards over the tier chain,
 * one run per origin host. O(n x (sum over tier pairs of hosts x hosts) x K) per origin.
 *
 * States, for the chosen origin o:
 *   E(q, g, c)  host g at tier position q has just run its last block, c - 1 (c = 0: the device ran none);
 *               its list holds the K best ways to finish from here (hop onwards, or the return when c = n).
 *   S(q, g, b)  host g at tier q is about to start at block b; the K best ways to finish, its stage first.
 * E(q, g, c) = K-best over later tiers q' (no must-use tier skipped) and their hosts g' of
 *              hop(g -> g', bytes after c) + S(q', g', c).
 * S(q, g, b) = K-best over ends c in the stage window of (P_g[c] + E(q, g, c)) - P_g[b] (+ run overhead):
 *              the window slides as b falls, and a two-stack queue keeps the K best of it in O(K) per step.
 * Ties are broken by the canonical order (steps compared lexicographically), which is suffix-compatible:
 * two suffixes from the same state keep their order when a common prefix is put in front. Costs are
 * integer atoms, so every sum here equals `evaluate`'s exactly, and so does the ranking.
 *
 * A bottleneck threshold `lambda` (every stage's compute and every link's busy time <= lambda) is a
 * per-stage and per-hop test, which is what the throughput search needs.
 */
import type { Prepared, Shape } from './prepare.js';
import { stageWindows } from './window.js';

/** Entries: suffixes of plans. E-entries have q = -1 and point to their S-entry; S-entries to an E-entry. */
class Pool {
  v = new Float64Array(1024);
  q = new Int32Array(1024);
  h = new Int32Array(1024);
  c = new Int32Array(1024);
  nx = new Int32Array(1024);
  size = 0;

  alloc(v: number, q: number, h: number, c: number, nx: number): number {
    if (this.size === this.v.length) this.grow();
    const i = this.size++;
    this.v[i] = v;
    this.q[i] = q;
    this.h[i] = h;
    this.c[i] = c;
    this.nx[i] = nx;
    return i;
  }

  private grow(): void {
    const cap = this.v.length * 2;
    const f = (a: Float64Array): Float64Array => { const b = new Float64Array(cap); b.set(a); return b; };
    const g = (a: Int32Array): Int32Array => { const b = new Int32Array(cap); b.set(a); return b; };
    this.v = f(this.v);
    this.q = g(this.q);
    this.h = g(this.h);
    this.c = g(this.c);
    this.nx = g(this.nx);
  }

  /** Canonical order of two suffixes (entry indices; -1 is the empty suffix). */
  cmpKey(a: number, b: number): number {
    const { q, h, c, nx } = this;
    for (;;) {
      while (a >= 0 && q[a] < 0) a = nx[a];
      while (b >= 0 && q[b] < 0) b = nx[b];
      if (a === b) return 0;
      if (a < 0) return -1;
      if (b < 0) return 1;
      const d = q[a] - q[b] || h[a] - h[b] || c[a] - c[b];
      if (d !== 0) return d;
      a = nx[a];
      b = nx[b];
    }
  }
}

/** A K-best list of window candidates (w, c, e): value, stage end, and E-entry. */
class KList {
  w: Float64Array;
  c: Int32Array;
  e: Int32Array;
  n = 0;
  constructor(K: number) {
    this.w = new Float64Array(K);
    this.c = new Int32Array(K);
    this.e = new Int32Array(K);
  }
}

/** The result of one run: the K best plans from this origin, as shapes with their latency atoms. */
export interface Ranked {
  readonly shape: Shape;
  readonly latency: number;
}

export class LatencyDP {
  private readonly p: Prepared;
  private readonly K: number;
  private readonly n: number;
  private readonly stride: number;
  /** Slot 0 is the origin; slots 1.. are (tier >= 1, allowed host), grouped by tier. */
  private readonly slotQ: number[] = [];
  private readonly slotH: number[] = [];
  private readonly slotsOfTier: number[][];
  private pool = new Pool();
  private readonly eList: Int32Array;
  private readonly eCnt: Int32Array;
  private readonly sList: Int32Array;
  private readonly sCnt: Int32Array;
  private readonly lo: Int32Array;
  private readonly hi: Int32Array;
  // Two-stack queue for the sliding window.
  private readonly inC: Int32Array;
  private readonly outC: Int32Array;
  private readonly outAgg: KList[];
  private readonly inAgg: KList;
  private readonly tmpA: KList;
  private readonly tmpB: KList;
  private readonly tmpMerge: KList;
  private readonly tmpMerge2: KList;
  /** Node index of (current slot, c = 0): `mergeInto` reads E lists of that slot. */
  private curBase = 0;
  private origin = -1;

  constructor(p: Prepared, K: number) {
    this.p = p;
    this.K = K;
    this.n = p.n;
    this.stride = p.n + 1;
    this.slotsOfTier = p.tiers.map(() => []);
    this.slotQ.push(0);
    this.slotH.push(-1);
    this.slotsOfTier[0].push(0);
    for (let q = 1; q < p.T; q++) {
      for (const h of p.tierHosts[q]) {
        this.slotsOfTier[q].push(this.slotQ.length);
        this.slotQ.push(q);
        this.slotH.push(h);
      }
    }
    const nodes = this.slotQ.length * this.stride;
    this.eList = new Int32Array(nodes * K);
    this.eCnt = new Int32Array(nodes);
    this.sList = new Int32Array(nodes * K);
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

  /** The best value of E(origin step) at boundary c0 (Infinity if none), after `run`: for Pareto. */
  bestDeviceEnd(c0: number): { v: number; entry: number } | undefined {
    const node = c0;
    if (this.eCnt[node] === 0) return undefined;
    const x = this.eList[node * this.K];
    return { v: this.pool.v[x], entry: x };
  }

  /** Best E value at (slot, c) for branch and bound lower bounds. */
  bestE(slot: number, c: number): number {
    const node = slot * this.stride + c;
    return this.eCnt[node] === 0 ? Infinity : this.pool.v[this.eList[node * this.K]];
  }

  slots(): { q: readonly number[]; h: readonly number[]; ofTier: readonly (readonly number[])[] } {
    return { q: this.slotQ, h: this.slotH, ofTier: this.slotsOfTier };
  }

  /** Runs the DP for one origin under bottleneck threshold `lambda`; returns the K best plans from it. */
  run(origin: number, lambda = Infinity): Ranked[] {
    const p = this.p;
    const K = this.K;
    const n = this.n;
    this.origin = origin;
    this.slotH[0] = origin;
    this.pool.size = 0;
    this.eCnt.fill(0);
    this.sCnt.fill(0);
    for (let q = p.T - 1; q >= 0; q--) {
      for (const slot of this.slotsOfTier[q]) {
        this.ePhase(slot, lambda);
        if (q === 0) break;
        this.sPhase(slot, lambda);
      }
    }
    // Root: the origin's own step (0, o, c0): its stage [0, c0), or no stage (c0 = 0, raw input sent).
    const root = this.tmpA;
    root.n = 0;
    this.curBase = 0;
    if (p.deviceMayCompute) {
      stageWindows(p, 0, origin, Math.min(p.computeCap[0], lambda), this.lo, this.hi);
      const P = p.prefix[origin];
      for (let c = this.lo[0]; c <= this.hi[0]; c++) this.mergeElem(root, c, P[c]);
    }
    const out: Ranked[] = [];
    const pool = this.pool;
    const cands: { v: number; c: number; e: number }[] = [];
    for (let i = 0; i < root.n; i++) cands.push({ v: root.w[i], c: root.c[i], e: root.e[i] });
    if (!p.mustUse[0]) {
      // c0 = 0 sorts before any c0 >= 1 on equal latency, as the canonical order says.
      const cnt = this.eCnt[0];
      for (let i = 0; i < cnt; i++) {
        const e = this.eList[i];
        cands.push({ v: pool.v[e], c: 0, e });
      }
    }
    cands.sort((a, b) => a.v - b.v || a.c - b.c || pool.cmpKey(a.e, b.e));
    for (const x of cands.slice(0, K)) out.push({ shape: this.shapeOf(x.c, x.e), latency: x.v });
    return out;
  }

  /** The shape of the plan whose origin step ends at c0 and continues with E-entry e. */
  shapeOf(c0: number, e: number): Shape {
    const pool = this.pool;
    const steps = [{ q: 0, h: this.origin, end: c0 }];
    let s = pool.nx[e];
    while (s >= 0) {
      steps.push({ q: pool.q[s], h: pool.h[s], end: pool.c[s] });
      s = pool.nx[pool.nx[s]];
    }
    return { origin: this.origin, steps };
  }

  private ePhase(slot: number, lambda: number): void {
    const p = this.p;
    const K = this.K;
    const n = this.n;
    const q = this.slotQ[slot];
    const g = this.slotH[slot];
    const pool = this.pool;
    const base = slot * this.stride;
    // Finish: the last block has run on g; the result returns to the origin (cleave).
    if (p.nextMust[q] === p.T) {
      let ok = true;
      let lat = 0;
      if (p.returns && g !== this.origin) {
        const i = g * p.H + this.origin;
        const k = p.retK[i];
        if (Number.isNaN(k)) ok = false;
        else {
          const xfer = Math.round(p.outputBytes * k);
          lat = p.retFixed[i] + xfer;
          if (xfer + p.hopOvh > lambda || p.outputBytes > p.uploadCap[q]) ok = false;
        }
      }
      if (ok) {
        this.eList[(base + n) * K] = pool.alloc(lat, -1, 0, 0, -1);
        this.eCnt[base + n] = 1;
      }
    }
    const qEnd = Math.min(p.nextMust[q], p.T - 1);
    const cFrom = q === 0 ? 0 : 1;
    const cap = p.uploadCap[q];
    for (let q2 = q + 1; q2 <= qEnd; q2++) {
      for (const slot2 of this.slotsOfTier[q2]) {
        const g2 = this.slotH[slot2];
        const li = g * p.H + g2;
        const k = p.linkK[li];
        if (Number.isNaN(k)) continue;
        const fixed = p.linkFixed[li];
        const base2 = slot2 * this.stride;
        for (let c = cFrom; c < n; c++) {
          const cnt2 = this.sCnt[base2 + c];
          if (cnt2 === 0) continue;
          const bytes = p.bytesOut[c];
          if (bytes > cap) continue;
          const xfer = Math.round(bytes * k);
          if (xfer + p.hopOvh > lambda) continue;
          const hop = fixed + xfer;
          const node = base + c;
          const off = node * K;
          for (let j = 0; j < cnt2; j++) {
            const s = this.sList[(base2 + c) * K + j];
            const v = pool.v[s] + hop;
            let cnt = this.eCnt[node];
            if (cnt === K) {
              const last = this.eList[off + K - 1];
              const d = v - pool.v[last] || pool.cmpKey(s, last);
              if (d >= 0) break; // the rest of S's list is worse still
              cnt = K - 1;
            }
            let i = cnt;
            while (i > 0) {
              const x = this.eList[off + i - 1];
              const d = v - pool.v[x] || pool.cmpKey(s, x);
              if (d >= 0) break;
              this.eList[off + i] = x;
              i--;
            }
            this.eList[off + i] = pool.alloc(v, -1, 0, 0, s);
            this.eCnt[node] = cnt + 1;
          }
        }
      }
    }
  }

  private sPhase(slot: number, lambda: number): void {
    const p = this.p;
    const K = this.K;
    const n = this.n;
    const q = this.slotQ[slot];
    const g = this.slotH[slot];
    const P = p.prefix[g];
    const ovh = p.stageOvh[g];
    const base = slot * this.stride;
    this.curBase = base;
    const lo = this.lo;
    const hi = this.hi;
    stageWindows(p, q, g, Math.min(p.computeCap[q], lambda), lo, hi);
    const reqMin = p.reqMin[q];
    let inTop = 0;
    let outTop = 0;
    this.inAgg.n = 0;
    let next = n + 1; // next c to push is next - 1
    for (let b = n - 1; b >= 1; b--) {
      const l = Math.max(b + 1, p.reqMax[q] + 1);
      while (next - 1 >= l) {
        next--;
        const c = next;
        const cnt = this.eCnt[base + c];
        if (cnt === 0) continue; // nothing to finish with from there
        this.inC[inTop++] = c;
        this.mergeInto(this.inAgg, c, P[c]);
      }
      // Pop the oldest (largest c) while beyond the window's end.
      for (;;) {
        let oldest: number;
        if (outTop > 0) oldest = this.outC[outTop - 1];
        else if (inTop > 0) oldest = this.inC[0];
        else break;
        if (oldest <= hi[b]) break;
        if (outTop === 0) {
          // Transfer: the in-stack reversed onto the out-stack, each slot aggregating all newer ones.
          while (inTop > 0) {
            const c = this.inC[--inTop];
            const agg = this.outAgg[outTop];
            agg.n = 0;
            if (outTop > 0) copyList(this.outAgg[outTop - 1], agg);
            this.mergeInto(agg, c, P[c]);
            this.outC[outTop++] = c;
          }
          this.inAgg.n = 0;
        }
        outTop--;
      }
      if (reqMin >= 0 && b > reqMin) continue;
      if (lo[b] > hi[b]) continue;
      // Query: the out-stack's top aggregate merged with the in-stack's.
      const res = this.tmpB;
      if (outTop > 0) this.mergeLists(this.outAgg[outTop - 1], this.inAgg, res);
      else copyList(this.inAgg, res);
      this.emitS(base + b, res, P[b] - ovh, q, g);
    }
    // b = 0 (only after an origin that ran no block): no run overhead, its own window.
    if (lo[0] <= hi[0]) {
      const res = this.tmpB;
      res.n = 0;
      for (let c = lo[0]; c <= hi[0]; c++) this.mergeInto(res, c, P[c]);
      this.emitS(base, res, P[0], q, g);
    }
  }

  private emitS(node: number, res: KList, sub: number, q: number, g: number): void {
    const K = this.K;
    for (let i = 0; i < res.n; i++) {
      this.sList[node * K + i] = this.pool.alloc(res.w[i] - sub, q, g, res.c[i], res.e[i]);
    }
    this.sCnt[node] = res.n;
  }

  /** Root helper: merge E(origin, c) shifted by P[c] into `into`. */
  private mergeElem(into: KList, c: number, shift: number): void {
    if (this.eCnt[c] > 0) this.mergeInto(into, c, shift);
  }

  /** Merge E(current slot, c)'s list, each value + shift, into `into` (kept K-best). */
  private mergeInto(into: KList, c: number, shift: number): void {
    const node = this.curBase + c;
    const cnt = this.eCnt[node];
    const off = node * this.K;
    const a = this.tmpMerge;
    a.n = 0;
    for (let i = 0; i < cnt; i++) {
      const e = this.eList[off + i];
      a.w[a.n] = this.pool.v[e] + shift;
      a.c[a.n] = c;
      a.e[a.n] = e;
      a.n++;
    }
    const r = this.tmpMerge2;
    this.mergeLists(into, a, r);
    copyList(r, into);
  }


  /** Merge two sorted K-lists into `out` (out must differ from a and b). */
  private mergeLists(a: KList, b: KList, out: KList): void {
    const K = this.K;
    const pool = this.pool;
    let i = 0;
    let j = 0;
    out.n = 0;
    while (out.n < K && (i < a.n || j < b.n)) {
      let takeA: boolean;
      if (i >= a.n) takeA = false;
      else if (j >= b.n) takeA = true;
      else {
        const d = a.w[i] - b.w[j] || a.c[i] - b.c[j] || pool.cmpKey(a.e[i], b.e[j]);
        takeA = d <= 0;
      }
      if (takeA) {
        out.w[out.n] = a.w[i];
        out.c[out.n] = a.c[i];
        out.e[out.n] = a.e[i];
        i++;
      } else {
        out.w[out.n] = b.w[j];
        out.c[out.n] = b.c[j];
        out.e[out.n] = b.e[j];
        j++;
      }
      out.n++;
    }
  }
}

function copyList(from: KList, to: KList): void {
  to.n = from.n;
  for (let i = 0; i < from.n; i++) {
    to.w[i] = from.w[i];
    to.c[i] = from.c[i];
    to.e[i] = from.e[i];
  }
}
