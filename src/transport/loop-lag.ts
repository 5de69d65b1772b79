/**
 * This process's recent event-loop stalls: a 10 ms tick that comes at least 5 ms late marks a stall of that
 * length, ended then. A link's sender times a frame from its send to the ack it reads; a stall in between
 * (a host under a CPU quota is stopped whole when its quota runs out: up to 15 ms of every 20 ms period at
 * 0.25 CPU) delays reading the ack and then reads several acks at once, so the later ones in the burst seem
 * to have taken no time at all: the 0.25-CPU device timed its 25 MB/s link to the edge at 247 MB/s, an edge
 * at 0.15 CPU its 12.5-25 MB/s links at 53-489 MB/s (`npm run bench -- adapt`). LinkMeter takes a frame that
 * such a stall could explain as a lower bound only; the origin's StallWatch reads the long ones. One tick per
 * process, started on first use, never keeping the process alive.
 */

const TICK_MS = 10;
/** A tick at least this much later than due is a stall. */
const LATE_MS = 5;
/**
 * Stalls remembered (the latest): at 0.25 CPU a stall every 20 ms, so 256 reach back ~5 s, past the origin's
 * 2 s heartbeat grace (host/stall-watch.ts) and any frame's transfer.
 */
const KEEP = 256;

let last = 0;
let timer: NodeJS.Timeout | null = null;
/** Ring of the latest stalls: when each ended (performance.now()) and how long it was (ms). */
const ends = new Float64Array(KEEP).fill(-Infinity);
const lengths = new Float64Array(KEEP);
let next = 0;

function tick(): void {
  const now = performance.now();
  const late = now - last - TICK_MS;
  last = now;
  if (late < LATE_MS) return;
  ends[next] = now;
  lengths[next] = late;
  next = (next + 1) % KEEP;
}

/** Starts the ticks (once per process); the stalls are known from then on. */
export function watchLoop(): void {
  if (timer) return;
  last = performance.now();
  timer = setInterval(tick, TICK_MS);
  timer.unref();
}

/**
 * The longest stall of this process's loop that ended after `since` (performance.now() time), 0 for none;
 * one under way now (the tick overdue) counts with its length so far.
 */
export function longestStallSince(since: number): number {
  watchLoop();
  const overdue = performance.now() - last - TICK_MS;
  let most = overdue >= LATE_MS ? overdue : 0;
  for (let i = 0; i < KEEP; i++) if (ends[i] > since && lengths[i] > most) most = lengths[i];
  return most;
}
