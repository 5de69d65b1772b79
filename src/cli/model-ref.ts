/**
 * MODEL arguments: a path to an ONNX file, or a zoo name (`resnet50`, `mobilenetv2-small`) that is built
 * on first use and cached.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { CleaveError } from '../errors.js';
import { inlineExternalData } from '../graph/external-data.js';
import { OnnxModel } from '../graph/model.js';
import { zooEntry, ZOO } from '../graph/zoo/index.js';
import { parseShapeArg, parseValueArg } from '../graph/shapes.js';

/** Where zoo models and cached profiles live: $CLEAVE_CACHE, else ~/.cache/cleave. */
export function cacheDir(): string {
  return process.env.CLEAVE_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'cleave');
}

/** Splits `resnet50-small` into the zoo entry and the variant; undefined when not a zoo name. */
export function parseZooName(ref: string): { name: string; small: boolean } | undefined {
  const small = ref.endsWith('-small');
  const base = small ? ref.slice(0, -'-small'.length) : ref;
  const e = zooEntry(base);
  return e ? { name: e.name, small } : undefined;
}

/** Builds a zoo model into `file` (atomically: a partial file never appears under the final name). */
export function buildZooFile(name: string, small: boolean, file: string, seed = 1): { params: number; bytes: number } {
  const e = zooEntry(name);
  if (!e)
    throw new CleaveError(
      'E_UNKNOWN_MODEL',
      `unknown zoo model '${name}' (known: ${ZOO.map((z) => z.name).join(', ')})`,
    );
  const b = e.build({ small, seed });
  const bytes = b.toBytes();
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, bytes);
  renameSync(tmp, file);
  return { params: b.paramCount, bytes: bytes.byteLength };
}

/** The ONNX file a MODEL argument names, building a zoo model into the cache when needed. */
function resolveModelPath(ref: string): string {
  if (existsSync(ref)) return ref;
  const z = parseZooName(ref);
  if (!z)
    throw new CleaveError(
      'E_BAD_INPUT',
      `model '${ref}': no such file, and not a zoo model (known: ${ZOO.map((e) => e.name).join(', ')}; add -small for the small variant)`,
    );
  const file = join(cacheDir(), 'zoo', `${z.name}${z.small ? '-small' : ''}.onnx`);
  if (!existsSync(file)) buildZooFile(z.name, z.small, file);
  return file;
}

export function loadModel(ref: string): OnnxModel {
  const path = resolveModelPath(ref);
  if (statSync(path).isDirectory())
    throw new CleaveError('E_BAD_INPUT', `model '${ref}' is a directory, not an ONNX file`);
  return OnnxModel.fromBytes(inlineExternalData(readFileSync(path), path), path);
}

export function shapeMap(args: readonly string[] | undefined): Map<string, number[]> {
  const m = new Map<string, number[]>();
  for (const a of args ?? []) {
    const { name, dims } = parseShapeArg(a);
    m.set(name, dims);
  }
  return m;
}

/** `--value NAME=NUMBER` arguments as a map. */
export function valueMap(args: readonly string[] | undefined): Map<string, number> {
  const m = new Map<string, number>();
  for (const a of args ?? []) {
    const { name, value } = parseValueArg(a);
    m.set(name, value);
  }
  return m;
}
