/**
 * One run of a scenario against a deployment: autocannon sends binary OIP requests for the scenario's
 * duration (every response's latency is kept with its completion time, from autocannon's per-response
 * events), the events stream is recorded alongside, and the scenario's actions fire at their seconds.
 */
import autocannon from 'autocannon';
import WebSocket from 'ws';
import type { Launched } from '../src/runtime/process/launcher.js';
import { inferBody } from './body.js';
import { describeAction, type Action, type Scenario } from './scenario.js';

/** One answered (or failed) request: completion time (ms since the run started), latency, HTTP status (0: no answer). */
export interface Sample {
  readonly t: number;
  readonly ms: number;
  readonly status: number;
}

export interface RecordedEvent {
  readonly t: number;
  readonly type: string;
  readonly [k: string]: unknown;
}

export interface ActionRecord {
  readonly t: number;
  readonly what: string;
  readonly ok: boolean;
  readonly error?: string;
}

export interface RunResult {
  readonly label: string;
  readonly startedAt: string;
  readonly durationMs: number;
  readonly connections: number;
  readonly samples: Sample[];
  readonly events: RecordedEvent[];
  readonly actions: ActionRecord[];
  /** The route in force when the run started, and its stages (what `--compare static` pins). */
  readonly startRoute: string | null;
  readonly startStages: { host: string; blocks: [number, number] }[] | null;
}

export interface DriveOptions {
  readonly url: string;
  readonly model: string;
  readonly scenario: Scenario;
  readonly connections: number;
  readonly label: string;
  readonly controlToken?: string;
  /** The deployment this load test started (`--start`): needed by cpu and kill actions. */
  readonly deployment?: Launched;
  onProgress?(elapsedMs: number, samples: number): void;
}

/** A control call with the token; throws naming the status and the error. */
export async function control(url: string, token: string | undefined, method: string, path: string, body?: unknown) {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (token) headers.authorization = `Bearer ${token}`;
  const r = await fetch(`${url}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  if (!r.ok) {
    let msg = text;
    try {
      msg = (JSON.parse(text) as { error?: string }).error ?? text;
    } catch {
      // not JSON: the text as it is
    }
    throw new Error(`${method} ${path}: ${r.status} ${msg}`);
  }
  return text ? (JSON.parse(text) as unknown) : null;
}

async function act(o: DriveOptions, a: Action): Promise<void> {
  const call = (method: string, path: string, body?: unknown) => control(o.url, o.controlToken, method, path, body);
  if ('link' in a) {
    const l = a.link;
    const body = l.off ? { off: true } : { mbps: l.mbps, delayMs: l.delayMs ?? 0 };
    await call('PUT', `/v1/links/${encodeURIComponent(l.from)}/${encodeURIComponent(l.to)}`, body);
    if (l.both) await call('PUT', `/v1/links/${encodeURIComponent(l.to)}/${encodeURIComponent(l.from)}`, body);
  } else if ('cpu' in a) {
    if (!o.deployment) throw new Error('a cpu action needs a deployment this load test started (--start)');
    o.deployment.setCpuQuota(a.cpu.host, a.cpu.cpus);
  } else if ('kill' in a) {
    if (!o.deployment) throw new Error('a kill action needs a deployment this load test started (--start)');
    const pid = o.deployment.pid(a.kill);
    if (pid === undefined) throw new Error(`${a.kill} is not running (or is not a host of this deployment)`);
    process.kill(pid, 'SIGKILL');
  } else if ('objective' in a) {
    await call('PUT', '/v1/controller', { objective: a.objective });
  } else {
    await call('PUT', '/v1/controller', { paused: a.paused });
  }
}

export async function drive(o: DriveOptions): Promise<RunResult> {
  const req = await inferBody(o.url, o.model);
  const plan = (await control(o.url, o.controlToken, 'GET', '/v1/plan').catch(() => null)) as {
    route?: string;
    stages?: { host: string; blocks: [number, number] | null }[];
  } | null;
  const samples: Sample[] = [];
  const events: RecordedEvent[] = [];
  const actions: ActionRecord[] = [];
  const startedAt = new Date();
  const t0 = Date.now();

  const ws = new WebSocket(`${o.url.replace(/^http/, 'ws')}/v1/events`, {
    perMessageDeflate: false,
    headers: o.controlToken ? { authorization: `Bearer ${o.controlToken}` } : {},
  });
  ws.on('message', (m) => {
    try {
      const e = JSON.parse(String(m)) as { type: string; at?: number };
      events.push({ ...e, t: (e.at ?? Date.now()) - t0, type: e.type });
    } catch {
      // not JSON: not an event
    }
  });
  ws.on('error', () => undefined);
  await new Promise<void>((resolve) => {
    ws.once('open', () => resolve());
    ws.once('error', () => resolve());
    setTimeout(resolve, 2000).unref();
  });

  const timers = o.scenario.actions.map((a) =>
    setTimeout(() => {
      const t = Date.now() - t0;
      act(o, a).then(
        () => actions.push({ t, what: describeAction(a), ok: true }),
        (e: Error) => actions.push({ t, what: describeAction(a), ok: false, error: e.message }),
      );
    }, a.at * 1000),
  );
  const progress = setInterval(() => o.onProgress?.(Date.now() - t0, samples.length), 250);
  let finish: (e: Error | null) => void = () => undefined;
  const done = new Promise<void>((resolve, reject) => {
    finish = (e) => (e ? reject(e) : resolve());
  });
  const instance = autocannon(
    {
      url: `${o.url}${req.path}`,
      method: 'POST',
      connections: o.connections,
      duration: o.scenario.duration,
      headers: req.headers,
      body: req.body,
      timeout: 30,
    },
    (err) => finish(err ?? null),
  );
  instance.on('response', (_client: unknown, statusCode: number, _bytes: number, responseTime: number) => {
    samples.push({ t: Date.now() - t0, ms: responseTime, status: statusCode });
  });
  instance.on('reqError', () => {
    samples.push({ t: Date.now() - t0, ms: NaN, status: 0 });
  });
  await done;
  clearInterval(progress);
  for (const t of timers) clearTimeout(t);
  ws.close();
  const stages = plan?.stages
    ?.filter((s): s is { host: string; blocks: [number, number] } => s.blocks !== null)
    .map((s) => ({ host: s.host, blocks: s.blocks }));
  return {
    label: o.label,
    startedAt: startedAt.toISOString(),
    durationMs: Date.now() - t0,
    connections: o.connections,
    samples,
    events: events.filter((e) => e.type !== 'hello'),
    actions: actions.sort((a, b) => a.t - b.t),
    startRoute: plan?.route ?? null,
    startStages: stages && stages.length > 0 ? stages : null,
  };
}
