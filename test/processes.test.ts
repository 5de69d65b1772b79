/**
 * Hosts as real OS processes, the way `cleave up` and `cleave serve` run them: the launcher's three
 * processes serve a split route whose output equals in-process ORT, every host runs with the V8 heap flags,
 * and a `cleave serve` started without them runs itself again with them and stops cleanly on SIGTERM.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { zooEntry } from '../src/graph/zoo/index.js';
import type { DeploymentConfig, HostConfig } from '../src/runtime/config.js';
import type { Launched } from '../src/runtime/process/launcher.js';
import { HOST_NODE_FLAGS } from '../src/runtime/process/node-flags.js';
import { createSession } from '../src/runtime/local/ort-local.js';
import { hostToken } from '../src/transport/identity.js';
import { allclose, freePort, inferBinary, launchReady, loopbackHosts, putJson } from './helpers/deployment.js';

const BIN = fileURLToPath(new URL('../bin/cleave.mjs', import.meta.url));
const MODEL = 'mnv2';
const bytes = zooEntry('mobilenetv2')!.build({ small: true }).toBytes();
const dims = [1, 3, 64, 64];
const x = Float32Array.from({ length: 3 * 64 * 64 }, (_, i) => Math.sin(i * 0.37));

let dir: string;
let repo: string;
let want: Float32Array;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cleave-processes-'));
  repo = join(dir, 'models');
  mkdirSync(join(repo, MODEL, '1'), { recursive: true });
  writeFileSync(join(repo, MODEL, '1', 'model.onnx'), bytes);
  const s = await createSession(bytes, { intraOpThreads: 1 });
  const out = await s.run({ [s.inputNames[0]]: new ort.Tensor('float32', x, dims) });
  want = out[s.outputNames[0]].data as Float32Array;
  await s.release();
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** `cleave serve` of a lone device host `name` on `port`, with its own cache and token. */
function spawnServe(
  name: string,
  port: number,
  nodeFlags: readonly string[],
  env: Record<string, string>,
  stdio: ['ignore', 'pipe' | 'ignore', 'pipe'],
): ChildProcess {
  const args = [
    'serve',
    '--name',
    name,
    '--tier',
    'device',
    '--listen',
    `127.0.0.1:${port}`,
    '--models',
    repo,
    '--model',
    MODEL,
  ];
  return spawn(process.execPath, [...nodeFlags, BIN, ...args], {
    env: {
      ...process.env,
      CLEAVE_CACHE: join(dir, `cache-${name}`),
      CLEAVE_TOKEN: `${name}-token`,
      LOG_LEVEL: 'warn',
      ...env,
    },
    stdio,
  });
}

interface Topology {
  hosts: { host: string; heapFlags?: string[]; error?: string }[];
}

describe('launched hosts (three OS processes)', () => {
  let d: Launched;
  let hosts: HostConfig[] = [];
  const lines: string[] = [];

  beforeAll(async () => {
    hosts = await loopbackHosts(['device', 'edge', 'cloud']);
    const config: DeploymentConfig = {
      model: MODEL,
      hosts,
      profile: { repeats: 2, warmup: 1 },
    };
    d = await launchReady(dir, repo, config, lines);
  }, 120_000);

  afterAll(async () => {
    await d?.stop();
  });

  it('serves a device -> edge -> cloud route whose output equals in-process ORT', async () => {
    const n = (
      (await (await fetch(`${d.url}/v1/plan`)).json()) as { stages: { blocks: [number, number] | null }[] }
    ).stages.reduce((m, s) => Math.max(m, s.blocks?.[1] ?? 0), 0);
    expect(n).toBeGreaterThan(3);
    const a = Math.floor(n / 3);
    const b = Math.floor((2 * n) / 3);
    const pin = await putJson(
      `${d.url}/v1/plan`,
      {
        stages: [
          { host: 'device', blocks: [0, a] },
          { host: 'edge', blocks: [a, b] },
          { host: 'cloud', blocks: [b, n] },
        ],
      },
      d.controlToken,
    );
    expect(pin.status, await pin.clone().text()).toBe(200);
    for (let i = 0; i < 3; i++) {
      const r = await inferBinary(d.url, MODEL, [{ name: 'input', dtype: 'float32', dims, data: x }]);
      expect(r.status).toBe(200);
      const got = Object.values(r.outputs)[0];
      expect(allclose(got, want).ok).toBe(true);
    }
    const plan = (await (await fetch(`${d.url}/v1/plan`)).json()) as {
      route: string;
      stages: { host: string; measuredComputeMs: number | null }[];
    };
    expect(plan.stages.map((s) => s.host)).toEqual(['device', 'edge', 'cloud']);
    for (const s of plan.stages) expect(s.measuredComputeMs).toBeGreaterThan(0);
  });

  it("gives each host its own peer credential: the master is refused, and the cloud's cannot prepare the edge's segments", async () => {
    const edge = hosts.find((h) => h.name === 'edge')!.listen;
    const seg = (token: string) =>
      fetch(`http://${edge}/v1/segments`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ from: 0, to: 1 }),
      });
    // The master peer token never reached the hosts: it is no credential there.
    expect((await seg(d.token)).status).toBe(401);
    const cloud = await seg(hostToken(d.token, 'cloud'));
    expect(cloud.status).toBe(403);
    expect(((await cloud.json()) as { error: string }).error).toMatch(/cloud's credential: only the origin \(device\)/);
    // The origin's own credential is what the device itself uses.
    expect((await seg(hostToken(d.token, 'device'))).status).toBe(200);
  });

  it('runs every host with the V8 heap flags', async () => {
    const t = (await (await fetch(`${d.url}/v1/topology`)).json()) as Topology;
    expect(t.hosts.map((h) => h.host).sort()).toEqual(['cloud', 'device', 'edge']);
    for (const h of t.hosts) expect(h.heapFlags).toEqual([...HOST_NODE_FLAGS]);
  });
});

describe('cleave serve started without the heap flags', () => {
  let child: ChildProcess;
  let out = '';

  afterAll(() => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
  });

  it('runs itself again with them, serves, and exits 0 on SIGTERM', async () => {
    const port = await freePort();
    child = spawnServe('solo', port, [], {}, ['ignore', 'pipe', 'pipe']);
    child.stdout?.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr?.on('data', (b: Buffer) => (out += b.toString()));
    const url = `http://127.0.0.1:${port}`;
    const until = Date.now() + 90_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`serve exited ${child.exitCode}: ${out}`);
      if (Date.now() > until) throw new Error(`serve not ready: ${out}`);
      const r = await fetch(`${url}/v2/health/ready`).catch(() => null);
      if (r?.status === 200) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const t = (await (await fetch(`${url}/v1/topology`)).json()) as Topology;
    expect(t.hosts).toHaveLength(1);
    expect(t.hosts[0].heapFlags).toEqual([...HOST_NODE_FLAGS]);
    const r = await inferBinary(url, MODEL, [{ name: 'input', dtype: 'float32', dims, data: x }]);
    expect(r.status).toBe(200);
    expect(allclose(Object.values(r.outputs)[0], want).ok).toBe(true);

    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    // The re-executed host went with it: nothing answers on the port.
    expect(
      await fetch(`${url}/v2/health/live`).then(
        () => 'answered',
        () => 'refused',
      ),
    ).toBe('refused');
  }, 120_000);
});

describe('a launched host whose launcher is gone', () => {
  it('stops by itself (CLEAVE_PARENT_PID), instead of living on as an orphan', async () => {
    const parent = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    const port = await freePort();
    const host = spawnServe('orphan', port, HOST_NODE_FLAGS, { CLEAVE_PARENT_PID: String(parent.pid) }, [
      'ignore',
      'ignore',
      'pipe',
    ]);
    let err = '';
    host.stderr?.on('data', (b: Buffer) => (err += b.toString()));
    try {
      for (let i = 0; i < 300; i++) {
        const live = await fetch(`http://127.0.0.1:${port}/v2/health/live`).then(
          (r) => r.status,
          () => 0,
        );
        if (live === 200) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      const exited = new Promise<number | null>((resolve) => host.once('exit', (code) => resolve(code)));
      parent.kill('SIGKILL');
      expect(await exited).toBe(0);
    } finally {
      if (host.exitCode === null) host.kill('SIGKILL');
      if (parent.exitCode === null) parent.kill('SIGKILL');
    }
    expect(err).not.toMatch(/Error/);
  });
});
