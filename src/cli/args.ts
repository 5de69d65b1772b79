/** Flag value parsing shared by the commands: sizes, integers, lists. Errors name the flag. */
import { CleaveError } from '../errors.js';

const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
};

/** `4096`, `2MB`, `1.5 MiB` -> bytes. */
export function parseBytes(flag: string, v: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmg]i?b|b)?\s*$/i.exec(v);
  const unit = UNITS[(m?.[2] ?? '').toLowerCase()];
  if (!m || unit === undefined)
    throw new CleaveError('E_BAD_INPUT', `${flag} '${v}': expected a size such as 4096, 2MB or 1.5MiB`);
  return Math.round(Number(m[1]) * unit);
}

export function parseIntFlag(flag: string, v: string, min = 0): number {
  if (!/^\d+$/.test(v.trim()) || Number(v) < min)
    throw new CleaveError('E_BAD_INPUT', `${flag} '${v}': expected an integer >= ${min}`);
  return Number(v);
}

export function parseFloatFlag(flag: string, v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < 0)
    throw new CleaveError('E_BAD_INPUT', `${flag} '${v}': expected a non-negative number`);
  return n;
}

export function parseIntList(flag: string, v: string): number[] {
  const parts = v
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (parts.length === 0) throw new CleaveError('E_BAD_INPUT', `${flag} is empty`);
  return parts.map((p) => {
    if (!/^-?\d+$/.test(p)) throw new CleaveError('E_BAD_INPUT', `${flag} '${v}': '${p}' is not an integer`);
    return Number(p);
  });
}
