/**
 * Unloading and loading one of the deployment's models (Triton's model repository extension, `POST
 * /v2/repository/models/{m}/unload` and `.../load`), on the origin.
 *
 * Unload: new requests are refused at once (503 E_NOT_READY naming the state); the switch and warm-ups under
 * way settle; the requests in flight finish (up to `drainMs`); then every host releases its segment
 * sessions, the origin's own included. Nothing is prepared while unloaded: the controller keeps, a pin or a
 * re-plan fails with E_NOT_READY. Load: every host of the plan in force builds and warms its segment again,
 * then requests flow and the controller plans again from the live measurements. The profiles stay cached in
 * memory, so loading costs the sessions' build and warm-up only.
 *
 * One change at a time, in the order asked. Unloading an unloaded model, or loading a loaded one, does
 * nothing and succeeds, as in Triton.
 */
import type { Logger } from 'pino';
import { CleaveError, errorMessage } from '../../errors.js';
import type { ActivePlan, Coordinator } from './coordinator.js';
import type { EventBus } from './events.js';

export type ModelState = 'loaded' | 'unloading' | 'unloaded' | 'loading';

export interface LifecycleOptions {
  readonly coordinator: Pick<Coordinator, 'markUnloaded' | 'reload'>;
  /** Every host of the deployment, the origin included. */
  readonly hosts: readonly string[];
  /** Has `host` release every segment session it holds. */
  release(host: string): Promise<void>;
  /** Requests this origin has in flight. */
  inFlight(): number;
  /** How long an unload waits for the requests in flight (their deadline bounds them anyway). */
  readonly drainMs: number;
  readonly events?: EventBus;
  readonly logger: Logger;
}

export interface UnloadResult {
  /** Requests still in flight when the wait ended (0 unless `drainMs` ran out). */
  readonly leftInFlight: number;
  /** Hosts that could not be told to release (down, or failing); their sessions go when they restart. */
  readonly failed: readonly { host: string; error: string }[];
}

export class ModelLifecycle {
  private now: ModelState = 'loaded';
  private chain: Promise<unknown> = Promise.resolve();

  constructor(private readonly o: LifecycleOptions) {}

  get state(): ModelState {
    return this.now;
  }

  /** Why requests cannot be served now; null when loaded. */
  unavailable(): string | null {
    return this.now === 'loaded' ? null : this.now;
  }

  unload(): Promise<UnloadResult> {
    return this.serial(async () => {
      if (this.now === 'unloaded') return { leftInFlight: 0, failed: [] };
      this.now = 'unloading';
      await this.o.coordinator.markUnloaded();
      const until = Date.now() + this.o.drainMs;
      while (this.o.inFlight() > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
      const leftInFlight = this.o.inFlight();
      const results = await Promise.allSettled(this.o.hosts.map((h) => this.o.release(h)));
      const failed = results.flatMap((r, i) =>
        r.status === 'rejected' ? [{ host: this.o.hosts[i], error: errorMessage(r.reason) }] : [],
      );
      this.now = 'unloaded';
      this.o.logger.info({ leftInFlight, failed }, 'model unloaded');
      this.o.events?.emit('model-unloaded', { leftInFlight, failed });
      return { leftInFlight, failed };
    });
  }

  load(): Promise<ActivePlan | null> {
    return this.serial(async () => {
      if (this.now === 'loaded') return null;
      this.now = 'loading';
      const t0 = performance.now();
      try {
        const plan = await this.o.coordinator.reload();
        this.now = 'loaded';
        const ms = Math.round(performance.now() - t0);
        this.o.logger.info({ epoch: plan.epoch, ms }, 'model loaded');
        this.o.events?.emit('model-loaded', { epoch: plan.epoch, ms });
        return plan;
      } catch (e) {
        // What did warm stays cached until the next unload; requests stay refused.
        await this.o.coordinator.markUnloaded();
        this.now = 'unloaded';
        throw new CleaveError('E_NOT_READY', `loading the model failed: ${errorMessage(e)}`, { cause: e });
      }
    });
  }

  private serial<T>(op: () => Promise<T>): Promise<T> {
    const run = this.chain.then(op, op);
    this.chain = run.catch(() => undefined);
    return run;
  }
}
