/**
 * Constraints checked on one whole plan, straight from their definitions. The enumerator filters with
 * this; the exact search folds the same constraints into its transitions (prepare.ts) and uses this only
 * for the one constraint that couples stages (a tier's share of the whole compute time).
 */
import { toAtoms } from './atoms.js';
import type { Metrics } from './cost.js';
import type { Prepared, Shape } from './prepare.js';
import type { Constraint } from './types.js';

/** The first constraint the plan breaks, or undefined. */
export function violated(
  p: Prepared,
  s: Shape,
  m: Metrics,
  constraints: readonly Constraint[],
): Constraint | undefined {
  const tierOfBlock = new Int32Array(p.n).fill(-1);
  const used = new Set<number>([s.origin]);
  const computing = new Set<number>();
  let start = 0;
  for (const st of s.steps) {
    used.add(st.h);
    if (st.end > start) computing.add(st.h);
    for (let k = start; k < st.end; k++) tierOfBlock[k] = st.q;
    start = st.end;
  }
  const q = (t: string): number => p.tiers.indexOf(t);
  const h = (name: string): number => p.hostNames.indexOf(name);
  for (const c of constraints) {
    let ok: boolean;
    switch (c.kind) {
      case 'blockOn':
        ok = tierOfBlock[c.block] === q(c.tier);
        break;
      case 'blockNotOn':
        ok = tierOfBlock[c.block] !== q(c.tier);
        break;
      case 'useTier':
        ok = m.tierUsed[q(c.tier)];
        break;
      case 'noTier':
        ok = !m.tierUsed[q(c.tier)];
        break;
      case 'useHost':
        ok = c.hosts.some((x) => computing.has(h(x)));
        break;
      case 'noHost':
        ok = !used.has(h(c.host));
        break;
      case 'maxUpload':
        ok = m.tierUpload[q(c.tier)] <= c.bytes;
        break;
      case 'maxCompute':
        ok = m.tierCompute[q(c.tier)] <= toAtoms(c.ms);
        break;
      case 'maxComputeShare':
        ok = shareOk(m.tierCompute[q(c.tier)], m.compute, c.share);
        break;
      case 'maxWeights':
        ok = (m.hostWeights.get(h(c.host)) ?? 0) <= c.bytes;
        break;
    }
    if (!ok) return c;
  }
  return undefined;
}

/** The one definition of the share test, so every search path decides it identically. */
function shareOk(tierCompute: number, totalCompute: number, share: number): boolean {
  return tierCompute <= share * totalCompute;
}
