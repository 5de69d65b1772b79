import { describe, expect, it } from 'vitest';
import { checkHeartbeat } from '../src/runtime/host/heartbeat.js';

const good = {
  type: 'heartbeat',
  host: 'edge',
  tier: 'edge',
  cpuPercent: 12.5,
  quotaCpus: 1,
  throttledMs: null,
  threads: 1,
  queueDepth: 0,
  inFlight: 0,
  busy: 1,
  segments: [{ from: 0, to: 10, meanMs: 3.2, runs: 7, ageMs: 120 }],
  links: [
    {
      from: 'edge',
      to: 'cloud',
      rttMs: 20,
      throughputBps: 1.2e7,
      rttRecentMs: 19.5,
      throughputRecentBps: null,
      state: 'open',
      bytesSent: 1,
      queuedBytes: 0,
      emulation: null,
    },
  ],
};

describe('checkHeartbeat', () => {
  it('takes a well-formed heartbeat from the host it names', () => {
    expect(checkHeartbeat(good, 'edge')).toMatchObject({ host: 'edge', segments: [{ meanMs: 3.2 }] });
    expect(checkHeartbeat({ ...good, frameCpuMs: 1.25 }, 'edge').frameCpuMs).toBe(1.25);
    expect(checkHeartbeat({ ...good, frameCpuMs: null }, 'edge').frameCpuMs).toBeNull();
  });

  it.each([
    [{ ...good, host: 'cloud' }, /heartbeat from edge: host is 'cloud', not the sender/],
    [{ ...good, cpuPercent: '12' }, /cpuPercent is not a number or null/],
    [{ ...good, queueDepth: -1 }, /queueDepth is not a number >= 0/],
    [{ ...good, frameCpuMs: -0.5 }, /frameCpuMs is not a number >= 0 or null/],
    [{ ...good, frameCpuMs: '1' }, /frameCpuMs is not a number >= 0 or null/],
    [{ ...good, segments: {} }, /segments is not a list/],
    [{ ...good, segments: [{ ...good.segments[0], from: 1.5 }] }, /segments\[0\]\.from is not an integer >= 0/],
    [{ ...good, segments: [{ ...good.segments[0], meanMs: Infinity }] }, /segments\[0\]\.meanMs is not a number >= 0/],
    [
      { ...good, links: [{ ...good.links[0], from: 'device' }] },
      /links\[0\]\.from is 'device': a host reports its own links only/,
    ],
    [{ ...good, links: [{ ...good.links[0], rttRecentMs: 'x' }] }, /links\[0\]\.rttRecentMs is not a number or null/],
    [
      { ...good, links: [{ ...good.links[0], rttLeastRecentMs: 'x' }] },
      /links\[0\]\.rttLeastRecentMs is not a number or null/,
    ],
    [[], /body is not a map/],
  ])('refuses %j with E_BAD_FRAME naming the field', (body, message) => {
    expect(() => checkHeartbeat(body, 'edge')).toThrow(message);
    try {
      checkHeartbeat(body, 'edge');
    } catch (e) {
      expect((e as { code?: string }).code).toBe('E_BAD_FRAME');
    }
  });
});
