/**
 * ONNX external data: exporters write big weights to files beside the model (`TensorProto.data_location =
 * EXTERNAL`, with `location`, `offset` and `length` in `external_data`), relative to the model's folder.
 * Cleave works on one byte string per model (it hashes it, cuts it, sends segments to worker threads), so a
 * model read from a file has its external tensors read in and stored inline. Every host does the same with
 * the same files, so they agree on the result's sha256.
 */
import { readFileSync, realpathSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, sep } from 'node:path';
import { CleaveError, errorMessage } from '../errors.js';
import { graphStoredTensors } from './model.js';
import { onnx } from './onnx.js';

const EXTERNAL = 1; // onnx.TensorProto.DataLocation.EXTERNAL

/**
 * `bytes` (the model file at `path`) with every external tensor's data read from its file and stored inline;
 * the same bytes when there is none. Throws E_BAD_MODEL naming the tensor and the file for a location that is
 * absolute or leaves the model's folder, a file that cannot be read, or a range past its end.
 */
export function inlineExternalData(bytes: Uint8Array, path: string): Uint8Array {
  let proto: ReturnType<typeof onnx.ModelProto.decode>;
  try {
    proto = onnx.ModelProto.decode(bytes);
  } catch {
    return bytes; // not ONNX: OnnxModel.fromBytes says so, naming the file
  }
  const external = proto.graph ? graphStoredTensors(proto.graph, true).filter((t) => t.dataLocation === EXTERNAL) : [];
  // Sparse tensors keep values and indices in two tensors; Cleave does not read theirs from files.
  for (const sp of proto.graph?.sparseInitializer ?? [])
    for (const part of [sp.values, sp.indices])
      if (part?.dataLocation === EXTERNAL)
        throw new CleaveError(
          'E_BAD_MODEL',
          `${path}: sparse initializer '${sp.values?.name ?? '(unnamed)'}' keeps its data outside the model, which Cleave does not read (store it inline)`,
        );
  if (external.length === 0) return bytes;
  const dir = dirname(path);
  const root = realpathSync(dir);
  const files = new Map<string, Buffer>();
  for (const t of external) {
    const name = t.name ?? '(unnamed)';
    const bad = (why: string): never => {
      throw new CleaveError('E_BAD_MODEL', `${path}: tensor '${name}' keeps its data outside the model: ${why}`);
    };
    const kv = new Map((t.externalData ?? []).map((e) => [e.key ?? '', e.value ?? '']));
    const location = kv.get('location');
    if (!location) bad('external_data has no location');
    if (isAbsolute(location!)) bad(`location '${location}' is absolute; it must be relative to the model's folder`);
    let file: string;
    try {
      file = realpathSync(join(dir, location!));
    } catch (e) {
      return bad(`'${location}' cannot be read (${errorMessage(e)})`);
    }
    const rel = relative(root, file);
    if (rel.startsWith(`..${sep}`) || rel === '..' || isAbsolute(rel))
      bad(`location '${location}' leaves the model's folder`);
    let data = files.get(file);
    if (!data) {
      try {
        if (!statSync(file).isFile()) bad(`'${location}' is not a file`);
        data = readFileSync(file);
      } catch (e) {
        if (e instanceof CleaveError) throw e;
        return bad(`'${location}' cannot be read (${errorMessage(e)})`);
      }
      files.set(file, data);
    }
    const offset = Number(kv.get('offset') ?? 0);
    const length = kv.has('length') ? Number(kv.get('length')) : data.length - offset;
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0)
      bad(`offset ${kv.get('offset')} / length ${kv.get('length')} are not byte counts`);
    if (offset + length > data.length)
      bad(`bytes ${offset}..${offset + length} run past the end of '${location}' (${data.length} bytes)`);
    t.rawData = data.subarray(offset, offset + length);
    t.dataLocation = 0;
    t.externalData = [];
  }
  return onnx.ModelProto.encode(proto).finish();
}
