/**
 * A request through the pipeline, with two ways to a second attempt, each on the plan in force:
 * - **Retry** when a host on its route was lost (E_PEER_GONE: its link dropped before the answer came, or a
 *   stage could not reach the next host). Inference is idempotent and the origin still holds the inputs (they
 *   are copied to workers and into frames, never moved), so the request runs again on the plan the controller
 *   adopts around the lost host, once one is committed whose hosts are all up, within `retryWaitMs` and the
 *   request's own deadline. Other errors, and a second failure, are answered.
 * - **Hedge** when it is stranded: still unanswered `hedgeAfterMs` after it started, on a plan that is no
 *   longer the one in force, and the plan in force sends its frames over none of the links the request's own
 *   plan sends them over (the controller moved away from it, most often because a link on it fell or a host
 *   on it stalled). Its frame may sit behind a link that now takes seconds for it, so the request also runs
 *   on the plan in force, if that plan's hosts are all up, and the first answer wins; the other is dropped
 *   when it comes. A plan that moved its cuts, or dropped a host but kept a link, may send over the very link
 *   the request is stuck on, where the hedge's frame would queue behind the stranded one: the request waits
 *   for a plan that shares no forward link with its own (the answers' way back, a few KB, does not count).
 *   At most `MAX_HEDGES` run at once per origin, so a plan change under overload does not double the load.
 *   A hedged request is not retried as well: it has had its second attempt.
 */
import type { Logger } from 'pino';
import { isCleaveError } from '../../errors.js';
import { MAX_HEDGES } from '../defaults.js';
import type { TensorLike } from '../executor/tensors.js';
import type { Routed } from './pipeline.js';

export interface RetryDeps {
  infer(plan: Routed, inputs: Record<string, TensorLike>, deadlineMs: number): Promise<Record<string, TensorLike>>;
  /** The committed plan now (null before the first); a pinned one never moves by itself. */
  current(): (Routed & { readonly pinned?: boolean }) | null;
  /** Whether every host on `plan`'s route is up now. */
  runnable(plan: Routed): boolean;
  readonly retryWaitMs: number;
  /** How long a request runs on a plan no longer in force before it is hedged on the one in force; 0: never. */
  readonly hedgeAfterMs?: number;
  /** Called as a request starts its second attempt (for the metrics). */
  onSecondAttempt?(kind: 'retry' | 'hedge'): void;
  readonly log: Logger;
}

/** What the requests of one origin share: the hedges running now. */
interface HedgeCount {
  running: number;
}

/** `inferRetrying` over `d`, as the gateway's `infer`. */
export function retrying(d: RetryDeps): RetryDeps['infer'] {
  const hedges: HedgeCount = { running: 0 };
  return (plan, inputs, deadlineMs) => inferRetrying(d, plan, inputs, deadlineMs, hedges);
}

/** How often a waiting retry looks for the new plan. */
const POLL_MS = 20;
/** How often a request past `hedgeAfterMs` looks for a plan change to hedge on. */
const HEDGE_POLL_MS = 100;

type Outputs = Record<string, TensorLike>;

export async function inferRetrying(
  d: RetryDeps,
  plan: Routed,
  inputs: Record<string, TensorLike>,
  deadlineMs: number,
  hedges: HedgeCount = { running: 0 },
): Promise<Outputs> {
  const t0 = Date.now();
  const first = d.infer(plan, inputs, deadlineMs);
  const hedge = { started: false };
  try {
    return await ((d.hedgeAfterMs ?? 0) > 0 ? hedged(d, plan, inputs, deadlineMs, t0, first, hedges, hedge) : first);
  } catch (e) {
    if (hedge.started || !(isCleaveError(e) && e.code === 'E_PEER_GONE') || d.retryWaitMs <= 0) throw e;
    const next = await planAround(d, plan, Math.min(d.retryWaitMs, deadlineMs - (Date.now() - t0)));
    const left = deadlineMs - (Date.now() - t0);
    if (!next || left <= 0) throw e;
    d.log.info({ from: plan.epoch, to: next.epoch, err: e.message }, 'request retried on the new plan');
    d.onSecondAttempt?.('retry');
    return d.infer(next, inputs, left);
  }
}

/** The first committed plan other than `plan` whose hosts are all up, waiting up to `waitMs`; else null. */
async function planAround(d: RetryDeps, plan: Routed, waitMs: number): Promise<Routed | null> {
  const until = Date.now() + waitMs;
  for (;;) {
    const cur = d.current();
    // Pinned by an operator: the controller keeps it (and says so), so there is nothing to wait for.
    if (cur && cur.epoch === plan.epoch && cur.pinned) return null;
    if (cur && cur.epoch !== plan.epoch && d.runnable(cur)) return cur;
    if (Date.now() >= until) return null;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/**
 * `first`'s answer, or a hedge's on the plan in force if that comes first (see the header). Rejects once every
 * attempt has failed, with the first attempt's error; while a hedge runs, a failed attempt waits for the other.
 */
function hedged(
  d: RetryDeps,
  plan: Routed,
  inputs: Record<string, TensorLike>,
  deadlineMs: number,
  t0: number,
  first: Promise<Outputs>,
  hedges: HedgeCount,
  hedge: { started: boolean },
): Promise<Outputs> {
  return new Promise<Outputs>((resolve, reject) => {
    let done = false;
    let running = 1;
    let firstError: unknown;
    let timer: NodeJS.Timeout | undefined;
    const finish = (): void => {
      done = true;
      clearTimeout(timer);
    };
    const attempt = (p: Promise<Outputs>, isFirst: boolean): void => {
      p.then(
        (out) => {
          if (done) return;
          finish();
          resolve(out);
        },
        (e: unknown) => {
          if (isFirst) firstError = e;
          if (--running > 0 || done) return;
          finish();
          reject(isFirst || firstError === undefined ? e : firstError);
        },
      ).finally(() => {
        if (!isFirst) hedges.running--;
      });
    };
    const look = (): void => {
      if (done) return;
      const left = deadlineMs - (Date.now() - t0);
      if (left <= 0) return;
      const cur = d.current();
      if (
        cur &&
        cur.epoch !== plan.epoch &&
        sharesNoLink(cur, plan) &&
        d.runnable(cur) &&
        hedges.running < MAX_HEDGES
      ) {
        hedge.started = true;
        hedges.running++;
        running++;
        d.log.info(
          { from: plan.epoch, to: cur.epoch, waitedMs: Date.now() - t0 },
          'request hedged on the plan in force (its own plan was replaced while it waited)',
        );
        d.onSecondAttempt?.('hedge');
        attempt(d.infer(cur, inputs, left), false);
        return;
      }
      timer = setTimeout(look, HEDGE_POLL_MS);
    };
    attempt(first, true);
    timer = setTimeout(look, d.hedgeAfterMs);
  });
}

/** The links a route sends its frames over, stage to stage (not the last stage's answer back), as `a>b`. */
export function forwardLinks(p: Routed): Set<string> {
  const links = new Set<string>();
  for (let i = 1; i < p.route.length; i++) {
    const [from, to] = [p.route[i - 1].host, p.route[i].host];
    if (from !== to) links.add(`${from}>${to}`);
  }
  return links;
}

/** Whether `a` sends its frames over none of the links `b` sends its frames over. */
function sharesNoLink(a: Routed, b: Routed): boolean {
  const theirs = forwardLinks(b);
  return [...forwardLinks(a)].every((l) => !theirs.has(l));
}
