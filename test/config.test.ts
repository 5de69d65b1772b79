/**
 * The deployment config's checks (the file `cleave up --config` and `cleave serve --config` read) and the
 * transport options inside it: each mistake is named by its field.
 */
import { describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkConfig, readConfig, servedModels } from '../src/runtime/config.js';
import { DEFAULT_TRANSPORT_OPTIONS, resolveTransportOptions } from '../src/transport/options.js';

const good = {
  model: 'resnet50',
  hosts: [
    { name: 'device', tier: 'device', listen: '127.0.0.1:8000', threads: 1, cpus: 0.25 },
    { name: 'edge', tier: 'edge', listen: '127.0.0.1:8001' },
    { name: 'cloud', tier: 'cloud', listen: '127.0.0.1:8002', threads: 2 },
  ],
  links: [{ from: 'device', to: 'edge', mbps: 200, delayMs: 1 }],
  transport: { maxQueueBytes: 1 << 20, reconnect: { initialMs: 50 } },
};

describe('readConfig', () => {
  it("resolves the tls files' paths against the config file's folder", () => {
    const dir = mkdtempSync(join(tmpdir(), 'cleave-config-'));
    try {
      const file = join(dir, 'deploy.json');
      writeFileSync(
        file,
        JSON.stringify({
          ...good,
          tls: { cert: 'certs/host.pem', key: 'certs/host.key', ca: '/etc/ca.pem' },
          hosts: [{ ...good.hosts[0], tls: { cert: 'dev.pem', key: 'dev.key' } }, ...good.hosts.slice(1)],
        }),
      );
      const c = readConfig(file);
      expect(c.tls).toEqual({ cert: join(dir, 'certs/host.pem'), key: join(dir, 'certs/host.key'), ca: '/etc/ca.pem' });
      expect(c.hosts[0].tls).toEqual({ cert: join(dir, 'dev.pem'), key: join(dir, 'dev.key') });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('checkConfig', () => {
  it('accepts a full config and fills in the default tiers', () => {
    expect(checkConfig(good)).toMatchObject({ model: 'resnet50', tiers: ['device', 'edge', 'cloud'] });
  });

  it.each([
    [{ ...good, model: '' }, /config: model must be a model name/],
    [{ ...good, hosts: [] }, /hosts must be a non-empty list/],
    [
      { ...good, hosts: [good.hosts[0], { ...good.hosts[1], name: 'device' }] },
      /hosts\[1\]\.name 'device' is used twice/,
    ],
    [
      { ...good, hosts: [good.hosts[0], { ...good.hosts[1], tier: 'fog' }] },
      /hosts\[1\]\.tier must be one of device, edge, cloud/,
    ],
    [{ ...good, hosts: [{ ...good.hosts[0], cpus: 0 }] }, /hosts\[0\]\.cpus must be a positive number/],
    [{ ...good, hosts: good.hosts.slice(1) }, /exactly one host of the origin tier 'device'/],
    [{ ...good, links: [{ from: 'device', to: 'moon' }] }, /links\[0\]\.to 'moon' is not a host/],
    [
      { ...good, hosts: [good.hosts[0], { ...good.hosts[1], grpc: '127.0.0.1:8010' }, good.hosts[2]] },
      /hosts\[1\]\.grpc only the origin tier's host \(device\) serves inference/,
    ],
    [
      { ...good, hosts: [{ ...good.hosts[0], grpc: '127.0.0.1:8000' }, ...good.hosts.slice(1)] },
      /hosts\[0\]\.grpc is the host's listen address too/,
    ],
    [
      { ...good, hosts: [{ ...good.hosts[0], grpc: 'nowhere' }, ...good.hosts.slice(1)] },
      /hosts\[0\]\.grpc 'nowhere': expected HOST:PORT/,
    ],
    [{ ...good, tls: { cert: 'a.pem' } }, /tls\.key must be the path of a PEM file/],
    [{ ...good, tls: { cert: 'a.pem', key: 'a.key', ca: 3 } }, /tls\.ca must be the path of a PEM file/],
    [
      { ...good, transport: { maxQueueBytess: 5 } },
      /config: transport\.maxQueueBytess: unknown option \(known: maxFrameBytes, /,
    ],
    [{ ...good, transport: { minSampleMs: 0 } }, /transport\.minSampleMs: must be a positive number, got 0/],
    [{ ...good, transport: { ewmaAlpha: 3 } }, /transport\.ewmaAlpha: must be in \(0, 1\], got 3/],
    [{ ...good, transport: { maxFrameBytes: 'big' } }, /transport\.maxFrameBytes: must be an integer >= 1, got "big"/],
    [
      { ...good, transport: { reconnect: { initialMs: 0 } } },
      /transport\.reconnect\.initialMs: must be a positive number, got 0/,
    ],
    [
      { ...good, transport: { reconnect: { initialMs: 500, maxMs: 100 } } },
      /transport\.reconnect\.maxMs: must be >= reconnect\.initialMs \(500\)/,
    ],
    [{ ...good, transport: { pingIntervalMs: -5 } }, /transport\.pingIntervalMs: must be a positive number/],
    [{ ...good, models: [] }, /config: models must be a non-empty list of model names/],
    [{ ...good, models: ['a', 'a'] }, /config: models\[1\]\.name 'a' is listed twice/],
    [{ ...good, models: ['a', { name: 'b', shape: {} }] }, /models\[1\]\.shape is not a field of a model/],
    [{ ...good, models: [{ name: 'b/c' }] }, /models\[0\]\.name must be a model name/],
    [
      { ...good, models: [{ name: 'b', shapes: { x: [0] } }] },
      /models\[0\]\.shapes\.x must be a list of positive integers/,
    ],
    [{ ...good, models: [7] }, /models\[0\] must be a model name or/],
  ])('refuses %#, naming the field', (raw, message) => {
    expect(() => checkConfig(raw, 'config')).toThrow(message);
  });

  it('serves the models of `models`, the default (`model`, or the first of them) first with the top-level shapes', () => {
    const two = checkConfig({ ...good, model: undefined, models: ['a', { name: 'b', shapes: { x: [1, 3] } }] });
    expect(two.model).toBe('a');
    expect(servedModels(two).map((m) => m.name)).toEqual(['a', 'b']);
    expect(servedModels(two)[1].shapes).toEqual({ x: [1, 3] });
    const withDefault = checkConfig({ ...good, model: 'b', shapes: { y: [2] }, models: ['a', 'b'] });
    expect(servedModels(withDefault)).toEqual([
      { name: 'b', shapes: { y: [2] }, values: undefined, granularity: undefined },
      { name: 'a' },
    ]);
    expect(servedModels(checkConfig(good)).map((m) => m.name)).toEqual(['resnet50']);
  });
});

describe('resolveTransportOptions', () => {
  it('puts the given options over the defaults, reconnect included', () => {
    const o = resolveTransportOptions({ maxTensors: 8, reconnect: { maxMs: 9000 }, pingIntervalMs: undefined });
    expect(o.maxTensors).toBe(8);
    expect(o.pingIntervalMs).toBe(DEFAULT_TRANSPORT_OPTIONS.pingIntervalMs);
    expect(o.reconnect).toEqual({ initialMs: DEFAULT_TRANSPORT_OPTIONS.reconnect.initialMs, maxMs: 9000 });
  });
});
