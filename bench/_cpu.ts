/**
 * CPU time of processes, split into each one's main thread and the rest of its threads (an ORT worker,
 * V8's GC helpers, libuv's pool), read from Linux's /proc/<pid>/task/<tid>/stat. CPU time is what a host
 * under a CPU quota pays in wall time, and it is far steadier than latency on a shared machine.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

export interface ThreadCpuMs {
  /** The process's main thread (the event loop). */
  readonly mainMs: number;
  /** Every other thread of the process. */
  readonly threadsMs: number;
}

let tickMs: number | undefined;
/** Milliseconds per clock tick, the unit of /proc's times (10 ms at the usual 100 Hz). */
function msPerTick(): number {
  if (tickMs === undefined) {
    let hz = 100;
    try {
      hz = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      // getconf missing: Linux's USER_HZ is 100 on every common build.
    }
    tickMs = 1000 / hz;
  }
  return tickMs;
}

/** A process's CPU time so far (user + system), main thread and the rest; null off Linux or once it is gone. */
export function threadCpuMs(pid: number): ThreadCpuMs | null {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return null;
  }
  let main = 0;
  let rest = 0;
  for (const tid of tids) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    } catch {
      continue; // a thread that ended since the listing
    }
    // Fields after the command name (which may hold spaces) in parentheses: utime and stime are the 12th and 13th.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(f[11]) + Number(f[12]);
    if (tid === String(pid)) main += ticks;
    else rest += ticks;
  }
  return { mainMs: main * msPerTick(), threadsMs: rest * msPerTick() };
}

/**
 * Runs `call` `n` times one after another and returns each process's CPU time per call (ms), main thread
 * and the rest; null when a process cannot be read (not Linux, or it exited). Threads that end during the
 * calls take their time with them, so a process whose threads come and go reads low.
 */
export async function cpuPerCall(
  pids: Readonly<Record<string, number | undefined>>,
  n: number,
  call: () => Promise<void>,
): Promise<Record<string, ThreadCpuMs> | null> {
  const read = (): Record<string, ThreadCpuMs> | null => {
    const out: Record<string, ThreadCpuMs> = {};
    for (const [name, pid] of Object.entries(pids)) {
      const t = pid === undefined ? null : threadCpuMs(pid);
      if (!t) return null;
      out[name] = t;
    }
    return out;
  };
  const before = read();
  for (let i = 0; i < n; i++) await call();
  const after = read();
  if (!before || !after) return null;
  const round = (x: number): number => Math.round(x * 1000) / 1000;
  return Object.fromEntries(
    Object.keys(pids).map((name) => [
      name,
      {
        mainMs: round((after[name].mainMs - before[name].mainMs) / n),
        threadsMs: round((after[name].threadsMs - before[name].threadsMs) / n),
      },
    ]),
  );
}
