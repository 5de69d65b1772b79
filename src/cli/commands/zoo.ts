import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CleaveError } from '../../errors.js';
import { ZOO, zooEntry } from '../../graph/zoo/index.js';
import { fmtBytes, fmtInt, table } from '../format.js';
import { buildZooFile } from '../model-ref.js';

const zooHelp = `cleave zoo list
cleave zoo build [NAMES...] [--out DIR] [--small] [--seed N]

Writes architecture-faithful ONNX models of the Keras Applications (seeded deterministic weights;
parameter counts equal Keras's) as DIR/NAME.onnx (default DIR: models). No names builds them all.
--small builds the reduced variants used by the fast tests (NAME-small.onnx).`;

export async function zooCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      out: { type: 'string' },
      small: { type: 'boolean' },
      seed: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [sub, ...names] = positionals;
  if (values.help || (sub !== 'build' && sub !== 'list')) {
    process.stdout.write(`${zooHelp}\n`);
    return values.help ? 0 : 2;
  }
  if (sub === 'list') {
    process.stdout.write(
      `${table(
        ['name', 'keras', 'params', 'input'],
        ZOO.map((e) => [e.name, e.kerasName, fmtInt(e.kerasParams), `${e.inputSize}x${e.inputSize}`]),
      )}\n`,
    );
    return 0;
  }
  const entries =
    names.length === 0
      ? ZOO
      : names.map((n) => {
          const e = zooEntry(n);
          if (!e)
            throw new CleaveError(
              'E_UNKNOWN_MODEL',
              `unknown zoo model '${n}' (known: ${ZOO.map((z) => z.name).join(', ')})`,
            );
          return e;
        });
  const seed = values.seed !== undefined ? Number(values.seed) : 1;
  if (!Number.isInteger(seed)) throw new CleaveError('E_BAD_INPUT', `--seed '${values.seed}': expected an integer`);
  const dir = values.out ?? 'models';
  for (const e of entries) {
    const file = join(dir, `${e.name}${values.small ? '-small' : ''}.onnx`);
    const t0 = Date.now();
    const r = buildZooFile(e.name, values.small ?? false, file, seed);
    process.stdout.write(
      `${file}  ${fmtInt(r.params)} params  ${fmtBytes(r.bytes)}  ${((Date.now() - t0) / 1000).toFixed(1)} s\n`,
    );
  }
  return 0;
}
