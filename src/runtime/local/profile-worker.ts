/**
 * The inside of a profiling worker thread: loads one model of the repository, analyses it and profiles it
 * (or reads its cached profile), then posts the profile and exits. Started by `profileOffThread`
 * (profile-thread.ts) through profile-worker.mjs, so that a host that serves already keeps its event loop
 * while it profiles a model it is asked to load: the profiler runs ORT on the thread that calls it, for
 * seconds to minutes.
 */
import { parentPort, workerData } from 'node:worker_threads';
import pino from 'pino';
import { errorMessage } from '../../errors.js';
import { resolveInputs } from '../../graph/shapes.js';
import { loadRepoModel } from '../model-repo.js';
import { analyze } from './analysis.js';
import { cachedProfile } from './profile-cache.js';
import type { ProfileJob, ProfileReply } from './profile-thread.js';

const job = workerData as ProfileJob;
const reply = (r: ProfileReply): void => parentPort?.postMessage(r);

try {
  const { model } = loadRepoModel(job.modelsDir, job.spec.name);
  const shapes = new Map(Object.entries(job.spec.shapes ?? {}));
  const values = new Map(Object.entries(job.spec.values ?? {}));
  const a = await analyze(model, resolveInputs(model, shapes, values), job.spec.granularity ?? {});
  const log = pino({ level: job.logLevel }).child({ host: job.self.name, model: job.spec.name, thread: 'profile' });
  const cfg = { ...job.config, granularity: job.spec.granularity };
  const profile = await cachedProfile(job.cacheDir, a, job.self, job.threads, cfg, log, job.quotaCpus);
  reply({ ok: true, profile });
} catch (e) {
  reply({ ok: false, error: errorMessage(e), code: (e as { code?: string }).code ?? 'E_INTERNAL' });
}
