/**
 * What a load test reports: per run the request count, errors, mean / p50 / p99 latency and throughput, the
 * plan changes and the requests that straddled one; with `--compare static`, the ratios of the adaptive run
 * to the static one. Written as JSON (everything, every request included) and as a self-contained HTML page
 * whose charts are drawn by uPlot (inlined from the npm package: the file opens anywhere, offline).
 */
import { readFileSync } from 'node:fs';
import { uplotFiles } from '../src/runtime/http/dashboard.js';
import type { RunResult } from './drive.js';
import type { Scenario } from './scenario.js';

export interface RunSummary {
  readonly label: string;
  readonly requests: number;
  readonly ok: number;
  readonly errors: number;
  readonly meanMs: number | null;
  /**
   * The latency of the request in flight at a random moment (sum of ms^2 over sum of ms). A closed loop
   * sends fewer requests while a plan is slow, so the mean over requests hides what a slow spell costs;
   * this weighs each request by the time it took.
   */
  readonly timeWeightedMs: number | null;
  readonly p50Ms: number | null;
  readonly p99Ms: number | null;
  /** Answered (2xx) requests per second over the run. */
  readonly rps: number;
  readonly planChanges: number;
  /** Requests in flight while a plan change committed, and their mean latency. */
  readonly straddled: number;
  readonly straddledMeanMs: number | null;
  readonly startRoute: string | null;
  readonly routes: string[];
  /** Each plan change (ms since the run started), its new route, and the requests in flight across it. */
  readonly changes: { t: number; route: string; straddled: number; straddledMeanMs: number | null }[];
}

export interface Report {
  readonly name: 'loadtest';
  readonly scenario: Scenario;
  readonly url: string;
  readonly model: string;
  readonly runs: RunSummary[];
  /** adaptive / static, when both ran: below 1 is better for latency, above 1 for throughput. */
  readonly compare: {
    meanRatio: number | null;
    timeWeightedRatio: number | null;
    p99Ratio: number | null;
    rpsRatio: number | null;
  } | null;
}

const round = (x: number | null, d = 2): number | null => (x === null ? null : Math.round(x * 10 ** d) / 10 ** d);
function quantile(sorted: number[], q: number): number | null {
  return sorted.length === 0 ? null : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

export function summarise(r: RunResult): RunSummary {
  const ok = r.samples.filter((s) => s.status >= 200 && s.status < 300);
  const ms = ok.map((s) => s.ms).sort((a, b) => a - b);
  const changes = r.events.filter((e) => e.type === 'plan-adopted');
  const straddled = ok.filter((s) => changes.some((c) => c.t >= s.t - s.ms && c.t <= s.t));
  const routes = changes.map((c) => String((c.new as { route?: string } | undefined)?.route ?? '?'));
  const across = (t: number) => ok.filter((x) => t >= x.t - x.ms && t <= x.t);
  return {
    label: r.label,
    requests: r.samples.length,
    ok: ok.length,
    errors: r.samples.length - ok.length,
    meanMs: round(ms.length ? ms.reduce((a, b) => a + b, 0) / ms.length : null),
    timeWeightedMs: round(ms.length ? ms.reduce((a, b) => a + b * b, 0) / ms.reduce((a, b) => a + b, 0) : null),
    p50Ms: round(quantile(ms, 0.5)),
    p99Ms: round(quantile(ms, 0.99)),
    rps: round((ok.length * 1000) / Math.max(1, r.durationMs)) ?? 0,
    planChanges: changes.length,
    straddled: straddled.length,
    straddledMeanMs: round(straddled.length ? straddled.reduce((a, s) => a + s.ms, 0) / straddled.length : null),
    startRoute: r.startRoute,
    routes,
    changes: changes.map((c, i) => {
      const xs = across(c.t);
      return {
        t: Math.round(c.t),
        route: routes[i],
        straddled: xs.length,
        straddledMeanMs: round(xs.length ? xs.reduce((a, x) => a + x.ms, 0) / xs.length : null),
      };
    }),
  };
}

export function buildReport(o: { scenario: Scenario; url: string; model: string; runs: RunResult[] }): Report {
  const runs = o.runs.map(summarise);
  const a = runs.find((x) => x.label === 'adaptive');
  const s = runs.find((x) => x.label === 'static');
  const ratio = (x: number | null | undefined, y: number | null | undefined): number | null =>
    x === null || x === undefined || y === null || y === undefined || y === 0 ? null : round(x / y, 3);
  return {
    name: 'loadtest',
    scenario: o.scenario,
    url: o.url,
    model: o.model,
    runs,
    compare:
      a && s
        ? {
            meanRatio: ratio(a.meanMs, s.meanMs),
            timeWeightedRatio: ratio(a.timeWeightedMs, s.timeWeightedMs),
            p99Ratio: ratio(a.p99Ms, s.p99Ms),
            rpsRatio: ratio(a.rps, s.rps),
          }
        : null,
  };
}

/** The terminal table. */
export function summaryTable(rep: Report): string {
  const head = [
    'run',
    'requests',
    'errors',
    'mean ms',
    'time-weighted ms',
    'p50 ms',
    'p99 ms',
    'req/s',
    'plan changes',
    'straddled',
  ];
  const rows = rep.runs.map((r) => [
    r.label,
    String(r.requests),
    String(r.errors),
    String(r.meanMs ?? '-'),
    String(r.timeWeightedMs ?? '-'),
    String(r.p50Ms ?? '-'),
    String(r.p99Ms ?? '-'),
    String(r.rps),
    String(r.planChanges),
    r.straddled ? `${r.straddled} (${r.straddledMeanMs} ms)` : '0',
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]): string =>
    cells.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ');
  const out = [line(head), ...rows.map(line)];
  if (rep.compare)
    out.push(
      `adaptive / static: mean ${rep.compare.meanRatio ?? '-'}x, time-weighted ${rep.compare.timeWeightedRatio ?? '-'}x, p99 ${rep.compare.p99Ratio ?? '-'}x, throughput ${rep.compare.rpsRatio ?? '-'}x`,
    );
  return out.join('\n');
}

/** `</script>` inside inlined JSON or code would end the element early. */
const safe = (s: string): string => s.replace(/<\/(script)/gi, '<\\/$1');

/** The self-contained HTML report: latency of every request over time, throughput and errors per second. */
export function htmlReport(rep: Report, runs: RunResult[]): string {
  const files = uplotFiles();
  const js = readFileSync(files.js, 'utf8');
  const css = readFileSync(files.css, 'utf8');
  const data = {
    report: rep,
    runs: runs.map((r) => ({
      label: r.label,
      samples: r.samples.map((s) => [
        Math.round(s.t),
        Number.isFinite(s.ms) ? Math.round(s.ms * 100) / 100 : null,
        s.status,
      ]),
      changes: r.events
        .filter((e) => e.type === 'plan-adopted')
        .map((e, i) => ({
          t: e.t,
          route: (e.new as { route?: string } | undefined)?.route ?? '?',
          reason: e.reason,
          straddled: rep.runs.find((x) => x.label === r.label)?.changes[i]?.straddled ?? 0,
        })),
      actions: r.actions,
    })),
  };
  const rows = rep.runs
    .map(
      (r) =>
        `<tr><td>${r.label}</td><td>${r.requests}</td><td>${r.errors}</td><td>${r.meanMs ?? '-'}</td><td>${r.timeWeightedMs ?? '-'}</td><td>${r.p50Ms ?? '-'}</td><td>${r.p99Ms ?? '-'}</td><td>${r.rps}</td><td>${r.planChanges}</td><td>${r.straddled}</td></tr>`,
    )
    .join('');
  const esc = (s: string): string =>
    s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Cleave load test: ${esc(rep.scenario.name)}</title>
<style>${css}
body{font-family:system-ui,sans-serif;margin:16px;color:#222;background:#fff}
table{border-collapse:collapse}td,th{padding:3px 10px;border-bottom:1px solid #ddd;text-align:right}
td:first-child,th:first-child{text-align:left}figure{margin:12px 0}figcaption{font-size:13px;color:#555}
.muted{color:#666;font-size:13px}</style></head>
<body>
<h1>Load test: ${esc(rep.scenario.name)}</h1>
<p class="muted">${esc(rep.scenario.description)}<br>${esc(rep.model)} at ${esc(rep.url)}, ${rep.scenario.duration} s, ${runs[0]?.connections ?? '?'} connections, ${esc(runs[0]?.startedAt ?? '')}</p>
<table><thead><tr><th>run</th><th>requests</th><th>errors</th><th>mean ms</th><th>time-weighted ms</th><th>p50 ms</th><th>p99 ms</th><th>req/s</th><th>plan changes</th><th>straddled</th></tr></thead><tbody>${rows}</tbody></table>
${rep.compare ? `<p>adaptive / static: mean ${rep.compare.meanRatio}x, time-weighted ${rep.compare.timeWeightedRatio}x, p99 ${rep.compare.p99Ratio}x, throughput ${rep.compare.rpsRatio}x</p>` : ''}
<figure><figcaption>Latency of every request at its completion (ms, log scale); dashed lines: plan changes (adaptive run), dotted: the scenario's actions</figcaption><div id="lat"></div></figure>
<figure><figcaption>Answered requests per second</figcaption><div id="rps"></div></figure>
<figure><figcaption>Errors per second</figcaption><div id="err"></div></figure>
<h2>Plan changes</h2><ol id="changes"></ol>
<script>${safe(js)}</script>
<script>
const DATA = ${safe(JSON.stringify(data))};
const COLORS = { adaptive: '#1f77b4', static: '#d62728' };
const W = Math.min(1200, document.body.clientWidth - 20);
const changes = (DATA.runs.find((r) => r.label === 'adaptive') || DATA.runs[0]).changes;
const actions = DATA.runs[0].actions;
function marks() {
  return { hooks: { draw: (u) => {
    const c = u.ctx; c.save(); c.lineWidth = 1;
    const line = (t, dash, color) => { const x = Math.round(u.valToPos(t / 1000, 'x', true)); c.strokeStyle = color; c.setLineDash(dash);
      c.beginPath(); c.moveTo(x, u.bbox.top); c.lineTo(x, u.bbox.top + u.bbox.height); c.stroke(); };
    for (const ch of changes) line(ch.t, [6, 4], '#444');
    for (const a of actions) line(a.t, [2, 3], '#2ca02c');
    c.restore(); } } };
}
// Every request: one x per completion, each run's latency where it is its own request.
const xs = []; const ys = DATA.runs.map(() => []);
const all = [];
DATA.runs.forEach((r, i) => r.samples.forEach((s) => { if (s[1] !== null && s[2] >= 200 && s[2] < 300) all.push([s[0] / 1000, i, s[1]]); }));
all.sort((a, b) => a[0] - b[0]);
for (const [t, i, ms] of all) { xs.push(t); ys.forEach((y, k) => y.push(k === i ? ms : null)); }
new uPlot({ width: W, height: 320, plugins: [marks()], scales: { x: { time: false }, y: { distr: 3 } },
  axes: [{ label: 's' }, { label: 'ms' }],
  series: [{ label: 's' }, ...DATA.runs.map((r) => ({ label: r.label, stroke: COLORS[r.label] || '#555', paths: () => null,
    points: { show: true, size: 3, fill: COLORS[r.label] || '#555' } }))] }, [xs, ...ys], document.getElementById('lat'));
const dur = Math.ceil(DATA.report.scenario.duration) + 1;
const secs = Array.from({ length: dur }, (_, i) => i);
function perSecond(pred) { return DATA.runs.map((r) => { const b = new Array(dur).fill(0);
  for (const s of r.samples) if (pred(s)) b[Math.min(dur - 1, Math.floor(s[0] / 1000))]++; return b; }); }
const seriesOf = () => [{ label: 's' }, ...DATA.runs.map((r) => ({ label: r.label, stroke: COLORS[r.label] || '#555', width: 1.5 }))];
new uPlot({ width: W, height: 220, plugins: [marks()], scales: { x: { time: false } }, axes: [{ label: 's' }, { label: 'req/s' }],
  series: seriesOf() }, [secs, ...perSecond((s) => s[2] >= 200 && s[2] < 300)], document.getElementById('rps'));
new uPlot({ width: W, height: 160, plugins: [marks()], scales: { x: { time: false } }, axes: [{ label: 's' }, { label: 'errors/s' }],
  series: seriesOf() }, [secs, ...perSecond((s) => !(s[2] >= 200 && s[2] < 300))], document.getElementById('err'));
const ol = document.getElementById('changes');
for (const ch of changes) { const li = document.createElement('li'); li.textContent = (ch.t / 1000).toFixed(1) + ' s: ' + ch.route + ', ' + ch.straddled + ' requests in flight across it' + (ch.reason ? ' (' + ch.reason + ')' : ''); ol.append(li); }
</script>
</body></html>
`;
}
