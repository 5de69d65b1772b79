/**
 * The profiler on a small zoo model, and its calibration on synthetic numbers. No assertion depends on
 * how fast this machine is: only on the profile's shape and on sums the calibration makes exact.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { OnnxModel } from '../src/graph/model.js';
import { resolveInputs } from '../src/graph/shapes.js';
import { zooEntry } from '../src/graph/zoo/index.js';
import { parseProfile, type Profile } from '../src/planner/profile.js';
import { analyze, modelFrameBytes, type Analysis } from '../src/runtime/local/analysis.js';
import { calibrate, chunkBounds, profileModel } from '../src/runtime/local/profiler.js';

const hostInfo = { cpu: 'test cpu', cores: 2, memoryBytes: 1 << 30 };
const sum = (xs: readonly number[]): number => xs.reduce((s, x) => s + x, 0);

describe('profileModel on mobilenetv2-small', () => {
  let a: Analysis;
  let profile: Profile;
  let uniform: Profile;

  beforeAll(async () => {
    const model = OnnxModel.fromBytes(zooEntry('mobilenetv2')!.build({ small: true }).toBytes(), 'mobilenetv2-small');
    a = await analyze(model, resolveInputs(model, new Map()));
    profile = await profileModel(a, { host: 'h1', tier: 'edge', repeats: 3, warmup: 1, threads: 1, hostInfo });
    uniform = await profileModel(a, {
      host: 'h1',
      tier: 'edge',
      repeats: 3,
      warmup: 1,
      threads: 1,
      hostInfo,
      chunks: 1,
    });
  });

  it('writes a profile the planner accepts', () => {
    expect(a.blocks.length).toBeGreaterThan(10);
    for (const p of [profile, uniform]) {
      const parsed = parseProfile(JSON.parse(JSON.stringify(p)), 'profile.json');
      expect(parsed.timings.blocks).toHaveLength(a.blocks.length);
      expect(parsed.model.blocks).toHaveLength(a.blocks.length);
      expect(parsed.host).toMatchObject({ name: 'h1', tier: 'edge', threads: 1, cpu: 'test cpu' });
    }
    if (profile.timings.cutMsPerByte !== undefined) expect(profile.timings.cutMsPerByte).toBeGreaterThan(0);
    expect(uniform.timings.cutMsPerByte).toBeUndefined();
  });

  it('calibrated block medians sum to the whole model (blocks rounded to 0.1 us each)', () => {
    for (const p of [profile, uniform]) {
      const total = sum(p.timings.blocks.map((b) => b.medianMs));
      const whole = p.timings.wholeModelMs.medianMs;
      expect(Math.abs(total - whole)).toBeLessThanOrEqual(Math.max(0.01 * whole, a.blocks.length * 5e-5 + 1e-4));
    }
  });

  it('every block time is finite and >= 0, p90 too', () => {
    for (const p of [profile, uniform]) {
      for (const b of p.timings.blocks) {
        for (const x of [b.medianMs, b.p90Ms, b.rawMedianMs ?? 0]) {
          expect(Number.isFinite(x)).toBe(true);
          expect(x).toBeGreaterThanOrEqual(0);
        }
      }
    }
  });

  it("a host's frame limit is twice the model's largest frontier plus 1 MiB, at least 4 MiB", () => {
    const most = Math.max(a.inputBytes, a.outputBytes, ...a.blocks.map((b) => b.after.bytes ?? 0));
    expect(most).toBeGreaterThan(a.outputBytes); // an inner frontier or the input is the largest
    expect(modelFrameBytes(a)).toBe(Math.max(4 << 20, 2 * most + (1 << 20)));
    const huge = { ...a, inputBytes: 100 << 20 };
    expect(modelFrameBytes(huge)).toBe(201 << 20);
    const unknown = { ...a, blocks: [{ ...a.blocks[0], after: { ...a.blocks[0].after, bytes: undefined } }] };
    expect(modelFrameBytes(unknown)).toBeUndefined();
  });
});

describe('chunkBounds', () => {
  it('covers the blocks with contiguous chunks that never start at a folded block', () => {
    const net = Array.from({ length: 50 }, (_, i) => (i % 3 === 1 ? 0 : 1 + (i % 7)));
    const folded = net.map((x) => x === 0);
    for (const k of [1, 2, 5, 16, 100]) {
      const c = chunkBounds(net, folded, k);
      expect(c[0][0]).toBe(0);
      expect(c[c.length - 1][1]).toBe(net.length);
      for (let j = 0; j < c.length; j++) {
        expect(c[j][1]).toBeGreaterThan(c[j][0]);
        if (j > 0) {
          expect(c[j][0]).toBe(c[j - 1][1]);
          expect(folded[c[j][0]]).toBe(false);
        }
      }
      expect(c.length).toBeLessThanOrEqual(Math.max(k, 1));
    }
    expect(chunkBounds(net, folded, 5)).toHaveLength(5);
  });

  it('makes chunks of about equal time', () => {
    const net = Array.from({ length: 400 }, () => 1);
    const c = chunkBounds(
      net,
      net.map(() => false),
      8,
    );
    expect(c.map(([lo, hi]) => hi - lo)).toEqual(Array.from({ length: 8 }, () => 50));
  });
});

describe('calibrate', () => {
  it('recovers block times and the per-byte cut cost from synthetic fused chunk times', () => {
    // True fused block times t; a chunk alone pays one overhead and perByte/2 per byte at each inner edge.
    const t = [0.5, 1, 2, 0.25, 1.5, 3, 0.75, 1];
    const bytes = [100, 200, 300, 400, 500, 600, 700, 800].map((b) => b * 1000);
    const overhead = 0.01;
    const perByte = 2e-6;
    const chunks: [number, number][] = [
      [0, 3],
      [3, 5],
      [5, 8],
    ];
    const whole = sum(t) + overhead;
    const edge = (c: number): number => (c > 0 && c < t.length ? bytes[c - 1] : 0);
    const chunkMs = chunks.map(([lo, hi]) => sum(t.slice(lo, hi)) + overhead + (perByte / 2) * (edge(lo) + edge(hi)));
    // Blocks alone are slower by a factor that differs per chunk: only their ratios within a chunk are used.
    const net = t.map((x, i) => x * (i < 3 ? 1.7 : i < 5 ? 1.2 : 2.5));
    const r = calibrate(net, chunks, chunkMs, bytes, whole, overhead);
    expect(r.cutMsPerByte).toBeCloseTo(perByte, 10);
    r.blockMs.forEach((x, i) => expect(x).toBeCloseTo(t[i], 9));
    expect(sum(r.blockMs) + overhead).toBeCloseTo(whole, 9);
  });

  it('with one chunk scales the blocks uniformly to the whole model', () => {
    const net = [1, 0, 3, 4];
    const r = calibrate(net, [[0, 4]], [10], [1, 2, 3, 4], 4.2, 0.2);
    expect(r.cutMsPerByte).toBeUndefined();
    expect(r.blockMs).toEqual([0.5, 0, 1.5, 2]);
  });

  it('stays exact and non-negative when noise makes chunks sum to less than the whole model', () => {
    const net = [1, 2, 3, 4];
    const r = calibrate(
      net,
      [
        [0, 2],
        [2, 4],
      ],
      [1, 2],
      [10, 20, 30, 40],
      5,
      0.01,
    );
    expect(r.cutMsPerByte).toBeUndefined();
    for (const x of r.blockMs) expect(x).toBeGreaterThanOrEqual(0);
    expect(sum(r.blockMs) + 0.01).toBeCloseTo(5, 9);
  });
});
