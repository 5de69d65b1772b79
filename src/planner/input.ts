/**
 * Profiles + network links -> PlanInput: the bridge from files (or any source of profiles) to the core,
 * which only sees numbers. Errors name the profile or network source.
 */
import { CleaveError } from '../errors.js';
import { DEFAULT_TIERS } from './criteria.js';
import { defaultInputBytes } from './prepare.js';
import { checkProfiles, type Profile } from './profile.js';
import {
  PLANNER_DEFAULTS,
  type Constraint,
  type CostModel,
  type Objective,
  type PlanInput,
  type PlanLink,
  type PlannerOptions,
} from './types.js';

export interface ProfilesToInputOptions {
  /** Tier chain, origin first. Default device, edge, cloud. */
  readonly tiers?: readonly string[];
  readonly costModel?: CostModel;
  readonly objective?: Objective;
  readonly pareto?: boolean;
  readonly topN?: number;
  readonly constraints?: readonly Constraint[];
  /** Raw input bytes uploaded when the device runs no block. Default: the model's (cleave), 0.15 MB (scission). */
  readonly inputBytes?: number;
  /** Which block time to plan with. Default 'median'. */
  readonly statistic?: 'median' | 'p90';
  /** Where the links came from, for error messages. */
  readonly networkSource?: string;
  readonly options?: Partial<PlannerOptions>;
  /**
   * Wire codecs the hops may use besides raw, by name; default every codec the profiles measured. Ratios
   * and errors come from the origin tier's profile (the model's tensors are the same on every host), each
   * host's cost from its own; a host whose profile lacks a codec never sends or receives in it.
   */
  readonly codecs?: readonly string[];
  /** The largest model-output relative error a lossy codec may cause at one cut. Default 0: lossless only. */
  readonly maxError?: number;
  /**
   * The codecs the wire has, and which of them are lossless (the runtime's transport/codec.ts). A profile's
   * codec of another name is not offered; a lossy one without measured errors is offered nowhere (a profile
   * could otherwise pass a lossy codec off as lossless by leaving its errors out). Absent: as the profiles say.
   */
  readonly wireCodecs?: { readonly known: readonly string[]; readonly lossless: readonly string[] };
}

export function profilesToInput(
  profiles: readonly { readonly profile: Profile; readonly source: string }[],
  links: readonly PlanLink[],
  opts: ProfilesToInputOptions = {},
): PlanInput {
  checkProfiles(profiles);
  const tiers = opts.tiers ?? DEFAULT_TIERS;
  const costModel = opts.costModel ?? PLANNER_DEFAULTS.costModel;
  const model = profiles[0].profile.model;
  for (const { profile, source } of profiles) {
    if (!tiers.includes(profile.host.tier)) {
      throw new CleaveError(
        'E_BAD_PROFILE',
        `${source}: host.tier '${profile.host.tier}' is not in the tier chain ${tiers.join(' -> ')}`,
      );
    }
  }
  if (!profiles.some(({ profile }) => profile.host.tier === tiers[0])) {
    throw new CleaveError(
      'E_BAD_PROFILE',
      `no profile of a '${tiers[0]}' host: the origin tier must have one (requests arrive there)`,
    );
  }
  // Every pair of hosts in increasing tiers may be used (a skipped tier makes the link jump over it).
  if ((opts.options?.missingLinks ?? PLANNER_DEFAULTS.missingLinks) === 'error') {
    const have = new Set(links.map((l) => `${l.from}\u0000${l.to}`));
    for (const a of profiles) {
      for (const b of profiles) {
        if (tiers.indexOf(a.profile.host.tier) >= tiers.indexOf(b.profile.host.tier)) continue;
        if (!have.has(`${a.profile.host.name}\u0000${b.profile.host.name}`)) {
          throw new CleaveError(
            'E_BAD_NETWORK',
            `${opts.networkSource ?? 'network'}: no row for ${a.profile.host.name} -> ${b.profile.host.name} (${a.source} is ${a.profile.host.tier}, ${b.source} is ${b.profile.host.tier}; every host may send to any later tier)`,
          );
        }
      }
    }
  }
  const stat = opts.statistic ?? 'median';
  const ref =
    profiles.find(({ profile }) => profile.host.tier === tiers[0] && profile.codecs)?.profile.codecs ??
    profiles.find(({ profile }) => profile.codecs)?.profile.codecs ??
    {};
  const wire = opts.wireCodecs;
  const offered = Object.keys(ref).filter(
    (c) => c !== 'raw' && (opts.codecs ?? [c]).includes(c) && (!wire || wire.known.includes(c)),
  );
  const errorOf = (c: string): readonly (number | null)[] | undefined =>
    ref[c].error ?? (wire && !wire.lossless.includes(c) ? new Array<null>(ref[c].ratio.length).fill(null) : undefined);
  return {
    tiers,
    hosts: profiles.map(({ profile }) => ({
      name: profile.host.name,
      tier: profile.host.tier,
      blockMs: profile.timings.blocks.map((b) => (stat === 'p90' ? b.p90Ms : b.medianMs)),
      stageOverheadMs: profile.timings.runOverheadMs,
      cutMsPerByte: profile.timings.cutMsPerByte,
      codecMsPerByte: Object.fromEntries(
        offered.flatMap((c) => {
          const m = profile.codecs?.[c];
          return m ? [[c, { encode: m.encodeMsPerByte, decode: m.decodeMsPerByte }]] : [];
        }),
      ),
    })),
    codecs: offered.map((c) => {
      const error = errorOf(c);
      return { name: c, ratio: ref[c].ratio, ...(error ? { error } : {}) };
    }),
    maxError: opts.maxError,
    links,
    frontierBytes: model.blocks.map((b) => b.frontierBytes),
    inputBytes: opts.inputBytes ?? defaultInputBytes(costModel, model.inputBytes),
    outputBytes: model.outputBytes,
    weightBytes: model.blocks.map((b) => b.weightBytes),
    constraints: opts.constraints,
    objective: opts.objective,
    pareto: opts.pareto,
    costModel,
    topN: opts.topN,
    options: opts.options,
  };
}
