/**
 * Fakes for the runtime's small interfaces: planner profiles, a LinkPort that records what it is asked to
 * send and can be made full, stage runners, and incoming frames. No sockets, no ORT.
 */
import pino, { type Logger } from 'pino';
import { CleaveError } from '../../src/errors.js';
import { PROFILE_FORMAT, type Profile } from '../../src/planner/profile.js';
import type { LinkPort } from '../../src/runtime/host/backpressure.js';
import type { SegmentRange, StageRunner } from '../../src/runtime/host/pipeline.js';
import type { RunResult, TensorLike } from '../../src/runtime/executor/executor.js';
import type { FrameHeader, HeaderInput, Tensor } from '../../src/transport/frame.js';
import type { IncomingFrame } from '../../src/transport/incoming.js';

export const silent: Logger = pino({ level: 'silent' });

export const SHA = 'ab'.repeat(32);

/** Node ranges of the fixture model's blocks: block k is nodes [10k, 10k + 10). */
export function blockRanges(n: number): { start: number; end: number }[] {
  return Array.from({ length: n }, (_, k) => ({ start: 10 * k, end: 10 * k + 10 }));
}

/** A `cleave-profile/1` profile of `host` with the given per-block median times (p90 = 1.1 x median). */
export function profile(host: string, tier: string, blockMs: readonly number[], frontierBytes = 1000): Profile {
  const whole = blockMs.reduce((a, b) => a + b, 0);
  return {
    format: PROFILE_FORMAT,
    model: {
      name: 'fixture',
      sha256: SHA,
      inputBytes: 1000,
      outputBytes: 1000,
      blocks: blockMs.map((_, k) => ({
        index: k,
        name: `block${k}`,
        nodes: [10 * k, 10 * k + 10] as const,
        frontierBytes,
        frontierTensors: 1,
        weightBytes: 4096,
      })),
    },
    host: { name: host, tier, cpu: 'fake', cores: 4, memoryBytes: 8 * 2 ** 30, threads: 1 },
    timings: {
      repeats: 10,
      warmup: 2,
      blocks: blockMs.map((m) => ({ medianMs: m, p90Ms: m * 1.1 })),
      wholeModelMs: { medianMs: whole, p90Ms: whole * 1.1 },
    },
    createdAt: '2026-01-01T00:00:00.000Z',
  };
}

export function f32(values: readonly number[], dims: readonly number[] = [values.length]): TensorLike {
  return { dtype: 'float32', dims, data: Float32Array.from(values) };
}

/** What a fake link was asked to send. */
export interface Sent {
  readonly host: string;
  readonly header: HeaderInput;
  readonly tensors: readonly Tensor[];
}

/**
 * A LinkPort that records every frame. `next` answers the next sends in order (true: taken; false: taken,
 * but full; an Error: thrown); once it is empty every send returns true.
 */
export class FakeLinks implements LinkPort {
  readonly sent: Sent[] = [];
  readonly next: (boolean | Error)[] = [];
  private readonly drains = new Map<string, (() => void)[]>();
  private readonly downs = new Map<string, (() => void)[]>();

  send(host: string, header: HeaderInput, tensors: readonly Tensor[]): boolean {
    const answer = this.next.shift() ?? true;
    if (answer instanceof Error) throw answer;
    this.sent.push({ host, header, tensors });
    return answer;
  }

  onDrain(host: string, listener: () => void): void {
    this.drains.set(host, [...(this.drains.get(host) ?? []), listener]);
  }

  onDown(host: string, listener: () => void): void {
    this.downs.set(host, [...(this.downs.get(host) ?? []), listener]);
  }

  drain(host: string): void {
    for (const l of this.drains.get(host) ?? []) l();
  }

  down(host: string): void {
    for (const l of this.downs.get(host) ?? []) l();
  }

  to(host: string): Sent[] {
    return this.sent.filter((s) => s.host === host);
  }
}

export const queueFull = (): CleaveError => new CleaveError('E_QUEUE_FULL', 'link queue full');

/**
 * A stage runner over a model whose tensor at node cut `n` is named `t<n>`: segment [a, b) takes `t<a>` and
 * produces `t<b>`, each value plus (b - a). `computeMs` answers each run's compute time in turn.
 */
export class FakeSegments implements StageRunner {
  readonly runs: SegmentRange[] = [];
  computeMs: number[] = [];
  fail: Error | null = null;

  io(r: SegmentRange): { inputs: readonly string[]; outputs: readonly string[] } {
    return { inputs: [`t${r.start}`], outputs: [`t${r.end}`] };
  }

  async run(r: SegmentRange, feeds: Record<string, TensorLike>): Promise<RunResult> {
    this.runs.push(r);
    if (this.fail) throw this.fail;
    const x = feeds[`t${r.start}`];
    const data = Float32Array.from(x.data as Float32Array, (v) => v + (r.end - r.start));
    return {
      outputs: { [`t${r.end}`]: { dtype: 'float32', dims: x.dims, data } },
      computeMs: this.computeMs.shift() ?? 1,
    };
  }
}

/** A frame as a peer's connection delivers it. */
export function incoming(
  header: Partial<FrameHeader> & Pick<FrameHeader, 'kind' | 'id'>,
  tensors: Record<string, TensorLike> = {},
  from = { host: 'edge', tier: 'edge' },
): IncomingFrame {
  const list: Tensor[] = Object.entries(tensors).map(([name, t]) => ({
    name,
    dtype: t.dtype,
    dims: t.dims,
    data: t.data,
  }));
  return {
    header: {
      epoch: 1,
      route: [],
      stage: 0,
      deadline: 0,
      seq: 1,
      tensors: list.map((t) => ({ name: t.name, dtype: t.dtype, dims: [...t.dims], byteLength: t.data.byteLength })),
      ...header,
    },
    tensors: list,
    byteLength: 0,
    copiedBytes: 0,
    peer: { ...from, modelSha256: SHA },
    via: { name: `${from.host}->self`, peer: null, send: () => true, stats: () => ({}) as never },
    receivedAt: 0,
    reply: () => true,
  };
}

/** The rejection of `p`, which must reject (so a test can look at its code and message). */
export async function rejection(p: Promise<unknown>): Promise<CleaveError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof CleaveError) return e;
    throw new Error(`expected a CleaveError, got ${String(e)}`);
  }
  throw new Error('expected a rejection, but it resolved');
}

/** A promise with its resolve/reject at hand. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: unknown) => void } {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((a, b) => {
    resolve = a;
    reject = b;
  });
  return { promise, resolve, reject };
}
