/**
 * The gateway's body reader on a real express server on loopback: the binary part starts 8-byte aligned
 * whatever the JSON header's length, encoded and chunked bodies still arrive whole, and an oversized or
 * truncated body gets its error while the server keeps serving.
 */
import http from 'node:http';
import { connect } from 'node:net';
import { gzipSync } from 'node:zlib';
import express, { type NextFunction, type Request, type Response } from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CleaveError } from '../src/errors.js';
import { inferBody } from '../src/runtime/http/body.js';

const FIELD = 'inference-header-content-length';
const LIMIT = 100_000;
let server: http.Server;
let port: number;
const seen: { offset: number; length: number; sum: number }[] = [];

beforeAll(async () => {
  const app = express();
  app.post('/x', inferBody(LIMIT, FIELD), (req: Request, res: Response) => {
    const b = req.body as Buffer;
    const json = Number(req.get(FIELD) ?? 0);
    seen.push({ offset: (b.byteOffset + json) % 8, length: b.length, sum: b.reduce((a, v) => a + v, 0) });
    res.json({ length: b.length, alignedBinary: (b.byteOffset + json) % 8 === 0 });
  });
  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const e = err instanceof CleaveError ? err : new CleaveError('E_BAD_INPUT', String((err as Error).message));
    res
      .status(e.code === 'E_TOO_LARGE' || (err as { type?: string }).type === 'entity.too.large' ? 413 : e.status)
      .json({ error: e.message });
  });
  // The reader's own listeners, counted before it runs and once the body is in: none may be left behind.
  const read = inferBody(LIMIT, FIELD);
  app.post('/listeners', (req: Request, res: Response, next: NextFunction) => {
    const before = { end: req.listenerCount('end'), close: req.listenerCount('close') };
    read(req, res, (e?: unknown) => {
      if (e) return next(e);
      res.json({ before, after: { end: req.listenerCount('end'), close: req.listenerCount('close') } });
    });
  });
  await new Promise<void>((r) => {
    server = app.listen(0, '127.0.0.1', () => r());
  });
  port = (server.address() as { port: number }).port;
});

afterAll(() => new Promise<void>((r) => server.close(() => r())));

const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

function post(
  body: Buffer,
  headers: Record<string, string | number>,
  path = '/x',
): Promise<{ status: number; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method: 'POST', agent, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString()) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const bytes = (n: number, seed: number): Buffer =>
  Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff));

describe('inferBody', () => {
  it('puts the binary part on an 8-byte boundary for every JSON header length and keeps every byte', async () => {
    for (let json = 0; json < 16; json++) {
      const body = bytes(json + 4096, json);
      const r = await post(body, { 'content-length': body.length, [FIELD]: json });
      expect(r.status).toBe(200);
      expect(r.json).toEqual({ length: body.length, alignedBinary: true });
      expect(seen.at(-1)?.sum).toBe(body.reduce((a, v) => a + v, 0));
    }
  });

  it('reads a gzip-encoded body and a chunked body whole', async () => {
    const body = bytes(50_000, 7);
    let r = await post(gzipSync(body), { 'content-encoding': 'gzip', [FIELD]: 0 });
    expect(r.status).toBe(200);
    expect(r.json.length).toBe(body.length);
    expect(seen.at(-1)?.sum).toBe(body.reduce((a, v) => a + v, 0));
    r = await post(body, { 'transfer-encoding': 'chunked' });
    expect(r.status).toBe(200);
    expect(r.json.length).toBe(body.length);
  });

  it("leaves none of its listeners on a request it read whole (its 'close' would build an error for nothing)", async () => {
    const r = await post(bytes(5000, 3), { 'content-length': 5000, [FIELD]: 3 }, '/listeners');
    expect(r.status).toBe(200);
    expect(r.json.after).toEqual(r.json.before);
  });

  it('refuses a body over the limit with 413 and serves the next request on the same connection', async () => {
    const big = Buffer.alloc(LIMIT + 1);
    let r = await post(big, { 'content-length': big.length });
    expect(r.status).toBe(413);
    expect(r.json.error).toMatch(/larger than the 100000 byte limit/);
    r = await post(bytes(100, 1), { 'content-length': 100 });
    expect(r.status).toBe(200);
  });

  it('drops a body that ends before its Content-Length without answering it, and keeps serving', async () => {
    const before = seen.length;
    await new Promise<void>((resolve, reject) => {
      const s = connect(port, '127.0.0.1', () => {
        s.write(`POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n${'a'.repeat(10)}`);
        setTimeout(() => s.destroy(), 50);
      });
      s.on('close', () => resolve());
      s.on('error', reject);
    });
    await new Promise((r) => setTimeout(r, 50));
    expect(seen.length).toBe(before);
    const r = await post(bytes(10, 2), { 'content-length': 10 });
    expect(r.status).toBe(200);
  });
});
