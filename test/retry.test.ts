/**
 * The origin's second attempts at a request (host/retry.ts), with a scripted pipeline and plan source: one
 * retry of a request whose route lost a host, on the next plan whose hosts are up, never on a pinned one, never
 * for other errors; and one hedge of a request stranded on a plan that was replaced, the first answer winning.
 */
import pino from 'pino';
import { describe, expect, it, vi } from 'vitest';
import { CleaveError } from '../src/errors.js';
import type { TensorLike } from '../src/runtime/executor/tensors.js';
import type { Routed } from '../src/runtime/host/pipeline.js';
import { MAX_HEDGES } from '../src/runtime/defaults.js';
import { forwardLinks, inferRetrying, retrying, type RetryDeps } from '../src/runtime/host/retry.js';

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
    const kinds: string[] = [];
    const out = await inferRetrying(
      deps({
        infer,
        current: () => current,
        runnable: (p) => p.route.every((s) => s.host !== 'edge'),
        onSecondAttempt: (k) => kinds.push(k),
      }),
      first,
      {},
      5000,
    );
    expect(out).toBe(OUT);
    expect(kinds).toEqual(['retry']);
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

/** A promise settled by hand. */
function later<T>(): { promise: Promise<T>; resolve(v: T): void; reject(e: unknown): void } {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('hedging a request stranded on a replaced plan', () => {
  const HEDGED: Record<string, TensorLike> = { y: { dtype: 'float32', dims: [1], data: new Float32Array([2]) } };

  it('runs it on the plan in force once hedgeAfterMs has passed, and the hedge answers first', async () => {
    const first = plan(3, 'device', 'edge');
    let current: Routed = first;
    const stuck = later<Record<string, TensorLike>>();
    const infer = vi.fn(async (p: Routed, _inputs: Record<string, TensorLike>, _ms: number) =>
      p.epoch === 3 ? stuck.promise : HEDGED,
    );
    setTimeout(() => (current = plan(4, 'device', 'cloud')), 20);
    const t0 = Date.now();
    const kinds: string[] = [];
    const out = await inferRetrying(
      deps({ infer, current: () => current, hedgeAfterMs: 60, onSecondAttempt: (k) => kinds.push(k) }),
      first,
      {},
      5000,
    );
    expect(out).toBe(HEDGED);
    expect(kinds).toEqual(['hedge']);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(55);
    expect(infer.mock.calls.map((c) => c[0].epoch)).toEqual([3, 4]);
    // The hedge has what is left of the request's deadline.
    expect(infer.mock.calls[1][2]).toBeLessThanOrEqual(5000 - 55);
    stuck.resolve(OUT); // the stranded answer comes later and changes nothing
  });

  it("does not hedge while the plan in force is the request's own, nor with hedgeAfterMs 0", async () => {
    const own = plan(3, 'device', 'edge');
    const slow = vi.fn(async () => sleep(250).then(() => OUT));
    expect(await inferRetrying(deps({ infer: slow, current: () => own, hedgeAfterMs: 30 }), own, {}, 5000)).toBe(OUT);
    expect(slow).toHaveBeenCalledTimes(1);
    const moved = plan(4, 'device');
    expect(await inferRetrying(deps({ infer: slow, current: () => moved, hedgeAfterMs: 0 }), own, {}, 5000)).toBe(OUT);
    expect(slow).toHaveBeenCalledTimes(2);
  });

  it('does not hedge on a plan that still sends over one of its links: the hedge would queue behind it', async () => {
    const first = plan(3, 'device', 'edge', 'cloud');
    const recut: Routed = {
      epoch: 4,
      route: [
        { host: 'device', tier: 'device', from: 0, to: 2 },
        { host: 'edge', tier: 'edge', from: 2, to: 3 },
        { host: 'cloud', tier: 'cloud', from: 3, to: 4 },
      ],
    };
    expect([...forwardLinks(first)]).toEqual(['device>edge', 'edge>cloud']);
    expect([...forwardLinks(plan(5, 'device'))]).toEqual([]);
    for (const current of [recut, plan(4, 'device', 'edge'), plan(4, 'device', 'cloud', 'edge', 'cloud')]) {
      const slow = vi.fn(async () => sleep(250).then(() => OUT));
      expect(
        await inferRetrying(deps({ infer: slow, current: () => current, hedgeAfterMs: 30 }), first, {}, 5000),
      ).toBe(OUT);
      expect(slow).toHaveBeenCalledTimes(1);
    }
  });

  it('waits for a plan in force whose hosts are up, and keeps the first answer when it comes first', async () => {
    const first = plan(3, 'device', 'edge');
    let current: Routed = plan(4, 'device', 'cloud', 'edge'); // over other links, but through the edge
    const own = later<Record<string, TensorLike>>();
    const infer = vi.fn(async (p: Routed) => (p.epoch === 3 ? own.promise : sleep(2000).then(() => HEDGED)));
    const runnable = (p: Routed): boolean => p.route.every((s) => s.host !== 'edge');
    const answer = inferRetrying(
      deps({ infer, current: () => current, runnable, hedgeAfterMs: 20 }),
      first,
      {},
      20_000,
    );
    await sleep(150);
    expect(infer).toHaveBeenCalledTimes(1); // epoch 4 still runs through the edge, which is down
    current = plan(5, 'device', 'cloud');
    await sleep(250);
    expect(infer.mock.calls.map((c) => c[0].epoch)).toEqual([3, 5]);
    own.resolve(OUT);
    expect(await answer).toBe(OUT);
  });

  it('answers an attempt that fails only once the other has failed too, with the first error, and never retries after', async () => {
    const first = plan(3, 'device', 'edge');
    const moved = plan(4, 'device', 'cloud');
    const bad = new CleaveError('E_INTERNAL', 'the hedge failed');
    // The stranded attempt fails first (its host was lost): the hedge answers.
    const own = later<Record<string, TensorLike>>();
    const hedge = later<Record<string, TensorLike>>();
    const infer = vi.fn(async (p: Routed) => (p.epoch === 3 ? own.promise : hedge.promise));
    const answer = inferRetrying(deps({ infer, current: () => moved, hedgeAfterMs: 20 }), first, {}, 5000);
    await sleep(80);
    own.reject(gone);
    await sleep(20);
    hedge.resolve(HEDGED);
    expect(await answer).toBe(HEDGED);
    // Both fail, the hedge first: the request is answered with its own attempt's error, and not retried.
    const own2 = later<Record<string, TensorLike>>();
    const infer2 = vi.fn(async (p: Routed) => (p.epoch === 3 ? own2.promise : Promise.reject(bad)));
    const answer2 = inferRetrying(deps({ infer: infer2, current: () => moved, hedgeAfterMs: 20 }), first, {}, 5000);
    await sleep(80);
    own2.reject(gone);
    await expect(answer2).rejects.toBe(gone);
    expect(infer2).toHaveBeenCalledTimes(2);
  });

  it(`hedges at most ${MAX_HEDGES} requests at once per origin`, async () => {
    let current: Routed = plan(3, 'device', 'edge');
    const stuck = later<Record<string, TensorLike>>();
    const hedges = later<Record<string, TensorLike>>();
    const infer = vi.fn(async (p: Routed) => (p.epoch === 3 ? stuck.promise : hedges.promise));
    const run = retrying(deps({ infer, current: () => current, hedgeAfterMs: 20 }));
    const answers = Array.from({ length: MAX_HEDGES + 3 }, () => run(plan(3, 'device', 'edge'), {}, 10_000));
    current = plan(4, 'device', 'cloud');
    await sleep(250);
    const hedged = (): number => infer.mock.calls.filter((c) => c[0].epoch === 4).length;
    expect(hedged()).toBe(MAX_HEDGES);
    // Once those hedges are answered, the others are hedged in turn.
    hedges.resolve(HEDGED);
    await sleep(250);
    expect(hedged()).toBe(MAX_HEDGES + 3);
    expect(await Promise.all(answers)).toEqual(Array(MAX_HEDGES + 3).fill(HEDGED));
    stuck.resolve(OUT);
  });
});
