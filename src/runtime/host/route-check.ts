/**
 * What a host checks of a route that arrives in an infer frame before it runs a stage of it: that it is one
 * the origin could have planned. Every stage names a host of the deployment, tiers strictly follow the tier
 * chain (so no host appears twice and a route is never longer than the chain), the first stage is the origin,
 * and the frame comes from the host of the stage before the one it asks for; and, past its shape, that the
 * route is one the origin planned: the origin hands every stage host the whole route when it has it prepare
 * its segment (`POST /v1/segments`, which only the origin may call), before any request of that route is
 * stamped. A route that fails is refused: a peer holding a host's credential could otherwise make hosts
 * bounce one request between them, or run segments no plan gave them.
 */
import { isCodec } from '../../transport/codec.js';
import type { RouteStage } from '../../transport/frame.js';

export interface RouteRules {
  /** Each host's tier, by name. */
  readonly tierOf: ReadonlyMap<string, string>;
  /** The tier chain, origin first. */
  readonly tiers: readonly string[];
  /** Whether the origin prepared `route` here; absent: the shape is all that is checked. */
  readonly planned?: (route: readonly RouteStage[]) => boolean;
}

/** A route's identity: its stages' hosts, tiers, node ranges and codecs. */
export function routeKey(route: readonly RouteStage[]): string {
  return route.map((s) => `${s.host}/${s.tier}/${s.from}-${s.to}/${s.codec ?? 'raw'}`).join(' ');
}

/**
 * The routes the origin prepared on this host (adopted plans and proposals warmed ahead), the most recently
 * used last. Bounded by count: a route is a few hundred bytes, the bound is far above the plans a deployment
 * warms, and the route in force is used by every request, so it is never the one evicted.
 */
export class PlannedRoutes {
  private readonly keys = new Set<string>();

  constructor(private readonly max = 1024) {}

  add(route: readonly RouteStage[]): void {
    const k = routeKey(route);
    this.keys.delete(k);
    this.keys.add(k);
    if (this.keys.size > this.max) this.keys.delete(this.keys.values().next().value as string);
  }

  has(route: readonly RouteStage[]): boolean {
    const k = routeKey(route);
    if (!this.keys.has(k)) return false;
    this.keys.delete(k);
    this.keys.add(k);
    return true;
  }

  get size(): number {
    return this.keys.size;
  }
}

/** Why `route` (asked at `stage`, sent by `sender`) cannot be a planned one; null when it can. */
export function routeProblem(
  route: readonly RouteStage[],
  stage: number,
  sender: string,
  r: RouteRules,
): string | null {
  if (route.length === 0) return 'its route is empty';
  if (route.length > r.tiers.length)
    return `its route has ${route.length} stages, more than the ${r.tiers.length} tiers of the deployment`;
  let last = -1;
  for (const [i, s] of route.entries()) {
    const tier = r.tierOf.get(s.host);
    if (tier === undefined) return `route stage ${i} names '${s.host}', not a host of this deployment`;
    const t = r.tiers.indexOf(tier);
    if (t <= last) return `route stage ${i} (${s.host}, tier ${tier}) does not come after the stage before it`;
    if (i === 0 && t !== 0) return `its route starts at ${s.host}, not at the origin tier ${r.tiers[0]}`;
    last = t;
  }
  if (!Number.isInteger(stage) || stage < 1 || stage >= route.length)
    return `stage ${stage} is not a stage a peer can send (1..${route.length - 1})`;
  if (route[stage - 1].host !== sender)
    return `it came from ${sender}, but stage ${stage - 1} of its route is ${route[stage - 1].host}`;
  if (r.planned && !r.planned(route)) return 'its route is not one the origin planned through this host';
  return null;
}

/** The message type with which the origin hands a host that (re)joins the adopted routes through it. */
export const PLANNED_ROUTES = 'planned-routes';

/**
 * The routes of a `planned-routes` message that a host records: each must be well-formed, have a stage on
 * `self` (at index 1 or later) and pass the shape rules. What fails is named; nothing of a bad message counts.
 */
export function plannedRoutesOf(body: unknown, self: string, r: RouteRules): RouteStage[][] {
  const routes = (body as { routes?: unknown } | null)?.routes;
  if (!Array.isArray(routes) || routes.length > 1024) throw new Error('routes: expected an array of up to 1024 routes');
  return routes.map((route: unknown, k) => {
    const ok =
      Array.isArray(route) &&
      route.every(
        (s: unknown) =>
          typeof s === 'object' &&
          s !== null &&
          typeof (s as RouteStage).host === 'string' &&
          typeof (s as RouteStage).tier === 'string' &&
          Number.isInteger((s as RouteStage).from) &&
          Number.isInteger((s as RouteStage).to) &&
          ((s as RouteStage).codec === undefined || isCodec((s as RouteStage).codec)),
      );
    if (!ok) throw new Error(`routes[${k}]: expected stages of {host, tier, from, to, codec?}`);
    const stages = (route as RouteStage[]).map((s) => ({
      host: s.host,
      tier: s.tier,
      from: s.from,
      to: s.to,
      ...(s.codec !== undefined && s.codec !== 'raw' ? { codec: s.codec } : {}),
    }));
    const i = stages.findIndex((s) => s.host === self);
    const why = i < 1 ? `it has no stage on ${self} past the origin` : routeProblem(stages, i, stages[i - 1].host, r);
    if (why !== null) throw new Error(`routes[${k}]: ${why}`);
    return stages;
  });
}
