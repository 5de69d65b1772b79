/**
 * `cleave watch`: a live terminal view of a running deployment, drawn from the origin's event stream
 * (`WS /v1/events`) and `GET /v1/plan`. Drawing is a pure function of the state (`renderWatch`), so a frame
 * can be checked without a terminal; the command only keeps the state current and reconnects. (Past 400
 * lines on purpose: one command, its renderer and its connection loop, which share the state type.)
 */
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { CleaveError, errorMessage } from '../../errors.js';
import { controlTokenFor } from '../control-token.js';
import { CLOSE_TOO_SLOW, EVENTS_PATH } from '../../runtime/http/events.js';
import type { LinkView } from '../../runtime/plan/cluster-view.js';
import type { CleaveEvent } from '../../runtime/plan/events.js';
import type { LatencyStats } from '../../runtime/plan/latency-window.js';
import type { HostLive } from '../../runtime/plan/live-state.js';
import { parseIntFlag } from '../args.js';
import { table } from '../format.js';

const DEFAULT_URL = 'http://127.0.0.1:8000';

/** Timings of the connection, in ms. */
const WATCH = {
  /** Between connection attempts while the deployment is down. */
  retryMs: 1000,
  /** A ping every this often; no pong (nor message) by the next one and the stream counts as dead. */
  pingMs: 2500,
  /** GET /v1/plan and the WebSocket handshake give up after this. */
  requestTimeoutMs: 5000,
} as const;

const watchHelp = `cleave watch [--url URL] [--model NAME] [--token T] [--once] [--events N]

A live view of a running deployment: the epoch and route, predicted against measured latency (p50, p99)
and request rate, every link's RTT and throughput, every host's CPU, quota, slowdown and queue, and the
last N events (--events, default 10): plan changes with their reasons, link changes, hosts up and down,
proposals, controller changes. Reads GET /v1/plan and WS /v1/events of the device host at --url (default
${DEFAULT_URL}) and redraws on each snapshot (about once a second). While the deployment is down or not
up yet it says so and reconnects every second, until Ctrl-C. --once prints one frame after the first
snapshot and exits. When stdout is not a terminal, frames are printed one after another, blank-line separated.
--model follows one of a deployment's several models (default: its default model); one it does not serve
is an error naming those it does.
--token (else CLEAVE_CONTROL_TOKEN, else the file 'cleave up' wrote for that URL) is sent when there is one:
a deployment whose readAccess is 'token', or one watched from another machine, needs it.`;

/** What a `snapshot` event carries (see host.ts). */
export interface WatchSnapshot {
  readonly at: number;
  readonly epoch: number | null;
  readonly route: string | null;
  readonly predictedLatencyMs: number | null;
  /** The requests of the current epoch over the latency window; null without a plan. */
  readonly measured: LatencyStats | null;
  /** Every request over the window. */
  readonly latency: LatencyStats | null;
  readonly links: readonly LinkView[];
  readonly hosts: readonly HostLive[];
}

export interface WatchState {
  /** The device host's URL, as shown. */
  readonly url: string;
  /** 'connecting' before the first answer, 'open' while the stream is up, 'down' between attempts. */
  readonly connection: 'connecting' | 'open' | 'down';
  /** Why the last attempt failed or the stream ended. */
  readonly problem: string | null;
  readonly downSince: number | null;
  /** The origin host's name, from the stream's hello. */
  readonly origin: string | null;
  /** The current plan as last known: GET /v1/plan, then the hello, plan-adopted events and snapshots. */
  readonly plan: { readonly epoch: number; readonly route: string } | null;
  readonly snapshot: WatchSnapshot | null;
  /** The last events other than snapshots, oldest first. */
  readonly events: readonly CleaveEvent[];
  /** How many events the view keeps (0: no events section). */
  readonly maxEvents: number;
  /** Cut lines to this many columns (a terminal's width); none when absent. */
  readonly width?: number;
}

export function renderWatch(s: WatchState): string {
  const lines: string[] = [];
  const status =
    s.connection === 'open'
      ? `live${s.origin ? ` (origin ${s.origin})` : ''}`
      : s.connection === 'connecting'
        ? 'connecting...'
        : 'NOT CONNECTED';
  lines.push(`cleave watch  ${s.url}  ${status}${s.snapshot ? `  snapshot ${clock(s.snapshot.at)}` : ''}`);
  if (s.connection === 'down') {
    lines.push(
      `  ${s.problem ?? 'connection lost'}; retrying every second${s.downSince !== null ? ` since ${clock(s.downSince)}` : ''} (Ctrl-C to stop)`,
    );
    if (!s.snapshot) lines.push("  is the deployment up ('cleave up'), and is --url its device host?");
  }
  const snap = s.snapshot;
  const epoch = snap?.epoch ?? s.plan?.epoch ?? null;
  const route = snap?.route ?? s.plan?.route ?? null;
  if (route !== null) lines.push(`epoch ${epoch ?? '-'}  route ${route}`);
  else
    lines.push(
      s.connection === 'open' ? 'route: none yet (no plan committed: the deployment is starting)' : 'route: unknown',
    );
  if (!snap) {
    if (s.connection === 'open') lines.push('waiting for the first snapshot (sent about once a second)');
  } else {
    const m = snap.measured ?? snap.latency;
    const measured =
      m && m.count > 0
        ? `p50 ${ms(m.p50Ms)} ms  p99 ${ms(m.p99Ms)} ms  ${fixed(m.rps, 1)} req/s (${m.count} answered, ${m.failed} failed)`
        : 'no requests in the window';
    lines.push(`latency  predicted ${ms(snap.predictedLatencyMs)} ms  measured ${measured}`);
    lines.push('', 'links');
    const links = [...snap.links].sort((a, b) => a.from.localeCompare(b.from) || a.to.localeCompare(b.to));
    lines.push(
      links.length
        ? table(
            ['link', 'rtt ms', 'Mbit/s'],
            links.map((l) => [`${l.from}->${l.to}`, fixed(l.rttMs, 2), mbit(l.throughputBps)]),
          )
        : '  none measured yet',
    );
    lines.push('', 'hosts');
    lines.push(
      table(
        ['host', 'tier', 'state', 'cpu %', 'quota cpus', 'slowdown', 'queue', 'frame cpu ms'],
        snap.hosts.map((h) => [
          h.host,
          h.tier || '-',
          h.down ? 'DOWN' : 'up',
          fixed(h.cpuPercent, 0),
          h.quotaCpus === null ? 'none' : fixed(h.quotaCpus, 2),
          `${fixed(h.slowdown, 2)}x (${h.slowdownFrom})`,
          h.queueDepth,
          fixed(h.frameCpuMs ?? null, 2),
        ]),
      ),
    );
  }
  if (s.maxEvents > 0) {
    lines.push('', `events (last ${s.maxEvents})`);
    const shown = s.events.slice(-s.maxEvents);
    if (shown.length === 0) lines.push('  none yet');
    const w = Math.max(0, ...shown.map((e) => e.type.length));
    for (const e of shown) lines.push(`${clock(e.at)}  ${e.type.padEnd(w)}  ${eventText(e)}`);
  }
  return (s.width ? lines.map((l) => cut(l, s.width as number)) : lines).join('\n');
}

/** One line about an event (not a snapshot). Wire data: a missing or odd field prints as '-', never throws. */
function eventText(e: CleaveEvent): string {
  switch (e.type) {
    case 'plan-adopted': {
      const before = e.old as { route?: unknown } | null;
      const after = (e.new ?? {}) as { epoch?: unknown; route?: unknown; predictedLatencyMs?: unknown };
      const flags = `${e.urgent === true ? ' [urgent]' : ''}${e.pinned === true ? ' [pinned]' : ''}`;
      return `epoch ${str(after.epoch)}: ${before ? str(before.route) : '(none)'} => ${str(after.route)} (~${ms(num(after.predictedLatencyMs))} ms)${flags}: ${str(e.reason)}`;
    }
    case 'link-changed': {
      const was = (e.before ?? {}) as { rttMs?: unknown; throughputBps?: unknown };
      return `${str(e.from)}->${str(e.to)}  rtt ${fixed(num(e.rttMs), 2)} ms, ${mbit(num(e.throughputBps))} Mbit/s (was ${fixed(num(was.rttMs), 2)} ms, ${mbit(num(was.throughputBps))} Mbit/s)`;
    }
    case 'host-up':
      return `${str(e.host)} is up`;
    case 'host-down':
      return `${str(e.host)} is DOWN`;
    case 'model-unloaded': {
      const failed = Array.isArray(e.failed) ? e.failed.length : 0;
      const freed = failed
        ? `${failed} host(s) could not be told to free their sessions`
        : 'every host freed its sessions';
      return `${freed}; requests refused until loaded`;
    }
    case 'model-loaded':
      return `segments warm again in ${ms(num(e.ms))} ms, epoch ${str(e.epoch)}`;
    case 'plan-proposed': {
      const c = (e.candidate ?? {}) as { stages?: unknown; latencyMs?: unknown };
      const stages = Array.isArray(c.stages)
        ? c.stages
            .map(
              (x: { host?: unknown; blocks?: unknown }) =>
                `${str(x?.host)}${Array.isArray(x?.blocks) ? `[${x.blocks.join(':')})` : ''}`,
            )
            .join(' + ')
        : '-';
      const gain = num(e.gain);
      return `candidate ${stages} blocks (~${ms(num(c.latencyMs))} ms, ${gain === null ? '-' : `${Math.round(gain * 100)}%`} better), round ${str(e.round)}/${str(e.rounds)}: ${str(e.reason)}`;
    }
    case 'contingency-warmed': {
      const plans = Array.isArray(e.plans) ? (e.plans as { scenario?: unknown; route?: unknown }[]) : [];
      const each = plans.map((c) => `${str(c?.scenario)}: ${str(c?.route)}`).join('; ');
      const deferred = Array.isArray(e.deferred) ? (e.deferred as { host?: unknown }[]) : [];
      const held = deferred.length
        ? `; ${deferred.length} deferred (${[...new Set(deferred.map((c) => str(c?.host)))].join(', ')} throttled)`
        : '';
      return `${plans.length} warm for epoch ${str(e.epoch)} in ${ms(num(e.ms))} ms${each ? ` (${each})` : ''}${held}`;
    }
    case 'controller-changed': {
      const before = (e.before ?? {}) as Record<string, unknown>;
      const after = (e.after ?? {}) as Record<string, unknown>;
      const changed = Object.keys(after).filter((k) => JSON.stringify(before[k]) !== JSON.stringify(after[k]));
      return changed.length
        ? changed.map((k) => `${k} ${JSON.stringify(before[k])} -> ${JSON.stringify(after[k])}`).join(', ')
        : 'settings unchanged';
    }
    default: {
      const { type: _t, at: _a, seq: _s, ...rest } = e;
      return cut(JSON.stringify(rest), 160);
    }
  }
}

function num(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

function str(v: unknown): string {
  return v === null || v === undefined || v === '' ? '-' : String(v);
}

function fixed(v: number | null | undefined, digits: number): string {
  return typeof v === 'number' && Number.isFinite(v) ? v.toFixed(digits) : '-';
}

function ms(v: number | null | undefined): string {
  return fixed(v, 1);
}

/** Bytes per second as Mbit/s (10^6 bits), as `cleave link` prints them. */
function mbit(bps: number | null | undefined): string {
  return typeof bps === 'number' && Number.isFinite(bps) ? ((bps * 8) / 1e6).toFixed(1) : '-';
}

/** Local wall-clock time HH:MM:SS. */
function clock(at: number): string {
  return new Date(at).toTimeString().slice(0, 8);
}

function cut(line: string, width: number): string {
  return line.length <= width ? line : `${line.slice(0, Math.max(0, width - 3))}...`;
}

export async function watchCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      url: { type: 'string' },
      token: { type: 'string' },
      model: { type: 'string' },
      once: { type: 'boolean' },
      events: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(`${watchHelp}\n`);
    return 0;
  }
  const base = parseUrl(values.url ?? DEFAULT_URL);
  const maxEvents = values.events === undefined ? 10 : parseIntFlag('--events', values.events, 0);
  return new Promise<number>((resolve) => {
    const token = controlTokenFor(base.href, values.token);
    const w = new Watcher({ base, token, model: values.model, maxEvents, once: values.once === true, done: resolve });
    w.start();
  });
}

/** --url: an http(s) URL of the device host; the events stream is the same address over ws(s). */
function parseUrl(v: string): URL {
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new CleaveError(
      'E_BAD_INPUT',
      `--url '${v}': not a URL; expected the device host's address, such as ${DEFAULT_URL}`,
    );
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw new CleaveError('E_BAD_INPUT', `--url '${v}': expected an http:// or https:// URL, such as ${DEFAULT_URL}`);
  u.search = '';
  u.hash = '';
  u.pathname = u.pathname.replace(/\/+$/, '');
  return u;
}

function endpoint(base: URL, path: string, ws: boolean): string {
  const u = new URL(base.href);
  if (ws) u.protocol = base.protocol === 'https:' ? 'wss:' : 'ws:';
  u.pathname = `${base.pathname.replace(/\/+$/, '')}${path}`;
  return u.href;
}

/** Keeps a WatchState current from the deployment, draws it, and reconnects while the deployment is away. */
class Watcher {
  private state: WatchState;
  private ws: WebSocket | null = null;
  private retry: NodeJS.Timeout | null = null;
  private pinger: NodeJS.Timeout | null = null;
  private stopped = false;
  private lastFrame = '';
  private lastComplaint = '';
  /** The model this view follows: the default one, which the stream's hello names. */
  private model: string | null = null;
  private readonly tty = process.stdout.isTTY === true;
  private readonly onSignal = (): void => this.finish(0);
  /** A resized terminal reflows what is on it: draw again even when the frame is the same. */
  private readonly onResize = (): void => {
    this.lastFrame = '';
    this.draw();
  };

  constructor(
    private readonly o: {
      base: URL;
      token?: string;
      /** --model: the model to follow (absent: the deployment's default). */
      model?: string;
      maxEvents: number;
      once: boolean;
      done(code: number): void;
    },
  ) {
    this.state = {
      url: endpoint(o.base, '', false).replace(/\/$/, ''),
      connection: 'connecting',
      problem: null,
      downSince: null,
      origin: null,
      plan: null,
      snapshot: null,
      events: [],
      maxEvents: o.maxEvents,
    };
  }

  private auth(): Record<string, string> {
    return this.o.token ? { authorization: `Bearer ${this.o.token}` } : {};
  }

  start(): void {
    process.once('SIGINT', this.onSignal);
    process.once('SIGTERM', this.onSignal);
    if (this.tty) process.stdout.on('resize', this.onResize);
    this.draw();
    void this.connect();
  }

  private async connect(): Promise<void> {
    this.retry = null;
    const query = this.o.model === undefined ? '' : `?model=${encodeURIComponent(this.o.model)}`;
    const planUrl = endpoint(this.o.base, '/v1/plan', false) + query;
    try {
      const res = await fetch(planUrl, { headers: this.auth(), signal: AbortSignal.timeout(WATCH.requestTimeoutMs) });
      const body = (await res.json().catch(() => null)) as { epoch?: unknown; route?: unknown; error?: unknown } | null;
      // A model the deployment does not serve: said once, and the view ends (waiting would not change it).
      if (this.o.model !== undefined && res.status === 404 && typeof body?.error === 'string') {
        process.stderr.write(`cleave watch: --model ${this.o.model ?? ''}: ${body.error}\n`);
        return this.finish(2);
      }
      // 503 while the deployment plans its first epoch: the stream still answers, and its snapshots will carry the route.
      if (res.ok && typeof body?.epoch === 'number' && typeof body.route === 'string')
        this.state = { ...this.state, plan: { epoch: body.epoch, route: body.route } };
    } catch (e) {
      return this.down(`GET ${planUrl}: ${causeOf(e)}`);
    }
    if (this.stopped) return;
    const url = endpoint(this.o.base, EVENTS_PATH, true) + query;
    const ws = new WebSocket(url, {
      perMessageDeflate: false,
      handshakeTimeout: WATCH.requestTimeoutMs,
      headers: this.auth(),
    });
    this.ws = ws;
    let error: string | null = null;
    let alive = true;
    ws.on('open', () => {
      // Drawn on the hello, which names the origin.
      this.state = { ...this.state, connection: 'open', problem: null, downSince: null };
      this.lastComplaint = '';
      this.pinger = setInterval(() => {
        if (!alive) return ws.terminate();
        alive = false;
        ws.ping();
      }, WATCH.pingMs);
    });
    ws.on('pong', () => (alive = true));
    ws.on('message', (data) => {
      alive = true;
      let e: CleaveEvent;
      try {
        e = JSON.parse(String(data)) as CleaveEvent;
      } catch {
        return; // not ours to judge: the stream is JSON text; skip anything else
      }
      this.onEvent(e);
    });
    ws.on('error', (err) => (error = errorMessage(err)));
    ws.on('close', (code, reason) => {
      if (this.pinger) clearInterval(this.pinger);
      this.pinger = null;
      this.ws = null;
      if (this.stopped) return;
      let why = error ?? `stream closed (${code}${reason.length ? ` ${String(reason)}` : ''})`;
      if (code === CLOSE_TOO_SLOW) why = 'the deployment dropped this view for reading too slowly';
      else if (/Unexpected server response: 404/.test(why))
        why = `${url}: 404 (is --url the deployment's device host?)`;
      else if (code === 1006 && !error) why = 'connection lost';
      this.down(why);
    });
  }

  private onEvent(e: CleaveEvent): void {
    if (typeof e?.type !== 'string') return;
    // Events of the deployment's other models are not this view's (it shows what /v1/plan answers for).
    if ((e.type as string) !== 'hello' && typeof e.model === 'string' && this.model !== null && e.model !== this.model)
      return;
    if ((e.type as string) === 'hello') {
      this.model = typeof e.model === 'string' ? e.model : null;
      const epoch = num(e.epoch);
      const origin = typeof e.host === 'string' ? e.host : null;
      const plan =
        epoch !== null && typeof e.route === 'string' && (this.state.plan?.epoch ?? -1) <= epoch
          ? { epoch, route: e.route }
          : this.state.plan;
      this.state = { ...this.state, origin, plan };
      return this.draw();
    }
    if (e.type === 'snapshot') {
      const snap = e as unknown as WatchSnapshot;
      const plan =
        typeof snap.epoch === 'number' && typeof snap.route === 'string'
          ? { epoch: snap.epoch, route: snap.route }
          : this.state.plan;
      this.state = { ...this.state, snapshot: { ...snap, links: snap.links ?? [], hosts: snap.hosts ?? [] }, plan };
      if (this.o.once) {
        process.stdout.write(`${renderWatch(this.state)}\n`);
        return this.finish(0);
      }
      return this.draw();
    }
    let plan = this.state.plan;
    if (e.type === 'plan-adopted') {
      const n = e.new as { epoch?: unknown; route?: unknown } | undefined;
      if (typeof n?.epoch === 'number' && typeof n.route === 'string') plan = { epoch: n.epoch, route: n.route };
    }
    const keep = Math.max(this.o.maxEvents, 1);
    this.state = { ...this.state, plan, events: [...this.state.events, e].slice(-keep) };
  }

  private down(problem: string): void {
    if (this.stopped) return;
    this.state = { ...this.state, connection: 'down', problem, downSince: this.state.downSince ?? Date.now() };
    if (this.o.once && problem !== this.lastComplaint)
      process.stderr.write(`cleave watch: ${problem}; retrying every second\n`);
    this.lastComplaint = problem;
    this.draw();
    this.retry = setTimeout(() => void this.connect(), WATCH.retryMs);
  }

  /** --once prints only the snapshot frame; a terminal is redrawn in place; a pipe gets each new frame. */
  private draw(): void {
    if (this.o.once || this.stopped) return;
    const frame = renderWatch(this.tty ? { ...this.state, width: process.stdout.columns || undefined } : this.state);
    // Retries while down redraw the same frame: skip them (no flicker, no repeats down a pipe).
    if (frame === this.lastFrame) return;
    process.stdout.write(this.tty ? `\x1b[H\x1b[2J${frame}\n` : `${this.lastFrame ? '\n' : ''}${frame}\n`);
    this.lastFrame = frame;
  }

  private finish(code: number): void {
    if (this.stopped) return;
    this.stopped = true;
    process.off('SIGINT', this.onSignal);
    process.off('SIGTERM', this.onSignal);
    process.stdout.off('resize', this.onResize);
    if (this.retry) clearTimeout(this.retry);
    if (this.pinger) clearInterval(this.pinger);
    this.ws?.terminate();
    this.o.done(code);
  }
}

/** fetch() says only 'fetch failed'; the reason (ECONNREFUSED, a timeout) is its cause. */
function causeOf(e: unknown): string {
  const cause = (e as { cause?: unknown })?.cause;
  return errorMessage(cause ?? e);
}
