/**
 * Constraint syntax, as text: Scission's per-tier criteria and Cleave's long flags. Pure string parsing;
 * names of tiers and hosts and block ranges are checked by the planner, which names the flag on error.
 *
 * Scission's criteria (scission_predict.py `-d/-e/-c`), one comma-separated list per tier:
 *   k       block k must run on this tier          (Scission: layer k)
 *   !k      block k must not run on this tier
 *   -1      this tier must not be used (runs no block; for the device: it only uploads the input)
 *   !-1     this tier must be used
 *   name    this tier's host must be `name`, and the tier must be used; several names: one of them
 *   !name   host `name` must not be used
 * Differences from Scission, on purpose: Scission indexes Keras layers, Cleave indexes blocks; and
 * Scission's `!name` also silently required the tier to be used (a side effect of its filter), Cleave's
 * only excludes the host (add `!-1` for Scission's behaviour).
 */
import { CleaveError } from '../errors.js';
import type { Constraint } from './types.js';

export const DEFAULT_TIERS: readonly string[] = ['device', 'edge', 'cloud'];

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
};

function bad(flag: string, msg: string): never {
  throw new CleaveError('E_BAD_INPUT', `${flag}: ${msg}`);
}

/** `4096`, `2MB`, `1.5MiB` -> bytes (decimal kB/MB/GB as Scission prints them). */
export function parseSize(text: string, flag: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmg]i?b|b)?\s*$/i.exec(text);
  const unit = SIZE_UNITS[(m?.[2] ?? '').toLowerCase()];
  if (!m || unit === undefined) bad(flag, `'${text}' is not a size such as 4096, 2MB or 1.5MiB`);
  return Math.round(Number(m[1]) * unit);
}

/** One tier's Scission criteria, e.g. `3,!10,raspi4` for the device (`-d`). */
export function parseScissionCriteria(flag: string, tier: string, text: string): Constraint[] {
  const out: Constraint[] = [];
  const hosts: string[] = [];
  const items = text.split(',').map((s) => s.trim());
  if (items.some((s) => s === '')) bad(flag, `'${text}' has an empty item`);
  for (const item of items) {
    const source = `${flag} "${item}"`;
    if (item === '-1') out.push({ kind: 'noTier', tier, source });
    else if (item === '!-1') out.push({ kind: 'useTier', tier, source });
    else if (/^\d+$/.test(item)) out.push({ kind: 'blockOn', block: Number(item), tier, source });
    else if (/^!\d+$/.test(item)) out.push({ kind: 'blockNotOn', block: Number(item.slice(1)), tier, source });
    else if (/^-\d+$/.test(item) || /^!-\d+$/.test(item))
      bad(flag, `'${item}': negative block indices other than -1 mean nothing`);
    else if (item.startsWith('!')) out.push({ kind: 'noHost', host: item.slice(1), source });
    else hosts.push(item);
  }
  if (hosts.length > 0) out.push({ kind: 'useHost', hosts, source: `${flag} "${hosts.join(',')}"` });
  return out;
}

/**
 * One long flag and its value:
 *   --block-on K=TIER (K may be a range A-B)   --block-not-on K=TIER
 *   --use-tier TIER      --no-tier TIER        --use-host NAME       --no-host NAME
 *   --max-upload TIER=SIZE                     --max-weights HOST=SIZE
 *   --max-compute TIER=30%  |  TIER=0.5s  |  TIER=200ms
 */
export function parseConstraintFlag(flag: string, value: string): Constraint[] {
  const source = `${flag} ${value}`;
  const pair = (): [string, string] => {
    const i = value.lastIndexOf('=');
    if (i <= 0 || i === value.length - 1) bad(flag, `'${value}': expected NAME=VALUE`);
    return [value.slice(0, i).trim(), value.slice(i + 1).trim()];
  };
  const blocks = (text: string): number[] => {
    const m = /^(\d+)(?:\s*-\s*(\d+))?$/.exec(text);
    if (!m) bad(flag, `'${text}' is not a block index or range A-B`);
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    if (b < a) bad(flag, `range '${text}' is empty`);
    return Array.from({ length: b - a + 1 }, (_, i) => a + i);
  };
  const name = (): string => {
    const v = value.trim();
    if (v === '') bad(flag, 'expected a name');
    return v;
  };
  switch (flag) {
    case '--block-on': {
      const [k, tier] = pair();
      return blocks(k).map((block) => ({ kind: 'blockOn', block, tier, source }));
    }
    case '--block-not-on': {
      const [k, tier] = pair();
      return blocks(k).map((block) => ({ kind: 'blockNotOn', block, tier, source }));
    }
    case '--use-tier':
      return [{ kind: 'useTier', tier: name(), source }];
    case '--no-tier':
      return [{ kind: 'noTier', tier: name(), source }];
    case '--use-host':
      return [{ kind: 'useHost', hosts: [name()], source }];
    case '--no-host':
      return [{ kind: 'noHost', host: name(), source }];
    case '--max-upload': {
      const [tier, size] = pair();
      return [{ kind: 'maxUpload', tier, bytes: parseSize(size, flag), source }];
    }
    case '--max-weights': {
      const [host, size] = pair();
      return [{ kind: 'maxWeights', host, bytes: parseSize(size, flag), source }];
    }
    case '--max-compute': {
      const [tier, limit] = pair();
      const m = /^(\d+(?:\.\d+)?)\s*(%|s|ms)$/i.exec(limit);
      if (!m) bad(flag, `'${limit}' is not a limit such as 30%, 0.5s or 200ms`);
      const x = Number(m[1]);
      const unit = m[2].toLowerCase();
      if (unit === '%') {
        if (x > 100) bad(flag, `${x}% is more than 100%`);
        return [{ kind: 'maxComputeShare', tier, share: x / 100, source }];
      }
      return [{ kind: 'maxCompute', tier, ms: unit === 's' ? x * 1000 : x, source }];
    }
    default:
      return bad(flag, 'not a constraint flag');
  }
}
