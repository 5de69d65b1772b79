import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CleaveError } from '../../errors.js';
import { checkCuts } from '../../graph/cuts.js';
import { resolveInputs } from '../../graph/shapes.js';
import { extractSegment } from '../../graph/segment.js';
import { analyze } from '../../runtime/local/analysis.js';
import { parseIntList } from '../args.js';
import { fmtBytes } from '../format.js';
import { loadModel, shapeMap, valueMap } from '../model-ref.js';

const splitHelp = `cleave split MODEL --cuts i,j,... --out DIR [--shape NAME=DIMS ...] [--value NAME=N ...]

Writes one standalone ONNX model per segment (segment-0.onnx, segment-1.onnx, ...) and manifest.json:
each segment's node range, input and output tensors (names, dtypes, dims, bytes). Cuts are positions
in the execution order that 'cleave inspect --cuts' lists (1 .. nodes-1).`;

export async function splitCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      cuts: { type: 'string' },
      out: { type: 'string' },
      shape: { type: 'string', multiple: true },
      value: { type: 'string', multiple: true },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help || positionals.length !== 1) {
    process.stdout.write(`${splitHelp}\n`);
    return values.help ? 0 : 2;
  }
  if (!values.cuts) throw new CleaveError('E_BAD_INPUT', '--cuts is required (e.g. --cuts 10,40)');
  if (!values.out) throw new CleaveError('E_BAD_INPUT', '--out DIR is required');
  const model = loadModel(positionals[0]);
  const cuts = checkCuts(model, parseIntList('--cuts', values.cuts));
  const a = await analyze(model, resolveInputs(model, shapeMap(values.shape), valueMap(values.value)));
  for (const c of cuts) {
    const why = a.cuts[c].blocked?.why;
    if (why) throw new CleaveError('E_BAD_CUT', `--cuts: cut ${c} cannot be a split: ${why}`);
  }
  const bounds = [0, ...cuts, model.nodes.length];
  const fronts = a.cuts.map((c) => c.tensors);
  mkdirSync(values.out, { recursive: true });
  const describe = (t: string): object => ({ name: t, ...a.types.get(t) });
  const segments = [];
  for (let i = 0; i + 1 < bounds.length; i++) {
    const seg = extractSegment(model, bounds[i], bounds[i + 1], { fronts, types: a.types });
    const file = `segment-${i}.onnx`;
    writeFileSync(join(values.out, file), seg.bytes);
    segments.push({
      index: i,
      file,
      start: seg.start,
      end: seg.end,
      bytes: seg.bytes.byteLength,
      inputs: seg.inputs.map(describe),
      outputs: seg.outputs.map(describe),
    });
    process.stdout.write(
      `${file}  nodes ${seg.start}-${seg.end - 1}  ${fmtBytes(seg.bytes.byteLength)}  in ${seg.inputs.length} tensor(s)  out ${seg.outputs.length} tensor(s) ${fmtBytes(a.cuts[seg.end].bytes)}\n`,
    );
  }
  const manifest = {
    format: 'cleave-split/1',
    model: { source: model.source, name: model.name, sha256: model.sha256 },
    cuts,
    segments,
  };
  writeFileSync(join(values.out, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  process.stdout.write(`wrote ${segments.length} segments and manifest.json to ${values.out}\n`);
  return 0;
}
