/**
 * One WebSocket connection carrying frames, used by both ends (PeerLink dials, PeerServer accepts).
 * It encodes and writes frames through a Pipe (the link emulator, or a pass-through), acks every data frame
 * it receives, turns acks and pongs into measurements, pings on a timer, counts what it holds unsent for
 * backpressure, and closes itself with the error's close code on a malformed frame. Handshake and
 * reconnection belong to the owners.
 */
import type { IncomingMessage } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import WebSocket from 'ws';
import type { Logger } from 'pino';
import { CleaveError, errorMessage, isCleaveError } from '../errors.js';
import {
  decodeFrame,
  encodeFrame,
  type DecodedFrame,
  type EncodedFrame,
  type HeaderInput,
  type Tensor,
} from './frame.js';
import type { LinkMeter } from './measure.js';
import type { Pipe } from './emulator.js';
import type { TransportOptions } from './options.js';

interface ChannelConfig {
  ws: WebSocket;
  /** The socket the accepting side upgraded (the dialing side learns its own from the upgrade response). */
  socket?: Duplex;
  options: TransportOptions;
  log: Logger;
  pipe: Pipe;
  meter: LinkMeter;
  /** Every frame but acks and probes (which the channel consumes); data frames are acked after this returns. */
  onFrame(frame: DecodedFrame, receivedAt: number): void;
  /** The socket closed; `error` is what closed it from this side, if anything did. */
  onClose(code: number, reason: string, error: CleaveError | null): void;
  /** Unsent bytes fell back under half of maxQueueBytes after a send said to slow down. */
  onDrain(): void;
  /**
   * Answer pings through the pipe instead of ws's automatic pong (the dialing side, whose ws must be created
   * with `autoPong: false`), so the peer's RTT sees the emulated path too.
   */
  pongThroughPipe?: boolean;
}

/** Frame kinds the channel and its owners send themselves; callers of the links' `send` may not. */
const TRANSPORT_KINDS: ReadonlySet<string> = new Set(['hello', 'ack', 'probe']);

/** Throws E_BAD_INPUT for a frame kind only the transport itself sends (a stray hello makes the peer close). */
export function checkDataKind(kind: string): void {
  if (TRANSPORT_KINDS.has(kind))
    throw new CleaveError(
      'E_BAD_INPUT',
      `'${kind}' frames are the transport's own; send infer, result, error or message`,
    );
}

/** Close codes of a normal shutdown, which are not errors. */
export const CLOSE_NORMAL = 1000;
export const CLOSE_GOING_AWAY = 1001;
/** How long a closing handshake may take before the socket is destroyed. */
const CLOSE_GRACE_MS = 1000;
/** WebSocket close reasons are limited to 123 bytes. */
const MAX_REASON_BYTES = 123;

export class Channel {
  private readonly ws: WebSocket;
  private readonly cfg: ChannelConfig;
  private seq = 0;
  /** Bytes of data frames handed to ws.send whose write has not completed (control frames are not counted). */
  private writing = 0;
  private needDrain = false;
  private closing = false;
  private closeError: CleaveError | null = null;
  private pingTimer: NodeJS.Timeout | null = null;
  private pingCount = 0;
  private pongs = 0;
  private pingOut: { id: number; at: number } | null = null;
  /** The TCP (or TLS) socket under the WebSocket, once known, to cork a message's fragments into one write. */
  private socket: Duplex | null;

  constructor(cfg: ChannelConfig) {
    this.cfg = cfg;
    this.ws = cfg.ws;
    this.socket = cfg.socket ?? null;
    // A dialing WebSocket learns its socket with the upgrade response.
    this.ws.once('upgrade', (res: IncomingMessage) => (this.socket = res.socket));
    // One Buffer per WebSocket fragment: tensors sent as their own fragments arrive without the
    // concatenation copy ws would otherwise make.
    this.ws.binaryType = 'fragments';
    this.ws.on('message', (data, isBinary) => {
      const receivedAt = performance.now();
      this.cfg.pipe.receive(() => this.onMessage(data as Buffer[], isBinary, receivedAt));
    });
    this.ws.on('pong', (data) => this.cfg.pipe.receive(() => this.onPong(data)));
    if (cfg.pongThroughPipe) this.ws.on('ping', (data) => this.pong(data));
    // Debug only: every failed dial while peers start in any order lands here; the link's 'down' event is
    // what the host reports.
    this.ws.on('error', (err) => this.cfg.log.debug({ err: errorMessage(err) }, 'peer socket error'));
    this.ws.once('close', (code, reason) => this.onClose(code, reason.toString()));
  }

  get open(): boolean {
    return !this.closing && this.ws.readyState === WebSocket.OPEN;
  }

  /**
   * Bytes of data frames accepted by `send` and not yet written to the socket (held in the emulator or in ws/Node
   * buffers). Control frames (acks, hello, pings) do not count: an idle link has a queue of 0.
   */
  get queuedBytes(): number {
    return this.cfg.pipe.heldBytes + this.writing;
  }

  /** A send was told to slow down (returned false, or refused E_QUEUE_FULL) and onDrain has not run since. */
  get owesDrain(): boolean {
    return this.needDrain;
  }

  /** Start the ping loop (after the handshake) and take a first RTT sample right away. */
  start(): void {
    if (this.pingTimer) return;
    this.pingTimer = setInterval(() => this.tick(), this.cfg.options.pingIntervalMs);
    this.pingTimer.unref();
    this.tick();
  }

  /**
   * Send a data frame: measured, acked by the receiver, shaped by the emulator. Returns false when the sender
   * should wait for drain. Throws E_PEER_GONE when closed, E_TOO_LARGE past maxFrameBytes, E_QUEUE_FULL when
   * the frame does not fit under maxQueueBytes.
   */
  send(input: HeaderInput, tensors: readonly Tensor[] = []): boolean {
    if (!this.open) throw new CleaveError('E_PEER_GONE', 'the connection is closed');
    const { maxFrameBytes, maxQueueBytes, coalesceBytes } = this.cfg.options;
    const frame = encodeFrame({ ...input, seq: this.seq + 1 }, tensors, { coalesceBytes });
    if (frame.byteLength > maxFrameBytes) {
      throw new CleaveError('E_TOO_LARGE', `frame of ${frame.byteLength} bytes exceeds maxFrameBytes ${maxFrameBytes}`);
    }
    const queued = this.queuedBytes;
    if (queued > 0 && queued + frame.byteLength > maxQueueBytes) {
      this.needDrain = true;
      throw new CleaveError(
        'E_QUEUE_FULL',
        `link queue full: ${queued} bytes waiting + ${frame.byteLength} would exceed maxQueueBytes ${maxQueueBytes}`,
      );
    }
    this.seq++;
    const timed = input.kind === 'probe' || frame.byteLength >= this.cfg.options.minTimedBytes;
    this.cfg.meter.sent(this.seq, frame.header.id, frame.byteLength, performance.now(), timed, frame.uncodedBytes);
    this.cfg.pipe.send(frame.byteLength, true, () => this.write(frame, true));
    if (this.queuedBytes < maxQueueBytes / 2) return true;
    this.needDrain = true;
    return false;
  }

  /** Send a small transport frame (hello, ack): not measured, not counted, skips the bandwidth queue. */
  sendControl(input: HeaderInput): void {
    if (!this.open) return;
    const frame = encodeFrame(input);
    this.cfg.pipe.send(frame.byteLength, false, () => this.write(frame, false));
  }

  /** Close with a code; the error, if given, is reported to onClose as the cause. */
  close(code: number, reason: string, error: CleaveError | null = null): void {
    if (this.closing) return;
    this.closing = true;
    this.closeError = error;
    this.stopPing();
    const state = this.ws.readyState;
    if (state === WebSocket.OPEN) {
      this.ws.close(code, truncate(reason));
      // A peer that never answers the close handshake must not hold the socket open.
      setTimeout(() => this.ws.terminate(), CLOSE_GRACE_MS).unref();
    } else if (state === WebSocket.CONNECTING) {
      this.ws.terminate();
    }
  }

  /** Drop the connection because of `error`: logged, closed with the error's close code. */
  fail(error: CleaveError): void {
    if (this.closing) return;
    this.cfg.log.warn({ code: error.code, closeCode: error.closeCode }, error.message);
    this.close(error.closeCode, error.message, error);
  }

  private write(frame: EncodedFrame, data: boolean): void {
    if (this.ws.readyState !== WebSocket.OPEN) return; // lost with the connection; the owner fails it
    const bytes = data ? frame.byteLength : 0;
    this.writing += bytes;
    const done = (): void => {
      this.writing -= bytes;
      if (this.needDrain && this.queuedBytes < this.cfg.options.maxQueueBytes / 2) {
        this.needDrain = false;
        this.cfg.onDrain();
      }
    };
    const last = frame.chunks.length - 1;
    // Fragments of one message go out back to back in this tick, so no other message can interleave. Corked,
    // they leave in one write: one syscall, and one wake-up of the receiver instead of one per fragment.
    const sock = last > 0 ? this.socket : null;
    sock?.cork();
    for (let i = 0; i <= last; i++) {
      this.ws.send(frame.chunks[i], { binary: true, fin: i === last }, i === last ? done : undefined);
    }
    sock?.uncork();
  }

  private onMessage(data: Buffer[], isBinary: boolean, receivedAt: number): void {
    if (this.closing) return;
    if (!isBinary) {
      this.fail(new CleaveError('E_BAD_FRAME', 'bad frame: message is text, frames are binary'));
      return;
    }
    let frame: DecodedFrame;
    try {
      frame = decodeFrame(data, {
        maxFrameBytes: this.cfg.options.maxFrameBytes,
        maxTensors: this.cfg.options.maxTensors,
      });
    } catch (e) {
      this.fail(isCleaveError(e) ? e : new CleaveError('E_BAD_FRAME', `bad frame: ${errorMessage(e)}`));
      return;
    }
    const { kind, seq, body } = frame.header;
    if (kind === 'ack') {
      // The ack says how long the receiver held the frame before acking (its handler ran first); that time
      // is not transfer time.
      const held = typeof body === 'number' && body > 0 ? body : 0;
      const now = performance.now();
      this.cfg.meter.acked(seq, now - held);
      this.cfg.meter.heard(now);
      return;
    }
    this.cfg.meter.heard(performance.now());
    if (kind === 'probe') return this.sendControl({ kind: 'ack', seq, body: 0 });
    const start = performance.now();
    this.cfg.onFrame(frame, receivedAt);
    // The ack waits for the work the frame started to be posted (a stage's run, the answer to a client):
    // its write is a syscall (~0.1 ms here) that would otherwise sit on the request's path. The time it
    // waited is reported in the ack and is not counted as transfer time.
    if (kind !== 'hello') setImmediate(() => this.sendControl({ kind: 'ack', seq, body: performance.now() - start }));
  }

  private tick(): void {
    if (!this.open) return;
    const now = performance.now();
    if (this.pingOut) {
      if (now - this.pingOut.at > this.cfg.options.pingTimeoutMs) {
        this.cfg.log.warn({ waitedMs: Math.round(now - this.pingOut.at) }, 'peer stopped answering pings; dropping');
        this.closeError = new CleaveError('E_PEER_GONE', 'ping timeout');
        this.closing = true;
        this.ws.terminate();
      }
      return;
    }
    const id = ++this.pingCount;
    this.pingOut = { id, at: now };
    const payload = Buffer.allocUnsafe(4);
    payload.writeUInt32LE(id, 0);
    this.cfg.pipe.send(payload.length, false, () => {
      if (this.ws.readyState === WebSocket.OPEN) this.ws.ping(payload);
    });
  }

  private onPong(data: Buffer): void {
    if (!this.pingOut || data.length !== 4 || data.readUInt32LE(0) !== this.pingOut.id) return;
    const now = performance.now();
    this.cfg.meter.rttSample(now - this.pingOut.at);
    this.cfg.meter.heard(now);
    this.pingOut = null;
    // Three pings back to back when the connection opens, so the first estimate is a median, not one sample.
    if (++this.pongs < 3) this.tick();
  }

  private pong(data: Buffer): void {
    this.cfg.pipe.receive(() =>
      this.cfg.pipe.send(data.length, false, () => {
        if (this.ws.readyState === WebSocket.OPEN) this.ws.pong(data);
      }),
    );
  }

  private stopPing(): void {
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = null;
  }

  private onClose(code: number, reason: string): void {
    this.closing = true;
    this.stopPing();
    this.cfg.onClose(code, reason, this.closeError);
  }
}

function truncate(reason: string): string {
  const b = Buffer.from(reason);
  if (b.length <= MAX_REASON_BYTES) return reason;
  // Cut on a character boundary: a partial UTF-8 sequence would make the close frame invalid.
  let s = b.subarray(0, MAX_REASON_BYTES).toString();
  while (Buffer.byteLength(s) > MAX_REASON_BYTES || s.endsWith('\uFFFD')) s = s.slice(0, -1);
  return s;
}
