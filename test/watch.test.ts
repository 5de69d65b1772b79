/**
 * `cleave watch`: the frame as a pure function of a hand-built state, then the command as a user runs it (a
 * child process on bin/cleave.mjs) against a real three-host loopback deployment, against a bad --url, and
 * against an address where the deployment is not up yet, comes up, and goes away again.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderWatch, type WatchState } from '../src/cli/commands/watch.js';
import { zooEntry } from '../src/graph/zoo/index.js';
import { mountEvents } from '../src/runtime/http/events.js';
import { EventBus, type CleaveEvent } from '../src/runtime/plan/events.js';
import { freePort, startDeployment, type Deployment } from './helpers/deployment.js';

const BIN = join(import.meta.dirname, '..', 'bin', 'cleave.mjs');
const AT = new Date(2025, 0, 2, 12, 34, 56).getTime();

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function env(): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { ...process.env };
  delete e.CLEAVE_DEBUG;
  return e;
}

/** Runs the CLI to its end; SIGKILL after `timeoutMs` (so a hang fails instead of exiting 0 on SIGTERM). */
function cleave(args: string[], timeoutMs = 60_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { env: env(), timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

function ev(type: CleaveEvent['type'], seq: number, fields: Record<string, unknown>): CleaveEvent {
  return { ...fields, type, at: AT + seq * 1000, seq };
}

function state(over: Partial<WatchState> = {}): WatchState {
  return {
    url: 'http://127.0.0.1:8000',
    connection: 'open',
    problem: null,
    downSince: null,
    origin: 'dev',
    plan: { epoch: 3, route: 'dev(input) -> cld[0:120)' },
    snapshot: {
      at: AT,
      epoch: 3,
      route: 'dev(input) -> cld[0:120)',
      predictedLatencyMs: 12.34,
      measured: { count: 245, failed: 1, rps: 24.5, meanMs: 13.9, p50Ms: 13.1, p99Ms: 20.04 },
      latency: { count: 300, failed: 1, rps: 30, meanMs: 14, p50Ms: 13.5, p99Ms: 21 },
      links: [
        { from: 'edg', to: 'cld', rttMs: 1.5, throughputBps: 2.5e6 },
        { from: 'dev', to: 'edg', rttMs: 0.42, throughputBps: 1e7 },
        { from: 'dev', to: 'cld', rttMs: null, throughputBps: null },
      ],
      hosts: [
        {
          host: 'dev',
          tier: 'device',
          down: false,
          cpuPercent: 12.4,
          quotaCpus: 0.25,
          throttledMs: 0,
          queueDepth: 2,
          inFlight: 1,
          slowdown: 4,
          slowdownFrom: 'quota',
          frameCpuMs: 1.234,
          lastHeartbeatMs: 100,
        },
        {
          host: 'cld',
          tier: 'cloud',
          down: true,
          cpuPercent: null,
          quotaCpus: null,
          throttledMs: null,
          queueDepth: 0,
          inFlight: 0,
          slowdown: 1.37,
          slowdownFrom: 'observed',
          frameCpuMs: null,
          lastHeartbeatMs: 4000,
        },
      ],
    },
    events: [
      ev('plan-adopted', 1, {
        epoch: 3,
        old: { epoch: 2, route: 'dev[0:120)', predictedLatencyMs: 30 },
        new: { epoch: 3, route: 'dev(input) -> cld[0:120)', predictedLatencyMs: 12.34, predictedThroughputRps: 80 },
        reason: 'dev->edg slowed to 0.5 Mbit/s',
        pinned: false,
        urgent: true,
        gain: 0.6,
      }),
      ev('link-changed', 2, {
        from: 'dev',
        to: 'edg',
        rttMs: 0.42,
        throughputBps: 1e7,
        before: { rttMs: 0.3, throughputBps: 2e7 },
      }),
      ev('host-down', 3, { host: 'cld' }),
      ev('contingency-warmed', 3, {
        epoch: 3,
        plans: [{ scenario: 'edg 4x slower', route: 'dev[0:40) -> cld[40:120)', stages: [] }],
        deferred: [
          { scenario: 'dev 4x slower', route: 'dev[0:10) -> edg[10:120)', stages: [], host: 'edg', reason: '' },
        ],
        searchMs: 2,
        ms: 812.4,
      }),
      ev('plan-proposed', 4, {
        candidate: {
          stages: [
            { host: 'dev', blocks: [0, 40] },
            { host: 'edg', blocks: [40, 120] },
          ],
          latencyMs: 9.5,
        },
        gain: 0.23,
        round: 1,
        rounds: 2,
        reason: 'faster via edg',
      }),
      ev('controller-changed', 5, {
        before: { objective: 'latency', hysteresis: 0.1, paused: false },
        after: { objective: 'throughput', hysteresis: 0.1, paused: false },
      }),
    ],
    maxEvents: 10,
    ...over,
  };
}

describe('renderWatch', () => {
  it('shows the route, latency, a row per link and host, and a line per event', () => {
    const frame = renderWatch(state());
    const lines = frame.split('\n');
    expect(lines[0]).toBe('cleave watch  http://127.0.0.1:8000  live (origin dev)  snapshot 12:34:56');
    expect(frame).toMatch(/^epoch 3  route dev\(input\) -> cld\[0:120\)$/m);
    expect(frame).toMatch(
      /^latency  predicted 12\.3 ms  measured p50 13\.1 ms  p99 20\.0 ms  24\.5 req\/s \(245 answered, 1 failed\)$/m,
    );
    // 1e7 bytes/s is 80 Mbit/s; links sorted by from, then to; an unmeasured link shows dashes.
    expect(frame).toMatch(/^dev->edg\s+0\.42\s+80\.0$/m);
    expect(frame).toMatch(/^edg->cld\s+1\.50\s+20\.0$/m);
    expect(frame).toMatch(/^dev->cld\s+-\s+-$/m);
    expect(frame.indexOf('dev->cld')).toBeLessThan(frame.indexOf('dev->edg'));
    expect(frame).toMatch(/^dev\s+device\s+up\s+12\s+0\.25\s+4\.00x \(quota\)\s+2\s+1\.23$/m);
    expect(frame).toMatch(/^cld\s+cloud\s+DOWN\s+-\s+none\s+1\.37x \(observed\)\s+0\s+-$/m);
    expect(frame).toMatch(
      /^12:34:57  plan-adopted\s+epoch 3: dev\[0:120\) => dev\(input\) -> cld\[0:120\) \(~12\.3 ms\) \[urgent\]: dev->edg slowed to 0\.5 Mbit\/s$/m,
    );
    expect(frame).toMatch(/link-changed\s+dev->edg {2}rtt 0\.42 ms, 80\.0 Mbit\/s \(was 0\.30 ms, 160\.0 Mbit\/s\)$/m);
    expect(frame).toMatch(/host-down\s+cld is DOWN$/m);
    expect(frame).toMatch(
      /plan-proposed\s+candidate dev\[0:40\) \+ edg\[40:120\) blocks \(~9\.5 ms, 23% better\), round 1\/2: faster via edg$/m,
    );
    expect(frame).toMatch(/controller-changed\s+objective "latency" -> "throughput"$/m);
    expect(frame).toMatch(
      /contingency-warmed\s+1 warm for epoch 3 in 812\.4 ms \(edg 4x slower: dev\[0:40\) -> cld\[40:120\)\); 1 deferred \(edg throttled\)$/m,
    );
  });

  it('keeps only the last N events, and none with N = 0', () => {
    const two = renderWatch(state({ maxEvents: 2 }));
    expect(two).toMatch(/^events \(last 2\)$/m);
    expect(two).toMatch(/plan-proposed/);
    expect(two).toMatch(/controller-changed/);
    expect(two).not.toMatch(/plan-adopted|link-changed|host-down|contingency-warmed/);
    const none = renderWatch(state({ maxEvents: 0 }));
    expect(none).not.toMatch(/^events/m);
    expect(none).not.toMatch(/plan-adopted/);
  });

  it('says when it is not connected, and keeps the last known figures', () => {
    const down = renderWatch(
      state({ connection: 'down', problem: 'connect ECONNREFUSED 127.0.0.1:8000', downSince: AT }),
    );
    expect(down).toMatch(/^cleave watch {2}http:\/\/127\.0\.0\.1:8000 {2}NOT CONNECTED/);
    expect(down).toMatch(/connect ECONNREFUSED 127\.0\.0\.1:8000; retrying every second since 12:34:56/);
    expect(down).toMatch(/^dev->edg/m);
    const never = renderWatch(
      state({
        connection: 'down',
        problem: 'connect ECONNREFUSED',
        downSince: AT,
        plan: null,
        snapshot: null,
        events: [],
      }),
    );
    expect(never).toMatch(/is the deployment up/);
    expect(never).toMatch(/^route: unknown$/m);
    expect(never).not.toMatch(/^hosts$/m);
  });

  it('before a plan and a snapshot, says the deployment is starting', () => {
    const frame = renderWatch(state({ plan: null, snapshot: null, events: [] }));
    expect(frame).toMatch(/^route: none yet \(no plan committed/m);
    expect(frame).toMatch(/waiting for the first snapshot/);
    expect(frame).toMatch(/^ {2}none yet$/m);
  });

  it('survives odd wire data and cuts lines to the width', () => {
    const odd = [
      ev('plan-adopted', 1, {}),
      ev('link-changed', 2, { rttMs: 'fast' }),
      ev('plan-proposed', 3, { candidate: null }),
      { type: 'later-kind', at: AT, seq: 4, x: 1 } as unknown as CleaveEvent,
    ];
    const frame = renderWatch(state({ events: odd }));
    expect(frame).toMatch(/plan-adopted\s+epoch -: \(none\) => - \(~- ms\): -$/m);
    expect(frame).toMatch(/link-changed\s+-->- {2}rtt - ms/m);
    expect(frame).toMatch(/later-kind\s+\{"x":1\}$/m);
    const narrow = renderWatch(state({ width: 40 }));
    for (const l of narrow.split('\n')) expect(l.length).toBeLessThanOrEqual(40);
    expect(narrow).toMatch(/^12:34:57  plan-adopted\s+epoch 3\.\.\.$/m);
  });
});

describe('cleave watch against a deployment', () => {
  let d: Deployment;
  beforeAll(async () => {
    d = await startDeployment({
      modelName: 'mnv2',
      modelBytes: zooEntry('mobilenetv2')!.build({ small: true }).toBytes(),
    });
  });
  afterAll(async () => {
    await d?.close();
  });

  it('--once prints one frame with the route and the three hosts, and exits 0', async () => {
    const r = await cleave(['watch', '--url', d.url, '--once']);
    expect(r.code, r.stderr).toBe(0);
    const plan = (await (await fetch(`${d.url}/v1/plan`)).json()) as { route: string; epoch: number };
    expect(r.stdout).toMatch(
      /^cleave watch {2}http:\/\/127\.0\.0\.1:\d+ {2}live \(origin dev\) {2}snapshot \d\d:\d\d:\d\d$/m,
    );
    expect(r.stdout).toMatch(/^epoch \d+ {2}route .*dev/m);
    expect(r.stdout).toContain(`route ${plan.route}`);
    expect(r.stdout).toMatch(/^dev\s+device\s+up\s/m);
    expect(r.stdout).toMatch(/^edg\s+edge\s+up\s/m);
    expect(r.stdout).toMatch(/^cld\s+cloud\s+up\s/m);
    expect(r.stdout).toMatch(/^dev->edg\s+\d+\.\d\d\s+\d+\.\d$/m);
    // One frame only: a single header line.
    expect(r.stdout.match(/^cleave watch /gm)).toHaveLength(1);
  });

  it('--model names the model it follows; one the deployment does not serve is exit 2 naming those it does', async () => {
    const r = await cleave(['watch', '--url', d.url, '--model', 'mnv2', '--once']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^epoch \d+ {2}route .*dev/m);
    const bad = await cleave(['watch', '--url', d.url, '--model', 'nope', '--once']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("cleave watch: --model nope: model 'nope' is not served here (models: mnv2)");
  });

  it('pointed at a host that is not the origin, says so on stderr and keeps retrying (--once)', async () => {
    const edge = `http://${d.hosts[1].self.listen}`;
    const c = spawn(process.execPath, [BIN, 'watch', '--url', edge, '--once'], {
      env: env(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      let out = '';
      let err = '';
      c.stdout?.on('data', (b: Buffer) => (out += b.toString()));
      c.stderr?.on('data', (b: Buffer) => (err += b.toString()));
      const end = Date.now() + 30_000;
      while (!/\n/.test(err) && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
      expect(err).toMatch(
        /^cleave watch: ws:\/\/127\.0\.0\.1:\d+\/v1\/events: 404 \(is --url the deployment's device host\?\); retrying every second\n/,
      );
      // Still running, nothing on stdout: --once prints only a snapshot's frame.
      expect(c.exitCode).toBeNull();
      expect(out).toBe('');
    } finally {
      const gone = new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r(null) : c.once('exit', r)));
      c.kill('SIGKILL');
      await gone;
    }
  });
});

describe('cleave watch input', () => {
  it.each(['nonsense', 'ftp://127.0.0.1:8000', 'localhost:8000'])(
    '--url %s is refused naming --url, exit 2',
    async (url) => {
      const r = await cleave(['watch', '--url', url, '--once'], 30_000);
      expect(r.code).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/^cleave watch: --url '.*': .* \[E_BAD_INPUT\]\n$/);
    },
  );

  it('--events must be a count, naming --events', async () => {
    const r = await cleave(['watch', '--events', 'many'], 30_000);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--events 'many'/);
  });
});

/** A stand-in origin: the real events endpoint on a real server, with a fixed GET /v1/plan. */
async function fakeOrigin(port: number): Promise<{ bus: EventBus; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    if (req.url === '/v1/plan') {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ epoch: 7, route: 'aa(input) -> bb[0:9)', reason: 'pinned' }));
      return;
    }
    res.statusCode = 404;
    res.end('{}');
  });
  const bus = new EventBus();
  const endpoint = mountEvents(server, bus, {
    maxBufferedBytes: 1 << 20,
    hello: () => ({ host: 'aa', epoch: null, route: null }),
    logger: pino({ level: 'silent' }),
    peerPath: '/v1/peer',
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  expect((server.address() as AddressInfo).port).toBe(port);
  // What the origin's snapshot timer does: a snapshot a second (faster here) while someone listens.
  const timer = setInterval(() => {
    if (bus.size > 0)
      bus.emit('snapshot', {
        epoch: null,
        route: null,
        predictedLatencyMs: null,
        measured: null,
        latency: null,
        links: [],
        hosts: [],
      });
  }, 100);
  return {
    bus,
    async close() {
      clearInterval(timer);
      endpoint.close();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

describe('cleave watch reconnects', () => {
  let child: ChildProcess | null = null;
  let origin: Awaited<ReturnType<typeof fakeOrigin>> | null = null;
  afterAll(async () => {
    const c = child;
    if (c && c.exitCode === null && c.signalCode === null) {
      const gone = new Promise((r) => c.once('exit', r));
      c.kill('SIGKILL');
      await gone;
    }
    await origin?.close();
  });

  it('says the deployment is not up, connects once it is, says so again when it goes, and exits 0 on Ctrl-C', async () => {
    const port = await freePort();
    const c = spawn(process.execPath, [BIN, 'watch', '--url', `http://127.0.0.1:${port}`], {
      env: env(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = c;
    let out = '';
    c.stdout?.on('data', (b: Buffer) => (out += b.toString()));
    const exited = new Promise<number | null>((resolve) => c.on('exit', (code) => resolve(code)));
    const until = async (what: RegExp, from: number): Promise<number> => {
      const end = Date.now() + 30_000;
      for (;;) {
        const i = out.slice(from).search(what);
        if (i >= 0) return from + i;
        if (Date.now() > end) throw new Error(`timed out waiting for ${what} in:\n${out}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    const down = await until(/NOT CONNECTED\n.*ECONNREFUSED.*retrying every second/, 0);
    origin = await fakeOrigin(port);
    origin.bus.emit('host-up', { host: 'bb' }); // nobody subscribed yet: not shown
    const live = await until(/live \(origin aa\) {2}snapshot /, down);
    // The route is GET /v1/plan's (the stream's hello and snapshots carry none here).
    await until(/^epoch 7 {2}route aa\(input\) -> bb\[0:9\)$/m, live);
    origin.bus.emit('host-down', { host: 'bb' });
    await until(/host-down\s+bb is DOWN/, live);
    expect(out).not.toMatch(/host-up/);
    // Non-TTY frames are printed plainly, a blank line between them, with no escape codes.
    expect(out).not.toContain('\x1b[');
    expect(out).toMatch(/\n\ncleave watch /);
    await origin.close();
    origin = null;
    await until(/NOT CONNECTED {2}snapshot .*\n.*retrying every second/, live);
    c.kill('SIGINT');
    expect(await exited).toBe(0);
    child = null;
  });
});
