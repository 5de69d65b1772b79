import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { CleaveError } from '../../errors.js';
import { applyCpuQuota, removeCgroup } from '../../runtime/cgroup.js';
import { checkConfig, defaultConfig, readConfig, type DeploymentConfig } from '../../runtime/config.js';
import { listModels } from '../../runtime/model-repo.js';
import { buildZooFile, cacheDir, parseZooName } from '../model-ref.js';

export const upHelp = `cleave up [--model NAME] [--config FILE] [--models DIR] [--no-quota]

Starts every host of a deployment (by default: device, edge and cloud on 127.0.0.1:8000-8002 serving
MobileNetV2) as separate OS processes, applies each host's CPU quota through cgroups where Linux and
root allow, waits until the device host has planned and warmed its route, and prints where to send
requests. A zoo model name is built into the model repository on first use. Ctrl-C stops them all.

  --model NAME   the model to serve (a repository model, or a zoo name such as resnet50)
  --config FILE  a deployment file (see README); default: the built-in three-host deployment
  --models DIR   the model repository (default: ~/.cache/cleave/models)
  --no-quota     do not apply CPU quotas`;

const BIN = fileURLToPath(new URL('../../../bin/cleave.mjs', import.meta.url));

export async function upCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string' },
      config: { type: 'string' },
      models: { type: 'string' },
      'no-quota': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(`${upHelp}\n`);
    return 0;
  }
  const base: DeploymentConfig = values.config ? readConfig(values.config) : defaultConfig();
  const config = checkConfig({ ...base, model: values.model ?? base.model }, values.config ?? 'built-in config');
  const modelsDir = values.models ?? join(cacheDir(), 'models');
  ensureModel(modelsDir, config.model);

  const token = process.env.CLEAVE_TOKEN ?? config.token ?? randomBytes(16).toString('hex');
  const runDir = join(cacheDir(), 'run');
  mkdirSync(runDir, { recursive: true });
  const configFile = join(runDir, `up-${process.pid}.json`);
  writeFileSync(configFile, JSON.stringify({ ...config, token: undefined }, null, 2));

  const children: { name: string; child: ChildProcess; cgroup?: string }[] = [];
  let stopping = false;
  const stopAll = (code: number): void => {
    if (stopping) return;
    stopping = true;
    for (const c of children) c.child.kill('SIGTERM');
    setTimeout(() => {
      for (const c of children) {
        c.child.kill('SIGKILL');
        removeCgroup(c.cgroup);
      }
      process.exit(code);
    }, 3000).unref();
    Promise.all(children.map((c) => new Promise((r) => (c.child.exitCode !== null ? r(null) : c.child.once('exit', r))))).then(() => {
      for (const c of children) removeCgroup(c.cgroup);
      process.exit(code);
    }, () => process.exit(code));
  };
  process.once('SIGINT', () => stopAll(0));
  process.once('SIGTERM', () => stopAll(0));

  for (const h of config.hosts) {
    const child = spawn(process.execPath, [BIN, 'serve', '--config', configFile, '--name', h.name, '--models', modelsDir], {
      env: { ...process.env, CLEAVE_TOKEN: token },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const entry: { name: string; child: ChildProcess; cgroup?: string } = { name: h.name, child };
    children.push(entry);
    for (const stream of [child.stdout, child.stderr]) if (stream) createInterface({ input: stream }).on('line', (l) => process.stdout.write(`[${h.name}] ${l}\n`));
    const threads = h.threads ?? 1;
    let quota = 'none requested';
    if (h.cpus !== undefined && !values['no-quota'] && child.pid !== undefined) {
      const r = applyCpuQuota(child.pid, `${h.name}-${process.pid}`, h.cpus);
      entry.cgroup = r.dir;
      quota = r.applied ? `${h.cpus} CPU (${r.detail})` : `not applied: ${r.detail}`;
    }
    process.stdout.write(`cleave up: ${h.name} (${h.tier}) pid ${child.pid} on ${h.listen}: ORT threads ${threads}, CPU quota ${quota}\n`);
    child.once('exit', (code, signal) => {
      if (!stopping) {
        process.stderr.write(`cleave up: ${h.name} exited (${signal ?? code}); stopping the deployment\n`);
        stopAll(1);
      }
    });
  }

  const origin = config.hosts.find((h) => h.tier === (config.tiers ?? ['device'])[0]);
  if (!origin) throw new CleaveError('E_BAD_INPUT', 'the config has no origin host');
  const started = Date.now();
  for (;;) {
    if (stopping) return 1;
    try {
      const r = await fetch(`http://${origin.listen}/v2/health/ready`);
      if (r.status === 200) break;
    } catch {
      // Not listening yet.
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  const plan = (await (await fetch(`http://${origin.listen}/v1/plan`)).json()) as { route?: string; predicted?: { latencyMs: number } };
  const url = `http://${origin.listen}`;
  process.stdout.write(
    [
      '',
      `cleave up: serving '${config.model}' after ${((Date.now() - started) / 1000).toFixed(1)} s`,
      `  plan:     ${plan.route ?? '?'} (predicted ${plan.predicted?.latencyMs?.toFixed(2) ?? '?'} ms)`,
      `  infer:    POST ${url}/v2/models/${config.model}/infer`,
      `  model:    GET  ${url}/v2/models/${config.model}`,
      `  plan:     GET  ${url}/v1/plan     topology: GET ${url}/v1/topology     metrics: GET ${url}/metrics`,
      `  links:    cleave link set device edge --mbps 10 --delay 5 --url ${url}`,
      '  Ctrl-C stops every host.',
      '',
    ].join('\n'),
  );
  await new Promise(() => undefined);
  return 0;
}

/** Makes sure the repository holds the model, building a zoo model into DIR/NAME/1/model.onnx if needed. */
function ensureModel(dir: string, name: string): void {
  mkdirSync(dir, { recursive: true });
  if (listModels(dir).some((m) => m.name === name)) return;
  const z = parseZooName(name);
  if (!z) throw new CleaveError('E_UNKNOWN_MODEL', `model '${name}' is not in ${dir} and is not a zoo model`);
  const file = join(dir, name, '1', 'model.onnx');
  if (!existsSync(file)) {
    process.stdout.write(`cleave up: building zoo model ${name} into ${file}\n`);
    buildZooFile(z.name, z.small, file);
  }
}
