/**
 * process/: OS processes of a deployment: the launcher, CPU quotas through cgroups, the hosts' Node flags.
 *
 * Starts every host of a deployment as its own OS process (`cleave serve`), applies CPU quotas through
 * cgroups where asked and allowed, and waits for the origin to be ready. `cleave up` and the benchmarks use
 * it; tests that need no process isolation start hosts in-process instead.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { CleaveError } from '../../errors.js';
import { digestsFrom, hostToken } from '../../transport/identity.js';
import { applyCpuQuota, hostQuotaPeriodUs, removeCgroup, setCpuQuota } from './cgroup.js';
import { HOST_NODE_FLAGS } from './node-flags.js';
import { withTlsPathsFrom, type DeploymentConfig, type HostConfig } from '../config.js';
import { requestHost } from '../http-client.js';
import { httpScheme, loadTls } from '../tls.js';

const BIN = fileURLToPath(new URL('../../../bin/cleave.mjs', import.meta.url));

export interface LaunchOptions {
  readonly config: DeploymentConfig;
  readonly modelsDir: string;
  /** Folder for the generated config file. */
  readonly runDir: string;
  /** Apply `cpus` quotas (default true). */
  readonly quotas?: boolean;
  /** Each output line of each host, prefixed by nothing: the caller decides. */
  readonly onLine?: (host: string, line: string) => void;
  /** Called once per host after it is spawned, with what was applied. */
  readonly onStarted?: (h: HostConfig, pid: number | undefined, quota: string) => void;
  /**
   * Called when a host exits before `stop()`: with when it will be started again under `restart`, or null
   * when it will not (no restart policy, or its budget is spent: the deployment has failed).
   */
  readonly onExit?: (
    host: string,
    code: number | null,
    signal: string | null,
    restart: { delayMs: number; attempt: number; of: number } | null,
  ) => void;
  /**
   * Supervision: a host that exits is started again (same config, token and CPU quota) after a delay that
   * doubles from `initialDelayMs` up to `maxDelayMs`, at most `maxRestarts` times within `windowMs`. Absent:
   * a host that exits is not restarted.
   */
  readonly restart?: { maxRestarts: number; windowMs: number; initialDelayMs: number; maxDelayMs: number };
  readonly env?: NodeJS.ProcessEnv;
  /** Node flags for the host processes (default HOST_NODE_FLAGS). */
  readonly nodeFlags?: readonly string[];
}

/**
 * Where a deployment whose origin listens on `listen` keeps its control token in `runDir` (mode 0600): the
 * CLI reads it from there when no --token or CLEAVE_CONTROL_TOKEN is given.
 */
export function controlTokenFile(runDir: string, listen: string): string {
  return join(runDir, `control-${listen.replace(/[^\w.-]/g, '_')}.token`);
}

/** The restart policy `cleave up` runs hosts under: 1 s doubling to 30 s, at most 5 restarts a minute. */
export const DEFAULT_RESTART = { maxRestarts: 5, windowMs: 60_000, initialDelayMs: 1000, maxDelayMs: 30_000 } as const;

export interface Launched {
  readonly origin: HostConfig;
  readonly token: string;
  /** The operators' token for the control API's changes (given, or made for this deployment). */
  readonly controlToken: string;
  /** The file it was written to. */
  readonly controlTokenFile: string;
  /** `http://` or, with the config's `tls`, `https://` and the origin's address. */
  readonly url: string;
  /** The CA the deployment's hosts trust (the config's `tls.ca`), for clients of `url`. */
  readonly ca?: Buffer;
  /** Resolves once the origin answers /v2/health/ready with 200; rejects if a host exits first or on timeout. */
  ready(timeoutMs: number): Promise<void>;
  /**
   * Changes a running host's CPU quota (the cgroup the launcher made for it; a host started without a quota
   * gets one now). Returns what was applied, or throws E_BAD_INPUT naming the host.
   */
  setCpuQuota(host: string, cpus: number): string;
  /** Each host's current process id (a restarted host has a new one; undefined while it is down). */
  pid(host: string): number | undefined;
  stop(): Promise<void>;
}

export function launchDeployment(o: LaunchOptions): Launched {
  const config = o.config;
  const origin = config.hosts.find((h) => h.tier === (config.tiers ?? ['device'])[0]);
  if (!origin) throw new CleaveError('E_BAD_INPUT', 'the config has no origin host');
  const token = process.env.CLEAVE_TOKEN ?? config.token ?? randomBytes(16).toString('hex');
  const control = process.env.CLEAVE_CONTROL_TOKEN || config.controlToken || randomBytes(18).toString('base64url');
  mkdirSync(o.runDir, { recursive: true });
  const digests = JSON.stringify(
    Object.fromEntries(
      digestsFrom(
        token,
        config.hosts.map((h) => h.name),
      ),
    ),
  );
  const tokenFile = controlTokenFile(o.runDir, origin.listen);
  writeFileSync(tokenFile, `${control}\n`, { mode: 0o600 });
  chmodSync(tokenFile, 0o600);
  const configFile = join(o.runDir, `deployment-${process.pid}-${Date.now()}.json`);
  // The tokens travel in the environment, never in the config file. TLS paths are made absolute (against
  // the working folder when the config came without a file), since the hosts read the file from runDir.
  const written = { ...withTlsPathsFrom(config, process.cwd()), token: undefined, controlToken: undefined };
  writeFileSync(configFile, JSON.stringify(written, null, 2));
  // Read now, so that a certificate that cannot be read fails here, and the launcher trusts the CA.
  const tls = loadTls(written.tls, written.hosts.find((h) => h.name === origin.name)?.tls);

  interface Entry {
    readonly h: HostConfig;
    child: ChildProcess;
    cgroup?: string;
    /** The quota it runs under (setCpuQuota changes it; a restart keeps it). */
    cpus?: number;
    /** Exit times of its unexpected exits, for the restart budget. */
    readonly exits: number[];
    restartTimer?: NodeJS.Timeout;
  }
  const children: Entry[] = [];
  let stopping = false;
  let exited: string | null = null;
  const restart = o.restart ?? null;

  const spawnHost = (e: Entry): void => {
    const h = e.h;
    const child = spawn(
      process.execPath,
      [
        ...(o.nodeFlags ?? HOST_NODE_FLAGS),
        BIN,
        'serve',
        '--config',
        configFile,
        '--name',
        h.name,
        '--models',
        o.modelsDir,
      ],
      {
        // CLEAVE_PARENT_PID: a host whose launcher is gone (killed, crashed) stops instead of living on.
        // Each host gets its own peer token and the others' digests, not the master (transport/identity.ts):
        // a host's secrets speak for that host only.
        env: {
          ...withoutMaster({ ...process.env, ...o.env }),
          CLEAVE_HOST_TOKEN: hostToken(token, h.name),
          CLEAVE_PEER_DIGESTS: digests,
          CLEAVE_CONTROL_TOKEN: control,
          CLEAVE_PARENT_PID: String(process.pid),
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    e.child = child;
    // The quota holds from the start, profiling included: a host is as slow as it is for all it does.
    let quota = 'none requested';
    e.cgroup = undefined;
    if (e.cpus !== undefined && o.quotas !== false && child.pid !== undefined) {
      const r = applyCpuQuota(child.pid, `${h.name}-${process.pid}`, e.cpus, undefined, hostQuotaPeriodUs(e.cpus));
      e.cgroup = r.dir;
      quota = r.applied ? `${e.cpus} CPU (${r.detail})` : `not applied: ${r.detail}`;
    } else if (e.cpus !== undefined) quota = 'not applied (quotas off)';
    for (const stream of [child.stdout, child.stderr])
      if (stream) createInterface({ input: stream }).on('line', (l) => o.onLine?.(h.name, l));
    o.onStarted?.(h, child.pid, quota);
    child.once('exit', (code, signal) => {
      removeCgroup(e.cgroup);
      if (stopping) return;
      const why = `${h.name} exited (${signal ?? code})`;
      const now = Date.now();
      e.exits.push(now);
      while (restart && e.exits.length > 0 && e.exits[0] < now - restart.windowMs) e.exits.shift();
      if (!restart || e.exits.length > restart.maxRestarts) {
        exited = restart ? `${why}, ${e.exits.length} times in ${restart.windowMs / 1000} s` : why;
        o.onExit?.(h.name, code, signal, null);
        return;
      }
      // Backoff doubles with each exit inside the window: a host that dies at once is not respawned in a loop.
      const delay = Math.min(restart.maxDelayMs, restart.initialDelayMs * 2 ** (e.exits.length - 1));
      o.onExit?.(h.name, code, signal, { delayMs: delay, attempt: e.exits.length, of: restart.maxRestarts });
      e.restartTimer = setTimeout(() => {
        e.restartTimer = undefined;
        if (!stopping) spawnHost(e);
      }, delay);
    });
  };
  for (const h of config.hosts) {
    const e = { h, cpus: h.cpus, exits: [] } as unknown as Entry;
    children.push(e);
    spawnHost(e);
  }
  const url = `${httpScheme(tls)}://${origin.listen}`;
  return {
    origin,
    token,
    ca: tls?.ca,
    controlToken: control,
    controlTokenFile: tokenFile,
    url,
    async ready(timeoutMs: number): Promise<void> {
      const until = Date.now() + timeoutMs;
      for (;;) {
        if (exited) throw new CleaveError('E_NOT_READY', `deployment failed to start: ${exited}`);
        if (Date.now() > until) throw new CleaveError('E_NOT_READY', `deployment not ready after ${timeoutMs} ms`);
        try {
          const r = await requestHost(`${url}/v2/health/ready`, { ca: tls?.ca, timeoutMs: 2000 });
          if (r.status === 200) return;
        } catch {
          // Not listening yet.
        }
        await new Promise((r) => setTimeout(r, 200));
      }
    },
    pid(host: string): number | undefined {
      const c = children.find((x) => x.h.name === host);
      if (!c) throw new CleaveError('E_BAD_INPUT', `pid: '${host}' is not a host of this deployment`);
      return c.child.exitCode === null && c.child.signalCode === null ? c.child.pid : undefined;
    },
    setCpuQuota(host: string, cpus: number): string {
      const c = children.find((x) => x.h.name === host);
      if (!c) throw new CleaveError('E_BAD_INPUT', `setCpuQuota: '${host}' is not a host of this deployment`);
      const r = c.cgroup
        ? setCpuQuota(c.cgroup, cpus)
        : c.child.pid !== undefined
          ? applyCpuQuota(c.child.pid, `${host}-${process.pid}`, cpus, undefined, hostQuotaPeriodUs(cpus))
          : null;
      if (!r?.applied)
        throw new CleaveError('E_BAD_INPUT', `setCpuQuota ${host} ${cpus}: ${r?.detail ?? 'the host has exited'}`);
      c.cgroup = r.dir ?? c.cgroup;
      c.cpus = cpus;
      return r.detail;
    },
    async stop(): Promise<void> {
      stopping = true;
      for (const c of children) if (c.restartTimer) clearTimeout(c.restartTimer);
      const gone = children.map((c) =>
        c.child.exitCode !== null || c.child.signalCode !== null
          ? Promise.resolve()
          : new Promise<void>((r) => c.child.once('exit', () => r())),
      );
      for (const c of children) c.child.kill('SIGTERM');
      const timer = setTimeout(() => {
        for (const c of children) c.child.kill('SIGKILL');
      }, 3000);
      await Promise.all(gone);
      clearTimeout(timer);
      for (const c of children) removeCgroup(c.cgroup);
      rmSync(tokenFile, { force: true });
    },
  };
}

/** The environment without the master peer token, so that a host cannot derive the others' credentials. */
function withoutMaster(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out = { ...env };
  delete out.CLEAVE_TOKEN;
  return out;
}
