/**
 * Concrete input shapes for a model whose inputs may have symbolic dimensions, from `--shape` arguments.
 * A leading symbolic dimension (batch) defaults to 1; any other needs to be given.
 */
import { CleaveError } from '../errors.js';
import type { OnnxModel, TensorDecl } from './model.js';
import type { DType } from './onnx.js';

export interface InputSpec {
  readonly name: string;
  readonly dtype: DType;
  readonly dims: number[];
  /**
   * The value every element takes in the runs Cleave makes to measure the model (`--value`), for an input
   * whose values steer it: a sample rate an If compares, a sequence length, a mode flag. Absent: floats get
   * random values in [0, 1), other types zeros.
   */
  readonly value?: number;
}

/** The values an integer input can hold (a value outside would wrap when the feed is filled). */
const INT_RANGE: Partial<Record<DType, readonly [number, number]>> = {
  bool: [0, 1],
  int8: [-128, 127],
  uint8: [0, 255],
  int16: [-32768, 32767],
  uint16: [0, 65535],
  int32: [-(2 ** 31), 2 ** 31 - 1],
  uint32: [0, 2 ** 32 - 1],
  int64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  uint64: [0, Number.MAX_SAFE_INTEGER],
};

/** Parses `name=16000` (`--value`). */
export function parseValueArg(arg: string): { name: string; value: number } {
  const eq = arg.lastIndexOf('=');
  const text = eq > 0 ? arg.slice(eq + 1).trim() : '';
  const value = Number(text);
  if (eq <= 0 || text === '' || !Number.isFinite(value))
    throw new CleaveError('E_BAD_SHAPE', `--value '${arg}': expected NAME=NUMBER (e.g. sr=16000)`);
  return { name: arg.slice(0, eq), value };
}

/** Parses `name=1x3x224x224` (also `name=1,3,224,224`). */
export function parseShapeArg(arg: string): { name: string; dims: number[] } {
  const eq = arg.lastIndexOf('=');
  if (eq <= 0)
    throw new CleaveError('E_BAD_SHAPE', `--shape '${arg}': expected NAME=DIMxDIMx... (e.g. input=1x3x224x224)`);
  const name = arg.slice(0, eq);
  const parts = arg.slice(eq + 1).split(/[x,]/);
  const dims = parts.map((p) => (/^\d+$/.test(p) ? Number(p) : NaN));
  if (parts.length === 0 || dims.some((d) => !Number.isSafeInteger(d) || d <= 0))
    throw new CleaveError('E_BAD_SHAPE', `--shape '${arg}': dimensions must be positive integers separated by 'x'`);
  return { name, dims };
}

/** Concrete shapes for every model input; throws E_BAD_SHAPE naming the input that needs one. */
export function resolveInputs(
  model: OnnxModel,
  given: ReadonlyMap<string, number[]> = new Map(),
  values: ReadonlyMap<string, number> = new Map(),
): InputSpec[] {
  for (const [flag, names] of [
    ['--shape', given.keys()],
    ['--value', values.keys()],
  ] as const)
    for (const name of names)
      if (!model.inputs.some((i) => i.name === name))
        throw new CleaveError(
          'E_BAD_SHAPE',
          `${flag} names '${name}', which is not an input of ${model.source} (inputs: ${model.inputs.map((i) => i.name).join(', ')})`,
        );
  return model.inputs.map((decl) => {
    const spec = resolveOne(model, decl, given.get(decl.name));
    const value = values.get(decl.name);
    if (value === undefined) return spec;
    const range = INT_RANGE[spec.dtype];
    if (range && !(Number.isSafeInteger(value) && value >= range[0] && value <= range[1]))
      throw new CleaveError(
        'E_BAD_SHAPE',
        `--value ${decl.name}=${value}: the input is ${spec.dtype}, so an integer in [${range[0]}, ${range[1]}]`,
      );
    return { ...spec, value };
  });
}

function resolveOne(model: OnnxModel, decl: TensorDecl, given: number[] | undefined): InputSpec {
  const dtype = decl.dtype;
  if (!dtype) throw new CleaveError('E_BAD_MODEL', `${model.source}: input '${decl.name}' has no element type`);
  const declared = decl.dims;
  const show = (d: readonly (number | string)[]): string => `[${d.join(',')}]`;
  if (given) {
    if (declared && declared.length !== given.length)
      throw new CleaveError(
        'E_BAD_SHAPE',
        `--shape ${decl.name}: rank ${given.length} does not match the model's ${show(declared)}`,
      );
    declared?.forEach((d, i) => {
      if (typeof d === 'number' && d !== given[i])
        throw new CleaveError(
          'E_BAD_SHAPE',
          `--shape ${decl.name}: dimension ${i} is ${given[i]} but the model fixes it at ${d} ${show(declared)}`,
        );
    });
    return { name: decl.name, dtype, dims: given };
  }
  if (!declared)
    throw new CleaveError(
      'E_BAD_SHAPE',
      `input '${decl.name}' of ${model.source} has no declared shape; pass --shape ${decl.name}=DIMxDIMx...`,
    );
  const dims = declared.map((d, i) => (typeof d === 'number' ? d : i === 0 ? 1 : NaN));
  if (dims.some((d) => Number.isNaN(d))) {
    const example = declared.map((d, i) => (typeof d === 'number' ? d : i === 0 ? 1 : 'N')).join('x');
    throw new CleaveError(
      'E_BAD_SHAPE',
      `input '${decl.name}' of ${model.source} has symbolic dimensions ${show(declared)}; pass --shape ${decl.name}=${example} with numbers for N`,
    );
  }
  return { name: decl.name, dtype, dims };
}

/** A tensor whose shape in the file (value_info, a graph input or output) is not the shape it runs with. */
export interface ShapeDisagreement {
  readonly name: string;
  /** As the file writes it: numbers (0 included: exporters write 0 for "unknown") and symbolic names. */
  readonly declared: readonly (number | string)[];
  readonly measured: readonly number[];
}

/**
 * Declared shapes that disagree with what runs: a different rank, or a numeric dimension (0 included) that
 * differs; symbolic dimensions agree with anything. Cleave never copies declared shapes into the runs it
 * makes (what runs wins), so these are for `inspect` to report, not errors.
 */
export function shapeDisagreements(
  model: OnnxModel,
  measured: ReadonlyMap<string, { readonly dims: readonly number[] }>,
): ShapeDisagreement[] {
  const out: ShapeDisagreement[] = [];
  for (const [name, v] of model.valueInfo) {
    const dims = v.type?.tensorType?.shape?.dim;
    const m = measured.get(name);
    if (!dims || !m) continue;
    const declared = dims.map((d) => (d.dimParam ? d.dimParam : d.dimValue != null ? Number(d.dimValue) : '?'));
    const differs =
      declared.length !== m.dims.length || declared.some((d, i) => typeof d === 'number' && d !== m.dims[i]);
    if (differs) out.push({ name, declared, measured: [...m.dims] });
  }
  return out;
}
