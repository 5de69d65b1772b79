/**
 * Every limit and interval of the transport, in one place, with its default. Hosts pass a partial object;
 * `resolveTransportOptions` fills in the rest.
 */
export interface TransportOptions {
  /** Largest frame (header plus tensors) sent or accepted; also the WebSocket `maxPayload`. Default 256 MiB. */
  maxFrameBytes: number;
  /**
   * Bytes a connection may hold unsent (frames waiting in the emulator plus bytes not yet written to the
   * socket) before `send` refuses with E_QUEUE_FULL. A frame larger than this is still accepted when nothing is
   * queued, so the limit never makes a frame unsendable. Default 64 MiB.
   */
  maxQueueBytes: number;
  /** Most tensors one frame may carry. Default 4096. */
  maxTensors: number;
  /** Frames up to this size are written as one buffer (one small copy beats several writes). Default 64 KiB. */
  coalesceBytes: number;
  /** WebSocket ping period: RTT samples and liveness. Default 1000 ms. */
  pingIntervalMs: number;
  /** A connection whose ping is unanswered this long is dropped (and a link reconnects). Default 10 000 ms. */
  pingTimeoutMs: number;
  /** Time allowed for the WebSocket upgrade plus the hello exchange. Default 5000 ms. */
  helloTimeoutMs: number;
  /**
   * A link that has produced no throughput sample for this long (idle, or carrying only frames too small to
   * time) sends one probe frame. Default 2000 ms.
   */
  probeIntervalMs: number;
  /** Probe size: the current estimate (or the lower bound a probe too quick to time left, if higher) times
   * `probeTargetMs` (at least 2 x minSampleMs), clamped to [probeMinBytes, probeMaxBytes].
   * Defaults 4 KiB, 256 KiB and 10 ms, i.e. at most ~0.5% of an idle link's capacity. */
  probeMinBytes: number;
  probeMaxBytes: number;
  probeTargetMs: number;
  /**
   * A frame whose transfer time (ack time minus RTT) is shorter than this gives only a lower bound on the
   * throughput: timer noise would swamp it. Default 1 ms.
   */
  minSampleMs: number;
  /** Weight of a new sample in the RTT and throughput moving averages. Default 0.2. */
  ewmaAlpha: number;
  /** Reconnect backoff: initialMs doubling per failed attempt up to maxMs, each delay jittered to 50-100%.
   * Defaults 100 ms and 5000 ms. */
  reconnect: { initialMs: number; maxMs: number };
  /** URL path peers connect to. Default '/v1/peer'. */
  path: string;
}

export type TransportOptionsInput = Partial<Omit<TransportOptions, 'reconnect'>> & {
  reconnect?: Partial<TransportOptions['reconnect']>;
};

export const DEFAULT_TRANSPORT_OPTIONS: Readonly<TransportOptions> = Object.freeze({
  maxFrameBytes: 256 * 1024 * 1024,
  maxQueueBytes: 64 * 1024 * 1024,
  maxTensors: 4096,
  coalesceBytes: 64 * 1024,
  pingIntervalMs: 1000,
  pingTimeoutMs: 10_000,
  helloTimeoutMs: 5000,
  probeIntervalMs: 2000,
  probeMinBytes: 4 * 1024,
  probeMaxBytes: 256 * 1024,
  probeTargetMs: 10,
  minSampleMs: 1,
  ewmaAlpha: 0.2,
  reconnect: Object.freeze({ initialMs: 100, maxMs: 5000 }),
  path: '/v1/peer',
});

export function resolveTransportOptions(input: TransportOptionsInput = {}): TransportOptions {
  return {
    ...DEFAULT_TRANSPORT_OPTIONS,
    ...defined(input),
    reconnect: { ...DEFAULT_TRANSPORT_OPTIONS.reconnect, ...defined(input.reconnect ?? {}) },
  };
}

/** Drops undefined entries so `{maxFrameBytes: undefined}` keeps the default. */
function defined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
