/**
 * CPU load of the machine this host runs on, sampled on a timer. The planner's controller reads it to scale
 * a host's profiled block times.
 *
 * On Linux the figure comes from the kernel's counters in /proc/stat, read with one file read a sample.
 * systeminformation's currentLoad(), which the sampler called before, reads the same counters but runs
 * `cat /proc/stat | grep cpu` through execSync on every call: the shell blocked the host's event loop for a
 * median 10-20 ms a sample, and under a host's CPU quota its CPU time is the host's (the shell is in the
 * host's cgroup), so a 0.25-CPU host spent several times as long frozen (`npm run bench -- load-sampler`).
 * Elsewhere (no /proc/stat) systeminformation is used, which there reads os.cpus() without a shell.
 */
import { readFileSync } from 'node:fs';
import si from 'systeminformation';

/** Busy and total CPU time of the whole machine, in the kernel's ticks (all cores). */
export interface CpuTimes {
  readonly busy: number;
  readonly total: number;
}

/**
 * The machine's CPU times from the text of /proc/stat (its aggregate `cpu` line), or null if it has none.
 * Busy is user + nice + system + irq + softirq + steal (guest time is already inside user and nice); total
 * adds idle and iowait.
 */
export function procStatTimes(text: string): CpuTimes | null {
  const line = text.split('\n').find((l) => /^cpu\s/.test(l));
  if (!line) return null;
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  if (f.length < 4 || f.some((x) => !Number.isFinite(x))) return null;
  const [user, nice, system, idle, iowait = 0, irq = 0, softirq = 0, steal = 0] = f;
  const busy = user + nice + system + irq + softirq + steal;
  return { busy, total: busy + idle + iowait };
}

/** Percent busy between two readings, or null when no time passed between them. */
export function loadBetween(a: CpuTimes, b: CpuTimes): number | null {
  const total = b.total - a.total;
  if (!(total > 0)) return null;
  return Math.min(100, Math.max(0, ((b.busy - a.busy) / total) * 100));
}

export interface LoadSamplerOptions {
  /**
   * `proc`: /proc/stat (the default where it can be read); `systeminformation`: its currentLoad() (the
   * default elsewhere, and the benchmark's baseline).
   */
  readonly source?: 'proc' | 'systeminformation';
  /** Reads /proc/stat (tests pass their own). */
  readonly readStat?: () => string;
}

const readProcStat = (): string => readFileSync('/proc/stat', 'utf8');

export class LoadSampler {
  private timer: NodeJS.Timeout | null = null;
  private last: CpuTimes | null = null;
  private readonly source: 'proc' | 'systeminformation';
  private readonly readStat: () => string;
  /** Percent busy over the last interval, all cores; null before the first sample. */
  cpuPercent: number | null = null;

  constructor(
    private readonly intervalMs: number,
    opts: LoadSamplerOptions = {},
  ) {
    this.readStat = opts.readStat ?? readProcStat;
    this.source = opts.source ?? (this.times() ? 'proc' : 'systeminformation');
  }

  start(): void {
    if (this.timer) return;
    const sample = this.source === 'proc' ? () => this.sampleProc() : () => this.sampleSi();
    sample();
    this.timer = setInterval(sample, this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.last = null;
  }

  private times(): CpuTimes | null {
    try {
      return procStatTimes(this.readStat());
    } catch {
      return null;
    }
  }

  private sampleProc(): void {
    const now = this.times();
    if (!now) return;
    const load = this.last ? loadBetween(this.last, now) : null;
    this.last = now;
    if (load !== null) this.take(load);
  }

  private sampleSi(): void {
    si.currentLoad()
      .then((l) => this.take(l.currentLoad))
      .catch(() => undefined);
  }

  /** A new figure (percent), kept to one decimal. */
  private take(load: number): void {
    if (Number.isFinite(load)) this.cpuPercent = Math.round(load * 10) / 10;
  }
}
