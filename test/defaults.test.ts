import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { checkConfig } from '../src/runtime/config.js';
import { DEFAULT_LIMITS, LIMITS, resolveLimits } from '../src/runtime/defaults.js';
import { withLimits } from '../scripts/readme-limits.js';

describe('runtime limits', () => {
  it("the README's Limits table is the one generated from src/runtime/defaults.ts", () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    expect(withLimits(readme)).toBe(readme);
    for (const k of Object.keys(LIMITS)) expect(readme).toContain(`| \`${k}\` |`);
  });

  it('fills in defaults and keeps what is given', () => {
    expect(resolveLimits({})).toEqual(DEFAULT_LIMITS);
    expect(resolveLimits({ maxInFlight: 3, deadlineMs: 1.5 })).toMatchObject({
      maxInFlight: 3,
      deadlineMs: 1.5,
      sessionCache: LIMITS.sessionCache.default,
    });
  });

  it.each([
    [{ maxInFlit: 3 }, /limits\.maxInFlit: unknown limit/],
    [{ maxInFlight: 0 }, /limits\.maxInFlight: must be an integer >= 1, got 0/],
    [{ maxInFlight: 2.5 }, /limits\.maxInFlight: must be an integer/],
    [{ deadlineMs: '30' }, /limits\.deadlineMs: must be a number >= 1, got "30"/],
    [{ warmupRuns: -1 }, /limits\.warmupRuns: must be an integer >= 0/],
  ])('refuses %j naming the limit', (input, message) => {
    expect(() => resolveLimits(input as never)).toThrow(message);
  });

  it('a deployment config with a bad limit is refused naming it', () => {
    const good = { model: 'm', hosts: [{ name: 'd', tier: 'device', listen: '127.0.0.1:1' }] };
    expect(checkConfig({ ...good, limits: { maxInFlight: 4 } }).limits).toEqual({ maxInFlight: 4 });
    expect(() => checkConfig({ ...good, limits: { sessionCache: 'many' } })).toThrow(
      /config: limits\.sessionCache: must be an integer >= 1/,
    );
    expect(() => checkConfig({ ...good, limits: [1] })).toThrow(/config: limits must be an object/);
  });
});
