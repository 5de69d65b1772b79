/**
 * Element-level codecs behind the Open Inference Protocol request/response codec (oip.ts): the BOOL check on
 * binary tensor data, JSON tensor `data` in and out, FP16 <-> number, and the position of a JSON syntax
 * error. Pure functions over bytes and JSON values; errors are left to oip.ts,
 * which knows which field they belong to.
 */
import type { TensorData, TensorDType, TensorLike } from '../executor/tensors.js';

// ---------------------------------------------------------------------------------------------------------
// Binary tensor data
//
// Tensor bytes in are `typedFromBytes` (transport/dtype.ts): the protocol's binary data is little-endian, so
// is every platform onnxruntime-node ships for, so no swap. Bytes out are `tensorBytes`, from the same file.

/** Index of the first byte of a BOOL tensor that is neither 0 nor 1, or -1. */
export function badBoolByte(data: Uint8Array): number {
  for (let i = 0; i < data.length; i++) if (data[i] > 1) return i;
  return -1;
}

// ---------------------------------------------------------------------------------------------------------
// FP16

const scratch = new DataView(new ArrayBuffer(8));

function roundHalfEven(x: number): number {
  let f = Math.floor(x);
  const r = x - f;
  if (r > 0.5 || (r === 0.5 && f % 2 === 1)) f++;
  return f;
}

/**
 * IEEE 754 binary16 bits of `v`, rounded to nearest with ties to even straight from the double (going
 * through float32 first would round twice). `undefined` when a finite `v` is too large for FP16 (it would
 * round to infinity: |v| >= 65520).
 */
export function halfBits(v: number): number | undefined {
  if (Number.isNaN(v)) return 0x7e00;
  const sign = v < 0 || Object.is(v, -0) ? 0x8000 : 0;
  const a = Math.abs(v);
  if (a === Infinity) return sign | 0x7c00;
  // Scaling by a power of two is exact, so one rounding happens, in roundHalfEven.
  if (a < 2 ** -14) return sign | roundHalfEven(a * 2 ** 24); // 1024 here is the smallest normal, 0x0400
  scratch.setFloat64(0, a); // big-endian: the exponent is in the top bits of the first word
  const e = ((scratch.getUint32(0) >>> 20) & 0x7ff) - 1023;
  if (e > 15) return undefined;
  const bits = ((e + 15) << 10) + roundHalfEven(a * 2 ** (10 - e)) - 1024; // a mantissa of 2048 carries
  return bits >= 0x7c00 ? undefined : sign | bits;
}

/** The value of FP16 bits; exact, every binary16 value is a double. */
export function halfToNumber(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1024 + m) * 2 ** (e - 25);
}

// ---------------------------------------------------------------------------------------------------------
// JSON tensor data in

/** Why one JSON element cannot be stored; oip.ts adds the input name and the element's path. */
class Reject {
  constructor(readonly reason: string) {}
}

/** Converts one JSON element to what the typed array stores, or says why it cannot. */
type ElementConv = (v: unknown) => number | bigint | Reject;

export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `a string (${JSON.stringify(v.length > 24 ? `${v.slice(0, 24)}...` : v)})`;
  if (typeof v === 'object') return 'an object';
  return `${typeof v === 'boolean' ? 'a boolean' : `the ${typeof v}`} ${String(v)}`;
}

/** JSON has no literal for these; they travel as strings both ways. */
const NON_FINITE: Record<string, number> = { NaN: NaN, Infinity: Infinity, '-Infinity': -Infinity };
const NON_FINITE_HINT = 'a number (or "NaN", "Infinity", "-Infinity")';

function floatConv(name: string, fits: (v: number) => boolean): ElementConv {
  return (v) => {
    if (typeof v === 'number') return fits(v) ? v : new Reject(`${v} is out of range for ${name}`);
    if (typeof v === 'string' && Object.hasOwn(NON_FINITE, v)) return NON_FINITE[v];
    return new Reject(`is ${describe(v)}, ${name} needs ${NON_FINITE_HINT}`);
  };
}

function intConv(name: string, lo: number, hi: number): ElementConv {
  return (v) => {
    if (typeof v !== 'number') return new Reject(`is ${describe(v)}, ${name} needs an integer`);
    if (!Number.isInteger(v)) return new Reject(`${v} is not an integer (${name})`);
    if (v < lo || v > hi) return new Reject(`${v} is out of range for ${name} [${lo}, ${hi}]`);
    return v;
  };
}

const INT64_RANGE = [-(2n ** 63n), 2n ** 63n - 1n] as const;
const UINT64_RANGE = [0n, 2n ** 64n - 1n] as const;

/**
 * INT64/UINT64 from a JSON number only while it is a safe integer: JSON.parse has already rounded anything
 * past 2^53 - 1, so accepting it would silently change the value. Decimal strings (the proto3 JSON mapping
 * of int64) carry the full range exactly.
 */
function int64Conv(name: string, [lo, hi]: readonly [bigint, bigint]): ElementConv {
  return (v) => {
    let b: bigint;
    if (typeof v === 'number') {
      if (!Number.isInteger(v)) return new Reject(`${v} is not an integer (${name})`);
      if (!Number.isSafeInteger(v)) {
        return new Reject(
          `${v} is past 2^53-1, which a JSON number cannot carry exactly; send ${name} as a decimal string or as binary data`,
        );
      }
      b = BigInt(v);
    } else if (typeof v === 'string' && /^-?\d{1,20}$/.test(v)) {
      b = BigInt(v);
    } else {
      return new Reject(`is ${describe(v)}, ${name} needs an integer (or a decimal string)`);
    }
    return b < lo || b > hi ? new Reject(`${b} is out of range for ${name}`) : b;
  };
}

const halfConv: ElementConv = (v) => {
  if (typeof v === 'string' && Object.hasOwn(NON_FINITE, v)) return halfBits(NON_FINITE[v]) as number;
  if (typeof v !== 'number') return new Reject(`is ${describe(v)}, FP16 needs ${NON_FINITE_HINT}`);
  const h = Number.isFinite(v) ? halfBits(v) : undefined;
  return h === undefined ? new Reject(`${v} is out of range for FP16 (largest 65504)`) : h;
};

const boolConv: ElementConv = (v) =>
  typeof v === 'boolean' ? (v ? 1 : 0) : new Reject(`is ${describe(v)}, BOOL needs true or false`);

export const JSON_CONV: Readonly<Record<TensorDType, ElementConv>> = {
  float32: floatConv('FP32', (v) => Number.isFinite(Math.fround(v))),
  float64: floatConv('FP64', Number.isFinite),
  float16: halfConv,
  int8: intConv('INT8', -128, 127),
  uint8: intConv('UINT8', 0, 255),
  int16: intConv('INT16', -32768, 32767),
  uint16: intConv('UINT16', 0, 65535),
  int32: intConv('INT32', -(2 ** 31), 2 ** 31 - 1),
  uint32: intConv('UINT32', 0, 2 ** 32 - 1),
  int64: int64Conv('INT64', INT64_RANGE),
  uint64: int64Conv('UINT64', UINT64_RANGE),
  bool: boolConv,
};

/** A structural problem in nested `data`: the path of the offending element and why. */
export class DataShapeError {
  constructor(
    readonly path: string,
    readonly reason: string,
  ) {}
}

const pathText = (path: readonly number[]): string => path.map((i) => `[${i}]`).join('');

/**
 * Leaves of (possibly nested) `data` in row-major order. Nesting may go as deep as the tensor's rank and no
 * deeper, so the recursion is bounded by the rank the model declares.
 */
export function countLeaves(data: readonly unknown[], maxDepth: number): number {
  const path: number[] = [];
  const walk = (a: readonly unknown[], depth: number): number => {
    let n = 0;
    for (let i = 0; i < a.length; i++) {
      const v = a[i];
      if (!Array.isArray(v)) {
        n++;
        continue;
      }
      path.push(i);
      if (depth >= maxDepth) {
        throw new DataShapeError(pathText(path), `is an array nested deeper than the tensor's rank ${maxDepth}`);
      }
      n += walk(v, depth + 1);
      path.pop();
    }
    return n;
  };
  return walk(data, 1);
}

/** Fills `out` from the leaves of `data` (already counted by countLeaves), converting each with `conv`. */
export function fillFromJson(data: readonly unknown[], out: TensorData, conv: ElementConv): void {
  let k = 0;
  const path: number[] = [];
  const walk = (a: readonly unknown[]): void => {
    for (let i = 0; i < a.length; i++) {
      const v = a[i];
      if (Array.isArray(v)) {
        path.push(i);
        walk(v);
        path.pop();
        continue;
      }
      const x = conv(v);
      if (x instanceof Reject) throw new DataShapeError(pathText([...path, i]), x.reason);
      // conv matches out's element type (bigint for the 64-bit integer arrays, number otherwise).
      (out as unknown as (number | bigint)[])[k++] = x;
    }
  };
  walk(data);
}

// ---------------------------------------------------------------------------------------------------------
// JSON tensor data out

function floatText(x: number): string {
  return Number.isFinite(x) ? String(x) : `"${String(x)}"`;
}

/**
 * A tensor's data as a flat row-major JSON array. Floats are written exactly (a float32 widened to double
 * prints as the double, e.g. 0.1f -> 0.10000000149011612, which parses back to the same float32); NaN and
 * infinities as the strings "NaN", "Infinity", "-Infinity"; INT64/UINT64 as exact decimal digits, which a
 * JavaScript JSON.parse rounds past 2^53 but Python and most other clients keep; BOOL as true/false; FP16 as
 * the numbers it holds (exact).
 */
export function jsonDataText(t: TensorLike): string {
  const d = t.data;
  switch (t.dtype) {
    case 'bool': {
      const parts = new Array<string>(d.length);
      for (let i = 0; i < d.length; i++) parts[i] = d[i] ? 'true' : 'false';
      return `[${parts.join(',')}]`;
    }
    case 'float16': {
      const parts = new Array<string>(d.length);
      for (let i = 0; i < d.length; i++) parts[i] = floatText(halfToNumber(d[i] as number));
      return `[${parts.join(',')}]`;
    }
    case 'float32':
    case 'float64': {
      const f = d as Float32Array | Float64Array;
      let finite = true;
      for (let i = 0; i < f.length && finite; i++) finite = Number.isFinite(f[i]);
      if (finite) return `[${f.join(',')}]`;
      return `[${Array.from(f, floatText).join(',')}]`;
    }
    default:
      // Integer arrays, BigInt64Array included, join as plain decimal digits.
      return `[${d.join(',')}]`;
  }
}

// ---------------------------------------------------------------------------------------------------------
// JSON syntax errors

/**
 * Where `text` stops being JSON, for a request JSON.parse refused: Node 20's messages do not always give a
 * position. Runs only on that failure path. Iterative, so hostile nesting cannot overflow the stack.
 */
export function locateJsonError(text: string): { pos: number; line: number; column: number; reason: string } {
  const at = (pos: number, reason: string) => {
    const before = text.slice(0, pos);
    const line = before.split('\n').length;
    return { pos, line, column: pos - before.lastIndexOf('\n'), reason };
  };
  const found = (i: number): string => {
    if (i >= text.length) return 'the end of the JSON';
    const rest = text.slice(i, i + 9);
    const hint = /^(-?Infinity|NaN)/.test(rest)
      ? ' (JSON has no NaN or Infinity: write the strings "NaN", "Infinity", "-Infinity" or send binary data)'
      : '';
    return `${JSON.stringify(text[i])}${hint}`;
  };
  const closers: string[] = [];
  let i = 0;
  const skipWs = () => {
    while (i < text.length && (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r')) i++;
  };
  const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
  // Returns the position of a bad string, or -1 after consuming a good one.
  const string = (): number => {
    i++;
    while (i < text.length) {
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return -1;
      }
      if (c < 0x20) return i;
      if (c === 0x5c) {
        const e = text[i + 1];
        if (e === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) return i;
          i += 6;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) i += 2;
        else return i;
      } else i++;
    }
    return i;
  };
  let expectValue = true;
  for (;;) {
    skipWs();
    if (expectValue) {
      const c = text[i];
      if (c === '{' || c === '[') {
        closers.push(c === '{' ? '}' : ']');
        i++;
        skipWs();
        if (text[i] === closers[closers.length - 1]) {
          closers.pop();
          i++;
          expectValue = false;
          continue;
        }
        if (c === '[') continue;
        if (text[i] !== '"') return at(i, `expected a property name or '}' but found ${found(i)}`);
        const bad = string();
        if (bad >= 0) return at(bad, 'malformed string');
        skipWs();
        if (text[i] !== ':') return at(i, `expected ':' but found ${found(i)}`);
        i++;
        continue;
      }
      if (c === '"') {
        const bad = string();
        if (bad >= 0) return at(bad, 'malformed string');
      } else if (text.startsWith('true', i)) i += 4;
      else if (text.startsWith('false', i)) i += 5;
      else if (text.startsWith('null', i)) i += 4;
      else {
        NUMBER.lastIndex = i;
        if (!NUMBER.test(text)) return at(i, `expected a value but found ${found(i)}`);
        i = NUMBER.lastIndex;
      }
      expectValue = false;
      continue;
    }
    const close = closers[closers.length - 1];
    if (close === undefined) {
      if (i < text.length) return at(i, `unexpected ${found(i)} after the JSON value`);
      return at(i, 'no syntax error found (JSON.parse refused it)');
    }
    if (text[i] === close) {
      closers.pop();
      i++;
      continue;
    }
    if (text[i] !== ',') return at(i, `expected ',' or '${close}' but found ${found(i)}`);
    i++;
    if (close === '}') {
      skipWs();
      if (text[i] !== '"') return at(i, `expected a property name but found ${found(i)}`);
      const bad = string();
      if (bad >= 0) return at(bad, 'malformed string');
      skipWs();
      if (text[i] !== ':') return at(i, `expected ':' but found ${found(i)}`);
      i++;
    }
    expectValue = true;
  }
}
