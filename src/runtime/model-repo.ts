/**
 * A model repository folder, in the spirit of Triton's: `DIR/NAME/1/model.onnx` (highest numeric version
 * wins) or simply `DIR/NAME.onnx`. Every host of a deployment loads the same model; the handshake compares
 * sha256s.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CleaveError } from '../errors.js';
import { inlineExternalData } from '../graph/external-data.js';
import { OnnxModel } from '../graph/model.js';

interface RepoModel {
  readonly name: string;
  readonly version: string;
  readonly path: string;
}

export function listModels(dir: string): RepoModel[] {
  if (!existsSync(dir) || !statSync(dir).isDirectory())
    throw new CleaveError('E_BAD_INPUT', `--models ${dir}: not a directory`);
  const out: RepoModel[] = [];
  for (const entry of readdirSync(dir).sort()) {
    const p = join(dir, entry);
    if (entry.endsWith('.onnx') && statSync(p).isFile()) {
      out.push({ name: entry.slice(0, -5), version: '1', path: p });
    } else if (statSync(p).isDirectory()) {
      const versions = readdirSync(p)
        .filter((v) => /^\d+$/.test(v) && existsSync(join(p, v, 'model.onnx')))
        .sort((a, b) => Number(b) - Number(a));
      if (versions.length > 0)
        out.push({ name: entry, version: versions[0], path: join(p, versions[0], 'model.onnx') });
    }
  }
  return out;
}

function findModel(dir: string, name: string): RepoModel {
  const all = listModels(dir);
  const m = all.find((x) => x.name === name);
  if (!m)
    throw new CleaveError(
      'E_UNKNOWN_MODEL',
      `model '${name}' is not in the repository ${dir} (has: ${all.map((x) => x.name).join(', ') || 'nothing'})`,
    );
  return m;
}

export function loadRepoModel(dir: string, name: string): { entry: RepoModel; model: OnnxModel } {
  const entry = findModel(dir, name);
  return { entry, model: OnnxModel.fromBytes(inlineExternalData(readFileSync(entry.path), entry.path), entry.path) };
}
