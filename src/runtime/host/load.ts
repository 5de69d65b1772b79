/**
 * CPU load of the machine this host runs on, sampled with systeminformation on a timer (its first call
 * primes the counters). The planner's controller reads it to scale a host's profiled block times.
 */
import si from 'systeminformation';

export class LoadSampler {
  private timer: NodeJS.Timeout | null = null;
  /** Percent busy over the last interval, all cores; null before the first sample. */
  cpuPercent: number | null = null;

  constructor(private readonly intervalMs: number) {}

  start(): void {
    if (this.timer) return;
    const sample = (): void => {
      si.currentLoad()
        .then((l) => {
          this.cpuPercent = Math.round(l.currentLoad * 10) / 10;
        })
        .catch(() => undefined);
    };
    sample();
    this.timer = setInterval(sample, this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
