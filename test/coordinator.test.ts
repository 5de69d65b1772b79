/**
 * The origin's Coordinator over a fake cluster (hand-built profiles and links) and a fake prepare, with the
 * real planner. The main fixture, 4 blocks of 1000-byte frontiers, is priced so one plan is clearly best:
 *   cloud alone (1 ms/block, rtt 20):  10 + 0.35 + 4 + 10.35   = 24.7 ms  <- latency's best
 *   edge alone (10 ms/block, rtt 10):  5 + 0.35 + 40 + 5.35    = 50.7 ms
 *   device alone (100 ms/block):                               = 400 ms
 */
import { describe, expect, it, vi } from 'vitest';
import type { Constraint, Objective } from '../src/planner/types.js';
import type { Profile } from '../src/planner/profile.js';
import type { LinkReport } from '../src/runtime/plan/cluster-view.js';
import { Coordinator, type ActivePlan, type CoordinatorOptions } from '../src/runtime/plan/coordinator.js';
import { blockRanges, deferred, profile, rejection, silent } from './helpers/fakes.js';

const HOSTS = [
  { name: 'device', tier: 'device' },
  { name: 'edge', tier: 'edge' },
  { name: 'cloud', tier: 'cloud' },
];

function link(from: string, to: string, rttMs: number | null, throughputBps: number | null): LinkReport {
  return { from, to, rttMs, throughputBps, state: 'open', bytesSent: 0, queuedBytes: 0, emulation: null };
}

const LINKS: LinkReport[] = [
  link('device', 'edge', 10, 10e6),
  link('device', 'cloud', 20, 10e6),
  link('edge', 'cloud', 20, 100e6),
];

function profiles(device = 100, edge = 10, cloud = 1): Profile[] {
  return [
    profile('device', 'device', [device, device, device, device]),
    profile('edge', 'edge', [edge, edge, edge, edge]),
    profile('cloud', 'cloud', [cloud, cloud, cloud, cloud]),
  ];
}

interface Rig {
  readonly c: Coordinator;
  readonly calls: string[];
  readonly adopted: [ActivePlan, ActivePlan | null][];
  /** What the fake cluster answers; change it between calls. */
  readonly cluster: { profiles: Profile[]; links: LinkReport[] };
  prepare: (host: string, from: number, to: number) => Promise<void>;
}

function rig(over: Partial<Omit<CoordinatorOptions, 'prepare' | 'cluster'>> = {}): Rig {
  const cluster = { profiles: profiles(), links: [...LINKS] };
  const r: Rig = {
    calls: [],
    adopted: [],
    cluster,
    prepare: async () => undefined,
    c: undefined as unknown as Coordinator,
  };
  const c = new Coordinator({
    self: HOSTS[0],
    tiers: ['device', 'edge', 'cloud'],
    hosts: HOSTS,
    blocks: blockRanges(4),
    cluster: { profiles: async () => cluster.profiles, links: async () => cluster.links },
    prepare: (host, from, to) => {
      r.calls.push(`${host}[${from}:${to})`);
      return r.prepare(host, from, to);
    },
    historyLength: 10,
    onAdopt: (p, prev) => r.adopted.push([p, prev]),
    logger: silent,
    ...over,
  });
  return Object.assign(r, { c });
}

const route = (p: ActivePlan | null): string =>
  p ? p.route.map((s) => `${s.host}[${s.from}:${s.to})`).join(' ') : 'none';

/** Lets queued promise callbacks (the fake cluster's answers, the planner's search) run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}

describe('Coordinator.replan', () => {
  it("adopts the planner's best as epoch 1, the route starting at the origin, after preparing every computing stage", async () => {
    const r = rig();
    const seenCurrent: (ActivePlan | null)[] = [];
    r.prepare = async () => {
      seenCurrent.push(r.c.current);
    };
    const p = await r.c.replan('start-up');
    expect(p.epoch).toBe(1);
    expect(route(p)).toBe('device[0:0) cloud[0:40)');
    expect(p.route[0]).toEqual({ host: 'device', tier: 'device', from: 0, to: 0 });
    expect(r.calls).toEqual(['cloud[0:40)']);
    // prepare ran before the commit: no plan was current yet
    expect(seenCurrent).toEqual([null]);
    expect(p.pinned).toBe(false);
    expect(p.reason).toBe('start-up');
    expect(p.predicted.latencyMs).toBeCloseTo(24.7, 6);
    expect(r.c.current).toBe(p);
    expect(r.c.plans).toEqual([p]);
  });

  it('warm prepares a plan without committing it, and a warm already running is joined, not repeated', async () => {
    const r = rig();
    const first = await r.c.replan('start-up');
    r.calls.length = 0;
    const [other] = await r.c.search([{ kind: 'noTier', tier: 'edge' }]);
    const held: (() => void)[] = [];
    r.prepare = () => new Promise<void>((res) => held.push(res));
    const a = r.c.warm(other);
    const b = r.c.warm(other);
    await settle();
    const calls = [...r.calls];
    expect(calls.length).toBeGreaterThan(0);
    expect(calls.every((x) => !x.startsWith('edge'))).toBe(true);
    for (const release of held) release();
    await Promise.all([a, b]);
    expect(r.calls).toEqual(calls); // the second warm joined the first
    expect(r.c.current).toBe(first); // nothing committed
    expect(r.adopted).toHaveLength(1);
  });

  it('a failed prepare leaves the current plan and epoch, and the next replan works', async () => {
    const r = rig();
    const first = await r.c.replan('start-up');
    r.cluster.profiles = profiles(100, 10, 1000); // cloud got slow: edge alone is best now
    r.prepare = async (host) => {
      throw new Error(`${host} could not load`);
    };
    await expect(r.c.replan('cloud slowed')).rejects.toThrow('edge could not load');
    expect(r.c.current).toBe(first);
    expect(r.c.plans).toHaveLength(1);
    expect(r.adopted).toHaveLength(1);

    r.prepare = async () => undefined;
    const next = await r.c.replan('retry');
    expect(next.epoch).toBe(2);
    expect(route(next)).toBe('device[0:0) edge[0:40)');
  });

  it('a failed prepare before any plan leaves none, and the next replan adopts epoch 1', async () => {
    const r = rig();
    r.prepare = async () => Promise.reject(new Error('not warm'));
    await expect(r.c.replan('start-up')).rejects.toThrow('not warm');
    expect(r.c.current).toBeNull();
    r.prepare = async () => undefined;
    expect((await r.c.replan('retry')).epoch).toBe(1);
  });

  it('the same route again makes no new epoch, prepares nothing and tells no one', async () => {
    const r = rig();
    await r.c.replan('a');
    const again = await r.c.replan('b');
    expect(again.epoch).toBe(1);
    expect(r.calls).toEqual(['cloud[0:40)']);
    expect(r.adopted).toHaveLength(1);
    expect(r.c.plans).toHaveLength(1);
  });

  it('unloaded, it prepares nothing (pin, replan, warm refuse E_NOT_READY) until reload warms the plan in force again', async () => {
    const r = rig();
    const first = await r.c.replan('start-up');
    // A warm-up under way when the unload comes is waited for, so none prepares after markUnloaded returns.
    const gate = deferred();
    r.prepare = () => gate.promise;
    const [other] = await r.c.search([{ kind: 'noTier', tier: 'cloud' }]);
    const warming = r.c.warm(other);
    let marked = false;
    const marking = r.c.markUnloaded().then(() => (marked = true));
    await settle();
    expect(marked).toBe(false);
    expect(r.c.loaded).toBe(false);
    gate.resolve();
    await Promise.all([warming, marking]);
    r.prepare = async () => undefined;
    r.calls.length = 0;
    expect((await rejection(r.c.warm(other))).code).toBe('E_NOT_READY');
    expect((await rejection(r.c.pin([{ host: 'device', blocks: [0, 4] }]))).code).toBe('E_NOT_READY');
    r.cluster.profiles = profiles(100, 0.1, 1); // the edge now best: a replan would move
    expect((await rejection(r.c.replan('edge faster'))).message).toMatch(/the model is unloaded/);
    expect(r.calls).toEqual([]);
    expect(r.c.current).toBe(first);
    const back = await r.c.reload();
    expect(back).toBe(first);
    expect(r.c.loaded).toBe(true);
    expect(r.calls).toEqual(['cloud[0:40)']);
  });

  it('no profile yet is E_NOT_READY', async () => {
    const r = rig();
    r.cluster.profiles = [];
    expect((await rejection(r.c.replan('start-up'))).code).toBe('E_NOT_READY');
  });
});

describe('Coordinator.pin and unpin', () => {
  const bad: [string, { host: string; blocks: [number, number] }[], RegExp][] = [
    ['an unknown host', [{ host: 'laptop', blocks: [0, 4] }], /^stages\[0\]\.host: 'laptop' is not a host/],
    [
      'a gap',
      [
        { host: 'device', blocks: [0, 1] },
        { host: 'edge', blocks: [2, 4] },
      ],
      /^stages\[1\]\.blocks: expected \[1, b\)/,
    ],
    [
      'an empty stage',
      [
        { host: 'device', blocks: [0, 0] },
        { host: 'edge', blocks: [0, 4] },
      ],
      /^stages\[0\]\.blocks/,
    ],
    [
      'past the last block',
      [{ host: 'edge', blocks: [0, 5] }],
      /^stages\[0\]\.blocks: expected \[0, b\) with 0 < b <= 4, got \[0, 5\)/,
    ],
    [
      'a tier twice',
      [
        { host: 'edge', blocks: [0, 2] },
        { host: 'edge', blocks: [2, 4] },
      ],
      /^stages\[1\]: tier 'edge' is used twice/,
    ],
    [
      'not covering the model',
      [{ host: 'edge', blocks: [0, 2] }],
      /^stages cover blocks \[0, 2\) but the model has 4 blocks/,
    ],
  ];
  for (const [what, stages, message] of bad) {
    it(`refuses ${what} with E_BAD_INPUT naming the field, and keeps the plan`, async () => {
      const r = rig();
      const before = await r.c.replan('start-up');
      const e = await rejection(r.c.pin(stages));
      expect(e.code).toBe('E_BAD_INPUT');
      expect(e.message).toMatch(message);
      expect(r.c.current).toBe(before);
      expect(r.calls).toEqual(['cloud[0:40)']);
    });
  }

  it('waits for a link the pinned route needs to be measured, and names it when it never is', async () => {
    const r = rig({ pinLinkWaitMs: 300 });
    const before = await r.c.replan('start-up');
    const stages = [
      { host: 'edge', blocks: [0, 2] as [number, number] },
      { host: 'cloud', blocks: [2, 4] as [number, number] },
    ];
    // edge -> cloud not measured yet (no throughput): the pin waits, and plans once the figure arrives.
    r.cluster.links = [LINKS[0], LINKS[1], link('edge', 'cloud', 20, null)];
    const pinning = r.c.pin(stages);
    await new Promise((res) => setTimeout(res, 120));
    expect(r.c.current).toBe(before);
    r.cluster.links = [...LINKS];
    const pinned = await pinning;
    expect(route(pinned)).toBe('device[0:0) edge[0:20) cloud[20:40)');
    // Never measured: E_NOT_READY naming the link, and the plan in force stays.
    r.cluster.links = [LINKS[0], LINKS[1]];
    const e = await rejection(
      r.c.pin([
        { host: 'device', blocks: [0, 1] },
        ...stages.map((s, i) => (i === 0 ? { ...s, blocks: [1, 2] as [number, number] } : s)),
      ]),
    );
    expect(e.code).toBe('E_NOT_READY');
    expect(e.message).toMatch(/link edge -> cloud has no measurement yet/);
    expect(r.c.current).toBe(pinned);
  });

  it('pins a plan, which replan keeps, until unpin re-plans', async () => {
    const r = rig();
    await r.c.replan('start-up');
    const pinned = await r.c.pin([
      { host: 'device', blocks: [0, 2] },
      { host: 'edge', blocks: [2, 4] },
    ]);
    expect(pinned).toMatchObject({ epoch: 2, pinned: true, reason: 'pinned by PUT /v1/plan' });
    expect(route(pinned)).toBe('device[0:20) edge[20:40)');
    expect(pinned.predicted.stages.map((s) => [s.host, s.start, s.end])).toEqual([
      ['device', 0, 2],
      ['edge', 2, 4],
    ]);
    expect(r.calls.slice(1).sort()).toEqual(['device[0:20)', 'edge[20:40)']);

    expect(await r.c.replan('periodic')).toBe(pinned);
    expect(r.calls).toHaveLength(3);

    const unpinned = await r.c.unpin();
    expect(unpinned).toMatchObject({ epoch: 3, pinned: false, reason: 'unpinned by DELETE /v1/plan' });
    expect(route(unpinned)).toBe('device[0:0) cloud[0:40)');
    expect(r.calls.at(-1)).toBe('cloud[0:40)');
  });

  it('pinning the current route keeps its epoch and marks it pinned; unpin then keeps it too', async () => {
    const r = rig();
    await r.c.replan('start-up');
    const p = await r.c.pin([{ host: 'cloud', blocks: [0, 4] }]);
    expect(p).toMatchObject({ epoch: 1, pinned: true });
    expect(r.c.current?.pinned).toBe(true);
    const u = await r.c.unpin();
    expect(u).toMatchObject({ epoch: 1, pinned: false });
    expect(r.calls).toEqual(['cloud[0:40)']);
  });

  it('a second switch arriving while the first prepares waits for it: epochs 1 then 2, never both preparing', async () => {
    const r = rig();
    const gate = deferred();
    let preparing = 0;
    let most = 0;
    r.prepare = async (host) => {
      preparing++;
      most = Math.max(most, preparing);
      try {
        if (host === 'cloud') await gate.promise;
      } finally {
        preparing--;
      }
    };
    const first = r.c.replan('start-up');
    await settle();
    expect(r.calls).toEqual(['cloud[0:40)']);
    const second = r.c.pin([{ host: 'edge', blocks: [0, 4] }]);
    await settle();
    // the pin has searched by now, but waits for the first switch before preparing
    expect(r.calls).toEqual(['cloud[0:40)']);
    expect(r.c.current).toBeNull();
    gate.resolve();
    const [a, b] = await Promise.all([first, second]);
    expect([a.epoch, b.epoch]).toEqual([1, 2]);
    expect(r.calls).toEqual(['cloud[0:40)', 'edge[0:40)']);
    expect(most).toBe(1);
    expect(r.adopted.map(([p, prev]) => [p.epoch, prev?.epoch ?? null])).toEqual([
      [1, null],
      [2, 1],
    ]);
    expect(route(r.c.current)).toBe('device[0:0) edge[0:40)');
  });

  // Regression: replan checked `pinned` only before it searched and waited, so a replan that started while a
  // pin was still preparing (the start-up replan after a PUT /v1/plan sent during link measurement)
  // committed its own plan over the pin as soon as the pin committed.
  it('a replan arriving while a pin prepares does not override the pin', async () => {
    const r = rig();
    await r.c.replan('start-up'); // cloud alone, epoch 1
    const gate = deferred();
    r.prepare = async (host) => {
      if (host === 'edge') await gate.promise;
    };
    const pin = r.c.pin([{ host: 'edge', blocks: [0, 4] }]);
    await settle();
    const replan = r.c.replan('periodic');
    await settle();
    gate.resolve();
    await Promise.all([pin, replan]);
    expect(r.c.current).toMatchObject({ epoch: 2, pinned: true });
    expect(route(r.c.current)).toBe('device[0:0) edge[0:40)');
  });

  it('a switch waiting behind a failing one still runs', async () => {
    const r = rig();
    const gate = deferred();
    r.prepare = async (host) => {
      if (host === 'cloud') await gate.promise;
    };
    const first = r.c.replan('start-up');
    await settle();
    const second = r.c.pin([{ host: 'edge', blocks: [0, 4] }]);
    await settle();
    gate.reject(new Error('cloud died'));
    await expect(first).rejects.toThrow('cloud died');
    expect((await second).epoch).toBe(1);
  });
});

describe('Coordinator options', () => {
  // Device and edge both 10 ms/block, cloud 100: latency keeps everything on the device (40 ms, no hop);
  // throughput splits 2 + 2 blocks across device and edge (20 ms bottleneck against 40).
  const pipelined = (): Profile[] => profiles(10, 10, 100);

  const cases: [Objective, string, string[]][] = [
    ['latency', 'device[0:40)', ['device[0:40)']],
    ['throughput', 'device[0:20) edge[20:40)', ['device[0:20)', 'edge[20:40)']],
  ];
  for (const [objective, expected, prepared] of cases) {
    it(`objective '${objective}' adopts ${expected}`, async () => {
      const r = rig({ objective });
      r.cluster.profiles = pipelined();
      const p = await r.c.replan('start-up');
      expect(route(p)).toBe(expected);
      expect([...r.calls].sort()).toEqual(prepared);
    });
  }

  it('the deployment constraints apply to replan', async () => {
    const constraints: Constraint[] = [{ kind: 'noTier', tier: 'cloud', source: 'config' }];
    const r = rig({ constraints });
    expect(route(await r.c.replan('start-up'))).toBe('device[0:0) edge[0:40)');
  });

  it("missingLinks 'skip' (the default) plans around a missing link; 'error' refuses with E_BAD_NETWORK", async () => {
    const r = rig();
    r.cluster.links = [link('device', 'edge', 10, 10e6)];
    expect(route(await r.c.replan('start-up'))).toBe('device[0:0) edge[0:40)');

    const strict = rig({ missingLinks: 'error' });
    strict.cluster.links = [link('device', 'edge', 10, 10e6)];
    const e = await rejection(strict.c.replan('start-up'));
    expect(e.code).toBe('E_BAD_NETWORK');
    expect(e.message).toMatch(/device -> cloud/);
  });

  it('links without an RTT, a throughput, or both ends profiled are left out', async () => {
    const r = rig();
    r.cluster.links = [
      link('device', 'edge', 10, 10e6),
      link('device', 'cloud', null, 10e6),
      link('edge', 'cloud', 20, null),
      link('device', 'laptop', 1, 1e9),
      link('cloud', 'device', 20, 0),
    ];
    const input = await r.c.planInput();
    expect(input.links).toEqual([{ from: 'device', to: 'edge', rttMs: 10, bytesPerSecond: 10e6 }]);
    expect(route(await r.c.replan('start-up'))).toBe('device[0:0) edge[0:40)');
  });

  it('historyLength bounds plans, oldest dropped first', async () => {
    const r = rig({ historyLength: 2 });
    await r.c.replan('start-up');
    await r.c.pin([{ host: 'edge', blocks: [0, 4] }]);
    await r.c.pin([{ host: 'device', blocks: [0, 4] }]);
    expect(r.c.plans.map((p) => p.epoch)).toEqual([2, 3]);
    expect(r.c.current?.epoch).toBe(3);
  });

  it('onAdopt is told of every committed plan with the one it replaced', async () => {
    const onAdopt = vi.fn();
    const r = rig({ onAdopt });
    const a = await r.c.replan('start-up');
    const b = await r.c.pin([{ host: 'edge', blocks: [0, 4] }]);
    expect(onAdopt.mock.calls).toEqual([
      [a, null],
      [b, a],
    ]);
  });
});
