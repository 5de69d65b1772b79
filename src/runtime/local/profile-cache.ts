/**
 * A host's profile, cached on disk by model sha256, host, ORT threads, granularity, repeats and CPU quota:
 * profiling runs on a host's first start only (and again under another quota: a quota throttles part of it).
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { DeploymentConfig, HostConfig } from '../config.js';
import { DEFAULT_TIERS } from '../../planner/criteria.js';
import { CODECS } from '../../transport/codec.js';
import type { Analysis } from './analysis.js';
import { profileModel, PROFILE_DEFAULTS, PROFILE_FORMAT, type ProfileDoc } from './profiler.js';

/** The host's profile: from the cache when this model, host, thread count and granularity were profiled. */
export async function cachedProfile(
  dir: string,
  a: Analysis,
  self: HostConfig,
  threads: number,
  cfg: DeploymentConfig,
  log: Logger,
  /** The host's CPU quota now (CPUs), recorded in the profile; null: none. */
  quotaCpus: number | null = null,
): Promise<ProfileDoc> {
  const g = cfg.granularity ?? {};
  const repeats = cfg.profile?.repeats ?? PROFILE_DEFAULTS.repeats;
  const warmup = cfg.profile?.warmup ?? PROFILE_DEFAULTS.warmup;
  const key = `${a.model.sha256.slice(0, 16)}-${self.name}-t${threads}-k${g.maxTensors ?? 'all'}-b${g.maxBytes ?? 'all'}-r${repeats}-q${quotaCpus ?? 'none'}.json`;
  const file = join(dir, 'profiles', key);
  if (existsSync(file)) {
    try {
      const p = JSON.parse(readFileSync(file, 'utf8')) as ProfileDoc;
      if (
        p.format === PROFILE_FORMAT &&
        p.model.sha256 === a.model.sha256 &&
        p.model.blocks.length === a.blocks.length &&
        // Made before a wire codec existed: profile again to measure every one.
        CODECS.every((c) => c === 'raw' || p.codecs?.[c] !== undefined)
      ) {
        log.info({ file }, 'profile loaded from cache');
        return p;
      }
    } catch {
      // Unreadable cache entry: profile again.
    }
  }
  const t0 = Date.now();
  // The plans read codecs' output errors from the origin tier's profile (the model's tensors are the same on
  // every host): the other hosts measure them at the model's input only, not with a tail session per cut.
  const origin = self.tier === (cfg.tiers ?? DEFAULT_TIERS)[0];
  const made = await profileModel(a, {
    host: self.name,
    tier: self.tier,
    threads,
    repeats,
    warmup,
    ...(origin ? {} : { codecErrorCuts: 0 }),
  });
  const p: ProfileDoc = { ...made, host: { ...made.host, quotaCpus } };
  mkdirSync(join(dir, 'profiles'), { recursive: true });
  writeFileSync(`${file}.tmp`, JSON.stringify(p));
  renameSync(`${file}.tmp`, file);
  log.info({ ms: Date.now() - t0, wholeModelMs: p.timings.wholeModelMs.medianMs }, 'profiled');
  return p;
}
