/**
 * PeerServer: accepts PeerLinks from other hosts, on its own port or on an existing http.Server (the
 * gateway's). The token is checked on the HTTP upgrade (401 without it); the first frame must be the peer's
 * hello, and a peer holding another model is closed with E_BAD_MODEL's close code. A malformed frame closes
 * only that connection (E_BAD_FRAME's close code), logged on the connection's child logger.
 *
 * Events: 'connection' (PeerConnection) after a successful hello; 'disconnect' (PeerConnection, error).
 */
import { EventEmitter } from 'node:events';
import http from 'node:http';
import type https from 'node:https';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import pino, { type Logger } from 'pino';
import { CleaveError } from '../errors.js';
import { Channel, CLOSE_GOING_AWAY, checkDataKind } from './channel.js';
import { PASSTHROUGH } from './emulator.js';
import type { DecodedFrame, HeaderInput, Tensor } from './frame.js';
import {
  checkHello,
  errorForClose,
  helloBody,
  mismatch,
  singleAuthorization,
  tokenMatches,
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
import type { Identify } from './identity.js';
import { longestStallSince } from './loop-lag.js';
import { LinkMeter } from './measure.js';
import { resolveTransportOptions, type TransportOptions, type TransportOptionsInput } from './options.js';

export interface PeerServerOptions {
  self: HostIdentity;
  modelSha256: string;
  /** Shared secret peers must present as `Authorization: Bearer <token>` (when `identify` is not given). */
  token?: string;
  /**
   * Who a credential belongs to (identity.ts): a connection is accepted when it names a host, and then its
   * hello must say that host ('*': any). Takes the place of `token`.
   */
  identify?: Identify;
  /** Every data frame peers send (infer, result, error, message). */
  onFrame: FrameHandler;
  /** Share this server's port (only upgrades on `options.path` are taken). Otherwise listen on `port`. */
  server?: http.Server | https.Server;
  /** Port to listen on when no server is given; 0 picks a free one. Default 0. */
  port?: number;
  /** Address to listen on. Default '127.0.0.1'. */
  host?: string;
  /** Parent logger; each connection logs through a child `{ link: 'peer->self' }`. Default: silent. */
  logger?: Logger;
  options?: TransportOptionsInput;
}

export interface PeerServerEvents {
  connection: [connection: PeerConnection];
  disconnect: [connection: PeerConnection, error: CleaveError];
}

export class PeerServer extends EventEmitter<PeerServerEvents> {
  readonly options: TransportOptions;
  private readonly cfg: PeerServerOptions;
  private readonly log: Logger;
  private readonly http: http.Server;
  private readonly ownsServer: boolean;
  private readonly wss: WebSocketServer;
  private readonly conns = new Set<PeerConnection>();
  private nextId = 1;
  private closed = false;

  /** Listen on `options.port` (or attach to `options.server`) and resolve once accepting. */
  static async listen(options: PeerServerOptions): Promise<PeerServer> {
    const s = new PeerServer(options);
    if (s.ownsServer) {
      await new Promise<void>((resolve, reject) => {
        s.http.once('error', reject);
        s.http.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
          s.http.off('error', reject);
          resolve();
        });
      });
    }
    return s;
  }

  private constructor(cfg: PeerServerOptions) {
    super();
    this.cfg = cfg;
    this.options = resolveTransportOptions(cfg.options);
    this.log = (cfg.logger ?? pino({ level: 'silent' })).child({ component: 'peer-server', host: cfg.self.host });
    this.ownsServer = !cfg.server;
    this.http =
      cfg.server ??
      http.createServer((_req, res) => {
        res
          .writeHead(426, { 'content-type': 'application/json' })
          .end('{"error":"peer endpoint: WebSocket upgrade required"}');
      });
    this.wss = new WebSocketServer({
      noServer: true,
      perMessageDeflate: false,
      maxPayload: this.options.maxFrameBytes,
      clientTracking: false,
    });
    this.http.on('upgrade', this.onUpgrade);
  }

  /** The port accepted on. */
  get port(): number {
    return (this.http.address() as AddressInfo).port;
  }

  /** Where PeerLinks should dial, e.g. ws://127.0.0.1:7001/v1/peer (wss:// on an https server). */
  get url(): string {
    const a = this.http.address() as AddressInfo;
    const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
    return `${this.http instanceof tls.Server ? 'wss' : 'ws'}://${host}:${a.port}${this.options.path}`;
  }

  /** Connections that completed the hello. */
  connections(): PeerConnection[] {
    return [...this.conns].filter((c) => c.state === 'open');
  }

  /** Close every connection (1001) and stop accepting; closes the listening socket if this server owns it. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.http.off('upgrade', this.onUpgrade);
    const gone = [...this.conns].map((c) => new Promise<void>((resolve) => c.onGone(resolve)));
    for (const c of this.conns) c.close(CLOSE_GOING_AWAY, 'server closing');
    await Promise.all(gone);
    this.wss.close();
    if (this.ownsServer) {
      await new Promise<void>((resolve) => {
        this.http.close(() => resolve());
        this.http.closeAllConnections();
      });
    }
  }

  private readonly onUpgrade = (req: http.IncomingMessage, socket: Duplex, head: Buffer): void => {
    // Only the path matters, and a request target need not parse as a URL (`//[`): compare the raw path.
    const path = (req.url ?? '/').split('?')[0];
    if (path !== this.options.path) {
      // Other paths belong to other upgrade handlers on a shared server; with none (or on our own server)
      // nobody else will answer, and a socket handed to 'upgrade' has no timeout: refuse it.
      if (this.ownsServer || this.http.listenerCount('upgrade') <= 1) refuse(socket, 404, 'Not Found');
      return;
    }
    if (this.closed) return refuse(socket, 503, 'Service Unavailable');
    const auth = singleAuthorization(req);
    const who =
      auth === null
        ? null
        : this.cfg.identify
          ? this.cfg.identify(auth)
          : this.cfg.token !== undefined && tokenMatches(auth, this.cfg.token)
            ? '*'
            : null;
    if (who === null) {
      this.log.warn({ remote: req.socket.remoteAddress }, 'peer refused: missing or wrong token');
      return refuse(socket, 401, 'Unauthorized');
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, socket, req.socket.remoteAddress ?? '', who));
  };

  private accept(ws: WebSocket, socket: Duplex, remote: string, claimed: string): void {
    const conn = new PeerConnection(ws, socket, this.nextId++, remote, claimed, this.cfg, this.options, this.log, {
      opened: (c) => this.emit('connection', c),
      closed: (c, error) => {
        this.conns.delete(c);
        if (c.wasOpen) this.emit('disconnect', c, error);
      },
    });
    this.conns.add(conn);
  }
}

/** One accepted connection: the receiving end of a peer's PeerLink. Replies go back on it. */
export class PeerConnection implements FrameSource {
  readonly id: number;
  readonly remoteAddress: string;
  private readonly channel: Channel;
  private readonly meter: LinkMeter;
  private log: Logger;
  private peerId: PeerIdentity | null = null;
  private connState: ConnectionState = 'connecting';
  private readonly helloTimer: NodeJS.Timeout;
  private goneWaiters: (() => void)[] = [];
  private opened = false;

  /** @internal created by PeerServer */
  constructor(
    ws: WebSocket,
    socket: Duplex,
    id: number,
    remote: string,
    /** The host its credential belongs to ('*': any). */
    private readonly claimed: string,
    private readonly cfg: PeerServerOptions,
    options: TransportOptions,
    parentLog: Logger,
    private readonly hooks: { opened(c: PeerConnection): void; closed(c: PeerConnection, e: CleaveError): void },
  ) {
    this.id = id;
    this.remoteAddress = remote;
    this.log = parentLog.child({ conn: id });
    this.meter = new LinkMeter({ ...options, longestStallSince });
    this.channel = new Channel({
      ws,
      socket,
      options,
      log: this.log,
      pipe: PASSTHROUGH,
      meter: this.meter,
      onFrame: (frame, receivedAt) => this.onFrame(frame, receivedAt),
      onClose: (code, reason, error) => this.onClose(error ?? errorForClose(code, reason)),
      onDrain: () => undefined,
    });
    this.helloTimer = setTimeout(
      () =>
        this.channel.fail(new CleaveError('E_BAD_FRAME', `bad frame: no hello within ${options.helloTimeoutMs} ms`)),
      options.helloTimeoutMs,
    );
  }

  /** 'peer->self' once the peer said who it is. */
  get name(): string {
    return `${this.peerId?.host ?? this.remoteAddress}->${this.cfg.self.host}`;
  }

  get peer(): PeerIdentity | null {
    return this.peerId;
  }

  get state(): ConnectionState {
    return this.connState;
  }

  /** @internal */
  get wasOpen(): boolean {
    return this.opened;
  }

  send(header: HeaderInput, tensors: readonly Tensor[] = []): boolean {
    if (this.connState !== 'open') throw new CleaveError('E_PEER_GONE', `connection ${this.name} is ${this.connState}`);
    checkDataKind(header.kind);
    return this.channel.send(header, tensors);
  }

  stats(): ConnectionStats {
    return {
      ...this.meter.stats(),
      name: this.name,
      state: this.connState,
      peer: this.peerId,
      queuedBytes: this.channel.queuedBytes,
      connects: this.opened ? 1 : 0,
    };
  }

  close(code = CLOSE_GOING_AWAY, reason = 'closing'): void {
    this.channel.close(code, reason);
  }

  /** @internal */
  onGone(fn: () => void): void {
    if (this.connState === 'closed') fn();
    else this.goneWaiters.push(fn);
  }

  private onFrame(frame: DecodedFrame, receivedAt: number): void {
    const h = frame.header;
    if (h.kind === 'hello') {
      if (this.connState !== 'connecting')
        return this.channel.fail(new CleaveError('E_BAD_FRAME', 'bad frame: kind hello twice'));
      clearTimeout(this.helloTimer);
      let hello;
      try {
        hello = checkHello(h.body);
      } catch (e) {
        return this.channel.fail(e as CleaveError);
      }
      if (this.claimed !== '*' && hello.host !== this.claimed)
        return this.channel.fail(
          new CleaveError(
            'E_UNAUTHORIZED',
            `peer presented ${this.claimed}'s credential but said hello as ${hello.host}`,
          ),
        );
      this.peerId = { host: hello.host, tier: hello.tier, modelSha256: hello.modelSha256 };
      this.log = this.log.child({ link: this.name });
      const refused = mismatch(this.cfg.modelSha256, hello);
      if (refused) return this.channel.fail(refused);
      this.channel.sendControl({ kind: 'hello', body: helloBody(this.cfg.self, this.cfg.modelSha256) });
      this.connState = 'open';
      this.opened = true;
      this.channel.start();
      this.log.info({ peer: this.peerId }, 'peer connected');
      this.hooks.opened(this);
      return;
    }
    if (this.connState !== 'open' || !this.peerId) {
      return this.channel.fail(new CleaveError('E_BAD_FRAME', `bad frame: kind ${h.kind} before the hello`));
    }
    deliverFrame(this.cfg.onFrame, frame, this, this.peerId, receivedAt, this.log);
  }

  private onClose(error: CleaveError): void {
    clearTimeout(this.helloTimer);
    this.connState = 'closed';
    this.meter.dropInFlight();
    const level = error.code === 'E_PEER_GONE' ? 'info' : 'warn';
    this.log[level]({ code: error.code }, `peer connection closed: ${error.message}`);
    this.hooks.closed(this, error);
    for (const w of this.goneWaiters.splice(0)) w();
  }
}

/** Answer an upgrade request with an HTTP error and drop the socket, as ws does for a bad handshake. */
function refuse(socket: Duplex, status: number, text: string): void {
  const body = JSON.stringify({ error: text });
  socket.once('finish', () => socket.destroy());
  socket.end(
    `HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}
