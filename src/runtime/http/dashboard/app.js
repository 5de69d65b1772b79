// The Cleave dashboard: a page the origin serves at `/`. It reads the control API (`GET /v1/profile`,
// `/v1/plan`, `/v1/plans`, `/v1/controller`, `/v1/topology`) and the events stream (`WS /v1/events`), and
// changes what the control API lets it change (links, the plan's pin, the controller) with the deployment's
// control token, which it asks for when a call needs one. It waits for a deployment that is not up yet and
// reconnects after one restarts. Plain browser JavaScript, no build step; charts are uPlot (served from the
// npm package by the origin, no CDN).
/* global uPlot */

const $ = (id) => document.getElementById(id);
/** Points kept per chart: 10 minutes of one snapshot a second. */
const KEEP = 600;
const PALETTE = ['#f0883e', '#3fb950', '#58a6ff', '#d2a8ff', '#ff7b72', '#e3b341', '#79c0ff', '#56d364'];
const TOKEN_KEY = 'cleave-control-token';

const state = {
  profile: null,
  model: null,
  topology: null,
  plan: null,
  controller: null,
  colors: new Map(),
  /** Times (s) of plan changes, marked on every chart. */
  changes: [],
  token: sessionStorage.getItem(TOKEN_KEY),
  ws: null,
  retryMs: 500,
  pendingControl: null,
  /** Timeline events received while loadAll() is in flight (null when it is not): replayed after its rebuild. */
  duringLoad: null,
  lastSnapshotAt: 0,
};

// --- HTTP -------------------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// The model this page follows: `?model=NAME` in its own URL (a deployment serving several picks one in the
// header), else the deployment's default. The control calls about one model carry it.
const PAGE_MODEL = new URLSearchParams(location.search).get('model');
const MODEL_PATH = /^\/v1\/(plan|plans|controller|profile)$/;

async function api(method, path, body) {
  if (PAGE_MODEL && MODEL_PATH.test(path)) path = `${path}?model=${encodeURIComponent(PAGE_MODEL)}`;
  const headers = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (state.token) headers.authorization = `Bearer ${state.token}`;
  let r;
  try {
    r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiError(0, `the deployment is not answering (${e.message})`);
  }
  const text = await r.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!r.ok) throw new ApiError(r.status, json?.error ?? `${r.status} ${r.statusText}`);
  return json;
}

/** The header's model choice: shown when the deployment serves several; choosing one reloads the page for it. */
function renderModels(models, current) {
  const select = $('model-select');
  if (models.length < 2) {
    select.hidden = true;
    return;
  }
  select.replaceChildren(...models.map((m) => new Option(m, m)));
  select.value = current ?? models[0];
  select.hidden = false;
}

// --- formatting -------------------------------------------------------------------------------------------

const fmt = (x, digits = 1) => (x === null || x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(digits));
const ms = (x) => (x === null || x === undefined ? '–' : `${fmt(x, x >= 100 ? 0 : 1)} ms`);
function bytes(n) {
  if (!Number.isFinite(n)) return '–';
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} kB`;
  return `${n} B`;
}
const mbit = (bps) => (bps === null || bps === undefined ? '–' : `${((bps * 8) / 1e6).toFixed(2)} Mbit/s`);
const clock = (t) => new Date(t).toLocaleTimeString();

function colorOf(host) {
  if (!state.colors.has(host)) state.colors.set(host, PALETTE[state.colors.size % PALETTE.length]);
  return state.colors.get(host);
}

// --- charts -----------------------------------------------------------------------------------------------

/** uPlot draws a dashed line at each plan change. */
function changeMarkers() {
  return {
    hooks: {
      draw: (u) => {
        const ctx = u.ctx;
        const [lo, hi] = [u.scales.x.min, u.scales.x.max];
        ctx.save();
        ctx.strokeStyle = '#e6e6e6';
        ctx.setLineDash([4, 4]);
        ctx.lineWidth = 1;
        for (const t of state.changes) {
          if (t < lo || t > hi) continue;
          const x = Math.round(u.valToPos(t, 'x', true));
          ctx.beginPath();
          ctx.moveTo(x, u.bbox.top);
          ctx.lineTo(x, u.bbox.top + u.bbox.height);
          ctx.stroke();
        }
        ctx.restore();
      },
    },
  };
}

/** A live time series chart whose series (links, hosts) can appear as they are first reported. */
class Chart {
  constructor(el, opts = {}) {
    this.el = el;
    this.opts = opts;
    this.keys = [];
    this.data = [[]];
    this.plot = null;
  }

  push(t, values) {
    const fresh = Object.keys(values).filter((k) => !this.keys.includes(k));
    if (fresh.length > 0) {
      for (const k of fresh) {
        this.keys.push(k);
        this.data.push(this.data[0].map(() => null));
      }
      this.build();
    }
    this.data[0].push(t);
    this.keys.forEach((k, i) => this.data[i + 1].push(values[k] ?? null));
    if (this.data[0].length > KEEP) for (const a of this.data) a.shift();
    if (!this.plot) this.build();
    this.plot.setData(this.data);
  }

  build() {
    this.plot?.destroy();
    const series = [
      {},
      ...this.keys.map((k, i) => ({
        label: k,
        stroke: this.opts.color?.(k) ?? PALETTE[i % PALETTE.length],
        width: 1.5,
        dash: this.opts.dash?.(k),
        spanGaps: false,
        value: (_u, v) => fmt(v, this.opts.digits ?? 1),
      })),
    ];
    this.plot = new uPlot(
      {
        width: Math.max(300, this.el.clientWidth || 460),
        height: 180,
        series,
        scales: { x: { time: true }, y: { range: (_u, lo, hi) => [Math.min(0, lo), Math.max(hi * 1.1, 1e-3)] } },
        axes: [
          { stroke: '#8a96a3', grid: { stroke: '#2a333d' } },
          { stroke: '#8a96a3', grid: { stroke: '#2a333d' }, size: 50 },
        ],
        legend: { live: true },
        plugins: [changeMarkers()],
      },
      this.data,
      this.el,
    );
  }

  resize() {
    this.plot?.setSize({ width: Math.max(300, this.el.clientWidth), height: 180 });
  }

  redraw() {
    this.plot?.redraw(false);
  }
}

const linkColor = (k) => colorOf(k.split('->')[0]);
const linkDash = (k) => {
  const [from, to] = k.split('->');
  return from < to ? undefined : [6, 3];
};
const charts = {
  latency: new Chart($('chart-latency'), {
    color: (k) => ({ 'p50 measured': '#58a6ff', 'p99 measured': '#ff7b72', predicted: '#e3b341' })[k],
    dash: (k) => (k === 'predicted' ? [6, 3] : undefined),
  }),
  rps: new Chart($('chart-rps'), { color: () => '#3fb950' }),
  throughput: new Chart($('chart-throughput'), { color: linkColor, dash: linkDash, digits: 2 }),
  rtt: new Chart($('chart-rtt'), { color: linkColor, dash: linkDash, digits: 2 }),
  slowdown: new Chart($('chart-slowdown'), { color: colorOf, digits: 2 }),
  cpu: new Chart($('chart-cpu'), { color: colorOf }),
};
window.addEventListener('resize', () => Object.values(charts).forEach((c) => c.resize()));

// --- the plan ---------------------------------------------------------------------------------------------

function renderStrip() {
  const strip = $('strip');
  const blocks = state.profile?.model?.blocks;
  const plan = state.plan;
  if (!blocks || !plan) return;
  // Each block's width is its share of the origin's profiled time (at least 1/2000 of the total, so every
  // block shows), as a flex-grow summing to 1000: below 1 in total, flex items would not fill the strip.
  const raw = state.profile.timings?.blocks?.map((b) => Math.max(b.medianMs, 0)) ?? blocks.map(() => 1);
  const total = raw.reduce((a, b) => a + b, 0) || 1;
  const times = raw.map((t) => Math.max(t, total / 2000));
  const sum = times.reduce((a, b) => a + b, 0);
  const owner = new Array(blocks.length).fill(null);
  for (const s of plan.stages) if (s.blocks) for (let k = s.blocks[0]; k < s.blocks[1]; k++) owner[k] = s.host;
  strip.replaceChildren();
  blocks.forEach((b, k) => {
    const d = document.createElement('div');
    d.className = 'block';
    d.style.flex = `${(1000 * times[k]) / sum} 0 0`;
    d.style.background = owner[k] ? colorOf(owner[k]) : '#444';
    d.dataset.host = owner[k] ?? '';
    d.title = `block ${k} ${b.name}: ${fmt(raw[k], 2)} ms on ${state.profile.host.name}, ${bytes(b.frontierBytes)} out; runs on ${owner[k] ?? '?'}`;
    strip.append(d);
  });
  // A cut where one stage hands over to the next (or the raw input leaves a device that runs nothing).
  const forward = plan.hops.filter((h) => h.kind !== 'return');
  const startsAt = (host) => plan.stages.find((s) => s.host === host)?.blocks?.[0];
  for (const h of forward) {
    const at = startsAt(h.to);
    if (at === undefined) continue;
    const before = times.slice(0, at).reduce((a, b) => a + b, 0);
    const cut = document.createElement('div');
    cut.className = 'cut';
    cut.style.left = `${(100 * before) / sum}%`;
    const label = document.createElement('span');
    label.textContent = `${h.from}→${h.to} ${bytes(h.bytes)}`;
    cut.append(label);
    strip.append(cut);
  }
  const legend = $('legend');
  legend.replaceChildren();
  for (const h of state.topology?.hosts ?? []) {
    const name = h.host ?? h.name;
    const item = document.createElement('span');
    const sw = document.createElement('i');
    sw.style.background = colorOf(name);
    item.append(sw, `${name}${h.tier ? ` (${h.tier})` : ''}`);
    legend.append(item);
  }
}

function renderPlan() {
  const p = state.plan;
  if (!p) return;
  $('route').textContent = p.route + (p.pinned ? '  [pinned]' : '');
  $('route').dataset.epoch = String(p.epoch);
  $('epoch').textContent = String(p.epoch);
  $('predicted').textContent = ms(p.predicted?.latencyMs);
  renderStrip();
}

function renderController(settings) {
  if (!settings) return;
  state.controller = settings;
  $('controller-state').textContent = `${settings.paused ? 'paused' : 'running'}, ${settings.objective}`;
  $('objective').value = settings.objective;
  $('pause').textContent = settings.paused ? 'Resume controller' : 'Pause controller';
}

function timelineEntry(at, html, reason) {
  const li = document.createElement('li');
  const when = document.createElement('span');
  when.className = 'when';
  when.textContent = `${clock(at)}  `;
  const what = document.createElement('span');
  what.textContent = html;
  li.append(when, what);
  if (reason) {
    const r = document.createElement('div');
    r.className = 'reason';
    r.textContent = reason;
    li.append(r);
  }
  $('timeline').prepend(li);
  while ($('timeline').children.length > 200) $('timeline').lastChild.remove();
}

function onAdopted(e) {
  const tags = [e.pinned ? 'pinned' : '', e.urgent ? 'urgent' : ''].filter(Boolean).join(', ');
  const gain =
    typeof e.gain === 'number' && e.gain > 0 && e.gain < 1 ? `, predicted ${Math.round(e.gain * 100)}% better` : '';
  timelineEntry(
    e.at,
    `epoch ${e.new?.epoch}: ${e.old?.route ?? '(none)'} ⇒ ${e.new?.route}${tags ? ` [${tags}]` : ''}${gain}`,
    e.reason,
  );
  state.changes.push(e.at / 1000);
  Object.values(charts).forEach((c) => c.redraw());
}

// --- live values ------------------------------------------------------------------------------------------

function row(cells, cls) {
  const tr = document.createElement('tr');
  for (const c of cells) {
    const td = document.createElement('td');
    td.textContent = c;
    if (cls) td.className = cls;
    tr.append(td);
  }
  return tr;
}

function onSnapshot(e) {
  state.lastSnapshotAt = Date.now();
  if (state.ws?.readyState === WebSocket.OPEN) setConn('open', 'live');
  const t = e.at / 1000;
  const m = e.measured ?? {};
  const predicted = e.controller?.currentPredicted?.latencyMs ?? e.predictedLatencyMs ?? null;
  // The charts show every request (all epochs); the header, the current plan's own.
  const all = e.latency ?? {};
  charts.latency.push(t, { 'p50 measured': all.p50Ms ?? null, 'p99 measured': all.p99Ms ?? null, predicted });
  charts.rps.push(t, { 'requests/s': e.latency?.rps ?? null });
  const links = (e.links ?? []).slice().sort((a, b) => `${a.from}${a.to}`.localeCompare(`${b.from}${b.to}`));
  charts.throughput.push(
    t,
    Object.fromEntries(
      links.map((l) => [`${l.from}->${l.to}`, l.throughputBps == null ? null : (l.throughputBps * 8) / 1e6]),
    ),
  );
  charts.rtt.push(t, Object.fromEntries(links.map((l) => [`${l.from}->${l.to}`, l.rttMs ?? null])));
  const cal = e.controller?.calibration ?? {};
  const hosts = e.hosts ?? [];
  charts.slowdown.push(
    t,
    Object.fromEntries(hosts.map((h) => [h.host, h.down ? null : h.slowdown * (cal[h.host] ?? 1)])),
  );
  charts.cpu.push(t, Object.fromEntries(hosts.map((h) => [h.host, h.cpuPercent ?? null])));

  $('measured').textContent = `${ms(m.p50Ms ?? all.p50Ms)} / ${ms(m.p99Ms ?? all.p99Ms)}`;
  $('measured').dataset.count = String(m.count ?? 0);
  $('rps').textContent = fmt(e.latency?.rps);
  $('predicted').textContent = ms(predicted);
  if (e.controller) $('decision').textContent = `last round (${e.controller.kind}): ${e.controller.reason}`;

  $('links').tBodies[0].replaceChildren(
    ...links.map((l) => row([`${l.from} → ${l.to}`, mbit(l.throughputBps), ms(l.rttMs)])),
  );
  $('hosts').tBodies[0].replaceChildren(
    ...hosts.map((h) => {
      const s = h.slowdown * (cal[h.host] ?? 1);
      const r = row([
        h.host,
        h.down ? 'down' : 'up',
        h.cpuPercent == null ? '–' : `${fmt(h.cpuPercent)} %`,
        h.quotaCpus == null ? '–' : `${h.quotaCpus} CPU`,
        `${fmt(s, 2)}x${cal[h.host] ? ' (calibrated)' : ''}`,
        String(h.inFlight ?? 0),
      ]);
      if (h.down) r.children[1].className = 'down';
      return r;
    }),
  );
  if (state.plan === null || e.epoch !== state.plan.epoch || (e.pinned != null && e.pinned !== state.plan.pinned))
    void refreshPlan();
}

// --- loading and reconnecting -----------------------------------------------------------------------------

async function refreshPlan() {
  try {
    state.plan = await api('GET', '/v1/plan');
    renderPlan();
    renderController(state.plan.controller?.settings);
  } catch (e) {
    if (e.status === 401 || e.status === 403) askToken(e.message);
    else $('route').textContent = e.status === 503 ? 'waiting for a plan: the deployment is starting' : e.message;
  }
}

async function loadAll() {
  // The history may be read before a plan change that the stream delivers while the other fetches run:
  // rebuilding the timeline from it alone would drop that change, so events seen meanwhile are replayed.
  state.duringLoad = [];
  try {
    const [profile, topology, plans, controller] = await Promise.all([
      api('GET', '/v1/profile'),
      api('GET', '/v1/topology'),
      api('GET', '/v1/plans'),
      api('GET', '/v1/controller').catch(() => null),
    ]);
    state.profile = profile;
    state.topology = topology;
    for (const h of topology.hosts) colorOf(h.host ?? h.name);
    // The name the deployment serves the model under (what an infer URL needs), beside the file's own.
    const served = await api('POST', '/v2/repository/index').catch(() => null);
    const name = PAGE_MODEL ?? state.plan?.model ?? served?.[0]?.name;
    $('model').textContent =
      `${name && name !== profile.model.name ? `${name} (${profile.model.name})` : profile.model.name}, ${profile.model.blocks.length} blocks`;
    const select = $('link-select');
    const keep = select.value;
    select.replaceChildren(
      ...topology.links
        .map((l) => `${l.from}->${l.to}`)
        .sort()
        .map((k) => new Option(k.replace('->', ' → '), k)),
    );
    if (keep) select.value = keep;
    $('timeline').replaceChildren();
    state.changes = [];
    let prev = null;
    for (const p of plans) {
      onAdopted({ at: Date.parse(p.adoptedAt), old: prev, new: p, reason: p.reason, pinned: p.pinned });
      prev = p;
    }
    const lastEpoch = plans.at(-1)?.epoch ?? -1;
    for (const e of state.duringLoad) {
      if (e.type !== 'plan-adopted') onTimelineEvent(e);
      else if ((e.new?.epoch ?? -1) > lastEpoch) onAdopted(e);
    }
    renderController(controller?.settings);
    await refreshPlan();
  } catch (e) {
    if (e.status === 401 || e.status === 403) askToken(e.message);
    else throw e;
  } finally {
    state.duringLoad = null;
  }
}

function onTimelineEvent(e) {
  if (e.type === 'host-down' || e.type === 'host-up')
    timelineEntry(e.at, `${e.host} ${e.type === 'host-down' ? 'down' : 'back up'}`);
  else if (e.type === 'model-unloaded') timelineEntry(e.at, 'model unloaded: requests refused until loaded');
  else if (e.type === 'model-loaded') timelineEntry(e.at, `model loaded (${e.ms} ms)`);
}

function setConn(s, text) {
  $('conn').dataset.state = s;
  $('conn').textContent = text;
}

function connect() {
  const query = PAGE_MODEL ? `?model=${encodeURIComponent(PAGE_MODEL)}` : '';
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/v1/events${query}`;
  setConn('connecting', 'connecting');
  // A browser's WebSocket cannot send an Authorization header: the token, when the page has one, goes as a
  // subprotocol (the events stream takes `bearer.TOKEN` beside `cleave.events`).
  let ws;
  try {
    ws = state.token ? new WebSocket(url, ['cleave.events', `bearer.${state.token}`]) : new WebSocket(url);
  } catch {
    ws = new WebSocket(url); // a token with characters a subprotocol cannot carry
  }
  state.ws = ws;
  let opened = false;
  ws.onopen = () => {
    opened = true;
    state.lastSnapshotAt = Date.now(); // the silence check counts from now, not from before a restart
    state.retryMs = 500;
    setConn('open', 'live');
    loadAll().catch((e) => ($('route').textContent = `waiting for the deployment: ${e.message}`));
  };
  ws.onmessage = (m) => {
    let e;
    try {
      e = JSON.parse(m.data);
    } catch {
      return;
    }
    // The page shows the default model (the one /v1/plan answers for): the hello names it, and events of
    // the deployment's other models are not this page's.
    if (e.type === 'hello') {
      state.model = typeof e.model === 'string' ? e.model : null;
      renderModels(Array.isArray(e.models) ? e.models : [], state.model);
    } else if (typeof e.model === 'string' && state.model && e.model !== state.model) return;
    const onTimeline = ['plan-adopted', 'host-down', 'host-up', 'model-unloaded', 'model-loaded'].includes(e.type);
    if (onTimeline && state.duringLoad) state.duringLoad.push(e);
    if (e.type === 'snapshot') onSnapshot(e);
    else if (e.type === 'plan-adopted') {
      onAdopted(e);
      void refreshPlan();
    } else if (e.type === 'plan-proposed') $('decision').textContent = `proposed: ${e.reason}`;
    else if (e.type === 'controller-changed') renderController(e.after);
    else if (onTimeline) onTimelineEvent(e);
    else if (e.type === 'hello') renderController(e.controller);
  };
  ws.onclose = (c) => {
    state.ws = null;
    // Refused before it opened: if that is for want of a token (reads need one here), ask for it.
    if (!opened)
      api('GET', '/v1/plans').catch((e) => {
        if (e.status === 401 || e.status === 403)
          askToken(`reading this deployment needs its control token (${e.message})`);
      });
    const why = c.code === 4429 ? 'dropped: too slow' : opened ? 'disconnected' : 'the deployment is not up';
    setConn('closed', `${why}, retrying`);
    setTimeout(connect, state.retryMs);
    state.retryMs = Math.min(state.retryMs * 2, 5000);
  };
}

// --- controls ---------------------------------------------------------------------------------------------

function say(text, ok = true) {
  $('control-result').textContent = text;
  $('control-result').dataset.ok = String(ok);
}

function askToken(why) {
  $('token-form').hidden = false;
  $('token-why').textContent = why;
  $('token').focus();
}

/** Runs a control call; one that needs the token asks for it and runs again once it is given. */
async function control(what, method, path, body) {
  try {
    const out = await api(method, path, body);
    say(`${what}: done`);
    return out;
  } catch (e) {
    if (e.status === 401 || e.status === 403) {
      state.pendingControl = () => control(what, method, path, body);
      askToken(`${what} needs the deployment's control token (${e.message})`);
      say(`${what}: waiting for the control token`, false);
    } else say(`${what}: ${e.message}`, false);
    return null;
  }
}

$('token-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  state.token = $('token').value.trim() || null;
  if (state.token) sessionStorage.setItem(TOKEN_KEY, state.token);
  else sessionStorage.removeItem(TOKEN_KEY);
  $('token-form').hidden = true;
  const again = state.pendingControl;
  state.pendingControl = null;
  if (again) void again();
  else void loadAll();
});

$('link-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const [from, to] = $('link-select').value.split('->');
  const mbps = Number($('link-mbps').value);
  const delayMs = Number($('link-delay').value || 0);
  if (!(mbps > 0)) return say('Mbit/s: must be a number > 0', false);
  void control(`link ${from} → ${to} to ${mbps} Mbit/s, ${delayMs} ms`, 'PUT', `/v1/links/${from}/${to}`, {
    mbps,
    delayMs,
  });
});
$('link-off').addEventListener('click', () => {
  const [from, to] = $('link-select').value.split('->');
  void control(`emulation of ${from} → ${to} removed`, 'PUT', `/v1/links/${from}/${to}`, { off: true });
});
$('pin').addEventListener('click', () => {
  const p = state.plan;
  if (!p) return say('no plan to pin yet', false);
  const stages = p.stages.filter((s) => s.blocks).map((s) => ({ host: s.host, blocks: s.blocks }));
  void control(`pin ${p.route}`, 'PUT', '/v1/plan', { stages }).then(() => refreshPlan());
});
$('model-select').addEventListener('change', () => {
  const u = new URL(location.href);
  u.searchParams.set('model', $('model-select').value);
  location.assign(u.href);
});
$('unpin').addEventListener('click', () => void control('unpin', 'DELETE', '/v1/plan').then(() => refreshPlan()));
$('objective').addEventListener(
  'change',
  () =>
    void control(`objective ${$('objective').value}`, 'PUT', '/v1/controller', {
      objective: $('objective').value,
    }).then((s) => s && renderController(s.settings)),
);
$('pause').addEventListener('click', () => {
  const paused = !state.controller?.paused;
  void control(paused ? 'pause' : 'resume', 'PUT', '/v1/controller', { paused }).then(
    (s) => s && renderController(s.settings),
  );
});

// The snapshot stream stops while the deployment is down: say so even if the socket lingers.
setInterval(() => {
  if (state.ws && state.lastSnapshotAt > 0 && Date.now() - state.lastSnapshotAt > 5000)
    setConn('closed', 'no snapshot for 5 s');
}, 1000);

connect();
