/**
 * A host's slowdown by the work it carries (work-slowdown.ts), and the controller pricing each plan at the
 * figures observed for its own work. The controller cases use the split model (test/helpers/split-model.ts):
 * device 6 ms, edge 7 ms a block, 2 ms a hop each way (1 ms half-RTT + 1 kB at 1 MB/s):
 *   device[0:6) -> edge[6:8) at edge x0.4:  36 + 2 + 2 x 7 x 0.4 + 2  = 45.6
 *   device[0:1) -> edge[1:8) at edge x0.4:   6 + 2 + 7 x 7 x 0.4 + 2  = 29.6, at x1.5: 6 + 2 + 73.5 + 2 = 83.5
 *   device alone:                            8 x 6                    = 48
 */
import { describe, expect, it } from 'vitest';
import { Controller, routeOf, type CurrentPlan, type LiveSnapshot } from '../src/planner/index.js';
import { factorAt, slowdownsFor, workByHost } from '../src/planner/work-slowdown.js';
import { splitModelInput } from './helpers/split-model.js';

describe('factorAt', () => {
  const pts = [
    { workMs: 10, factor: 2 },
    { workMs: 100, factor: 8 },
  ];
  it('between observations, interpolates their factors on the log of the work, whatever the one figure', () => {
    expect(factorAt(pts, 10, 5)).toBe(2);
    expect(factorAt(pts, 100, 1)).toBe(8);
    // sqrt(10 x 100) is half-way on the log scale.
    expect(factorAt(pts, Math.sqrt(1000), 1)).toBeCloseTo(5, 9);
    expect(factorAt(pts, Math.sqrt(1000), 50)).toBeCloseTo(5, 9);
    expect(factorAt(pts, 90, 1)).toBeCloseTo(2 + 6 * (Math.log(9) / Math.log(10)), 9);
    // Several: the two that bracket the work.
    expect(factorAt([...pts, { workMs: 50, factor: 3 }], 60, 1)).toBeCloseTo(3 + 5 * (Math.log(1.2) / Math.log(2)), 9);
  });
  it('within 1.25x beyond the least or the most work seen, that observation', () => {
    expect(factorAt(pts, 124, 1)).toBe(8);
    expect(factorAt(pts, 8.1, 5)).toBe(2);
  });
  it('further beyond: the one figure, no faster than the most work seen and no slower than the least', () => {
    expect(factorAt(pts, 500, 3)).toBe(8);
    expect(factorAt(pts, 500, 9)).toBe(9);
    expect(factorAt(pts, 2, 3)).toBe(2);
    expect(factorAt(pts, 2, 1)).toBe(1);
  });
  it('without observations, or for no work, is the one figure', () => {
    expect(factorAt([], 40, 3)).toBe(3);
    expect(factorAt(pts, 0, 3)).toBe(3);
  });
});

describe('slowdownsFor', () => {
  const s = (slowdownByWork?: LiveSnapshot['slowdownByWork']): LiveSnapshot => ({
    now: 0,
    input: splitModelInput(),
    slowdown: { edge: 0.8, device: 1 },
    down: [],
    slowdownByWork,
  });
  const stages = [
    { host: 'device', start: 0, end: 1 },
    { host: 'edge', start: 1, end: 8 },
  ];
  it('sums the blocks each host runs', () => {
    expect(Object.fromEntries(workByHost(splitModelInput(), stages))).toEqual({ device: 6, edge: 49 });
  });
  it('replaces the figure of a host the plan gives work, times its calibration', () => {
    const snap = s({ edge: [{ workMs: 49, factor: 1.5 }] });
    // The snapshot's 0.8 carries a calibration of 2 (0.4 raw): the observation is raw, so 1.5 x 2.
    expect(slowdownsFor(snap, stages, { edge: 2 })).toEqual({ edge: 3, device: 1 });
    expect(slowdownsFor(snap, stages, {})).toEqual({ edge: 1.5, device: 1 });
    // A plan that gives the edge nothing keeps the snapshot's record itself.
    expect(slowdownsFor(snap, [{ host: 'device', start: 0, end: 8 }], {})).toBe(snap.slowdown);
    const plain = s();
    expect(slowdownsFor(plain, stages, {})).toBe(plain.slowdown);
  });
});

describe('controller: each plan priced at the slowdown of its own work', () => {
  const CURRENT: CurrentPlan = {
    stages: [
      { host: 'device', start: 0, end: 6 },
      { host: 'edge', start: 6, end: 8 },
    ],
    pinned: false,
    adoptedAt: 0,
  };
  const snap = (now: number, slowdownByWork?: LiveSnapshot['slowdownByWork']): LiveSnapshot => ({
    now,
    input: splitModelInput(),
    slowdown: { edge: 0.4 },
    down: [],
    slowdownByWork,
  });
  const decide = (slowdownByWork?: LiveSnapshot['slowdownByWork']) => {
    const c = new Controller({ minDwellMs: 0, confirmRounds: 1 });
    c.adopted(0, snap(0, slowdownByWork));
    return c.step(snap(1000, slowdownByWork), CURRENT);
  };

  it('with one figure, moves nearly all the work onto the edge, which ran two blocks fast', () => {
    const d = decide();
    expect(d.kind).toBe('adopt');
    expect(routeOf((d as Extract<typeof d, { kind: 'adopt' }>).plan)).toBe('device[0:1) -> edge[1:8)');
  });

  it('knowing the edge ran seven blocks at 1.5x, keeps the plan: no plan priced at its own work beats it', () => {
    const pts = [
      { workMs: 14, factor: 0.4 },
      { workMs: 49, factor: 1.5 },
    ];
    const d = decide({ edge: pts });
    if (d.kind !== 'keep') throw new Error(`expected keep, got ${d.kind}: ${d.reason}`);
    expect(d.current?.latencyMs).toBeCloseTo(45.6, 6);
    // The best it found is device alone (48 ms), the split onto the edge being 83.5 ms at its own work.
    expect(d.best && routeOf(d.best)).toBe('device[0:8)');
    expect(d.best?.latencyMs).toBeCloseTo(48, 6);
  });

  it('prices the current plan at its own work too: observed slower, it is left for a plan that is not', () => {
    // The edge's one figure is 0.4, but its two blocks were observed at 3x: the current plan costs
    // 36 + 2 + 42 + 2 = 82, and device alone (48) saves 41 %.
    const d = decide({ edge: [{ workMs: 14, factor: 3 }] });
    expect(d.kind).toBe('adopt');
    expect(d.current?.latencyMs).toBeCloseTo(82, 6);
    expect(routeOf((d as Extract<typeof d, { kind: 'adopt' }>).plan)).toBe('device[0:8)');
    // The reason names the figures that decided: the edge at 3x for its two blocks, not its one figure 0.4.
    expect(d.reason).toMatch(/; priced at device\[0:6\) 1\.00x, edge\[6:8\) 3\.00x against device\[0:8\) 1\.00x;/);
    // With one figure per host there is nothing more to say than the measurements.
    expect(decide().reason).not.toMatch(/priced at/);
  });
});
