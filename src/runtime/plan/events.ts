/**
 * The deployment's event stream: what `WS /v1/events` sends, in order. Publishers (the adaptive loop, the
 * live state) call `emit`; subscribers (each events connection) get every event after they subscribed.
 */
export type EventType =
  | 'plan-proposed'
  | 'plan-adopted'
  | 'contingency-warmed'
  | 'link-changed'
  | 'host-up'
  | 'host-down'
  | 'controller-changed'
  | 'model-unloaded'
  | 'model-loaded'
  | 'snapshot';

export interface CleaveEvent {
  readonly type: EventType;
  /** Date.now() at the origin. */
  readonly at: number;
  readonly seq: number;
  readonly [field: string]: unknown;
}

interface Hub {
  readonly subscribers: Set<(e: CleaveEvent) => void>;
  seq: number;
}

export class EventBus {
  private readonly hub: Hub;

  /** `tags`: fields every event emitted through this bus carries (a model's bus: `{model}`). */
  constructor(
    private readonly tags: Readonly<Record<string, unknown>> = {},
    hub?: Hub,
  ) {
    this.hub = hub ?? { subscribers: new Set(), seq: 0 };
  }

  /** A bus onto the same stream (same subscribers, one sequence) whose events also carry `tags`. */
  tagged(tags: Readonly<Record<string, unknown>>): EventBus {
    return new EventBus({ ...this.tags, ...tags }, this.hub);
  }

  emit(type: EventType, fields: Record<string, unknown>): CleaveEvent {
    const e: CleaveEvent = { ...this.tags, ...fields, type, at: Date.now(), seq: ++this.hub.seq };
    for (const s of this.hub.subscribers) s(e);
    return e;
  }

  /** Returns the unsubscribe function. */
  subscribe(fn: (e: CleaveEvent) => void): () => void {
    this.hub.subscribers.add(fn);
    return () => this.hub.subscribers.delete(fn);
  }

  get size(): number {
    return this.hub.subscribers.size;
  }
}
