/**
 * Exact search when a share constraint (a tier's compute <= share x the plan's whole compute) couples the
 * stages, which no per-state DP can express. Best-first branch and bound over partial plans:
 *
 * - A partial plan is ordered by a lower bound of every completion's rank tuple: latency so far + the
 *   best completion latency (the latency DP with K = 1 and every other constraint), and for throughput
 *   max(bottleneck so far, the min-max completion) first. Complete plans carry their exact tuple and the
 *   canonical order breaks ties, a prefix sorting before its extensions. So complete plans leave the
 *   queue in exact rank order, and the first N feasible ones are the answer.
 * - Pruning: for each share constraint, a DP gives the least possible value of
 *   (1 - s) x tier compute - s x other compute over all completions; a partial plan that cannot bring
 *   it to <= 0 is dropped. For Pareto, a partial plan whose device step (which fixes the device's bytes
 *   and compute) is already matched by a found point at a latency <= its bound is dropped.
 * Worst case exponential; `maxSearchNodes` bounds it with an E_UNSUPPORTED error, never a wrong answer.
 */
import { CleaveError } from '../errors.js';
import { compareShapes, evaluate, hopChoice, leastBytesOut, transfers } from './cost.js';
import { violated } from './constraints.js';
import { LatencyDP } from './dp.js';
import { MinMaxDP } from './minmax.js';
import type { Prepared, Shape } from './prepare.js';
import type { Scored } from './result.js';
import { stageAtoms, stageWindows } from './window.js';

type Step = Shape['steps'][number];

interface Node {
  readonly k1: number;
  readonly k2: number;
  readonly shape: Shape;
  readonly scored?: Scored;
  readonly slot: number;
  readonly c: number;
  readonly lat: number;
  readonly bn: number;
  readonly acc: Float64Array;
  readonly devOut: number;
  readonly devComp: number;
}

function cmpNode(a: Node, b: Node): number {
  return a.k1 - b.k1 || a.k2 - b.k2 || compareShapes(a.shape, b.shape);
}

class Heap {
  private readonly a: Node[] = [];
  get size(): number {
    return this.a.length;
  }
  push(x: Node): void {
    const a = this.a;
    a.push(x);
    let i = a.length - 1;
    while (i > 0) {
      const up = (i - 1) >> 1;
      if (cmpNode(a[i], a[up]) >= 0) break;
      [a[i], a[up]] = [a[up], a[i]];
      i = up;
    }
  }
  pop(): Node {
    const a = this.a;
    const top = a[0];
    const last = a.pop() as Node;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && cmpNode(a[l], a[m]) < 0) m = l;
        if (r < a.length && cmpNode(a[r], a[m]) < 0) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m], a[i]];
        i = m;
      }
    }
    return top;
  }
}

interface Bounds {
  readonly lat: Float64Array;
  readonly bn: Float64Array;
  readonly share: readonly Float64Array[];
}

export function branchAndBound(p: Prepared, mode: 'top' | 'pareto'): Scored[] {
  const n = p.n;
  const stride = n + 1;
  const constraints = p.input.constraints ?? [];
  const throughput = mode === 'top' && p.objective === 'throughput';

  // Slots as in the DPs: 0 is the origin, then (tier >= 1, host).
  const dp = new LatencyDP(p, 1);
  const mm = new MinMaxDP(p);
  const { q: slotQ, h: slotH, ofTier } = dp.slots();
  const nodes = slotQ.length * stride;
  const weightsOf = p.shares.map(
    ({ q: rq, share }) =>
      (q: number): number =>
        q === rq ? 1 - share : -share,
  );
  const bounds = new Map<number, Bounds>();
  for (const o of p.tierHosts[0]) {
    dp.run(o);
    const lat = new Float64Array(nodes);
    for (let s = 0; s < slotQ.length; s++) for (let c = 0; c <= n; c++) lat[s * stride + c] = dp.bestE(s, c);
    const bn = new Float64Array(nodes);
    if (throughput) {
      mm.run(o);
      for (let s = 0; s < slotQ.length; s++) for (let c = 0; c <= n; c++) bn[s * stride + c] = mm.bestE(s, c);
    }
    const share = weightsOf.map((w) => shareBound(p, o, slotQ, slotH, ofTier, w));
    bounds.set(o, { lat, bn, share });
  }
  let scale = 1;
  for (let h = 0; h < p.H; h++) scale = Math.max(scale, p.prefix[h][n] + p.stageOvh[h] + 2 * Math.max(...p.cut[h]));
  const tol = 1e-9 * scale * p.T;

  // Stage windows per host (they depend on the host and its tier only).
  const winLo: Int32Array[] = [];
  const winHi: Int32Array[] = [];
  for (let h = 0; h < p.H; h++) {
    winLo.push(new Int32Array(n));
    winHi.push(new Int32Array(n));
    stageWindows(p, p.hostTier[h], h, p.computeCap[p.hostTier[h]], winLo[h], winHi[h]);
  }

  const heap = new Heap();
  const out: Scored[] = [];
  const front: Scored[] = [];
  const covered = (lat: number, devOut: number, devComp: number): boolean =>
    front.some((f) => f.m.latency <= lat && f.m.deviceOut <= devOut && f.m.deviceCompute <= devComp);

  const offer = (
    o: number,
    steps: Step[],
    slot: number,
    c: number,
    lat: number,
    bn: number,
    acc: Float64Array,
    devOut: number,
    devComp: number,
  ): void => {
    const shape: Shape = { origin: o, steps };
    if (c === n) {
      const m = evaluate(p, shape);
      if (!m || violated(p, shape, m, constraints)) return;
      const k1 = throughput ? m.bottleneck : m.latency;
      const k2 = throughput ? m.latency : 0;
      heap.push({ k1, k2, shape, scored: { shape, m }, slot, c, lat, bn, acc, devOut, devComp });
      return;
    }
    const b = bounds.get(o) as Bounds;
    const hl = b.lat[slot * stride + c];
    if (hl === Infinity) return;
    for (let r = 0; r < b.share.length; r++) if (acc[r] + b.share[r][slot * stride + c] > tol) return;
    const k1 = throughput ? Math.max(bn, b.bn[slot * stride + c]) : lat + hl;
    const k2 = throughput ? lat + hl : 0;
    heap.push({ k1, k2, shape, slot, c, lat, bn, acc, devOut, devComp });
  };

  for (const o of p.tierHosts[0]) {
    const options: number[] = [];
    if (!p.mustUse[0]) options.push(0);
    if (p.deviceMayCompute) for (let c0 = Math.max(1, winLo[o][0]); c0 <= winHi[o][0]; c0++) options.push(c0);
    for (const c0 of options) {
      const comp = c0 > 0 ? stageAtoms(p, o, 0, c0) : 0;
      if (comp > p.computeCap[0]) continue; // cut costs: the window is a superset (window.ts)
      const acc = new Float64Array(weightsOf.map((w) => w(0) * comp));
      offer(o, [{ q: 0, h: o, end: c0 }], 0, c0, comp, comp, acc, c0 === n ? 0 : leastBytesOut(p, c0), comp);
    }
  }

  let expanded = 0;
  while (heap.size > 0) {
    const x = heap.pop();
    if (x.scored) {
      if (mode === 'top') {
        out.push(x.scored);
        if (out.length >= p.topN) break;
      } else {
        const m = x.scored.m;
        if (covered(m.latency, m.deviceOut, m.deviceCompute)) continue;
        for (let i = front.length - 1; i >= 0; i--) {
          const f = front[i].m;
          if (m.latency <= f.latency && m.deviceOut <= f.deviceOut && m.deviceCompute <= f.deviceCompute)
            front.splice(i, 1);
        }
        front.push(x.scored);
      }
      continue;
    }
    if (mode === 'pareto' && covered(x.k1, x.devOut, x.devComp)) continue;
    if (++expanded > p.options.maxSearchNodes) {
      throw new CleaveError(
        'E_UNSUPPORTED',
        `the share constraint search expanded more than ${p.options.maxSearchNodes} partial plans; loosen the % compute constraint or raise maxSearchNodes`,
      );
    }
    const o = x.shape.origin;
    const q = slotQ[x.slot];
    const g = x.slot === 0 ? o : slotH[x.slot];
    const qEnd = Math.min(p.nextMust[q], p.T - 1);
    for (let q2 = q + 1; q2 <= qEnd; q2++) {
      for (const slot2 of ofTier[q2]) {
        const g2 = slotH[slot2];
        const li = g * p.H + g2;
        const choice = hopChoice(p, g, g2);
        if (!choice) continue;
        const xfer = choice.atoms[x.c];
        if (xfer === Infinity) continue; // over the upload cap in every codec
        const hop = p.linkFixed[li] + xfer;
        const busy = xfer + p.hopOvh;
        const lo = winLo[g2][x.c];
        const hi = winHi[g2][x.c];
        for (let c2 = lo; c2 <= hi; c2++) {
          const comp = stageAtoms(p, g2, x.c, c2);
          if (comp > p.computeCap[q2]) continue;
          const acc = new Float64Array(x.acc.length);
          for (let r = 0; r < acc.length; r++) acc[r] = x.acc[r] + weightsOf[r](q2) * comp;
          const steps = [...x.shape.steps, { q: q2, h: g2, end: c2 }];
          // The origin's hop fixes what it sends: its codec's bytes.
          const devOut = x.slot === 0 ? choice.bytes[x.c] : x.devOut;
          offer(o, steps, slot2, c2, x.lat + hop + comp, Math.max(x.bn, busy, comp), acc, devOut, x.devComp);
        }
      }
    }
  }
  return mode === 'top' ? out : front;
}

/**
 * For one share constraint with stage weights w(q): the least sum of w(q) x stage compute over every
 * completion from each E state (Infinity where none), the same transitions as the latency DP.
 */
function shareBound(
  p: Prepared,
  origin: number,
  slotQ: readonly number[],
  slotH: readonly number[],
  ofTier: readonly (readonly number[])[],
  w: (q: number) => number,
): Float64Array {
  const n = p.n;
  const stride = n + 1;
  const E = new Float64Array(slotQ.length * stride).fill(Infinity);
  const S = new Float64Array(slotQ.length * stride).fill(Infinity);
  const lo = new Int32Array(n);
  const hi = new Int32Array(n);
  const dq = new Int32Array(n + 1);
  for (let q = p.T - 1; q >= 0; q--) {
    for (const slot of ofTier[q]) {
      const g = slot === 0 ? origin : slotH[slot];
      const base = slot * stride;
      if (p.nextMust[q] === p.T) {
        let ok = true;
        if (p.returns && g !== origin) ok = !Number.isNaN(p.retK[g * p.H + origin]) && p.outputBytes <= p.uploadCap[q];
        if (ok) E[base + n] = 0;
      }
      for (let q2 = q + 1; q2 <= Math.min(p.nextMust[q], p.T - 1); q2++) {
        for (const slot2 of ofTier[q2]) {
          const xf = transfers(p, g, slotH[slot2]);
          if (!xf) continue;
          for (let c = q === 0 ? 0 : 1; c < n; c++) {
            if (xf[c] === Infinity) continue;
            const v = S[slot2 * stride + c];
            if (v < E[base + c]) E[base + c] = v;
          }
        }
      }
      if (q === 0) continue;
      // S(b) = min over c in the window of wq (P[c] - P[b] + ovh) + E[c]: a sliding-window minimum of
      // wq P[c] + E[c] as b falls (both window ends only move down).
      const wq = w(q);
      // With cut costs the window may hold ends the compute cap forbids (window.ts): the minimum is then
      // over more ends than allowed, still a lower bound, which is all the pruning needs.
      const PE = p.endPrefix[g];
      const PS = p.startPrefix[g];
      stageWindows(p, q, g, p.computeCap[q], lo, hi);
      const val = (c: number): number => wq * PE[c] + E[base + c];
      let head = 0;
      let tail = 0; // deque dq[head..tail): c descending, values increasing
      let next = n + 1;
      for (let b = n - 1; b >= 1; b--) {
        const l = Math.max(b + 1, p.reqMax[q] + 1);
        while (next - 1 >= l) {
          next--;
          if (E[base + next] === Infinity) continue;
          const v = val(next);
          while (tail > head && val(dq[tail - 1]) >= v) tail--;
          dq[tail++] = next;
        }
        while (tail > head && dq[head] > hi[b]) head++;
        if (lo[b] > hi[b] || tail === head) continue;
        S[base + b] = val(dq[head]) - wq * (PS[b] - p.stageOvh[g]);
      }
      for (let c = lo[0]; c <= hi[0]; c++) S[base] = Math.min(S[base], wq * (PE[c] - PS[0]) + E[base + c]);
    }
  }
  // The origin's own stage (slot 0) is accounted by the caller from the device step on; E is what it needs.
  return E;
}
