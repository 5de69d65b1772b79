/**
 * The two cost models, evaluated on one plan. Both the exact search and the brute-force enumerator price
 * plans with these atoms, so their numbers agree bit for bit.
 *
 * Times are kept as integer nanoseconds ("atoms"): every block time and every hop is rounded to 1 ns once,
 * and from then on sums are exact and associative, so a DP that adds the same terms in another order (or
 * through prefix sums) gets the very same number as a plain loop, and ties are real ties.
 *
 * scission (Scission's published predictor, Lockhart et al. UCC 2020, scission_predict.py):
 *   latency = sum of each used tier's block times on its host
 *           + for each hop used: ping + bytes / bandwidth   (ping = the measured round trip, once per hop)
 *   The bytes leaving a tier are the frontier after its last block, or the raw input size when the device
 *   runs no block (Scission's default 0.15 MB; see input.ts). A tier that runs nothing is skipped: the link
 *   jumps over it. Nothing is sent back to the device.
 *
 * cleave (default), what the runtime does; on top of Scission's terms it:
 *   1. uses one-way latency, rtt / 2, per hop instead of the full round trip;
 *   2. adds `hopOverheadMs` (PLANNER_DEFAULTS: 0.25 ms) to every hop, including the return;
 *   3. counts the result's return from the last stage straight to the origin: rtt/2 + outputBytes /
 *      bandwidth + hopOverheadMs over the link last -> origin (or origin -> last when only that direction is
 *      given), unless the origin itself runs the last block;
 *   4. adds the host's `stageOverheadMs` (one session run) to each stage that does not start at block 0;
 *   5. adds the host's cut cost to each stage, as part of its compute: `cutMsPerByte x edgeBytes / 2` at
 *      each of its two boundaries, edgeBytes = the frontier at an interior cut, 0 at the model's input and
 *      output (the profiler's `calibrate` convention); each side rounded to 1 ns once (prepare.ts `cut`).
 *
 * Throughput (both models): requests are pipelined, so the bound is the slowest stage or link. A stage is
 * busy for its compute time; a link for bytes / bandwidth (+ hopOverheadMs under cleave). Propagation delay
 * does not limit throughput. bottleneck = max of these; throughput = 1000 / bottleneck req/s.
 */
import type { HopChoice, Prepared, Shape } from './prepare.js';

/** The least fraction of a raw hop's time a codec must save to be chosen over raw (see hopChoice). */
export const CODEC_MIN_GAIN = 0.1;

/**
 * The forward hop `from -> to` at every boundary c = 0..n: for each, the codec that makes the hop fastest
 * (coded bytes x atoms per byte of the link, plus the sender's encode and the receiver's decode per raw
 * byte, each term rounded to 1 ns once) among those usable at c, on both hosts, and within the sender
 * tier's upload cap. Raw wins unless a codec cuts the raw hop's time by at least CODEC_MIN_GAIN (or raw is
 * over the cap): a gain within the profile's own error is not worth a lossy answer, a codec's CPU, or a plan
 * that flips between raw and coded as the measurements wobble. Undefined without a link. Cached per plan() call: the searches read it
 * for every origin and pass, and `evaluate` prices hops with the very same numbers.
 */
export function hopChoice(p: Prepared, from: number, to: number): HopChoice | undefined {
  const i = from * p.H + to;
  const k = p.linkK[i];
  if (Number.isNaN(k)) return undefined;
  let choice = p.xferCache.get(i);
  if (!choice) {
    const { names, usable } = p.codecs;
    const K = names.length;
    const cap = p.uploadCap[p.hostTier[from]];
    const atoms = new Float64Array(p.n + 1);
    const codec = new Uint8Array(p.n + 1);
    const bytes = new Float64Array(p.n + 1);
    for (let c = 0; c <= p.n; c++) {
      const raw = p.bytesOut[c];
      const rawAtoms = raw > cap ? Infinity : Math.round(raw * k);
      // A codec must come in under this to be chosen over raw (any finite cost, where raw is over the cap).
      let best = rawAtoms * (1 - CODEC_MIN_GAIN);
      let bestK = 0;
      let bestBytes = raw;
      for (let j = 1; j < K; j++) {
        if (!usable[j][c]) continue;
        const hop = codedHop(p, from, to, j, c);
        if (!hop || hop.bytes > cap) continue;
        if (hop.atoms < best) {
          best = hop.atoms;
          bestK = j;
          bestBytes = hop.bytes;
        }
      }
      atoms[c] = bestK === 0 ? rawAtoms : best;
      codec[c] = bestK;
      bytes[c] = bestBytes;
    }
    choice = { atoms, codec, bytes };
    p.xferCache.set(i, choice);
  }
  return choice;
}

/**
 * The hop `from -> to` at boundary c in codec `k` (an index into `codecs.names`): transfer atoms and bytes on
 * the wire; null when a host has no figure for it (it cannot be priced). Usability and the upload cap are
 * not checked: `hopChoice` applies them, and `evaluate` prices a forced codec as it runs.
 */
export function codedHop(
  p: Prepared,
  from: number,
  to: number,
  k: number,
  c: number,
): { atoms: number; bytes: number } | null {
  const K = p.codecs.names.length;
  const raw = p.bytesOut[c];
  const perByte = p.linkK[from * p.H + to];
  if (k === 0) return { atoms: Math.round(raw * perByte), bytes: raw };
  const work = p.codecs.encode[from * K + k] + p.codecs.decode[to * K + k];
  if (Number.isNaN(work)) return null;
  const coded = raw * p.codecs.ratio[k][c];
  return { atoms: Math.round(coded * perByte) + Math.round(raw * work), bytes: coded };
}

/** A lower bound on the bytes a sender whose last block ends at c sends, whatever the hop and its codec. */
export function leastBytesOut(p: Prepared, c: number): number {
  let r = 1;
  for (let j = 1; j < p.codecs.names.length; j++) if (p.codecs.usable[j][c]) r = Math.min(r, p.codecs.ratio[j][c]);
  return p.bytesOut[c] * r;
}

/**
 * Transfer atoms of `from -> to` for a sender whose last block ends at each boundary c = 0..n (Infinity
 * where the sender tier's upload cap forbids it); undefined without a link. `hopChoice`'s atoms.
 */
export function transfers(p: Prepared, from: number, to: number): Float64Array | undefined {
  return hopChoice(p, from, to)?.atoms;
}

/** The result's return `last -> origin` under the cleave model (zero under scission or when last is the origin). */
function returnCost(
  p: Prepared,
  last: number,
  origin: number,
): { lat: number; busy: number; bytes: number; used: boolean } | undefined {
  if (!p.returns || last === origin) return { lat: 0, busy: 0, bytes: 0, used: false };
  const i = last * p.H + origin;
  const k = p.retK[i];
  if (Number.isNaN(k)) return undefined;
  const xfer = Math.round(p.outputBytes * k);
  return { lat: p.retFixed[i] + xfer, busy: xfer + p.hopOvh, bytes: p.outputBytes, used: true };
}

/** Everything the search and the constraints need to know about one plan, in atoms and bytes. */
export interface Metrics {
  latency: number;
  bottleneck: number;
  compute: number;
  transfer: number;
  /** Bytes the origin sends (0 when it runs every block). */
  deviceOut: number;
  deviceCompute: number;
  bytesTransferred: number;
  /** Per tier position: compute atoms of its stage (0 if unused), bytes its host sends, whether it computes. */
  tierCompute: number[];
  tierUpload: number[];
  tierUsed: boolean[];
  /** Per host index: weight bytes held. */
  hostWeights: Map<number, number>;
  hops: {
    from: number;
    to: number;
    bytes: number;
    rawBytes: number;
    codec: number;
    lat: number;
    busy: number;
    kind: 'forward' | 'return';
  }[];
  /** Stage compute atoms, in order (the device stage first when it computes). */
  stageCompute: number[];
}

/**
 * Prices a plan straightforwardly: blocks summed one by one, hops in order. Returns undefined when a link
 * the plan needs is missing (possible only with `missingLinks: 'skip'`).
 */
export function evaluate(p: Prepared, s: Shape): Metrics | undefined {
  const T = p.T;
  const m: Metrics = {
    latency: 0,
    bottleneck: 0,
    compute: 0,
    transfer: 0,
    deviceOut: 0,
    deviceCompute: 0,
    bytesTransferred: 0,
    tierCompute: new Array<number>(T).fill(0),
    tierUpload: new Array<number>(T).fill(0),
    tierUsed: new Array<boolean>(T).fill(false),
    hostWeights: new Map(),
    hops: [],
    stageCompute: [],
  };
  let sender = s.origin;
  let senderTier = 0;
  let start = 0;
  for (let i = 0; i < s.steps.length; i++) {
    const { q, h, end } = s.steps[i];
    if (i > 0) {
      const choice = hopChoice(p, sender, h);
      if (!choice) return undefined;
      const forced = s.steps[i].codec;
      const codec = forced ?? choice.codec[start];
      const fixed = forced === undefined ? undefined : codedHop(p, sender, h, forced, start);
      if (fixed === null) return undefined;
      const xfer = fixed ? fixed.atoms : choice.atoms[start];
      const bytes = fixed ? fixed.bytes : choice.bytes[start];
      const lat = p.linkFixed[sender * p.H + h] + xfer;
      const busy = xfer + p.hopOvh;
      m.latency += lat;
      m.transfer += lat;
      m.bottleneck = Math.max(m.bottleneck, busy);
      m.tierUpload[senderTier] += bytes;
      m.bytesTransferred += bytes;
      if (senderTier === 0) m.deviceOut = bytes;
      const rawBytes = p.bytesOut[start];
      m.hops.push({ from: sender, to: h, bytes, rawBytes, codec, lat, busy, kind: 'forward' });
    }
    if (end > start) {
      const A = p.atoms[h];
      let c = start > 0 ? p.stageOvh[h] : 0;
      c += p.cut[h][start] + p.cut[h][end];
      for (let k = start; k < end; k++) c += A[k];
      m.latency += c;
      m.compute += c;
      m.bottleneck = Math.max(m.bottleneck, c);
      m.tierCompute[q] = c;
      m.tierUsed[q] = true;
      m.stageCompute.push(c);
      if (q === 0) m.deviceCompute = c;
      let w = 0;
      for (let k = start; k < end; k++) w += p.weights[k];
      m.hostWeights.set(h, w);
    }
    sender = h;
    senderTier = q;
    start = end;
  }
  const ret = returnCost(p, sender, s.origin);
  if (!ret) return undefined;
  if (ret.used) {
    m.latency += ret.lat;
    m.transfer += ret.lat;
    m.bottleneck = Math.max(m.bottleneck, ret.busy);
    m.tierUpload[senderTier] += ret.bytes;
    m.bytesTransferred += ret.bytes;
    m.hops.push({
      from: sender,
      to: s.origin,
      bytes: ret.bytes,
      rawBytes: ret.bytes,
      codec: 0,
      lat: ret.lat,
      busy: ret.busy,
      kind: 'return',
    });
  }
  return m;
}

/** Canonical plan order for ties: the steps (tier position, host index, end) compared lexicographically. */
export function compareShapes(a: Shape, b: Shape): number {
  const n = Math.min(a.steps.length, b.steps.length);
  for (let i = 0; i < n; i++) {
    const x = a.steps[i];
    const y = b.steps[i];
    if (x.q !== y.q) return x.q - y.q;
    if (x.h !== y.h) return x.h - y.h;
    if (x.end !== y.end) return x.end - y.end;
  }
  return a.steps.length - b.steps.length;
}
