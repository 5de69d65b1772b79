/**
 * What a frame handler receives, and the sending face shared by both ends of a connection.
 */
import type { Logger } from 'pino';
import type { DecodedFrame, FrameHeader, HeaderInput, Tensor } from './frame.js';
import type { PeerIdentity } from './handshake.js';
import type { LinkStats } from './measure.js';

export type ConnectionState = 'connecting' | 'open' | 'down' | 'closed';

export interface ConnectionStats extends LinkStats {
  /** 'a->b' for the link from host a to host b. */
  name: string;
  state: ConnectionState;
  peer: PeerIdentity | null;
  /** Bytes accepted by send and not yet written to the socket (emulator plus socket buffers). */
  queuedBytes: number;
  /** Handshakes completed so far (more than 1 means the link reconnected). */
  connects: number;
}

/** Something frames can be sent over: a PeerLink, or a connection a PeerServer accepted. */
export interface FrameSource {
  readonly name: string;
  /** The host at the other end, once the hello exchange is done. */
  readonly peer: PeerIdentity | null;
  /**
   * Send a data frame; the header's `seq` is assigned by the connection. Returns false when the caller should
   * slow down: a PeerLink emits 'drain' when it may go on (a PeerConnection, which only carries replies, has
   * no such event). Throws CleaveError E_PEER_GONE (not connected), E_QUEUE_FULL
   * (over maxQueueBytes), E_TOO_LARGE (over maxFrameBytes), E_BAD_INPUT (tensor data does not match dims).
   */
  send(header: HeaderInput, tensors?: readonly Tensor[]): boolean;
  stats(): ConnectionStats;
}

export interface IncomingFrame {
  header: FrameHeader;
  /** Views over the received bytes when they were aligned, else one copy each; valid as long as referenced. */
  tensors: Tensor[];
  byteLength: number;
  /** Tensor bytes that had to be copied (misaligned or split); 0 on the zero-copy path. */
  copiedBytes: number;
  /** The sender of the frame. */
  peer: PeerIdentity;
  /** The connection it arrived on. */
  via: FrameSource;
  /** performance.now() when the message arrived (before any emulated return delay). */
  receivedAt: number;
  /** Send a frame back to the sender on the same connection (same as `via.send`). */
  reply(header: HeaderInput, tensors?: readonly Tensor[]): boolean;
}

/** Called synchronously for every data frame; a throw is logged and does not close the connection. */
export type FrameHandler = (frame: IncomingFrame) => void;

/**
 * Hands a data frame that arrived on `via` from `peer` to `handler`, as both ends of a connection do. A throw
 * is logged on `log` and goes no further, so a handler's bug does not close the connection.
 */
export function deliverFrame(
  handler: FrameHandler,
  frame: DecodedFrame,
  via: FrameSource,
  peer: PeerIdentity,
  receivedAt: number,
  log: Logger,
): void {
  const h = frame.header;
  try {
    handler({
      header: h,
      tensors: frame.tensors,
      byteLength: frame.byteLength,
      copiedBytes: frame.copiedBytes,
      peer,
      via,
      receivedAt,
      reply: (header, tensors) => via.send(header, tensors),
    });
  } catch (e) {
    log.error({ err: e, kind: h.kind, id: h.id }, 'frame handler threw');
  }
}
