/**
 * A bounded least-recently-used map whose entries can be pinned. A pinned entry (a session being loaded or
 * run) is never evicted; while every entry is pinned the cache may hold more than its capacity, and it
 * shrinks back as soon as pins are released.
 */
export class SessionCache<V> {
  /** Insertion order is recency order: the first key is the least recently used. */
  private readonly entries = new Map<string, V>();
  private readonly pins = new Map<string, number>();

  /** `onEvict` is called once for every entry pushed out by the capacity bound (not for `delete`). */
  constructor(
    readonly capacity: number,
    private readonly onEvict: (key: string, value: V) => void,
  ) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`'capacity' must be an integer >= 1, got ${capacity}`);
  }

  get size(): number {
    return this.entries.size;
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
    this.entries.delete(key);
    this.entries.set(key, value);
    if (opts.pinned) this.pin(key);
    this.trim();
  }

  /** Removes an entry without calling `onEvict`; its pins go with it. */
  delete(key: string): boolean {
    this.pins.delete(key);
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
  }

  private trim(): void {
    if (this.entries.size <= this.capacity) return;
    for (const [key, value] of this.entries) {
      if (this.entries.size <= this.capacity) break;
      if (this.pins.has(key)) continue;
      this.entries.delete(key);
      this.onEvict(key, value);
    }
  }
}
