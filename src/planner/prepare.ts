/**
 * Validates a PlanInput (errors name the host, link, block or constraint source) and turns it into the
 * flat tables the searches run on: per-host prefix sums of block atoms, link costs per host pair, and the
 * constraints folded into per-tier and per-host limits.
 *
 * Past 400 lines on purpose: validation and the tables it fills are one pass over the input, and splitting
 * them would repeat the walk or pass half-built tables between files.
 */
import { CleaveError } from '../errors.js';
import { ATOMS_PER_MS, toAtoms } from './atoms.js';
import { codecTables, type CodecTables } from './codecs.js';
import {
  PLANNER_DEFAULTS,
  SCISSION_INPUT_BYTES,
  type Constraint,
  type CostModel,
  type Objective,
  type PlanInput,
  type PlannerOptions,
} from './types.js';

/** A plan inside the planner: the origin host and its steps `(tier position, host index, end boundary)`. */
export interface Shape {
  readonly origin: number;
  /**
   * steps[0] is the origin's own step `(0, origin, c0)`; c0 = 0 when the device runs no block. `codec`
   * (index into `codecs.names`) forces the codec of the hop into that step, for pricing a plan that runs
   * (priceOn); absent, the hop takes its fastest codec (`hopChoice`), as the searches do.
   */
  readonly steps: readonly { readonly q: number; readonly h: number; readonly end: number; readonly codec?: number }[];
}

/** A forward hop `from -> to` at every boundary c = 0..n, with the fastest usable codec. */
export interface HopChoice {
  /** Transfer atoms (coded bytes over the link, plus encode and decode); Infinity where the upload cap forbids every codec. */
  readonly atoms: Float64Array;
  /** Codec index (into `codecs.names`) and coded bytes; raw's where nothing fits. */
  readonly codec: Uint8Array;
  readonly bytes: Float64Array;
}

export interface Prepared {
  readonly input: PlanInput;
  readonly n: number;
  readonly T: number;
  readonly H: number;
  readonly tiers: readonly string[];
  readonly hostNames: readonly string[];
  readonly hostTier: Int32Array;
  readonly objective: Objective;
  readonly costModel: CostModel;
  readonly topN: number;
  readonly options: PlannerOptions;
  /** Per host: block atoms, and their prefix sums (n + 1). */
  readonly atoms: readonly Float64Array[];
  readonly prefix: readonly Float64Array[];
  /** Per host: atoms added to a stage that starts after block 0 (cleave only). */
  readonly stageOvh: Float64Array;
  /**
   * Per host, n + 1 entries: cut atoms a stage of that host pays at boundary x, one side of the cut
   * (`cutMsPerByte x edgeBytes(x) / 2`, rounded to 1 ns once; 0 at x = 0 and x = n, and under scission).
   */
  readonly cut: readonly Float64Array[];
  /** Per host: whether any cut atom is nonzero (then compute-limited windows are only a superset, window.ts). */
  readonly hasCut: Uint8Array;
  /** Per host: its largest cut atom (0 without cut costs). */
  readonly maxCut: Float64Array;
  /**
   * Per host, n + 1 entries: prefix[c] + cut[c] (a stage's end term) and prefix[b] - cut[b] (its start term):
   * stage [b, c) computes endPrefix[c] - startPrefix[b] (+ stageOvh when b > 0). The same arrays as
   * `prefix` for a host without cut costs.
   */
  readonly endPrefix: readonly Float64Array[];
  readonly startPrefix: readonly Float64Array[];
  readonly weights: Float64Array;
  readonly weightPrefix: Float64Array;
  /** bytesOut[c]: what a sender whose last block ends at boundary c sends (c = 0: the raw input). */
  readonly bytesOut: Float64Array;
  readonly inputBytes: number;
  readonly outputBytes: number;
  /** Per ordered host pair `from * H + to`: fixed latency atoms, and atoms per byte (NaN: no link). */
  readonly linkFixed: Float64Array;
  readonly linkK: Float64Array;
  readonly retFixed: Float64Array;
  readonly retK: Float64Array;
  /** Atoms each hop adds (cleave's hop overhead; 0 under scission). */
  readonly hopOvh: number;
  /** Whether the result returns to the origin (cleave). */
  readonly returns: boolean;
  /** Wire codecs a forward hop may use (index 0: raw). */
  readonly codecs: CodecTables;
  /** Per host pair, the hop's cost and codec at every boundary, filled on demand by `hopChoice` (cost.ts). */
  readonly xferCache: Map<number, HopChoice>;

  // Constraints, folded.
  /** Allowed hosts per tier position (tier 0: allowed origins), ascending host index. */
  readonly tierHosts: readonly number[][];
  readonly deviceMayCompute: boolean;
  readonly mustUse: readonly boolean[];
  /** nextMust[q]: the first tier position after q that must be used (T if none). */
  readonly nextMust: Int32Array;
  /** Per tier: smallest and largest block that must run there (-1 if none). */
  readonly reqMin: Int32Array;
  readonly reqMax: Int32Array;
  /** Per tier: nextForbidden[q][b] = first block >= b that must not run on q (n if none). */
  readonly nextForbidden: readonly Int32Array[];
  readonly uploadCap: Float64Array;
  readonly computeCap: Float64Array;
  readonly weightCap: Float64Array;
  /** Share constraints (coupled): tier position and share. */
  readonly shares: readonly { readonly q: number; readonly share: number }[];
}

const MAX_ATOMS = Number.MAX_SAFE_INTEGER;

function bad(msg: string): never {
  throw new CleaveError('E_BAD_INPUT', msg);
}

function isNonNeg(x: unknown): x is number {
  return typeof x === 'number' && Number.isFinite(x) && x >= 0;
}

function label(c: Constraint): string {
  return c.source ?? describeConstraint(c);
}

/** A readable name for a constraint, as the long flag that expresses it. */
export function describeConstraint(c: Constraint): string {
  switch (c.kind) {
    case 'blockOn':
      return `--block-on ${c.block}=${c.tier}`;
    case 'blockNotOn':
      return `--block-not-on ${c.block}=${c.tier}`;
    case 'useTier':
      return `--use-tier ${c.tier}`;
    case 'noTier':
      return `--no-tier ${c.tier}`;
    case 'useHost':
      return `--use-host ${c.hosts.join('|')}`;
    case 'noHost':
      return `--no-host ${c.host}`;
    case 'maxUpload':
      return `--max-upload ${c.tier}=${c.bytes}B`;
    case 'maxCompute':
      return `--max-compute ${c.tier}=${c.ms / 1000}s`;
    case 'maxComputeShare':
      return `--max-compute ${c.tier}=${+(c.share * 100).toPrecision(12)}%`;
    case 'maxWeights':
      return `--max-weights ${c.host}=${c.bytes}B`;
  }
}

export function prepare(input: PlanInput): Prepared {
  const options: PlannerOptions = { ...PLANNER_DEFAULTS, ...input.options };
  const objective = input.objective ?? PLANNER_DEFAULTS.objective;
  const costModel = input.costModel ?? PLANNER_DEFAULTS.costModel;
  if (objective !== 'latency' && objective !== 'throughput')
    bad(`objective '${String(objective)}': expected latency or throughput`);
  if (costModel !== 'cleave' && costModel !== 'scission')
    bad(`cost model '${String(costModel)}': expected cleave or scission`);
  const topN = input.topN ?? PLANNER_DEFAULTS.topN;
  if (!Number.isInteger(topN) || topN < 1 || topN > PLANNER_DEFAULTS.maxTopN)
    bad(`topN ${topN}: expected an integer from 1 to ${PLANNER_DEFAULTS.maxTopN}`);
  if (!isNonNeg(options.hopOverheadMs)) bad(`hopOverheadMs ${options.hopOverheadMs}: expected a number >= 0`);

  const tiers = [...input.tiers];
  if (tiers.length === 0) bad('tiers: at least one tier (the origin) is needed');
  const tierPos = new Map<string, number>();
  tiers.forEach((t, i) => {
    if (tierPos.has(t)) bad(`tiers: '${t}' is listed twice`);
    tierPos.set(t, i);
  });
  const T = tiers.length;

  const n = input.frontierBytes.length;
  if (n < 1) bad('frontierBytes: the model has no blocks');
  input.frontierBytes.forEach((b, i) => {
    if (!isNonNeg(b)) bad(`frontierBytes[${i}] = ${b}: expected bytes >= 0`);
  });
  if (!isNonNeg(input.inputBytes)) bad(`inputBytes ${input.inputBytes}: expected bytes >= 0`);
  if (!isNonNeg(input.outputBytes)) bad(`outputBytes ${input.outputBytes}: expected bytes >= 0`);
  const weights = new Float64Array(n);
  if (input.weightBytes) {
    if (input.weightBytes.length !== n)
      bad(`weightBytes has ${input.weightBytes.length} entries, the model has ${n} blocks`);
    input.weightBytes.forEach((w, i) => {
      if (!isNonNeg(w)) bad(`weightBytes[${i}] = ${w}: expected bytes >= 0`);
      weights[i] = w;
    });
  }
  const weightPrefix = new Float64Array(n + 1);
  for (let k = 0; k < n; k++) weightPrefix[k + 1] = weightPrefix[k] + weights[k];

  const H = input.hosts.length;
  const hostIndex = new Map<string, number>();
  const hostTier = new Int32Array(H);
  const atoms: Float64Array[] = [];
  const prefix: Float64Array[] = [];
  const stageOvh = new Float64Array(H);
  /** Atoms a hop into each host adds for the host's own handling of the frame (cleave's `frameMs`; 0 in the origin tier). */
  const frameIn = new Float64Array(H);
  const cut: Float64Array[] = [];
  const hasCut = new Uint8Array(H);
  const maxCut = new Float64Array(H);
  const endPrefix: Float64Array[] = [];
  const startPrefix: Float64Array[] = [];
  const limit = Math.floor(MAX_ATOMS / (2 * T + 2));
  input.hosts.forEach((h, i) => {
    if (hostIndex.has(h.name)) bad(`host '${h.name}' is given twice`);
    hostIndex.set(h.name, i);
    const q = tierPos.get(h.tier);
    if (q === undefined)
      bad(`host '${h.name}' is in tier '${h.tier}', which is not in the tier chain ${tiers.join(' -> ')}`);
    hostTier[i] = q;
    if (h.blockMs.length !== n) bad(`host '${h.name}' has ${h.blockMs.length} block times, the model has ${n} blocks`);
    const A = new Float64Array(n);
    const P = new Float64Array(n + 1);
    for (let k = 0; k < n; k++) {
      const ms = h.blockMs[k];
      if (!isNonNeg(ms)) bad(`host '${h.name}' block ${k} time ${ms}: expected ms >= 0`);
      A[k] = toAtoms(ms);
      P[k + 1] = P[k] + A[k];
    }
    if (P[n] > limit) bad(`host '${h.name}': block times sum to ${P[n] / ATOMS_PER_MS} ms, beyond the planner's range`);
    const ovh = h.stageOverheadMs ?? 0;
    if (!isNonNeg(ovh)) bad(`host '${h.name}' stageOverheadMs ${ovh}: expected ms >= 0`);
    const frame = h.frameMs ?? 0;
    if (!isNonNeg(frame)) bad(`host '${h.name}' frameMs ${frame}: expected ms >= 0`);
    frameIn[i] = costModel === 'cleave' && q > 0 ? toAtoms(frame) : 0;
    stageOvh[i] = costModel === 'cleave' ? toAtoms(ovh) : 0;
    const perByte = h.cutMsPerByte ?? 0;
    if (!isNonNeg(perByte)) bad(`host '${h.name}' cutMsPerByte ${perByte}: expected ms per byte >= 0`);
    // Interior cuts only: the model's own input (0) and output (n) are no cut, as the profiler charges them.
    const X = new Float64Array(n + 1);
    let maxX = 0;
    if (costModel === 'cleave' && perByte > 0) {
      for (let x = 1; x < n; x++) {
        X[x] = toAtoms((perByte * input.frontierBytes[x - 1]) / 2);
        maxX = Math.max(maxX, X[x]);
      }
    }
    if (maxX > 0 && P[n] + stageOvh[i] + 2 * maxX > limit)
      bad(
        `host '${h.name}': a stage's time with its cut costs (cutMsPerByte ${perByte}) is beyond the planner's range`,
      );
    atoms.push(A);
    prefix.push(P);
    cut.push(X);
    maxCut[i] = maxX;
    if (maxX > 0) {
      hasCut[i] = 1;
      const PE = new Float64Array(n + 1);
      const PS = new Float64Array(n + 1);
      for (let x = 0; x <= n; x++) {
        PE[x] = P[x] + X[x];
        PS[x] = P[x] - X[x];
      }
      endPrefix.push(PE);
      startPrefix.push(PS);
    } else {
      endPrefix.push(P);
      startPrefix.push(P);
    }
  });
  const origins = input.hosts.map((_, i) => i).filter((i) => hostTier[i] === 0);
  if (origins.length === 0)
    bad(`no host in the origin tier '${tiers[0]}': the device must exist, requests arrive there`);

  // Links. Scission's CSV gives `from -> to` in the direction data flows; the return uses the reverse row
  // when given, else the forward row (links assumed symmetric).
  const hopOvh = costModel === 'cleave' ? toAtoms(options.hopOverheadMs) : 0;
  const linkFixed = new Float64Array(H * H).fill(NaN);
  const linkK = new Float64Array(H * H).fill(NaN);
  const seen = new Set<string>();
  for (const l of input.links) {
    const a = hostIndex.get(l.from);
    const b = hostIndex.get(l.to);
    if (a === undefined || b === undefined) continue; // links of hosts not in this plan are fine
    if (!isNonNeg(l.rttMs))
      throw new CleaveError('E_BAD_NETWORK', `link ${l.from} -> ${l.to}: rtt ${l.rttMs} ms is not a number >= 0`);
    if (!(typeof l.bytesPerSecond === 'number' && l.bytesPerSecond > 0 && Number.isFinite(l.bytesPerSecond))) {
      throw new CleaveError(
        'E_BAD_NETWORK',
        `link ${l.from} -> ${l.to}: bandwidth ${l.bytesPerSecond} B/s is not a number > 0`,
      );
    }
    const key = `${a}>${b}`;
    if (seen.has(key)) throw new CleaveError('E_BAD_NETWORK', `link ${l.from} -> ${l.to} is given twice`);
    seen.add(key);
    const i = a * H + b;
    linkFixed[i] = (costModel === 'cleave' ? toAtoms(l.rttMs / 2) : toAtoms(l.rttMs)) + hopOvh + frameIn[b];
    linkK[i] = (1000 * ATOMS_PER_MS) / l.bytesPerSecond;
  }
  const maxBytes = Math.max(input.inputBytes, input.outputBytes, ...input.frontierBytes);
  const codecs = codecTables(input, n, costModel);
  const K = codecs.names.length;
  for (let h = 0; h < H; h++) {
    for (let k = 1; k < K; k++) {
      const w = codecs.encode[h * K + k] + codecs.decode[h * K + k];
      if (maxBytes * w > limit)
        bad(`host '${input.hosts[h].name}' codec ${codecs.names[k]}: its cost per byte is beyond the planner's range`);
    }
  }
  for (let a = 0; a < H; a++) {
    for (let b = 0; b < H; b++) {
      if (hostTier[a] >= hostTier[b]) continue;
      const i = a * H + b;
      if (Number.isNaN(linkK[i])) {
        if (options.missingLinks === 'error') {
          throw new CleaveError(
            'E_BAD_NETWORK',
            `no link from '${input.hosts[a].name}' to '${input.hosts[b].name}' in the network (tier ${tiers[hostTier[a]]} may send to tier ${tiers[hostTier[b]]}; a skipped tier makes the link jump over it)`,
          );
        }
        continue;
      }
      if (linkFixed[i] + maxBytes * linkK[i] > limit)
        bad(`link ${input.hosts[a].name} -> ${input.hosts[b].name}: a transfer takes beyond the planner's range`);
    }
  }
  const returns = costModel === 'cleave';
  const retFixed = new Float64Array(H * H).fill(NaN);
  const retK = new Float64Array(H * H).fill(NaN);
  if (returns) {
    for (const o of origins) {
      for (let g = 0; g < H; g++) {
        if (hostTier[g] === 0) continue;
        const back = g * H + o;
        const fwd = o * H + g;
        const src = !Number.isNaN(linkK[back]) ? back : fwd;
        // The result goes to the origin, which takes no frame cost: the forward row's, when used, comes off.
        retFixed[back] = linkFixed[src] - (src === fwd ? frameIn[g] : 0);
        retK[back] = linkK[src];
      }
    }
  }
  const bytesOut = new Float64Array(n + 1);
  bytesOut[0] = input.inputBytes;
  for (let c = 1; c <= n; c++) bytesOut[c] = input.frontierBytes[c - 1];

  // Constraints.
  const tierHosts: number[][] = tiers.map(() => []);
  for (let h = 0; h < H; h++) tierHosts[hostTier[h]].push(h);
  let deviceMayCompute = true;
  const mustUse = new Array<boolean>(T).fill(false);
  const reqMin = new Int32Array(T).fill(-1);
  const reqMax = new Int32Array(T).fill(-1);
  const forbidden: Set<number>[] = tiers.map(() => new Set());
  const uploadCap = new Float64Array(T).fill(Infinity);
  const computeCap = new Float64Array(T).fill(Infinity);
  const weightCap = new Float64Array(H).fill(Infinity);
  const shares: { q: number; share: number }[] = [];
  const tierOf = (c: Constraint, t: string): number => {
    const q = tierPos.get(t);
    if (q === undefined) bad(`${label(c)}: unknown tier '${t}' (tiers: ${tiers.join(', ')})`);
    return q;
  };
  const hostOf = (c: Constraint, name: string): number => {
    const h = hostIndex.get(name);
    if (h === undefined)
      bad(`${label(c)}: unknown host '${name}' (hosts: ${input.hosts.map((x) => x.name).join(', ')})`);
    return h;
  };
  const blockOf = (c: Constraint, k: number): number => {
    if (!Number.isInteger(k) || k < 0 || k >= n)
      bad(`${label(c)}: block ${k} is out of range (the model has blocks 0..${n - 1})`);
    return k;
  };
  for (const c of input.constraints ?? []) {
    switch (c.kind) {
      case 'blockOn': {
        const k = blockOf(c, c.block);
        const q = tierOf(c, c.tier);
        mustUse[q] = true;
        reqMin[q] = reqMin[q] < 0 ? k : Math.min(reqMin[q], k);
        reqMax[q] = Math.max(reqMax[q], k);
        break;
      }
      case 'blockNotOn':
        forbidden[tierOf(c, c.tier)].add(blockOf(c, c.block));
        break;
      case 'useTier':
        mustUse[tierOf(c, c.tier)] = true;
        break;
      case 'noTier': {
        const q = tierOf(c, c.tier);
        if (q === 0) deviceMayCompute = false;
        else tierHosts[q] = [];
        break;
      }
      case 'useHost': {
        if (c.hosts.length === 0) bad(`${label(c)}: no host named`);
        const hs = c.hosts.map((x) => hostOf(c, x));
        const q = hostTier[hs[0]];
        for (const h of hs) {
          if (hostTier[h] !== q)
            bad(`${label(c)}: hosts '${input.hosts[hs[0]].name}' and '${input.hosts[h].name}' are in different tiers`);
        }
        mustUse[q] = true;
        tierHosts[q] = tierHosts[q].filter((h) => hs.includes(h));
        break;
      }
      case 'noHost': {
        const h = hostOf(c, c.host);
        tierHosts[hostTier[h]] = tierHosts[hostTier[h]].filter((x) => x !== h);
        break;
      }
      case 'maxUpload':
        if (!isNonNeg(c.bytes)) bad(`${label(c)}: expected bytes >= 0`);
        uploadCap[tierOf(c, c.tier)] = Math.min(uploadCap[tierOf(c, c.tier)], c.bytes);
        break;
      case 'maxCompute':
        if (!isNonNeg(c.ms)) bad(`${label(c)}: expected a time >= 0`);
        computeCap[tierOf(c, c.tier)] = Math.min(computeCap[tierOf(c, c.tier)], toAtoms(c.ms));
        break;
      case 'maxComputeShare':
        if (!isNonNeg(c.share)) bad(`${label(c)}: expected a share >= 0`);
        if (c.share < 1) shares.push({ q: tierOf(c, c.tier), share: c.share });
        else tierOf(c, c.tier);
        break;
      case 'maxWeights': {
        if (!isNonNeg(c.bytes)) bad(`${label(c)}: expected bytes >= 0`);
        if (!input.weightBytes) bad(`${label(c)}: the input has no weight bytes per block`);
        const h = hostOf(c, c.host);
        weightCap[h] = Math.min(weightCap[h], c.bytes);
        break;
      }
      default:
        bad(`unknown constraint kind '${(c as { kind: string }).kind}'`);
    }
  }
  const nextMust = new Int32Array(T);
  let nm = T;
  for (let q = T - 1; q >= 0; q--) {
    nextMust[q] = nm;
    if (mustUse[q]) nm = q;
  }
  const nextForbidden = forbidden.map((set) => {
    const nf = new Int32Array(n + 1);
    nf[n] = n;
    for (let b = n - 1; b >= 0; b--) nf[b] = set.has(b) ? b : nf[b + 1];
    return nf;
  });

  return {
    input,
    n,
    T,
    H,
    tiers,
    hostNames: input.hosts.map((h) => h.name),
    hostTier,
    objective,
    costModel,
    topN,
    options,
    atoms,
    prefix,
    stageOvh,
    cut,
    hasCut,
    maxCut,
    endPrefix,
    startPrefix,
    weights,
    weightPrefix,
    bytesOut,
    inputBytes: input.inputBytes,
    outputBytes: input.outputBytes,
    linkFixed,
    linkK,
    retFixed,
    retK,
    hopOvh,
    returns,
    codecs,
    xferCache: new Map(),
    tierHosts,
    deviceMayCompute,
    mustUse,
    nextMust,
    reqMin,
    reqMax,
    nextForbidden,
    uploadCap,
    computeCap,
    weightCap,
    shares,
  };
}

/** The raw input bytes each cost model assumes when none is given: the model's own, or Scission's 0.15 MB. */
export function defaultInputBytes(costModel: CostModel, modelInputBytes: number): number {
  return costModel === 'scission' ? SCISSION_INPUT_BYTES : modelInputBytes;
}

/**
 * The DP state slots both searches (dp.ts, minmax.ts) index their tables by: slot 0 is the origin, its host
 * set by each run; slots 1.. are (tier >= 1, allowed host), grouped by tier. Fresh arrays per call, since
 * each search writes its own origin into `h[0]`.
 */
export interface Slots {
  /** Tier position of each slot. */
  readonly q: number[];
  /** Host of each slot (-1 for the origin until a run sets it). */
  readonly h: number[];
  /** Slots of each tier position, in slot order. */
  readonly ofTier: number[][];
}

export function slotLayout(p: Prepared): Slots {
  const q = [0];
  const h = [-1];
  const ofTier: number[][] = p.tiers.map(() => []);
  ofTier[0].push(0);
  for (let t = 1; t < p.T; t++) {
    for (const host of p.tierHosts[t]) {
      ofTier[t].push(q.length);
      q.push(t);
      h.push(host);
    }
  }
  return { q, h, ofTier };
}
