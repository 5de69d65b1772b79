/**
 * PeerLink: this host's connection for ONE directed link to a peer (this host -> peer). It dials the peer's
 * PeerServer, authenticates, exchanges hellos, sends frames through the link emulator, measures the link
 * from acks and pings, probes it when idle, and reconnects with capped, jittered exponential backoff when the
 * connection drops. While it is not open, `send` fails fast with E_PEER_GONE.
 *
 * Events: 'open' (peer identity) after each successful handshake; 'down' (error, request ids of frames that
 * were never acknowledged, retry delay) whenever a connection ends or an attempt fails; 'drain' when the
 * queue falls under half of maxQueueBytes after `send` returned false or refused (or, if the connection
 * dropped meanwhile, when the next one opens: its queue starts empty).
 */
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';
import pino, { type Logger } from 'pino';
import { CleaveError } from '../errors.js';
import { Channel, CLOSE_NORMAL, checkDataKind } from './channel.js';
import { LinkEmulator, type EmulationSettings } from './emulator.js';
import type { DecodedFrame, HeaderInput, Tensor } from './frame.js';
import {
  bearer,
  checkHello,
  errorForClose,
  errorForStatus,
  helloBody,
  mismatch,
  type HostIdentity,
  type PeerIdentity,
} from './handshake.js';
import {
  deliverFrame,
  type ConnectionState,
  type ConnectionStats,
  type FrameHandler,
  type FrameSource,
} from './incoming.js';
import { longestStallSince } from './loop-lag.js';
import { LinkMeter } from './measure.js';
import { resolveTransportOptions, type TransportOptions, type TransportOptionsInput } from './options.js';

export interface PeerLinkOptions {
  /** The peer's PeerServer, e.g. 'ws://127.0.0.1:7001/v1/peer' (or `wss://`). */
  url: string;
  /** PEM CA certificates trusted for a `wss://` peer; absent: the system's roots. */
  ca?: Buffer;
  /** Shared secret, sent as `Authorization: Bearer <token>` on the upgrade. */
  token: string;
  self: HostIdentity;
  /** sha256 of the model this host serves; the peer must hold the same. */
  modelSha256: string;
  /** Name of the peer host, for the link name and logs until the hello says; checked against the hello. */
  peerHost?: string;
  /** Frames the peer sends back on this connection (replies). Without one they are logged and dropped. */
  onFrame?: FrameHandler;
  /** Initial emulation of this link; default none. */
  emulation?: EmulationSettings | null;
  /** Parent logger; the link logs through a child `{ link: 'a->b' }`. Default: silent. */
  logger?: Logger;
  options?: TransportOptionsInput;
}

export interface LinkDown {
  error: CleaveError;
  /** Request ids of data frames sent on the lost connection and never acknowledged: they may be lost. */
  unacked: string[];
  /** When the next attempt starts, or null once the link is closed. */
  retryInMs: number | null;
}

export interface PeerLinkEvents {
  open: [peer: PeerIdentity];
  down: [info: LinkDown];
  drain: [];
}

// The peers are our own processes on links we trust: a zero mask lets ws skip copying every outgoing
// payload to mask it (and the receiver skips unmasking). Masking protects browsers' proxies, not us.
const zeroMask = (mask: Buffer): void => {
  mask.fill(0);
};

/** Errors a retry will not fix until someone changes a config: `whenOpen` gives up on them at once. */
const FATAL = new Set(['E_UNAUTHORIZED', 'E_BAD_MODEL']);

export class PeerLink extends EventEmitter<PeerLinkEvents> implements FrameSource {
  readonly options: TransportOptions;
  private readonly cfg: PeerLinkOptions;
  private readonly parentLog: Logger;
  private log: Logger;
  private readonly emulator: LinkEmulator;
  private readonly meter: LinkMeter;
  private channel: Channel | null = null;
  private linkState: ConnectionState = 'connecting';
  private peerId: PeerIdentity | null = null;
  private attempt = 0;
  private connects = 0;
  private retryTimer: NodeJS.Timeout | null = null;
  private helloTimer: NodeJS.Timeout | null = null;
  private probeTimer: NodeJS.Timeout | null = null;
  private lastProbeAt = -Infinity;
  private probesSent = 0;
  private error: CleaveError | null = null;
  private closedWaiters: (() => void)[] = [];
  /** A connection dropped owing 'drain' (a send was told to slow down): the next one, empty, pays it. */
  private drainOwed = false;

  /** Start dialing `options.url`; the link is usable (send fails fast) before it is open. */
  static connect(options: PeerLinkOptions): PeerLink {
    const link = new PeerLink(options);
    link.dial();
    return link;
  }

  private constructor(cfg: PeerLinkOptions) {
    super();
    this.cfg = cfg;
    this.options = resolveTransportOptions(cfg.options);
    this.parentLog = cfg.logger ?? pino({ level: 'silent' });
    this.log = this.parentLog.child({ link: this.name });
    this.emulator = new LinkEmulator(cfg.emulation ?? null);
    this.meter = new LinkMeter({
      ...this.options,
      // A sample that says the estimate is off asks for the next probe now, not a probe interval later.
      onProbeWanted: () => setImmediate(() => this.probe()),
      longestStallSince,
    });
  }

  /** 'self->peer', using the peer's announced name once known. */
  get name(): string {
    return `${this.cfg.self.host}->${this.peerId?.host ?? this.cfg.peerHost ?? this.cfg.url}`;
  }

  get state(): ConnectionState {
    return this.linkState;
  }

  get peer(): PeerIdentity | null {
    return this.peerId;
  }

  /** The error that ended the last connection or attempt. */
  get lastError(): CleaveError | null {
    return this.error;
  }

  /** Resolves when the link is open; rejects after `timeoutMs`, or at once on a refused token or model. */
  whenOpen(timeoutMs = this.options.helloTimeoutMs): Promise<PeerIdentity> {
    if (this.linkState === 'open' && this.peerId) return Promise.resolve(this.peerId);
    if (this.linkState === 'closed')
      return Promise.reject(new CleaveError('E_PEER_GONE', `link ${this.name} is closed`));
    return new Promise((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer);
        this.off('open', onOpen);
        this.off('down', onDown);
      };
      const onOpen = (peer: PeerIdentity): void => {
        done();
        resolve(peer);
      };
      const onDown = (info: LinkDown): void => {
        if (!FATAL.has(info.error.code) && info.retryInMs !== null) return;
        done();
        reject(info.error);
      };
      const timer = setTimeout(() => {
        done();
        reject(this.error ?? new CleaveError('E_PEER_GONE', `link ${this.name} did not open within ${timeoutMs} ms`));
      }, timeoutMs);
      this.on('open', onOpen);
      this.on('down', onDown);
    });
  }

  send(header: HeaderInput, tensors: readonly Tensor[] = []): boolean {
    if (this.linkState !== 'open' || !this.channel) {
      throw new CleaveError(
        'E_PEER_GONE',
        `link ${this.name} is ${this.linkState}${this.error ? `: ${this.error.message}` : ''}`,
      );
    }
    checkDataKind(header.kind);
    return this.channel.send(header, tensors);
  }

  /** Change this link's emulation while running; null turns it off. Frames already queued are re-timed. */
  setEmulation(settings: EmulationSettings | null): void {
    this.emulator.set(settings);
    this.log.info({ emulation: this.emulator.get() }, 'link emulation changed');
  }

  getEmulation(): EmulationSettings | null {
    return this.emulator.get();
  }

  stats(): ConnectionStats {
    return {
      ...this.meter.stats(),
      name: this.name,
      state: this.linkState,
      peer: this.peerId,
      queuedBytes: this.channel?.queuedBytes ?? 0,
      connects: this.connects,
    };
  }

  /** Number of idle-link probes sent so far. */
  get probes(): number {
    return this.probesSent;
  }

  /** Close for good: no reconnect. Resolves once the socket is closed. */
  close(): Promise<void> {
    if (this.linkState === 'closed' && !this.channel) return Promise.resolve();
    this.linkState = 'closed';
    this.clearTimers();
    if (!this.channel) return Promise.resolve();
    const closed = new Promise<void>((resolve) => this.closedWaiters.push(resolve));
    this.channel.close(CLOSE_NORMAL, 'link closed');
    return closed;
  }

  private dial(): void {
    this.retryTimer = null;
    if (this.linkState === 'closed') return;
    this.linkState = 'connecting';
    const o = this.options;
    const ws = new WebSocket(this.cfg.url, {
      headers: { authorization: bearer(this.cfg.token) },
      perMessageDeflate: false,
      maxPayload: o.maxFrameBytes,
      handshakeTimeout: o.helloTimeoutMs,
      autoPong: false,
      generateMask: zeroMask,
      ...(this.cfg.ca ? { ca: this.cfg.ca } : {}),
    });
    let refused: CleaveError | null = null;
    ws.on('unexpected-response', (_req, res) => {
      refused = errorForStatus(res.statusCode ?? 0);
      res.resume();
      ws.terminate();
    });
    const channel = new Channel({
      ws,
      options: o,
      log: this.log,
      pipe: this.emulator,
      meter: this.meter,
      pongThroughPipe: true,
      onFrame: (frame, receivedAt) => this.onFrame(channel, frame, receivedAt),
      onClose: (code, reason, error) => this.onClose(channel, refused ?? error ?? errorForClose(code, reason)),
      onDrain: () => this.emit('drain'),
    });
    this.channel = channel;
    ws.once('open', () => {
      channel.sendControl({ kind: 'hello', body: helloBody(this.cfg.self, this.cfg.modelSha256) });
      this.helloTimer = setTimeout(
        () => channel.fail(new CleaveError('E_PEER_GONE', `no hello from the peer within ${o.helloTimeoutMs} ms`)),
        o.helloTimeoutMs,
      );
    });
  }

  private onFrame(channel: Channel, frame: DecodedFrame, receivedAt: number): void {
    const h = frame.header;
    if (h.kind === 'hello') {
      if (this.linkState !== 'connecting')
        return channel.fail(new CleaveError('E_BAD_FRAME', 'bad frame: kind hello after the handshake'));
      let hello;
      try {
        hello = checkHello(h.body);
      } catch (e) {
        return channel.fail(e as CleaveError);
      }
      const refused = mismatch(this.cfg.modelSha256, hello);
      if (refused) return channel.fail(refused);
      if (this.cfg.peerHost && hello.host !== this.cfg.peerHost) {
        this.log.warn({ expected: this.cfg.peerHost, announced: hello.host }, 'peer announced another host name');
      }
      this.onOpen(channel, { host: hello.host, tier: hello.tier, modelSha256: hello.modelSha256 });
      return;
    }
    if (this.linkState !== 'open' || !this.peerId) {
      return channel.fail(new CleaveError('E_BAD_FRAME', `bad frame: kind ${h.kind} before the hello`));
    }
    const handler = this.cfg.onFrame;
    if (!handler) {
      this.log.debug({ kind: h.kind, id: h.id }, 'frame from peer dropped: no handler');
      return;
    }
    deliverFrame(handler, frame, this, this.peerId, receivedAt, this.log);
  }

  private onOpen(channel: Channel, peer: PeerIdentity): void {
    if (this.helloTimer) clearTimeout(this.helloTimer);
    this.helloTimer = null;
    const named = this.peerId?.host === peer.host;
    this.peerId = peer;
    // The child logger is made once per peer name, not per connection.
    if (!named) this.log = this.parentLog.child({ link: this.name });
    this.linkState = 'open';
    this.attempt = 0;
    this.error = null;
    this.connects++;
    channel.start();
    if (this.probeTimer) clearInterval(this.probeTimer);
    this.probeTimer = setInterval(() => this.probe(), Math.max(10, this.options.probeIntervalMs / 2));
    this.probeTimer.unref();
    this.log.info({ peer }, 'link open');
    this.emit('open', peer);
    if (this.drainOwed) {
      this.drainOwed = false;
      this.emit('drain');
    }
  }

  /** Send one probe if the link has given no timed throughput sample for probeIntervalMs, or a sample asked for one. */
  private probe(): void {
    const channel = this.channel;
    if (this.linkState !== 'open' || !channel) return;
    const o = this.options;
    const now = performance.now();
    const quick = this.meter.probeWanted;
    if (!quick && (now - this.meter.lastResolvedAt < o.probeIntervalMs || now - this.lastProbeAt < o.probeIntervalMs))
      return;
    if (channel.queuedBytes > 0 || this.meter.inFlightFrames > 0) return;
    // Size the probe to take probeTargetMs at what the link has shown lately (LinkMeter.probeBytes: its best
    // recent sample, or the lower bound left by a probe too quick to time, which grows the next one by
    // probeTargetMs / minSampleMs, at least 2x), stretched by the link's stalls: probing ends in a timed sample
    // rather than in lower bounds forever, and a host's stalls do not shrink the probes until they are all it
    // measures.
    const bytes = this.meter.probeBytes(
      Math.max(o.probeTargetMs, 2 * o.minSampleMs),
      o.probeMinBytes,
      o.probeMaxBytes,
      now,
    );
    this.lastProbeAt = now;
    this.probesSent++;
    this.meter.probed();
    try {
      channel.send({ kind: 'probe' }, [{ name: 'probe', dtype: 'uint8', dims: [bytes], data: probeBytes(bytes) }]);
    } catch (e) {
      // A timer must not throw; a probe that cannot go now is simply skipped.
      this.log.debug({ err: e }, 'probe skipped');
    }
  }

  private onClose(channel: Channel, error: CleaveError): void {
    if (this.channel !== channel) return;
    this.channel = null;
    this.drainOwed ||= channel.owesDrain;
    if (this.helloTimer) clearTimeout(this.helloTimer);
    if (this.probeTimer) clearInterval(this.probeTimer);
    this.helloTimer = null;
    this.probeTimer = null;
    this.emulator.clear();
    const unacked = this.meter.dropInFlight();
    const wasOpen = this.linkState === 'open';
    const closing = this.linkState === 'closed';
    if (!closing) this.linkState = 'down';
    this.error = closing ? null : error;
    let retryInMs: number | null = null;
    if (!closing) {
      const r = this.options.reconnect;
      const base = Math.min(r.maxMs, r.initialMs * 2 ** this.attempt);
      retryInMs = Math.round(base / 2 + (Math.random() * base) / 2);
      this.attempt++;
      this.retryTimer = setTimeout(() => this.dial(), retryInMs);
      this.retryTimer.unref();
      const level = wasOpen || FATAL.has(error.code) ? 'warn' : 'debug';
      this.log[level]({ code: error.code, retryInMs, unacked: unacked.length }, `link down: ${error.message}`);
    }
    for (const w of this.closedWaiters.splice(0)) w();
    if (!closing || unacked.length) this.emit('down', { error, unacked, retryInMs });
  }

  private clearTimers(): void {
    for (const t of [this.retryTimer, this.helloTimer]) if (t) clearTimeout(t);
    if (this.probeTimer) clearInterval(this.probeTimer);
    this.retryTimer = this.helloTimer = this.probeTimer = null;
  }
}

let zeros = new Uint8Array(0);
/** Probe payload: a shared zero buffer, grown on demand (probes are never written to). */
function probeBytes(n: number): Uint8Array {
  if (zeros.length < n) zeros = new Uint8Array(n);
  return zeros.subarray(0, n);
}
