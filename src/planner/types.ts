/**
 * The planner's public types. The core takes plain numbers (per-host block times, frontier bytes, links
 * with RTT and bandwidth) so that the runtime can feed live measurements; profiles and CSV files are
 * turned into a `PlanInput` by `profilesToInput` (input.ts) at the edge.
 */

export type Objective = 'latency' | 'throughput';
export type CostModel = 'cleave' | 'scission';

/** One candidate host: its tier and its measured time for every block of the model. */
export interface PlanHost {
  readonly name: string;
  readonly tier: string;
  /** Milliseconds per block, `n` entries, each finite and >= 0. */
  readonly blockMs: readonly number[];
  /**
   * Cleave cost model only: the fixed cost (ms) of one session run, added to a stage that does not start
   * at block 0 (the profiler already folds one run overhead into block 0's time). Default 0.
   */
  readonly stageOverheadMs?: number;
  /**
   * Cleave cost model only: what a stage pays at its own edges beyond the transfer (layout reorders and
   * copies of the tensors crossing a cut), in ms per byte: a stage [b, c) adds
   * `cutMsPerByte x (edgeBytes(b) + edgeBytes(c)) / 2`, edgeBytes being the frontier at an interior cut and
   * 0 at the model's input (0) and output (n). Counted as the stage's compute. The profile's
   * `timings.cutMsPerByte`. Default 0.
   */
  readonly cutMsPerByte?: number;
  /**
   * Cleave cost model only: the host's measured cost of each wire codec (`PlanInput.codecs`), in ms per raw
   * byte, to encode (as the sender of a hop) and to decode (as its receiver). A codec this host has no
   * figure for is not used on a hop this host sends or receives.
   */
  readonly codecMsPerByte?: Readonly<Record<string, { readonly encode: number; readonly decode: number }>>;
  /**
   * Cleave cost model only: what a stage on this host costs it beyond its compute, in ms: taking in the frame
   * that starts the stage and sending its output on (the runtime measures its event loop's CPU per stage and
   * scales it by the host's slowdown). Added to every hop into a stage on this host when it is not in the
   * origin tier (the origin's own first stage starts from the request, not from a frame); latency only, like
   * the link's propagation delay. Default 0.
   */
  readonly frameMs?: number;
}

/**
 * A wire codec the planner may choose for a forward hop (the result's return always travels raw). `raw` is
 * always available and is not listed.
 */
export interface PlanCodec {
  readonly name: string;
  /** Coded bytes over raw bytes at each boundary c = 0..n (0: the model's input), `n + 1` entries in (0, 1]. */
  readonly ratio: readonly number[];
  /**
   * Lossy codecs: the model output's relative error (||y' - y|| / ||y||, the worst output) when the tensors
   * at each boundary travel in this codec, `n + 1` entries; null where it was not measured, which makes the
   * codec unusable there. Absent: lossless, usable everywhere.
   */
  readonly error?: readonly (number | null)[];
}

/** A directed link. Scission's CSV gives one row per direction; `from -> to` is the direction data flows. */
export interface PlanLink {
  readonly from: string;
  readonly to: string;
  /** Measured round-trip time in ms (Scission's `ping(ms)`). */
  readonly rttMs: number;
  /** Throughput in bytes per second (Scission's `bandwidth(mbps)` x 125000). */
  readonly bytesPerSecond: number;
}

/**
 * One constraint. Every kind can be combined with every other; `source` (the flag or criteria text that
 * produced it) is what an E_NO_PLAN error names.
 */
export type Constraint =
  | { readonly kind: 'blockOn'; readonly block: number; readonly tier: string; readonly source?: string }
  | { readonly kind: 'blockNotOn'; readonly block: number; readonly tier: string; readonly source?: string }
  /** The tier runs at least one block. */
  | { readonly kind: 'useTier'; readonly tier: string; readonly source?: string }
  /** The tier runs no block (for the origin tier: the device only uploads the raw input). */
  | { readonly kind: 'noTier'; readonly tier: string; readonly source?: string }
  /** One of these hosts (all of one tier) runs at least one block. */
  | { readonly kind: 'useHost'; readonly hosts: readonly string[]; readonly source?: string }
  /** The host takes no part in the plan (an origin host that is excluded cannot be the origin either). */
  | { readonly kind: 'noHost'; readonly host: string; readonly source?: string }
  /** Bytes sent by the tier's host (forward hop, plus the result's return under the cleave model). */
  | { readonly kind: 'maxUpload'; readonly tier: string; readonly bytes: number; readonly source?: string }
  /** Compute time of the tier's stage, in ms. */
  | { readonly kind: 'maxCompute'; readonly tier: string; readonly ms: number; readonly source?: string }
  /** Compute time of the tier's stage as a share (0..1) of the plan's whole compute time (all stages). */
  | { readonly kind: 'maxComputeShare'; readonly tier: string; readonly share: number; readonly source?: string }
  /** Weight bytes of the blocks the host runs. */
  | { readonly kind: 'maxWeights'; readonly host: string; readonly bytes: number; readonly source?: string };

export interface PlannerOptions {
  /** Cleave cost model: fixed cost of one hop in ms (frame header, send, wake-up on the receiver). Default 0.25. */
  readonly hopOverheadMs: number;
  /**
   * A link missing between two hosts that could talk: 'error' (default) throws E_BAD_NETWORK naming them;
   * 'skip' makes that pair unusable (the runtime, which may not have measured every pair yet).
   */
  readonly missingLinks: 'error' | 'skip';
  /**
   * Only used when a share constraint (`maxComputeShare`) is present, which makes the exact search fall
   * back to branch and bound: the most search nodes it may expand before it gives up with E_UNSUPPORTED
   * (it never returns an inexact answer). Default 2,000,000.
   */
  readonly maxSearchNodes: number;
}

export const PLANNER_DEFAULTS: PlannerOptions & {
  readonly topN: number;
  readonly maxTopN: number;
  readonly objective: Objective;
  readonly costModel: CostModel;
} = {
  topN: 5,
  /** The search keeps topN-best lists per state, so memory grows with it: at most 1000. */
  maxTopN: 1000,
  objective: 'latency',
  costModel: 'cleave',
  hopOverheadMs: 0.25,
  missingLinks: 'error',
  maxSearchNodes: 2_000_000,
};

/** Scission's default raw input size when the device runs no block (`-i`, 0.15 MB). */
export const SCISSION_INPUT_BYTES = 150_000;

export interface PlanInput {
  /** The tier chain in order; `tiers[0]` is the origin tier (device), where requests arrive and results return. */
  readonly tiers: readonly string[];
  readonly hosts: readonly PlanHost[];
  readonly links: readonly PlanLink[];
  /** Bytes crossing the cut after each block, `n` entries (the last is normally `outputBytes`). */
  readonly frontierBytes: readonly number[];
  /** Raw model input bytes: what the device uploads when it runs no block. */
  readonly inputBytes: number;
  /** Model output bytes: what returns to the origin (cleave cost model). */
  readonly outputBytes: number;
  /** Weight bytes per block, `n` entries; needed only for `maxWeights`. */
  readonly weightBytes?: readonly number[];
  /**
   * Cleave cost model only: wire codecs a forward hop may use besides raw. Each hop takes the codec that
   * makes it fastest: encode on the sender + coded bytes over the link + decode on the receiver, all three
   * counted in the hop's latency and in its busy time. Default none (raw only).
   */
  readonly codecs?: readonly PlanCodec[];
  /**
   * The largest output error a lossy codec may cause at the cut it is used on (`PlanCodec.error`, measured
   * with that cut alone coded): per cut, so a plan with two lossy hops may add up to twice it. Default 0: no
   * lossy codec.
   */
  readonly maxError?: number;
  readonly constraints?: readonly Constraint[];
  /** Default 'latency'. */
  readonly objective?: Objective;
  /** Also compute the Pareto set (latency, bytes leaving the device, device compute time). */
  readonly pareto?: boolean;
  /** Default 'cleave'. */
  readonly costModel?: CostModel;
  /** Plans to return, best first. Default 5. */
  readonly topN?: number;
  readonly options?: Partial<PlannerOptions>;
}

/** A computing stage: `host` runs blocks `[start, end)`. */
export interface Stage {
  readonly tier: string;
  readonly host: string;
  readonly start: number;
  readonly end: number;
  readonly computeMs: number;
  readonly weightBytes: number;
}

export interface Hop {
  readonly from: string;
  readonly to: string;
  /** Bytes on the wire: the coded size under `codec`. */
  readonly bytes: number;
  /** The tensors' own bytes before coding. */
  readonly rawBytes: number;
  /** The wire codec chosen for the hop ('raw' unless `PlanInput.codecs` offered a faster one). */
  readonly codec: string;
  /** What the hop adds to the latency under the cost model (under cleave, with its receiver's `frameMs`). */
  readonly ms: number;
  /** How long the hop occupies the link (bytes / bandwidth, + the hop overhead under cleave). */
  readonly busyMs: number;
  /** 'return': the result going back to the origin (cleave cost model). */
  readonly kind: 'forward' | 'return';
}

export interface Plan {
  /** The device host where the request arrives (it may run no block), and its tier (the chain's first). */
  readonly origin: string;
  readonly originTier: string;
  /** Computing stages in tier order. */
  readonly stages: readonly Stage[];
  readonly hops: readonly Hop[];
  readonly latencyMs: number;
  readonly computeMs: number;
  readonly transferMs: number;
  /** The slowest stage or link: one request per this many ms when pipelined. */
  readonly bottleneckMs: number;
  /** Requests per second the pipeline can sustain (1000 / bottleneckMs; Infinity when 0). */
  readonly throughputRps: number;
  /** Bytes the origin sends (the frontier after its last block, or the raw input). */
  readonly deviceBytesOut: number;
  readonly deviceComputeMs: number;
  /** Bytes over all hops. */
  readonly bytesTransferred: number;
}

export interface PlanResult {
  readonly objective: Objective;
  readonly costModel: CostModel;
  readonly inputBytes: number;
  /** Best first. Latency: (latency, then the plan's canonical order); throughput: (bottleneck, latency, canonical order). */
  readonly plans: readonly Plan[];
  /** With `pareto`: every non-dominated point, one plan each, by latency. */
  readonly pareto?: readonly Plan[];
  /**
   * 'dp' (dynamic programming), 'branch-and-bound' (used when a share constraint couples the stages), or
   * 'enumeration' (the brute-force reference).
   */
  readonly search: 'dp' | 'branch-and-bound' | 'enumeration';
}
