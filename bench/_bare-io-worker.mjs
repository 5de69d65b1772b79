// Entry point of a bare host run whole in a worker thread (bench/_bare-host.ts, `worker: 'io'`). A worker
// thread does not get the parent's tsx hooks, so it registers tsx itself (as src/runtime/executor/worker.mjs).
import { register } from 'tsx/esm/api';

register();
await import('./_bare-host.ts');
