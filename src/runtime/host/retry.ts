/**
 * A request through the pipeline, retried once when a host on its route was lost (E_PEER_GONE: its link
 * dropped before the answer came, or a stage could not reach the next host). Inference is idempotent and the
 * origin still holds the inputs (they are copied to workers and into frames, never moved), so the request
 * runs again on the plan the controller adopts around the lost host, once one is committed whose hosts are all
 * up, within `retryWaitMs` and the request's own deadline. Other errors, and a second failure, are answered.
 */
import type { Logger } from 'pino';
import { isCleaveError } from '../../errors.js';
import type { TensorLike } from '../executor/tensors.js';
import type { Routed } from './pipeline.js';

export interface RetryDeps {
  infer(plan: Routed, inputs: Record<string, TensorLike>, deadlineMs: number): Promise<Record<string, TensorLike>>;
  /** The committed plan now (null before the first); a pinned one never moves by itself. */
  current(): (Routed & { readonly pinned?: boolean }) | null;
  /** Whether every host on `plan`'s route is up now. */
  runnable(plan: Routed): boolean;
  readonly retryWaitMs: number;
  readonly log: Logger;
}

/** `inferRetrying` over `d`, as the gateway's `infer`. */
export function retrying(d: RetryDeps): RetryDeps['infer'] {
  return (plan, inputs, deadlineMs) => inferRetrying(d, plan, inputs, deadlineMs);
}

/** How often a waiting retry looks for the new plan. */
const POLL_MS = 20;

export async function inferRetrying(
  d: RetryDeps,
  plan: Routed,
  inputs: Record<string, TensorLike>,
  deadlineMs: number,
): Promise<Record<string, TensorLike>> {
  const t0 = Date.now();
  try {
    return await d.infer(plan, inputs, deadlineMs);
  } catch (e) {
    if (!(isCleaveError(e) && e.code === 'E_PEER_GONE') || d.retryWaitMs <= 0) throw e;
    const next = await planAround(d, plan, Math.min(d.retryWaitMs, deadlineMs - (Date.now() - t0)));
    const left = deadlineMs - (Date.now() - t0);
    if (!next || left <= 0) throw e;
    d.log.info({ from: plan.epoch, to: next.epoch, err: e.message }, 'request retried on the new plan');
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
