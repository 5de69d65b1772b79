/**
 * The adaptive loop's scheduling (src/runtime/plan/adaptive.ts) with a scripted coordinator and live state:
 * a nudge (a link or quota that moved) runs a round at once, not within NUDGE_GAP_MS of the last one, and
 * never while a proposal waits for its confirming round, which still comes a whole interval later.
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { Plan } from '../src/planner/types.js';
import { routeOf } from '../src/planner/index.js';
import { AdaptiveLoop } from '../src/runtime/plan/adaptive.js';
import type { ActivePlan } from '../src/runtime/plan/coordinator.js';
import { splitModelInput } from './helpers/split-model.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until(what: string, ok: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

describe('AdaptiveLoop.nudge', () => {
  it('runs a round at once, not twice within the gap, and not while a proposal waits for its interval', async () => {
    let active: ActivePlan | null = null;
    let epoch = 0;
    const adoptedAt: number[] = [];
    let slowdown: Record<string, number> = {};
    const loop = new AdaptiveLoop({
      coordinator: {
        get current() {
          return active;
        },
        planInput: async () => splitModelInput(),
        adopt: async (p: Plan, how: { pinned: boolean; reason: string }) => {
          adoptedAt.push(performance.now());
          active = {
            epoch: ++epoch,
            route: [],
            predicted: p,
            pinned: how.pinned,
            adoptedAt: new Date().toISOString(),
            reason: how.reason,
          };
          return active;
        },
        warm: async () => {},
      },
      live: {
        down: () => [],
        slowdowns: () => slowdown,
        slowdownsByWork: () => ({}),
        quotas: () => ({}),
        frameCosts: () => ({}),
      },
      profiles: async () => [],
      // Long enough that no timer round comes between the nudges below, even on a busy machine.
      settings: { replanIntervalMs: 2000, minDwellMs: 0 },
      logger: pino({ level: 'silent' }),
    });
    expect(loop.nudge('before start')).toBe(false);
    loop.start();
    try {
      // The first round, nudged, adopts the device alone (no plan in force).
      expect(loop.nudge('link device->edge moved')).toBe(true);
      await until('the first round', () => loop.state().rounds === 1);
      expect(active && routeOf((active as ActivePlan).predicted)).toBe('device[0:8)');
      // Within the gap: one round for a burst of moves.
      expect(loop.nudge('link edge->device moved')).toBe(false);
      await sleep(300);
      // The device 4x slower: the nudged round proposes the split, and proposes only.
      slowdown = { device: 4 };
      expect(loop.nudge("device's CPU quota 1 -> 0.25")).toBe(true);
      await until('the proposing round', () => loop.state().rounds === 2);
      expect(loop.state().last?.kind).toBe('propose');
      const proposedAt = performance.now();
      await sleep(300);
      expect(loop.nudge('link device->cloud moved')).toBe(false);
      expect(loop.state().rounds).toBe(2);
      // The timer's round confirms it, a whole interval after the round that proposed it.
      await until('the confirming round', () => loop.state().rounds === 3);
      expect(loop.state().last?.kind, loop.state().last?.reason).toBe('adopt');
      expect(routeOf((active as unknown as ActivePlan).predicted)).toBe('device[0:1) -> edge[1:8)');
      expect((adoptedAt.at(-1) as number) - proposedAt).toBeGreaterThanOrEqual(1900);
    } finally {
      loop.stop();
    }
    expect(loop.nudge('after stop')).toBe(false);
  });
});
