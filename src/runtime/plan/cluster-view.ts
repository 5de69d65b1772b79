/**
 * What the origin's planning needs to know about the deployment, as plain data: every reachable host's
 * profile, the measured links, each host's status. `host/cluster.ts` answers it over the peer mesh and the
 * peers' APIs; tests answer it with fakes.
 */
import type { Profile } from '../../planner/profile.js';

/** One directed link's measurements, as the sending host sees them. */
export interface LinkView {
  readonly from: string;
  readonly to: string;
  readonly rttMs: number | null;
  readonly throughputBps: number | null;
  /** Timed throughput samples so far: early ones are rough, so start-up planning waits for a few. */
  readonly throughputSamples?: number;
}

/** A link as `GET /v1/links` reports it: its measurements, connection state, traffic and emulation. */
export interface LinkReport extends LinkView {
  /** The latest RTT sample as read, this host's own stall and all (the other RTT figures leave it out). */
  readonly rttLastMs?: number | null;
  /** RTT samples taken with this host's own stall taken out (LinkStats.rttStalledSamples). */
  readonly rttStalledSamples?: number;
  /** Median of the last three RTT samples: follows a step within two pings (the EWMA lags). */
  readonly rttRecentMs?: number | null;
  /** The least of the last three RTT samples: what the live estimates take (LinkStats.rttLeastRecentMs). */
  readonly rttLeastRecentMs?: number | null;
  /** Median of the last three timed throughput samples. */
  readonly throughputRecentBps?: number | null;
  /** An upper bound on the throughput now, when the link has shown it is much slower than estimated. */
  readonly throughputCeilingBps?: number | null;
  readonly state: string;
  readonly bytesSent: number;
  /** What it would have sent with every tensor raw: over `bytesSent`, what the wire codecs saved. */
  readonly uncodedBytesSent?: number;
  readonly queuedBytes: number;
  readonly emulation: unknown;
}

/** One segment session a host holds, and how long it has taken to run there. */
export interface SegmentStat {
  /** Node range `[from, to)`. */
  readonly from: number;
  readonly to: number;
  readonly warm: boolean;
  /** Recent compute time (ms) of the runs here (the median of the last 5), null before the first. */
  readonly meanMs: number | null;
  readonly runs: number;
}

/** `GET /v1/status`. */
export interface HostStatus {
  readonly host: string;
  readonly tier: string;
  readonly ready: boolean;
  readonly cpuPercent: number | null;
  readonly inFlight: number;
  readonly busy: number;
  readonly threads: number;
  readonly heapFlags: readonly string[];
  readonly segments: readonly (SegmentStat & { readonly model?: string })[];
}

/** A host whose status could not be had, and why. */
export interface HostUnreachable {
  readonly host: string;
  readonly error: string;
}

export function isReachable(s: HostStatus | HostUnreachable): s is HostStatus {
  return !('error' in s);
}

/** What every host reports to the origin every `heartbeatMs`, over its peer link (a `message` frame). */
export interface Heartbeat {
  readonly host: string;
  readonly tier: string;
  /** The machine's CPU load in percent (/proc/stat on Linux, systeminformation elsewhere; host/load.ts): the same for hosts sharing a machine. */
  readonly cpuPercent: number | null;
  /** This host's own CPU quota (its cgroup) in CPUs, and how long it has been throttled in total (ms). */
  readonly quotaCpus: number | null;
  readonly throttledMs: number | null;
  readonly threads: number;
  /** Runs queued in the executor, requests pending at this host, stages running here. */
  readonly queueDepth: number;
  readonly inFlight: number;
  readonly busy: number;
  /** Segment compute times observed here; `ageMs` since the segment last ran. */
  readonly segments: readonly {
    /** The model the segment belongs to (absent: the deployment's default model). */
    readonly model?: string;
    readonly from: number;
    readonly to: number;
    readonly meanMs: number;
    readonly runs: number;
    readonly ageMs: number;
  }[];
  /** This host's outgoing links. */
  readonly links: readonly LinkReport[];
  /**
   * Its event loop's CPU time (ms) per stage it ran from a peer's frame, over the last few seconds
   * (host/frame-cpu.ts); null before enough stages ran or where it cannot be read; absent from older hosts.
   */
  readonly frameCpuMs?: number | null;
}

export interface ClusterView {
  /** Profiles of this host and every peer it can reach now, this host's first. */
  profiles(): Promise<Profile[]>;
  /** Link measurements of this host and of every reachable peer that answers. */
  links(): Promise<LinkReport[]>;
  /** Every host's status, in config order; an unreachable one as `{host, error}`. */
  statuses(): Promise<(HostStatus | HostUnreachable)[]>;
}
