/**
 * A bounded least-recently-used map whose entries can be pinned. Bounded by a count and, optionally, by the
 * sum of the entries' sizes in bytes. A pinned entry (a session being loaded or run) is never evicted, and the
 * byte budget never evicts the most recently used one (a session larger than the whole budget still serves);
 * while entries are pinned the cache may hold more than its bounds, and it shrinks back as pins are released.
 */
export class SessionCache<V> {
  /** Insertion order is recency order: the first key is the least recently used. */
  private readonly entries = new Map<string, V>();
  private readonly pins = new Map<string, number>();
  private held = 0;

  /** `onEvict` is called once for every entry pushed out by the bounds (not for `delete`). */
  constructor(
    readonly capacity: number,
    private readonly onEvict: (key: string, value: V) => void,
    private readonly budget: { readonly maxBytes: number; readonly sizeOf: (value: V) => number } = {
      maxBytes: Infinity,
      sizeOf: () => 0,
    },
  ) {
    if (!Number.isInteger(capacity) || capacity < 1)
      throw new RangeError(`'capacity' must be an integer >= 1, got ${capacity}`);
    if (!(budget.maxBytes > 0)) throw new RangeError(`'maxBytes' must be > 0, got ${budget.maxBytes}`);
  }

  get size(): number {
    return this.entries.size;
  }

  /** Sum of the entries' sizes. */
  get bytes(): number {
    return this.held;
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  /** The entry, without making it more recent. */
  peek(key: string): V | undefined {
    return this.entries.get(key);
  }

  /** The entry, made the most recently used. */
  get(key: string): V | undefined {
    const v = this.entries.get(key);
    if (v !== undefined) {
      this.entries.delete(key);
      this.entries.set(key, v);
    }
    return v;
  }

  /**
   * Inserts (or replaces) `key` as the most recently used entry, then evicts down to capacity. `pinned`
   * pins it before evicting, so a new entry cannot be its own victim when every older entry is pinned.
   */
  set(key: string, value: V, opts: { pinned?: boolean } = {}): void {
    this.delete(key);
    this.entries.set(key, value);
    this.held += this.budget.sizeOf(value);
    if (opts.pinned) this.pin(key);
    this.trim();
  }

  /** Removes an entry without calling `onEvict`; its pins go with it. */
  delete(key: string): boolean {
    this.pins.delete(key);
    const v = this.entries.get(key);
    if (v !== undefined) this.held -= this.budget.sizeOf(v);
    return this.entries.delete(key);
  }

  pin(key: string): void {
    if (this.entries.has(key)) this.pins.set(key, (this.pins.get(key) ?? 0) + 1);
  }

  unpin(key: string): void {
    const n = this.pins.get(key);
    if (n === undefined) return;
    if (n > 1) this.pins.set(key, n - 1);
    else {
      this.pins.delete(key);
      this.trim();
    }
  }

  isPinned(key: string): boolean {
    return this.pins.has(key);
  }

  keys(): string[] {
    return [...this.entries.keys()];
  }

  values(): V[] {
    return [...this.entries.values()];
  }

  /** Removes every entry without calling `onEvict`. */
  clear(): void {
    this.entries.clear();
    this.pins.clear();
    this.held = 0;
  }

  private over(): boolean {
    return this.entries.size > this.capacity || this.held > this.budget.maxBytes;
  }

  private trim(): void {
    if (!this.over()) return;
    let newest: string | undefined;
    for (const k of this.entries.keys()) newest = k;
    for (const [key, value] of this.entries) {
      if (!this.over()) break;
      // The byte budget spares the newest entry (it would evict itself when larger than the budget); the count does not.
      if (this.pins.has(key) || (key === newest && this.entries.size <= this.capacity)) continue;
      this.entries.delete(key);
      this.held -= this.budget.sizeOf(value);
      this.onEvict(key, value);
    }
  }
}
