import { parseArgs } from 'node:util';
import type { Granularity } from '../../graph/cuts.js';
import { kerasSingleTensorSplits } from '../../graph/keras.js';
import { resolveInputs, shapeDisagreements } from '../../graph/shapes.js';
import { analyze, type Analysis } from '../../runtime/local/analysis.js';
import { parseBytes, parseIntFlag } from '../args.js';
import { fmtBytes, fmtInt, table } from '../format.js';
import { loadModel, shapeMap, valueMap } from '../model-ref.js';

const inspectHelp = `cleave inspect MODEL [--shape NAME=1x3x224x224 ...] [--value NAME=N ...] [--max-tensors K] [--max-bytes B] [--json]

Reads an ONNX model (a file, or a zoo name such as resnet50 or mobilenetv2-small), measures every
tensor for the given input shapes (one ONNX Runtime run), and prints its inputs, outputs, node and
parameter counts, every cut with its frontier tensors and bytes, and the blocks the granularity selects.

  --shape NAME=DIMS   concrete shape for an input with symbolic dimensions (a leading one defaults to 1)
  --value NAME=N      every element of that input in the measuring run (default: floats random in [0, 1),
                      other types 0), for an input whose value steers the model: a sample rate an If tests
  --max-tensors K     blocks only at cuts with at most K frontier tensors (default: every node boundary)
  --max-bytes B       blocks only at cuts with at most B frontier bytes (e.g. 2MB)
  --json              machine-readable output
  --cuts              list every cut (default: only the block table and a summary)`;

export const granularityOptions = {
  'max-tensors': { type: 'string' },
  'max-bytes': { type: 'string' },
} as const;

export function granularityFrom(v: { 'max-tensors'?: string; 'max-bytes'?: string }): Granularity {
  return {
    maxTensors: v['max-tensors'] !== undefined ? parseIntFlag('--max-tensors', v['max-tensors'], 1) : undefined,
    maxBytes: v['max-bytes'] !== undefined ? parseBytes('--max-bytes', v['max-bytes']) : undefined,
  };
}

interface CutCounts {
  inner: number;
  single: number;
  multi: number;
  scissionKeras?: { layers: number; splits: number };
}

export function countCuts(a: Analysis): CutCounts {
  const inner = a.cuts.slice(1, -1);
  const single = inner.filter((c) => c.tensors.length === 1).length;
  return { inner: inner.length, single, multi: inner.length - single, scissionKeras: kerasSingleTensorSplits(a.model) };
}

export async function inspectCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      shape: { type: 'string', multiple: true },
      value: { type: 'string', multiple: true },
      json: { type: 'boolean' },
      cuts: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
      ...granularityOptions,
    },
  });
  if (values.help || positionals.length !== 1) {
    process.stdout.write(`${inspectHelp}\n`);
    return values.help ? 0 : 2;
  }
  const model = loadModel(positionals[0]);
  const inputs = resolveInputs(model, shapeMap(values.shape), valueMap(values.value));
  const a = await analyze(model, inputs, granularityFrom(values));
  const counts = countCuts(a);
  const disagree = shapeDisagreements(model, a.types);
  const tensor = (t: string): { name: string; dtype: string; dims: readonly number[]; bytes: number } => {
    const ty = a.types.get(t);
    return { name: t, dtype: ty?.dtype ?? '?', dims: ty?.dims ?? [], bytes: ty?.bytes ?? 0 };
  };
  if (values.json) {
    process.stdout.write(
      `${JSON.stringify({
        model: model.source,
        name: model.name,
        sha256: model.sha256,
        fileBytes: model.bytes.byteLength,
        opset: model.opset,
        inputs: model.inputs.map((i) => tensor(i.name)),
        outputs: model.outputs.map((o) => tensor(o.name)),
        nodes: model.nodeCount,
        computeNodes: model.nodes.length,
        parameters: model.parameterCount,
        weightBytes: model.weightBytes,
        cutCounts: counts,
        // Shapes the file declares that differ from what runs (Cleave uses what runs).
        shapeDisagreements: disagree,
        cuts: a.cuts.map((c) => ({
          index: c.index,
          tensors: c.tensors,
          bytes: c.bytes,
          ...(c.blocked ? { blocked: c.blocked.why } : {}),
        })),
        blocks: a.blocks.map((b) => ({
          index: b.index,
          start: b.start,
          end: b.end,
          nodes: b.end - b.start,
          name: b.name,
          weightBytes: b.weightBytes,
          frontierTensors: b.after.tensors.length,
          frontierBytes: b.after.bytes,
        })),
      })}\n`,
    );
    return 0;
  }
  const io = (t: string): string => {
    const x = tensor(t);
    return `${x.name} ${x.dtype} [${x.dims.join(',')}] ${fmtBytes(x.bytes)}`;
  };
  const out: string[] = [];
  out.push(`model    ${model.source}`);
  out.push(
    `name     ${model.name}   opset ${model.opset}   sha256 ${model.sha256.slice(0, 16)}…   file ${fmtBytes(model.bytes.byteLength)}`,
  );
  out.push(`inputs   ${model.inputs.map((i) => io(i.name)).join('; ')}`);
  out.push(`outputs  ${model.outputs.map((o) => io(o.name)).join('; ')}`);
  out.push(
    `nodes    ${fmtInt(model.nodeCount)} (${fmtInt(model.nodes.length)} compute, ${fmtInt(model.nodeCount - model.nodes.length)} constant)`,
  );
  out.push(`params   ${fmtInt(model.parameterCount)} (${fmtBytes(model.weightBytes)})`);
  out.push(
    `cuts     ${fmtInt(counts.inner)} inner: ${fmtInt(counts.single)} single-tensor (Scission's rule), ${fmtInt(counts.multi)} multi-tensor` +
      (counts.scissionKeras
        ? `; Scission's rule on the Keras model (${counts.scissionKeras.layers} layers): ${counts.scissionKeras.splits}`
        : ''),
  );
  if (disagree.length > 0) {
    const d = disagree[0];
    out.push(
      `shapes   ${fmtInt(disagree.length)} declared in the file differ from what runs, which is what Cleave uses (first: '${d.name}' declared [${d.declared.join(',')}], runs [${d.measured.join(',')}])`,
    );
  }
  const blocked = a.cuts.slice(1, -1).filter((c) => c.blocked);
  if (blocked.length > 0)
    out.push(
      `         ${fmtInt(blocked.length)} of them cannot be a split: a value there cannot travel between hosts (first, cut ${blocked[0].index}: ${blocked[0].blocked!.why})`,
    );
  out.push(`blocks   ${a.blocks.length}`);
  out.push('');
  out.push(
    table(
      ['block', 'nodes', 'weights', 'frontier after', 'name'],
      a.blocks.map((b) => [
        b.index,
        `${b.start}-${b.end - 1}`,
        fmtBytes(b.weightBytes),
        `${b.after.tensors.length} / ${fmtBytes(b.after.bytes)}`,
        b.name,
      ]),
    ),
  );
  if (values.cuts) {
    out.push('');
    out.push(
      table(
        ['cut', 'tensors', 'bytes', 'frontier'],
        a.cuts.map((c) => [
          c.index,
          c.tensors.length,
          fmtBytes(c.bytes),
          c.tensors.join(' ') + (c.blocked ? `  (no split: ${c.blocked.why})` : ''),
        ]),
      ),
    );
  }
  process.stdout.write(`${out.join('\n')}\n`);
  return 0;
}
