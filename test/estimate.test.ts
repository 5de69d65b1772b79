import { describe, expect, it } from 'vitest';
import { ESTIMATE_DEFAULTS, RecentMedian, WindowExtreme, slowdownOf } from '../src/planner/index.js';
import { quantile } from '../src/planner/estimate.js';
import { expectError } from './helpers/errors.js';

describe('slowdownOf', () => {
  const blocks = [10, 10, 10, 10];

  it('is 1 when nothing was observed', () => {
    expect(slowdownOf([], blocks)).toBe(1);
  });

  it('is observed over predicted for one segment', () => {
    expect(slowdownOf([{ start: 0, end: 2, meanMs: 40, count: 10 }], blocks)).toBe(2);
  });

  it('sums times over segments rather than averaging their ratios', () => {
    // Ratios 3 and 1 would average to 2; the time-weighted slowdown is 60 / 40.
    const obs = [
      { start: 0, end: 1, meanMs: 30, count: 5 },
      { start: 1, end: 4, meanMs: 30, count: 5 },
    ];
    expect(slowdownOf(obs, blocks)).toBe(1.5);
  });

  it('counts the stage overhead for a segment that starts after block 0, as the planner does', () => {
    const obs = [{ start: 2, end: 4, meanMs: 30, count: 5 }];
    expect(slowdownOf(obs, blocks, { stageOverheadMs: 10 })).toBe(1);
    expect(slowdownOf(obs, blocks)).toBe(1.5);
    expect(slowdownOf([{ start: 0, end: 2, meanMs: 20, count: 5 }], blocks, { stageOverheadMs: 10 })).toBe(1);
  });

  it('ignores segments with fewer than minRuns runs', () => {
    const obs = [
      { start: 0, end: 2, meanMs: 400, count: ESTIMATE_DEFAULTS.minRuns - 1 },
      { start: 2, end: 4, meanMs: 20, count: 5 },
    ];
    expect(slowdownOf(obs, blocks)).toBe(1);
    expect(slowdownOf(obs, blocks, { minRuns: 1 })).toBe(420 / 40);
    expect(slowdownOf([obs[0]], blocks)).toBe(1);
  });

  it('clamps to [minSlowdown, maxSlowdown]', () => {
    expect(slowdownOf([{ start: 0, end: 4, meanMs: 40_000, count: 5 }], blocks)).toBe(ESTIMATE_DEFAULTS.maxSlowdown);
    expect(slowdownOf([{ start: 0, end: 4, meanMs: 0.4, count: 5 }], blocks)).toBe(ESTIMATE_DEFAULTS.minSlowdown);
    expect(slowdownOf([{ start: 0, end: 4, meanMs: 400, count: 5 }], blocks, { maxSlowdown: 4 })).toBe(4);
  });

  it('is 1 when the observed blocks are profiled at 0 ms', () => {
    expect(slowdownOf([{ start: 0, end: 2, meanMs: 5, count: 5 }], [0, 0, 10])).toBe(1);
  });

  it('rejects a malformed segment, naming it', () => {
    expectError(
      () => slowdownOf([{ start: 0, end: 5, meanMs: 1, count: 5 }], blocks),
      'E_BAD_INPUT',
      /^observed\[0\]\.end: /,
    );
    expectError(
      () =>
        slowdownOf(
          [
            { start: 0, end: 1, meanMs: 1, count: 5 },
            { start: 2, end: 2, meanMs: 1, count: 5 },
          ],
          blocks,
        ),
      'E_BAD_INPUT',
      /^observed\[1\]\.end: /,
    );
    expectError(
      () => slowdownOf([{ start: -1, end: 1, meanMs: 1, count: 5 }], blocks),
      'E_BAD_INPUT',
      /^observed\[0\]\.start: /,
    );
    expectError(
      () => slowdownOf([{ start: 0, end: 1, meanMs: Number.NaN, count: 5 }], blocks),
      'E_BAD_INPUT',
      /^observed\[0\]\.meanMs: /,
    );
    expectError(
      () => slowdownOf([{ start: 0, end: 1, meanMs: 1, count: 1.5 }], blocks),
      'E_BAD_INPUT',
      /^observed\[0\]\.count: /,
    );
    expectError(() => slowdownOf([], [1, -1]), 'E_BAD_INPUT', /^blockMs\[1\]: /);
  });
});

describe('WindowExtreme', () => {
  it('max: a slow outlier does not lower a capacity estimate; a real drop shows once the window has passed', () => {
    const w = new WindowExtreme('max', 1500);
    for (let t = 0; t <= 2000; t += 500) w.add(t, t === 1000 ? 1 : 100); // one stalled sample at t = 1000
    expect(w.value(2000)).toBe(100);
    for (let t = 2500; t <= 4000; t += 500) w.add(t, 5); // the link really drops to 5 at t = 2500
    expect(w.value(3000)).toBe(100); // 2000's 100 is still in the window
    expect(w.value(4000)).toBe(5); // 1.5 s after the step
  });

  it('min: the least recent round trip; the latest sample once all are older than the window', () => {
    const w = new WindowExtreme('min', 1000);
    expect(w.value(0)).toBeNull();
    w.add(0, 10);
    w.add(100, 50);
    expect(w.value(500)).toBe(10);
    expect(w.value(10_000)).toBe(50);
  });

  it('refuses bad samples and options, naming them', () => {
    expect(() => new WindowExtreme('max', 0)).toThrow(/windowMs/);
    expect(() => new WindowExtreme('max').add(0, NaN)).toThrow(/value/);
  });
});

describe('slowdownOf dampMs', () => {
  it('pulls a segment of tiny blocks towards 1 and leaves long ones nearly as they are', () => {
    const blockMs = [0.02, 0.02, 50, 50];
    // The last block alone: 0.25 ms observed against 0.02 profiled is 12.5x undamped, ~1.2x damped by 1 ms.
    expect(slowdownOf([{ start: 1, end: 2, meanMs: 0.25, count: 10 }], blockMs)).toBeCloseTo(12.5, 6);
    expect(slowdownOf([{ start: 1, end: 2, meanMs: 0.25, count: 10 }], blockMs, { dampMs: 1 })).toBeCloseTo(
      1.25 / 1.02,
      6,
    );
    // 200 ms against 100 ms: 2x, damped 201 / 101.
    expect(slowdownOf([{ start: 2, end: 4, meanMs: 200, count: 10 }], blockMs, { dampMs: 1 })).toBeCloseTo(
      201 / 101,
      6,
    );
    expect(() => slowdownOf([], blockMs, { dampMs: -1 })).toThrow(/dampMs/);
  });
});

describe('RecentMedian', () => {
  it('is null before a sample, then the median of the latest samples', () => {
    const m = new RecentMedian(5);
    expect(m.value).toBeNull();
    m.add(10);
    expect(m.value).toBe(10);
    m.add(30);
    expect(m.value).toBe(20);
    for (const x of [20, 40, 50]) m.add(x);
    expect(m.value).toBe(30);
    expect(m.runs).toBe(5);
  });

  it('follows a step once most kept samples are new, and ignores a single outlier', () => {
    const m = new RecentMedian(5);
    for (let i = 0; i < 10; i++) m.add(10);
    m.add(500);
    expect(m.value).toBe(10);
    m.add(100);
    expect(m.value).toBe(10);
    m.add(100);
    // Three of the five kept are now from after the step.
    expect(m.value).toBe(100);
    expect(m.runs).toBe(13);
  });

  it('refuses a bad size or sample', () => {
    expect(() => new RecentMedian(0)).toThrow(/^size: must be an integer >= 1/);
    expect(() => new RecentMedian(5).add(Number.NaN)).toThrow(/^value: must be a finite number/);
  });
});

describe('quantile', () => {
  it('interpolates between the nearest samples, whatever their order, and is 0 for none', () => {
    expect(quantile([], 0.5)).toBe(0);
    expect(quantile([7], 0.9)).toBe(7);
    expect(quantile([3, 1, 2], 0.5)).toBe(2);
    expect(quantile([4, 1, 3, 2], 0.5)).toBe(2.5);
    expect(quantile([10, 0], 0.9)).toBeCloseTo(9, 12);
    expect(quantile([5, 1, 9], 0)).toBe(1);
    expect(quantile([5, 1, 9], 1)).toBe(9);
    const xs = [3, 1, 2];
    quantile(xs, 0.5);
    expect(xs).toEqual([3, 1, 2]);
  });
});
