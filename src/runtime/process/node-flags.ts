/**
 * Node/V8 flags every host process runs with, and the re-exec that applies them to a `cleave serve` started
 * without them (V8 reads heap flags only when the isolate is created, so they cannot be set from inside).
 *
 * Why: a host holds ~20 MB of JS heap while megabytes of tensors pass through it per request. With V8's
 * default limits the old generation sits a few MB under its allocation limit, so V8 starts incremental
 * marking every 2-4 requests and finishes it with a 4-6 ms mark-compact on the main thread, in the middle
 * of a request. A larger initial old space leaves that to minor GCs and the external-memory trigger.
 * `npm run bench -- split --heap-flags off` against the default, ResNet50 split three ways: 0.44 → 0.04
 * major GCs per request, median 46.7 → 43.7 ms, p90 70.5 → 57.8 ms, 32 → 43 requests/s with 4 clients.
 *
 * How large: what the old space holds above the live heap is garbage awaiting the next mark-compact (JS
 * objects and the frame buffers they own), so the initial size is also how far a host's RSS climbs before
 * it is collected. At 256 MB the edge and the cloud grew 25-38 MB over a 10-minute soak, JS heap in use
 * +23-31 MB, with no mark-compact in sight; at V8's defaults they stayed within 2 MB. 64 MB bounds that
 * climb to a few tens of MB and keeps major GCs off the request path: ResNet50 three ways, 0.017 major GCs
 * per request at 64 MB against 0-0.009 at 256 MB in the same session (median 89.6 against 84.5-87.5 ms on
 * a machine then ~1.5x slower than above, 23.6 against 22.3-22.9 requests/s). The price: on `npm start`'s
 * deployment serving MobileNetV2, whose device has a quarter of a CPU, 3-minute soaks back to back served
 * 2,467-2,683 requests at 64 MB against 2,666-3,007 at 256 MB (~9 % fewer): the extra mark-compacts come out
 * of that small quota. A host run by hand takes its own: `node --initial-old-space-size=256 bin/cleave.mjs
 * serve ...` is not re-executed.
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:os';

export const HOST_NODE_FLAGS: readonly string[] = ['--initial-old-space-size=64'];

/** The heap flags this process was started with. */
export function heapFlags(execArgv: readonly string[] = process.execArgv): string[] {
  return execArgv.filter((a) => /^--(initial|max)-(old|semi|young)-(space|generation)-size/.test(a));
}

export function hasHostNodeFlags(execArgv: readonly string[] = process.execArgv): boolean {
  return HOST_NODE_FLAGS.every((f) => execArgv.some((a) => a.split('=')[0] === f.split('=')[0]));
}

/**
 * Runs this same command again in a child Node started with HOST_NODE_FLAGS, sharing stdio, passing
 * SIGINT/SIGTERM on, and resolving with the child's exit code. Set CLEAVE_NODE_FLAGS=0 to skip it.
 */
export function reexecWithHostFlags(): Promise<number> {
  const child = spawn(process.execPath, [...HOST_NODE_FLAGS, ...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit',
    env: process.env,
  });
  const forward = (sig: NodeJS.Signals): void => {
    child.kill(sig);
  };
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      process.off('SIGINT', forward);
      process.off('SIGTERM', forward);
      // A child killed by a signal exits as a shell reports it: 128 + the signal's number.
      resolve(code ?? (signal ? 128 + constants.signals[signal] : 1));
    });
  });
}
