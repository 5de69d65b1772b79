/**
 * Plans as text, in the spirit of Scission's output:
 *   9.0106s - 2.4087MB - Device(raspi4) = 0 - 6, Edge(vm2Core) = 7 - 11, Cloud(6700k(GPU)) = 12 - 25
 * (seconds end to end, MB over all links, then each tier's host and its blocks, inclusive), followed by
 * the throughput bound and the bytes and time of each link.
 */
import type { Plan, PlanResult } from './types.js';

function round4(x: number): string {
  return String(Math.round(x * 1e4) / 1e4);
}

function cap(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

export function fmtBytes(n: number): string {
  if (n < 1000) return `${n} B`;
  if (n < 1e6) return `${(n / 1e3).toFixed(1)} kB`;
  if (n < 1e9) return `${(n / 1e6).toFixed(2)} MB`;
  return `${(n / 1e9).toFixed(2)} GB`;
}

function fmtMs(ms: number): string {
  return ms >= 100 ? ms.toFixed(1) : ms >= 1 ? ms.toFixed(2) : ms.toFixed(3);
}

/** Scission's one-line form. */
export function formatPlan(plan: Plan): string {
  const parts: string[] = [];
  if (plan.stages[0]?.host !== plan.origin) parts.push(`${cap(plan.originTier)}(${plan.origin}) = none`);
  for (const s of plan.stages) parts.push(`${cap(s.tier)}(${s.host}) = ${s.start} - ${s.end - 1}`);
  return `${round4(plan.latencyMs / 1000)}s - ${round4(plan.bytesTransferred / 1e6)}MB - ${parts.join(', ')}`;
}

/** The slowest stage or link of a plan, in words. */
function bottleneckOf(plan: Plan): string {
  let best = `stage ${plan.stages[0]?.host ?? ''}`;
  let v = -1;
  for (const s of plan.stages) {
    if (s.computeMs > v) {
      v = s.computeMs;
      best = `${s.host} computing blocks ${s.start}-${s.end - 1}`;
    }
  }
  for (const h of plan.hops) {
    if (h.busyMs > v) {
      v = h.busyMs;
      best = `link ${h.from} -> ${h.to}`;
    }
  }
  return best;
}

function details(plan: Plan): string[] {
  const rps = Number.isFinite(plan.throughputRps) ? `${plan.throughputRps.toFixed(1)} req/s` : 'unbounded';
  const lines = [
    `latency ${fmtMs(plan.latencyMs)} ms = compute ${fmtMs(plan.computeMs)} + transfer ${fmtMs(plan.transferMs)}; throughput <= ${rps} (bottleneck ${fmtMs(plan.bottleneckMs)} ms: ${bottleneckOf(plan)})`,
  ];
  if (plan.hops.length > 0) {
    lines.push(
      plan.hops
        .map(
          (h) =>
            `${h.from} -> ${h.to} ${fmtBytes(h.bytes)}${h.codec !== 'raw' ? ` (${h.codec}, ${fmtBytes(h.rawBytes)} raw)` : ''} ${fmtMs(h.ms)} ms${h.kind === 'return' ? ' (result)' : ''}`,
        )
        .join(', '),
    );
  } else {
    lines.push('no transfers: the origin runs every block');
  }
  return lines;
}

export function formatResult(result: PlanResult, opts: { readonly title?: string } = {}): string {
  const out: string[] = [];
  const what = result.objective === 'latency' ? 'lowest latency' : 'highest throughput (then lowest latency)';
  out.push(
    `${opts.title ? `${opts.title}: ` : ''}${result.plans.length} best plan${result.plans.length === 1 ? '' : 's'} by ${what}; cost model ${result.costModel}, raw input ${fmtBytes(result.inputBytes)}, ${result.search === 'dp' ? 'exact DP' : result.search}`,
  );
  result.plans.forEach((p, i) => {
    out.push(`[${i + 1}] ${formatPlan(p)}`);
    for (const l of details(p)) out.push(`    ${l}`);
  });
  if (result.pareto) {
    out.push(
      '',
      `Pareto set (no plan is better on all of latency, bytes leaving the device, device compute): ${result.pareto.length} plan${result.pareto.length === 1 ? '' : 's'}`,
    );
    for (const p of result.pareto) {
      out.push(
        `  ${fmtMs(p.latencyMs)} ms, ${fmtBytes(p.deviceBytesOut)} out, device ${fmtMs(p.deviceComputeMs)} ms - ${formatPlan(p)}`,
      );
    }
  }
  return out.join('\n');
}
