import { parseArgs } from 'node:util';
import pino from 'pino';
import { CleaveError, errorMessage } from '../../errors.js';
import { checkConfig, readConfig, type DeploymentConfig, type HostConfig } from '../../runtime/config.js';
import { Host } from '../../runtime/host/host.js';
import { listModels } from '../../runtime/model-repo.js';
import { cacheDir } from '../model-ref.js';
import { describeRoute } from '../../runtime/plan/route.js';
import { hasHostNodeFlags, reexecWithHostFlags } from '../../runtime/process/node-flags.js';

const serveHelp = `cleave serve --name NAME --models DIR [--config FILE] [--tier TIER --listen HOST:PORT]
             [--model NAME] [--peers NAME=TIER@HOST:PORT,...] [--threads N]

Runs one host: loads the model from the repository DIR (DIR/NAME/1/model.onnx or DIR/NAME.onnx),
profiles its blocks (cached by model hash, host and threads), serves HTTP and peer WebSockets on
--listen, and dials its peers. The host of the first tier (device) is the origin: it serves the
Open Inference Protocol gateway and picks the plan. With --config, hosts, links and limits come from
the deployment file (see README); flags override this host's entry. Its peer credential is
CLEAVE_HOST_TOKEN, checked with the others' digests in CLEAVE_PEER_DIGESTS (what cleave up gives
each host), else derived from the master peer token in CLEAVE_TOKEN or the config. The host runs in a Node process started with a larger initial V8 old
space (--initial-old-space-size=64), which keeps major GCs off the request path; started without it,
serve runs itself again with it (CLEAVE_NODE_FLAGS=0 turns this off). A host started by a launcher
(cleave up, the benchmarks) is given CLEAVE_PARENT_PID and stops when that process is gone.`;

export async function serveCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      name: { type: 'string' },
      tier: { type: 'string' },
      listen: { type: 'string' },
      models: { type: 'string' },
      model: { type: 'string' },
      peers: { type: 'string' },
      config: { type: 'string' },
      threads: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(`${serveHelp}\n`);
    return 0;
  }
  if (!values.name) throw new CleaveError('E_BAD_INPUT', '--name is required');
  if (!values.models) throw new CleaveError('E_BAD_INPUT', '--models DIR is required');
  const config = values.config ? readConfig(values.config) : configFromFlags(values, values.models);
  const merged = overrideSelf(config, values);
  // A host needs V8 heap flags that only a new process can take (see runtime/node-flags.ts).
  if (!hasHostNodeFlags() && process.env.CLEAVE_NODE_FLAGS !== '0') return reexecWithHostFlags();
  const logger = pino({ level: process.env.LOG_LEVEL ?? 'info' });
  const host = await Host.start({
    config: merged,
    name: values.name,
    modelsDir: values.models,
    cacheDir: cacheDir(),
    logger,
  });
  const stop = (): void => {
    host.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  watchParent(process.env.CLEAVE_PARENT_PID, () => {
    logger.warn({ parent: process.env.CLEAVE_PARENT_PID }, 'launcher gone; stopping');
    stop();
  });
  if (host.coordinator) {
    host.planAtStartup().then(
      () =>
        logger.info({ host: host.self.name, route: describeRoute(host.coordinator?.current?.route ?? []) }, 'ready'),
      (e) =>
        logger.error(
          { host: host.self.name, err: errorMessage(e) },
          'start-up planning failed; PUT /v1/plan to set one',
        ),
    );
  }
  await new Promise(() => undefined);
  return 0;
}

function configFromFlags(
  v: { name?: string; tier?: string; listen?: string; model?: string; peers?: string },
  modelsDir: string,
): DeploymentConfig {
  if (!v.tier || !v.listen) throw new CleaveError('E_BAD_INPUT', 'without --config, --tier and --listen are required');
  const models = listModels(modelsDir);
  const model = v.model ?? (models.length === 1 ? models[0].name : undefined);
  if (!model)
    throw new CleaveError(
      'E_BAD_INPUT',
      `--model is required: the repository holds ${models.map((m) => m.name).join(', ') || 'no model'}`,
    );
  const peers: HostConfig[] = (v.peers ?? '')
    .split(',')
    .filter((s) => s.trim() !== '')
    .map((s) => {
      const m = /^([\w.-]+)=([\w-]+)@(.+:\d+)$/.exec(s.trim());
      if (!m) throw new CleaveError('E_BAD_INPUT', `--peers '${s}': expected NAME=TIER@HOST:PORT`);
      return { name: m[1], tier: m[2], listen: m[3] };
    });
  return checkConfig({ model, hosts: [{ name: v.name, tier: v.tier, listen: v.listen }, ...peers] }, 'flags');
}

function overrideSelf(
  c: DeploymentConfig,
  v: { name?: string; tier?: string; listen?: string; threads?: string; model?: string },
): DeploymentConfig {
  const hosts = c.hosts.map((h) =>
    h.name === v.name
      ? {
          ...h,
          tier: v.tier ?? h.tier,
          listen: v.listen ?? h.listen,
          threads: v.threads !== undefined ? Number(v.threads) : h.threads,
        }
      : h,
  );
  return checkConfig({ ...c, model: v.model ?? c.model, hosts }, 'config');
}

/** How often a launched host checks that its launcher still runs. */
const PARENT_CHECK_MS = 1000;

/** A host started by a launcher (CLEAVE_PARENT_PID) calls `gone` once that process is no more. */
function watchParent(pid: string | undefined, gone: () => void): void {
  const n = Number(pid);
  if (!pid || !Number.isInteger(n) || n <= 1) return;
  const timer = setInterval(() => {
    try {
      process.kill(n, 0);
    } catch {
      clearInterval(timer);
      gone();
    }
  }, PARENT_CHECK_MS);
  timer.unref();
}
