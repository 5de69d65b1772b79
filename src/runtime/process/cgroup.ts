/**
 * A CPU quota for a host process through Linux cgroups — the mechanism behind a container's CPU limit.
 * Works with cgroup v2 (`cpu.max`) and v1 (`cpu.cfs_quota_us`); needs root. Anywhere else it reports why it
 * could not apply the quota and the host runs unlimited.
 */
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { errorMessage } from '../../errors.js';

interface CpuQuotaResult {
  readonly applied: boolean;
  /** 'v2' | 'v1' when applied; why not otherwise. */
  readonly detail: string;
  /** The cgroup directory, to remove when the process ends. */
  readonly dir?: string;
}

const ROOT = '/sys/fs/cgroup';
/** The kernel's default CFS period, and what `applyCpuQuota` uses unless told otherwise. */
const PERIOD_US = 100_000;
/** The least quota per period the kernel accepts (cfs_quota_us, cpu.max). */
const MIN_QUOTA_US = 1000;

/**
 * The period for hosts' quotas: 20 ms, or longer where the quota would fall under the kernel's 1 ms. A
 * quota runs out and freezes the whole process, event loop included, until the period ends: at 0.25 CPU
 * that is a 75 ms freeze in every 100 ms period by default, 15 ms with 20 ms periods. Same share of the CPU,
 * a smoother one: a host's pings, acks and heartbeats are answered within a few ms instead of a whole
 * freeze, so its links are measured as links, not as its stalls.
 */
export function hostQuotaPeriodUs(cpus: number): number {
  return Math.min(1_000_000, Math.max(20_000, Math.ceil(MIN_QUOTA_US / cpus)));
}

/** Limits process `pid` to `cpus` CPUs (0.5 = half a core) in a cgroup named `name`, per `periodUs`. */
export function applyCpuQuota(
  pid: number,
  name: string,
  cpus: number,
  root = ROOT,
  periodUs = PERIOD_US,
): CpuQuotaResult {
  if (process.platform !== 'linux')
    return { applied: false, detail: `cgroups need Linux (this is ${process.platform})` };
  if (!(cpus > 0)) return { applied: false, detail: `quota ${cpus} is not a positive number of CPUs` };
  const quota = Math.max(MIN_QUOTA_US, Math.round(cpus * periodUs));
  const safe = name.replace(/[^\w.-]/g, '_');
  try {
    const v2 = join(root, 'cgroup.controllers');
    if (existsSync(v2) && readFileSync(v2, 'utf8').split(/\s+/).includes('cpu')) {
      // cgroup v2: the cpu controller must be enabled for children of the parent.
      try {
        writeFileSync(join(root, 'cgroup.subtree_control'), '+cpu');
      } catch {
        // Already enabled, or delegated differently: writing cpu.max below tells.
      }
      const dir = join(root, `cleave-${safe}`);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'cpu.max'), `${quota} ${periodUs}`);
      writeFileSync(join(dir, 'cgroup.procs'), String(pid));
      return { applied: true, detail: `cgroup v2 cpu.max ${quota}/${periodUs}`, dir };
    }
    const v1 = join(root, 'cpu');
    if (existsSync(join(v1, 'cpu.cfs_quota_us'))) {
      const dir = join(v1, `cleave-${safe}`);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'cpu.cfs_period_us'), String(periodUs));
      writeFileSync(join(dir, 'cpu.cfs_quota_us'), String(quota));
      writeFileSync(join(dir, 'cgroup.procs'), String(pid));
      return { applied: true, detail: `cgroup v1 cpu.cfs_quota_us ${quota}/${periodUs}`, dir };
    }
    return { applied: false, detail: `no cgroup cpu controller under ${root}` };
  } catch (e) {
    return { applied: false, detail: `could not set a CPU quota: ${errorMessage(e)}` };
  }
}

/** Moves this process back to the parent cgroup and removes the one applyCpuQuota made for it. */
export function leaveCgroup(dir: string | undefined): void {
  if (!dir) return;
  try {
    writeFileSync(join(dir, '..', 'cgroup.procs'), String(process.pid));
  } catch {
    // Not ours to move; rmdir below then fails quietly too.
  }
  removeCgroup(dir);
}

/** Removes a cgroup made by applyCpuQuota once its processes have exited (best effort). */
export function removeCgroup(dir: string | undefined): void {
  if (!dir) return;
  try {
    rmdirSync(dir);
  } catch {
    // Still has processes, or already gone.
  }
}

/**
 * Changes the quota of a cgroup made by applyCpuQuota while its process runs, keeping its period (the
 * `detail` says which file).
 */
export function setCpuQuota(dir: string, cpus: number): CpuQuotaResult {
  if (!(cpus > 0)) return { applied: false, detail: `quota ${cpus} is not a positive number of CPUs` };
  try {
    if (existsSync(join(dir, 'cpu.max'))) {
      const period = Number(readFileSync(join(dir, 'cpu.max'), 'utf8').trim().split(/\s+/)[1]) || PERIOD_US;
      const quota = Math.max(MIN_QUOTA_US, Math.round(cpus * period));
      writeFileSync(join(dir, 'cpu.max'), `${quota} ${period}`);
      return { applied: true, detail: `cgroup v2 cpu.max ${quota}/${period}`, dir };
    }
    const period = Number(readFileSync(join(dir, 'cpu.cfs_period_us'), 'utf8').trim()) || PERIOD_US;
    const quota = Math.max(MIN_QUOTA_US, Math.round(cpus * period));
    writeFileSync(join(dir, 'cpu.cfs_quota_us'), String(quota));
    return { applied: true, detail: `cgroup v1 cpu.cfs_quota_us ${quota}/${period}`, dir };
  } catch (e) {
    return { applied: false, detail: `could not change the CPU quota: ${errorMessage(e)}` };
  }
}

export interface OwnCpu {
  /** The CPU quota of this process's cgroup in CPUs, or null when it has none (or none can be read). */
  readonly cpus: number | null;
  /** Cumulative time the cgroup was throttled (ms), or null. */
  readonly throttledMs: number | null;
}

/**
 * This process's own CPU quota and throttling, read from its cgroup (v2 `cpu.max`/`cpu.stat`, v1
 * `cpu.cfs_quota_us`/`cpu.stat`). Unlike the machine's load, it tells hosts sharing a machine apart.
 */
export function ownCpu(root = ROOT, procCgroup = '/proc/self/cgroup'): OwnCpu {
  const none: OwnCpu = { cpus: null, throttledMs: null };
  let lines: string[];
  try {
    lines = readFileSync(procCgroup, 'utf8').split('\n');
  } catch {
    return none;
  }
  const read = (f: string): string | null => {
    try {
      return readFileSync(f, 'utf8').trim();
    } catch {
      return null;
    }
  };
  const stat = (f: string, key: string): number | null => {
    const m = new RegExp(`^${key} (\\d+)$`, 'm').exec(read(f) ?? '');
    return m ? Number(m[1]) : null;
  };
  const v1 = lines.map((l) => l.split(':')).find((p) => p.length >= 3 && p[1].split(',').includes('cpu'));
  if (v1) {
    const dir = join(root, 'cpu', v1.slice(2).join(':'));
    const quota = Number(read(join(dir, 'cpu.cfs_quota_us')));
    const period = Number(read(join(dir, 'cpu.cfs_period_us')));
    const ns = stat(join(dir, 'cpu.stat'), 'throttled_time');
    return { cpus: quota > 0 && period > 0 ? quota / period : null, throttledMs: ns === null ? null : ns / 1e6 };
  }
  const v2 = lines.map((l) => l.split(':')).find((p) => p.length >= 3 && p[0] === '0' && p[1] === '');
  if (v2) {
    const dir = join(root, v2.slice(2).join(':'));
    const [q, p] = (read(join(dir, 'cpu.max')) ?? 'max').split(/\s+/);
    const us = stat(join(dir, 'cpu.stat'), 'throttled_usec');
    return {
      cpus: q !== 'max' && Number(p) > 0 ? Number(q) / Number(p) : null,
      throttledMs: us === null ? null : us / 1000,
    };
  }
  return none;
}
