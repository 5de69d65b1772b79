/** Ranking orders shared by every search path, and the conversion of an internal plan to a public Plan. */
import { atomsToMs } from './atoms.js';
import { compareShapes, type Metrics } from './cost.js';
import type { Prepared, Shape } from './prepare.js';
import type { Plan, Stage } from './types.js';

export interface Scored {
  readonly shape: Shape;
  readonly m: Metrics;
}

/** Latency order: latency, then the canonical plan order. */
export function byLatency(a: Scored, b: Scored): number {
  return a.m.latency - b.m.latency || compareShapes(a.shape, b.shape);
}

/** Throughput order: bottleneck, then latency, then the canonical plan order. */
export function byThroughput(a: Scored, b: Scored): number {
  return a.m.bottleneck - b.m.bottleneck || a.m.latency - b.m.latency || compareShapes(a.shape, b.shape);
}

/**
 * The Pareto set on (latency, bytes leaving the device, device compute time): one plan per
 * non-dominated point, the first in latency order. `sorted` must be in `byLatency` order.
 */
export function paretoFront(sorted: readonly Scored[]): Scored[] {
  const front: Scored[] = [];
  for (const x of sorted) {
    // Every earlier plan has latency <= x's, so x is dominated (or a duplicate point) exactly when an
    // earlier kept plan is no worse on bytes and device compute. Points tied on latency are handled by
    // the sort's secondary keys below.
    if (
      front.some(
        (f) => f.m.deviceOut <= x.m.deviceOut && f.m.deviceCompute <= x.m.deviceCompute && f.m.latency <= x.m.latency,
      )
    )
      continue;
    for (let i = front.length - 1; i >= 0; i--) {
      const f = front[i];
      if (x.m.latency <= f.m.latency && x.m.deviceOut <= f.m.deviceOut && x.m.deviceCompute <= f.m.deviceCompute)
        front.splice(i, 1);
    }
    front.push(x);
  }
  return front;
}

export function toPlan(p: Prepared, s: Scored): Plan {
  const { shape, m } = s;
  const stages: Stage[] = [];
  let start = 0;
  let ci = 0;
  for (const st of shape.steps) {
    if (st.end > start) {
      let w = 0;
      for (let k = start; k < st.end; k++) w += p.weights[k];
      stages.push({
        tier: p.tiers[st.q],
        host: p.hostNames[st.h],
        start,
        end: st.end,
        computeMs: atomsToMs(m.stageCompute[ci++]),
        weightBytes: w,
      });
    }
    start = st.end;
  }
  const bottleneckMs = atomsToMs(m.bottleneck);
  return {
    origin: p.hostNames[shape.origin],
    originTier: p.tiers[0],
    stages,
    hops: m.hops.map((h) => ({
      from: p.hostNames[h.from],
      to: p.hostNames[h.to],
      bytes: h.bytes,
      rawBytes: h.rawBytes,
      codec: p.codecs.names[h.codec],
      ms: atomsToMs(h.lat),
      busyMs: atomsToMs(h.busy),
      kind: h.kind,
    })),
    latencyMs: atomsToMs(m.latency),
    computeMs: atomsToMs(m.compute),
    transferMs: atomsToMs(m.transfer),
    bottleneckMs,
    throughputRps: bottleneckMs > 0 ? 1000 / bottleneckMs : Infinity,
    deviceBytesOut: m.deviceOut,
    deviceComputeMs: atomsToMs(m.deviceCompute),
    bytesTransferred: m.bytesTransferred,
  };
}
