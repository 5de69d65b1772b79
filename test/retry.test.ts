/**
 * The origin's one retry of a request whose route lost a host (host/retry.ts), with a scripted pipeline and
 * plan source: retried on the next plan whose hosts are up, never on a pinned one, never for other errors.
 */
import pino from 'pino';
import { describe, expect, it, vi } from 'vitest';
import { CleaveError } from '../src/errors.js';
import type { TensorLike } from '../src/runtime/executor/tensors.js';
import type { Routed } from '../src/runtime/host/pipeline.js';
import { inferRetrying, type RetryDeps } from '../src/runtime/host/retry.js';

const log = pino({ level: 'silent' });
const OUT: Record<string, TensorLike> = { y: { dtype: 'float32', dims: [1], data: new Float32Array([1]) } };
const plan = (epoch: number, ...hosts: string[]): Routed & { pinned?: boolean } => ({
  epoch,
  route: hosts.map((host, i) => ({ host, tier: host, from: i, to: i + 1 })),
});
const gone = new CleaveError('E_PEER_GONE', 'request x: the link to edge, on its route, dropped');

function deps(o: Partial<RetryDeps> & { infer: RetryDeps['infer'] }): RetryDeps {
  return { current: () => null, runnable: () => true, retryWaitMs: 500, log, ...o };
}

describe('inferRetrying', () => {
  it('runs a request that lost a host once more, on the plan adopted around it, within the deadline left', async () => {
    const first = plan(3, 'device', 'edge');
    let current: Routed = first;
    const infer = vi.fn(async (p: Routed, _inputs: Record<string, TensorLike>, _ms: number) => {
      if (p.epoch === 3) throw gone;
      return OUT;
    });
    setTimeout(() => (current = plan(4, 'device', 'cloud')), 60);
    const out = await inferRetrying(
      deps({ infer, current: () => current, runnable: (p) => p.route.every((s) => s.host !== 'edge') }),
      first,
      {},
      5000,
    );
    expect(out).toBe(OUT);
    expect(infer.mock.calls.map((c) => c[0].epoch)).toEqual([3, 4]);
    expect(infer.mock.calls[1][2]).toBeLessThan(5000);
    expect(infer.mock.calls[1][2]).toBeGreaterThan(4000);
  });

  it('skips a new plan that still runs through a host that is down', async () => {
    const first = plan(3, 'device', 'edge');
    let current: Routed = plan(4, 'device', 'edge');
    setTimeout(() => (current = plan(5, 'device')), 60);
    const infer = vi.fn(async (p: Routed) => {
      if (p.epoch !== 5) throw gone;
      return OUT;
    });
    await inferRetrying(
      deps({ infer, current: () => current, runnable: (p) => p.route.every((s) => s.host !== 'edge') }),
      first,
      {},
      5000,
    );
    expect(infer.mock.calls.map((c) => c[0].epoch)).toEqual([3, 5]);
  });

  it('answers the error when no plan comes within retryWaitMs, or the plan is pinned, or the second try fails', async () => {
    const first = plan(3, 'device', 'edge');
    const t0 = Date.now();
    const never = vi.fn(async () => Promise.reject(gone));
    await expect(inferRetrying(deps({ infer: never, current: () => first }), first, {}, 5000)).rejects.toBe(gone);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(450);
    expect(never).toHaveBeenCalledTimes(1);

    const pinned = { ...first, pinned: true };
    const t1 = Date.now();
    await expect(inferRetrying(deps({ infer: never, current: () => pinned }), first, {}, 5000)).rejects.toBe(gone);
    expect(Date.now() - t1).toBeLessThan(100); // nothing to wait for

    const twice = vi.fn(async () => Promise.reject(gone));
    await expect(inferRetrying(deps({ infer: twice, current: () => plan(4, 'device') }), first, {}, 5000)).rejects.toBe(
      gone,
    );
    expect(twice).toHaveBeenCalledTimes(2);
  });

  it('never retries other errors, nor with retryWaitMs 0', async () => {
    const bad = new CleaveError('E_BAD_INPUT', 'no');
    const infer = vi.fn(async () => Promise.reject(bad));
    await expect(
      inferRetrying(deps({ infer, current: () => plan(4, 'device') }), plan(3, 'device'), {}, 5000),
    ).rejects.toBe(bad);
    const lost = vi.fn(async () => Promise.reject(gone));
    await expect(
      inferRetrying(
        deps({ infer: lost, current: () => plan(4, 'device'), retryWaitMs: 0 }),
        plan(3, 'device'),
        {},
        5000,
      ),
    ).rejects.toBe(gone);
    expect(infer).toHaveBeenCalledTimes(1);
    expect(lost).toHaveBeenCalledTimes(1);
  });
});
