/**
 * `WS /v1/events` (mountEvents) on a real HTTP server on loopback with a real EventBus: the hello and the
 * events in order; upgrades to other paths refused with 404 (and the peer path left to the peer server);
 * a client that stops reading dropped once the server's unsent backlog passes maxBufferedBytes, with the
 * server serving the next client.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import pino from 'pino';
import type { AccessPolicy } from '../src/runtime/http/access.js';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { EVENTS_PATH, EVENTS_PROTOCOL, mountEvents, type EventsEndpoint } from '../src/runtime/http/events.js';
import { EventBus } from '../src/runtime/plan/events.js';

const PEER_PATH = '/v1/peer';

interface Origin {
  server: http.Server;
  bus: EventBus;
  endpoint: EventsEndpoint;
  port: number;
  /** Every socket the server handed to 'upgrade', in order. */
  upgraded: Duplex[];
}

let origins: Origin[] = [];
let clients: { destroy(): void }[] = [];

afterEach(async () => {
  for (const c of clients) c.destroy();
  clients = [];
  for (const o of origins) {
    o.endpoint.close();
    o.server.closeAllConnections();
    await new Promise((r) => o.server.close(r));
  }
  origins = [];
});

async function origin(maxBufferedBytes = 1 << 20, access?: AccessPolicy): Promise<Origin> {
  const server = http.createServer((_req, res) => res.end('plain http'));
  const bus = new EventBus();
  const upgraded: Duplex[] = [];
  server.on('upgrade', (_req, socket: Duplex) => upgraded.push(socket));
  const endpoint = mountEvents(server, bus, {
    maxBufferedBytes,
    hello: () => ({ host: 'dev', epoch: 4 }),
    logger: pino({ level: 'silent' }),
    peerPath: PEER_PATH,
    access,
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const o = { server, bus, endpoint, port: (server.address() as AddressInfo).port, upgraded };
  origins.push(o);
  return o;
}

async function until<T>(what: string, f: () => T | undefined | false, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = f();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A ws client collecting every message as parsed JSON. */
async function listen(port: number): Promise<{ ws: WebSocket; got: any[] }> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}${EVENTS_PATH}`, { perMessageDeflate: false });
  clients.push({ destroy: () => ws.terminate() });
  const got: any[] = [];
  ws.on('message', (m) => got.push(JSON.parse(String(m))));
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  return { ws, got };
}

/** A raw TCP client that sends `request` and gathers what comes back until the server closes. */
function raw(port: number, request: string): { socket: net.Socket; data: () => string; closed: Promise<void> } {
  const socket = net.connect(port, '127.0.0.1');
  clients.push(socket);
  let data = '';
  socket.on('data', (b) => (data += b.toString('latin1')));
  socket.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.write(request);
  return { socket, data: () => data, closed };
}

function upgradeRequest(path: string): string {
  const key = randomBytes(16).toString('base64');
  return `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`;
}

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms))),
  ]).finally(() => clearTimeout(timer));
}

describe('WS /v1/events', () => {
  it('sends a hello, then every event in order with increasing seq, to every client', async () => {
    const o = await origin();
    const a = await listen(o.port);
    const b = await listen(o.port);
    await until('two hellos', () => a.got.length === 1 && b.got.length === 1);
    expect(a.got[0]).toMatchObject({ type: 'hello', host: 'dev', epoch: 4 });
    expect(typeof a.got[0].at).toBe('number');
    expect(o.bus.size).toBe(2);

    o.bus.emit('link-changed', { from: 'dev', to: 'edg', rttMs: 1.5, throughputBps: 1e6 });
    o.bus.emit('host-down', { host: 'cld' });
    // What a client sends is ignored: the stream stays open and goes on.
    a.ws.send('{"type":"please-stop"}');
    o.bus.emit('plan-adopted', { epoch: 5, reason: 'cld down' });
    await until('three events each', () => a.got.length === 4 && b.got.length === 4);
    for (const c of [a, b]) {
      expect(c.got.slice(1).map((e) => e.type)).toEqual(['link-changed', 'host-down', 'plan-adopted']);
      const seqs = c.got.slice(1).map((e) => e.seq as number);
      expect(seqs[1]).toBeGreaterThan(seqs[0]);
      expect(seqs[2]).toBeGreaterThan(seqs[1]);
      expect(c.got[1]).toMatchObject({ from: 'dev', to: 'edg', rttMs: 1.5, throughputBps: 1e6 });
      expect(c.got[3]).toMatchObject({ epoch: 5, reason: 'cld down' });
    }
    expect(a.ws.readyState).toBe(WebSocket.OPEN);

    // A client that leaves is unsubscribed.
    a.ws.close();
    await until('one subscriber left', () => o.bus.size === 1);
  });

  it('where reads need a token, takes it as a header or as a bearer.TOKEN subprotocol (what a browser can send)', async () => {
    const o = await origin(1 << 20, {
      controlToken: 'ctl-token',
      identifyPeer: () => null,
      origin: 'dev',
      readAccess: 'token',
    });
    const url = `ws://127.0.0.1:${o.port}${EVENTS_PATH}`;
    const opened = (ws: WebSocket): Promise<string> =>
      new Promise((resolve, reject) => {
        clients.push({ destroy: () => ws.terminate() });
        ws.once('open', () => resolve(ws.protocol));
        ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
        ws.once('error', reject);
      });
    // As a browser offers it: the server picks cleave.events and the stream starts with a hello.
    const b = new WebSocket(url, [EVENTS_PROTOCOL, 'bearer.ctl-token'], { perMessageDeflate: false });
    const first = new Promise((r) => b.once('message', (m) => r(JSON.parse(String(m)))));
    expect(await opened(b)).toBe(EVENTS_PROTOCOL);
    expect(await first).toMatchObject({ type: 'hello' });
    // As a header, without subprotocols.
    const h = new WebSocket(url, { perMessageDeflate: false, headers: { authorization: 'Bearer ctl-token' } });
    expect(await opened(h)).toBe('');
    // Missing: 401; wrong: 403; a wrong header is not rescued by a right subprotocol.
    await expect(opened(new WebSocket(url, { perMessageDeflate: false }))).rejects.toThrow('HTTP 401');
    await expect(opened(new WebSocket(url, [EVENTS_PROTOCOL, 'bearer.nope']))).rejects.toThrow('HTTP 403');
    await expect(
      opened(new WebSocket(url, [EVENTS_PROTOCOL, 'bearer.ctl-token'], { headers: { authorization: 'Bearer x' } })),
    ).rejects.toThrow('HTTP 403');
  });

  it('refuses an upgrade to another path with 404 and closes the socket', async () => {
    const o = await origin();
    const c = raw(o.port, upgradeRequest('/v1/nothing-here?x=1'));
    await within(c.closed, 5000, 'the server to close a refused upgrade');
    expect(c.data()).toMatch(/^HTTP\/1\.1 404 Not Found\r\n/);
    const body = c.data().split('\r\n\r\n')[1];
    expect(JSON.parse(body)).toEqual({ error: 'no WebSocket endpoint at /v1/nothing-here' });
    expect(o.bus.size).toBe(0);

    // The ws client sees the same status.
    const ws = new WebSocket(`ws://127.0.0.1:${o.port}/v2/elsewhere`, { perMessageDeflate: false });
    clients.push({ destroy: () => ws.terminate() });
    ws.on('error', () => undefined);
    const status = await within(
      new Promise<number>((resolve) =>
        ws.on('unexpected-response', (_req, res) => {
          resolve(res.statusCode ?? 0);
          res.resume();
          ws.terminate();
        }),
      ),
      5000,
      'a 404 for the ws client',
    );
    expect(status).toBe(404);
  });

  it('leaves the peer path to the peer server', async () => {
    const o = await origin();
    // A stand-in for the peer server, which answers its own path.
    o.server.on('upgrade', (req, socket: Duplex) => {
      if (req.url === PEER_PATH) socket.end('HTTP/1.1 418 Peer Here\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    });
    const c = raw(o.port, upgradeRequest(PEER_PATH));
    await within(c.closed, 5000, 'the peer stand-in to answer');
    expect(c.data()).toMatch(/^HTTP\/1\.1 418 Peer Here\r\n/);
    expect(c.data()).not.toMatch(/404|no WebSocket endpoint/);
    expect(o.bus.size).toBe(0);
  });

  it('drops a client that stops reading once the backlog passes maxBufferedBytes, and serves the next client', async () => {
    const o = await origin(64 * 1024);
    // A client that completes the handshake by hand and then reads nothing more.
    const slow = raw(o.port, upgradeRequest(EVENTS_PATH));
    await until('the 101 handshake', () => slow.data().includes('\r\n\r\n'));
    expect(slow.data()).toMatch(/^HTTP\/1\.1 101 Switching Protocols\r\n/);
    slow.socket.pause();
    await until('the slow client subscribed', () => o.bus.size === 1);
    const serverSide = o.upgraded[0];
    const serverClosed = new Promise<void>((resolve) => serverSide.once('close', () => resolve()));

    // 256 KiB events until the server gives up on it: the kernel's socket buffers take some megabytes first.
    const big = 'x'.repeat(256 * 1024);
    const cap = 400;
    let sent = 0;
    while (o.bus.size > 0 && sent < cap) {
      o.bus.emit('snapshot', { big });
      sent++;
      await new Promise((r) => setImmediate(r));
    }
    expect(o.bus.size, `still subscribed after ${sent} events of 256 KiB`).toBe(0);
    expect(sent).toBeLessThan(cap);
    // It never reads the close frame, so the server terminates the connection.
    await within(serverClosed, 5000, 'the server to terminate the slow client');
    expect(serverSide.destroyed).toBe(true);

    // The server goes on serving.
    const next = await listen(o.port);
    await until('the hello', () => next.got.length === 1);
    o.bus.emit('host-up', { host: 'cld' });
    await until('an event', () => next.got.length === 2);
    expect(next.got.map((e) => e.type)).toEqual(['hello', 'host-up']);
    expect(o.bus.size).toBe(1);
  });
});
