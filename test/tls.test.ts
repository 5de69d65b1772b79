/**
 * TLS end to end: three real hosts on loopback serving HTTPS and dialing each other over wss:// with the
 * deployment's CA (test/fixtures/tls: a test CA and a certificate for 127.0.0.1). Inference through every
 * host is right; plain HTTP and clients that do not trust the CA get nothing; the CLI trusts the CA through
 * NODE_EXTRA_CA_CERTS; a certificate that cannot be read stops a host with a message naming the file.
 */
import { execFile } from 'node:child_process';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import { connect } from 'node:net';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { zooEntry } from '../src/graph/zoo/index.js';
import { checkConfig } from '../src/runtime/config.js';
import { Host } from '../src/runtime/host/host.js';
import { requestHost } from '../src/runtime/http-client.js';
import { createSession } from '../src/runtime/local/ort-local.js';
import { OIP_PROTO, PROTO_OPTIONS } from '../src/runtime/grpc/server.js';
import { allclose, loopbackHosts, startDeployment, TEST_CONTROL_TOKEN, type Deployment } from './helpers/deployment.js';

const FIX = join(import.meta.dirname, 'fixtures', 'tls');
const TLS = { cert: join(FIX, 'host.pem'), key: join(FIX, 'host.key'), ca: join(FIX, 'ca.pem') };
const CA = readFileSync(TLS.ca);

const bytes = zooEntry('mobilenetv2')!.build({ small: true }).toBytes();
let d: Deployment;
const x = (() => {
  const dims = [1, 3, 64, 64];
  const data = new Float32Array(dims.reduce((a, b) => a * b, 1));
  for (let i = 0; i < data.length; i++) data[i] = ((i * 37) % 101) / 101;
  return { dims, data };
})();

beforeAll(async () => {
  d = await startDeployment({ modelName: 'mnv2', modelBytes: bytes, tls: TLS, grpc: true });
}, 120_000);

afterAll(async () => {
  await d?.close();
});

const call = (path: string, o: { method?: string; body?: string; token?: string } = {}) =>
  requestHost(`${d.url}${path}`, {
    method: o.method,
    body: o.body,
    ca: CA,
    timeoutMs: 20_000,
    headers: {
      'content-type': 'application/json',
      ...(o.token ? { authorization: `Bearer ${o.token}` } : {}),
    },
  });

describe('TLS (real hosts on loopback)', () => {
  it('serves https, and infers right through a plan pinned across all three hosts over wss:// links', async () => {
    expect(d.url).toMatch(/^https:\/\//);
    expect((await call('/v2/health/ready')).status).toBe(200);
    const n = d.device.analysis.blocks.length;
    const a = Math.floor(n / 3);
    const b = Math.floor((2 * n) / 3);
    const pin = await call('/v1/plan', {
      method: 'PUT',
      token: TEST_CONTROL_TOKEN,
      body: JSON.stringify({
        stages: [
          { host: 'dev', blocks: [0, a] },
          { host: 'edg', blocks: [a, b] },
          { host: 'cld', blocks: [b, n] },
        ],
      }),
    });
    expect(pin.status, pin.text).toBe(200);
    expect(JSON.parse(pin.text).route).toMatch(/dev\[.*-> edg\[.*-> cld\[/);
    const name = d.device.analysis.model.inputs[0].name;
    const r = await call('/v2/models/mnv2/infer', {
      method: 'POST',
      body: JSON.stringify({ inputs: [{ name, shape: x.dims, datatype: 'FP32', data: Array.from(x.data) }] }),
    });
    expect(r.status, r.text).toBe(200);
    const got = JSON.parse(r.text) as { outputs: { name: string; data: number[] }[] };
    const s = await createSession(bytes);
    const want = await s.run({ [name]: new ort.Tensor('float32', x.data, x.dims) });
    await s.release();
    for (const o of got.outputs) {
      const c = allclose(Float32Array.from(o.data), want[o.name].data as Float32Array, 1e-4, 1e-3);
      expect(c.ok, JSON.stringify(c)).toBe(true);
    }
    // The links the device dialed are up, over TLS.
    const links = JSON.parse((await call('/v1/links')).text) as { to: string; state: string }[];
    expect(links.map((l) => [l.to, l.state]).sort()).toEqual([
      ['cld', 'open'],
      ['edg', 'open'],
    ]);
  });

  it('serves gRPC over TLS with the same certificate: a client trusting the CA is served, an insecure one is not', async () => {
    const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(OIP_PROTO, PROTO_OPTIONS)) as any;
    const Service = pkg.inference.GRPCInferenceService;
    const ask = (creds: grpc.ChannelCredentials) => {
      const c = new Service(`127.0.0.1:${d.device.grpcPort}`, creds);
      return new Promise<unknown>((resolve) =>
        c.ServerLive({}, { deadline: Date.now() + 5000 }, (err: grpc.ServiceError | null, res: unknown) => {
          c.close();
          resolve(err ? err.code : res);
        }),
      );
    };
    expect(await ask(grpc.credentials.createSsl(CA))).toEqual({ live: true });
    expect(await ask(grpc.credentials.createInsecure())).toBe(grpc.status.UNAVAILABLE);
    expect(await ask(grpc.credentials.createSsl())).toBe(grpc.status.UNAVAILABLE); // system roots only
  });

  it('gives nothing to plain HTTP or to a client that does not trust the CA, and keeps serving', async () => {
    for (const h of d.hosts) {
      const port = h.port;
      // Plain HTTP on a TLS port: the server answers no HTTP at all.
      const plain = await new Promise<string>((resolve) => {
        const sock = connect(port, '127.0.0.1', () => sock.write('GET /v2/health/ready HTTP/1.1\r\nHost: x\r\n\r\n'));
        let got = '';
        sock.on('data', (c) => (got += c.toString('latin1')));
        sock.on('close', () => resolve(got));
        sock.on('error', () => resolve(got));
        setTimeout(() => sock.destroy(), 2000);
      });
      expect(plain).not.toMatch(/^HTTP\/1\.1 200/);
      // No CA: the certificate is not trusted.
      const err = await new Promise<Error>((resolve) => {
        https
          .get(`https://127.0.0.1:${port}/v2/health/ready`, (res) => resolve(new Error(`answered ${res.statusCode}`)))
          .on('error', resolve);
      });
      expect(err.message).toMatch(/certificate/);
      // A peer dialing ws:// (no TLS) never gets its upgrade.
      const ws = await new Promise<string>((resolve) => {
        const w = new WebSocket(`ws://127.0.0.1:${port}/v1/peer`, { headers: { authorization: `Bearer ${d.token}` } });
        w.on('open', () => resolve('open'));
        w.on('error', (e) => resolve(e.message));
        w.on('unexpected-response', (_q, res) => resolve(`status ${res.statusCode}`));
      });
      expect(ws).not.toBe('open');
    }
    expect((await call('/v2/health/ready')).status).toBe(200);
  });

  it('the CLI reaches an https deployment with NODE_EXTRA_CA_CERTS, and says what is wrong without it', async () => {
    const cli = (env: NodeJS.ProcessEnv) =>
      new Promise<{ code: number; out: string; err: string }>((resolve) => {
        execFile(
          process.execPath,
          [join(import.meta.dirname, '..', 'bin', 'cleave.mjs'), 'link', 'show', '--url', d.url],
          { env: { ...process.env, ...env }, timeout: 60_000 },
          (e, out, err) => resolve({ code: e ? ((e as { code?: number }).code ?? 1) : 0, out, err }),
        );
      });
    const ok = await cli({ NODE_EXTRA_CA_CERTS: TLS.ca });
    expect(ok.code, ok.err).toBe(0);
    expect(ok.out).toMatch(/edg/);
    const bad = await cli({ NODE_EXTRA_CA_CERTS: '' });
    expect(bad.code).not.toBe(0);
    expect(bad.err).toMatch(/certificate.*NODE_EXTRA_CA_CERTS/);
  }, 120_000);

  it('refuses a tls config without a key, a host tls without the deployment one, and an unreadable certificate', async () => {
    const hosts = await loopbackHosts(['dev', 'edg', 'cld']);
    expect(() => checkConfig({ model: 'm', hosts, tls: { cert: 'a.pem' } })).toThrow(/tls\.key must be the path/);
    expect(() => checkConfig({ model: 'm', hosts, tls: { ...TLS, pin: 'x' } })).toThrow(
      /tls\.pin is not a TLS setting/,
    );
    expect(() =>
      checkConfig({ model: 'm', hosts: [{ ...hosts[0], tls: { cert: 'a', key: 'b' } }, ...hosts.slice(1)] }),
    ).toThrow(/hosts\[0\]\.tls needs the deployment's tls/);
    const config = checkConfig({ model: 'mnv2', hosts, tls: { ...TLS, cert: join(FIX, 'missing.pem') } });
    await expect(
      Host.start({ config, name: 'dev', modelsDir: '/nonexistent', cacheDir: '/nonexistent' }),
    ).rejects.toThrow(/tls\.cert .*missing\.pem: ENOENT/);
    const notPem = checkConfig({ model: 'mnv2', hosts, tls: { ...TLS, key: join(FIX, 'README.md') } });
    await expect(
      Host.start({ config: notPem, name: 'dev', modelsDir: '/nonexistent', cacheDir: '/nonexistent' }),
    ).rejects.toThrow(/tls\.key .*README\.md: not a PEM file/);
  });
});
