/**
 * A sample of the fuzz suite (test/helpers/fuzz.ts; `npm run fuzz` runs 10,000 of each): generated HTTP
 * bodies at the inference and control endpoints and generated peer frames at the edge, against a real
 * three-host deployment whose pinned route runs through the edge. No 5xx for bad input, every error a JSON
 * body, no host down, and a valid request still answers with ORT's output.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fuzzFrames, fuzzHttp, startFuzzTarget, type FuzzTarget } from './helpers/fuzz.js';

const RUNS = Number(process.env.CLEAVE_FUZZ_RUNS ?? 300);
let t: FuzzTarget;

beforeAll(async () => {
  t = await startFuzzTarget();
}, 120_000);

afterAll(async () => {
  await t?.d.close();
});

describe(`fuzz (${RUNS} of each)`, () => {
  it('generated HTTP bodies: never a 500, always a JSON error, the next valid request right', async () => {
    const r = await fuzzHttp(t, { runs: RUNS, seed: 42 });
    expect(r.failures).toEqual([]);
    expect(r.cases).toBe(RUNS);
    // The sample reaches the parsers, not just the front door.
    expect(Object.keys(r.byStatus)).toContain('400');
  }, 120_000);

  it('generated peer frames at the edge: refused or run, the edge stays up, the next valid request right', async () => {
    const r = await fuzzFrames(t, { runs: RUNS, seed: 7 });
    expect(r.failures).toEqual([]);
    expect(r.cases).toBe(RUNS);
    expect(r.byStatus['close 4400']).toBeGreaterThan(0);
  }, 120_000);
});
