/**
 * `WS /v1/events`: the origin's event stream as JSON text messages, one event each (see plan/events.ts for
 * the types). A client that reads too slowly to keep its unsent backlog under `eventBufferBytes` is dropped
 * rather than buffered without bound: sent a 4429 close (which it sees if it catches up within a second),
 * then disconnected. The stream is read-only: what a client sends is ignored.
 *
 * Where reads need a token, a client that cannot send an Authorization header (a browser's WebSocket) may
 * offer the subprotocols `cleave.events` and `bearer.TOKEN`; the server answers with `cleave.events`.
 */
import type http from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocketServer, type WebSocket } from 'ws';
import type { CleaveError } from '../../errors.js';
import type { CleaveEvent, EventBus } from '../plan/events.js';
import { checkRead, type AccessPolicy } from './access.js';

export const EVENTS_PATH = '/v1/events';
/** Close code for a client dropped because it read too slowly. */
export const CLOSE_TOO_SLOW = 4429;
/** The subprotocol a client offers beside `bearer.TOKEN`, and the one the server then selects. */
export const EVENTS_PROTOCOL = 'cleave.events';
const BEARER_PREFIX = 'bearer.';

export interface EventsEndpoint {
  close(): void;
}

export function mountEvents(
  server: http.Server,
  bus: EventBus,
  o: {
    maxBufferedBytes: number;
    /** The first message's fields, for the model a client asked for (`?model=`; null: it named none). */
    hello(model: string | null): Record<string, unknown>;
    /** The models served: `?model=NAME` keeps one model's events (and those of no model); another name is a 404. */
    models?: readonly string[];
    logger: Logger;
    /** The peer endpoint's path, whose upgrades are not ours. */ peerPath: string;
    /** The control API's read policy: the stream is a read. */
    access?: AccessPolicy;
  },
): EventsEndpoint {
  const wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    maxPayload: 64 * 1024,
    handleProtocols: (offered) => (offered.has(EVENTS_PROTOCOL) ? EVENTS_PROTOCOL : false),
  });
  // Nobody else answers a refused upgrade, and a socket handed to 'upgrade' has no timeout: end it.
  const refuse = (socket: Duplex, status: string, error: string): void => {
    const body = JSON.stringify({ error });
    socket.once('finish', () => socket.destroy());
    socket.end(
      `HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  };
  const onUpgrade = (req: http.IncomingMessage, socket: Duplex, head: Buffer): void => {
    const [path, query] = (req.url ?? '/').split('?');
    if (path === o.peerPath) return; // the peer server's
    if (path !== EVENTS_PATH) return refuse(socket, '404 Not Found', `no WebSocket endpoint at ${path}`);
    const model = new URLSearchParams(query ?? '').get('model');
    if (model !== null && !(o.models ?? []).includes(model))
      return refuse(
        socket,
        '404 Not Found',
        `model '${model}' is not served here (models: ${(o.models ?? []).join(', ') || 'none'})`,
      );
    if (o.access) {
      try {
        const protocols = String(req.headers['sec-websocket-protocol'] ?? '')
          .split(',')
          .map((x) => x.trim());
        const bearer = protocols.find((x) => x.startsWith(BEARER_PREFIX));
        checkRead(req, o.access, 'the events stream', bearer?.slice(BEARER_PREFIX.length));
      } catch (e) {
        const err = e as CleaveError;
        return refuse(socket, err.status === 403 ? '403 Forbidden' : '401 Unauthorized', err.message);
      }
    }
    wss.handleUpgrade(req, socket, head, (ws) => serve(ws, model));
  };
  const serve = (ws: WebSocket, model: string | null): void => {
    const send = (e: CleaveEvent | Record<string, unknown>): void => {
      if (ws.readyState !== ws.OPEN) return;
      if (model !== null && e.model !== undefined && e.model !== model) return;
      if (ws.bufferedAmount > o.maxBufferedBytes) {
        o.logger.warn({ buffered: ws.bufferedAmount }, 'events client too slow: dropped');
        ws.close(CLOSE_TOO_SLOW, 'too slow: events backlog over eventBufferBytes');
        // A client that reads nothing never completes the closing handshake either.
        setTimeout(() => ws.terminate(), 1000).unref();
        off();
        return;
      }
      ws.send(JSON.stringify(e));
    };
    const off = bus.subscribe(send);
    ws.on('close', off);
    ws.on('error', off);
    send({ ...o.hello(model), type: 'hello', at: Date.now() });
  };
  server.on('upgrade', onUpgrade);
  return {
    close() {
      server.off('upgrade', onUpgrade);
      for (const c of wss.clients) c.terminate();
      wss.close();
    },
  };
}
