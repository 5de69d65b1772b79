/**
 * The adaptive loop end to end: three real hosts on loopback under a concurrent request loop. A link change
 * measured by the transport makes the controller move the split off that link and keep it off, with no
 * request failing across the swaps; the link's fall is published on the events stream, the plans in the history.
 * Each plan in force has its contingency plans warmed on their hosts, so that moving to one builds nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { zooEntry } from '../src/graph/zoo/index.js';
import {
  deleteWith,
  inferBinary,
  putJson,
  startDeployment,
  type Deployment,
  type OipTensor,
} from './helpers/deployment.js';

const input: OipTensor = {
  name: 'input',
  dtype: 'float32',
  dims: [1, 3, 224, 224],
  data: new Float32Array(3 * 224 * 224).fill(0.5),
};

async function until<T>(url: string, what: string, timeoutMs: number, f: () => Promise<T | undefined>): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end)
      throw new Error(
        `timed out waiting for ${what}: ${JSON.stringify(await (await fetch(`${url}/v1/controller`)).json()).slice(0, 1500)}`,
      );
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('adaptive loop', () => {
  let d: Deployment;
  const events: any[] = [];
  let ws: WebSocket;
  beforeAll(async () => {
    // Throughput objective: on fast loopback links, splitting across hosts lowers the bottleneck stage. The
    // device -> cloud link is slow from the start, so the split that helps is the one through the edge (on
    // loopback alone every split is as good as any other, and the controller rightly keeps whichever it has).
    // The full-size MobileNetV2 (224x224): its ~8 ms of compute is what a split divides. The small variant
    // computes in 0.2 ms, under one hop's cost, and there the controller rightly kept it whole on the device.
    d = await startDeployment({
      modelName: 'mnv2',
      modelBytes: zooEntry('mobilenetv2')!.build({}).toBytes(),
      links: [{ from: 'dev', to: 'cld', mbps: 1, delayMs: 1 }],
      // A request whose frame was on the device -> edge link when it fell to 0.5 Mbit/s is not lost, but it is
      // slow: the split may cross that link with 500-600 KB (8-10 s there), and with two clients two such
      // frames queue one behind the other. On a loaded 2-core CI machine the second one's answer came after
      // the default 30 s deadline (a 504 in 2 of 4 runs with four copies of this file at once, and once in a
      // full \`npm test\` next to a benchmark). A lost request still fails the test, at 60 s instead of 30.
      limits: { deadlineMs: 60_000 },
      controller: {
        objective: 'throughput',
        replanIntervalMs: 250,
        minDwellMs: 500,
        confirmRounds: 2,
        hysteresis: 0.1,
      },
    });
    ws = new WebSocket(`${d.url.replace('http', 'ws')}/v1/events`, { perMessageDeflate: false });
    ws.on('message', (m) => events.push(JSON.parse(String(m))));
    await new Promise((r) => ws.once('open', r));
  });
  afterAll(async () => {
    ws?.close();
    await d?.close();
  });

  it('a throttled link on the route moves the split away from it, with no failed request across the swaps, and none stranded on it', async () => {
    let stop = false;
    const failures: { status: number; json: unknown }[] = [];
    let answered = 0;
    const requests: { start: number; end: number }[] = [];
    const loop = async (): Promise<void> => {
      while (!stop) {
        const start = Date.now();
        const r = await inferBinary(d.url, 'mnv2', [input]);
        requests.push({ start, end: Date.now() });
        if (r.status === 200) answered++;
        else failures.push({ status: r.status, json: r.json });
      }
    };
    // "Measured slow" is the controller's live estimate, as the events stream publishes it (a link-changed
    // event or a snapshot's links), not the meter's median in /v1/topology: once the plan is off the link only
    // probes cross it, and that median took over 30 s to fall on a loaded CI machine.
    const measuredSlow = (): boolean =>
      events.some(
        (e) =>
          (e.type === 'link-changed' && e.from === 'dev' && e.to === 'edg' && e.throughputBps < 1e6) ||
          (e.type === 'snapshot' &&
            Array.isArray(e.links) &&
            e.links.some(
              (l: { from: string; to: string; throughputBps: number }) =>
                l.from === 'dev' && l.to === 'edg' && l.throughputBps < 1e6,
            )),
      );
    const clients = [loop(), loop()];
    let movedAt = 0;
    try {
      // The controller first finds a split that uses the device -> edge link.
      const viaEdge = await until(d.url, 'a plan through device -> edge', 30_000, async () => {
        const p = await (await fetch(`${d.url}/v1/plan`)).json();
        return p.hops.some((h: { from: string; to: string }) => h.from === 'dev' && h.to === 'edg') ? p : undefined;
      });
      expect(viaEdge.reason).not.toMatch(/pinned/);
      // 0.5 Mbit/s: every frame over it now takes hundreds of ms.
      const r = await putJson(`${d.url}/v1/links/dev/edg`, { mbps: 0.5 });
      expect(r.status).toBe(200);
      // The plan leaves the link once the controller's live estimate of it has fallen (on loopback the plan
      // also moves on its own every few seconds, so the move may come first and give another reason).
      const slow = (): Promise<boolean> =>
        fetch(`${d.url}/v1/plan`)
          .then((r) => r.json())
          .then((p) => !p.hops.some((h: { from: string; to: string }) => h.from === 'dev' && h.to === 'edg'));
      const moved = await until(d.url, 'a plan off device -> edge, with the link measured slow', 45_000, async () => {
        const p = await (await fetch(`${d.url}/v1/plan`)).json();
        const off = !p.hops.some((h: { from: string; to: string }) => h.from === 'dev' && h.to === 'edg');
        return p.epoch > viaEdge.epoch && off && measuredSlow() ? p : undefined;
      });
      expect(moved.controller.settings.objective).toBe('throughput');
      movedAt = Date.now();
      // While the link stays slow, no plan goes back over it.
      for (let i = 0; i < 10; i++) {
        if (!(await slow())) {
          const h = await (await fetch(`${d.url}/v1/plans`)).json();
          const t = await (await fetch(`${d.url}/v1/topology`)).json();
          expect.fail(
            `a plan went back over the slow link: ${JSON.stringify(h.slice(-3))}; ${JSON.stringify(t.links)}`,
          );
        }
        await new Promise((r) => setTimeout(r, 300));
      }
      // Requests keep flowing on the new plan: ten more answered (the count before the move depends on how
      // long the slow link held the route, which on a loaded machine can be only a few requests).
      const before = answered;
      await until(d.url, 'requests on the new plan', 20_000, async () => (answered >= before + 10 ? true : undefined));
    } finally {
      stop = true;
      await Promise.all(clients);
    }
    expect(failures).toEqual([]);
    // A request whose frame was on the slow link when it fell (500-800 KB there take 8-13 s at 0.5 Mbit/s, and
    // the two clients queue two) is hedged on the new plan (host/retry.ts): answered soon after the move, not
    // once its frame has crawled over the link.
    const stranded = requests.filter((q) => q.start < movedAt).map((q) => q.end - movedAt);
    expect(Math.max(...stranded)).toBeLessThan(8000);
    const adopted = events.filter((e) => e.type === 'plan-adopted');
    expect(adopted.length).toBeGreaterThanOrEqual(1); // the start-up plan was adopted before the stream opened
    expect(adopted.at(-1)).toMatchObject({ old: { route: expect.any(String) }, new: { route: expect.any(String) } });
    // The stream published the link's fall (the explanation's wording is the controller tests' business).
    expect(measuredSlow()).toBe(true);
    expect(events.some((e) => e.type === 'snapshot' && Array.isArray(e.hosts) && e.hosts.length === 3)).toBe(true);
    const history = await (await fetch(`${d.url}/v1/plans`)).json();
    expect(history.length).toBeGreaterThanOrEqual(2);
    expect(history[0].reason).toMatch(/^no current plan: adopting /); // the start-up plan is the controller's first round
  });

  it('GET /v1/plan shows measured latency beside the prediction, and the controller can be paused and switched live', async () => {
    // Hold the plan still and answer a few requests on it, so that its epoch has measurements.
    expect((await putJson(`${d.url}/v1/controller`, { paused: true })).status).toBe(200);
    for (let i = 0; i < 3; i++) expect((await inferBinary(d.url, 'mnv2', [input])).status).toBe(200);
    const p = await (await fetch(`${d.url}/v1/plan`)).json();
    expect(p.measured).toMatchObject({ count: expect.any(Number), p50Ms: expect.any(Number) });
    expect(p.controller.rounds).toBeGreaterThan(0);
    // A round's wall time and the part of it that held the loop: the one within the other, both exported.
    expect(p.controller.last.computeMs).toBeGreaterThan(0);
    expect(p.controller.last.computeMs).toBeLessThanOrEqual(p.controller.last.ms);
    const metrics = await (await fetch(`${d.url}/metrics`)).text();
    const figure = (name: string): number =>
      Number(new RegExp(`^cleave_controller_${name}\\{[^}]*\\} (\\S+)`, 'm').exec(metrics)?.[1] ?? NaN);
    expect(figure('compute_duration_us_count')).toBe(figure('round_duration_us_count'));
    expect(figure('compute_duration_us_count')).toBeGreaterThan(0);
    expect(figure('compute_duration_us_sum')).toBeLessThanOrEqual(figure('round_duration_us_sum'));
    let r = await putJson(`${d.url}/v1/controller`, { paused: true, objective: 'latency' });
    expect(r.status).toBe(200);
    expect((await r.json()).settings).toMatchObject({ paused: true, objective: 'latency' });
    r = await putJson(`${d.url}/v1/controller`, { hysteresis: 'lots' });
    expect(r.status).toBe(400);
    expect((await r.json()).error).toMatch(/hysteresis: must be a number in \[0, 1\]/);
    r = await putJson(`${d.url}/v1/controller`, { objectiv: 'latency' });
    expect(r.status).toBe(400);
    expect((await r.json()).error).toMatch(/objectiv: unknown setting/);
    await until(d.url, 'a paused round', 5000, async () => {
      const s = await (await fetch(`${d.url}/v1/controller`)).json();
      return s.last?.reason?.startsWith('paused') ? s : undefined;
    });
    expect(events.some((e) => e.type === 'controller-changed')).toBe(true);
  });

  it('warms the contingency plans of the plan in force: pinning any of them builds no new session', async () => {
    // The plan the first test left sits behind two slow device links: no scenario can move it anywhere
    // (its contingency set is rightly empty). With those links back to full speed, a slower host or link has
    // somewhere to go. Let the controller run until the plan in force has warmed a non-empty set, then pause it
    // on exactly that epoch.
    for (const link of ['dev/edg', 'dev/cld'])
      expect((await putJson(`${d.url}/v1/links/${link}`, { off: true })).status).toBe(200);
    const { p, warmed } = await until(d.url, 'a plan in force with warmed contingency plans', 60_000, async () => {
      expect((await putJson(`${d.url}/v1/controller`, { paused: false })).status).toBe(200);
      const q = await (await fetch(`${d.url}/v1/plan`)).json();
      const w = events.find((e) => e.type === 'contingency-warmed' && e.epoch === q.epoch && e.plans.length > 0);
      if (!w) return undefined;
      expect((await putJson(`${d.url}/v1/controller`, { paused: true })).status).toBe(200);
      const still = await (await fetch(`${d.url}/v1/plan`)).json();
      return still.epoch === q.epoch ? { p: q, warmed: w } : undefined;
    });
    const held = (): string[] =>
      d.hosts
        .flatMap((h) => h.status().segments.map((g) => `${h.status().host}[${g.from}:${g.to})${g.warm ? '' : ' cold'}`))
        .sort();
    // A proposed plan's warm-up may still be finishing as the pause lands: wait until the hosts' segments hold
    // still for a second before taking the set that pinning must not grow.
    let before = held();
    for (let still = 0; still < 10; still++) {
      await new Promise((r) => setTimeout(r, 200));
      const now = held();
      if (JSON.stringify(now) !== JSON.stringify(before)) [before, still] = [now, -1];
      else if (still >= 4) break;
    }
    for (const c of warmed.plans as {
      scenario: string;
      route: string;
      stages: { host: string; blocks: number[] }[];
    }[]) {
      expect(c.route).not.toBe(p.route);
      expect(c.scenario).toMatch(/^\w+ \d+x slower$|^\w+<->\w+ at [\d.]+% throughput$/);
      const r = await putJson(`${d.url}/v1/plan`, { stages: c.stages });
      expect(r.status, c.scenario).toBe(200);
      // Every segment it needed was warm already: no host holds anything it did not hold before.
      expect(held(), c.scenario).toEqual(before);
    }
    expect((await deleteWith(`${d.url}/v1/plan`)).status).toBe(200);
  });
});
