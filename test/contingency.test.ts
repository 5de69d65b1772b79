/**
 * Contingency plans (planner/contingency.ts) on the split model (test/helpers/split-model.ts): device 6 ms,
 * edge 7 ms, cloud 100 ms a block, 1 kB frontiers, a 100 kB input. Device alone (48 ms) is best now; with
 * the device 4x slower, device[0:1) -> edge[1:8) is (24 + 2 + 49 + 2 = 77, against 192 alone and 159 for the
 * edge alone, which uploads the input).
 */
import { describe, expect, it } from 'vitest';
import { CONTINGENCY_LIMITS, contingencyPlans } from '../src/planner/contingency.js';
import { CONTROLLER_DEFAULTS, Controller, routeOf, type LiveSnapshot } from '../src/planner/index.js';
import { splitModelInput } from './helpers/split-model.js';

const snap = (o: Partial<LiveSnapshot> = {}): LiveSnapshot => ({
  now: 0,
  input: splitModelInput(),
  slowdown: {},
  down: [],
  ...o,
});

/** What the controller adopts, from no plan, on `s`. */
function adopted(s: LiveSnapshot): string {
  const d = new Controller().step(s, null);
  if (d.kind !== 'adopt') throw new Error(`expected adopt, got ${d.kind}: ${d.reason}`);
  return routeOf(d.plan);
}

describe('contingencyPlans', () => {
  it('each is what the controller would adopt under its scenario; none is the current route or twice the same', () => {
    const current = adopted(snap());
    expect(current).toBe('device[0:8)');
    const cs = contingencyPlans(snap(), CONTROLLER_DEFAULTS, current, 10);
    expect(cs.length).toBeGreaterThan(0);
    const routes = cs.map((c) => routeOf(c.plan));
    expect(new Set(routes).size).toBe(routes.length);
    expect(routes).not.toContain(current);
    expect(cs[0]).toMatchObject({ scenario: 'device 4x slower' });
    expect(routes[0]).toBe('device[0:1) -> edge[1:8)');
    expect(cs[0].plan.latencyMs).toBeCloseTo(77, 6);
    for (const c of cs) {
      const m = /^(\w+) (\d+)x slower$/.exec(c.scenario);
      const l = /^(\w+)<->(\w+) at ([\d.]+)% throughput$/.exec(c.scenario);
      expect(m ?? l, c.scenario).not.toBeNull();
      // The scenario, applied for real, makes the controller adopt that very plan.
      const s = m
        ? snap({ slowdown: { [m[1]]: Number(m[2]) } })
        : snap({
            input: {
              ...splitModelInput(),
              links: splitModelInput().links.map((k) =>
                [k.from, k.to].sort().join() === [l![1], l![2]].sort().join()
                  ? { ...k, bytesPerSecond: (k.bytesPerSecond * Number(l![3])) / 100 }
                  : k,
              ),
            },
          });
      expect(adopted(s), c.scenario).toBe(routeOf(c.plan));
    }
  });

  it('stops at max, skips down hosts, and scales the live slowdown rather than replacing it', () => {
    expect(contingencyPlans(snap(), CONTROLLER_DEFAULTS, 'device[0:8)', 0)).toEqual([]);
    expect(contingencyPlans(snap(), CONTROLLER_DEFAULTS, 'device[0:8)', 1)).toHaveLength(1);
    // The edge down: no scenario plans onto it.
    const down = contingencyPlans(snap({ down: ['edge'] }), CONTROLLER_DEFAULTS, 'device[0:8)', 10);
    for (const c of down) expect(c.plan.stages.map((s) => s.host)).not.toContain('edge');
    // Already 2x slow, the device 4x slower is 8x: the split's first stage then costs 48 ms.
    const slow = contingencyPlans(snap({ slowdown: { device: 2 } }), CONTROLLER_DEFAULTS, 'device[0:8)', 10);
    const first = slow.find((c) => c.scenario === `device ${CONTINGENCY_LIMITS.hostSlowdowns[0]}x slower`);
    expect(first?.plan.stages[0]).toMatchObject({ host: 'device', computeMs: 48 });
  });
});
