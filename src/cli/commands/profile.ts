import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { CleaveError } from '../../errors.js';
import { resolveInputs } from '../../graph/shapes.js';
import { analyze } from '../../runtime/local/analysis.js';
import { checkSegments, profileModel, PROFILE_DEFAULTS } from '../../runtime/local/profiler.js';
import { parseFloatFlag, parseIntFlag } from '../args.js';
import { applyCpuQuota, leaveCgroup } from '../../runtime/process/cgroup.js';
import { fmtBytes } from '../format.js';
import { loadModel, shapeMap, valueMap } from '../model-ref.js';
import { granularityFrom, granularityOptions } from './inspect.js';

const profileHelp = `cleave profile MODEL --tier device|edge|cloud --host NAME [--repeats N] [--warmup N] [--threads N]
                     [--chunks K] [--cpus C] [--out FILE] [--shape NAME=DIMS ...] [--value NAME=N ...] [--max-tensors K] [--max-bytes B] [--check N]

Benchmarks every block of MODEL on this machine, each as its own ONNX Runtime session (warm-up, then N
timed runs: median and p90), times the whole model, and writes the profile JSON (format
cleave-profile/1, see README) that 'cleave plan' reads. Block times are calibrated against K contiguous
chunks of the model, each timed as one fused session, and sum to the whole model's time (see README).
--check N then times N random multi-block segments as single fused sessions and prints predicted
versus measured.

  --repeats N   timed runs per block (default ${PROFILE_DEFAULTS.repeats})
  --warmup N    untimed runs first (default ${PROFILE_DEFAULTS.warmup})
  --threads N   ORT intra-op threads (default 0: ORT decides)
  --chunks K    calibration chunks (default ${PROFILE_DEFAULTS.chunks}; 1: scale all blocks uniformly to the whole model)
  --cpus C      run under a CPU quota of C CPUs (cgroups; Linux as root), a stand-in for a slower machine
  --out FILE    where to write the profile (default: standard output)`;

export async function profileCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      tier: { type: 'string' },
      host: { type: 'string' },
      repeats: { type: 'string' },
      warmup: { type: 'string' },
      threads: { type: 'string' },
      out: { type: 'string' },
      check: { type: 'string' },
      chunks: { type: 'string' },
      cpus: { type: 'string' },
      shape: { type: 'string', multiple: true },
      value: { type: 'string', multiple: true },
      help: { type: 'boolean', short: 'h' },
      ...granularityOptions,
    },
  });
  if (values.help || positionals.length !== 1) {
    process.stdout.write(`${profileHelp}\n`);
    return values.help ? 0 : 2;
  }
  if (!values.tier || !/^[a-z][a-z0-9_-]*$/i.test(values.tier))
    throw new CleaveError('E_BAD_INPUT', '--tier is required: device, edge, cloud (or a tier named in your topology)');
  if (!values.host || !/^[\w.()@:-]+$/.test(values.host))
    throw new CleaveError('E_BAD_INPUT', '--host NAME is required (letters, digits, . _ - ( ) @ :)');
  const repeats = values.repeats !== undefined ? parseIntFlag('--repeats', values.repeats, 1) : undefined;
  const warmup = values.warmup !== undefined ? parseIntFlag('--warmup', values.warmup, 0) : undefined;
  const threads = values.threads !== undefined ? parseIntFlag('--threads', values.threads, 0) : undefined;
  const check = values.check !== undefined ? parseIntFlag('--check', values.check, 0) : 0;
  const chunks = values.chunks !== undefined ? parseIntFlag('--chunks', values.chunks, 1) : undefined;

  let quota: ReturnType<typeof applyCpuQuota> | undefined;
  if (values.cpus !== undefined) {
    const cpus = parseFloatFlag('--cpus', values.cpus);
    quota = applyCpuQuota(process.pid, `profile-${process.pid}`, cpus);
    if (!quota.applied) throw new CleaveError('E_UNSUPPORTED', `--cpus ${cpus}: ${quota.detail}`);
    process.stderr.write(`profiling under a CPU quota of ${cpus} CPUs (${quota.detail})\n`);
  }
  try {
    return await profileWith(positionals[0], values, { repeats, warmup, threads, chunks, check });
  } finally {
    leaveCgroup(quota?.dir);
  }
}

async function profileWith(
  ref: string,
  values: {
    tier?: string;
    host?: string;
    out?: string;
    shape?: string[];
    value?: string[];
    'max-tensors'?: string;
    'max-bytes'?: string;
  },
  o: { repeats?: number; warmup?: number; threads?: number; chunks?: number; check: number },
): Promise<number> {
  const { repeats, warmup, threads, chunks, check } = o;
  if (!values.tier || !values.host) throw new CleaveError('E_INTERNAL', 'tier and host were checked');
  const model = loadModel(ref);
  const a = await analyze(
    model,
    resolveInputs(model, shapeMap(values.shape), valueMap(values.value)),
    granularityFrom(values),
  );
  const tty = process.stderr.isTTY;
  const started = Date.now();
  let lastLine = 0;
  const profile = await profileModel(a, {
    host: values.host,
    tier: values.tier,
    repeats,
    warmup,
    threads,
    chunks,
    onProgress: (done, total) => {
      if (tty) {
        const w = 30;
        const f = Math.round((done / total) * w);
        process.stderr.write(`\rprofiling [${'#'.repeat(f)}${' '.repeat(w - f)}] ${done}/${total} blocks`);
        if (done === total) process.stderr.write('\n');
      } else if (done === total || Date.now() - lastLine > 2000) {
        lastLine = Date.now();
        process.stderr.write(`profiling: ${done}/${total} blocks\n`);
      }
    },
  });
  const seconds = (Date.now() - started) / 1000;
  const json = `${JSON.stringify(profile, null, 2)}\n`;
  if (values.out) writeFileSync(values.out, json);
  else process.stdout.write(json);
  const sum = profile.timings.blocks.reduce((s, b) => s + (b.rawMedianMs ?? 0), 0);
  process.stderr.write(
    `${model.name} on ${values.host} (${values.tier}): ${a.blocks.length} blocks in ${seconds.toFixed(1)} s; whole model ${profile.timings.wholeModelMs.medianMs} ms median, ` +
      `blocks alone sum to ${sum.toFixed(2)} ms, run overhead ${profile.timings.runOverheadMs} ms; input ${fmtBytes(a.inputBytes)}` +
      `${values.out ? `; wrote ${values.out}` : ''}\n`,
  );
  if (check > 0 && a.blocks.length > 1) {
    let s = 12345;
    const rnd = (k: number): number => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) % k;
    const ranges: [number, number][] = [];
    for (let i = 0; i < check; i++) {
      const lo = rnd(a.blocks.length - 1);
      const hi = lo + 1 + rnd(a.blocks.length - lo);
      ranges.push([lo, Math.min(hi, a.blocks.length)]);
    }
    for (const r of await checkSegments(a, profile, ranges, { repeats, warmup, threads })) {
      process.stderr.write(
        `check: blocks ${r.blocks[0]}..${r.blocks[1] - 1}: predicted ${r.predictedMs} ms, measured ${r.measuredMs} ms (${(r.error * 100).toFixed(1)}%)\n`,
      );
    }
  }
  return 0;
}
