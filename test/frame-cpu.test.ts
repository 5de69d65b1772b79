import { describe, expect, it } from 'vitest';
import { FrameCpu, mainThreadCpuMs } from '../src/runtime/host/frame-cpu.js';

describe('FrameCpu: the event loop CPU per stage run from a frame', () => {
  it("reads this thread's CPU time from schedstat, in ms, rising with work", () => {
    const a = mainThreadCpuMs();
    expect(a).not.toBeNull();
    const t = performance.now();
    let x = 0;
    while (performance.now() - t < 30) x += Math.sqrt(x + 1);
    const b = mainThreadCpuMs() as number;
    expect(x).toBeGreaterThan(0);
    // 30 ms of spinning: at least most of it on the CPU, and not more than wall time allows.
    expect(b - (a as number)).toBeGreaterThan(15);
    expect(b - (a as number)).toBeLessThan(performance.now() - t + 5);
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
    // Unreadable: no figure.
    expect(new FrameCpu(() => null).beat(0, 100)).toBeNull();
  });
});
