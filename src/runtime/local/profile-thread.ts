/**
 * Profiling off the event loop: `profileOffThread` runs load, analysis and `cachedProfile` for one model in
 * a worker thread (profile-worker.ts) and resolves with the profile. The host uses it for a model it loads
 * while it serves (the repository extension's load of a model the config does not list). On the host's own
 * thread every ORT run of the profile stalls the loop its heartbeats, pings and requests share: loading
 * MobileNetV2, the loop's p99 delay was 76-100 ms there and 16-18 ms with the profile here (`npm run bench
 * -- model-load`). At start-up, before the host serves, the profile is taken on the main thread as before.
 */
import { Worker } from 'node:worker_threads';
import { CleaveError, isErrorCode } from '../../errors.js';
import type { DeploymentConfig, HostConfig, ModelConfig } from '../config.js';
import type { ProfileDoc } from './profiler.js';

const WORKER_URL = new URL('./profile-worker.mjs', import.meta.url);

/** What the worker is given (structured-cloned). */
export interface ProfileJob {
  readonly modelsDir: string;
  readonly cacheDir: string;
  readonly spec: ModelConfig;
  readonly self: HostConfig;
  readonly threads: number;
  readonly config: DeploymentConfig;
  readonly quotaCpus: number | null;
  /** The worker's own log level (its profile-cache lines). */
  readonly logLevel: string;
}

export type ProfileReply =
  | { readonly ok: true; readonly profile: ProfileDoc }
  | { readonly ok: false; readonly error: string; readonly code: string };

export function profileOffThread(job: ProfileJob): Promise<ProfileDoc> {
  return new Promise<ProfileDoc>((resolve, reject) => {
    // execArgv: [] keeps the worker clean of the parent's loader flags; profile-worker.mjs registers tsx.
    const w = new Worker(WORKER_URL, { workerData: job, execArgv: [], name: `cleave-profile-${job.spec.name}` });
    let settled = false;
    w.once('message', (r: ProfileReply) => {
      settled = true;
      if (r.ok) resolve(r.profile);
      else reject(new CleaveError(isErrorCode(r.code) ? r.code : 'E_INTERNAL', r.error));
      void w.terminate();
    });
    w.once('error', (e) => {
      if (settled) return;
      settled = true;
      reject(new CleaveError('E_INTERNAL', `profiling ${job.spec.name} failed: ${e.message}`));
    });
    w.once('exit', (code) => {
      if (settled) return;
      settled = true;
      reject(new CleaveError('E_INTERNAL', `profiling ${job.spec.name}: the worker exited with ${code}`));
    });
  });
}
