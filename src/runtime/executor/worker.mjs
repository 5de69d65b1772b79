// Entry point of an executor worker thread. The project runs TypeScript through tsx without a build, and a
// worker thread does not get the parent's module hooks: tsx registered in the main thread (bin/cleave.mjs),
// `node --import tsx`, the tsx CLI and vitest all leave a new Worker unable to load a .ts entry, and
// `--import tsx` in the worker's execArgv registers too late for its entry point. So the worker registers tsx
// itself, then imports the TypeScript.
import { register } from 'tsx/esm/api';

register();
await import('./worker.ts');
