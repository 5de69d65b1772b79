/**
 * The control token a CLI command sends with a change: --token, else CLEAVE_CONTROL_TOKEN, else the file
 * `cleave up` wrote for the deployment at that URL (in its run directory), else none (the host answers 401
 * and says how to get one).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { controlTokenFile } from '../runtime/process/launcher.js';
import { cacheDir } from './model-ref.js';

export function controlTokenFor(url: string, flag?: string): string | undefined {
  if (flag) return flag;
  if (process.env.CLEAVE_CONTROL_TOKEN) return process.env.CLEAVE_CONTROL_TOKEN;
  let listen: string;
  try {
    listen = new URL(url).host;
  } catch {
    return undefined;
  }
  const file = controlTokenFile(join(cacheDir(), 'run'), listen);
  return existsSync(file) ? readFileSync(file, 'utf8').trim() || undefined : undefined;
}

/** Headers for a control call: JSON, with the bearer token when there is one. */
export function controlHeaders(token: string | undefined): Record<string, string> {
  return { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) };
}
