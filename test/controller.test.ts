/**
 * The adaptive controller on scripted measurement sequences, with the real planner. The main fixture is
 * priced by hand: the interior frontiers are 50 MB, so only "one tier runs everything" plans compete:
 *   edge alone:   rtt/2 5 + 1 MB at 10 MB/s 100 + 8 x 10 ms x edge slowdown + return 5 + 0.1 = 110.1 + 80 s
 *   cloud alone:  20 + 100 + 8 x 8 ms + 20 + 0.1                                        = 204.1 (x cloud slowdown on 64)
 *   device alone: 8 x 100 ms                                                            = 800
 */
import { describe, expect, it } from 'vitest';
import {
  CONTROLLER_DEFAULTS,
  Controller,
  checkControllerSettings,
  evaluateStages,
  liveInput,
  plan,
  routeOf,
  type Constraint,
  type CurrentPlan,
  type Decision,
  type LiveSnapshot,
  type PlanInput,
  type PlanLink,
} from '../src/planner/index.js';
import { expectError } from './helpers/errors.js';

const BIG = 50e6;
const LINKS: readonly PlanLink[] = [
  { from: 'device', to: 'edge', rttMs: 10, bytesPerSecond: 10e6 },
  { from: 'device', to: 'cloud', rttMs: 40, bytesPerSecond: 10e6 },
  { from: 'edge', to: 'cloud', rttMs: 20, bytesPerSecond: 100e6 },
];

function fixture(links: readonly PlanLink[] = LINKS): PlanInput {
  return {
    tiers: ['device', 'edge', 'cloud'],
    hosts: [
      { name: 'device', tier: 'device', blockMs: new Array<number>(8).fill(100) },
      { name: 'edge', tier: 'edge', blockMs: new Array<number>(8).fill(10) },
      { name: 'cloud', tier: 'cloud', blockMs: new Array<number>(8).fill(8) },
    ],
    links,
    frontierBytes: [BIG, BIG, BIG, BIG, BIG, BIG, BIG, 1000],
    inputBytes: 1e6,
    outputBytes: 1000,
    options: { hopOverheadMs: 0 },
  };
}

/** Latency favours edge alone (one 100 ms stage); throughput favours device[0:4) -> edge[4:8) (60 ms stages). */
function pipelineFixture(): PlanInput {
  return {
    tiers: ['device', 'edge', 'cloud'],
    hosts: [
      { name: 'device', tier: 'device', blockMs: new Array<number>(8).fill(15) },
      { name: 'edge', tier: 'edge', blockMs: new Array<number>(8).fill(12.5) },
      { name: 'cloud', tier: 'cloud', blockMs: new Array<number>(8).fill(100) },
    ],
    links: [
      { from: 'device', to: 'edge', rttMs: 2, bytesPerSecond: 10e6 },
      { from: 'device', to: 'cloud', rttMs: 40, bytesPerSecond: 10e6 },
      { from: 'edge', to: 'cloud', rttMs: 20, bytesPerSecond: 100e6 },
    ],
    frontierBytes: new Array<number>(8).fill(1000),
    inputBytes: 1000,
    outputBytes: 1000,
    options: { hopOverheadMs: 0 },
  };
}

interface SnapOpts {
  slowdown?: Record<string, number>;
  down?: string[];
  input?: PlanInput;
  frameMs?: Record<string, number>;
}

function snap(now: number, o: SnapOpts = {}): LiveSnapshot {
  return {
    now,
    input: o.input ?? fixture(),
    slowdown: o.slowdown ?? {},
    down: o.down ?? [],
    ...(o.frameMs ? { frameMs: o.frameMs } : {}),
  };
}

const EDGE_ALL = [{ host: 'edge', start: 0, end: 8 }];
const CLOUD_ALL = [{ host: 'cloud', start: 0, end: 8 }];
const EDGE = 'device[none] -> edge[0:8)';
const CLOUD = 'device[none] -> cloud[0:8)';
const DEVICE = 'device[0:8)';

function current(stages: CurrentPlan['stages'], adoptedAt = 0, pinned = false): CurrentPlan {
  return { stages, adoptedAt, pinned };
}

function routeOfDecision(d: Decision): string | null {
  if (d.kind === 'adopt') return routeOf(d.plan);
  if (d.kind === 'propose') return routeOf(d.candidate);
  return d.best ? routeOf(d.best) : null;
}

/** A controller whose current plan is edge alone, adopted at t = 0 on unperturbed measurements. */
function onEdge(settings: ConstructorParameters<typeof Controller>[0] = {}): Controller {
  const c = new Controller(settings);
  c.adopted(0, snap(0));
  return c;
}

describe('controller settings', () => {
  it('has documented defaults and accepts a valid partial', () => {
    expect(CONTROLLER_DEFAULTS).toMatchObject({
      objective: 'latency',
      replanIntervalMs: 500,
      hysteresis: 0.1,
      confirmRounds: 2,
      minDwellMs: 3000,
      paused: false,
    });
    expect(CONTROLLER_DEFAULTS.constraints).toEqual([]);
    expect(checkControllerSettings({ hysteresis: 0.2, objective: 'throughput', paused: undefined })).toEqual({
      hysteresis: 0.2,
      objective: 'throughput',
    });
    expect(new Controller({ confirmRounds: 3 }).settings).toMatchObject({ confirmRounds: 3, hysteresis: 0.1 });
  });

  it.each([
    [{ bogus: 1 }, /^bogus: unknown setting/],
    [{ hysteresis: 1.5 }, /^hysteresis: must be a number in \[0, 1\]/],
    [{ hysteresis: '0.1' }, /^hysteresis: must be a number/],
    [{ replanIntervalMs: 50 }, /^replanIntervalMs: must be a number >= 100/],
    [{ confirmRounds: 1.5 }, /^confirmRounds: must be an integer >= 1/],
    [{ confirmRounds: 0 }, /^confirmRounds: /],
    [{ minDwellMs: -1 }, /^minDwellMs: /],
    [{ minDwellMs: Infinity }, /^minDwellMs: /],
    [{ objective: 'speed' }, /^objective: must be 'latency' or 'throughput'/],
    [{ paused: 'yes' }, /^paused: must be true or false/],
    [{ constraints: {} }, /^constraints: must be an array/],
    [
      { constraints: [{ kind: 'useTier', tier: 'edge' }, { kind: 'nope' }] },
      /^constraints\[1\]: unknown constraint kind "nope"/,
    ],
  ])('rejects %j naming the field', (bad, re) => {
    expectError(() => checkControllerSettings(bad), 'E_BAD_INPUT', re);
    expectError(() => new Controller(bad as never), 'E_BAD_INPUT', re);
    expectError(() => new Controller().update(bad as never), 'E_BAD_INPUT', re);
  });

  it('rejects a non-object', () => {
    expectError(() => checkControllerSettings(null), 'E_BAD_INPUT', /must be an object/);
    expectError(() => checkControllerSettings([1]), 'E_BAD_INPUT', /must be an object/);
  });

  it('update restarts a confirmation in progress', () => {
    const c = onEdge({ minDwellMs: 0 });
    const slow = { slowdown: { edge: 3 } };
    expect(c.step(snap(1000, slow), current(EDGE_ALL))).toMatchObject({ kind: 'propose', round: 1 });
    c.update({ hysteresis: 0.2 });
    expect(c.settings.hysteresis).toBe(0.2);
    expect(c.step(snap(2000, slow), current(EDGE_ALL))).toMatchObject({ kind: 'propose', round: 1 });
    expect(c.step(snap(3000, slow), current(EDGE_ALL)).kind).toBe('adopt');
  });
});

describe('liveInput, evaluateStages, routeOf', () => {
  it('scales every compute term of a slowed host and leaves the others alone', () => {
    const base = fixture();
    const input: PlanInput = {
      ...base,
      hosts: base.hosts.map((h) => (h.name === 'edge' ? { ...h, stageOverheadMs: 2, cutMsPerByte: 1e-6 } : h)),
    };
    const live = liveInput(snap(0, { input, slowdown: { edge: 2.5 } }), 'throughput', []);
    const edge = live.hosts.find((h) => h.name === 'edge');
    expect(edge?.blockMs).toEqual(new Array<number>(8).fill(25));
    expect(edge?.stageOverheadMs).toBe(5);
    expect(edge?.cutMsPerByte).toBeCloseTo(2.5e-6, 15);
    expect(edge?.frameMs).toBeUndefined();
    // The live frame cost (the loop's CPU per stage) is the host's own, scaled by its slowdown like its compute.
    const framed = liveInput(
      snap(0, { input, slowdown: { edge: 2.5 }, frameMs: { edge: 1.2, cloud: 0.8 } }),
      'latency',
      [],
    );
    expect(framed.hosts.find((h) => h.name === 'edge')?.frameMs).toBeCloseTo(3, 12);
    expect(framed.hosts.find((h) => h.name === 'cloud')?.frameMs).toBe(0.8);
    expect(framed.hosts.find((h) => h.name === 'device')?.frameMs).toBeUndefined();
    expect(live.hosts.find((h) => h.name === 'cloud')?.blockMs).toEqual(new Array<number>(8).fill(8));
    expect(live).toMatchObject({
      objective: 'throughput',
      topN: 1,
      pareto: false,
      options: { hopOverheadMs: 0, missingLinks: 'skip' },
    });
  });

  it('removes down hosts and their links, and adjusts constraints that name them', () => {
    const cs: Constraint[] = [
      { kind: 'noHost', host: 'edge' },
      { kind: 'useHost', hosts: ['edge', 'cloud'] },
      { kind: 'useTier', tier: 'cloud' },
    ];
    const live = liveInput(
      snap(0, {
        down: ['edge'],
        input: { ...fixture(), constraints: [{ kind: 'blockNotOn', block: 0, tier: 'device' }] },
      }),
      'latency',
      cs,
    );
    expect(live.hosts.map((h) => h.name)).toEqual(['device', 'cloud']);
    expect(live.links).toEqual([LINKS[1]]);
    expect(live.constraints).toEqual([
      { kind: 'blockNotOn', block: 0, tier: 'device' },
      { kind: 'useHost', hosts: ['cloud'] },
      { kind: 'useTier', tier: 'cloud' },
    ]);
  });

  it('says E_NO_PLAN when the origin is down or a useHost names only down hosts, and rejects a bad slowdown', () => {
    expectError(
      () => liveInput(snap(0, { down: ['device'] }), 'latency', []),
      'E_NO_PLAN',
      /origin tier 'device' is down/,
    );
    expectError(
      () =>
        liveInput(snap(0, { down: ['edge'] }), 'latency', [{ kind: 'useHost', hosts: ['edge'], source: '-e edge' }]),
      'E_NO_PLAN',
      /-e edge names only hosts that are down/,
    );
    expectError(() => liveInput(snap(0, { slowdown: { edge: 0 } }), 'latency', []), 'E_BAD_INPUT', /^slowdown\.edge: /);
    expectError(
      () => liveInput(snap(0, { slowdown: { edge: Number.NaN } }), 'latency', []),
      'E_BAD_INPUT',
      /^slowdown\.edge: /,
    );
  });

  it('prices a given partition exactly as the planner prices it', () => {
    const live = liveInput(snap(0, { slowdown: { edge: 2 } }), 'latency', []);
    const r = plan({ ...live, topN: 3 });
    for (const p of r.plans) {
      const e = evaluateStages(live, p.stages);
      expect(e).toEqual(p);
    }
    expect(evaluateStages(live, EDGE_ALL)?.latencyMs).toBeCloseTo(110.1 + 160, 9);
  });

  it('cannot price a partition through a removed host or over a missing link', () => {
    expect(evaluateStages(liveInput(snap(0, { down: ['edge'] }), 'latency', []), EDGE_ALL)).toBeNull();
    const noLink = liveInput(snap(0, { input: fixture(LINKS.slice(1)) }), 'latency', []);
    expect(evaluateStages(noLink, EDGE_ALL)).toBeNull();
    expect(evaluateStages(noLink, CLOUD_ALL)).not.toBeNull();
  });

  it('rejects a malformed partition, naming the stage', () => {
    const live = liveInput(snap(0), 'latency', []);
    expectError(
      () =>
        evaluateStages(live, [
          { host: 'edge', start: 0, end: 3 },
          { host: 'cloud', start: 4, end: 8 },
        ]),
      'E_BAD_INPUT',
      /^stages\[1\]: /,
    );
    expectError(
      () =>
        evaluateStages(live, [
          { host: 'cloud', start: 0, end: 3 },
          { host: 'edge', start: 3, end: 8 },
        ]),
      'E_BAD_INPUT',
      /^stages\[1\]: edge \(tier edge\) does not come after tier cloud/,
    );
    expectError(
      () => evaluateStages(live, [{ host: 'edge', start: 0, end: 7 }]),
      'E_BAD_INPUT',
      /^stages: end at block 7/,
    );
    expectError(() => evaluateStages(live, []), 'E_BAD_INPUT', /^stages: /);
  });

  it('writes routes as hosts and half-open block ranges', () => {
    const live = liveInput(snap(0), 'latency', []);
    expect(routeOf(evaluateStages(live, EDGE_ALL) as never)).toBe(EDGE);
    expect(
      routeOf(
        evaluateStages(live, [
          { host: 'device', start: 0, end: 5 },
          { host: 'cloud', start: 5, end: 8 },
        ]) as never,
      ),
    ).toBe('device[0:5) -> cloud[5:8)');
    expect(routeOf({ stages: EDGE_ALL })).toBe('edge[0:8)');
  });
});

describe('controller', () => {
  it('adopts the best plan at once when there is no current plan', () => {
    const d = new Controller().step(snap(0), null);
    expect(d).toMatchObject({ kind: 'adopt', urgent: true, current: null });
    expect(routeOfDecision(d)).toBe(EDGE);
    expect(d.reason).toMatch(/^no current plan: adopting device\[none\] -> edge\[0:8\) at once \(predicted 190 ms\)/);
  });

  it('keeps the current plan while it is the best', () => {
    const c = onEdge();
    const d = c.step(snap(1000), current(EDGE_ALL));
    expect(d.kind).toBe('keep');
    expect(d.reason).toMatch(
      /current plan device\[none\] -> edge\[0:8\) is still the best \(190 ms\); no measurement moved by 10% or more/,
    );
  });

  it('never adopts a plan only 5 % better, however long it lasts', () => {
    const c = onEdge({ minDwellMs: 0 });
    // edge alone at slowdown 1.31: 110.1 + 104.8 = 214.9 ms against cloud's 204.1: 5.0 %.
    for (let t = 1000; t <= 20_000; t += 1000) {
      const d = c.step(snap(t, { slowdown: { edge: 1.31 } }), current(EDGE_ALL));
      expect(d.kind).toBe('keep');
      expect(d.reason).toMatch(
        /the best alternative device\[none\] -> cloud\[0:8\) saves 5% \(predicted 215 -> 204 ms, -5%\), below the 10% hysteresis/,
      );
    }
  });

  it('adopts a plan 30 % better on the second round, pricing both on the slowed estimates', () => {
    const c = onEdge({ minDwellMs: 0 });
    const s = snap(1000, { slowdown: { edge: 2.3 } });
    const d1 = c.step(s, current(EDGE_ALL));
    expect(d1).toMatchObject({ kind: 'propose', round: 1, rounds: 2 });
    if (d1.kind !== 'propose') return;
    expect(d1.current?.latencyMs).toBeCloseTo(110.1 + 80 * 2.3, 9);
    expect(d1.candidate.latencyMs).toBeCloseTo(204.1, 9);
    expect(d1.gain).toBeCloseTo((294.1 - 204.1) / 294.1, 9);
    expect(d1.reason).toMatch(/edge slowdown 1\.0 -> 2\.3x/);
    expect(d1.reason).toMatch(
      /predicted 294 -> 204 ms, -31%: device\[none\] -> cloud\[0:8\) over device\[none\] -> edge\[0:8\); round 1 of 2/,
    );
    const d2 = c.step(snap(2000, { slowdown: { edge: 2.3 } }), current(EDGE_ALL));
    expect(d2).toMatchObject({ kind: 'adopt', urgent: false });
    expect(routeOfDecision(d2)).toBe(CLOUD);
    expect(d2.reason).toMatch(/confirmed for 2 rounds, adopting/);
  });

  it('honours confirmRounds, and a round without the gain restarts the count', () => {
    const c = onEdge({ minDwellMs: 0, confirmRounds: 3 });
    const slow = snap(0, { slowdown: { edge: 3 } });
    const kinds = [1000, 2000].map((t) => c.step({ ...slow, now: t }, current(EDGE_ALL)).kind);
    expect(c.step(snap(3000), current(EDGE_ALL)).kind).toBe('keep');
    kinds.push(...[4000, 5000, 6000].map((t) => c.step({ ...slow, now: t }, current(EDGE_ALL)).kind));
    expect(kinds).toEqual(['propose', 'propose', 'propose', 'propose', 'adopt']);
  });

  it('confirms that the current plan is beaten, even when the best rival changes between rounds', () => {
    const c = onEdge({ minDwellMs: 0 });
    // edge x10: 910 ms, cloud wins (204). Then cloud x20 as well: 1420 ms, the device alone wins (800, -12 %):
    // the edge plan has lost two rounds in a row, and the second round's best is adopted.
    const r1 = c.step(snap(1000, { slowdown: { edge: 10 } }), current(EDGE_ALL));
    expect(r1).toMatchObject({ kind: 'propose', round: 1 });
    expect(routeOfDecision(r1)).toBe(CLOUD);
    const both = { slowdown: { edge: 10, cloud: 20 } };
    const r2 = c.step(snap(2000, both), current(EDGE_ALL));
    expect(r2.kind).toBe('adopt');
    expect(routeOfDecision(r2)).toBe(DEVICE);
    expect(r2.reason).toMatch(/confirmed for 2 rounds \(the best changed from .*cloud.* last round\), adopting/);
  });

  it('waits out the dwell after an adoption, then adopts', () => {
    const c = onEdge({ minDwellMs: 3000 });
    const slow = { slowdown: { edge: 3 } };
    const d1 = c.step(snap(1000, slow), current(EDGE_ALL));
    const d2 = c.step(snap(2000, slow), current(EDGE_ALL));
    const d3 = c.step(snap(3000, slow), current(EDGE_ALL));
    expect([d1.kind, d2.kind, d3.kind]).toEqual(['propose', 'propose', 'adopt']);
    expect(d2).toMatchObject({ round: 2, rounds: 2 });
    expect(d2.reason).toMatch(/confirmed, waiting out the dwell \(1\.00 s of 3\.00 s left\)/);
  });

  it('re-plans at once around a host that goes down, ignoring dwell and confirmation, and never through it', () => {
    const c = onEdge({ minDwellMs: 60_000, confirmRounds: 5 });
    const d = c.step(snap(500, { down: ['edge'] }), current(EDGE_ALL));
    expect(d).toMatchObject({ kind: 'adopt', urgent: true });
    expect(routeOfDecision(d)).toBe(CLOUD);
    expect(d.reason).toMatch(
      /^current plan device\[none\] -> edge\[0:8\) runs through edge, which is down: adopting device\[none\] -> cloud\[0:8\) at once/,
    );
    expect(d.reason).toMatch(/since adoption: edge down/);
    c.adopted(500, snap(500, { down: ['edge'] }));
    // The edge's profile is still in the input and would win by far; it must never be proposed while down.
    for (let t = 1000; t < 10_000; t += 1000) {
      const s = snap(t, { down: ['edge'], slowdown: { edge: 0.25, cloud: 5 } });
      const e = c.step(s, current(CLOUD_ALL, 500));
      expect(routeOfDecision(e)).not.toMatch(/edge/);
    }
    const both = c.step(snap(10_000, { down: ['edge', 'cloud'] }), current(CLOUD_ALL, 500));
    expect(both).toMatchObject({ kind: 'adopt', urgent: true });
    expect(routeOfDecision(both)).toBe(DEVICE);
  });

  it('re-plans at once when the current plan uses a link that is no longer measured', () => {
    const c = onEdge();
    const d = c.step(snap(500, { input: fixture(LINKS.slice(1)) }), current(EDGE_ALL));
    expect(d).toMatchObject({ kind: 'adopt', urgent: true });
    expect(routeOfDecision(d)).toBe(CLOUD);
    expect(d.reason).toMatch(/cannot run: no measured link device->edge/);
  });

  it('names the link measurement that moved and the predicted gain', () => {
    const c = onEdge({ minDwellMs: 0 });
    const links = LINKS.map((l) => (l.to === 'edge' ? { ...l, bytesPerSecond: 0.5e6, rttMs: 12 } : l));
    const d = c.step(snap(1000, { input: fixture(links) }), current(EDGE_ALL));
    expect(d.kind).toBe('propose');
    expect(d.reason).toMatch(
      /^since adoption: link device->edge throughput 10\.0 -> 0\.50 MB\/s \(-95%\), link device->edge rtt 10\.0 -> 12\.0 ms \(\+20%\);/,
    );
    expect(d.reason).toMatch(/predicted 2094 -> 204 ms, -90%/);
  });

  it('evaluates by the new objective after a live switch', () => {
    const input = pipelineFixture();
    const c = new Controller({ minDwellMs: 0 });
    const first = c.step(snap(0, { input }), null);
    expect(routeOfDecision(first)).toBe(EDGE);
    c.adopted(0, snap(0, { input }));
    expect(c.step(snap(1000, { input }), current(EDGE_ALL)).kind).toBe('keep');
    c.update({ objective: 'throughput' });
    const d1 = c.step(snap(2000, { input }), current(EDGE_ALL));
    expect(d1).toMatchObject({ kind: 'propose', round: 1 });
    expect(d1.reason).toMatch(/objective latency -> throughput/);
    expect(d1.reason).toMatch(/predicted bottleneck 100 -> 60\.0 ms \(10\.0 -> 16\.7 req\/s\), -40%/);
    if (d1.kind === 'propose') expect(d1.gain).toBeCloseTo(0.4, 9);
    const d2 = c.step(snap(3000, { input }), current(EDGE_ALL));
    expect(d2.kind).toBe('adopt');
    expect(routeOfDecision(d2)).toBe('device[0:4) -> edge[4:8)');
    c.update({ objective: 'latency' });
    c.adopted(3000, snap(3000, { input }));
    const back = c.step(
      snap(4000, { input }),
      current(
        [
          { host: 'device', start: 0, end: 4 },
          { host: 'edge', start: 4, end: 8 },
        ],
        3000,
      ),
    );
    expect(routeOfDecision(back)).toBe(EDGE);
    expect(back.kind).toBe('keep'); // 112.2 -> 102.2 ms is 9 %, under the hysteresis
  });

  it('keeps everything while paused, even with no plan at all', () => {
    const c = onEdge({ paused: true, minDwellMs: 0 });
    const none = c.step(snap(0), null);
    expect(none.kind).toBe('keep');
    expect(none.reason).toMatch(/^paused: keeping no plan; the best plan is device\[none\] -> edge\[0:8\)/);
    for (const t of [1000, 2000, 3000]) {
      const d = c.step(snap(t, { slowdown: { edge: 5 } }), current(EDGE_ALL));
      expect(d.kind).toBe('keep');
      expect(d.reason).toMatch(/^paused/);
    }
    c.update({ paused: false });
    expect(c.step(snap(4000, { slowdown: { edge: 5 } }), current(EDGE_ALL)).kind).toBe('propose');
  });

  it('keeps a pinned plan, and says so when it runs through a down host', () => {
    const c = onEdge({ minDwellMs: 0 });
    for (const t of [1000, 2000, 3000]) {
      const d = c.step(snap(t, { slowdown: { edge: 5 } }), current(EDGE_ALL, 0, true));
      expect(d.kind).toBe('keep');
      expect(d.reason).toMatch(
        /^pinned: keeping device\[none\] -> edge\[0:8\); the best plan is device\[none\] -> cloud\[0:8\)/,
      );
    }
    const down = c.step(snap(4000, { down: ['edge'] }), current(EDGE_ALL, 0, true));
    expect(down).toMatchObject({ kind: 'keep', current: null });
    expect(down.reason).toMatch(
      /^pinned plan device\[none\] -> edge\[0:8\) runs through edge, which is down; keeping it/,
    );
  });

  it('keeps, without throwing, when no plan is feasible', () => {
    const onlyEdge: Constraint[] = [{ kind: 'blockOn', block: 0, tier: 'edge', source: '-e 0' }];
    const c = new Controller({ constraints: onlyEdge });
    c.adopted(0, snap(0));
    const d = c.step(snap(1000, { down: ['edge'] }), current(CLOUD_ALL));
    expect(d).toMatchObject({ kind: 'keep', best: null });
    expect(d.reason).toMatch(
      /^no feasible plan on the live estimates, keeping device\[none\] -> cloud\[0:8\): no plan: -e 0 cannot be met/,
    );
    expect(new Controller({ constraints: onlyEdge }).step(snap(0, { down: ['edge'] }), null)).toMatchObject({
      kind: 'keep',
      best: null,
      current: null,
    });
    const useHost = new Controller({ constraints: [{ kind: 'useHost', hosts: ['edge'] }] });
    const u = useHost.step(snap(0, { down: ['edge'] }), current(EDGE_ALL));
    expect(u.kind).toBe('keep');
    expect(u.reason).toMatch(/which runs through edge, which is down.*names only hosts that are down/);
    expect(new Controller().step(snap(0, { down: ['device'] }), null).kind).toBe('keep');
  });

  it('moves off a current plan that breaks a newly added constraint, even at a loss, after confirmation', () => {
    const c = onEdge({ minDwellMs: 0 });
    c.update({ constraints: [{ kind: 'noTier', tier: 'edge' }] });
    const d1 = c.step(snap(1000), current(EDGE_ALL));
    expect(d1).toMatchObject({ kind: 'propose', round: 1 });
    expect(d1.reason).toMatch(
      /constraints changed \(1 now\).*current plan breaks --no-tier edge; predicted 190 -> 204 ms, \+7%/,
    );
    const d2 = c.step(snap(2000), current(EDGE_ALL));
    expect(d2.kind).toBe('adopt');
    expect(routeOfDecision(d2)).toBe(CLOUD);
  });

  it('takes a plan committed around it (a newer adoptedAt) as its new baseline and dwell start', () => {
    const c = onEdge({ minDwellMs: 3000 });
    const slow = { slowdown: { edge: 3 } };
    // Cloud was put in place at t = 5000 on slowed measurements: nothing moved since then, and it is the best.
    const d = c.step(snap(5000, slow), current(CLOUD_ALL, 5000));
    expect(d.kind).toBe('keep');
    expect(d.reason).toMatch(/still the best.*no measurement moved/);
    // The edge speeds up (150 ms against 204): it wins again, but the dwell runs from 5000.
    const fast = { slowdown: { edge: 0.5 } };
    const e1 = c.step(snap(6000, fast), current(CLOUD_ALL, 5000));
    const e2 = c.step(snap(7000, fast), current(CLOUD_ALL, 5000));
    const e3 = c.step(snap(8000, fast), current(CLOUD_ALL, 5000));
    expect([e1.kind, e2.kind, e3.kind]).toEqual(['propose', 'propose', 'adopt']);
    expect(e1.reason).toMatch(/edge slowdown 3\.0 -> 0\.50x/);
  });
});

describe('wire codecs in the loop', () => {
  // The fixture with int8 measured at the input: a quarter of the bytes, 0.5 % output error, cheap to code.
  function coded(links: readonly PlanLink[]): PlanInput {
    const base = fixture(links);
    return {
      ...base,
      hosts: base.hosts.map((h) => ({ ...h, codecMsPerByte: { int8: { encode: 1e-6, decode: 1e-6 } } })),
      codecs: [
        {
          name: 'int8',
          ratio: new Array<number>(9).fill(0.25),
          error: [0.005, ...new Array<number | null>(8).fill(null)],
        },
      ],
    };
  }
  const slowEdge = LINKS.map((l) => (l.to === 'edge' ? { ...l, bytesPerSecond: 5e6 } : l));
  // The cloud three times slower, so that edge alone stays the partition to beat.
  const slowCloud = { cloud: 3 };

  it('a slower link makes the same partition better in a codec: adopted, and priced as it runs', () => {
    const c = new Controller({ minDwellMs: 0, maxError: 0.01 });
    c.adopted(0, snap(0, { input: coded(LINKS) }));
    const runningRaw = current([{ host: 'edge', start: 0, end: 8, codec: 'raw' }]);
    // At 5 MB/s: raw 5 + 200 + 80 + 5 = 290 ms, int8 5 + 50 + 2 + 80 + 5 = 142 ms.
    const first = c.step(snap(1000, { input: coded(slowEdge), slowdown: slowCloud }), runningRaw);
    expect(first.kind).toBe('propose');
    const d = c.step(snap(2000, { input: coded(slowEdge), slowdown: slowCloud }), runningRaw);
    expect(d.kind).toBe('adopt');
    if (d.kind !== 'adopt') return;
    expect(routeOf(d.plan)).toBe('device[none] -int8-> edge[0:8)');
    expect(d.plan.hops[0]).toMatchObject({ codec: 'int8', bytes: 250_000 });
    // Priced as it runs: the raw plan costs the raw bytes, the coded one a quarter.
    const raw = evaluateStages(
      liveInput(snap(0, { input: coded(slowEdge), slowdown: slowCloud }), 'latency', [], { maxError: 0.01 }),
      [{ host: 'edge', start: 0, end: 8, codec: 'raw' }],
    );
    expect(raw?.hops[0]).toMatchObject({ codec: 'raw', bytes: 1e6 });
    expect(raw!.latencyMs).toBeCloseTo(290.2, 6); // the result returns over the same row: +0.2 ms
    expect(d.plan.latencyMs).toBeCloseTo(142.2, 6);
  });

  it('without an error budget the lossy codec is never chosen; the codecs setting can forbid it too', () => {
    for (const settings of [{}, { maxError: 0.01, codecs: [] as string[] }]) {
      const c = new Controller({ minDwellMs: 0, ...settings });
      c.adopted(0, snap(0, { input: coded(LINKS) }));
      const d = c.step(
        snap(1000, { input: coded(slowEdge), slowdown: slowCloud }),
        current([{ host: 'edge', start: 0, end: 8 }]),
      );
      expect(routeOfDecision(d)).not.toMatch(/int8/);
    }
  });

  it('a change of the error budget is the reason given for the plan it lets in', () => {
    const c = new Controller({ minDwellMs: 0, decisiveGain: 0.3 });
    c.adopted(0, snap(0, { input: coded(slowEdge), slowdown: slowCloud }));
    const running = current([{ host: 'edge', start: 0, end: 8, codec: 'raw' }]);
    expect(c.step(snap(1000, { input: coded(slowEdge), slowdown: slowCloud }), running).kind).toBe('keep');
    c.update({ maxError: 0.01 });
    const d = c.step(snap(2000, { input: coded(slowEdge), slowdown: slowCloud }), running);
    expect(d.kind).toBe('adopt');
    if (d.kind === 'adopt') expect(d.reason).toMatch(/maxError 0 -> 0\.01/);
  });

  it('lowering the error budget under the running lossy codec replaces the plan at once', () => {
    const c = new Controller({ minDwellMs: 60_000, maxError: 0.01 });
    c.adopted(0, snap(0, { input: coded(slowEdge), slowdown: slowCloud }));
    const running = current([{ host: 'edge', start: 0, end: 8, codec: 'int8' }]);
    expect(c.step(snap(1000, { input: coded(slowEdge), slowdown: slowCloud }), running).kind).toBe('keep');
    c.update({ maxError: 0 });
    const d = c.step(snap(2000, { input: coded(slowEdge), slowdown: slowCloud }), running);
    expect(d.kind).toBe('adopt');
    if (d.kind === 'adopt') {
      expect(d.reason).toMatch(/codec int8 into edge \(at block 0\) is over the error budget of 0/);
      expect(routeOf(d.plan)).not.toMatch(/int8/);
    }
  });

  it('a plan running a codec no longer offered cannot be priced as it runs, so it is replaced at once', () => {
    const c = new Controller({ minDwellMs: 60_000, codecs: [] });
    c.adopted(0, snap(0, { input: coded(slowEdge) }));
    const d = c.step(
      snap(1000, { input: coded(slowEdge) }),
      current([{ host: 'edge', start: 0, end: 8, codec: 'int8' }]),
    );
    expect(d.kind).toBe('adopt');
    if (d.kind === 'adopt') expect(d.reason).toMatch(/codec int8/);
  });
});
