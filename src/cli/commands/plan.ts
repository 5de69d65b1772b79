import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { CleaveError, errorMessage } from '../../errors.js';
import { CODECS, LOSSLESS_CODECS, codecListProblem } from '../../transport/codec.js';
import {
  DEFAULT_TIERS,
  PLANNER_DEFAULTS,
  SCISSION_INPUT_BYTES,
  formatResult,
  parseConstraintFlag,
  parseNetworkCsv,
  parseProfile,
  parseScissionCriteria,
  parseSize,
  plan,
  planSvg,
  profilesToInput,
  type Constraint,
  type CostModel,
  type Objective,
  type Profile,
} from '../../planner/index.js';

const planHelp = `cleave plan --profiles FILE... --network FILE.csv [options]

Finds the best ways to split a model across device, edge and cloud hosts from their profiles (written by
'cleave profile') and a network file. Exact: the same answer as trying every split on every host, found
by dynamic programming. Prints the top plans in Scission's style:
  9.0106s - 2.4087MB - Device(raspi4) = 0 - 6, Edge(vm2Core) = 7 - 11, Cloud(6700k(GPU)) = 12 - 25
(latency, bytes over all links, each tier's host and its blocks, inclusive).

Inputs
  --profiles FILE...       one profile per host, all of the same model (also accepted as plain arguments)
  --network FILE.csv       source,destination,ping(ms),bandwidth(mbps): one row per direction, header optional
  --tiers a,b,c            the tier chain, origin first (default ${DEFAULT_TIERS.join(',')})
  --config FILE            JSON {"tiers": [...]} instead of --tiers

Objective and output
  --objective latency|throughput   default latency; throughput = pipelined, the slowest stage or link
  --pareto                 also list the plans no other plan beats on latency, bytes leaving the device and
                           device compute time
  --cost-model cleave|scission     default cleave (adds the result's return, a per-hop overhead, one-way
                           latency); scission reproduces Scission's predictor
  --top N                  plans to show (default ${PLANNER_DEFAULTS.topN})
  --json                   machine-readable output
  --svg FILE               draw the best plan
  --stat median|p90        which block time to plan with (default median)
  --input-bytes SIZE       raw input uploaded when the device runs nothing (default: the model's input
                           for cleave, ${SCISSION_INPUT_BYTES / 1e6} MB for scission, as Scission)
  --hop-overhead MS        cleave's fixed cost per hop (default ${PLANNER_DEFAULTS.hopOverheadMs} ms)
  --codecs LIST            wire codecs a hop may use besides raw, e.g. brotli,fp16 (default: every codec
                           the profiles measured; none: raw only). Cleave cost model only
  --max-error E            lossy codecs (fp16, int8...) only at cuts where the model output's relative error
                           they cause, measured at profile time, is at most E (default 0: lossless only);
                           per cut: two lossy hops may add up to 2E

Constraints (all combinable, each repeatable)
  --block-on K=TIER        block K (or range A-B) runs on TIER      --block-not-on K=TIER
  --use-tier TIER          TIER runs at least one block             --no-tier TIER
  --use-host NAME          NAME runs at least one block             --no-host NAME
  --max-upload TIER=SIZE   bytes TIER's host may send (2MB, 500kB, 1MiB)
  --max-compute TIER=LIM   TIER's compute time: 0.5s, 200ms, or 30% of the plan's whole compute time
  --max-weights HOST=SIZE  weight bytes HOST may hold
  -d, -e, -c CRITERIA      Scission's criteria for device, edge, cloud: "3,!10,raspi4" = block 3 here,
                           block 10 not here, use host raspi4; "-1" = tier not used, "!-1" = tier used,
                           "!name" = host not used. Block indices are Cleave's blocks.
  --criteria TIER=CRITERIA the same for any tier of the chain

A constraint set that leaves no plan is reported with the constraints to blame (exit 2).`;

const CONSTRAINT_FLAGS = [
  'block-on',
  'block-not-on',
  'use-tier',
  'no-tier',
  'use-host',
  'no-host',
  'max-upload',
  'max-compute',
  'max-weights',
] as const;

/** Scission writes `-e -1`; parseArgs would read `-1` as an option, so criteria values are glued on first. */
function glueCriteria(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const long = {
      '-d': '--device',
      '-e': '--edge',
      '-c': '--cloud',
      '--device': '--device',
      '--edge': '--edge',
      '--cloud': '--cloud',
      '--criteria': '--criteria',
    }[a];
    if (long && i + 1 < argv.length) {
      out.push(`${long}=${argv[++i]}`);
    } else out.push(a);
  }
  return out;
}

function readText(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new CleaveError('E_BAD_INPUT', `cannot read ${what} ${file}: ${errorMessage(e)}`);
  }
}

function readProfile(file: string): { profile: Profile; source: string } {
  let json: unknown;
  try {
    json = JSON.parse(readText(file, 'profile'));
  } catch (e) {
    if (e instanceof CleaveError) throw e;
    throw new CleaveError('E_BAD_PROFILE', `${file}: not JSON: ${errorMessage(e)}`);
  }
  return { profile: parseProfile(json, file), source: file };
}

function readTiers(values: { tiers?: string; config?: string }): readonly string[] {
  if (values.tiers !== undefined && values.config !== undefined)
    throw new CleaveError('E_BAD_INPUT', 'give --tiers or --config, not both');
  let tiers: unknown = DEFAULT_TIERS;
  let where = '--tiers';
  if (values.tiers !== undefined) tiers = values.tiers.split(',').map((t) => t.trim());
  if (values.config !== undefined) {
    where = values.config;
    try {
      tiers = (JSON.parse(readText(values.config, 'config')) as { tiers?: unknown }).tiers;
    } catch (e) {
      if (e instanceof CleaveError) throw e;
      throw new CleaveError('E_BAD_INPUT', `${values.config}: not JSON: ${errorMessage(e)}`);
    }
  }
  if (
    !Array.isArray(tiers) ||
    tiers.length === 0 ||
    !tiers.every((t) => typeof t === 'string' && /^[a-z][\w-]*$/i.test(t))
  ) {
    throw new CleaveError(
      'E_BAD_INPUT',
      `${where}: expected a list of tier names, origin first (e.g. device,edge,cloud)`,
    );
  }
  if (new Set(tiers).size !== tiers.length) throw new CleaveError('E_BAD_INPUT', `${where}: a tier is listed twice`);
  return tiers as string[];
}

export async function planCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: glueCriteria(argv),
    allowPositionals: true,
    options: {
      profiles: { type: 'string', multiple: true },
      network: { type: 'string' },
      tiers: { type: 'string' },
      config: { type: 'string' },
      objective: { type: 'string' },
      pareto: { type: 'boolean' },
      'cost-model': { type: 'string' },
      top: { type: 'string' },
      json: { type: 'boolean' },
      svg: { type: 'string' },
      stat: { type: 'string' },
      'input-bytes': { type: 'string' },
      'hop-overhead': { type: 'string' },
      codecs: { type: 'string' },
      'max-error': { type: 'string' },
      device: { type: 'string', short: 'd', multiple: true },
      edge: { type: 'string', short: 'e', multiple: true },
      cloud: { type: 'string', short: 'c', multiple: true },
      criteria: { type: 'string', multiple: true },
      ...Object.fromEntries(CONSTRAINT_FLAGS.map((f) => [f, { type: 'string' as const, multiple: true as const }])),
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(`${planHelp}\n`);
    return 0;
  }
  const files = [...(values.profiles ?? []), ...positionals];
  if (files.length === 0 || values.network === undefined) {
    process.stdout.write(`${planHelp}\n`);
    throw new CleaveError(
      'E_BAD_INPUT',
      files.length === 0 ? '--profiles FILE... is required' : '--network FILE.csv is required',
    );
  }
  const tiers = readTiers(values);
  const objective = (values.objective ?? 'latency') as Objective;
  if (objective !== 'latency' && objective !== 'throughput')
    throw new CleaveError('E_BAD_INPUT', `--objective '${values.objective}': expected latency or throughput`);
  const costModel = (values['cost-model'] ?? 'cleave') as CostModel;
  if (costModel !== 'cleave' && costModel !== 'scission')
    throw new CleaveError('E_BAD_INPUT', `--cost-model '${values['cost-model']}': expected cleave or scission`);
  let topN: number = PLANNER_DEFAULTS.topN;
  if (values.top !== undefined) {
    if (!/^\d+$/.test(values.top) || Number(values.top) < 1 || Number(values.top) > PLANNER_DEFAULTS.maxTopN)
      throw new CleaveError(
        'E_BAD_INPUT',
        `--top '${values.top}': expected an integer from 1 to ${PLANNER_DEFAULTS.maxTopN}`,
      );
    topN = Number(values.top);
  }
  const stat = values.stat ?? 'median';
  if (stat !== 'median' && stat !== 'p90')
    throw new CleaveError('E_BAD_INPUT', `--stat '${stat}': expected median or p90`);
  let hopOverheadMs: number | undefined;
  if (values['hop-overhead'] !== undefined) {
    hopOverheadMs = Number(values['hop-overhead']);
    if (values['hop-overhead'].trim() === '' || !Number.isFinite(hopOverheadMs) || hopOverheadMs < 0)
      throw new CleaveError('E_BAD_INPUT', `--hop-overhead '${values['hop-overhead']}': expected ms >= 0`);
  }
  const codecs =
    values.codecs === undefined
      ? undefined
      : values.codecs === 'none'
        ? []
        : values.codecs.split(',').map((c) => c.trim());
  const codecProblem = codecListProblem(codecs);
  if (codecProblem) throw new CleaveError('E_BAD_INPUT', `--${codecProblem}`);
  let maxError: number | undefined;
  if (values['max-error'] !== undefined) {
    maxError = Number(values['max-error']);
    if (values['max-error'].trim() === '' || !Number.isFinite(maxError) || maxError < 0)
      throw new CleaveError('E_BAD_INPUT', `--max-error '${values['max-error']}': expected a relative error >= 0`);
  }
  const inputBytes =
    values['input-bytes'] !== undefined ? parseSize(values['input-bytes'], '--input-bytes') : undefined;

  const constraints: Constraint[] = [];
  const flagValues = values as Record<string, unknown>;
  for (const f of CONSTRAINT_FLAGS)
    for (const v of (flagValues[f] as string[] | undefined) ?? [])
      constraints.push(...parseConstraintFlag(`--${f}`, v));
  const criteria: [string, string, string[] | undefined][] = [
    ['-d', 'device', values.device],
    ['-e', 'edge', values.edge],
    ['-c', 'cloud', values.cloud],
  ];
  for (const [flag, tier, list] of criteria) {
    for (const text of list ?? []) {
      if (!tiers.includes(tier))
        throw new CleaveError(
          'E_BAD_INPUT',
          `${flag}: there is no tier '${tier}' in the chain ${tiers.join(',')} (use --criteria TIER=...)`,
        );
      constraints.push(...parseScissionCriteria(flag, tier, text));
    }
  }
  for (const v of values.criteria ?? []) {
    const i = v.indexOf('=');
    if (i <= 0) throw new CleaveError('E_BAD_INPUT', `--criteria '${v}': expected TIER=CRITERIA`);
    constraints.push(...parseScissionCriteria(`--criteria ${v.slice(0, i)}`, v.slice(0, i), v.slice(i + 1)));
  }

  const profiles = files.map(readProfile);
  const links = parseNetworkCsv(readText(values.network, 'network file'), values.network);
  const input = profilesToInput(profiles, links, {
    tiers,
    costModel,
    objective,
    pareto: values.pareto,
    topN,
    constraints,
    inputBytes,
    statistic: stat,
    networkSource: values.network,
    options: hopOverheadMs !== undefined ? { hopOverheadMs } : undefined,
    codecs,
    maxError,
    wireCodecs: { known: CODECS, lossless: LOSSLESS_CODECS },
  });
  const result = plan(input);
  const model = profiles[0].profile.model;
  const title = `${model.name} (${model.blocks.length} blocks)`;
  if (values.json) {
    process.stdout.write(
      `${JSON.stringify({ model: { name: model.name, sha256: model.sha256, blocks: model.blocks.length }, tiers, ...result }, null, 2)}\n`,
    );
  } else {
    process.stdout.write(`${formatResult(result, { title })}\n`);
  }
  if (values.svg !== undefined) {
    const svg = planSvg(input, result.plans[0], {
      title: `${title}: ${result.costModel} cost model, best by ${result.objective}`,
      blockNames: model.blocks.map((b) => b.name),
    });
    try {
      writeFileSync(values.svg, svg);
    } catch (e) {
      throw new CleaveError('E_BAD_INPUT', `--svg ${values.svg}: cannot write: ${errorMessage(e)}`);
    }
    process.stderr.write(`wrote ${values.svg}\n`);
  }
  return 0;
}
