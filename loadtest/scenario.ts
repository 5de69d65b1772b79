/**
 * Load-test scenarios: a JSON file naming a duration, a load and a timeline of actions at given seconds
 * from the start. `parseScenario` checks every field and names the file and the field on any error.
 *
 *   {
 *     "name": "bandwidth-drop",
 *     "description": "device->edge 200 -> 5 Mbit/s at 15 s, back at 35 s",
 *     "model": "mobilenetv2",          // optional; the deployment's model by default
 *     "duration": 50,                  // seconds
 *     "connections": 2,                // optional, default 2; --connections overrides
 *     "actions": [
 *       { "at": 15, "link": { "from": "device", "to": "edge", "mbps": 5, "delayMs": 1, "both": true } },
 *       { "at": 20, "link": { "from": "device", "to": "edge", "off": true } },
 *       { "at": 25, "cpu": { "host": "edge", "cpus": 0.15 } },
 *       { "at": 30, "kill": "edge" },
 *       { "at": 35, "objective": "throughput" },
 *       { "at": 36, "paused": true }
 *     ]
 *   }
 *
 * `link` goes through the control API (any deployment); `cpu` and `kill` need a deployment the load test
 * started itself (`--start`): they act on its processes (a killed host is restarted by the launcher, as
 * `cleave up` restarts it).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export type Action =
  | {
      readonly at: number;
      readonly link: {
        readonly from: string;
        readonly to: string;
        readonly mbps?: number;
        readonly delayMs?: number;
        readonly off?: true;
        readonly both?: boolean;
      };
    }
  | { readonly at: number; readonly cpu: { readonly host: string; readonly cpus: number } }
  | { readonly at: number; readonly kill: string }
  | { readonly at: number; readonly objective: 'latency' | 'throughput' }
  | { readonly at: number; readonly paused: boolean };

export interface Scenario {
  readonly name: string;
  readonly description: string;
  readonly model?: string;
  readonly duration: number;
  readonly connections: number;
  readonly actions: readonly Action[];
}

export const SCENARIO_DIR = join(import.meta.dirname, 'scenarios');

/** The shipped scenarios' names (loadtest/scenarios/*.json). */
export const SHIPPED = ['steady', 'bandwidth-drop', 'cpu-spike', 'edge-loss', 'flapping-link'] as const;

export class ScenarioError extends Error {}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export function parseScenario(raw: unknown, source: string): Scenario {
  const bad = (field: string, what: string): never => {
    throw new ScenarioError(`${source}: ${field} ${what}`);
  };
  const num = (v: unknown, field: string, ok: (x: number) => boolean, what: string): number =>
    typeof v === 'number' && Number.isFinite(v) && ok(v) ? v : bad(field, `must be ${what} (got ${JSON.stringify(v)})`);
  const str = (v: unknown, field: string): string =>
    typeof v === 'string' && v.length > 0 ? v : bad(field, `must be a non-empty string (got ${JSON.stringify(v)})`);
  const only = (o: Record<string, unknown>, known: string[], at: string): void => {
    const extra = Object.keys(o).find((k) => !known.includes(k));
    if (extra !== undefined) bad(`${at}${extra}`, `is not a known field (known: ${known.join(', ')})`);
  };
  if (!isObj(raw)) return bad('scenario', 'must be a JSON object');
  only(raw, ['name', 'description', 'model', 'duration', 'connections', 'actions'], '');
  const duration = num(raw.duration, 'duration', (x) => x > 0 && x <= 3600, 'seconds in (0, 3600]');
  const connections =
    raw.connections === undefined
      ? 2
      : num(raw.connections, 'connections', (x) => Number.isInteger(x) && x >= 1 && x <= 256, 'an integer in [1, 256]');
  if (!Array.isArray(raw.actions)) bad('actions', 'must be a list');
  const actions = (raw.actions as unknown[]).map((a, i): Action => {
    const f = `actions[${i}]`;
    if (!isObj(a)) return bad(f, 'must be an object');
    const at = num(a.at, `${f}.at`, (x) => x >= 0 && x < duration, `seconds in [0, duration ${duration})`);
    const kinds = ['link', 'cpu', 'kill', 'objective', 'paused'].filter((k) => k in a);
    if (kinds.length !== 1)
      bad(f, `must have exactly one of link, cpu, kill, objective, paused (got ${kinds.join(', ') || 'none'})`);
    only(a, ['at', kinds[0]], `${f}.`);
    switch (kinds[0]) {
      case 'link': {
        const l = a.link;
        if (!isObj(l)) return bad(`${f}.link`, 'must be an object');
        only(l, ['from', 'to', 'mbps', 'delayMs', 'off', 'both'], `${f}.link.`);
        const from = str(l.from, `${f}.link.from`);
        const to = str(l.to, `${f}.link.to`);
        const both =
          l.both === undefined
            ? false
            : l.both === true || l.both === false
              ? l.both
              : bad(`${f}.link.both`, 'must be true or false');
        if (l.off !== undefined) {
          if (l.off !== true) bad(`${f}.link.off`, 'must be true');
          if (l.mbps !== undefined || l.delayMs !== undefined) bad(`${f}.link`, 'off comes without mbps and delayMs');
          return { at, link: { from, to, off: true, both } };
        }
        const mbps = num(l.mbps, `${f}.link.mbps`, (x) => x > 0, 'a number > 0 (Mbit/s)');
        const delayMs =
          l.delayMs === undefined ? 0 : num(l.delayMs, `${f}.link.delayMs`, (x) => x >= 0, 'a number >= 0 (ms)');
        return { at, link: { from, to, mbps, delayMs, both } };
      }
      case 'cpu': {
        const c = a.cpu;
        if (!isObj(c)) return bad(`${f}.cpu`, 'must be an object');
        only(c, ['host', 'cpus'], `${f}.cpu.`);
        return {
          at,
          cpu: {
            host: str(c.host, `${f}.cpu.host`),
            cpus: num(c.cpus, `${f}.cpu.cpus`, (x) => x >= 0.01, 'a number >= 0.01 (CPUs)'),
          },
        };
      }
      case 'kill':
        return { at, kill: str(a.kill, `${f}.kill`) };
      case 'objective':
        if (a.objective !== 'latency' && a.objective !== 'throughput')
          bad(`${f}.objective`, `must be 'latency' or 'throughput' (got ${JSON.stringify(a.objective)})`);
        return { at, objective: a.objective as 'latency' | 'throughput' };
      default:
        if (typeof a.paused !== 'boolean') bad(`${f}.paused`, 'must be true or false');
        return { at, paused: a.paused as boolean };
    }
  });
  return {
    name: str(raw.name, 'name'),
    description: raw.description === undefined ? '' : str(raw.description, 'description'),
    model: raw.model === undefined ? undefined : str(raw.model, 'model'),
    duration,
    connections,
    actions: [...actions].sort((x, y) => x.at - y.at),
  };
}

/** A scenario by name (a shipped one) or by path to a JSON file. */
export function loadScenario(nameOrPath: string): Scenario {
  const file = /[/\\]|\.json$/.test(nameOrPath) ? nameOrPath : join(SCENARIO_DIR, `${nameOrPath}.json`);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new ScenarioError(
      `--scenario '${nameOrPath}': no such scenario (shipped: ${SHIPPED.join(', ')}; or a path to a .json file)`,
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ScenarioError(`${file}: not JSON: ${(e as Error).message}`);
  }
  return parseScenario(raw, file);
}

/** What an action does, in words. */
export function describeAction(a: Action): string {
  if ('link' in a) {
    const l = a.link;
    const dir = l.both ? `${l.from}<->${l.to}` : `${l.from}->${l.to}`;
    return l.off ? `${dir} emulation off` : `${dir} ${l.mbps} Mbit/s, ${l.delayMs ?? 0} ms`;
  }
  if ('cpu' in a) return `${a.cpu.host} CPU quota ${a.cpu.cpus}`;
  if ('kill' in a) return `kill -9 ${a.kill}`;
  if ('objective' in a) return `objective ${a.objective}`;
  return a.paused ? 'controller paused' : 'controller resumed';
}
