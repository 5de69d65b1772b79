import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { planCommand } from '../src/cli/commands/plan.js';
import { isCleaveError } from '../src/errors.js';
import { parseProfile, profilesToInput, parseNetworkCsv, type Profile } from '../src/planner/index.js';

const SHA = 'ab'.repeat(32);
const N = 8;

function profile(
  host: string,
  tier: string,
  speed: number,
  over: Record<string, unknown> = {},
): Record<string, unknown> {
  const blocks = Array.from({ length: N }, (_, i) => ({
    index: i,
    name: `b${i}`,
    nodes: [i * 2, i * 2 + 2],
    frontierBytes: i === N - 1 ? 4000 : 400_000 >> i,
    frontierTensors: 1,
    weightBytes: 1000 * (i + 1),
  }));
  return {
    format: 'cleave-profile/1',
    model: { name: 'toynet', sha256: SHA, inputBytes: 602112, outputBytes: 4000, blocks },
    host: { name: host, tier, cpu: 'test cpu', cores: 4, memoryBytes: 4e9, threads: 1 },
    timings: {
      repeats: 10,
      warmup: 2,
      blocks: blocks.map((_, i) => ({
        medianMs: speed * (1 + (i % 3)),
        p90Ms: speed * (1.5 + (i % 3)),
        rawMedianMs: speed * (1 + (i % 3)) + 0.1,
      })),
      wholeModelMs: { medianMs: speed * 15, p90Ms: speed * 16 },
      runOverheadMs: 0.2,
    },
    createdAt: '2026-11-26T05:00:00.000Z',
    ...over,
  };
}

const NET = `source,destination,ping(ms),bandwidth(mbps)
pi,edge1,10,100
pi,cloud1,40,50
edge1,cloud1,20,1000
`;

let dir: string;
let files: { pi: string; edge: string; cloud: string; net: string };

function write(name: string, content: unknown): string {
  const f = join(dir, name);
  writeFileSync(f, typeof content === 'string' ? content : JSON.stringify(content));
  return f;
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'cleave-plan-'));
  files = {
    pi: write('pi.json', profile('pi', 'device', 20)),
    edge: write('edge1.json', profile('edge1', 'edge', 4)),
    cloud: write('cloud1.json', profile('cloud1', 'cloud', 1)),
    net: write('net.csv', NET),
  };
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => {
    out += String(s);
    return true;
  });
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => {
    err += String(s);
    return true;
  });
  try {
    const code = await planCommand(args);
    return { code, out, err };
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
}

async function fails(args: string[], code: string, re: RegExp): Promise<void> {
  let caught: unknown;
  try {
    await run(args);
  } catch (x) {
    caught = x;
  }
  expect(isCleaveError(caught), `expected a CleaveError, got ${String(caught)}`).toBe(true);
  if (isCleaveError(caught)) {
    expect(caught.code).toBe(code);
    expect(caught.message).toMatch(re);
  }
}

describe('cleave plan', () => {
  it('plans from profile files and a network file', async () => {
    const r = await run(['--profiles', files.pi, files.edge, files.cloud, '--network', files.net, '--top', '3']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^toynet \(8 blocks\): 3 best plans by lowest latency; cost model cleave/);
    expect(r.out).toMatch(/\[1\] [\d.]+s - [\d.]+MB - /);
    expect(r.out.match(/^\[\d\]/gm)).toHaveLength(3);
  });

  it('--json, --svg, --pareto, Scission criteria with "-1"', async () => {
    const svg = join(dir, 'best.svg');
    const r = await run([
      files.pi,
      files.edge,
      files.cloud,
      '--network',
      files.net,
      '--json',
      '--pareto',
      '--svg',
      svg,
      '-e',
      '-1',
      '-d',
      '0',
      '--cost-model',
      'scission',
    ]);
    const j = JSON.parse(r.out) as {
      plans: { stages: { tier: string }[] }[];
      pareto: unknown[];
      costModel: string;
      inputBytes: number;
    };
    expect(j.costModel).toBe('scission');
    expect(j.inputBytes).toBe(150_000);
    expect(j.plans.every((p) => p.stages.every((s) => s.tier !== 'edge') && p.stages[0].tier === 'device')).toBe(true);
    expect(j.pareto.length).toBeGreaterThan(0);
    expect(readFileSync(svg, 'utf8')).toMatch(/^<svg /);
    expect(r.err).toContain(`wrote ${svg}`);
  });

  it('--help', async () => {
    const r = await run(['--help']);
    expect(r.code).toBe(0);
    expect(r.out).toContain('cleave plan --profiles FILE... --network FILE.csv');
  });

  it('a malformed profile names the file', async () => {
    const bad = write('bad.json', '{"format": "cleave-profile/1", ');
    await fails([bad, files.edge, '--network', files.net], 'E_BAD_PROFILE', new RegExp(`^${bad}: not JSON`));
  });

  it('a wrong-version profile names the file and the format', async () => {
    const v2 = write('v2.json', profile('pi', 'device', 20, { format: 'cleave-profile/2' }));
    await fails(
      [v2, '--network', files.net],
      'E_BAD_PROFILE',
      /v2\.json: format: "cleave-profile\/2" is not supported/,
    );
  });

  it('a bad field names the file and the field', async () => {
    const p = profile('pi', 'device', 20) as { model: { blocks: { frontierBytes: unknown }[] } };
    p.model.blocks[3].frontierBytes = 'lots';
    const f = write('field.json', p);
    await fails(
      [f, '--network', files.net],
      'E_BAD_PROFILE',
      /field\.json: model\.blocks\[3\]\.frontierBytes: expected a number >= 0, got "lots"/,
    );
  });

  it('profiles of different models are refused, naming both files', async () => {
    const other = profile('edge1', 'edge', 4) as { model: { sha256: string } };
    other.model.sha256 = 'cd'.repeat(32);
    const f = write('other.json', other);
    await fails(
      [files.pi, f, '--network', files.net],
      'E_BAD_PROFILE',
      /other\.json profiles model toynet .*but .*pi\.json profiles toynet/,
    );
  });

  it('a host missing from the network file', async () => {
    const net = write('short.csv', 'pi,edge1,10,100\nedge1,cloud1,20,1000\n');
    await fails(
      [files.pi, files.edge, files.cloud, '--network', net],
      'E_BAD_NETWORK',
      /short\.csv: no row for pi -> cloud1/,
    );
  });

  it('a malformed CSV row names file and row', async () => {
    const net = write('bad.csv', 'source,destination,ping(ms),bandwidth(mbps)\npi,edge1,10,100\npi,cloud1,forty,50\n');
    await fails([files.pi, files.edge, files.cloud, '--network', net], 'E_BAD_NETWORK', /bad\.csv:3: ping 'forty'/);
  });

  it('impossible constraints: no plan, naming the constraint', async () => {
    await fails(
      [
        files.pi,
        files.edge,
        files.cloud,
        '--network',
        files.net,
        '--no-tier',
        'device',
        '--max-upload',
        'device=100kB',
      ],
      'E_NO_PLAN',
      /no plan: --no-tier device, --max-upload device=100kB cannot all be met together/,
    );
    await fails(
      [files.pi, files.edge, files.cloud, '--network', files.net, '-c', '2', '--block-on', '2=edge'],
      'E_NO_PLAN',
      /-c "2", --block-on 2=edge|--block-on 2=edge, -c "2"/,
    );
  });

  it('a block index out of range names the flag', async () => {
    await fails(
      [files.pi, files.edge, files.cloud, '--network', files.net, '--block-not-on', '12=device'],
      'E_BAD_INPUT',
      /--block-not-on 12=device: block 12 is out of range \(the model has blocks 0..7\)/,
    );
  });

  it('bad flags', async () => {
    await fails([files.pi, '--network', files.net, '--objective', 'speed'], 'E_BAD_INPUT', /--objective 'speed'/);
    await fails([files.pi, '--network', files.net, '--top', '0'], 'E_BAD_INPUT', /--top '0'/);
    await fails(
      [files.pi, '--network', files.net, '--tiers', 'device,fog', '-e', '1'],
      'E_BAD_INPUT',
      /-e: there is no tier 'edge'/,
    );
    await fails(
      [files.pi, files.edge, '--network', files.net, '--tiers', 'device,cloud'],
      'E_BAD_PROFILE',
      /edge1\.json: host\.tier 'edge' is not in the tier chain device -> cloud/,
    );
    await fails(['--network', files.net], 'E_BAD_INPUT', /--profiles FILE\.\.\. is required/);
  });

  it('wire codecs from the profiles: --codecs, --max-error, and their bad values', async () => {
    // The toy net's frontiers with an int8 codec measured: 1/4 the bytes, 1 % output error at every boundary.
    const codecs = {
      int8: {
        encodeMsPerByte: 1e-6,
        decodeMsPerByte: 1e-6,
        ratio: new Array(9).fill(0.25),
        error: new Array(9).fill(0.01),
      },
    };
    const slow = `source,destination,ping(ms),bandwidth(mbps)
pi,edge1,10,1
pi,cloud1,40,1
edge1,cloud1,20,1000
`;
    const f = {
      pi: write('pi-c.json', profile('pi', 'device', 200, { codecs })),
      edge: write('edge1-c.json', profile('edge1', 'edge', 1, { codecs })),
      cloud: write('cloud1-c.json', profile('cloud1', 'cloud', 1, { codecs })),
      net: write('slow.csv', slow),
    };
    const base = ['--profiles', f.pi, f.edge, f.cloud, '--network', f.net, '--json'];
    const hopsOf = async (extra: string[]): Promise<{ codec: string }[]> => {
      const r = await run([...base, ...extra]);
      expect(r.code, r.err).toBe(0);
      return JSON.parse(r.out).plans[0].hops;
    };
    expect((await hopsOf([])).every((h) => h.codec === 'raw')).toBe(true); // no budget: lossless only
    expect((await hopsOf(['--max-error', '0.02'])).some((h) => h.codec === 'int8')).toBe(true);
    expect((await hopsOf(['--max-error', '0.02', '--codecs', 'none'])).every((h) => h.codec === 'raw')).toBe(true);
    expect((await hopsOf(['--max-error', '0.005'])).every((h) => h.codec === 'raw')).toBe(true);
    await fails([...base, '--codecs', 'zstd'], 'E_BAD_INPUT', /--codecs: 'zstd' is not a codec/);
    // A profile cannot pass a lossy codec off as lossless by leaving its errors out, nor offer one no wire has.
    const { error: _dropped, ...unmeasured } = codecs.int8;
    const sly = { int8: unmeasured, zstd: { ...unmeasured } };
    const slyBase = [
      '--profiles',
      write('pi-s.json', profile('pi', 'device', 200, { codecs: sly })),
      write('edge1-s.json', profile('edge1', 'edge', 1, { codecs: sly })),
      write('cloud1-s.json', profile('cloud1', 'cloud', 1, { codecs: sly })),
      '--network',
      f.net,
      '--json',
      '--max-error',
      '1',
    ];
    const sr = await run(slyBase);
    expect(sr.code, sr.err).toBe(0);
    expect(JSON.parse(sr.out).plans[0].hops.every((h: { codec: string }) => h.codec === 'raw')).toBe(true);
    const short = write(
      'pi-short.json',
      profile('pi', 'device', 200, { codecs: { int8: { ...codecs.int8, ratio: [1] } } }),
    );
    await fails(
      [short, f.edge, '--network', f.net],
      'E_BAD_PROFILE',
      /pi-short\.json: codecs\.int8\.ratio: expected 9 entries/,
    );
    await fails([...base, '--max-error=-1'], 'E_BAD_INPUT', /--max-error '-1'/);
    await fails([...base, '--max-error', 'lots'], 'E_BAD_INPUT', /--max-error 'lots'/);
  });

  it('a tier chain from --config with a skipped tier', async () => {
    const cfg = write('cfg.json', { tiers: ['device', 'gateway', 'edge', 'cloud'] });
    const r = await run([
      files.pi,
      files.edge,
      files.cloud,
      '--network',
      files.net,
      '--config',
      cfg,
      '--criteria',
      'edge=!-1',
    ]);
    expect(r.code).toBe(0);
    expect(r.out).toContain('Edge(edge1)');
  });
});

describe('profiles', () => {
  it("parse the profiler's document, with its extra fields", () => {
    const p = parseProfile(profile('pi', 'device', 20), 'pi.json');
    expect(p.timings.runOverheadMs).toBe(0.2);
    expect(p.timings.blocks[0]).toEqual({ medianMs: 20, p90Ms: 30, rawMedianMs: 20.1 });
  });

  it('reject what is not a profile', () => {
    expect(() => parseProfile([], 'x.json')).toThrow(/x\.json: \(document\): expected an object/);
    expect(() => parseProfile({ model: {} }, 'x.json')).toThrow(/x\.json: format: missing: not a Cleave profile/);
    const p = profile('pi', 'device', 20) as { timings: { blocks: unknown[] } };
    p.timings.blocks.pop();
    expect(() => parseProfile(p, 'x.json')).toThrow(/x\.json: timings\.blocks: 7 entries for 8 blocks/);
  });

  it('profilesToInput carries times, frontiers, weights and the run overhead', () => {
    const ps = [profile('pi', 'device', 20), profile('edge1', 'edge', 4)].map((j, i) => ({
      profile: parseProfile(j, `${i}.json`) as Profile,
      source: `${i}.json`,
    }));
    const input = profilesToInput(ps, parseNetworkCsv('pi,edge1,1,1\n', 'n.csv'), {
      tiers: ['device', 'edge'],
      statistic: 'p90',
    });
    expect(input.hosts[0]).toMatchObject({ name: 'pi', tier: 'device', stageOverheadMs: 0.2 });
    expect(input.hosts[0].blockMs[0]).toBe(30);
    expect(input.frontierBytes[0]).toBe(400_000);
    expect(input.inputBytes).toBe(602112);
    expect(input.weightBytes?.[7]).toBe(8000);
  });
});
