/**
 * Planner time unit: integer nanoseconds ("atoms"), so that sums are exact and ties are real ties (see cost.ts).
 * Its own module so that prepare.ts and cost.ts, which both price in atoms, do not import each other.
 */
/** Atoms per millisecond: costs are integer nanoseconds. */
export const ATOMS_PER_MS = 1e6;

export function toAtoms(ms: number): number {
  return Math.round(ms * ATOMS_PER_MS);
}

export function atomsToMs(a: number): number {
  return a / ATOMS_PER_MS;
}
