/**
 * What a host checks of a route that arrives in an infer frame before it runs a stage of it: that it is one
 * the origin could have planned. Every stage names a host of the deployment, tiers strictly follow the tier
 * chain (so no host appears twice and a route is never longer than the chain), the first stage is the origin,
 * and the frame comes from the host of the stage before the one it asks for. A route that fails is refused:
 * a peer holding the shared token could otherwise make hosts bounce one request between them.
 */
import type { RouteStage } from '../../transport/frame.js';

export interface RouteRules {
  /** Each host's tier, by name. */
  readonly tierOf: ReadonlyMap<string, string>;
  /** The tier chain, origin first. */
  readonly tiers: readonly string[];
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
  return null;
}
