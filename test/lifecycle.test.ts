/**
 * ModelLifecycle (the repository extension's unload and load) over a fake coordinator and hosts: the order
 * of its steps, what it waits for, what it reports, and one change at a time.
 */
import { describe, expect, it } from 'vitest';
import { ModelLifecycle, type LifecycleOptions } from '../src/runtime/plan/lifecycle.js';
import { EventBus, type CleaveEvent } from '../src/runtime/plan/events.js';
import type { ActivePlan } from '../src/runtime/plan/coordinator.js';
import { deferred, rejection, silent } from './helpers/fakes.js';

const PLAN = { epoch: 3 } as ActivePlan;

function rig(over: Partial<LifecycleOptions> = {}) {
  const log: string[] = [];
  const state = { inFlight: 0, reload: async (): Promise<ActivePlan> => PLAN };
  const events = new EventBus();
  const seen: CleaveEvent[] = [];
  events.subscribe((e) => seen.push(e));
  const l = new ModelLifecycle({
    coordinator: {
      markUnloaded: async () => {
        log.push('mark');
      },
      reload: () => {
        log.push('reload');
        return state.reload();
      },
    },
    hosts: ['dev', 'edg', 'cld'],
    release: async (h) => {
      log.push(`release ${h}`);
    },
    inFlight: () => state.inFlight,
    drainMs: 2000,
    events,
    logger: silent,
    ...over,
  });
  return { l, log, state, seen };
}

describe('ModelLifecycle', () => {
  it('unload: refuses new requests at once, waits for those in flight, then every host releases', async () => {
    const r = rig();
    r.state.inFlight = 2;
    const p = r.l.unload();
    // Before any other I/O callback (another request) runs.
    await new Promise((res) => setImmediate(res));
    expect(r.l.unavailable()).toBe('unloading');
    await new Promise((res) => setTimeout(res, 50));
    expect(r.log).toEqual(['mark']); // still draining
    r.state.inFlight = 0;
    expect(await p).toEqual({ leftInFlight: 0, failed: [] });
    expect(r.log).toEqual(['mark', 'release dev', 'release edg', 'release cld']);
    expect(r.l.state).toBe('unloaded');
    expect(r.l.unavailable()).toBe('unloaded');
    expect(r.seen.map((e) => e.type)).toEqual(['model-unloaded']);
    // Again: nothing to do.
    expect(await r.l.unload()).toEqual({ leftInFlight: 0, failed: [] });
    expect(r.log).toHaveLength(4);
  });

  it('unload: a drain that runs out, and a host that cannot be told, are reported; the unload still completes', async () => {
    const r = rig({
      drainMs: 30,
      release: async (h) => {
        if (h === 'edg') throw new Error('edg is gone');
      },
    });
    r.state.inFlight = 1;
    expect(await r.l.unload()).toEqual({ leftInFlight: 1, failed: [{ host: 'edg', error: 'edg is gone' }] });
    expect(r.l.state).toBe('unloaded');
  });

  it('load: warms the plan again and serves; a failed load leaves it unloaded with E_NOT_READY naming why', async () => {
    const r = rig();
    expect(await r.l.load()).toBeNull(); // loaded already
    await r.l.unload();
    r.state.reload = async () => {
      throw new Error('cld: out of memory');
    };
    const e = await rejection(r.l.load());
    expect(e.code).toBe('E_NOT_READY');
    expect(e.message).toBe('loading the model failed: cld: out of memory');
    expect(r.l.state).toBe('unloaded');
    expect(r.log.slice(-2)).toEqual(['reload', 'mark']);
    r.state.reload = async () => PLAN;
    expect(await r.l.load()).toBe(PLAN);
    expect(r.l.unavailable()).toBeNull();
    expect(r.seen.map((x) => x.type)).toEqual(['model-unloaded', 'model-loaded']);
  });

  it('one change at a time, in the order asked: a load asked during an unload runs after it', async () => {
    const gate = deferred();
    const r = rig({
      release: async (h) => {
        r.log.push(`release ${h}`);
        await gate.promise;
      },
    });
    const u = r.l.unload();
    const l = r.l.load();
    await new Promise((res) => setTimeout(res, 20));
    expect(r.l.state).toBe('unloading');
    gate.resolve();
    await Promise.all([u, l]);
    expect(r.log).toEqual(['mark', 'release dev', 'release edg', 'release cld', 'reload']);
    expect(r.l.state).toBe('loaded');
  });
});
