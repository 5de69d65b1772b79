// Entry point of the profiling worker thread (profile-worker.ts): as the executor's worker.mjs, it registers
// tsx itself (a worker thread does not get the parent's module hooks), then imports the TypeScript.
import { register } from 'tsx/esm/api';

register();
await import('./profile-worker.ts');
