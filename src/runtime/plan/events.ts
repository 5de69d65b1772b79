/**
 * The deployment's event stream: what `WS /v1/events` sends, in order. Publishers (the adaptive loop, the
 * live state) call `emit`; subscribers (each events connection) get every event after they subscribed.
 */
export type EventType =
  | 'plan-proposed'
  | 'plan-adopted'
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

export class EventBus {
  private readonly subscribers = new Set<(e: CleaveEvent) => void>();
  private seq = 0;

  emit(type: EventType, fields: Record<string, unknown>): CleaveEvent {
    const e: CleaveEvent = { ...fields, type, at: Date.now(), seq: ++this.seq };
    for (const s of this.subscribers) s(e);
    return e;
  }

  /** Returns the unsubscribe function. */
  subscribe(fn: (e: CleaveEvent) => void): () => void {
    this.subscribers.add(fn);
    return () => this.subscribers.delete(fn);
  }

  get size(): number {
    return this.subscribers.size;
  }
}
