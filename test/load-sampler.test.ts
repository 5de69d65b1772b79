/**
 * The host's CPU-load sampler: the kernel's counters in /proc/stat, one file read a sample (systeminformation's
 * currentLoad() runs a shell through execSync for the same counters), and systeminformation where there is no
 * /proc/stat. Parsing and the figure between two readings, then both sources live.
 */
import { describe, expect, it } from 'vitest';
import { LoadSampler, loadBetween, procStatTimes } from '../src/runtime/host/load.js';

async function until(cond: () => boolean, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

const stat = (user: number, idle: number, steal = 0): string =>
  `cpu  ${user} 10 20 ${idle} 5 0 3 ${steal} 7 0\ncpu0 1 2 3 4 5 6 7 8 9 10\nintr 12345\n`;

describe('procStatTimes and loadBetween', () => {
  it('reads the aggregate cpu line: busy without idle and iowait, guest not counted twice', () => {
    expect(procStatTimes(stat(100, 1000, 40))).toEqual({ busy: 100 + 10 + 20 + 3 + 40, total: 173 + 1000 + 5 });
    expect(procStatTimes('cpu0 1 2 3 4\n')).toBeNull(); // no aggregate line
    expect(procStatTimes('cpu  1 2 x 4\n')).toBeNull();
    expect(procStatTimes('')).toBeNull();
  });

  it('gives the busy share between two readings, and null when no time passed', () => {
    const a = procStatTimes(stat(100, 1000))!;
    const b = procStatTimes(stat(400, 1900))!; // 300 busy of 1200 ticks
    expect(loadBetween(a, b)).toBeCloseTo(25, 6);
    expect(loadBetween(a, a)).toBeNull();
  });
});

describe('LoadSampler', () => {
  it("from scripted /proc/stat readings: the first primes, each next one gives the interval's share", async () => {
    const readings = [stat(100, 1000), stat(400, 1900), stat(1000, 2100)];
    let i = 0;
    const s = new LoadSampler(20, { readStat: () => readings[Math.min(i++, readings.length - 1)] });
    s.start();
    try {
      // i = 0 is read by the constructor's check of the source, 1 by the priming sample.
      await until(() => s.cpuPercent !== null && i >= 4, 5000);
      expect(s.cpuPercent).toBe(75); // 600 busy of 800
    } finally {
      s.stop();
    }
  });

  it('falls back to systeminformation where /proc/stat cannot be read', async () => {
    const s = new LoadSampler(50, {
      readStat: () => {
        throw new Error('ENOENT');
      },
    });
    s.start();
    try {
      await until(() => s.cpuPercent !== null, 10_000);
      expect(s.cpuPercent).toBeGreaterThanOrEqual(0);
      expect(s.cpuPercent).toBeLessThanOrEqual(100);
    } finally {
      s.stop();
    }
  });

  for (const source of ['proc', 'systeminformation'] as const)
    it(`${source}: the machine's load in percent, updated on its interval, and nothing after stop`, async () => {
      const s = new LoadSampler(50, { source });
      expect(s.cpuPercent).toBeNull();
      s.start();
      try {
        await until(() => s.cpuPercent !== null, 10_000);
        expect(s.cpuPercent).toBeGreaterThanOrEqual(0);
        expect(s.cpuPercent).toBeLessThanOrEqual(100);
        s.cpuPercent = -1;
        await until(() => s.cpuPercent !== -1, 10_000);
      } finally {
        s.stop();
      }
      await new Promise((r) => setTimeout(r, 100)); // a systeminformation sample in flight at stop may still land
      s.cpuPercent = -1;
      await new Promise((r) => setTimeout(r, 300));
      expect(s.cpuPercent).toBe(-1);
    });
});
