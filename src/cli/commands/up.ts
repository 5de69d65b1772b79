import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CleaveError, errorMessage } from '../../errors.js';
import { checkConfig, defaultConfig, readConfig, servedModels, type DeploymentConfig } from '../../runtime/config.js';
import { DEFAULT_RESTART, launchDeployment } from '../../runtime/process/launcher.js';
import { requestHost } from '../../runtime/http-client.js';
import { listModels } from '../../runtime/model-repo.js';
import { buildZooFile, cacheDir, parseZooName } from '../model-ref.js';

const upHelp = `cleave up [--model NAME] [--config FILE] [--models DIR] [--no-quota] [--no-restart] [--verbose]

Starts every host of a deployment (by default: device, edge and cloud on 127.0.0.1:8000-8002 serving
ResNet50) as separate OS processes, applies each host's CPU quota through cgroups where Linux and root
allow, waits until the device host has planned and warmed its route, and prints where to send requests.
A zoo model name is built into the model repository on first use. A host that exits is started again with
the same settings and CPU quota (after 1 s, doubling to 30 s; more than 5 exits of one host within 60 s
stop the deployment, exit code 1). Ctrl-C stops them all.

  --model NAME   the model to serve (a repository model, or a zoo name such as mobilenetv2)
  --config FILE  a deployment file (see README); default: the built-in three-host deployment
  --models DIR   the model repository (default: ~/.cache/cleave/models)
  --no-quota     do not apply CPU quotas
  --no-restart   a host that exits stops the whole deployment (exit code 1) instead of being restarted
  --verbose      print every host's log lines (default: warnings and errors only)`;

/** `cleave up`'s supervision: see the help. */
const UP_RESTART = DEFAULT_RESTART;

export async function upCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string' },
      config: { type: 'string' },
      models: { type: 'string' },
      'no-quota': { type: 'boolean' },
      'no-restart': { type: 'boolean' },
      verbose: { type: 'boolean' },
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
  const served = servedModels(config).map((m) => m.name);
  for (const m of served) ensureModel(modelsDir, m);

  const started = Date.now();
  const d = launchDeployment({
    config,
    modelsDir,
    runDir: join(cacheDir(), 'run'),
    quotas: !values['no-quota'],
    onLine: (host, line) => {
      // Hosts log pino JSON; show warnings and errors (level >= 40) unless --verbose.
      const level = /"level":(\d+)/.exec(line)?.[1];
      if (values.verbose || !level || Number(level) >= 40) process.stdout.write(`[${host}] ${line}\n`);
    },
    onStarted: (h, pid, quota) =>
      process.stdout.write(
        `cleave up: ${h.name} (${h.tier}) pid ${pid} on ${h.listen}: ORT threads ${h.threads ?? 1}, CPU quota ${quota}\n`,
      ),
    restart: values['no-restart'] ? undefined : UP_RESTART,
    onExit: (host, code, signal, again) => {
      if (again) {
        process.stderr.write(
          `cleave up: ${host} exited (${signal ?? code}); restarting it in ${(again.delayMs / 1000).toFixed(1)} s (restart ${again.attempt} of ${again.of} within ${UP_RESTART.windowMs / 1000} s)\n`,
        );
        return;
      }
      process.stderr.write(`cleave up: ${host} exited (${signal ?? code}); stopping the deployment\n`);
      // Said and done: the other hosts stop and so does this command.
      stop(1);
    },
  });
  let stopping = false;
  const stop = (code: number): void => {
    if (stopping) return;
    stopping = true;
    d.stop().then(
      () => process.exit(code),
      () => process.exit(code),
    );
  };
  process.once('SIGINT', () => stop(0));
  process.once('SIGTERM', () => stop(0));
  try {
    await d.ready(180_000);
  } catch (e) {
    process.stderr.write(`cleave up: ${errorMessage(e)}\n`);
    stop(1);
    return 1;
  }
  const plan = JSON.parse((await requestHost(`${d.url}/v1/plan`, { ca: d.ca, timeoutMs: 10_000 })).text) as {
    route?: string;
    predicted?: { latencyMs: number };
  };
  const url = d.url;
  const origin = config.hosts.find((h) => h.name === d.origin.name);
  process.stdout.write(
    [
      '',
      `cleave up: serving ${served.map((m) => `'${m}'`).join(', ')} after ${((Date.now() - started) / 1000).toFixed(1)} s`,
      `  plan:     ${plan.route ?? '?'} (predicted ${plan.predicted?.latencyMs?.toFixed(2) ?? '?'} ms)`,
      `  dashboard: ${url}/   (open it in a browser: the split, links, hosts and plan changes, live)`,
      ...served.map((m) => `  infer:    POST ${url}/v2/models/${m}/infer`),
      ...(origin?.grpc
        ? [`  gRPC:     ${origin.grpc} (inference.GRPCInferenceService, src/runtime/grpc/grpc_predict_v2.proto)`]
        : []),
      `  model:    GET  ${url}/v2/models/${config.model}`,
      `  plan:     GET  ${url}/v1/plan${served.length > 1 ? '[?model=NAME]' : ''}     topology: GET ${url}/v1/topology     metrics: GET ${url}/metrics`,
      `  links:    cleave link set device edge --mbps 10 --delay 5 --url ${url}`,
      `  control:  changes (PUT/DELETE /v1/plan, PUT /v1/links, PUT /v1/controller) need the control token in`,
      `            ${d.controlTokenFile} (the CLI reads it from there)`,
      '  Ctrl-C stops every host.',
      '',
    ].join('\n'),
  );
  await new Promise(() => undefined);
  return 0;
}

/** Makes sure the repository holds the model, building a zoo model into DIR/NAME/1/model.onnx if needed. */
export function ensureModel(dir: string, name: string): void {
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
