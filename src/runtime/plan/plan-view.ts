/**
 * `GET /v1/plan`: the current plan with the planner's predictions beside what the hosts and links measure.
 */
import type { HostStatus, HostUnreachable, LinkView } from './cluster-view.js';
import { isReachable } from './cluster-view.js';
import type { ActivePlan } from './coordinator.js';
import { describeRoute } from './route.js';

export function planView(
  p: ActivePlan,
  statuses: readonly (HostStatus | HostUnreachable)[],
  links: readonly LinkView[],
): object {
  return {
    epoch: p.epoch,
    pinned: p.pinned,
    adoptedAt: p.adoptedAt,
    reason: p.reason,
    route: describeRoute(p.route),
    predicted: {
      latencyMs: p.predicted.latencyMs,
      throughputRps: p.predicted.throughputRps,
      computeMs: p.predicted.computeMs,
      transferMs: p.predicted.transferMs,
    },
    stages: p.route.map((s) => {
      const predicted = p.predicted.stages.find((x) => x.host === s.host);
      const st = statuses.find((x): x is HostStatus => isReachable(x) && x.host === s.host);
      return {
        host: s.host,
        tier: s.tier,
        nodes: [s.from, s.to],
        blocks: predicted ? [predicted.start, predicted.end] : null,
        predictedComputeMs: predicted?.computeMs ?? 0,
        measuredComputeMs: st?.segments.find((g) => g.from === s.from && g.to === s.to)?.meanMs ?? null,
      };
    }),
    hops: p.predicted.hops.map((h) => {
      const l = links.find((x) => x.from === h.from && x.to === h.to);
      return { ...h, measuredRttMs: l?.rttMs ?? null, measuredThroughputBps: l?.throughputBps ?? null };
    }),
  };
}
