import { describe, expect, it } from 'vitest';
import { SessionCache } from '../src/runtime/executor/session-cache.js';

function cache(capacity: number): { c: SessionCache<number>; evicted: string[] } {
  const evicted: string[] = [];
  return { c: new SessionCache<number>(capacity, (k) => evicted.push(k)), evicted };
}

describe('SessionCache', () => {
  it('evicts the least recently used entry; get makes an entry recent, peek does not', () => {
    const { c, evicted } = cache(2);
    c.set('a', 1);
    c.set('b', 2);
    c.peek('a');
    c.get('b');
    c.get('a');
    c.set('c', 3);
    expect(evicted).toEqual(['b']);
    expect(c.keys()).toEqual(['a', 'c']);
  });

  it('never evicts a pinned entry: it grows past capacity and shrinks when the pin goes', () => {
    const { c, evicted } = cache(1);
    c.set('a', 1, { pinned: true });
    c.pin('a');
    c.set('b', 2, { pinned: true });
    expect(c.size).toBe(2);
    expect(evicted).toEqual([]);
    c.unpin('b');
    // 'b' is the only unpinned entry, and the cache is still over capacity
    expect(evicted).toEqual(['b']);
    c.set('c', 3);
    expect(evicted).toEqual(['b', 'c']);
    c.unpin('a');
    expect(c.isPinned('a')).toBe(true);
    c.unpin('a');
    expect(c.isPinned('a')).toBe(false);
    expect(c.keys()).toEqual(['a']);
  });

  it('does not call onEvict for delete or clear, and drops pins with the entry', () => {
    const { c, evicted } = cache(2);
    c.set('a', 1, { pinned: true });
    expect(c.delete('a')).toBe(true);
    expect(c.isPinned('a')).toBe(false);
    c.set('b', 2);
    c.clear();
    expect(c.size).toBe(0);
    expect(evicted).toEqual([]);
  });

  it('refuses a capacity below 1, naming it', () => {
    expect(() => new SessionCache(0, () => undefined)).toThrow(/'capacity'/);
  });

  it('a byte budget evicts least recently used entries until the sizes fit, never the newest or a pinned one', () => {
    const evicted: string[] = [];
    // Values are their own sizes in bytes.
    const c = new SessionCache<number>(10, (k) => evicted.push(k), { maxBytes: 100, sizeOf: (v) => v });
    c.set('a', 40);
    c.set('b', 40);
    expect(c.bytes).toBe(80);
    c.pin('a');
    c.set('c', 30); // 110 > 100: 'a' is pinned, so 'b' goes
    expect(evicted).toEqual(['b']);
    expect(c.bytes).toBe(70);
    c.set('huge', 500); // over the budget alone: it stays (the newest), 'c' goes, 'a' stays pinned
    expect(evicted).toEqual(['b', 'c']);
    expect(c.keys()).toEqual(['a', 'huge']);
    c.unpin('a'); // now 'a' can go, and does
    expect(evicted).toEqual(['b', 'c', 'a']);
    expect(c.bytes).toBe(500);
    c.set('huge', 20); // replacing an entry counts its new size only
    expect(c.bytes).toBe(20);
    c.delete('huge');
    expect(c.bytes).toBe(0);
  });

  it('refuses a byte budget that is not positive, naming it', () => {
    expect(() => new SessionCache(2, () => undefined, { maxBytes: 0, sizeOf: () => 1 })).toThrow(/'maxBytes'/);
  });
});
