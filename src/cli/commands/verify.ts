import { parseArgs } from 'node:util';
import { resolveInputs } from '../../graph/shapes.js';
import { verifyModel, VERIFY_DEFAULTS } from '../../runtime/local/verify.js';
import { parseFloatFlag, parseIntFlag } from '../args.js';
import { loadModel, shapeMap, valueMap } from '../model-ref.js';
import { granularityFrom, granularityOptions } from './inspect.js';

const verifyHelp = `cleave verify MODEL [--shape NAME=DIMS ...] [--value NAME=N ...] [--json] [--atol A] [--rtol R] [--combos N] [--exhaustive]
                    [--max-tensors K] [--max-bytes B]

Runs the whole model, then the model split at every block boundary, chained segment by segment (each
segment's outputs are compared with the same tensors in an unsplit run), then N random splits at 1-3
cuts chained end to end. Passes when every element of the model's outputs satisfies
|got - want| <= atol + rtol*|want|, and every intermediate frontier tensor does so with atol scaled by
max(1, the tensor's largest magnitude) (fused whole-model kernels round differently from split ones).
Exits 1 on any mismatch.

  --atol A        absolute tolerance (default ${VERIFY_DEFAULTS.atol})
  --rtol R        relative tolerance (default ${VERIFY_DEFAULTS.rtol})
  --combos N      random multi-cut splits (default ${VERIFY_DEFAULTS.combos})
  --exhaustive    also split at each cut alone (two segments per cut)
  --json          machine-readable result`;

export async function verifyCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      shape: { type: 'string', multiple: true },
      value: { type: 'string', multiple: true },
      json: { type: 'boolean' },
      atol: { type: 'string' },
      rtol: { type: 'string' },
      combos: { type: 'string' },
      exhaustive: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
      ...granularityOptions,
    },
  });
  if (values.help || positionals.length !== 1) {
    process.stdout.write(`${verifyHelp}\n`);
    return values.help ? 0 : 2;
  }
  const model = loadModel(positionals[0]);
  const inputs = resolveInputs(model, shapeMap(values.shape), valueMap(values.value));
  const tty = process.stderr.isTTY && !values.json;
  const started = Date.now();
  const r = await verifyModel(model, inputs, {
    granularity: granularityFrom(values),
    atol: values.atol !== undefined ? parseFloatFlag('--atol', values.atol) : undefined,
    rtol: values.rtol !== undefined ? parseFloatFlag('--rtol', values.rtol) : undefined,
    combos: values.combos !== undefined ? parseIntFlag('--combos', values.combos) : undefined,
    exhaustive: values.exhaustive,
    onProgress: tty ? (done, total) => process.stderr.write(`\rverifying: segment ${done}/${total}`) : undefined,
  });
  if (tty) process.stderr.write('\n');
  const seconds = (Date.now() - started) / 1000;
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ ...r, seconds })}\n`);
  } else {
    process.stdout.write(
      `${r.pass ? 'PASS' : 'FAIL'}  ${r.model}: ${r.cuts} cuts, ${r.splitsChecked} splits, ${r.segmentsRun} segments run in ${seconds.toFixed(1)} s; ` +
        `outputs: worst abs error ${r.worstAbs.toExponential(2)}, worst rel error ${r.worstRel.toExponential(2)} (atol ${r.atol}, rtol ${r.rtol}); ` +
        `intermediates: worst error ${r.worstIntermediateScaled.toExponential(2)} of tensor scale\n`,
    );
    for (const m of r.mismatches)
      process.stdout.write(`  mismatch: ${m.split}: tensor '${m.tensor}' max abs error ${m.maxAbs}\n`);
  }
  return r.pass ? 0 : 1;
}
