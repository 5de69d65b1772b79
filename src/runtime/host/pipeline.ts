/**
 * How one request moves: the route travels with it. `route[0]` is always the origin (the device host, which
 * answers the client) and may run no blocks, in which case it only forwards the raw input. Each stage runs
 * its segment `[from, to)` and sends the frontier at `to` to the next stage; the last stage sends the model
 * outputs back to the origin as a `result` frame (or an `error` frame when anything fails on the way).
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { CleaveError, isCleaveError, isErrorCode, errorMessage } from '../../errors.js';
import { frameCodec, type HeaderInput, type Tensor, type RouteStage } from '../../transport/frame.js';
import { encodeTensorAsync, usesBrotli } from '../../transport/codec.js';
import { tensorBytes } from '../../transport/dtype.js';
import type { IncomingFrame } from '../../transport/incoming.js';
import { RecentMedian } from '../../planner/estimate.js';
import type { RunResult, TensorLike } from '../executor/executor.js';
import { SendGate, type LinkPort } from './backpressure.js';
import type { HostMetrics } from './metrics.js';

/** A node range `[start, end)` of the model. */
export interface SegmentRange {
  readonly start: number;
  readonly end: number;
}

/** What a stage runs its segment with (SegmentSessions, or a fake in tests). */
export interface StageRunner {
  /** The tensors a segment takes and produces (the frontiers at its two cuts). */
  io(r: SegmentRange): { inputs: readonly string[]; outputs: readonly string[] };
  run(r: SegmentRange, feeds: Record<string, TensorLike>): Promise<RunResult>;
}

export interface PipelineOptions {
  readonly self: string;
  /** The model this pipeline runs: every frame it sends carries it, and its metrics are labelled with it. */
  readonly model: string;
  readonly segments: StageRunner;
  /** Frames to other hosts go out here, through a SendGate that honours backpressure. */
  readonly links: LinkPort;
  readonly metrics: Pick<HostMetrics, 'stageCompute' | 'queueDepth'>;
  readonly logger: Logger;
  /** Model output names, in order: what the last stage returns. */
  readonly outputs: readonly string[];
  readonly maxInFlight: number;
  /**
   * Why a route arriving in a frame from `sender` for stage `stage` cannot be one the origin planned (null:
   * it can). A frame whose route fails is refused and its connection closed (4400), not run: a peer holding
   * the token must not make hosts bounce a request between them.
   */
  checkRoute?(route: readonly RouteStage[], stage: number, sender: string): string | null;
}

/** Longest a reply waits for the link to its origin to reopen (bounded by the request's deadline too). */
const REPLY_WAIT_MS = 10_000;

export interface Routed {
  readonly epoch: number;
  readonly route: readonly RouteStage[];
}

interface Pending {
  /** The hosts on its route other than this one. */
  readonly through: ReadonlySet<string>;
  resolve: (out: Record<string, TensorLike>) => void;
  reject: (e: CleaveError) => void;
  timer: NodeJS.Timeout;
}

export class Pipeline {
  private readonly pending = new Map<string, Pending>();
  /** Stage work in progress on this host (requests passing through, not only those it originated). */
  private working = 0;
  /** Stages run here from a peer's frame, since start (host/frame-cpu.ts prices what each cost the loop). */
  private fromFrames = 0;
  /** Recent compute times of each segment run here (their median is what heartbeats report), by block range. */
  private readonly computeMs = new Map<string, { from: number; to: number; times: RecentMedian; lastAt: number }>();
  private readonly gate: SendGate;

  constructor(private readonly o: PipelineOptions) {
    this.gate = new SendGate(o.links);
  }

  get inFlight(): number {
    return this.pending.size;
  }

  get busy(): number {
    return this.working;
  }

  /** Stages this host has run from a peer's frame (not those it originated), since start. */
  get stagesFromFrames(): number {
    return this.fromFrames;
  }

  /**
   * Each segment run here: its recent compute time (ms; the median of the latest runs, RecentMedian), how
   * many times it ran, and the time since its last run (ms).
   */
  computeTimes(): { from: number; to: number; meanMs: number; runs: number; ageMs: number }[] {
    const now = Date.now();
    // A segment not run since the times restarted has nothing to say about the host now.
    return [...this.computeMs.values()].flatMap((v) => {
      const ms = v.times.value;
      if (ms === null) return [];
      return [
        { from: v.from, to: v.to, meanMs: Math.round(ms * 1000) / 1000, runs: v.times.runs, ageMs: now - v.lastAt },
      ];
    });
  }

  /**
   * Forgets the recent compute times, keeping the run counts: the host's CPU quota changed, and the median of
   * runs under the old one would hold the new figure back for 3 runs (at 0.15 CPU, 3 runs of MobileNetV2 on
   * the edge are ~0.6 s of a 3 s reaction). The next run of each segment is its time from then on.
   */
  restartComputeTimes(): void {
    for (const v of this.computeMs.values()) v.times.restart();
  }

  /** Frames waiting for a full link to drain. */
  get waitingToSend(): number {
    return this.gate.waiting;
  }

  /**
   * Runs one request along `plan`'s route from this (origin) host. Rejects with E_QUEUE_FULL when
   * `maxInFlight` requests are already pending, E_DEADLINE when `deadlineMs` passes first.
   */
  async infer(
    plan: Routed,
    inputs: Record<string, TensorLike>,
    deadlineMs: number,
  ): Promise<Record<string, TensorLike>> {
    if (this.pending.size >= this.o.maxInFlight)
      throw new CleaveError(
        'E_QUEUE_FULL',
        `${this.pending.size} requests in flight (limit maxInFlight=${this.o.maxInFlight}); retry later`,
      );
    const id = randomUUID();
    const deadline = Date.now() + deadlineMs;
    const done = new Promise<Record<string, TensorLike>>((resolve, reject) => {
      const timer = setTimeout(
        () => this.settle(id, new CleaveError('E_DEADLINE', `request ${id} missed its ${deadlineMs} ms deadline`)),
        deadlineMs,
      );
      const through = new Set(plan.route.map((s) => s.host).filter((h) => h !== this.o.self));
      this.pending.set(id, { through, resolve, reject, timer });
    });
    this.o.metrics.queueDepth.set({ host: this.o.self, model: this.o.model }, this.pending.size);
    // The origin's own stage runs here; any failure settles the pending request.
    void this.runStage({ id, epoch: plan.epoch, route: [...plan.route], stage: 0, deadline }, inputs);
    return done;
  }

  /** Frames arriving from peers: work for a stage here, or the answer to a request this host originated. */
  onFrame(f: IncomingFrame): void {
    const h = f.header;
    if (h.kind === 'infer') {
      // Without its stage on the route there is no one to run it and no origin to tell: log and drop.
      if (h.stage >= h.route.length) {
        this.o.logger.warn(
          { peer: f.peer.host, id: h.id, stage: h.stage, stages: h.route.length },
          'dropped an infer frame whose stage is not on its route',
        );
        return;
      }
      const bad = this.o.checkRoute?.(h.route, h.stage, f.peer.host) ?? null;
      if (bad !== null) {
        const e = new CleaveError('E_BAD_FRAME', `request ${h.id}: ${bad}`);
        this.o.logger.warn({ peer: f.peer.host, id: h.id }, `refused an infer frame: ${bad}`);
        (f.via as { close?(code: number, reason: string): void }).close?.(e.closeCode, e.message);
        return;
      }
      if (this.o.logger.isLevelEnabled('trace'))
        this.o.logger.trace(
          { id: h.id, stage: h.stage, at: performance.timeOrigin + f.receivedAt, bytes: f.byteLength },
          'frame arrived',
        );
      // The frame carries the time left when it was sent, not a clock reading: hosts' clocks may disagree.
      const deadline = h.deadline > 0 ? Date.now() + h.deadline : 0;
      this.fromFrames++;
      this.runStage({ id: h.id, epoch: h.epoch, route: h.route, stage: h.stage, deadline }, byName(f.tensors)).catch(
        (e: unknown) =>
          this.o.logger.error({ id: h.id, err: errorMessage(e) }, 'stage failed outside its error handling'),
      );
    } else if (h.kind === 'result') {
      if (this.o.logger.isLevelEnabled('trace'))
        this.o.logger.trace({ id: h.id, at: performance.timeOrigin + performance.now() }, 'result arrived');
      this.settle(h.id, byName(f.tensors));
    } else if (h.kind === 'error') {
      const code = h.error && isErrorCode(h.error.code) ? h.error.code : 'E_INTERNAL';
      this.settle(h.id, new CleaveError(code, `${f.peer.host}: ${h.error?.message ?? 'failed'}`));
    }
  }

  /** Fails every pending request (the host is shutting down). */
  failAll(reason: string): void {
    for (const id of [...this.pending.keys()]) this.settle(id, new CleaveError('E_PEER_GONE', reason));
  }

  /**
   * The link from this host to `host` dropped. Fails at once, instead of letting them wait out their deadline,
   * the requests this host originated that it sent to `host` without an acknowledgement (`unacked`), and
   * those whose route passes through `host`: a host this one can no longer reach has most likely gone, with
   * whatever it held (a frame it acknowledged and was still computing, a result queued on its way back).
   * Ids of requests originated elsewhere are not pending here.
   */
  failLost(host: string, unacked: readonly string[]): void {
    for (const id of unacked)
      this.settle(
        id,
        new CleaveError('E_PEER_GONE', `request ${id}: the link to ${host} dropped before it was delivered`),
      );
    for (const [id, p] of [...this.pending]) {
      if (p.through.has(host))
        this.settle(id, new CleaveError('E_PEER_GONE', `request ${id}: the link to ${host}, on its route, dropped`));
    }
  }

  private async runStage(
    r: { id: string; epoch: number; route: RouteStage[]; stage: number; deadline: number },
    inputs: Record<string, TensorLike>,
  ): Promise<void> {
    const stage = r.route[r.stage];
    const origin = r.route[0]?.host ?? this.o.self;
    const t0 = performance.now();
    let tRun = t0;
    this.working++;
    try {
      if (!stage || stage.host !== this.o.self)
        throw new CleaveError('E_BAD_FRAME', `request ${r.id}: stage ${r.stage} is not addressed to ${this.o.self}`);
      if (r.deadline && Date.now() > r.deadline)
        throw new CleaveError('E_DEADLINE', `request ${r.id} expired before stage ${r.stage}`);
      let outputs = inputs;
      if (stage.to > stage.from) {
        const range = { start: stage.from, end: stage.to };
        const io = this.o.segments.io(range);
        const feeds: Record<string, TensorLike> = {};
        for (const n of io.inputs) {
          const t = inputs[n];
          if (!t)
            throw new CleaveError(
              'E_BAD_FRAME',
              `request ${r.id}: stage ${r.stage} needs tensor '${n}', which did not arrive`,
            );
          feeds[n] = t;
        }
        tRun = performance.now();
        const res = await this.o.segments.run(range, feeds);
        if (this.o.logger.isLevelEnabled('trace'))
          this.o.logger.trace(
            {
              id: r.id,
              stage: r.stage,
              at: performance.timeOrigin + t0,
              prepMs: tRun - t0,
              runMs: performance.now() - tRun,
              computeMs: res.computeMs,
            },
            'stage ran',
          );
        this.observe(stage, res.computeMs);
        // Tensors that only pass through this segment ride along with its outputs.
        outputs = {};
        for (const n of io.outputs) outputs[n] = res.outputs[n] ?? inputs[n];
      }
      const next = r.stage + 1;
      const tSend = performance.now();
      if (next < r.route.length) {
        const left = r.deadline ? r.deadline - Date.now() : 0;
        if (r.deadline && left <= 0)
          throw new CleaveError('E_DEADLINE', `request ${r.id} expired during stage ${r.stage}`);
        await this.send(
          r.route[next].host,
          { kind: 'infer', id: r.id, epoch: r.epoch, route: r.route, stage: next, deadline: left },
          outputs,
          r.deadline,
        );
      } else {
        const result: Record<string, TensorLike> = {};
        for (const n of this.o.outputs) {
          if (!outputs[n])
            throw new CleaveError('E_INTERNAL', `request ${r.id}: the last stage did not produce output '${n}'`);
          result[n] = outputs[n];
        }
        if (origin === this.o.self) this.settle(r.id, result);
        else
          await this.reply(
            origin,
            { kind: 'result', id: r.id, epoch: r.epoch, route: r.route, stage: r.stage },
            result,
            r.deadline,
          );
      }
      if (this.o.logger.isLevelEnabled('trace'))
        this.o.logger.trace(
          { id: r.id, stage: r.stage, at: performance.timeOrigin + tSend, sendMs: performance.now() - tSend },
          'stage sent',
        );
    } catch (e) {
      const err = isCleaveError(e) ? e : new CleaveError('E_INTERNAL', errorMessage(e));
      if (origin === this.o.self) this.settle(r.id, err);
      else {
        const header: HeaderInput = {
          kind: 'error',
          id: r.id,
          epoch: r.epoch,
          route: r.route,
          stage: r.stage,
          error: { code: err.code, message: err.message },
        };
        await this.reply(origin, header, {}, r.deadline).catch((e2: unknown) =>
          this.o.logger.warn({ id: r.id, err: errorMessage(e2) }, 'could not report a failed stage to the origin'),
        );
      }
    } finally {
      this.working--;
    }
  }

  private observe(stage: RouteStage, computeMs: number): void {
    this.o.metrics.stageCompute.observe(
      { model: this.o.model, segment: `${stage.from}-${stage.to}` },
      computeMs * 1000,
    );
    const key = `${stage.from}:${stage.to}`;
    let seen = this.computeMs.get(key);
    if (seen === undefined) {
      seen = { from: stage.from, to: stage.to, times: new RecentMedian(), lastAt: 0 };
      this.computeMs.set(key, seen);
    }
    seen.times.add(computeMs);
    seen.lastAt = Date.now();
  }

  /**
   * Sends a result or an error back to the origin. When the link to it is down (it dropped, and is being
   * redialed), waits for it to reopen, up to the request's deadline, and sends once more: a reply that never
   * leaves would leave the origin waiting until that deadline for nothing.
   */
  private async reply(
    origin: string,
    header: HeaderInput,
    tensors: Record<string, TensorLike>,
    deadline: number,
  ): Promise<void> {
    try {
      await this.send(origin, header, tensors, deadline);
    } catch (e) {
      const wait = deadline > 0 ? deadline - Date.now() : REPLY_WAIT_MS;
      if (!(isCleaveError(e) && e.code === 'E_PEER_GONE') || !this.o.links.whenOpen || wait <= 0) throw e;
      if (!(await this.o.links.whenOpen(origin, Math.min(wait, REPLY_WAIT_MS)))) throw e;
      this.o.logger.info({ id: header.id, origin }, 'link to the origin reopened: reply sent again');
      await this.send(origin, header, tensors, deadline);
    }
  }

  /** Sends to the next host, waiting (up to the deadline) while its link is full. */
  private async send(
    host: string,
    header: HeaderInput,
    tensors: Record<string, TensorLike>,
    deadline: number,
  ): Promise<void> {
    let list: Tensor[] = Object.entries(tensors).map(([name, t]) => ({
      name,
      dtype: t.dtype,
      dims: t.dims,
      data: t.data,
    }));
    // A stage's frame in a brotli codec is compressed in libuv's thread pool, not on this event loop, which
    // keeps serving (heartbeats, pings, acks, other requests) meanwhile. The frame encoder takes it as is.
    const codec = frameCodec(header);
    if (usesBrotli(codec))
      list = await Promise.all(
        list.map(async (t) => ({
          ...t,
          coded: { codec, ...(await encodeTensorAsync(codec, t.dtype, tensorBytes(t.data))) },
        })),
      );
    await this.gate.send(host, { ...header, model: this.o.model }, list, deadline);
  }

  private settle(id: string, result: Record<string, TensorLike> | CleaveError): void {
    const p = this.pending.get(id);
    if (!p) return; // Already answered (e.g. deadline passed before the result came back).
    this.pending.delete(id);
    clearTimeout(p.timer);
    this.o.metrics.queueDepth.set({ host: this.o.self, model: this.o.model }, this.pending.size);
    if (result instanceof CleaveError) p.reject(result);
    else p.resolve(result);
  }
}

/** A frame's tensors keyed by name, as the executor takes them (views, no copies). */
function byName(tensors: readonly Tensor[]): Record<string, TensorLike> {
  const out: Record<string, TensorLike> = {};
  for (const t of tensors) out[t.name] = { dtype: t.dtype, dims: t.dims, data: t.data };
  return out;
}
