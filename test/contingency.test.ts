/**
 * Contingency plans (planner/contingency.ts) on the split model (test/helpers/split-model.ts): device 6 ms,
 * edge 7 ms, cloud 100 ms a block, 1 kB frontiers, a 100 kB input. Device alone (48 ms) is best now; with
 * the device 4x slower, device[0:1) -> edge[1:8) is (24 + 2 + 49 + 2 = 77, against 192 alone and 159 for the
 * edge alone, which uploads the input).
 */
import { describe, expect, it } from 'vitest';
import { CONTINGENCY_LIMITS, contingencyPlans, deferral } from '../src/planner/contingency.js';
import { CONTROLLER_DEFAULTS, Controller, routeOf, type LiveSnapshot, type Plan } from '../src/planner/index.js';
import { splitModelInput } from './helpers/split-model.js';

const snap = (o: Partial<LiveSnapshot> = {}): LiveSnapshot => ({
  now: 0,
  input: splitModelInput(),
  slowdown: {},
  down: [],
  ...o,
});

/** What the controller adopts, from no plan, on `s`. */
function adoptedPlan(s: LiveSnapshot): Plan {
  const d = new Controller().step(s, null);
  if (d.kind !== 'adopt') throw new Error(`expected adopt, got ${d.kind}: ${d.reason}`);
  return d.plan;
}
const adopted = (s: LiveSnapshot): string => routeOf(adoptedPlan(s));

describe('contingencyPlans', () => {
  it('each is what the controller would adopt under its scenario; none is the current route or twice the same', () => {
    const current = adopted(snap());
    expect(current).toBe('device[0:8)');
    const cs = contingencyPlans(snap(), CONTROLLER_DEFAULTS, adoptedPlan(snap()), 10);
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
    const now = adoptedPlan(snap());
    expect(contingencyPlans(snap(), CONTROLLER_DEFAULTS, now, 0)).toEqual([]);
    expect(contingencyPlans(snap(), CONTROLLER_DEFAULTS, now, 1)).toHaveLength(1);
    // The edge down: no scenario plans onto it.
    const down = contingencyPlans(snap({ down: ['edge'] }), CONTROLLER_DEFAULTS, now, 10);
    for (const c of down) expect(c.plan.stages.map((s) => s.host)).not.toContain('edge');
    // Already 2x slow, the device 4x slower is 8x: the split's first stage then costs 48 ms.
    const slow = contingencyPlans(snap({ slowdown: { device: 2 } }), CONTROLLER_DEFAULTS, now, 10);
    const first = slow.find((c) => c.scenario === `device ${CONTINGENCY_LIMITS.hostSlowdowns[0]}x slower`);
    expect(first?.plan.stages[0]).toMatchObject({ host: 'device', computeMs: 48 });
  });

  it('defers a plan that would build a segment on a throttled host running a stage of the plan in force', () => {
    // The device 4x slow: device[0:1) -> edge[1:8) is in force; its contingencies are device[0:8) (the edge
    // 4x slower) and edge[0:8) (the device 16x slower), each a new range on a host that runs a stage now.
    const base = { slowdown: { device: 4 } };
    const now = adoptedPlan(snap(base));
    expect(routeOf(now)).toBe('device[0:1) -> edge[1:8)');
    const free = contingencyPlans(snap(base), CONTROLLER_DEFAULTS, now, 10);
    expect(free.map((c) => [routeOf(c.plan), Boolean(c.deferred)])).toEqual([
      ['device[0:8)', false],
      ['device[none] -> edge[0:8)', false],
    ]);
    // The edge's quota used up: the plan that builds edge[0:8) there waits, listed last; device[0:8) does not.
    const share = CONTINGENCY_LIMITS.throttledShare;
    const busy = contingencyPlans(snap({ ...base, throttledShare: { edge: share } }), CONTROLLER_DEFAULTS, now, 10);
    expect(busy.map((c) => [routeOf(c.plan), c.deferred?.host ?? null])).toEqual([
      ['device[0:8)', null],
      ['device[none] -> edge[0:8)', 'edge'],
    ]);
    expect(busy[1].deferred?.reason).toMatch(
      /^edge runs edge\[1:8\) of the plan in force .*\(throttled 10% .*building edge\[0:8\) there would stall it$/,
    );
    // Deferred plans do not count toward max: with both hosts throttled, max 1 still looks at every scenario.
    const both = contingencyPlans(
      snap({ ...base, throttledShare: { device: 1, edge: 1 } }),
      CONTROLLER_DEFAULTS,
      now,
      1,
    );
    expect(both.map((c) => c.deferred?.host)).toEqual(['device', 'edge']);
    // Just under the threshold, or throttled while it runs no stage of the plan in force: nothing waits.
    const under = snap({ ...base, throttledShare: { device: share * 0.99, edge: share * 0.99 } });
    expect(contingencyPlans(under, CONTROLLER_DEFAULTS, now, 10).some((c) => c.deferred)).toBe(false);
    const cloud = snap({ ...base, throttledShare: { cloud: 2 } });
    expect(contingencyPlans(cloud, CONTROLLER_DEFAULTS, now, 10).some((c) => c.deferred)).toBe(false);
  });

  it('does not defer a plan that keeps the range the host already runs there', () => {
    const now = adoptedPlan(snap());
    const same = { ...now, stages: now.stages.map((x) => ({ ...x })) };
    expect(deferral(snap({ throttledShare: { device: 1 } }), now, same)).toBeNull();
    const other = { stages: [{ ...now.stages[0], end: now.stages[0].end - 1 }] };
    expect(deferral(snap({ throttledShare: { device: 1 } }), now, other)?.host).toBe('device');
  });
});
