/**
 * Every limit and interval of the transport, in one place, with its default. Hosts pass a partial object;
 * `resolveTransportOptions` fills in the rest.
 */
import { CleaveError } from '../errors.js';

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
  /**
   * Data frames smaller than this only ever raise the throughput estimate, as frames timed under
   * `minSampleMs` do: their time on the wire is short against the receiver's scheduling (a receiver stalled
   * by GC or throttled by a CPU quota acks them late), so their timing says more about the receiver than
   * about the link. Probes are always timed (they are sized to be). On a link with no timed sample for
   * `probeIntervalMs` (one carrying only small frames, which keeps it too busy to probe), small frames are
   * timed after all, so that a real slowdown shows. Default 16 KiB.
   */
  minTimedBytes: number;
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
  minTimedBytes: 16 * 1024,
  ewmaAlpha: 0.2,
  reconnect: Object.freeze({ initialMs: 100, maxMs: 5000 }),
  path: '/v1/peer',
});

/**
 * The defaults with `input` on top, checked: an unknown key or a value out of range throws E_BAD_INPUT naming
 * it as `transport.KEY` (the deployment config's section), so a typo cannot silently keep a default and a
 * zero or negative interval cannot make a timer spin.
 */
export function resolveTransportOptions(input: TransportOptionsInput = {}): TransportOptions {
  const bad = (key: string, why: string, v: unknown): CleaveError =>
    new CleaveError('E_BAD_INPUT', `transport.${key}: ${why}, got ${JSON.stringify(v)}`);
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw bad('', 'must be an object', input);
  for (const k of Object.keys(input))
    if (!(k in DEFAULT_TRANSPORT_OPTIONS))
      throw bad(
        k,
        `unknown option (known: ${Object.keys(DEFAULT_TRANSPORT_OPTIONS).join(', ')})`,
        (input as Record<string, unknown>)[k],
      );
  const o: TransportOptions = {
    ...DEFAULT_TRANSPORT_OPTIONS,
    ...defined(input),
    reconnect: { ...DEFAULT_TRANSPORT_OPTIONS.reconnect, ...defined(input.reconnect ?? {}) },
  };
  const count = (k: keyof TransportOptions, min: number): void => {
    const v = o[k];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) throw bad(k, `must be an integer >= ${min}`, v);
  };
  const positive = (key: string, v: unknown): void => {
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw bad(key, 'must be a positive number', v);
  };
  for (const k of ['maxFrameBytes', 'maxQueueBytes', 'maxTensors', 'probeMinBytes', 'probeMaxBytes'] as const)
    count(k, 1);
  count('coalesceBytes', 0);
  count('minTimedBytes', 0);
  for (const k of [
    'pingIntervalMs',
    'pingTimeoutMs',
    'helloTimeoutMs',
    'probeIntervalMs',
    'probeTargetMs',
    'minSampleMs',
  ] as const)
    positive(k, o[k]);
  if (o.probeMaxBytes < o.probeMinBytes)
    throw bad('probeMaxBytes', `must be >= probeMinBytes (${o.probeMinBytes})`, o.probeMaxBytes);
  if (typeof o.ewmaAlpha !== 'number' || !(o.ewmaAlpha > 0 && o.ewmaAlpha <= 1))
    throw bad('ewmaAlpha', 'must be in (0, 1]', o.ewmaAlpha);
  for (const k of Object.keys(o.reconnect))
    if (k !== 'initialMs' && k !== 'maxMs')
      throw bad(
        `reconnect.${k}`,
        'unknown option (known: initialMs, maxMs)',
        (o.reconnect as Record<string, unknown>)[k],
      );
  positive('reconnect.initialMs', o.reconnect.initialMs);
  positive('reconnect.maxMs', o.reconnect.maxMs);
  if (o.reconnect.maxMs < o.reconnect.initialMs)
    throw bad('reconnect.maxMs', `must be >= reconnect.initialMs (${o.reconnect.initialMs})`, o.reconnect.maxMs);
  if (typeof o.path !== 'string' || !o.path.startsWith('/'))
    throw bad('path', "must be a path starting with '/'", o.path);
  return o;
}

/** Drops undefined entries so `{maxFrameBytes: undefined}` keeps the default. */
function defined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
