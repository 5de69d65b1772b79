/**
 * A host's segment sessions: `[start, end)` node ranges of one of the deployment's models, extracted on demand,
 * created and warmed in the executor's worker, kept in its bounded LRU cache (so swapping back to a
 * recently used split is instant), and run with the frontier tensors a stage receives.
 */
import { extractSegment, type Segment } from '../../graph/segment.js';
import type { Analysis } from '../local/analysis.js';
import type { Executor, RunResult, TensorLike } from '../executor/executor.js';
import { isTensorDType, zeroFeeds } from '../executor/tensors.js';
import { CleaveError } from '../../errors.js';
import type { SegmentRange, StageRunner } from './pipeline.js';

/** What `load` is given for a key it already has (it ignores the bytes then). */
const NO_BYTES = new Uint8Array(0);

export class SegmentSessions implements StageRunner {
  private readonly segments = new Map<string, Segment>();
  /** Every range prepared, by cache key: what `held` reports (the executor's cache knows keys only). */
  private readonly ranges = new Map<string, SegmentRange>();
  private readonly fronts: string[][];

  constructor(
    private readonly analysis: Analysis,
    private readonly executor: Executor,
    private readonly warmupRuns: number,
  ) {
    this.fronts = analysis.cuts.map((c) => [...c.tensors]);
  }

  private key(r: SegmentRange): string {
    return `${this.analysis.model.sha256.slice(0, 12)}:${r.start}-${r.end}`;
  }

  /** The segments the executor holds now, and whether each is warm. */
  held(): { range: SegmentRange; warm: boolean }[] {
    const out: { range: SegmentRange; warm: boolean }[] = [];
    for (const [key, range] of this.ranges) {
      if (this.executor.has(key)) out.push({ range, warm: this.executor.isWarm(key) });
      else this.ranges.delete(key);
    }
    return out;
  }

  /** The tensors a segment takes and produces (frontiers at its two cuts). */
  io(r: SegmentRange): { inputs: readonly string[]; outputs: readonly string[] } {
    this.check(r);
    return { inputs: this.fronts[r.start], outputs: this.fronts[r.end] };
  }

  isWarm(r: SegmentRange): boolean {
    return this.executor.isWarm(this.key(r));
  }

  /** Creates and warms the session (deduplicated; a cached one returns at once). */
  async prepare(r: SegmentRange): Promise<void> {
    this.check(r);
    const key = this.key(r);
    this.ranges.set(key, { start: r.start, end: r.end });
    if (this.executor.isWarm(key)) return;
    // Cached (loading, or reloading in a worker that replaced a dead one): join that load, extract nothing.
    if (this.executor.has(key)) {
      await this.executor.load(key, NO_BYTES);
      return;
    }
    let seg = this.segments.get(key);
    if (!seg) {
      seg = extractSegment(this.analysis.model, r.start, r.end, { fronts: this.fronts, types: this.analysis.types });
      this.segments.set(key, seg);
    }
    try {
      await this.executor.load(key, seg.bytes, { warmup: this.warmupRuns, warmupFeeds: this.zeros(seg.inputs) });
    } finally {
      // The bytes live on in the executor's cache entry; ours only saved re-extraction while loading.
      this.segments.delete(key);
    }
  }

  /**
   * Drops every segment from the executor's cache (the model is unloaded); each session is released once the
   * runs already sent to it finish. Returns how many there were.
   */
  releaseAll(): number {
    let n = 0;
    for (const key of this.ranges.keys()) {
      if (this.executor.has(key)) n++;
      this.executor.release(key);
    }
    this.ranges.clear();
    return n;
  }

  run(r: SegmentRange, feeds: Record<string, TensorLike>): Promise<RunResult> {
    const key = this.key(r);
    // A cached session is run at once: the executor waits for it if it is not warm yet. A warm one is
    // posted to its worker in this tick, so a stage arriving in a frame reaches the worker before the
    // channel writes the frame's ack.
    if (this.executor.has(key)) return this.executor.run(key, feeds);
    return this.prepare(r).then(() => this.executor.run(key, feeds));
  }

  /** Zeros of the measured shapes: segment inputs of dynamic models have no declared size to warm up with. */
  private zeros(names: readonly string[]): Record<string, TensorLike> {
    return zeroFeeds(
      'warm-up',
      names.map((n) => {
        const t = this.analysis.types.get(n);
        if (!t || !isTensorDType(t.dtype)) throw new CleaveError('E_INTERNAL', `no type for segment input '${n}'`);
        return { name: n, dtype: t.dtype, shape: [...t.dims] };
      }),
    );
  }

  private check(r: SegmentRange): void {
    const n = this.analysis.model.nodes.length;
    if (!Number.isInteger(r.start) || !Number.isInteger(r.end) || r.start < 0 || r.end > n || r.start >= r.end)
      throw new CleaveError('E_BAD_CUT', `segment [${r.start}, ${r.end}) is not within 0..${n}`);
  }
}
