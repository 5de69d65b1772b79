import { describe, expect, it } from 'vitest';
import { enumeratePlans } from '../src/planner/enumerate.js';
import { CODEC_MIN_GAIN } from '../src/planner/cost.js';
import {
  formatPlan,
  formatResult,
  parseConstraintFlag,
  parseNetworkCsv,
  parseScissionCriteria,
  parseSize,
  plan,
  planSvg,
  type Constraint,
  type Plan,
  type PlanInput,
  type PlanResult,
} from '../src/planner/index.js';
import { expectError } from './helpers/errors.js';

function stagesOf(p: Plan): string {
  return p.stages.map((s) => `${s.host}:${s.start}-${s.end}`).join(',');
}

// Scission's own network file (benchmark_data/network_stats.csv), as Scission ships it.
const SCISSION_CSV = `source,destination,ping(ms),bandwidth(mbps)
raspi4,2500,            66.7,  1.6
raspi4,vm2Core,            66.7,  1.6
raspi4,6700k(GPU),      100,  1.6
raspi4,6700k(NoGPU),    100,  1.6
2500,6700k(GPU),        20,  50
2500,6700k(NoGPU),      20,  50
vm2Core,6700k(GPU),        20,  50
vm2Core,6700k(NoGPU),      20,  50
`;

/** A 3-block model on Scission's hosts, numbers chosen to be checked by hand. */
function handInput(over: Partial<PlanInput> = {}): PlanInput {
  return {
    tiers: ['device', 'edge', 'cloud'],
    hosts: [
      { name: 'raspi4', tier: 'device', blockMs: [300, 400, 500] },
      { name: 'vm2Core', tier: 'edge', blockMs: [20, 40, 60] },
      { name: '6700k(GPU)', tier: 'cloud', blockMs: [2, 4, 6] },
    ],
    links: parseNetworkCsv(SCISSION_CSV, 'network_stats.csv'),
    frontierBytes: [200_000, 100_000, 4000],
    inputBytes: 150_000,
    outputBytes: 4000,
    weightBytes: [1000, 2000, 3000],
    ...over,
  };
}

describe('scission cost model', () => {
  it("reproduces Scission's predictor on a hand-computed example", () => {
    // 1.6 Mbps = 200000 B/s, 50 Mbps = 6.25 MB/s; ping is added once per hop, as measured.
    // cloud alone:          2+4+6 + 100 + 150000/200000 s              = 862 ms
    // edge 0, cloud 1-2:    20 + 4+6 + 66.7 + 750 + 20 + 200000/6.25e6 s = 898.7 ms
    // edge 0-1, cloud 2:    20+40 + 6 + 66.7 + 750 + 20 + 16           = 918.7 ms
    // edge alone:           120 + 66.7 + 750                            = 936.7 ms
    // device alone:         1200 ms (nothing is sent)
    const r = plan(handInput({ costModel: 'scission' }));
    expect(r.plans.map(formatPlan)).toEqual([
      '0.862s - 0.15MB - Device(raspi4) = none, Cloud(6700k(GPU)) = 0 - 2',
      '0.8987s - 0.35MB - Device(raspi4) = none, Edge(vm2Core) = 0 - 0, Cloud(6700k(GPU)) = 1 - 2',
      '0.9187s - 0.25MB - Device(raspi4) = none, Edge(vm2Core) = 0 - 1, Cloud(6700k(GPU)) = 2 - 2',
      '0.9367s - 0.15MB - Device(raspi4) = none, Edge(vm2Core) = 0 - 2',
      '1.2s - 0MB - Device(raspi4) = 0 - 2',
    ]);
    expect(r.plans[1].latencyMs).toBeCloseTo(898.7, 9);
    expect(r.plans[1].hops.map((h) => [h.from, h.to, h.bytes, h.ms])).toEqual([
      ['raspi4', 'vm2Core', 150_000, 816.7],
      ['vm2Core', '6700k(GPU)', 200_000, 52],
    ]);
  });

  it('agrees with a direct port of scission_predict.py on random instances', () => {
    let seed = 7;
    const rnd = (): number => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
    for (let t = 0; t < 25; t++) {
      const n = 2 + Math.floor(rnd() * 6);
      const mk = (name: string, tier: string): PlanInput['hosts'][number] => ({
        name,
        tier,
        blockMs: Array.from({ length: n }, () => rnd() * 50),
      });
      const hosts = [mk('d1', 'device'), mk('d2', 'device'), mk('e1', 'edge'), mk('e2', 'edge'), mk('c1', 'cloud')];
      const links = hosts.flatMap((a) =>
        hosts
          .filter((b) => order(a.tier) < order(b.tier))
          .map((b) => ({
            from: a.name,
            to: b.name,
            rttMs: rnd() * 100,
            bytesPerSecond: Math.round((0.5 + rnd() * 50) * 125000),
          })),
      );
      const frontierBytes = Array.from({ length: n }, () => Math.round(rnd() * 400_000));
      const input: PlanInput = {
        tiers: ['device', 'edge', 'cloud'],
        hosts,
        links,
        frontierBytes,
        inputBytes: 150_000,
        outputBytes: frontierBytes[n - 1],
        costModel: 'scission',
        topN: 5,
      };
      const ours = plan(input).plans.map((p) => p.latencyMs / 1000);
      const theirs = scissionPredict(input).slice(0, 5);
      expect(ours.length).toBe(theirs.length);
      ours.forEach((x, i) => expect(x).toBeCloseTo(theirs[i], 6));
    }
  });
});

function order(tier: string): number {
  return ['device', 'edge', 'cloud'].indexOf(tier);
}

/**
 * scission_predict.py's create_splits / create_scenarios / get_transfer_overhead, ported line by line
 * (seconds): every device x edge x cloud host triple, every split (x, y) with the edge or cloud empty.
 */
function scissionPredict(input: PlanInput): number[] {
  const n = input.frontierBytes.length;
  const by = (tier: string): PlanInput['hosts'][number][] => input.hosts.filter((h) => h.tier === tier);
  const stats = new Map(
    input.links.map((l) => [`${l.from}>${l.to}`, { ping: l.rttMs / 1000, bandwidth: l.bytesPerSecond }]),
  );
  const splits: [number, number, number, number, number, number][] = [];
  for (let x = -1; x < n; x++) {
    for (let y = -1; y < n; y++) {
      if (!(y > x || y === -1)) continue;
      const z = x !== n - 1 && y !== n - 1 ? n - 1 : -1;
      splits.push([x !== -1 ? 0 : -1, x, y !== -1 ? x + 1 : -1, y, z !== -1 ? Math.max(x, y) + 1 : -1, z]);
    }
  }
  const seen = new Map<string, number>();
  for (const d of by('device')) {
    for (const e of by('edge')) {
      for (const c of by('cloud')) {
        for (const [d0, d1, e0, e1, c0, c1] of splits) {
          const time = (h: typeof d, a: number, b: number): number => {
            let s = 0;
            for (let k = a; k <= b; k++) s += h.blockMs[k] / 1000;
            return s;
          };
          let deviceOut = input.inputBytes;
          let edgeOut = 0;
          const dt = d0 !== -1 ? time(d, d0, d1) : 0;
          if (d0 !== -1) deviceOut = input.frontierBytes[d1];
          const et = e0 !== -1 ? time(e, e0, e1) : 0;
          if (e0 !== -1) edgeOut = input.frontierBytes[e1];
          const ct = c0 !== -1 ? time(c, c0, c1) : 0;
          if (e0 === -1 && c0 === -1) deviceOut = 0;
          else if (c0 === -1) edgeOut = 0;
          let transfer = 0;
          const edge = e0 !== -1 ? e.name : undefined;
          const cloud = c0 !== -1 ? c.name : undefined;
          if (edge) {
            const s = stats.get(`${d.name}>${edge}`) as { ping: number; bandwidth: number };
            transfer += s.ping + deviceOut / s.bandwidth;
            if (cloud) {
              const s2 = stats.get(`${edge}>${cloud}`) as { ping: number; bandwidth: number };
              transfer += s2.ping + edgeOut / s2.bandwidth;
            }
          } else if (cloud) {
            const s = stats.get(`${d.name}>${cloud}`) as { ping: number; bandwidth: number };
            transfer += s.ping + deviceOut / s.bandwidth;
          }
          const config = `${d.name} ${d0}-${d1} ${edge} ${e0}-${e1} ${cloud} ${c0}-${c1}`;
          seen.set(config, dt + et + ct + transfer);
        }
      }
    }
  }
  return [...seen.values()].sort((a, b) => a - b);
}

describe('cleave cost model', () => {
  it('adds one-way latency, the hop overhead, the return to the origin and the stage overhead', () => {
    const input = handInput({ costModel: 'cleave', options: { hopOverheadMs: 0.25 } });
    const r = enumeratePlans({ ...input, topN: 100 });
    const find = (s: string): Plan => r.plans.find((p) => stagesOf(p) === s) as Plan;
    // cloud alone: 12 + (100/2 + 0.25 + 750) + return over raspi4->6700k (reverse row missing):
    // 100/2 + 0.25 + 4000/200000 s = 70.25 ms  => 882.5 ms
    expect(find('6700k(GPU):0-3').latencyMs).toBeCloseTo(882.5, 9);
    // device 0, edge 1-2: 300 + (33.35 + 0.25 + 1000) + 100 + (33.35 + 0.25 + 20) = 1487.2 ms
    const de = find('raspi4:0-1,vm2Core:1-3');
    expect(de.latencyMs).toBeCloseTo(1487.2, 9);
    expect(de.hops.map((h) => h.kind)).toEqual(['forward', 'return']);
    expect(de.bottleneckMs).toBeCloseTo(1000.25, 9); // the first link: 200 kB at 200 kB/s + overhead
    expect(de.throughputRps).toBeCloseTo(1000 / 1000.25, 9);
    // device alone: no transfer at all.
    expect(find('raspi4:0-3').latencyMs).toBe(1200);
    // a stage that does not start at block 0 pays the host's run overhead
    const withOvh = enumeratePlans({
      ...input,
      topN: 100,
      hosts: input.hosts.map((h) => ({ ...h, stageOverheadMs: 5 })),
    });
    expect((withOvh.plans.find((p) => stagesOf(p) === 'raspi4:0-1,vm2Core:1-3') as Plan).latencyMs).toBeCloseTo(
      1492.2,
      9,
    );
    expect((withOvh.plans.find((p) => stagesOf(p) === '6700k(GPU):0-3') as Plan).latencyMs).toBeCloseTo(882.5, 9);
  });

  it("adds a host's frame cost to every hop into a stage on it, outside the origin tier, in latency only", () => {
    const input = handInput({ options: { hopOverheadMs: 0.25 } });
    const frameMs: Record<string, number> = { raspi4: 100, vm2Core: 7, '6700k(GPU)': 3 };
    const base = enumeratePlans({ ...input, topN: 100 });
    const withFrame = enumeratePlans({
      ...input,
      topN: 100,
      hosts: input.hosts.map((h) => ({ ...h, frameMs: frameMs[h.name] })),
    });
    expect(withFrame.plans.length).toBe(base.plans.length);
    for (const p of base.plans) {
      const q = withFrame.plans.find((x) => stagesOf(x) === stagesOf(p)) as Plan;
      // Each stage on a host past the origin tier was reached by a hop that now carries its host's frame cost.
      const extra = p.stages.filter((st) => st.host !== p.origin).reduce((a, st) => a + frameMs[st.host], 0);
      expect(q.latencyMs).toBeCloseTo(p.latencyMs + extra, 9);
      expect(q.bottleneckMs).toBeCloseTo(p.bottleneckMs, 9);
      // The result's return to the origin takes none (here it rides on the forward rows: no reverse link given).
      expect(q.hops.filter((h) => h.kind === 'return').map((h) => h.ms)).toEqual(
        p.hops.filter((h) => h.kind === 'return').map((h) => h.ms),
      );
    }
    expect(withFrame.plans.some((p) => p.stages.some((st) => st.host !== p.origin))).toBe(true);
    // Under Scission's model it is not counted.
    const sc = enumeratePlans({
      ...input,
      costModel: 'scission',
      topN: 100,
      hosts: input.hosts.map((h) => ({ ...h, frameMs: frameMs[h.name] })),
    });
    const sc0 = enumeratePlans({ ...input, costModel: 'scission', topN: 100 });
    expect(sc.plans.map((p) => p.latencyMs)).toEqual(sc0.plans.map((p) => p.latencyMs));
    expect(() => enumeratePlans({ ...input, hosts: input.hosts.map((h) => ({ ...h, frameMs: -1 })) })).toThrow(
      /frameMs -1: expected ms >= 0/,
    );
  });

  it("adds each stage's cut cost (cutMsPerByte x edge bytes / 2 per side, none at the model's input and output) to its compute", () => {
    // Interior cuts: after block 0 200 kB, after block 1 100 kB; the model's input and output are no cut.
    const cutMsPerByte = { raspi4: 1e-5, vm2Core: 1e-4, '6700k(GPU)': 2e-5 } as Record<string, number>;
    const input = handInput({ options: { hopOverheadMs: 0.25 } });
    const withCut: PlanInput = {
      ...input,
      hosts: input.hosts.map((h) => ({ ...h, cutMsPerByte: cutMsPerByte[h.name] })),
    };
    const r = enumeratePlans({ ...withCut, topN: 100 });
    const find = (s: string): Plan => r.plans.find((p) => stagesOf(p) === s) as Plan;
    // device 0, edge 1-2: raspi4 [0,1) 300 + 1e-5 x 200000 / 2 = 301; vm2Core [1,3) 100 + 1e-4 x (200000 + 0) / 2 = 110
    // => 1487.2 + 1 + 10 = 1498.2 ms; the bottleneck is still the first link.
    const de = find('raspi4:0-1,vm2Core:1-3');
    expect(de.stages.map((x) => x.computeMs)).toEqual([301, 110]);
    expect(de.computeMs).toBe(411);
    expect(de.latencyMs).toBeCloseTo(1498.2, 9);
    expect(de.bottleneckMs).toBeCloseTo(1000.25, 9);
    // device 0-1, edge 2: 700 + 0.5, hop 33.35 + 0.25 + 500, 60 + 5, return 33.35 + 0.25 + 20 => 1352.7 ms
    const de2 = find('raspi4:0-2,vm2Core:2-3');
    expect(de2.stages.map((x) => x.computeMs)).toEqual([700.5, 65]);
    expect(de2.latencyMs).toBeCloseTo(1352.7, 9);
    expect(de2.deviceComputeMs).toBe(700.5);
    // edge 0, cloud 1-2 (device uploads the input): 783.6 + (20 + 10) + 42.25 + (10 + 2) + 70.25 = 938.1 ms
    const ec = find('vm2Core:0-1,6700k(GPU):1-3');
    expect(ec.stages.map((x) => x.computeMs)).toEqual([30, 12]);
    expect(ec.latencyMs).toBeCloseTo(938.1, 9);
    // a single stage over the whole model pays no cut
    expect(find('6700k(GPU):0-3').latencyMs).toBeCloseTo(882.5, 9);
    expect(find('raspi4:0-3').latencyMs).toBe(1200);
    // it counts against compute caps: vm2Core [1,3) is 110 ms with its cuts, 100 ms without
    const cap: Constraint[] = [{ kind: 'maxCompute', tier: 'edge', ms: 105 }];
    const capped = plan({ ...withCut, constraints: cap, topN: 100 });
    expect(capped.plans.some((p) => stagesOf(p) === 'raspi4:0-1,vm2Core:1-3')).toBe(false);
    expect(
      plan({ ...input, constraints: cap, topN: 100 }).plans.some((p) => stagesOf(p) === 'raspi4:0-1,vm2Core:1-3'),
    ).toBe(true);
    // every search path agrees with enumeration
    for (const objective of ['latency', 'throughput'] as const) {
      for (const constraints of [[], cap, [{ kind: 'maxComputeShare', tier: 'edge', share: 0.2 }] as Constraint[]]) {
        const x = { ...withCut, objective, constraints, topN: 100, pareto: true };
        const a = plan(x);
        const b = enumeratePlans(x);
        expect(a.plans.map((p) => [stagesOf(p), p.latencyMs, p.bottleneckMs])).toEqual(
          b.plans.map((p) => [stagesOf(p), p.latencyMs, p.bottleneckMs]),
        );
        expect((a.pareto ?? []).map(stagesOf)).toEqual((b.pareto ?? []).map(stagesOf));
      }
    }
    // the scission model ignores it
    const sc = (h: PlanInput): number[] =>
      enumeratePlans({ ...h, costModel: 'scission', topN: 100 }).plans.map((p) => p.latencyMs);
    expect(sc(withCut)).toEqual(sc(input));
  });

  it('uses the reverse row for the return when the network gives one', () => {
    const links = [
      ...parseNetworkCsv(SCISSION_CSV, 'n.csv'),
      { from: '6700k(GPU)', to: 'raspi4', rttMs: 10, bytesPerSecond: 4e6 },
    ];
    const r = enumeratePlans({ ...handInput({ links }), topN: 100 });
    const p = r.plans.find((x) => stagesOf(x) === '6700k(GPU):0-3') as Plan;
    expect(p.hops[1]).toMatchObject({ from: '6700k(GPU)', to: 'raspi4', kind: 'return', bytes: 4000 });
    expect(p.hops[1].ms).toBeCloseTo(5 + 0.25 + 1, 9);
  });

  it('ranks throughput by the slowest stage or link, then latency', () => {
    const r = plan(handInput({ objective: 'throughput', topN: 3 }));
    const b = r.plans.map((p) => p.bottleneckMs);
    expect(b).toEqual([...b].sort((x, y) => x - y));
    expect(r.plans[0].throughputRps).toBeCloseTo(1000 / r.plans[0].bottleneckMs, 9);
  });
});

describe('constraints', () => {
  const base = handInput({ costModel: 'scission', topN: 50 });
  const all = (cs: Constraint[]): PlanResult => plan({ ...base, constraints: cs });

  it('block on / not on a tier', () => {
    for (const p of all([{ kind: 'blockOn', block: 1, tier: 'edge' }]).plans)
      expect(p.stages.some((s) => s.tier === 'edge' && s.start <= 1 && s.end > 1)).toBe(true);
    for (const p of all([{ kind: 'blockNotOn', block: 2, tier: 'cloud' }]).plans)
      expect(p.stages.some((s) => s.tier === 'cloud' && s.end > 2)).toBe(false);
  });

  it('tiers and hosts used or not', () => {
    for (const p of all([{ kind: 'useTier', tier: 'device' }]).plans) expect(p.stages[0].tier).toBe('device');
    for (const p of all([{ kind: 'noTier', tier: 'edge' }]).plans)
      expect(p.stages.every((s) => s.tier !== 'edge')).toBe(true);
    for (const p of all([{ kind: 'useHost', hosts: ['vm2Core'] }]).plans)
      expect(p.stages.some((s) => s.host === 'vm2Core')).toBe(true);
    for (const p of all([{ kind: 'noHost', host: '6700k(GPU)' }]).plans)
      expect(p.stages.every((s) => s.host !== '6700k(GPU)')).toBe(true);
  });

  it('upload, compute and weight caps', () => {
    for (const p of all([{ kind: 'maxUpload', tier: 'device', bytes: 120_000 }]).plans)
      expect(p.deviceBytesOut).toBeLessThanOrEqual(120_000);
    for (const p of all([{ kind: 'maxCompute', tier: 'device', ms: 300 }]).plans)
      expect(p.deviceComputeMs).toBeLessThanOrEqual(300);
    for (const p of all([{ kind: 'maxComputeShare', tier: 'edge', share: 0.5 }]).plans) {
      const edge = p.stages.find((s) => s.tier === 'edge')?.computeMs ?? 0;
      expect(edge).toBeLessThanOrEqual(0.5 * p.computeMs);
    }
    for (const p of all([{ kind: 'maxWeights', host: 'vm2Core', bytes: 3000 }]).plans) {
      expect(p.stages.filter((s) => s.host === 'vm2Core').reduce((a, s) => a + s.weightBytes, 0)).toBeLessThanOrEqual(
        3000,
      );
    }
  });

  it('combines constraints and uses branch and bound for shares', () => {
    const cs: Constraint[] = [
      { kind: 'useTier', tier: 'device' },
      { kind: 'maxComputeShare', tier: 'device', share: 0.9 },
      { kind: 'blockOn', block: 2, tier: 'cloud' },
    ];
    const r = plan({ ...base, constraints: cs });
    expect(r.search).toBe('branch-and-bound');
    const ref = enumeratePlans({ ...base, constraints: cs });
    expect(r.plans.map(stagesOf)).toEqual(ref.plans.map(stagesOf));
  });

  it('no plan: names the constraints that empty the set', () => {
    expectError(
      () =>
        plan({
          ...base,
          constraints: [
            { kind: 'noTier', tier: 'device', source: '-d "-1"' },
            { kind: 'maxUpload', tier: 'device', bytes: 1000, source: '--max-upload device=1kB' },
            { kind: 'useTier', tier: 'cloud', source: '--use-tier cloud' },
          ],
        }),
      'E_NO_PLAN',
      /no plan: --max-upload device=1kB, --use-tier cloud cannot all be met together/,
    );
    expectError(
      () => plan({ ...base, constraints: [{ kind: 'useHost', hosts: ['2500'], source: '-e "2500"' }] }),
      'E_BAD_INPUT',
      /-e "2500": unknown host '2500'/,
    );
    expectError(
      () =>
        plan({
          ...base,
          constraints: [
            { kind: 'blockOn', block: 0, tier: 'edge', source: '--block-on 0=edge' },
            { kind: 'blockOn', block: 0, tier: 'cloud', source: '--block-on 0=cloud' },
          ],
        }),
      'E_NO_PLAN',
      /--block-on 0=edge, --block-on 0=cloud cannot all be met together/,
    );
    expectError(
      () =>
        plan({
          ...base,
          constraints: [
            { kind: 'maxCompute', tier: 'cloud', ms: 1 },
            { kind: 'useTier', tier: 'cloud' },
          ],
        }),
      'E_NO_PLAN',
      /--max-compute cloud=0.001s, --use-tier cloud/,
    );
  });

  it('block index out of range names the flag', () => {
    expectError(
      () => plan({ ...base, constraints: parseConstraintFlag('--block-on', '7=edge') }),
      'E_BAD_INPUT',
      /--block-on 7=edge: block 7 is out of range \(the model has blocks 0..2\)/,
    );
    expectError(
      () => plan({ ...base, constraints: parseScissionCriteria('-c', 'cloud', '30,!cloud1') }),
      'E_BAD_INPUT',
      /-c "30": block 30 is out of range/,
    );
  });
});

describe('criteria and flags', () => {
  it("parses Scission's criteria", () => {
    expect(parseScissionCriteria('-d', 'device', '3,!10,raspi4')).toEqual([
      { kind: 'blockOn', block: 3, tier: 'device', source: '-d "3"' },
      { kind: 'blockNotOn', block: 10, tier: 'device', source: '-d "!10"' },
      { kind: 'useHost', hosts: ['raspi4'], source: '-d "raspi4"' },
    ]);
    expect(parseScissionCriteria('-e', 'edge', '-1')).toEqual([{ kind: 'noTier', tier: 'edge', source: '-e "-1"' }]);
    expect(parseScissionCriteria('-e', 'edge', '!-1')).toEqual([{ kind: 'useTier', tier: 'edge', source: '-e "!-1"' }]);
    expect(parseScissionCriteria('-c', 'cloud', '30,!cloud1')[1]).toEqual({
      kind: 'noHost',
      host: 'cloud1',
      source: '-c "!cloud1"',
    });
    expectError(() => parseScissionCriteria('-d', 'device', '3,,4'), 'E_BAD_INPUT', /-d: '3,,4' has an empty item/);
  });

  it('parses long flags', () => {
    expect(parseConstraintFlag('--max-upload', 'edge=2MB')).toEqual([
      { kind: 'maxUpload', tier: 'edge', bytes: 2e6, source: '--max-upload edge=2MB' },
    ]);
    expect(parseConstraintFlag('--max-compute', 'device=30%')[0]).toMatchObject({
      kind: 'maxComputeShare',
      share: 0.3,
    });
    expect(parseConstraintFlag('--max-compute', 'device=0.5s')[0]).toMatchObject({ kind: 'maxCompute', ms: 500 });
    expect(parseConstraintFlag('--max-compute', 'device=20ms')[0]).toMatchObject({ kind: 'maxCompute', ms: 20 });
    expect(parseConstraintFlag('--max-weights', 'raspi4=1.5MiB')[0]).toMatchObject({
      kind: 'maxWeights',
      host: 'raspi4',
      bytes: 1572864,
    });
    expect(parseConstraintFlag('--block-on', '2-4=edge').map((c) => (c as { block: number }).block)).toEqual([2, 3, 4]);
    expect(parseSize('150kB', '--input-bytes')).toBe(150_000);
    expectError(
      () => parseConstraintFlag('--max-compute', 'device=fast'),
      'E_BAD_INPUT',
      /--max-compute: 'fast' is not a limit/,
    );
    expectError(
      () => parseConstraintFlag('--max-upload', 'edge'),
      'E_BAD_INPUT',
      /--max-upload: 'edge': expected NAME=VALUE/,
    );
  });
});

describe('network CSV', () => {
  it("reads Scission's file unchanged: header, padding, Mbps = 10^6 bit/s", () => {
    const links = parseNetworkCsv(SCISSION_CSV, 'n.csv');
    expect(links).toHaveLength(8);
    expect(links[0]).toEqual({ from: 'raspi4', to: '2500', rttMs: 66.7, bytesPerSecond: 200_000, row: 2 });
    expect(parseNetworkCsv('a,b,1,8\n', 'n.csv')[0].bytesPerSecond).toBe(1e6); // no header
  });

  it('names the file and row of a malformed row', () => {
    expectError(
      () => parseNetworkCsv('source,destination,ping(ms),bandwidth(mbps)\na,b,1,2\na,c,x,2\n', 'net.csv'),
      'E_BAD_NETWORK',
      /^net.csv:3: ping 'x'/,
    );
    expectError(() => parseNetworkCsv('a,b,1\n', 'net.csv'), 'E_BAD_NETWORK', /^net.csv:1: 3 fields/);
    expectError(() => parseNetworkCsv('a,b,1,0\n', 'net.csv'), 'E_BAD_NETWORK', /^net.csv:1: bandwidth '0'/);
    expectError(
      () => parseNetworkCsv('a,b,1,2\n\na,b,3,4\n', 'net.csv'),
      'E_BAD_NETWORK',
      /^net.csv:3: a second row for a -> b \(first at row 1\)/,
    );
  });

  it('a missing link is an error naming the hosts', () => {
    const links = parseNetworkCsv(SCISSION_CSV, 'n.csv').filter((l) => !(l.from === 'raspi4' && l.to === '6700k(GPU)'));
    expectError(() => plan(handInput({ links })), 'E_BAD_NETWORK', /no link from 'raspi4' to '6700k\(GPU\)'/);
    expect(
      plan(handInput({ links, options: { missingLinks: 'skip' }, topN: 50 })).plans.every(
        (p) => !(p.stages[0].host === '6700k(GPU)'),
      ),
    ).toBe(true);
  });
});

describe('output', () => {
  it('formats plans as Scission does, with details', () => {
    const r = plan(handInput({ costModel: 'scission', pareto: true }));
    const text = formatResult(r, { title: 'toy' });
    expect(text).toContain('[1] 0.862s - 0.15MB - Device(raspi4) = none, Cloud(6700k(GPU)) = 0 - 2');
    expect(text).toContain('Pareto set');
    expect(r.pareto?.length).toBeGreaterThan(0);
  });

  it('draws a self-contained SVG', () => {
    const input = handInput();
    const r = plan(input);
    const svg = planSvg(input, r.plans[0], { title: 'a <b> & "c"', blockNames: ['x<y', 'b', 'c'] });
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    expect(svg).toContain('a &lt;b&gt; &amp; &quot;c&quot;');
    expect(svg).not.toMatch(/<script|href=/);
    expect((svg.match(/<rect [^>]*fill="#1f77b4"><title>/g) ?? []).length).toBe(3); // three cloud blocks
  });
});

describe('validation', () => {
  it('rejects a bad PlanInput with the field named', () => {
    expectError(() => plan(handInput({ frontierBytes: [1, -2, 3] })), 'E_BAD_INPUT', /frontierBytes\[1\] = -2/);
    expectError(
      () => plan(handInput({ hosts: [{ name: 'raspi4', tier: 'device', blockMs: [1, 2] }] })),
      'E_BAD_INPUT',
      /host 'raspi4' has 2 block times, the model has 3 blocks/,
    );
    expectError(
      () => plan(handInput({ hosts: [{ name: 'x', tier: 'fog', blockMs: [1, 2, 3] }] })),
      'E_BAD_INPUT',
      /tier 'fog', which is not in the tier chain/,
    );
    expectError(
      () => plan(handInput({ hosts: [{ name: 'x', tier: 'edge', blockMs: [1, 2, 3] }] })),
      'E_BAD_INPUT',
      /no host in the origin tier 'device'/,
    );
    expectError(
      () => plan(handInput({ hosts: [{ name: 'raspi4', tier: 'device', blockMs: [1, 2, 3], cutMsPerByte: -1e-6 }] })),
      'E_BAD_INPUT',
      /host 'raspi4' cutMsPerByte -0.000001: expected ms per byte >= 0/,
    );
    expectError(
      () => plan(handInput({ hosts: [{ name: 'raspi4', tier: 'device', blockMs: [1, 2, 3], cutMsPerByte: NaN }] })),
      'E_BAD_INPUT',
      /cutMsPerByte NaN/,
    );
  });
});

describe('wire codecs per hop', () => {
  // Two blocks; the device is slow, the edge fast; a 1 MB input, 2 MB after block 0, a 10-byte output.
  const base = (bytesPerSecond: number, extra: Partial<PlanInput> = {}): PlanInput => ({
    tiers: ['device', 'edge'],
    hosts: [
      {
        name: 'dev',
        tier: 'device',
        blockMs: [2000, 2000],
        codecMsPerByte: { int8: { encode: 1e-5, decode: 0 }, brotli: { encode: 2e-5, decode: 1e-5 } },
      },
      {
        name: 'edg',
        tier: 'edge',
        blockMs: [5, 5],
        codecMsPerByte: { int8: { encode: 1e-5, decode: 1e-6 }, brotli: { encode: 2e-5, decode: 1e-5 } },
      },
    ],
    links: [{ from: 'dev', to: 'edg', rttMs: 2, bytesPerSecond }],
    frontierBytes: [2_000_000, 10],
    inputBytes: 1_000_000,
    outputBytes: 10,
    codecs: [
      { name: 'int8', ratio: [0.25, 0.25, 0.25], error: [0.004, null, 0] },
      { name: 'brotli', ratio: [0.7, 0.5, 1] },
    ],
    maxError: 0.01,
    ...extra,
  });
  const best = (input: PlanInput): Plan => plan(input).plans[0];

  it('a slow link takes the codec that makes the hop fastest, and prices it', () => {
    // 1 MB at 1 MB/s: raw 1000 ms, brotli 700 + 30 ms, int8 250 + 11 ms.
    const p = best(base(1e6));
    expect(stagesOf(p)).toBe('edg:0-2');
    const hop = p.hops.find((h) => h.kind === 'forward')!;
    expect(hop).toMatchObject({ codec: 'int8', bytes: 250_000, rawBytes: 1_000_000 });
    expect(hop.ms).toBeCloseTo(1 + 0.25 + 250 + 10 + 1, 6);
    expect(p.deviceBytesOut).toBe(250_000);
  });

  it('a fast link keeps the tensors raw: coding would cost more than it saves', () => {
    const p = best(
      base(1e10, { hosts: base(1e10).hosts.map((h) => (h.name === 'dev' ? { ...h, blockMs: [1e3, 1e3] } : h)) }),
    );
    expect(p.hops.find((h) => h.kind === 'forward')?.codec).toBe('raw');
  });

  it('a lossy codec only within the error budget, and only where its error was measured', () => {
    expect(best(base(1e6, { maxError: 0 })).hops[0].codec).toBe('brotli');
    expect(best(base(1e6, { maxError: 0.003 })).hops[0].codec).toBe('brotli');
    // Cut after block 0 (int8 unmeasured there): only brotli may carry it.
    const pinned = plan({
      ...base(1e6),
      constraints: [
        { kind: 'blockOn', block: 0, tier: 'device' },
        { kind: 'blockOn', block: 1, tier: 'edge' },
      ],
    });
    expect(pinned.plans[0].hops[0]).toMatchObject({ codec: 'brotli', rawBytes: 2_000_000 });
  });

  it(`a codec must cut the hop's time by CODEC_MIN_GAIN (${CODEC_MIN_GAIN * 100} %) to be chosen over raw`, () => {
    // 1 MB at 1 MB/s, lossless only: raw 1000 ms; brotli at ratio r costs 1000 r + 30 ms.
    const withBrotli = (r: number): PlanInput =>
      base(1e6, { maxError: 0, codecs: [{ name: 'brotli', ratio: [r, 0.5, 1] }] });
    expect(best(withBrotli(0.95)).hops[0]).toMatchObject({ codec: 'raw', bytes: 1_000_000 }); // saves 2 %
    expect(best(withBrotli(0.85)).hops[0]).toMatchObject({ codec: 'brotli', bytes: 850_000 }); // saves 12 %
    // Where raw is over the upload cap, any codec that fits is taken, however little it saves.
    const cap: Constraint = { kind: 'maxUpload', tier: 'device', bytes: 960_000 };
    expect(best({ ...withBrotli(0.95), constraints: [cap] }).hops[0]).toMatchObject({ codec: 'brotli' });
  });

  it('a host with no figure for a codec never sends or receives in it', () => {
    const hosts = base(1e6).hosts.map((h) =>
      h.name === 'edg' ? { ...h, codecMsPerByte: { brotli: { encode: 0, decode: 1e-5 } } } : h,
    );
    expect(best(base(1e6, { hosts })).hops[0].codec).toBe('brotli');
  });

  it('an upload cap the raw tensors break can be met by a codec', () => {
    const cap: Constraint = { kind: 'maxUpload', tier: 'device', bytes: 300_000 };
    const p = best(
      base(1e9, {
        constraints: [cap],
        hosts: base(1e9).hosts.map((h) => ({ ...h, blockMs: h.name === 'dev' ? [1e4, 1e4] : [5, 5] })),
      }),
    );
    expect(p.hops[0]).toMatchObject({ codec: 'int8', bytes: 250_000 });
    expect(enumeratePlans({ ...base(1e9), constraints: [cap] }).plans[0].hops[0].bytes).toBeLessThanOrEqual(300_000);
  });

  it('the scission cost model ignores codecs; bad codec input is named', () => {
    expect(best(base(1e6, { costModel: 'scission' })).hops[0].codec).toBe('raw');
    expectError(
      () => plan(base(1e6, { codecs: [{ name: 'int8', ratio: [0.25] }] })),
      'E_BAD_INPUT',
      /codecs\[0\] \(int8\)\.ratio: expected 3 entries/,
    );
    expectError(
      () => plan(base(1e6, { codecs: [{ name: 'raw', ratio: [1, 1, 1] }] })),
      'E_BAD_INPUT',
      /'raw' is always offered/,
    );
    expectError(() => plan(base(1e6, { codecs: [{ name: 'x', ratio: [0, 1, 1] }] })), 'E_BAD_INPUT', /ratio\[0\] = 0/);
    expectError(() => plan(base(1e6, { maxError: -1 })), 'E_BAD_INPUT', /maxError/);
  });
});
