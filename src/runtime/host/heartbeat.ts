/**
 * Heartbeats: every `heartbeatMs` each host reports its load, queue, segment times and link measurements to
 * the origin as a `message` frame on the peer link it already has (no HTTP polling); the origin takes its
 * own. Bodies arriving from peers are checked here, at the edge, before the origin's live state sees them.
 */
import type { Logger } from 'pino';
import { CleaveError, errorMessage } from '../../errors.js';
import type { Heartbeat } from '../plan/cluster-view.js';

/** The `body.type` of a heartbeat message frame. */
export const HEARTBEAT = 'heartbeat';

export interface HeartbeatOptions {
  readonly intervalMs: number;
  /** This host's heartbeat now. */
  take(): Heartbeat;
  /** Where it goes: the origin's live state, or a message frame to the origin. */
  deliver(b: Heartbeat): void;
  readonly logger: Logger;
}

export class HeartbeatSender {
  private timer: NodeJS.Timeout | null = null;
  private failures = 0;

  constructor(private readonly o: HeartbeatOptions) {}

  start(): void {
    if (this.timer) return;
    const tick = (): void => {
      try {
        this.o.deliver(this.o.take());
        this.failures = 0;
      } catch (e) {
        // The origin is unreachable for now (its link is down or full): the next beat tries again.
        if (this.failures++ === 0) this.o.logger.debug({ err: errorMessage(e) }, 'heartbeat not sent');
      }
    };
    tick();
    this.timer = setInterval(tick, this.o.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const num = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const numOrNull = (v: unknown): boolean => v === null || num(v);

/**
 * A heartbeat body from peer `peer`, checked: it must name that peer, and every field must have its type.
 * Throws E_BAD_FRAME naming the field.
 */
export function checkHeartbeat(body: unknown, peer: string): Heartbeat {
  const bad = (f: string, what: string): never => {
    throw new CleaveError('E_BAD_FRAME', `heartbeat from ${peer}: ${f} ${what}`);
  };
  if (!isObj(body)) return bad('body', 'is not a map');
  if (body.host !== peer) bad('host', `is '${String(body.host)}', not the sender`);
  if (typeof body.tier !== 'string') bad('tier', 'is not a string');
  for (const f of ['cpuPercent', 'quotaCpus', 'throttledMs'] as const)
    if (!numOrNull(body[f])) bad(f, 'is not a number or null');
  if (body.frameCpuMs !== undefined && !(body.frameCpuMs === null || (num(body.frameCpuMs) && body.frameCpuMs >= 0)))
    bad('frameCpuMs', 'is not a number >= 0 or null');
  for (const f of ['threads', 'queueDepth', 'inFlight', 'busy'] as const)
    if (!num(body[f]) || (body[f] as number) < 0) bad(f, 'is not a number >= 0');
  if (!Array.isArray(body.segments)) bad('segments', 'is not a list');
  (body.segments as unknown[]).forEach((s, i) => {
    if (!isObj(s)) return bad(`segments[${i}]`, 'is not a map');
    if (s.model !== undefined && typeof s.model !== 'string') bad(`segments[${i}].model`, 'is not a string');
    for (const f of ['from', 'to', 'runs'] as const)
      if (!Number.isInteger(s[f]) || (s[f] as number) < 0) bad(`segments[${i}].${f}`, 'is not an integer >= 0');
    for (const f of ['meanMs', 'ageMs'] as const)
      if (!num(s[f]) || (s[f] as number) < 0) bad(`segments[${i}].${f}`, 'is not a number >= 0');
  });
  if (!Array.isArray(body.links)) bad('links', 'is not a list');
  (body.links as unknown[]).forEach((l, i) => {
    if (!isObj(l)) return bad(`links[${i}]`, 'is not a map');
    if (l.from !== peer) bad(`links[${i}].from`, `is '${String(l.from)}': a host reports its own links only`);
    if (typeof l.to !== 'string') bad(`links[${i}].to`, 'is not a string');
    for (const f of ['rttMs', 'throughputBps'] as const)
      if (!numOrNull(l[f])) bad(`links[${i}].${f}`, 'is not a number or null');
    for (const f of [
      'rttLastMs',
      'rttRecentMs',
      'rttLeastRecentMs',
      'throughputRecentBps',
      'throughputCeilingBps',
    ] as const)
      if (l[f] !== undefined && !numOrNull(l[f])) bad(`links[${i}].${f}`, 'is not a number or null');
  });
  return body as unknown as Heartbeat;
}
