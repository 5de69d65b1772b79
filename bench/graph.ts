/**
 * `npm run bench -- graph`: how long the graph layer's two user-facing jobs take on full-size models, as a
 * reference for later work. For ResNet50 and DenseNet121 (the DAG-heavy one: 430 compute nodes):
 *   inspect: read the file, parse it, resolve input shapes, analyze (one ORT run with every intermediate
 *            exposed, then cuts, frontier bytes and blocks) and count cuts, i.e. `cleave inspect` minus
 *            process start and printing; median of --runs runs (default 3).
 *   verify:  `cleave verify`'s work with its defaults (every block boundary chained, 8 random multi-cut
 *            splits); one run.
 * Models are built into the zoo cache ($CLEAVE_CACHE or ~/.cache/cleave, as `cleave inspect resnet50`
 * would) when missing; building is timed separately and not counted.
 *
 * ratio = the larger verify / inspect time of the two models. There is no competing implementation to
 * compare with yet, so the goal is a generous bound stated up front: verify within 30x inspect (it runs
 * the model ~10 more times and creates one ORT session per block). A regression in segment extraction or
 * per-segment session creation shows up as that ratio growing.
 *
 * Options: --runs N (inspect repeats, default 3), --models a,b (default resnet50,densenet121).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { countCuts } from '../src/cli/commands/inspect.js';
import { buildZooFile, cacheDir } from '../src/cli/model-ref.js';
import { OnnxModel } from '../src/graph/model.js';
import { resolveInputs } from '../src/graph/shapes.js';
import { analyze } from '../src/runtime/local/analysis.js';
import { verifyModel } from '../src/runtime/local/verify.js';

const GOAL_RATIO = 30;

const arg = (name: string, def: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : def;
};
const RUNS = Math.max(1, Number(arg('runs', '3')) || 3);
const MODELS = arg('models', 'resnet50,densenet121').split(',');

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return (s[(s.length - 1) >> 1] + s[s.length >> 1]) / 2;
};
const round = (x: number, digits = 3): number => +x.toFixed(digits);

interface Figures {
  model: string;
  fileBytes: number;
  computeNodes: number;
  cuts: { inner: number; single: number; multi: number };
  buildSeconds: number | null;
  inspectSeconds: number[];
  inspectMedianSeconds: number;
  /** Of the inspect median: reading and parsing the file only. */
  loadMedianSeconds: number;
  verifySeconds: number;
  verifySegmentsRun: number;
  verifyPass: boolean;
  verifyWorstAbs: number;
  verifyOverInspect: number;
}

async function bench(name: string): Promise<Figures> {
  const file = join(cacheDir(), 'zoo', `${name}.onnx`);
  let buildSeconds: number | null = null;
  if (!existsSync(file)) {
    const t = performance.now();
    buildZooFile(name, false, file);
    buildSeconds = (performance.now() - t) / 1000;
    console.log(`${name}: built ${file} in ${buildSeconds.toFixed(1)} s`);
  }

  const inspect: number[] = [];
  const loads: number[] = [];
  let model: OnnxModel | undefined;
  let counts: ReturnType<typeof countCuts> | undefined;
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    model = OnnxModel.fromBytes(readFileSync(file), file);
    const t1 = performance.now();
    const a = await analyze(model, resolveInputs(model));
    counts = countCuts(a);
    const t2 = performance.now();
    loads.push((t1 - t0) / 1000);
    inspect.push((t2 - t0) / 1000);
  }
  if (!model || !counts) throw new Error('no inspect run');

  const t = performance.now();
  const r = await verifyModel(model, resolveInputs(model));
  const verifySeconds = (performance.now() - t) / 1000;

  const inspectMedian = median(inspect);
  const f: Figures = {
    model: name,
    fileBytes: statSync(file).size,
    computeNodes: model.nodes.length,
    cuts: { inner: counts.inner, single: counts.single, multi: counts.multi },
    buildSeconds: buildSeconds === null ? null : round(buildSeconds, 1),
    inspectSeconds: inspect.map((x) => round(x)),
    inspectMedianSeconds: round(inspectMedian),
    loadMedianSeconds: round(median(loads)),
    verifySeconds: round(verifySeconds, 2),
    verifySegmentsRun: r.segmentsRun,
    verifyPass: r.pass,
    verifyWorstAbs: r.worstAbs,
    verifyOverInspect: round(verifySeconds / inspectMedian, 2),
  };
  console.log(
    `${name}: ${f.computeNodes} nodes, ${(f.fileBytes / 1e6).toFixed(1)} MB; inspect ${f.inspectMedianSeconds} s median of ${RUNS} ` +
      `(load ${f.loadMedianSeconds} s); verify ${f.verifySeconds} s (${f.verifySegmentsRun} segments, ${r.pass ? 'pass' : 'FAIL'}); ` +
      `verify/inspect ${f.verifyOverInspect}`,
  );
  return f;
}

const results: Figures[] = [];
for (const m of MODELS) results.push(await bench(m));
const ratio = Math.max(...results.map((r) => r.verifyOverInspect));
console.log(
  JSON.stringify({
    name: 'graph',
    figures: { runs: RUNS, models: results },
    ratio,
    goal: `verify time within ${GOAL_RATIO}x inspect time (load + analyze) on each model, and verify passes; a generous reference bound, not a target (ratio = worst verify/inspect)`,
    pass: ratio <= GOAL_RATIO && results.every((r) => r.verifyPass),
  }),
);
