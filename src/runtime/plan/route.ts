/**
 * Plans as routes: the stages a request is stamped with, in tier order, the origin first (running nothing
 * when the plan gives it no blocks). Blocks are the planner's unit; a route carries node ranges.
 */
import { stageCodecs } from '../../planner/live-input.js';
import type { Plan } from '../../planner/types.js';
import type { RouteStage } from '../../transport/frame.js';

export interface HostView {
  readonly name: string;
  readonly tier: string;
}

/** A block as a node range `[start, end)` of the model's execution order. */
export interface BlockRange {
  readonly start: number;
  readonly end: number;
}

export function routeOf(p: Plan, origin: HostView, blocks: readonly BlockRange[]): RouteStage[] {
  const nodes = (a: number, b: number): { from: number; to: number } => ({
    from: blocks[a].start,
    to: blocks[b - 1].end,
  });
  const route: RouteStage[] = [];
  if (p.stages[0]?.host !== origin.name) route.push({ host: origin.name, tier: origin.tier, from: 0, to: 0 });
  const codecs = stageCodecs(p, origin.name);
  p.stages.forEach((s, i) => {
    const stage: RouteStage = { host: s.host, tier: s.tier, ...nodes(s.start, s.end) };
    const c = codecs[i];
    if (c !== undefined && c !== 'raw') stage.codec = c as RouteStage['codec'];
    route.push(stage);
  });
  return route;
}

export function sameRoute(a: readonly RouteStage[], b: readonly RouteStage[]): boolean {
  return (
    a.length === b.length &&
    a.every(
      (s, i) =>
        s.host === b[i].host &&
        s.tier === b[i].tier &&
        s.from === b[i].from &&
        s.to === b[i].to &&
        (s.codec ?? 'raw') === (b[i].codec ?? 'raw'),
    )
  );
}

export function describeRoute(route: readonly RouteStage[]): string {
  return route
    .map((s, i) => {
      const part = s.to > s.from ? `${s.host}[${s.from}:${s.to})` : `${s.host}(input)`;
      if (i === 0) return part;
      return `${s.codec && s.codec !== 'raw' ? `-${s.codec}->` : '->'} ${part}`;
    })
    .join(' ');
}
