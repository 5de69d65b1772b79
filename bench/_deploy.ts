/**
 * The deployment the end-to-end benchmarks run: `npm start`'s three hosts (real processes, CPU quotas) on
 * free loopback ports, serving a zoo model built into a temporary repository, and a control call that sends
 * the deployment's token.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureModel } from '../src/cli/commands/up.js';
import { OnnxModel } from '../src/graph/model.js';
import { resolveInputs, type InputSpec } from '../src/graph/shapes.js';
import { defaultConfig, type DeploymentConfig } from '../src/runtime/config.js';
import { launchDeployment, type LaunchOptions, type Launched } from '../src/runtime/process/launcher.js';
import { freePort } from '../test/helpers/deployment.js';

export interface BenchDeployment {
  readonly d: Launched;
  /** Its temporary folder (model repository, run folder, cache): remove it after `d.stop()`. */
  readonly dir: string;
  readonly config: DeploymentConfig;
  /** The model's inputs as served. */
  readonly specs: InputSpec[];
  /** A control call with the deployment's token; the parsed answer, or an error naming the status. */
  api(method: string, path: string, body?: unknown): Promise<any>;
}

export async function launchDefault(
  model: string,
  prefix: string,
  more: Pick<LaunchOptions, 'onLine' | 'onExit' | 'restart' | 'nodeFlags'> = {},
): Promise<BenchDeployment> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const repo = join(dir, 'models');
  ensureModel(repo, model);
  const file = join(repo, model, '1', 'model.onnx');
  const specs = resolveInputs(OnnxModel.fromBytes(readFileSync(file), file));
  const base = defaultConfig();
  const hosts = [];
  for (const h of base.hosts)
    hosts.push({
      ...h,
      listen: `127.0.0.1:${await freePort()}`,
      ...(h.grpc ? { grpc: `127.0.0.1:${await freePort()}` } : {}),
    });
  const config: DeploymentConfig = { ...base, model, hosts };
  const d = launchDeployment({
    config,
    modelsDir: repo,
    runDir: dir,
    env: { CLEAVE_CACHE: join(dir, 'cache'), LOG_LEVEL: 'warn' },
    onLine: (h, l) => process.stdout.write(`[${h}] ${l}\n`),
    ...more,
  });
  const api = async (method: string, path: string, body?: unknown): Promise<any> => {
    const r = await fetch(`${d.url}${path}`, {
      method,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${d.controlToken}` },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const j = await r.json();
    if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(j)}`);
    return j;
  };
  return { d, dir, config, specs, api };
}
