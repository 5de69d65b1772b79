/**
 * The wire codecs offered to the planner (`PlanInput.codecs`) as flat tables: for each codec, its ratio and
 * whether it may be used at each boundary, and each host's encode and decode atoms per raw byte. Index 0 is
 * always `raw` (ratio 1, no work). Its own module so that prepare.ts stays one pass over the rest.
 */
import { CleaveError } from '../errors.js';
import { ATOMS_PER_MS } from './atoms.js';
import type { CostModel, PlanInput } from './types.js';

export interface CodecTables {
  /** Codec names, `raw` first. */
  readonly names: readonly string[];
  /** Per codec, n + 1 entries: coded bytes per raw byte at boundary c. */
  readonly ratio: readonly Float64Array[];
  /** Per codec, n + 1 entries: 1 where the codec may carry the tensors at boundary c. */
  readonly usable: readonly Uint8Array[];
  /** Per host h and codec k, at h * K + k: encode and decode atoms per raw byte (NaN: no figure, unusable). */
  readonly encode: Float64Array;
  readonly decode: Float64Array;
}

function bad(msg: string): never {
  throw new CleaveError('E_BAD_INPUT', msg);
}

const isNonNeg = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x) && x >= 0;

/** Validates `input.codecs`, `maxError` and the hosts' codec figures; n is the number of blocks. */
export function codecTables(input: PlanInput, n: number, costModel: CostModel): CodecTables {
  // Scission's predictor has no codecs: its answers stay Scission's.
  const offered = costModel === 'cleave' ? (input.codecs ?? []) : [];
  const maxError = input.maxError ?? 0;
  if (!isNonNeg(maxError)) bad(`maxError ${String(input.maxError)}: expected a number >= 0`);
  const names = ['raw'];
  const ratio = [new Float64Array(n + 1).fill(1)];
  const usable = [new Uint8Array(n + 1).fill(1)];
  for (const [i, c] of offered.entries()) {
    const f = `codecs[${i}]`;
    if (typeof c.name !== 'string' || c.name === '') bad(`${f}.name: expected a codec name`);
    if (names.includes(c.name))
      bad(`${f}: codec '${c.name}' is ${c.name === 'raw' ? 'always offered' : 'given twice'}`);
    if (!Array.isArray(c.ratio) || c.ratio.length !== n + 1)
      bad(
        `${f} (${c.name}).ratio: expected ${n + 1} entries (boundaries 0..${n}), got ${Array.isArray(c.ratio) ? c.ratio.length : 'none'}`,
      );
    const r = new Float64Array(n + 1);
    c.ratio.forEach((x, b) => {
      if (!(typeof x === 'number' && x > 0 && Number.isFinite(x)))
        bad(`${f} (${c.name}).ratio[${b}] = ${String(x)}: expected a number > 0`);
      r[b] = x;
    });
    const u = new Uint8Array(n + 1).fill(1);
    if (c.error !== undefined) {
      if (!Array.isArray(c.error) || c.error.length !== n + 1)
        bad(`${f} (${c.name}).error: expected ${n + 1} entries (boundaries 0..${n})`);
      c.error.forEach((e, b) => {
        if (e !== null && !isNonNeg(e))
          bad(`${f} (${c.name}).error[${b}] = ${String(e)}: expected a number >= 0 or null`);
        u[b] = e !== null && e <= maxError ? 1 : 0;
      });
    }
    names.push(c.name);
    ratio.push(r);
    usable.push(u);
  }
  const K = names.length;
  const H = input.hosts.length;
  const encode = new Float64Array(H * K).fill(NaN);
  const decode = new Float64Array(H * K).fill(NaN);
  input.hosts.forEach((h, i) => {
    encode[i * K] = 0;
    decode[i * K] = 0;
    for (const [name, cost] of Object.entries(h.codecMsPerByte ?? {})) {
      const k = names.indexOf(name);
      if (!isNonNeg(cost?.encode) || !isNonNeg(cost?.decode))
        bad(`host '${h.name}' codecMsPerByte.${name}: expected {encode, decode} in ms per byte >= 0`);
      if (k <= 0) continue; // a figure for a codec not offered (or raw): nothing to use it for
      encode[i * K + k] = cost.encode * ATOMS_PER_MS;
      decode[i * K + k] = cost.decode * ATOMS_PER_MS;
    }
  });
  return { names, ratio, usable, encode, decode };
}
