/**
 * CPU quotas through cgroups. On this machine (Linux, root, cgroup v1 cpu controller) a real busy process is
 * put under a 0.25-CPU quota and its CPU time is measured from /proc; cgroup v2 cannot be mounted next to a
 * v1 cpu controller, so its file protocol is checked against a folder laid out like a v2 hierarchy.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { applyCpuQuota, hostQuotaPeriodUs, ownCpu, removeCgroup, setCpuQuota } from '../src/runtime/process/cgroup.js';

const V1 = '/sys/fs/cgroup/cpu/cpu.cfs_quota_us';
const V2 = '/sys/fs/cgroup/cgroup.controllers';
const canQuota =
  process.platform === 'linux' &&
  process.getuid?.() === 0 &&
  (existsSync(V1) || (existsSync(V2) && readFileSync(V2, 'utf8').includes('cpu')));

/** utime + stime of `pid` in seconds. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // USER_HZ is 100 on Linux
}

describe('applyCpuQuota', () => {
  it.runIf(canQuota)(
    'holds a busy process to about a quarter of a CPU, and the cgroup goes when it exits',
    async () => {
      const child = spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' });
      const pid = child.pid as number;
      try {
        const r = applyCpuQuota(pid, `test-${process.pid}`, 0.25);
        expect(r.applied, r.detail).toBe(true);
        expect(r.detail).toMatch(/cgroup v[12] .*25000.*100000/);
        expect(readFileSync(join(r.dir as string, 'cgroup.procs'), 'utf8')).toContain(String(pid));
        await new Promise((res) => setTimeout(res, 300));
        const c0 = cpuSeconds(pid);
        const t0 = performance.now();
        await new Promise((res) => setTimeout(res, 1500));
        const share = (cpuSeconds(pid) - c0) / ((performance.now() - t0) / 1000);
        // Unthrottled it would use a whole CPU (1.0); the quota allows 0.25 per 100 ms period.
        expect(share).toBeGreaterThan(0.1);
        expect(share).toBeLessThan(0.45);
        const gone = new Promise((res) => child.once('exit', res));
        child.kill('SIGKILL');
        await gone;
        removeCgroup(r.dir);
        expect(existsSync(r.dir as string)).toBe(false);
      } finally {
        if (child.exitCode === null) child.kill('SIGKILL');
      }
    },
  );

  it('writes cpu.max and cgroup.procs under a cgroup v2 hierarchy', () => {
    const root = mkdtempSync(join(tmpdir(), 'cleave-cg2-'));
    try {
      writeFileSync(join(root, 'cgroup.controllers'), 'cpuset cpu io memory pids\n');
      writeFileSync(join(root, 'cgroup.subtree_control'), '');
      const r = applyCpuQuota(4242, 'edge/1', 1.5, root);
      expect(r).toMatchObject({ applied: true, detail: 'cgroup v2 cpu.max 150000/100000' });
      expect(r.dir).toBe(join(root, 'cleave-edge_1'));
      expect(readFileSync(join(root, 'cgroup.subtree_control'), 'utf8')).toBe('+cpu');
      expect(readFileSync(join(r.dir as string, 'cpu.max'), 'utf8')).toBe('150000 100000');
      expect(readFileSync(join(r.dir as string, 'cgroup.procs'), 'utf8')).toBe('4242');
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('writes the cfs files under a cgroup v1 hierarchy, with a floor of 1 ms per period', () => {
    const root = mkdtempSync(join(tmpdir(), 'cleave-cg1-'));
    try {
      // A v1 hierarchy has the cpu controller mounted at ROOT/cpu.
      const cpu = join(root, 'cpu');
      mkdirSync(cpu);
      writeFileSync(join(cpu, 'cpu.cfs_quota_us'), '-1');
      const r = applyCpuQuota(7, 'pi', 0.001, root);
      expect(r).toMatchObject({ applied: true, detail: 'cgroup v1 cpu.cfs_quota_us 1000/100000' });
      expect(readFileSync(join(r.dir as string, 'cpu.cfs_period_us'), 'utf8')).toBe('100000');
      expect(readFileSync(join(r.dir as string, 'cpu.cfs_quota_us'), 'utf8')).toBe('1000');
      expect(readFileSync(join(r.dir as string, 'cgroup.procs'), 'utf8')).toBe('7');
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('says why when there is no cpu controller or the quota is not positive, and applies nothing', () => {
    const root = mkdtempSync(join(tmpdir(), 'cleave-cg0-'));
    try {
      expect(applyCpuQuota(1, 'x', 0.5, root)).toEqual({
        applied: false,
        detail: `no cgroup cpu controller under ${root}`,
      });
      expect(applyCpuQuota(1, 'x', 0, root)).toEqual({
        applied: false,
        detail: 'quota 0 is not a positive number of CPUs',
      });
      expect(applyCpuQuota(1, 'x', Number.NaN, root).applied).toBe(false);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('ownCpu and setCpuQuota', () => {
  it('read a v1 hierarchy: quota in CPUs and throttled time, and a changed quota reads back', () => {
    const root = mkdtempSync(join(tmpdir(), 'cleave-cg1-'));
    try {
      const dir = join(root, 'cpu', 'cleave-edge');
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'cpu.cfs_quota_us'), '100000\n');
      writeFileSync(join(dir, 'cpu.cfs_period_us'), '100000\n');
      writeFileSync(join(dir, 'cpu.stat'), 'nr_periods 10\nnr_throttled 3\nthrottled_time 45000000\n');
      const proc = join(root, 'self-cgroup');
      writeFileSync(proc, '4:memory:/x\n1:cpu,cpuacct:/cleave-edge\n0::/\n');
      expect(ownCpu(root, proc)).toEqual({ cpus: 1, throttledMs: 45 });
      const r = setCpuQuota(dir, 0.15);
      expect(r.applied, r.detail).toBe(true);
      expect(readFileSync(join(dir, 'cpu.cfs_quota_us'), 'utf8')).toBe('15000');
      expect(ownCpu(root, proc).cpus).toBeCloseTo(0.15, 9);
      writeFileSync(join(dir, 'cpu.cfs_quota_us'), '-1');
      expect(ownCpu(root, proc).cpus).toBeNull();
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('read a v2 hierarchy; no cgroup file means no quota', () => {
    const root = mkdtempSync(join(tmpdir(), 'cleave-cg2-'));
    try {
      const dir = join(root, 'cleave-dev');
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'cpu.max'), '25000 100000\n');
      writeFileSync(join(dir, 'cpu.stat'), 'usage_usec 10\nthrottled_usec 2500\n');
      const proc = join(root, 'self-cgroup');
      writeFileSync(proc, '0::/cleave-dev\n');
      expect(ownCpu(root, proc)).toEqual({ cpus: 0.25, throttledMs: 2.5 });
      expect(setCpuQuota(dir, 2).applied).toBe(true);
      expect(readFileSync(join(dir, 'cpu.max'), 'utf8')).toBe('200000 100000');
      writeFileSync(join(dir, 'cpu.max'), 'max 100000');
      expect(ownCpu(root, proc).cpus).toBeNull();
      expect(ownCpu(root, join(root, 'missing'))).toEqual({ cpus: null, throttledMs: null });
      expect(setCpuQuota(dir, 0).applied).toBe(false);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('hostQuotaPeriodUs', () => {
  it('is 20 ms, longer only where the quota would fall under the kernel 1 ms minimum', () => {
    expect(hostQuotaPeriodUs(0.25)).toBe(20_000);
    expect(hostQuotaPeriodUs(1)).toBe(20_000);
    expect(hostQuotaPeriodUs(0.02)).toBe(50_000);
    expect(hostQuotaPeriodUs(0.0001)).toBe(1_000_000);
  });

  it.runIf(canQuota)('a host quota on a 20 ms period reads back as the same share of a CPU', async () => {
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 5000)'], { stdio: 'ignore' });
    let dir: string | undefined;
    try {
      const r = applyCpuQuota(child.pid as number, `period-${process.pid}`, 0.25, undefined, hostQuotaPeriodUs(0.25));
      dir = r.dir;
      expect(r.applied, r.detail).toBe(true);
      expect(r.detail).toMatch(/5000\/20000/);
      expect(setCpuQuota(r.dir as string, 0.5).detail).toMatch(/10000\/20000/);
    } finally {
      const gone = new Promise((res) => child.once('exit', res));
      child.kill('SIGKILL');
      await gone;
      removeCgroup(dir);
    }
  });
});
