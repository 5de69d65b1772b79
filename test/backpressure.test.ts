/**
 * SendGate over a fake LinkPort: a send answering false holds later frames until drain, in arrival order;
 * E_QUEUE_FULL holds the refused frame itself; other errors reject; a link going down and a deadline
 * passing fail the waiters.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CleaveError } from '../src/errors.js';
import { SendGate } from '../src/runtime/host/backpressure.js';
import type { HeaderInput } from '../src/transport/frame.js';
import { FakeLinks, queueFull, rejection } from './helpers/fakes.js';

const frame = (id: string): HeaderInput => ({ kind: 'infer', id });
const ids = (links: FakeLinks, host = 'edge'): string[] => links.to(host).map((s) => s.header.id ?? '');

/** Records the order in which promises settle. */
function track(log: string[], name: string, p: Promise<void>): Promise<void> {
  return p.then(
    () => void log.push(`${name} sent`),
    (e: CleaveError) => void log.push(`${name} ${e.code}`),
  );
}

afterEach(() => {
  vi.useRealTimers();
});

describe('SendGate', () => {
  it('sends at once while the link takes frames', async () => {
    const links = new FakeLinks();
    const gate = new SendGate(links);
    await gate.send('edge', frame('a'), [], 0);
    await gate.send('edge', frame('b'), [], 0);
    expect(ids(links)).toEqual(['a', 'b']);
    expect(gate.waiting).toBe(0);
  });

  it('after a send answers false, later frames wait for drain and then go in arrival order', async () => {
    const links = new FakeLinks();
    const gate = new SendGate(links);
    const log: string[] = [];
    links.next.push(false);
    await gate.send('edge', frame('a'), [], 0); // taken, but the link is full now
    const waits = ['b', 'c', 'd'].map((id) => track(log, id, gate.send('edge', frame(id), [], 0)));
    await Promise.resolve();
    expect(ids(links)).toEqual(['a']);
    expect(gate.waiting).toBe(3);

    links.next.push(true, false); // b goes, c goes and fills it again
    links.drain('edge');
    expect(ids(links)).toEqual(['a', 'b', 'c']);
    expect(gate.waiting).toBe(1);
    // a new frame queues behind d, it does not overtake it
    const e = track(log, 'e', gate.send('edge', frame('e'), [], 0));
    expect(gate.waiting).toBe(2);

    links.drain('edge');
    await Promise.all([...waits, e]);
    expect(ids(links)).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(log).toEqual(['b sent', 'c sent', 'd sent', 'e sent']);
    expect(gate.waiting).toBe(0);
  });

  it('a full link holds only its own frames: another host still sends at once', async () => {
    const links = new FakeLinks();
    const gate = new SendGate(links);
    links.next.push(false);
    await gate.send('edge', frame('a'), [], 0);
    const held = gate.send('edge', frame('b'), [], 0);
    await gate.send('cloud', frame('c'), [], 0);
    expect(ids(links, 'cloud')).toEqual(['c']);
    expect(gate.waiting).toBe(1);
    links.drain('edge');
    await held;
    expect(ids(links)).toEqual(['a', 'b']);
  });

  it('a frame refused with E_QUEUE_FULL waits and is sent again after drain', async () => {
    const links = new FakeLinks();
    const gate = new SendGate(links);
    links.next.push(queueFull());
    let sent = false;
    const p = gate
      .send('edge', frame('a'), [{ name: 'x', dtype: 'float32', dims: [1], data: new Float32Array([1]) }], 0)
      .then(() => {
        sent = true;
      });
    await Promise.resolve();
    expect(sent).toBe(false);
    expect(gate.waiting).toBe(1);
    expect(links.sent).toEqual([]);

    links.next.push(queueFull()); // still no room at the first drain: keeps waiting
    links.drain('edge');
    expect(gate.waiting).toBe(1);
    links.drain('edge');
    await p;
    expect(ids(links)).toEqual(['a']);
    expect(links.sent[0].tensors.map((t) => t.name)).toEqual(['x']);
  });

  it('other send errors reject at once, and in a flush reject only that frame', async () => {
    const links = new FakeLinks();
    const gate = new SendGate(links);
    links.next.push(new CleaveError('E_TOO_LARGE', 'frame too large'));
    expect((await rejection(gate.send('edge', frame('a'), [], 0))).code).toBe('E_TOO_LARGE');
    expect(gate.waiting).toBe(0);

    links.next.push(false);
    await gate.send('edge', frame('b'), [], 0);
    const log: string[] = [];
    const c = track(log, 'c', gate.send('edge', frame('c'), [], 0));
    const d = track(log, 'd', gate.send('edge', frame('d'), [], 0));
    links.next.push(new CleaveError('E_BAD_INPUT', 'tensor data does not match dims'));
    links.drain('edge');
    await Promise.all([c, d]);
    expect(log).toEqual(['c E_BAD_INPUT', 'd sent']);
    expect(ids(links)).toEqual(['b', 'd']);
  });

  it('a non-CleaveError thrown during a flush rejects as E_INTERNAL', async () => {
    const links = new FakeLinks();
    const gate = new SendGate(links);
    links.next.push(false);
    await gate.send('edge', frame('a'), [], 0);
    const p = gate.send('edge', frame('b'), [], 0);
    links.next.push(new Error('socket exploded'));
    links.drain('edge');
    const e = await rejection(p);
    expect([e.code, e.message]).toEqual(['E_INTERNAL', 'Error: socket exploded']);
  });

  it('the link going down fails the waiters with E_PEER_GONE, and the next frame goes at once', async () => {
    const links = new FakeLinks();
    const gate = new SendGate(links);
    links.next.push(false);
    await gate.send('edge', frame('a'), [], 0);
    const b = rejection(gate.send('edge', frame('b'), [], 0));
    const c = rejection(gate.send('edge', frame('c'), [], 0));
    expect(gate.waiting).toBe(2);
    links.down('edge');
    const eb = await b;
    expect(eb.code).toBe('E_PEER_GONE');
    expect(eb.message).toMatch(/request b waited/);
    expect((await c).code).toBe('E_PEER_GONE');
    expect(gate.waiting).toBe(0);

    await gate.send('edge', frame('d'), [], 0);
    expect(ids(links)).toEqual(['a', 'd']);
  });

  it('a waiter whose deadline passes is rejected E_DEADLINE and removed; the drain sends the others', async () => {
    vi.useFakeTimers();
    const links = new FakeLinks();
    const gate = new SendGate(links);
    links.next.push(false);
    await gate.send('edge', frame('a'), [], 0);
    const b = rejection(gate.send('edge', frame('b'), [], Date.now() + 20));
    const c = gate.send('edge', frame('c'), [], Date.now() + 1000);
    const d = gate.send('edge', frame('d'), [], 0); // no deadline
    expect(gate.waiting).toBe(3);

    await vi.advanceTimersByTimeAsync(19);
    expect(gate.waiting).toBe(3);
    await vi.advanceTimersByTimeAsync(1);
    const e = await b;
    expect(e.code).toBe('E_DEADLINE');
    expect(e.message).toMatch(/request b missed its deadline waiting for the link to edge/);
    expect(gate.waiting).toBe(2);

    links.drain('edge');
    await Promise.all([c, d]);
    expect(ids(links)).toEqual(['a', 'c', 'd']);
  });

  it('a frame for a full link whose deadline has already passed is rejected at once', async () => {
    const links = new FakeLinks();
    const gate = new SendGate(links);
    links.next.push(false);
    await gate.send('edge', frame('a'), [], 0);
    expect((await rejection(gate.send('edge', frame('b'), [], Date.now() - 1))).code).toBe('E_DEADLINE');
    expect(gate.waiting).toBe(0);
  });
});
