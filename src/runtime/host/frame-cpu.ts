/**
 * What a stage costs this host's event loop beyond its compute: the main thread's CPU time per stage it ran
 * from a peer's frame (decoding the frame, handing the tensors to the ORT worker, taking its answer, encoding
 * and writing the next frame, acks). The compute itself runs in the worker and is timed there; this is the
 * rest, and a host under a CPU quota pays it at the same rate as its compute: measured with `npm run bench --
 * split`, the edge's loop spent 1.67 ms of CPU a MobileNetV2 request (4.57 ms for ResNet50), which at
 * 0.15 CPU is 11-30 ms of wall time that no block time and no link figure holds. The planner adds it, scaled
 * by the host's slowdown, to every hop into a stage on the host (planner/types.ts `PlanHost.frameMs`).
 *
 * The main thread's CPU time comes from its schedstat (`/proc/self/task/<pid>/schedstat`, nanoseconds;
 * Linux). Read once per heartbeat: per stage, the loop's CPU over a window of beats less what the loop
 * spends with no stage at all (pings, probes, heartbeats: measured over beats that ran none), over the
 * stages run. Null where schedstat cannot be read, or before enough stages ran.
 */
import { readFileSync } from 'node:fs';

/** The beats a figure is taken over (at the default 500 ms heartbeat, the last ~5 s). */
const WINDOW_BEATS = 10;
/** The least stages in the window for a figure: fewer say more about the idle loop than about a stage. */
const MIN_STAGES = 8;
/** Weight of each new beat with no stage in the idle loop's CPU rate (an EWMA). */
const IDLE_ALPHA = 0.2;

/** The main thread's CPU time so far (ms), or null where it cannot be read. */
export function mainThreadCpuMs(file = `/proc/self/task/${process.pid}/schedstat`): number | null {
  try {
    const ns = Number(readFileSync(file, 'utf8').split(' ')[0]);
    return Number.isFinite(ns) ? ns / 1e6 : null;
  } catch {
    return null;
  }
}

export class FrameCpu {
  private readonly beats: { at: number; cpuMs: number; stages: number; busy: number }[] = [];
  /** The loop's CPU rate (ms per ms) with no stage running, or null before a beat with none. */
  private idleRate: number | null = null;

  constructor(private readonly read: () => number | null = mainThreadCpuMs) {}

  /**
   * A heartbeat is taken at `at` (ms), after `stages` stages in total ran from frames, `busy` stages running
   * now: returns the loop's CPU per stage (ms) over the window, or null. A beat is idle when no stage came
   * and none was running at either end (under a quota a stage can outlast a beat: its frames are work too).
   */
  beat(at: number, stages: number, busy = 0): number | null {
    const cpuMs = this.read();
    if (cpuMs === null) return null;
    const prev = this.beats.at(-1);
    if (prev && stages === prev.stages && busy === 0 && prev.busy === 0 && at > prev.at) {
      const rate = (cpuMs - prev.cpuMs) / (at - prev.at);
      this.idleRate = this.idleRate === null ? rate : this.idleRate + IDLE_ALPHA * (rate - this.idleRate);
    }
    this.beats.push({ at, cpuMs, stages, busy });
    if (this.beats.length > WINDOW_BEATS + 1) this.beats.shift();
    const first = this.beats[0];
    const n = stages - first.stages;
    if (n < MIN_STAGES) return null;
    const idle = (this.idleRate ?? 0) * (at - first.at);
    return Math.max(0, (cpuMs - first.cpuMs - idle) / n);
  }
}
