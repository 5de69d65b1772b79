/**
 * The best plan as one self-contained SVG (no scripts, no external resources), in the spirit of Scission's
 * bar chart: every block's time on the host that runs it, coloured by tier, with the transfers between
 * stages (and the result's return) as hatched bars, on a log scale; and under it, the frontier size after
 * every block along the model, with the cuts the plan uses marked. Hover a bar for its numbers.
 */
import { fmtBytes } from './format.js';
import type { Plan, PlanInput } from './types.js';

const W = 1000;
const LEFT = 90;
const RIGHT = 20;
const PLOT_W = W - LEFT - RIGHT;
const TOP1 = 70;
const H1 = 240;
const TOP2 = TOP1 + H1 + 60;
const H2 = 130;
const HEIGHT = TOP2 + H2 + 70;
const TRANSFER = '#e6b800';

export interface SvgOptions {
  readonly title?: string;
  /** Block names for tooltips (from the profile). */
  readonly blockNames?: readonly string[];
}

function esc(s: string): string {
  return s.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string,
  );
}

function num(x: number): string {
  return String(Math.round(x * 100) / 100);
}

/** Tier colours: Scission's red, green, blue for device, edge, cloud; a wider palette for longer chains. */
function tierColour(i: number, count: number): string {
  if (count <= 3) return ['#d62728', '#2ca02c', '#1f77b4'][i] ?? '#7f7f7f';
  return ['#d62728', '#ff7f0e', '#2ca02c', '#9467bd', '#1f77b4', '#8c564b', '#e377c2', '#17becf'][i % 8];
}

/** A log10 axis from the data's range (whole decades). */
function logAxis(
  values: number[],
  floor: number,
): { lo: number; hi: number; y: (v: number, top: number, h: number) => number } {
  const pos = values.filter((v) => v > 0);
  const min = pos.reduce((a, b) => Math.min(a, b), Infinity);
  const max = pos.reduce((a, b) => Math.max(a, b), floor * 10);
  // One decade below the smallest value, so that the smallest bar still shows.
  const lo = Math.ceil(Math.log10(Math.max(floor, min === Infinity ? floor : min))) - 1;
  const hi = Math.max(lo + 1, Math.ceil(Math.log10(max)));
  return { lo, hi, y: (v, top, h) => top + h - ((Math.log10(Math.max(v, 10 ** lo)) - lo) / (hi - lo)) * h };
}

export function planSvg(input: PlanInput, plan: Plan, opts: SvgOptions = {}): string {
  const n = input.frontierBytes.length;
  const tiers = input.tiers;
  const times = new Map(input.hosts.map((h) => [h.name, h.blockMs]));
  const names = opts.blockNames;
  // The sequence along the x axis: blocks of each stage, with a transfer before each non-origin stage
  // and the result's return at the end.
  type Item =
    | { kind: 'block'; k: number; ms: number; tier: string; host: string }
    | { kind: 'hop'; ms: number; bytes: number; from: string; to: string; ret: boolean };
  const items: Item[] = [];
  const forward = plan.hops.filter((h) => h.kind === 'forward');
  let hi = 0;
  for (const s of plan.stages) {
    if (s.host !== plan.origin || s.start > 0) {
      const h = forward[hi++];
      if (h) items.push({ kind: 'hop', ms: h.ms, bytes: h.bytes, from: h.from, to: h.to, ret: false });
    }
    const bt = times.get(s.host) ?? [];
    for (let k = s.start; k < s.end; k++) items.push({ kind: 'block', k, ms: bt[k] ?? 0, tier: s.tier, host: s.host });
  }
  for (const h of plan.hops)
    if (h.kind === 'return') items.push({ kind: 'hop', ms: h.ms, bytes: h.bytes, from: h.from, to: h.to, ret: true });

  const bw = PLOT_W / Math.max(items.length, 1);
  const ax1 = logAxis(
    items.map((i) => i.ms),
    1e-3,
  );
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${HEIGHT}" viewBox="0 0 ${W} ${HEIGHT}" font-family="sans-serif" font-size="12">`,
  );
  out.push(
    '<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#fff3bf"/><line x1="0" y1="0" x2="0" y2="6" stroke="' +
      TRANSFER +
      '" stroke-width="3"/></pattern></defs>',
  );
  out.push(`<rect width="${W}" height="${HEIGHT}" fill="white"/>`);
  const rps = Number.isFinite(plan.throughputRps) ? `${plan.throughputRps.toFixed(1)} req/s` : 'unbounded';
  out.push(`<text x="${LEFT}" y="24" font-size="16" font-weight="bold">${esc(opts.title ?? 'Cleave plan')}</text>`);
  out.push(
    `<text x="${LEFT}" y="44">${esc(`latency ${plan.latencyMs.toFixed(2)} ms (compute ${plan.computeMs.toFixed(2)}, transfer ${plan.transferMs.toFixed(2)}), throughput <= ${rps}, ${fmtBytes(plan.bytesTransferred)} over the links`)}</text>`,
  );

  // Panel 1: time per block and per transfer (log scale).
  for (let d = ax1.lo; d <= ax1.hi; d++) {
    const y = ax1.y(10 ** d, TOP1, H1);
    out.push(`<line x1="${LEFT}" x2="${W - RIGHT}" y1="${num(y)}" y2="${num(y)}" stroke="#ddd"/>`);
    out.push(`<text x="${LEFT - 6}" y="${num(y + 4)}" text-anchor="end">${esc(fmtAxisMs(10 ** d))}</text>`);
  }
  out.push(
    `<text x="14" y="${TOP1 + H1 / 2}" transform="rotate(-90 14 ${TOP1 + H1 / 2})" text-anchor="middle">time (ms, log)</text>`,
  );
  items.forEach((it, i) => {
    const x = LEFT + i * bw;
    const y = ax1.y(it.ms, TOP1, H1);
    const h = TOP1 + H1 - y;
    const w = Math.max(bw - (bw > 3 ? 1 : 0), 0.5);
    if (it.kind === 'block') {
      const label = `block ${it.k}${names?.[it.k] ? ` ${names[it.k]}` : ''} on ${it.host} (${it.tier}): ${it.ms.toFixed(3)} ms`;
      out.push(
        `<rect x="${num(x)}" y="${num(y)}" width="${num(w)}" height="${num(h)}" fill="${tierColour(tiers.indexOf(it.tier), tiers.length)}"><title>${esc(label)}</title></rect>`,
      );
    } else {
      const label = `${it.ret ? 'result ' : ''}${it.from} -> ${it.to}: ${fmtBytes(it.bytes)}, ${it.ms.toFixed(3)} ms`;
      out.push(
        `<rect x="${num(x)}" y="${num(y)}" width="${num(Math.max(w, 2))}" height="${num(h)}" fill="url(#hatch)" stroke="${TRANSFER}"><title>${esc(label)}</title></rect>`,
      );
    }
  });
  out.push(`<line x1="${LEFT}" x2="${W - RIGHT}" y1="${TOP1 + H1}" y2="${TOP1 + H1}" stroke="#333"/>`);

  // Panel 2: frontier bytes after each block, at the block's x position.
  // The frontier after block k sits at the block's right edge: where the cut is.
  const xOfBlock = new Map<number, number>();
  items.forEach((it, i) => {
    if (it.kind === 'block') xOfBlock.set(it.k, LEFT + (i + 1) * bw);
  });
  const ax2 = logAxis([...input.frontierBytes, input.inputBytes], 1);
  for (let d = ax2.lo; d <= ax2.hi; d++) {
    const y = ax2.y(10 ** d, TOP2, H2);
    out.push(`<line x1="${LEFT}" x2="${W - RIGHT}" y1="${num(y)}" y2="${num(y)}" stroke="#eee"/>`);
    out.push(`<text x="${LEFT - 6}" y="${num(y + 4)}" text-anchor="end">${esc(fmtBytes(10 ** d))}</text>`);
  }
  out.push(
    `<text x="14" y="${TOP2 + H2 / 2}" transform="rotate(-90 14 ${TOP2 + H2 / 2})" text-anchor="middle">frontier (log)</text>`,
  );
  const pts: string[] = [];
  for (let k = 0; k < n; k++) {
    const x = xOfBlock.get(k);
    if (x !== undefined) pts.push(`${num(x)},${num(ax2.y(input.frontierBytes[k], TOP2, H2))}`);
  }
  out.push(`<polyline points="${pts.join(' ')}" fill="none" stroke="#555" stroke-width="1.5"/>`);
  for (const s of plan.stages) {
    if (s.end >= n) continue;
    const x = xOfBlock.get(s.end - 1);
    if (x === undefined) continue;
    const y = ax2.y(input.frontierBytes[s.end - 1], TOP2, H2);
    out.push(
      `<line x1="${num(x)}" x2="${num(x)}" y1="${TOP1}" y2="${TOP2 + H2}" stroke="#333" stroke-dasharray="4 3"/>`,
    );
    out.push(
      `<circle cx="${num(x)}" cy="${num(y)}" r="4" fill="${TRANSFER}" stroke="#333"><title>${esc(`cut after block ${s.end - 1}: ${fmtBytes(input.frontierBytes[s.end - 1])}`)}</title></circle>`,
    );
    out.push(`<text x="${num(x + 5)}" y="${num(y - 6)}">${esc(fmtBytes(input.frontierBytes[s.end - 1]))}</text>`);
  }
  out.push(`<line x1="${LEFT}" x2="${W - RIGHT}" y1="${TOP2 + H2}" y2="${TOP2 + H2}" stroke="#333"/>`);
  out.push(
    `<text x="${LEFT + PLOT_W / 2}" y="${TOP2 + H2 + 20}" text-anchor="middle">blocks in execution order (0 - ${n - 1}), transfers where the plan cuts</text>`,
  );

  // Legend.
  let lx = LEFT;
  const ly = HEIGHT - 22;
  const used = tiers.filter((t) => plan.stages.some((s) => s.tier === t));
  for (const t of used) {
    const stage = plan.stages
      .filter((s) => s.tier === t)
      .map((s) => `${s.host} ${s.start}-${s.end - 1}`)
      .join(', ');
    const label = `${t}: ${stage}`;
    out.push(
      `<rect x="${lx}" y="${ly - 10}" width="12" height="12" fill="${tierColour(tiers.indexOf(t), tiers.length)}"/><text x="${lx + 16}" y="${ly}">${esc(label)}</text>`,
    );
    lx += 16 + label.length * 6.5 + 14;
  }
  out.push(
    `<rect x="${lx}" y="${ly - 10}" width="12" height="12" fill="url(#hatch)" stroke="${TRANSFER}"/><text x="${lx + 16}" y="${ly}">transfer</text>`,
  );
  out.push('</svg>');
  return out.join('\n');
}

function fmtAxisMs(ms: number): string {
  return ms >= 1000 ? `${ms / 1000} s` : `${+ms.toPrecision(3)} ms`;
}
