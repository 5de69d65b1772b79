import { describe, expect, it } from 'vitest';
import { FrameCpu, mainThreadCpuMs } from '../src/runtime/host/frame-cpu.js';

describe('FrameCpu: the event loop CPU per stage run from a frame', () => {
  it("reads this thread's CPU time from schedstat, in ms, rising with work and never faster than the clock", () => {
    const a = mainThreadCpuMs() as number;
    expect(a).not.toBeNull();
    const t = performance.now();
    // Spin until the thread has had 20 ms of CPU (on a busy machine that takes longer than 20 ms of wall time).
    let x = 0;
    let b = a;
    while (b - a < 20 && performance.now() - t < 10_000) {
      for (let i = 0; i < 10_000; i++) x += Math.sqrt(x + i);
      b = mainThreadCpuMs() as number;
    }
    expect(x).toBeGreaterThan(0);
    expect(b - a).toBeGreaterThanOrEqual(20);
    expect(b - a).toBeLessThan(performance.now() - t + 1);
    expect(mainThreadCpuMs('/nonexistent/schedstat')).toBeNull();
  });

  it('takes the idle loop out and divides the rest by the stages, once enough ran', () => {
    // A scripted CPU clock: 2 ms of CPU per 500 ms idle (pings, heartbeats), 1.5 ms more per stage.
    let cpu = 100;
    const f = new FrameCpu(() => cpu);
    let t = 0;
    let stages = 0;
    const beat = (n: number): number | null => {
      t += 500;
      stages += n;
      cpu += 2 + 1.5 * n;
      return f.beat(t, stages);
    };
    expect(f.beat(0, 0)).toBeNull();
    for (let i = 0; i < 4; i++) expect(beat(0)).toBeNull(); // idle: nothing to say per stage
    expect(beat(5)).toBeNull(); // 5 stages: too few
    expect(beat(10)).toBeCloseTo(1.5, 9);
    for (let i = 0; i < 12; i++) expect(beat(10)).toBeCloseTo(1.5, 9);
    // The window is the last 10 beats: a costlier stage shows within it.
    let last: number | null = null;
    for (let i = 0; i < 10; i++) {
      t += 500;
      stages += 10;
      cpu += 2 + 4 * 10;
      last = f.beat(t, stages);
    }
    expect(last).toBeCloseTo(4, 9);
    // A beat with no new stage but one running (a slow stage under a quota) is not idle: its CPU is the stage's.
    const g = new FrameCpu(() => cpu);
    cpu = 0;
    t = 0;
    expect(g.beat(0, 0, 0)).toBeNull();
    t += 500;
    cpu += 2; // idle: 2 ms per beat
    g.beat(t, 0, 0);
    let n = 0;
    let fig: number | null = null;
    for (let i = 0; i < 10; i++) {
      t += 500;
      // A stage's 3 ms spread over two beats, still running at the first (counted as idle, it would raise
      // the idle rate to 3.5 ms a beat and take the stage's own CPU out).
      cpu += 2 + 1.5;
      n += i % 2;
      fig = g.beat(t, n * 2, i % 2 ? 0 : 1);
    }
    // 10 stages counted (2 per completion, to pass the minimum), 15 ms of stage CPU: 1.5 ms each.
    expect(fig).toBeCloseTo(1.5, 9);
    // Unreadable: no figure.
    expect(new FrameCpu(() => null).beat(0, 100)).toBeNull();
  });
});
