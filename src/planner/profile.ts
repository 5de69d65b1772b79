/**
 * The profile JSON, format `cleave-profile/1`: one host's measured time for every block of one model.
 * `cleave profile` writes it (src/runtime/profiler.ts); `cleave plan` reads it through `parseProfile`,
 * which names the file and the field on any error and rejects any other format or version.
 */
import { CleaveError } from '../errors.js';

export const PROFILE_FORMAT = 'cleave-profile/1';

export interface ProfileBlock {
  readonly index: number;
  readonly name: string;
  /** The block's node range in execution order, [first, last). */
  readonly nodes: readonly [number, number];
  /** Bytes crossing the cut after this block (the last block's: the model output). */
  readonly frontierBytes: number;
  readonly frontierTensors: number;
  readonly weightBytes: number;
}

export interface ProfileHost {
  readonly name: string;
  readonly tier: string;
  readonly cpu: string;
  readonly cores: number;
  readonly memoryBytes: number;
  readonly threads: number;
  /**
   * The CPU quota (CPUs) of the host's cgroup while it was profiled; absent or null: none. Informational: a
   * profile taken under a quota is partly throttled (and the profile cache keeps one per quota).
   */
  readonly quotaCpus?: number | null;
}

export interface ProfileTimings {
  readonly repeats: number;
  readonly warmup: number;
  /** One per block. `rawMedianMs` (optional): the block timed alone, before calibration. */
  readonly blocks: readonly { readonly medianMs: number; readonly p90Ms: number; readonly rawMedianMs?: number }[];
  readonly wholeModelMs: { readonly medianMs: number; readonly p90Ms: number };
  /** Optional: the fixed cost of one session run on this host (ms). */
  readonly runOverheadMs?: number;
  /**
   * Optional: what a cut costs beyond the transfer, in ms per byte of its frontier (both sides together:
   * the stage before it writes the frontier out of ORT's internal layout, the stage after reads it back in).
   * Block times exclude it, so that they sum to the whole model; the profiler estimates it from its
   * calibration chunks. Informational: the planner does not read it yet.
   */
  readonly cutMsPerByte?: number;
}

/**
 * One wire codec measured on this host for this model (src/runtime/local/codec-profile.ts): its cost per raw
 * byte here, its ratio at every boundary 0..n, and for lossy codecs the output's relative error and top-1
 * agreement at the boundaries where they were measured (null elsewhere).
 */
export interface ProfileCodec {
  readonly encodeMsPerByte: number;
  readonly decodeMsPerByte: number;
  readonly ratio: readonly number[];
  readonly error?: readonly (number | null)[];
  readonly top1?: readonly (number | null)[];
}

export interface Profile {
  readonly format: typeof PROFILE_FORMAT;
  readonly model: {
    readonly name: string;
    readonly sha256: string;
    readonly inputBytes: number;
    readonly outputBytes: number;
    readonly blocks: readonly ProfileBlock[];
  };
  readonly host: ProfileHost;
  readonly timings: ProfileTimings;
  /** Optional: the wire codecs measured here, by name (older profiles have none: the hops stay raw). */
  readonly codecs?: Readonly<Record<string, ProfileCodec>>;
  readonly createdAt: string;
}

type Obj = Record<string, unknown>;

class Reader {
  constructor(private readonly source: string) {}

  fail(field: string, msg: string): never {
    throw new CleaveError('E_BAD_PROFILE', `${this.source}: ${field}: ${msg}`);
  }

  obj(v: unknown, field: string): Obj {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(field, 'expected an object');
    return v as Obj;
  }

  arr(v: unknown, field: string): unknown[] {
    if (!Array.isArray(v)) this.fail(field, 'expected an array');
    return v;
  }

  str(v: unknown, field: string): string {
    if (typeof v !== 'string' || v === '') this.fail(field, 'expected a non-empty string');
    return v;
  }

  num(v: unknown, field: string, opts: { int?: boolean; min?: number } = {}): number {
    const min = opts.min ?? 0;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || (opts.int && !Number.isInteger(v))) {
      this.fail(field, `expected ${opts.int ? 'an integer' : 'a number'} >= ${min}, got ${JSON.stringify(v)}`);
    }
    return v;
  }
}

/** Validates a parsed profile JSON document; `source` (the file name) prefixes every error. */
export function parseProfile(json: unknown, source: string): Profile {
  const r = new Reader(source);
  const top = r.obj(json, '(document)');
  if (top.format === undefined) r.fail('format', `missing: not a Cleave profile (expected "${PROFILE_FORMAT}")`);
  if (top.format !== PROFILE_FORMAT) {
    r.fail(
      'format',
      `${JSON.stringify(top.format)} is not supported (this version of cleave reads "${PROFILE_FORMAT}")`,
    );
  }
  const m = r.obj(top.model, 'model');
  const sha256 = r.str(m.sha256, 'model.sha256');
  if (!/^[0-9a-f]{64}$/i.test(sha256)) r.fail('model.sha256', 'expected 64 hex digits');
  const blocksRaw = r.arr(m.blocks, 'model.blocks');
  if (blocksRaw.length === 0) r.fail('model.blocks', 'the model has no blocks');
  const blocks: ProfileBlock[] = blocksRaw.map((b, i) => {
    const f = `model.blocks[${i}]`;
    const o = r.obj(b, f);
    const index = r.num(o.index, `${f}.index`, { int: true });
    if (index !== i) r.fail(`${f}.index`, `expected ${i} (blocks in order), got ${index}`);
    const nodes = r.arr(o.nodes, `${f}.nodes`);
    if (nodes.length !== 2) r.fail(`${f}.nodes`, 'expected [first, last)');
    const n0 = r.num(nodes[0], `${f}.nodes[0]`, { int: true });
    const n1 = r.num(nodes[1], `${f}.nodes[1]`, { int: true });
    return {
      index,
      name: typeof o.name === 'string' ? o.name : `block ${i}`,
      nodes: [n0, n1] as const,
      frontierBytes: r.num(o.frontierBytes, `${f}.frontierBytes`),
      frontierTensors: r.num(o.frontierTensors, `${f}.frontierTensors`, { int: true }),
      weightBytes: r.num(o.weightBytes, `${f}.weightBytes`),
    };
  });
  const h = r.obj(top.host, 'host');
  const host: ProfileHost = {
    name: r.str(h.name, 'host.name'),
    tier: r.str(h.tier, 'host.tier'),
    cpu: typeof h.cpu === 'string' ? h.cpu : r.fail('host.cpu', 'expected a string'),
    cores: r.num(h.cores, 'host.cores', { int: true }),
    memoryBytes: r.num(h.memoryBytes, 'host.memoryBytes'),
    threads: r.num(h.threads, 'host.threads', { int: true }),
    ...(h.quotaCpus === undefined || h.quotaCpus === null
      ? {}
      : { quotaCpus: r.num(h.quotaCpus, 'host.quotaCpus', { min: 0 }) }),
  };
  const t = r.obj(top.timings, 'timings');
  const tb = r.arr(t.blocks, 'timings.blocks');
  if (tb.length !== blocks.length) r.fail('timings.blocks', `${tb.length} entries for ${blocks.length} blocks`);
  const whole = r.obj(t.wholeModelMs, 'timings.wholeModelMs');
  const timings: ProfileTimings = {
    repeats: r.num(t.repeats, 'timings.repeats', { int: true, min: 1 }),
    warmup: r.num(t.warmup, 'timings.warmup', { int: true }),
    blocks: tb.map((x, i) => {
      const o = r.obj(x, `timings.blocks[${i}]`);
      return {
        medianMs: r.num(o.medianMs, `timings.blocks[${i}].medianMs`),
        p90Ms: r.num(o.p90Ms, `timings.blocks[${i}].p90Ms`),
        ...(o.rawMedianMs !== undefined
          ? { rawMedianMs: r.num(o.rawMedianMs, `timings.blocks[${i}].rawMedianMs`) }
          : {}),
      };
    }),
    wholeModelMs: {
      medianMs: r.num(whole.medianMs, 'timings.wholeModelMs.medianMs'),
      p90Ms: r.num(whole.p90Ms, 'timings.wholeModelMs.p90Ms'),
    },
    ...(t.runOverheadMs !== undefined ? { runOverheadMs: r.num(t.runOverheadMs, 'timings.runOverheadMs') } : {}),
    ...(t.cutMsPerByte !== undefined ? { cutMsPerByte: r.num(t.cutMsPerByte, 'timings.cutMsPerByte') } : {}),
  };
  const codecs = top.codecs === undefined ? undefined : parseCodecs(r, r.obj(top.codecs, 'codecs'), blocks.length);
  const createdAt = r.str(top.createdAt, 'createdAt');
  if (Number.isNaN(Date.parse(createdAt))) r.fail('createdAt', `${JSON.stringify(createdAt)} is not a date`);
  return {
    format: PROFILE_FORMAT,
    model: {
      name: r.str(m.name, 'model.name'),
      sha256: sha256.toLowerCase(),
      inputBytes: r.num(m.inputBytes, 'model.inputBytes'),
      outputBytes: r.num(m.outputBytes, 'model.outputBytes'),
      blocks,
    },
    host,
    timings,
    ...(codecs ? { codecs } : {}),
    createdAt,
  };
}

function parseCodecs(r: Reader, o: Obj, n: number): Record<string, ProfileCodec> {
  const out: Record<string, ProfileCodec> = {};
  for (const [name, v] of Object.entries(o)) {
    const f = `codecs.${name}`;
    const c = r.obj(v, f);
    const list = (x: unknown, field: string, nullable: boolean): (number | null)[] => {
      const a = r.arr(x, field);
      if (a.length !== n + 1) r.fail(field, `expected ${n + 1} entries (boundaries 0..${n}), got ${a.length}`);
      return a.map((e, i) => (nullable && e === null ? null : r.num(e, `${field}[${i}]`)));
    };
    const ratio = list(c.ratio, `${f}.ratio`, false) as number[];
    ratio.forEach((x, i) => {
      if (x <= 0) r.fail(`${f}.ratio[${i}]`, `expected a number > 0, got ${x}`);
    });
    out[name] = {
      encodeMsPerByte: r.num(c.encodeMsPerByte, `${f}.encodeMsPerByte`),
      decodeMsPerByte: r.num(c.decodeMsPerByte, `${f}.decodeMsPerByte`),
      ratio,
      ...(c.error !== undefined ? { error: list(c.error, `${f}.error`, true) } : {}),
      ...(c.top1 !== undefined ? { top1: list(c.top1, `${f}.top1`, true) } : {}),
    };
  }
  return out;
}

/** Profiles of one plan: the same model (sha256 and block count) and distinct host names. */
export function checkProfiles(profiles: readonly { readonly profile: Profile; readonly source: string }[]): void {
  if (profiles.length === 0) throw new CleaveError('E_BAD_INPUT', 'no profiles given');
  const first = profiles[0];
  const hosts = new Map<string, string>();
  for (const { profile, source } of profiles) {
    if (profile.model.sha256 !== first.profile.model.sha256) {
      throw new CleaveError(
        'E_BAD_PROFILE',
        `${source} profiles model ${profile.model.name} (sha256 ${profile.model.sha256.slice(0, 12)}...), but ${first.source} profiles ${first.profile.model.name} (sha256 ${first.profile.model.sha256.slice(0, 12)}...): profiles of one plan must be of the same model file`,
      );
    }
    if (profile.model.blocks.length !== first.profile.model.blocks.length) {
      throw new CleaveError(
        'E_BAD_PROFILE',
        `${source} has ${profile.model.blocks.length} blocks but ${first.source} has ${first.profile.model.blocks.length}: profile both with the same block granularity`,
      );
    }
    const seen = hosts.get(profile.host.name);
    if (seen !== undefined)
      throw new CleaveError(
        'E_BAD_PROFILE',
        `${source} and ${seen} both profile host '${profile.host.name}': host names must be unique`,
      );
    hosts.set(profile.host.name, source);
  }
}
