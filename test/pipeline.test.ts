/**
 * Pipeline over a fake stage runner and fake links, with real HostMetrics (prom-client, no sockets). The
 * fake model names the tensor at node cut n `t<n>`; segment [a, b) adds b - a to every value.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CleaveError } from '../src/errors.js';
import type { TensorLike } from '../src/runtime/executor/executor.js';
import { HostMetrics } from '../src/runtime/host/metrics.js';
import { Pipeline, type Routed } from '../src/runtime/host/pipeline.js';
import { PlannedRoutes, plannedRoutesOf, routeProblem } from '../src/runtime/host/route-check.js';
import type { RouteStage } from '../src/transport/frame.js';
import { FakeLinks, FakeSegments, f32, incoming, queueFull, rejection, silent } from './helpers/fakes.js';

const stage = (host: string, from: number, to: number): RouteStage => ({ host, tier: host, from, to });

const LOCAL: Routed = { epoch: 1, route: [stage('device', 0, 40)] };
const SPLIT: Routed = { epoch: 3, route: [stage('device', 0, 20), stage('edge', 20, 40)] };
const VIA_CLOUD: Routed = { epoch: 4, route: [stage('device', 0, 0), stage('cloud', 0, 40)] };

function rig(self = 'device', maxInFlight = 8) {
  const links = new FakeLinks();
  const segments = new FakeSegments();
  const metrics = new HostMetrics(self, self);
  const p = new Pipeline({ self, model: 'm', segments, links, metrics, logger: silent, outputs: ['t40'], maxInFlight });
  return { p, links, segments, metrics };
}

const values = (t: TensorLike | undefined): number[] => Array.from((t?.data ?? []) as Float32Array);

/** Lets the origin's stage run (it is async even when the fake runner is not). */
async function ticks(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
}

afterEach(() => {
  vi.useRealTimers();
});

describe('Pipeline.infer', () => {
  it('an all-local route runs the segment here and settles with the model outputs', async () => {
    const { p, links, segments } = rig();
    const out = await p.infer(LOCAL, { t0: f32([1, 2]) }, 1000);
    expect(Object.keys(out)).toEqual(['t40']);
    expect(values(out.t40)).toEqual([41, 42]);
    expect(segments.runs).toEqual([{ start: 0, end: 40 }]);
    expect(links.sent).toEqual([]);
    expect(p.inFlight).toBe(0);
  });

  it('a two-stage route sends an infer frame to the next host and settles when its result arrives', async () => {
    const { p, links } = rig();
    const done = p.infer(SPLIT, { t0: f32([1]) }, 5000);
    await ticks();
    expect(links.sent).toHaveLength(1);
    const { host, header, tensors } = links.sent[0];
    expect(host).toBe('edge');
    expect(header).toMatchObject({ kind: 'infer', epoch: 3, stage: 1, route: SPLIT.route });
    expect(header.deadline).toBeGreaterThan(0);
    expect(header.deadline).toBeLessThanOrEqual(5000);
    expect(tensors.map((t) => [t.name, Array.from(t.data as Float32Array)])).toEqual([['t20', [21]]]);
    expect(p.inFlight).toBe(1);

    p.onFrame(incoming({ kind: 'result', id: header.id!, epoch: 3 }, { t40: f32([41]) }));
    expect(values((await done).t40)).toEqual([41]);
    expect(p.inFlight).toBe(0);
  });

  it('an origin that runs no block forwards the raw input', async () => {
    const { p, links, segments } = rig();
    const done = p.infer(VIA_CLOUD, { t0: f32([7]) }, 5000);
    await ticks();
    expect(segments.runs).toEqual([]);
    expect(links.sent.map((s) => [s.host, s.tensors.map((t) => t.name)])).toEqual([['cloud', ['t0']]]);
    p.onFrame(
      incoming({ kind: 'result', id: links.sent[0].header.id! }, { t40: f32([47]) }, { host: 'cloud', tier: 'cloud' }),
    );
    expect(values((await done).t40)).toEqual([47]);
  });

  it("an error frame from a peer rejects with the peer's code", async () => {
    const { p, links } = rig();
    const done = p.infer(SPLIT, { t0: f32([1]) }, 5000);
    await ticks();
    p.onFrame(
      incoming({
        kind: 'error',
        id: links.sent[0].header.id!,
        error: { code: 'E_QUEUE_FULL', message: 'executor busy' },
      }),
    );
    const e = await rejection(done);
    expect(e.code).toBe('E_QUEUE_FULL');
    expect(e.status).toBe(503);
    expect(e.message).toBe('edge: executor busy');
  });

  it('an error frame with a code this version does not know rejects E_INTERNAL', async () => {
    const { p, links } = rig();
    const done = p.infer(SPLIT, { t0: f32([1]) }, 5000);
    await ticks();
    p.onFrame(
      incoming({ kind: 'error', id: links.sent[0].header.id!, error: { code: 'E_FROM_THE_FUTURE', message: 'x' } }),
    );
    expect((await rejection(done)).code).toBe('E_INTERNAL');
  });

  it("the origin's own failing stage rejects with its code", async () => {
    const { p, segments } = rig();
    segments.fail = new CleaveError('E_QUEUE_FULL', 'executor full');
    expect((await rejection(p.infer(LOCAL, { t0: f32([1]) }, 1000))).code).toBe('E_QUEUE_FULL');
    segments.fail = new Error('boom');
    expect((await rejection(p.infer(LOCAL, { t0: f32([1]) }, 1000))).code).toBe('E_INTERNAL');
    expect(p.inFlight).toBe(0);
  });

  it('a missing input tensor rejects E_BAD_FRAME naming it', async () => {
    const { p } = rig();
    const e = await rejection(p.infer(LOCAL, { x: f32([1]) }, 1000));
    expect(e.code).toBe('E_BAD_FRAME');
    expect(e.message).toMatch(/needs tensor 't0'/);
  });

  it('a request whose result never comes rejects E_DEADLINE after deadlineMs, and a late result is ignored', async () => {
    vi.useFakeTimers();
    const { p, links } = rig();
    const done = rejection(p.infer(SPLIT, { t0: f32([1]) }, 50));
    await vi.advanceTimersByTimeAsync(49);
    expect(p.inFlight).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    const e = await done;
    expect(e.code).toBe('E_DEADLINE');
    expect(e.message).toMatch(/50 ms deadline/);
    expect(p.inFlight).toBe(0);
    p.onFrame(incoming({ kind: 'result', id: links.sent[0].header.id! }, { t40: f32([1]) }));
    expect(p.inFlight).toBe(0);
  });

  it('maxInFlight: the (n+1)th request is refused with E_QUEUE_FULL and sends nothing', async () => {
    const { p, links } = rig('device', 2);
    const a = rejection(p.infer(SPLIT, { t0: f32([1]) }, 5000));
    const b = rejection(p.infer(SPLIT, { t0: f32([2]) }, 5000));
    const e = await rejection(p.infer(SPLIT, { t0: f32([3]) }, 5000));
    expect(e.code).toBe('E_QUEUE_FULL');
    expect(e.message).toMatch(/maxInFlight=2/);
    await ticks();
    expect(links.sent).toHaveLength(2);
    p.failAll('test over');
    expect((await a).code).toBe('E_PEER_GONE');
    expect((await b).code).toBe('E_PEER_GONE');
  });
});

describe('Pipeline lost peers', () => {
  it('failLost fails the unacked ids and the requests routed through that host with E_PEER_GONE, and no others', async () => {
    const { p, links } = rig();
    const viaEdge = rejection(p.infer(SPLIT, { t0: f32([1]) }, 5000));
    const unacked = rejection(p.infer(VIA_CLOUD, { t0: f32([2]) }, 5000));
    const other = p.infer(VIA_CLOUD, { t0: f32([3]) }, 5000);
    await ticks();
    const idOf = (x: number): string =>
      links.sent.find((s) => (s.tensors[0].data as Float32Array)[0] === x)!.header.id!;
    const unackedId = idOf(2);
    const otherId = idOf(3);
    expect(links.sent).toHaveLength(3);
    p.failLost('edge', [unackedId]);
    const e1 = await viaEdge;
    const e2 = await unacked;
    expect([e1.code, e2.code]).toEqual(['E_PEER_GONE', 'E_PEER_GONE']);
    expect(e1.message).toMatch(/the link to edge, on its route, dropped/);
    expect(e2.message).toMatch(/before it was delivered/);
    expect(p.inFlight).toBe(1);
    p.onFrame(incoming({ kind: 'result', id: otherId }, { t40: f32([43]) }, { host: 'cloud', tier: 'cloud' }));
    expect(values((await other).t40)).toEqual([43]);
  });

  it('failAll fails every pending request with E_PEER_GONE and the reason', async () => {
    const { p } = rig();
    const a = rejection(p.infer(SPLIT, { t0: f32([1]) }, 5000));
    const b = rejection(p.infer(VIA_CLOUD, { t0: f32([1]) }, 5000));
    await ticks();
    p.failAll('shutting down');
    for (const e of [await a, await b]) expect([e.code, e.message]).toEqual(['E_PEER_GONE', 'shutting down']);
    expect(p.inFlight).toBe(0);
  });
});

describe('Pipeline stages for other origins', () => {
  it('the last stage sends the outputs back to the origin as a result frame', async () => {
    const { p, links, segments } = rig('edge');
    p.onFrame(
      incoming(
        { kind: 'infer', id: 'r1', epoch: 3, route: [...SPLIT.route], stage: 1, deadline: 1000 },
        { t20: f32([21]) },
        { host: 'device', tier: 'device' },
      ),
    );
    await ticks();
    expect(segments.runs).toEqual([{ start: 20, end: 40 }]);
    expect(links.sent.map((s) => [s.host, s.header.kind, s.header.id, s.tensors.map((t) => t.name)])).toEqual([
      ['device', 'result', 'r1', ['t40']],
    ]);
    expect(Array.from(links.sent[0].tensors[0].data as Float32Array)).toEqual([41]);
  });

  it('a failing stage reports its code to the origin in an error frame', async () => {
    const { p, links, segments } = rig('edge');
    segments.fail = new CleaveError('E_QUEUE_FULL', 'executor full');
    p.onFrame(
      incoming(
        { kind: 'infer', id: 'r2', epoch: 3, route: [...SPLIT.route], stage: 1, deadline: 1000 },
        { t20: f32([21]) },
        { host: 'device', tier: 'device' },
      ),
    );
    await ticks();
    expect(links.sent.map((s) => [s.host, s.header.kind, s.header.error])).toEqual([
      ['device', 'error', { code: 'E_QUEUE_FULL', message: 'executor full' }],
    ]);
  });

  it('an infer frame whose route the rules refuse is not run, and its connection is closed with 4400', async () => {
    const links = new FakeLinks();
    const segments = new FakeSegments();
    const p = new Pipeline({
      self: 'edge',
      model: 'm',
      segments,
      links,
      metrics: new HostMetrics('edge', 'edge'),
      logger: silent,
      outputs: ['t40'],
      maxInFlight: 8,
      checkRoute: (_route, _stage, sender) => (sender === 'device' ? null : `it came from ${sender}`),
    });
    const closed: [number, string][] = [];
    const f = incoming(
      { kind: 'infer', id: 'r9', epoch: 3, route: [...SPLIT.route], stage: 1, deadline: 1000 },
      { t20: f32([21]) },
      { host: 'cloud', tier: 'cloud' },
    );
    const frame = { ...f, via: { ...f.via, close: (code: number, reason: string) => closed.push([code, reason]) } };
    p.onFrame(frame);
    await ticks();
    expect(segments.runs).toEqual([]);
    expect(links.sent).toEqual([]);
    expect(closed).toEqual([[4400, 'request r9: it came from cloud']]);
  });

  it('an infer frame whose stage is past its route is dropped', async () => {
    const { p, links, segments } = rig('edge');
    p.onFrame(incoming({ kind: 'infer', id: 'r3', route: [...SPLIT.route], stage: 2 }, { t20: f32([1]) }));
    await ticks();
    expect(segments.runs).toEqual([]);
    expect(links.sent).toEqual([]);
  });
});

describe('Pipeline backpressure', () => {
  it('after a send returns false, the next frame to that host waits for drain, then goes', async () => {
    const { p, links } = rig();
    links.next.push(false);
    const first = p.infer(SPLIT, { t0: f32([1]) }, 5000);
    await ticks();
    const second = p.infer(SPLIT, { t0: f32([2]) }, 5000);
    await ticks();
    expect(links.sent).toHaveLength(1);
    expect(p.waitingToSend).toBe(1);

    links.drain('edge');
    expect(links.sent).toHaveLength(2);
    expect(p.waitingToSend).toBe(0);
    expect(Array.from(links.sent[1].tensors[0].data as Float32Array)).toEqual([22]);
    for (const s of links.sent) p.onFrame(incoming({ kind: 'result', id: s.header.id! }, { t40: f32([0]) }));
    await expect(Promise.all([first, second])).resolves.toHaveLength(2);
  });

  it('a link that never drains fails the waiting request with E_DEADLINE by its deadline', async () => {
    vi.useFakeTimers();
    const { p, links } = rig();
    links.next.push(false);
    const first = rejection(p.infer(SPLIT, { t0: f32([1]) }, 50));
    await vi.advanceTimersByTimeAsync(0);
    const second = rejection(p.infer(SPLIT, { t0: f32([2]) }, 50));
    await vi.advanceTimersByTimeAsync(0);
    expect(p.waitingToSend).toBe(1);
    await vi.advanceTimersByTimeAsync(50);
    expect((await second).code).toBe('E_DEADLINE');
    expect((await first).code).toBe('E_DEADLINE');
    expect(p.waitingToSend).toBe(0);
    expect(links.sent).toHaveLength(1);
    links.drain('edge'); // too late: nothing is sent for an expired request
    expect(links.sent).toHaveLength(1);
  });

  it('a link refusing with E_QUEUE_FULL holds the frame until drain', async () => {
    const { p, links } = rig();
    links.next.push(queueFull());
    const done = p.infer(SPLIT, { t0: f32([1]) }, 5000);
    await ticks();
    expect(links.sent).toHaveLength(0);
    expect(p.waitingToSend).toBe(1);
    links.drain('edge');
    expect(links.sent).toHaveLength(1);
    p.onFrame(incoming({ kind: 'result', id: links.sent[0].header.id! }, { t40: f32([9]) }));
    expect(values((await done).t40)).toEqual([9]);
  });
});

describe('Pipeline.computeTimes', () => {
  it('reports each segment run here: its range, the median of its recent runs (one outlier ignored) and run count', async () => {
    const { p, segments, metrics } = rig();
    segments.computeMs = [10, 20, 11, 300, 12];
    for (let i = 0; i < 5; i++) await p.infer(LOCAL, { t0: f32([1]) }, 1000);
    expect(p.computeTimes()).toEqual([expect.objectContaining({ from: 0, to: 40, meanMs: 12, runs: 5 })]);
    const text = await metrics.registry.getSingleMetricAsString('cleave_compute_infer_duration_us');
    expect(text).toMatch(/cleave_compute_infer_duration_us_count\{[^}]*segment="0-40"\} 5/);
  });

  it('after a restart (a new CPU quota) reports nothing until the segment runs again, then that run alone', async () => {
    const { p, segments } = rig();
    segments.computeMs = [10, 10, 10, 10, 150, 160];
    for (let i = 0; i < 4; i++) await p.infer(LOCAL, { t0: f32([1]) }, 1000);
    p.restartComputeTimes();
    expect(p.computeTimes()).toEqual([]);
    await p.infer(LOCAL, { t0: f32([1]) }, 1000);
    // The run count goes on (the origin's minimum of runs stays met); the median starts over.
    expect(p.computeTimes()).toEqual([expect.objectContaining({ meanMs: 150, runs: 5 })]);
    await p.infer(LOCAL, { t0: f32([1]) }, 1000);
    expect(p.computeTimes()).toEqual([expect.objectContaining({ meanMs: 155, runs: 6 })]);
  });
});

describe('routeProblem', () => {
  const rules = {
    tierOf: new Map([
      ['dev', 'device'],
      ['edg', 'edge'],
      ['cld', 'cloud'],
    ]),
    tiers: ['device', 'edge', 'cloud'],
  };
  const st = (host: string, from = 0, to = 1) => ({ host, tier: rules.tierOf.get(host) ?? 'x', from, to });

  it('accepts a route the origin could plan, from the stage before', () => {
    expect(routeProblem([st('dev', 0, 0), st('edg', 0, 5), st('cld', 5, 9)], 1, 'dev', rules)).toBeNull();
    expect(routeProblem([st('dev'), st('cld')], 1, 'dev', rules)).toBeNull();
  });

  it.each([
    [[st('dev'), st('edg'), st('edg'), st('cld')], 1, 'dev', /4 stages, more than the 3 tiers/],
    [[st('dev'), st('cld'), st('edg')], 1, 'dev', /stage 2 \(edg, tier edge\) does not come after/],
    [[st('dev'), st('edg'), st('dev')], 2, 'edg', /stage 2 \(dev, tier device\) does not come after/],
    [[st('edg'), st('cld')], 1, 'edg', /starts at edg, not at the origin tier device/],
    [[st('dev'), st('laptop')], 1, 'dev', /names 'laptop', not a host/],
    [[st('dev'), st('edg'), st('cld')], 2, 'dev', /came from dev, but stage 1 of its route is edg/],
    [[st('dev'), st('edg')], 0, 'dev', /stage 0 is not a stage a peer can send/],
    [[], 0, 'dev', /empty/],
  ])('refuses %j at stage %i from %s', (route, stage, sender, why) => {
    expect(routeProblem(route, stage, sender, rules)).toMatch(why);
  });

  it('with a record of planned routes, refuses a well-shaped route the origin never prepared here', () => {
    const planned = new PlannedRoutes();
    const withPlans = { ...rules, planned: (r: readonly RouteStage[]) => planned.has(r) };
    const route = [st('dev', 0, 0), st('edg', 0, 5), st('cld', 5, 9)];
    expect(routeProblem(route, 1, 'dev', withPlans)).toMatch(/not one the origin planned/);
    planned.add(route);
    expect(routeProblem(route, 1, 'dev', withPlans)).toBeNull();
    // Same hosts, other ranges: another route.
    expect(routeProblem([st('dev', 0, 0), st('edg', 0, 6), st('cld', 6, 9)], 1, 'dev', withPlans)).toMatch(
      /not one the origin planned/,
    );
  });

  it('takes planned routes from a message only when each is well-formed and holds the host past the origin', () => {
    const ok = [st('dev', 0, 0), st('edg', 0, 5), st('cld', 5, 9)];
    expect(plannedRoutesOf({ routes: [ok] }, 'edg', rules)).toEqual([ok]);
    expect(() => plannedRoutesOf({ routes: [ok, [st('dev', 0, 0), st('cld', 0, 9)]] }, 'edg', rules)).toThrow(
      /routes\[1\]: it has no stage on edg past the origin/,
    );
    expect(() => plannedRoutesOf({ routes: [[st('edg'), st('cld')]] }, 'cld', rules)).toThrow(/starts at edg/);
    expect(() => plannedRoutesOf({ routes: [[{ host: 'dev' }]] }, 'edg', rules)).toThrow(
      /routes\[0\]: expected stages/,
    );
    expect(() => plannedRoutesOf({ routes: 'all' }, 'edg', rules)).toThrow(/routes: expected an array/);
  });

  it('keeps the most recently used routes when over its bound', () => {
    const planned = new PlannedRoutes(3);
    const r = (k: number) => [st('dev', 0, 0), st('edg', 0, k)];
    planned.add(r(1));
    planned.add(r(2));
    planned.add(r(3));
    expect(planned.has(r(1))).toBe(true); // used: now the newest
    planned.add(r(4)); // evicts r(2), the least recently used
    expect(planned.size).toBe(3);
    expect([1, 2, 3, 4].map((k) => planned.has(r(k)))).toEqual([true, false, true, true]);
  });
});
