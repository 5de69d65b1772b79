/**
 * The planner input the controller's load and calibration tests price by hand: 8 blocks of 1 kB frontiers;
 * device 6 ms, edge 7 ms, cloud 100 ms a block; device<->edge 2 ms RTT at `edgeMbps` (default 8 Mbit/s,
 * 1 MB/s), device->cloud 40 ms and edge->cloud 20 ms at 1 MB/s; no hop overhead.
 */
import type { PlanInput } from '../../src/planner/index.js';

export function splitModelInput(edgeMbps = 8): PlanInput {
  const bps = (edgeMbps * 1e6) / 8;
  return {
    tiers: ['device', 'edge', 'cloud'],
    hosts: [
      { name: 'device', tier: 'device', blockMs: new Array<number>(8).fill(6) },
      { name: 'edge', tier: 'edge', blockMs: new Array<number>(8).fill(7) },
      { name: 'cloud', tier: 'cloud', blockMs: new Array<number>(8).fill(100) },
    ],
    links: [
      { from: 'device', to: 'edge', rttMs: 2, bytesPerSecond: bps },
      { from: 'edge', to: 'device', rttMs: 2, bytesPerSecond: bps },
      { from: 'device', to: 'cloud', rttMs: 40, bytesPerSecond: 1e6 },
      { from: 'edge', to: 'cloud', rttMs: 20, bytesPerSecond: 1e6 },
    ],
    frontierBytes: new Array<number>(8).fill(1000),
    inputBytes: 100_000,
    outputBytes: 1000,
    options: { hopOverheadMs: 0 },
  };
}
