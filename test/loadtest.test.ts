/**
 * Load-test scenarios: the scenario format's checks, the report's arithmetic on a hand-made run, the HTML
 * report's self-containment, and `npm run loadtest -- --scenario` as a user runs it (a child process)
 * against a real loopback deployment, with a link change on its timeline and --compare static.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { zooEntry } from '../src/graph/zoo/index.js';
import type { RunResult } from '../loadtest/drive.js';
import { buildReport, htmlReport, summarise, summaryTable } from '../loadtest/report.js';
import { loadScenario, parseScenario, SHIPPED } from '../loadtest/scenario.js';
import { startDeployment, TEST_CONTROL_TOKEN, type Deployment } from './helpers/deployment.js';

const ROOT = join(import.meta.dirname, '..');

describe('scenario files', () => {
  it('every shipped scenario parses, with its actions in time order', () => {
    for (const name of SHIPPED) {
      const s = loadScenario(name);
      expect(s.name).toBe(name);
      expect(s.duration).toBeGreaterThan(0);
      expect(s.actions.map((a) => a.at)).toEqual([...s.actions.map((a) => a.at)].sort((a, b) => a - b));
    }
    expect(loadScenario('cpu-spike').actions[0]).toEqual({ at: 15, cpu: { host: 'edge', cpus: 0.15 } });
    expect(loadScenario('edge-loss').actions[0]).toEqual({ at: 15, kill: 'edge' });
  });

  it('names the file and the field of what is wrong', () => {
    const p = (raw: unknown) => () => parseScenario(raw, 'x.json');
    expect(p([])).toThrow(/^x\.json: scenario must be a JSON object$/);
    expect(p({ name: 'a', duration: 0, actions: [] })).toThrow(
      /x\.json: duration must be seconds in \(0, 3600\] \(got 0\)/,
    );
    expect(p({ name: 'a', duration: 10, actions: [], extra: 1 })).toThrow(/x\.json: extra is not a known field/);
    expect(p({ name: 'a', duration: 10, actions: [{ at: 12, kill: 'edge' }] })).toThrow(
      /actions\[0\]\.at must be seconds in \[0, duration 10\) \(got 12\)/,
    );
    expect(p({ name: 'a', duration: 10, actions: [{ at: 1, kill: 'edge', cpu: {} }] })).toThrow(
      /actions\[0\] must have exactly one of link, cpu, kill, objective, paused \(got cpu, kill\)/,
    );
    expect(p({ name: 'a', duration: 10, actions: [{ at: 1, link: { from: 'a', to: 'b', mbps: -1 } }] })).toThrow(
      /actions\[0\]\.link\.mbps must be a number > 0/,
    );
    expect(p({ name: 'a', duration: 10, actions: [{ at: 1, objective: 'fast' }] })).toThrow(
      /actions\[0\]\.objective must be 'latency' or 'throughput' \(got "fast"\)/,
    );
    expect(() => loadScenario('no-such')).toThrow(/--scenario 'no-such': no such scenario \(shipped: steady, /);
  });
});

/** Two runs by hand: adaptive with one plan change at 1000 ms, static without. */
function runs(): RunResult[] {
  const base = { startedAt: '2026-12-01T00:00:00.000Z', durationMs: 2000, connections: 2, actions: [] };
  return [
    {
      ...base,
      label: 'adaptive',
      samples: [
        { t: 500, ms: 100, status: 200 },
        { t: 1100, ms: 200, status: 200 }, // in flight from 900 to 1100: straddles the change at 1000
        { t: 1500, ms: 50, status: 200 },
        { t: 1900, ms: 50, status: 502 },
      ],
      events: [{ t: 1000, type: 'plan-adopted', new: { route: 'dev(input) -> cld[0:8)' }, reason: 'a link slowed' }],
      startRoute: 'dev(input) -> edg[0:8)',
      startStages: [{ host: 'edg', blocks: [0, 8] }],
    },
    {
      ...base,
      label: 'static',
      samples: [
        { t: 400, ms: 300, status: 200 },
        { t: 900, ms: 500, status: 200 },
      ],
      events: [],
      startRoute: 'dev(input) -> edg[0:8)',
      startStages: [{ host: 'edg', blocks: [0, 8] }],
    },
  ];
}

describe('the report', () => {
  it('counts, latencies, throughput, straddlers and the adaptive / static ratios', () => {
    const a = summarise(runs()[0]);
    expect(a).toMatchObject({ requests: 4, ok: 3, errors: 1, meanMs: 116.67, p50Ms: 100, p99Ms: 200, rps: 1.5 });
    // (100^2 + 200^2 + 50^2) / (100 + 200 + 50) = 150
    expect(a.timeWeightedMs).toBe(150);
    expect(a).toMatchObject({ planChanges: 1, straddled: 1, straddledMeanMs: 200, routes: ['dev(input) -> cld[0:8)'] });
    expect(a.changes).toEqual([{ t: 1000, route: 'dev(input) -> cld[0:8)', straddled: 1, straddledMeanMs: 200 }]);
    const s = loadScenario('steady');
    const rep = buildReport({ scenario: s, url: 'http://x', model: 'm', runs: runs() });
    // static: (300^2 + 500^2) / 800 = 425
    expect(rep.compare).toEqual({ meanRatio: 0.292, timeWeightedRatio: 0.353, p99Ratio: 0.4, rpsRatio: 1.5 });
    const table = summaryTable(rep);
    expect(table).toMatch(/^run\s+requests\s+errors\s+mean ms/);
    expect(table).toMatch(/adaptive \/ static: mean 0\.292x, time-weighted 0\.353x, p99 0\.4x, throughput 1\.5x/);
  });

  it('the HTML report is one file with uPlot and the data inlined, and nothing fetched from elsewhere', () => {
    const rep = buildReport({ scenario: loadScenario('steady'), url: 'http://x', model: 'm', runs: runs() });
    const html = htmlReport(rep, runs());
    expect(html).toMatch(/<title>Cleave load test: steady<\/title>/);
    expect(html).toMatch(/uPlot/);
    expect(html).not.toMatch(/<script[^>]+src=|<link[^>]+href=|<img[^>]+src=/);
    expect(html).toContain('"reason":"a link slowed"');
  });
});

describe('npm run loadtest -- --scenario against a deployment', () => {
  let d: Deployment;
  let out: string;
  beforeAll(async () => {
    d = await startDeployment({
      modelName: 'mnv2',
      modelBytes: zooEntry('mobilenetv2')!.build({ small: true }).toBytes(),
    });
    out = mkdtempSync(join(tmpdir(), 'cleave-loadtest-'));
  }, 120_000);
  afterAll(async () => {
    await d?.close();
    if (out) rmSync(out, { recursive: true, force: true });
  });

  const run = (args: string[]) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        ['--import', 'tsx', join(ROOT, 'loadtest', 'main.ts'), ...args],
        { cwd: ROOT, timeout: 120_000, maxBuffer: 64 << 20 },
        (err, stdout, stderr) =>
          resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr }),
      );
    });

  it('runs a scenario file, records its actions and events, compares with the static plan, and writes the report', async () => {
    const file = join(out, 'slow-link.json');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(
      file,
      JSON.stringify({
        name: 'slow-link',
        duration: 4,
        connections: 2,
        actions: [{ at: 1, link: { from: 'dev', to: 'edg', mbps: 50, delayMs: 2, both: true } }],
      }),
    );
    const r = await run([
      '--scenario',
      file,
      '--url',
      d.url,
      '--model',
      'mnv2',
      '--warmup',
      '1',
      '--out',
      out,
      '--compare',
      'static',
      '--token',
      TEST_CONTROL_TOKEN,
    ]);
    expect(r.code, r.stderr).toBe(0);
    const last = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
    expect(last.scenario).toBe('slow-link');
    expect(last.runs.map((x: { label: string }) => x.label)).toEqual(['adaptive', 'static']);
    for (const x of last.runs) {
      expect(x.errors).toBe(0);
      expect(x.ok).toBeGreaterThan(5);
    }
    expect(last.compare.meanRatio).toBeGreaterThan(0);
    expect(r.stdout).toMatch(/adaptive \/ static: mean [\d.]+x/);
    const json = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'));
    expect(json.raw[0].actions).toEqual([expect.objectContaining({ what: 'dev<->edg 50 Mbit/s, 2 ms', ok: true })]);
    expect(json.raw[0].samples.length).toBe(last.runs[0].requests);
    expect(json.raw[0].events.some((e: { type: string }) => e.type === 'snapshot')).toBe(true);
    // The links are back as they were, and the plan is not left pinned.
    const plan = await (await fetch(`${d.url}/v1/plan`)).json();
    expect(plan.pinned).toBe(false);
    expect(readFileSync(join(out, 'report.html'), 'utf8')).toMatch(/Load test: slow-link/);
  }, 120_000);

  it('refuses what it cannot do, naming it, with exit 2', async () => {
    const cpu = await run(['--scenario', 'cpu-spike', '--url', d.url]);
    expect(cpu.code).toBe(2);
    expect(cpu.stderr).toMatch(/scenario 'cpu-spike' changes CPU quotas or kills a host: run it with --start/);
    const bad = await run(['--scenario', 'nope']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/no such scenario/);
    const cmp = await run(['--compare', 'dynamic', '--scenario', 'steady']);
    expect(cmp.stderr).toMatch(/--compare: the only comparison is 'static', got 'dynamic'/);
  }, 60_000);
});
