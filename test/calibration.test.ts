/**
 * Calibration: a plan whose requests take much longer than predicted makes the controller take its
 * bottleneck host to be slower, for every plan it prices. Priced by hand on the model of
 * controller-load.test.ts (8 blocks; device 6 ms, edge 7 ms a block; at 2 requests in flight the split
 * device[0:4) -> edge[4:8) wins with latency 56 ms and bottleneck 28 ms, the edge's stage; device alone is
 * max(48, 2 x 48) = 96 ms).
 */
import { describe, expect, it } from 'vitest';
import {
  bottleneckFactor,
  Calibration,
  Controller,
  type CurrentPlan,
  type Decision,
  type LiveSnapshot,
  type Measured,
} from '../src/planner/index.js';
import { splitModelInput } from './helpers/split-model.js';

const input = splitModelInput;

const SPAN = 3000;
const snap = (
  now: number,
  o: { measured?: Measured; edgeSlowdown?: number; edgeMbps?: number } = {},
): LiveSnapshot => ({
  now,
  input: input(o.edgeMbps),
  slowdown: o.edgeSlowdown === undefined ? {} : { edge: o.edgeSlowdown },
  down: [],
  concurrency: 2,
  measured: o.measured,
});
const measured = (ms: number): Measured => ({ medianMs: ms, count: 20, spanMs: SPAN });
const route = (d: Decision): string => {
  const p = d.kind === 'adopt' ? d.plan : d.kind === 'propose' ? d.candidate : d.current;
  return (p?.stages ?? []).map((s) => `${s.host}[${s.start}:${s.end})`).join(' ');
};

/** A controller running the split since t = 0. */
function splitRunning(settings: ConstructorParameters<typeof Controller>[0] = {}): {
  c: Controller;
  current: CurrentPlan;
} {
  const c = new Controller({ minDwellMs: 0, confirmRounds: 1, ...settings });
  const first = c.step(snap(0), null);
  expect(first.kind).toBe('adopt');
  expect(route(first)).toBe('device[0:4) edge[4:8)');
  c.adopted(0, snap(0), (first as Extract<Decision, { kind: 'adopt' }>).plan);
  const current: CurrentPlan = {
    stages: [
      { host: 'device', start: 0, end: 4 },
      { host: 'edge', start: 4, end: 8 },
    ],
    pinned: false,
    adoptedAt: 0,
  };
  return { c, current };
}

describe('bottleneckFactor', () => {
  it('is the factor on the bottleneck stage that makes the loaded prediction meet the measurement', () => {
    const { c } = splitRunning();
    const p = (c.step(snap(100), null) as Extract<Decision, { kind: 'adopt' }>).plan;
    expect(p.latencyMs).toBeCloseTo(56, 6);
    expect(p.bottleneckMs).toBeCloseTo(28, 6);
    // 120 ms measured: min(1 + 64 / 28, 120 / 56) = 2.142...; the edge's 28 ms become 60 and max(88, 120) = 120.
    const b = bottleneckFactor(p, 2, 120);
    expect(b?.host).toBe('edge');
    expect(b?.factor).toBeCloseTo(120 / 56, 9);
    // Latency-bound: at 1 request in flight 70 ms measured means the edge's 28 ms became 42.
    expect(bottleneckFactor(p, 1, 70)?.factor).toBeCloseTo(1.5, 9);
    // Faster than predicted: nothing to correct.
    expect(bottleneckFactor(p, 2, 50)).toBeNull();
  });
});

describe("controller: calibration from the current plan's measured latency", () => {
  it('moves off a plan whose requests take far longer than predicted, and says why', () => {
    const { c, current } = splitRunning();
    const ds: Decision[] = [];
    for (let t = 500; t <= 4000; t += 500) {
      const d = c.step(snap(t, { measured: measured(120) }), current);
      ds.push(d);
      if (d.kind === 'adopt') break;
    }
    // No calibration before the rounds cover a whole span.
    expect(ds.slice(0, -1).every((d) => d.kind === 'keep')).toBe(true);
    const last = ds[ds.length - 1];
    expect(last.kind).toBe('adopt');
    // With the edge at 2.14 x 7 = 15 ms a block, less of the model goes there: device 36 ms, edge 30 ms,
    // max(~70, 2 x 36) = 72 ms beats the calibrated split's 120 and device alone's 96.
    expect(route(last)).toBe('device[0:6) edge[6:8)');
    expect(last.reason).toMatch(
      /calibrated: device\[0:4\) -> edge\[4:8\) answered in 120 ms \(20 requests\), predicted 56\.0 ms, so edge is taken 2\.14x slower/,
    );
    expect(c.calibration(snap(3500)).edge).toBeCloseTo(120 / 56, 3);
  });

  it('leaves a plan alone that delivers within calibrateAbove of its prediction', () => {
    const { c, current } = splitRunning();
    for (let t = 500; t <= 8000; t += 500) {
      const d = c.step(snap(t, { measured: measured(63) }), current); // 1.125 x 56, under the default 1.15
      expect(d.kind).toBe('keep');
    }
    expect(c.calibration(snap(8000))).toEqual({});
  });

  it('measures against the highest prediction of the span (an estimate catching up), and needs enough requests', () => {
    const { c, current } = splitRunning();
    // The device->edge link drops to 0.05 Mbit/s for a second and comes back; the prediction follows it (376
    // ms: 160 ms each way for 1 kB, then 56 again), and the requests it slowed (400 ms) fill the median
    // for a while after the prediction is back at 56: not a host slower than thought.
    for (let t = 500; t <= 6000; t += 500) {
      const dropped = t >= 4000 && t < 5000;
      c.step(snap(t, { measured: measured(t >= 4500 ? 400 : 58), edgeMbps: dropped ? 0.05 : 8 }), current);
    }
    expect(c.calibration(snap(6000))).toEqual({});
    const few = splitRunning();
    for (let t = 500; t <= 6000; t += 500)
      few.c.step(snap(t, { measured: { medianMs: 200, count: 5, spanMs: SPAN } }), few.current);
    expect(few.c.calibration(snap(6000))).toEqual({});
  });

  it("a correction fades with its half-life and goes when the host's slowdown moves", () => {
    const cal = new Calibration();
    cal.learn('edge', 3, 1, 0, 10_000);
    expect(cal.factors({ edge: 1 }, 0, 10_000).edge).toBeCloseTo(3, 9);
    expect(cal.factors({ edge: 1 }, 10_000, 10_000).edge).toBeCloseTo(2, 9);
    // Its slowdown moved 1 -> 6.7 (a new CPU quota): the correction is dropped, for good.
    expect(cal.factors({ edge: 6.7 }, 10_000, 10_000)).toEqual({});
    expect(cal.factors({ edge: 1 }, 10_000, 10_000)).toEqual({});
    // Corrections compound up to the cap, and another host's stays as it is.
    cal.learn('edge', 3, 1, 0, 0);
    cal.learn('device', 1.5, 4, 0, 0);
    expect(cal.learn('edge', 3, 1, 0, 0)).toBe(4);
    expect(cal.factors({ edge: 1, device: 4 }, 1e9, 0)).toEqual({ edge: 4, device: 1.5 });
  });

  it('calibrateAbove 0 turns it off, and the setting is checked', () => {
    const { c, current } = splitRunning({ calibrateAbove: 0 });
    for (let t = 500; t <= 8000; t += 500)
      expect(c.step(snap(t, { measured: measured(200) }), current).kind).toBe('keep');
    expect(c.calibration(snap(8000))).toEqual({});
    expect(() => new Controller({ calibrateAbove: 0.5 })).toThrow(/calibrateAbove: must be 0 \(off\) or a number >= 1/);
    expect(() => new Controller({ calibrationHalfLifeMs: -1 })).toThrow(/calibrationHalfLifeMs: must be a number >= 0/);
  });
});
