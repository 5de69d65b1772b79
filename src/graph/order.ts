/**
 * The execution order decides which cuts exist and what crosses each: a cut is a position in this order.
 * We keep frontiers small by finishing a branch before starting the next (depth-first Kahn), and keep the
 * file's own order when it is at least as good.
 */
import { CleaveError } from '../errors.js';

interface OrderNode {
  readonly deps: readonly string[];
  readonly outputs: readonly string[];
}

/** A topological order of `nodes` (indices), chosen to keep the tensors alive across each cut few. */
export function chooseOrder(nodes: readonly OrderNode[], graphOutputs: readonly string[], source: string): number[] {
  const producer = new Map<string, number>();
  nodes.forEach((n, i) => n.outputs.forEach((o) => producer.set(o, i)));
  const consumers: number[][] = nodes.map(() => []);
  const indegree = new Int32Array(nodes.length);
  nodes.forEach((n, i) => {
    const preds = new Set<number>();
    for (const d of n.deps) {
      const p = producer.get(d);
      if (p !== undefined && p !== i) preds.add(p);
    }
    indegree[i] = preds.size;
    for (const p of preds) consumers[p].push(i);
  });

  const original = nodes.map((_, i) => i);
  const fileOrderValid = isTopological(original, nodes, producer);

  // Depth-first Kahn: the most recently readied node runs next, so a branch runs to its join before the
  // next branch starts. Ready nodes are pushed in reverse file order so the file's first comes out first.
  const deg = indegree.slice();
  const stack: number[] = [];
  for (let i = nodes.length - 1; i >= 0; i--) if (deg[i] === 0) stack.push(i);
  const dfs: number[] = [];
  while (stack.length > 0) {
    const i = stack.pop() as number;
    dfs.push(i);
    const ready: number[] = [];
    for (const c of consumers[i]) if (--deg[c] === 0) ready.push(c);
    ready.sort((a, b) => b - a);
    stack.push(...ready);
  }
  if (dfs.length !== nodes.length) throw new CleaveError('E_BAD_MODEL', `${source}: the graph has a cycle`);
  if (!fileOrderValid) return dfs;
  return liveCost(original, nodes, graphOutputs) <= liveCost(dfs, nodes, graphOutputs) ? original : dfs;
}

function isTopological(order: readonly number[], nodes: readonly OrderNode[], producer: Map<string, number>): boolean {
  const pos = new Int32Array(nodes.length);
  order.forEach((n, p) => (pos[n] = p));
  return order.every((n) =>
    nodes[n].deps.every((d) => {
      const p = producer.get(d);
      return p === undefined || p === n || pos[p] < pos[n];
    }),
  );
}

/** Sum over all cuts of the number of tensors crossing: the quantity the order tries to keep small. */
function liveCost(order: readonly number[], nodes: readonly OrderNode[], graphOutputs: readonly string[]): number {
  const birth = new Map<string, number>();
  const death = new Map<string, number>();
  order.forEach((n, p) => {
    for (const d of nodes[n].deps) death.set(d, Math.max(death.get(d) ?? -1, p));
    for (const o of nodes[n].outputs) birth.set(o, p);
  });
  for (const o of graphOutputs) death.set(o, order.length);
  let cost = 0;
  for (const [t, d] of death) cost += d - (birth.get(t) ?? -1);
  return cost;
}
