/**
 * `npm run loadtest -- [options]`: autocannon against a Cleave deployment's inference endpoint.
 *
 * Without --scenario: a plain load for --duration seconds, printing requests/s and latency percentiles (the
 * last line is JSON). With --scenario NAME (a shipped one, loadtest/scenarios/NAME.json, or a path): the
 * scenario's timeline of actions runs under load, every response's latency is kept with its completion
 * time and the events stream is recorded; `--compare static` runs it again with the plan pinned to the one
 * the first run started with. The report goes to --out as JSON and a self-contained HTML page (and a PNG
 * of it with --png, where Chromium is installed), with a summary table on the terminal.
 *
 * Only the URL given (loopback by default) or a deployment it starts itself (--start: the default three
 * hosts on free loopback ports) is targeted, and every run stops after its duration.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { controlTokenFor } from '../src/cli/control-token.js';
import { DEFAULT_RESTART, type Launched } from '../src/runtime/process/launcher.js';
import { launchDefault } from '../bench/_deploy.js';
import { inferBody } from './body.js';
import { control, drive, type RunResult } from './drive.js';
import { buildReport, htmlReport, summaryTable } from './report.js';
import { loadScenario, ScenarioError, SHIPPED, type Scenario } from './scenario.js';

const USAGE = `usage: npm run loadtest -- [--scenario NAME|FILE] [--url U | --start] [--model M] [--connections N]
                        [--duration S] [--warmup S] [--out DIR] [--compare static] [--png] [--token T] [--json]
  --scenario    one of ${SHIPPED.join(', ')}, or a path to a scenario .json (see loadtest/scenario.ts)
  --url         the deployment's origin (default http://127.0.0.1:8000, as npm start)
  --start       start the default deployment (3 hosts, CPU quotas) on free loopback ports, stop it after
  --model       the model to load (default: the scenario's, else the deployment's own)
  --connections concurrent connections (default: the scenario's, else 4)
  --duration    seconds (default: the scenario's, else 10)
  --warmup      seconds of unmeasured load before each scenario run (default 10)
  --out         report folder (default loadtest-out/SCENARIO-TIME)
  --compare     'static': run the scenario again with the plan it started with pinned, and compare
  --png         also render the HTML report to report.png (needs Chromium at /usr/bin/chromium)
  --token       the control token for the scenario's changes (default: CLEAVE_CONTROL_TOKEN, the run folder)
  --json        print only the JSON summary line`;

function fail(msg: string): never {
  console.error(`loadtest: ${msg}`);
  process.exit(2);
}

let values: ReturnType<typeof parse>;
function parse() {
  return parseArgs({
    options: {
      scenario: { type: 'string' },
      url: { type: 'string' },
      start: { type: 'boolean', default: false },
      model: { type: 'string' },
      connections: { type: 'string' },
      duration: { type: 'string' },
      seconds: { type: 'string' },
      warmup: { type: 'string', default: '10' },
      out: { type: 'string' },
      compare: { type: 'string' },
      png: { type: 'boolean', default: false },
      token: { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  }).values;
}
try {
  values = parse();
} catch (e) {
  fail(`${(e as Error).message}\n${USAGE}`);
}
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
const posInt = (k: string, v: string | undefined): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) fail(`--${k} must be a positive integer, got '${v}'`);
  return n;
};
const connectionsFlag = posInt('connections', values.connections);
const durationFlag = posInt('duration', values.duration ?? values.seconds);
const warmup = Number(values.warmup);
if (!(Number.isFinite(warmup) && warmup >= 0))
  fail(`--warmup must be a number of seconds >= 0, got '${values.warmup}'`);
if (values.start && values.url) fail('--url and --start: give one (--start runs its own deployment)');
if (values.compare !== undefined && values.compare !== 'static')
  fail(`--compare: the only comparison is 'static', got '${values.compare}'`);
if (values.compare && !values.scenario) fail('--compare static needs a --scenario');

let scenario: Scenario | null = null;
if (values.scenario) {
  try {
    scenario = loadScenario(values.scenario);
  } catch (e) {
    if (e instanceof ScenarioError) fail(e.message);
    throw e;
  }
  if (durationFlag) scenario = { ...scenario, duration: durationFlag };
  if (!values.start && scenario.actions.some((a) => 'cpu' in a || 'kill' in a))
    fail(`scenario '${scenario.name}' changes CPU quotas or kills a host: run it with --start`);
}

const log = (s: string): void => {
  if (!values.json) console.log(s);
};

// --- the deployment -------------------------------------------------------------------------------------

let launched: Launched | null = null;
let launchDir: string | null = null;
/** The CPU quotas the started deployment's hosts run under, to restore between runs. */
const initialCpus = new Map<string, number>();
let url = (values.url ?? 'http://127.0.0.1:8000').replace(/\/$/, '');
const outDir = resolve(
  values.out ??
    join('loadtest-out', `${scenario?.name ?? 'plain'}-${new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19)}`),
);
mkdirSync(outDir, { recursive: true });
const stopAll = async (): Promise<void> => {
  await launched?.stop();
  if (launchDir) rmSync(launchDir, { recursive: true, force: true });
};
process.on('SIGINT', () => {
  void stopAll().finally(() => process.exit(130));
});

let model = values.model ?? scenario?.model;
if (values.start) {
  model ??= 'mobilenetv2';
  log(`loadtest: starting the default deployment serving ${model} (host logs in ${join(outDir, 'deployment.log')})`);
  const logLines: string[] = [];
  const flush = setInterval(() => writeFileSync(join(outDir, 'deployment.log'), logLines.join('')), 2000);
  flush.unref();
  const b = await launchDefault(model, 'cleave-loadtest-', {
    onLine: (h, l) => void logLines.push(`[${h}] ${l}\n`),
    restart: DEFAULT_RESTART,
  });
  launched = b.d;
  launchDir = b.dir;
  for (const h of b.config.hosts) if (h.cpus !== undefined) initialCpus.set(h.name, h.cpus);
  url = b.d.url;
  try {
    await b.d.ready(300_000);
  } catch (e) {
    await stopAll();
    fail(`the deployment did not become ready: ${(e as Error).message}`);
  }
}
const token = values.token ?? launched?.controlToken ?? controlTokenFor(url);
if (!model) {
  const p = (await control(url, token, 'GET', '/v1/profile').catch((e: Error) => fail(`${url}: ${e.message}`))) as {
    model?: { name?: string };
  };
  model = p?.model?.name ?? fail(`${url}/v1/profile: no model name; give --model`);
}

/** `connections` autocannon clients sending the model's infer request for `seconds`. */
async function load(connections: number, seconds: number): Promise<autocannon.Result> {
  const req = await inferBody(url, model!);
  return autocannon({
    url: `${url}${req.path}`,
    method: 'POST',
    connections,
    duration: seconds,
    headers: req.headers,
    body: req.body,
  });
}

// --- a plain load -----------------------------------------------------------------------------------------

if (!scenario) {
  const connections = connectionsFlag ?? 4;
  const seconds = durationFlag ?? 10;
  const result = await load(connections, seconds).catch((e: Error) => fail(e.message));
  const summary = {
    name: 'loadtest-infer',
    model,
    connections,
    seconds,
    requests: result.requests.total,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    rps: result.requests.average,
    latencyMs: { p50: result.latency.p50, p90: result.latency.p90, p99: result.latency.p99, max: result.latency.max },
  };
  log(
    `${summary.requests} requests in ${summary.seconds} s (${summary.rps.toFixed(1)} req/s), p50 ${summary.latencyMs.p50} ms, p99 ${summary.latencyMs.p99} ms, non-2xx ${summary.non2xx}`,
  );
  console.log(JSON.stringify(summary));
  await stopAll();
  process.exit(0);
}

// --- a scenario -------------------------------------------------------------------------------------------

const sc: Scenario = scenario;
const connections = connectionsFlag ?? sc.connections;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface LinkState {
  from: string;
  to: string;
  emulation: { bandwidthBps: number | null; delayMs: number; burstBytes?: number } | null;
}
const topology = (await control(url, token, 'GET', '/v1/topology')) as { links: LinkState[] };
const initialLinks = topology.links.map((l) => ({ from: l.from, to: l.to, emulation: l.emulation }));
/** Back to how the deployment was before the first run: links, CPU quotas, every host up and ready. */
async function restore(): Promise<void> {
  for (const l of initialLinks)
    await control(url, token, 'PUT', `/v1/links/${l.from}/${l.to}`, l.emulation ?? { off: true }).catch(
      () => undefined,
    );
  for (const [h, cpus] of initialCpus) launched?.setCpuQuota(h, cpus);
  const end = Date.now() + 60_000;
  for (;;) {
    const ready = await fetch(`${url}/v2/health/ready`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ready) break;
    if (Date.now() > end) throw new Error('the deployment did not become ready again within 60 s');
    await sleep(500);
  }
}

function progress(label: string): (ms: number, n: number) => void {
  const total = sc.duration * 1000;
  let lastLine = 0;
  return (ms, n) => {
    if (values.json) return;
    const f = Math.min(1, ms / total);
    const text = `${label.padEnd(8)} [${'='.repeat(Math.round(f * 30)).padEnd(30)}] ${(ms / 1000).toFixed(1)}/${sc.duration} s  ${n} responses`;
    if (process.stderr.isTTY) process.stderr.write(`\r${text}`);
    else if (ms - lastLine >= 10_000) {
      lastLine = ms;
      process.stderr.write(`${text}\n`);
    }
  };
}

async function warm(): Promise<void> {
  if (warmup > 0) await load(connections, warmup);
}

/** One run of the scenario (after the warm-up), its progress bar ended with a newline. */
async function runScenario(label: 'adaptive' | 'static'): Promise<RunResult> {
  await warm();
  const r = await drive({
    url,
    model: model!,
    scenario: sc,
    connections,
    label,
    controlToken: token,
    deployment: launched ?? undefined,
    onProgress: progress(label),
  });
  if (process.stderr.isTTY && !values.json) process.stderr.write('\n');
  return r;
}

const runs: RunResult[] = [];
try {
  log(`loadtest: scenario ${sc.name} (${sc.duration} s, ${connections} connections) on ${model} at ${url}`);
  runs.push(await runScenario('adaptive'));
  if (values.compare === 'static') {
    const first = runs[0];
    if (!first.startStages) throw new Error('the first run had no plan to pin');
    await restore();
    await control(url, token, 'PUT', '/v1/plan', { stages: first.startStages });
    log(`loadtest: again with the plan pinned to ${first.startRoute}`);
    try {
      runs.push(await runScenario('static'));
    } finally {
      await control(url, token, 'DELETE', '/v1/plan').catch(() => undefined);
    }
  }
  if (!launched) await restore().catch(() => undefined);
} catch (e) {
  await stopAll();
  fail((e as Error).message);
}
await stopAll();

const report = buildReport({ scenario: sc, url, model, runs });
writeFileSync(join(outDir, 'report.json'), JSON.stringify({ ...report, runs: report.runs, raw: runs }, null, 1));
const html = join(outDir, 'report.html');
writeFileSync(html, htmlReport(report, runs));
let png: string | null = null;
if (values.png) {
  const chromium = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
  if (!existsSync(chromium)) log(`loadtest: --png: no Chromium at ${chromium} (apt-get install -y chromium); skipped`);
  else {
    const { chromium: pw } = await import('playwright-core');
    const browser = await pw.launch({
      executablePath: chromium,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
    const page = await browser.newPage({ viewport: { width: 1240, height: 900 } });
    await page.goto(`file://${html}`);
    png = join(outDir, 'report.png');
    await page.screenshot({ path: png, fullPage: true });
    await browser.close();
  }
}
for (const r of runs)
  for (const a of r.actions)
    if (!a.ok) log(`loadtest: ${r.label}: action at ${(a.t / 1000).toFixed(1)} s (${a.what}) failed: ${a.error}`);
log(summaryTable(report));
log(`report: ${html}${png ? `, ${png}` : ''}, ${join(outDir, 'report.json')}`);
console.log(JSON.stringify({ ...report, scenario: sc.name }));
