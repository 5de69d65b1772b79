/**
 * The deployment config: which model, which hosts (tier, address, ORT threads, CPU quota), the shared
 * peer token, emulated links and limits. `cleave up` and `cleave serve --config` read it; `defaultConfig()`
 * is what `npm start` runs. Validation names the field at fault.
 */
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { CleaveError, errorMessage } from '../errors.js';
import type { Granularity } from '../graph/cuts.js';
import { resolveTransportOptions, type TransportOptionsInput } from '../transport/options.js';
import { checkControllerSettings, type ControllerSettings } from '../planner/controller-settings.js';
import { codecListProblem } from '../transport/codec.js';
import { DEFAULT_TIERS } from '../planner/criteria.js';
import { resolveLimits, type RuntimeLimits } from './defaults.js';
import { checkTlsConfig, resolveTlsPaths, type TlsConfig } from './tls.js';

export interface HostConfig {
  readonly name: string;
  readonly tier: string;
  /** `HOST:PORT` the host serves HTTP and peer WebSockets on. */
  readonly listen: string;
  /** ORT intra-op threads for this host's sessions. Default 1. */
  readonly threads?: number;
  /** CPU quota in CPUs (0.5 = half a core), applied through cgroups by `cleave up` where possible. */
  readonly cpus?: number;
  /** `HOST:PORT` of the Open Inference Protocol over gRPC, beside HTTP (the origin only). */
  readonly grpc?: string;
  /** This host's own certificate and key, over the deployment's `tls` (which must then be set, for its CA). */
  readonly tls?: Pick<TlsConfig, 'cert' | 'key'>;
}

export interface LinkConfig {
  readonly from: string;
  readonly to: string;
  /** Emulated bandwidth in Mbit/s (10^6 bits); absent = unlimited. */
  readonly mbps?: number;
  /** Emulated one-way delay in ms. Default 0. */
  readonly delayMs?: number;
}

export type ReadAccess = 'loopback' | 'token' | 'open';

/** One more model the deployment serves beside `model`, with its own input shapes, values and granularity. */
export interface ModelConfig {
  readonly name: string;
  readonly shapes?: Readonly<Record<string, number[]>>;
  readonly values?: Readonly<Record<string, number>>;
  readonly granularity?: Granularity;
}

export interface DeploymentConfig {
  /**
   * Model name in the repository; for `cleave up`, a zoo name is built into the repository if missing. With
   * `models`, the default model (what control calls without `?model=` mean); absent there: the first of them.
   */
  readonly model: string;
  /**
   * Every model the deployment serves, when it serves several: names, or `{name, shapes?, values?,
   * granularity?}` for a model with its own (the top-level `shapes`, `values` and `granularity` are
   * `model`'s). Each has its own plan and controller; their segments share each host's session cache.
   */
  readonly models?: readonly (string | ModelConfig)[];
  /** Shared peer token; the CLEAVE_TOKEN environment variable overrides it. */
  readonly token?: string;
  /**
   * The operators' bearer token for the control API's changes (`PUT`/`DELETE /v1/plan`, `PUT /v1/links`,
   * `PUT /v1/controller`); the CLEAVE_CONTROL_TOKEN environment variable overrides it. Absent: `cleave up`
   * makes one per deployment (written to its run directory); a host with none refuses every change.
   */
  readonly controlToken?: string;
  /**
   * Who may read the control API (`GET /v1/...`, the events stream): 'loopback' (default: callers on this
   * machine without a token, others with the control or peer token), 'token' (always a token) or 'open'.
   */
  readonly readAccess?: ReadAccess;
  /** Tier chain, origin first. Default device, edge, cloud. */
  readonly tiers?: readonly string[];
  readonly hosts: readonly HostConfig[];
  readonly links?: readonly LinkConfig[];
  /** Concrete input shapes for models with symbolic dimensions: `{ "x": [1, 3, 640, 640] }`. */
  readonly shapes?: Readonly<Record<string, number[]>>;
  /**
   * Input values for the runs that measure and profile the model, for inputs that steer it (`--value`):
   * `{ "sr": 16000 }` fills every element of `sr` with 16000. Others: floats random, the rest zeros.
   */
  readonly values?: Readonly<Record<string, number>>;
  readonly granularity?: Granularity;
  readonly profile?: { readonly repeats?: number; readonly warmup?: number };
  readonly limits?: Partial<RuntimeLimits>;
  readonly transport?: TransportOptionsInput;
  /** The adaptive controller's settings (objective, interval, hysteresis, confirm rounds, dwell, paused, constraints). */
  readonly controller?: Partial<ControllerSettings>;
  /**
   * HTTPS and `wss://` for every host: certificate, key and the CA peers trust (PEM paths; relative ones are
   * against the config file's folder). Absent: plain HTTP, for loopback and trusted networks.
   */
  readonly tls?: TlsConfig;
}

/**
 * The built-in deployment (`npm start`): ResNet50 on three loopback hosts whose differences are real —
 * ORT threads and, where cgroups allow, CPU quotas (the device gets a quarter of a core) — with emulated
 * links that get slower and longer towards the cloud.
 */
export function defaultConfig(): DeploymentConfig {
  return {
    model: 'resnet50',
    tiers: [...DEFAULT_TIERS],
    hosts: [
      { name: 'device', tier: 'device', listen: '127.0.0.1:8000', grpc: '127.0.0.1:8003', threads: 1, cpus: 0.25 },
      { name: 'edge', tier: 'edge', listen: '127.0.0.1:8001', threads: 1, cpus: 1 },
      { name: 'cloud', tier: 'cloud', listen: '127.0.0.1:8002', threads: 2 },
    ],
    links: [
      { from: 'device', to: 'edge', mbps: 200, delayMs: 1 },
      { from: 'edge', to: 'device', mbps: 200, delayMs: 1 },
      { from: 'edge', to: 'cloud', mbps: 100, delayMs: 10 },
      { from: 'cloud', to: 'edge', mbps: 100, delayMs: 10 },
      { from: 'device', to: 'cloud', mbps: 50, delayMs: 15 },
      { from: 'cloud', to: 'device', mbps: 50, delayMs: 15 },
    ],
  };
}

export function readConfig(file: string): DeploymentConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new CleaveError('E_BAD_INPUT', `config ${file}: ${errorMessage(e)}`);
  }
  return withTlsPathsFrom(checkConfig(raw, `config ${file}`), dirname(file));
}

/** `cfg` with the relative paths of its `tls` and its hosts' `tls` made absolute against `dir`. */
export function withTlsPathsFrom(cfg: DeploymentConfig, dir: string): DeploymentConfig {
  if (!cfg.tls && !cfg.hosts.some((h) => h.tls)) return cfg;
  return {
    ...cfg,
    ...(cfg.tls ? { tls: resolveTlsPaths(cfg.tls, dir) } : {}),
    hosts: cfg.hosts.map((h) => (h.tls ? { ...h, tls: resolveTlsPaths(h.tls, dir) } : h)),
  };
}

export function checkConfig(input: unknown, where = 'config'): DeploymentConfig {
  const bad = (field: string, what: string): never => {
    throw new CleaveError('E_BAD_INPUT', `${where}: ${field} ${what}`);
  };
  if (!isObject(input)) return bad('(top level)', 'must be a JSON object');
  const served = checkModels(input.models, bad);
  // With `models` and no `model`, the first of them is the default.
  const raw: Record<string, unknown> =
    input.model === undefined && served.length > 0 ? { ...input, model: served[0].name } : input;
  if (typeof raw.model !== 'string' || raw.model === '') bad('model', 'must be a model name');
  if (raw.token !== undefined && typeof raw.token !== 'string') bad('token', 'must be a string');
  if (raw.controlToken !== undefined && (typeof raw.controlToken !== 'string' || raw.controlToken.length < 8))
    bad('controlToken', 'must be a string of at least 8 characters');
  if (raw.readAccess !== undefined && !['loopback', 'token', 'open'].includes(raw.readAccess as string))
    bad('readAccess', "must be 'loopback', 'token' or 'open'");
  const tiers = raw.tiers ?? [...DEFAULT_TIERS];
  if (!Array.isArray(tiers) || tiers.length === 0 || !tiers.every((t) => typeof t === 'string' && t !== ''))
    bad('tiers', 'must be a list of tier names');
  if (new Set(tiers as string[]).size !== (tiers as string[]).length) bad('tiers', 'names a tier twice');
  if (!Array.isArray(raw.hosts) || raw.hosts.length === 0) bad('hosts', 'must be a non-empty list');
  const names = new Set<string>();
  (raw.hosts as unknown[]).forEach((h, i) => {
    const f = `hosts[${i}]`;
    if (!isObject(h)) return bad(f, 'must be an object');
    if (typeof h.name !== 'string' || !/^[\w.-]+$/.test(h.name)) bad(`${f}.name`, 'must be letters, digits, . _ -');
    if (names.has(h.name as string)) bad(`${f}.name`, `'${h.name}' is used twice`);
    names.add(h.name as string);
    if (typeof h.tier !== 'string' || !(tiers as string[]).includes(h.tier))
      bad(`${f}.tier`, `must be one of ${(tiers as string[]).join(', ')}`);
    if (typeof h.listen !== 'string') bad(`${f}.listen`, 'must be HOST:PORT');
    parseListen(h.listen as string, `${where}: ${f}.listen`);
    if (h.threads !== undefined && !(Number.isInteger(h.threads) && (h.threads as number) >= 0))
      bad(`${f}.threads`, 'must be an integer >= 0');
    if (h.cpus !== undefined && !(typeof h.cpus === 'number' && h.cpus > 0))
      bad(`${f}.cpus`, 'must be a positive number');
    if (h.grpc !== undefined) {
      if (typeof h.grpc !== 'string') bad(`${f}.grpc`, 'must be HOST:PORT');
      parseListen(h.grpc as string, `${where}: ${f}.grpc`);
      if (h.tier !== (tiers as string[])[0])
        bad(`${f}.grpc`, `only the origin tier's host (${(tiers as string[])[0]}) serves inference`);
      if (h.grpc === h.listen) bad(`${f}.grpc`, `is the host's listen address too; gRPC needs its own port`);
    }
    if (h.tls !== undefined) {
      if (raw.tls === undefined) bad(`${f}.tls`, "needs the deployment's tls too (its ca is what peers trust)");
      checkTlsConfig(h.tls, `${f}.tls`, bad);
      if ((h.tls as Record<string, unknown>).ca !== undefined) bad(`${f}.tls.ca`, "belongs in the deployment's tls");
    }
  });
  if (raw.tls !== undefined) checkTlsConfig(raw.tls, 'tls', bad);
  const origins = (raw.hosts as { tier: string }[]).filter((h) => h.tier === (tiers as string[])[0]);
  if (origins.length !== 1) bad('hosts', `must hold exactly one host of the origin tier '${(tiers as string[])[0]}'`);
  ((raw.links ?? []) as unknown[]).forEach((l, i) => {
    const f = `links[${i}]`;
    if (!isObject(l)) return bad(f, 'must be an object');
    if (!names.has(l.from as string)) bad(`${f}.from`, `'${String(l.from)}' is not a host`);
    if (!names.has(l.to as string)) bad(`${f}.to`, `'${String(l.to)}' is not a host`);
    if (l.mbps !== undefined && !(typeof l.mbps === 'number' && l.mbps > 0))
      bad(`${f}.mbps`, 'must be a positive number');
    if (l.delayMs !== undefined && !(typeof l.delayMs === 'number' && l.delayMs >= 0))
      bad(`${f}.delayMs`, 'must be a number >= 0');
  });
  checkInputSettings(raw, '', bad);
  if (raw.limits !== undefined) {
    if (!isObject(raw.limits)) bad('limits', 'must be an object of named limits');
    try {
      resolveLimits(raw.limits as Partial<RuntimeLimits>);
    } catch (e) {
      throw new CleaveError('E_BAD_INPUT', `${where}: ${errorMessage(e)}`);
    }
  }
  if (raw.controller !== undefined) {
    try {
      checkControllerSettings(raw.controller);
      const problem = codecListProblem((raw.controller as { codecs?: unknown }).codecs);
      if (problem) throw new CleaveError('E_BAD_INPUT', problem);
    } catch (e) {
      throw new CleaveError('E_BAD_INPUT', `${where}: controller.${errorMessage(e)}`);
    }
  }
  if (raw.transport !== undefined) {
    try {
      resolveTransportOptions(raw.transport as TransportOptionsInput);
    } catch (e) {
      throw new CleaveError('E_BAD_INPUT', `${where}: ${errorMessage(e)}`);
    }
  }
  return { ...(raw as unknown as DeploymentConfig), tiers: tiers as string[] };
}

/** `shapes` and `values` of the config or of one `models` entry (`at` prefixes the field names). */
function checkInputSettings(o: Record<string, unknown>, at: string, bad: (field: string, what: string) => never): void {
  if (o.shapes !== undefined) {
    if (!isObject(o.shapes)) bad(`${at}shapes`, 'must map input names to dimension lists');
    for (const [k, v] of Object.entries(o.shapes as object))
      if (!Array.isArray(v) || !v.every((d) => Number.isInteger(d) && d > 0))
        bad(`${at}shapes.${k}`, 'must be a list of positive integers');
  }
  if (o.values !== undefined) {
    if (!isObject(o.values)) bad(`${at}values`, 'must map input names to numbers');
    for (const [k, v] of Object.entries(o.values as object))
      if (typeof v !== 'number' || !Number.isFinite(v)) bad(`${at}values.${k}`, 'must be a finite number');
  }
  if (o.granularity !== undefined && !isObject(o.granularity)) bad(`${at}granularity`, 'must be an object');
}

/** The `models` list, each entry checked (names unique); [] without it. */
function checkModels(raw: unknown, bad: (field: string, what: string) => never): ModelConfig[] {
  if (raw === undefined) return [];
  if (!Array.isArray(raw) || raw.length === 0) return bad('models', 'must be a non-empty list of model names');
  const seen = new Set<string>();
  return raw.map((m: unknown, i) => {
    const f = `models[${i}]`;
    const entry = typeof m === 'string' ? { name: m } : m;
    if (!isObject(entry)) return bad(f, 'must be a model name or {"name", "shapes"?, "values"?, "granularity"?}');
    const extra = Object.keys(entry).find((k) => !['name', 'shapes', 'values', 'granularity'].includes(k));
    if (extra !== undefined) bad(`${f}.${extra}`, 'is not a field of a model (name, shapes, values, granularity)');
    if (typeof entry.name !== 'string' || !/^[\w.-]+$/.test(entry.name))
      bad(`${f}.name`, 'must be a model name (letters, digits, . _ -)');
    if (seen.has(entry.name as string)) bad(`${f}.name`, `'${String(entry.name)}' is listed twice`);
    seen.add(entry.name as string);
    checkInputSettings(entry, `${f}.`, bad);
    return entry as unknown as ModelConfig;
  });
}

/**
 * The models a deployment serves, the default (`model`, with the top-level shapes, values and granularity)
 * first, then the rest of `models` in their order.
 */
export function servedModels(cfg: DeploymentConfig): ModelConfig[] {
  const listed = (cfg.models ?? []).map((m) => (typeof m === 'string' ? { name: m } : m));
  const own = listed.find((m) => m.name === cfg.model);
  const first: ModelConfig = {
    name: cfg.model,
    shapes: own?.shapes ?? cfg.shapes,
    values: own?.values ?? cfg.values,
    granularity: own?.granularity ?? cfg.granularity,
  };
  return [first, ...listed.filter((m) => m.name !== cfg.model)];
}

export function parseListen(s: string, where: string): { host: string; port: number } {
  const m = /^(.*):(\d+)$/.exec(s);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !m[1] || port > 65535)
    throw new CleaveError('E_BAD_INPUT', `${where} '${s}': expected HOST:PORT (e.g. 127.0.0.1:8000)`);
  return { host: m[1].replace(/^\[|\]$/g, ''), port };
}

/** The operators' control token: CLEAVE_CONTROL_TOKEN, else the config's, else null (changes refused). */
export function controlToken(cfg: DeploymentConfig): string | null {
  return process.env.CLEAVE_CONTROL_TOKEN || cfg.controlToken || null;
}

/** The peer token: CLEAVE_TOKEN, else the config's, else a fixed development token (logged as such). */
export function peerToken(cfg: DeploymentConfig): { token: string; fromDefault: boolean } {
  const t = process.env.CLEAVE_TOKEN ?? cfg.token;
  return t ? { token: t, fromDefault: false } : { token: 'cleave-dev-token', fromDefault: true };
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}
