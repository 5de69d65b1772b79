import { describe, expect, it } from 'vitest';
import { CleaveError, type ErrorCode } from '../src/errors.js';
import type { TensorData, TensorDType, TensorLike } from '../src/runtime/executor/tensors.js';
import {
  INFERENCE_HEADER,
  encodeInferResponse,
  fromOipDatatype,
  modelMetadata,
  parseInferRequest,
  signatureOf,
  toOipDatatype,
  type ModelSignature,
  type OipDatatype,
} from '../src/runtime/http/oip.js';
import { halfBits, halfToNumber, locateJsonError } from '../src/runtime/http/oip-binary.js';

// ---------------------------------------------------------------------------------------------------------
// helpers

const IMAGE: ModelSignature = {
  name: 'net',
  versions: ['1'],
  inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3, 2, 2] }],
  outputs: [
    { name: 'y', datatype: 'FP32', shape: [-1, 4] },
    { name: 'z', datatype: 'INT64', shape: [-1] },
  ],
};

/** A JSON body, or JSON followed by binary chunks with the header length to send. */
function request(doc: unknown, ...chunks: ArrayBufferView[]): { body: Buffer; header: string | undefined } {
  const json = Buffer.from(JSON.stringify(doc));
  if (chunks.length === 0) return { body: json, header: undefined };
  const bytes = chunks.map((c) => Buffer.from(c.buffer, c.byteOffset, c.byteLength));
  return { body: Buffer.concat([json, ...bytes]), header: String(json.length) };
}

function parse(doc: unknown, sig: ModelSignature = IMAGE, ...chunks: ArrayBufferView[]) {
  const { body, header } = request(doc, ...chunks);
  return parseInferRequest(body, header, sig);
}

function thrown(fn: () => unknown): CleaveError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(CleaveError);
    return e as CleaveError;
  }
  throw new Error('expected a CleaveError, nothing was thrown');
}

/** Asserts the code, its HTTP status, and that the message names every fragment (the field, the values). */
function expectError(fn: () => unknown, code: ErrorCode, ...fragments: string[]): CleaveError {
  const e = thrown(fn);
  expect(e.code).toBe(code);
  expect(e.status).toBe(code === 'E_TOO_LARGE' ? 413 : code === 'E_INTERNAL' ? 500 : 400);
  for (const f of fragments) expect(e.message).toContain(f);
  return e;
}

const x12 = (start = 0): number[] => Array.from({ length: 12 }, (_, i) => (start + i) / 4);
const xInput = (extra: Record<string, unknown> = {}) => ({
  name: 'x',
  datatype: 'FP32',
  shape: [1, 3, 2, 2],
  data: x12(),
  ...extra,
});

/** Splits a binary response by hand: JSON header, then each binary output's bytes in order. */
function splitResponse(res: { body: Buffer; headers: Record<string, string> }) {
  const n = Number(res.headers[INFERENCE_HEADER]);
  expect(Number.isInteger(n)).toBe(true);
  const doc = JSON.parse(res.body.subarray(0, n).toString('utf8'));
  let at = n;
  const bytes: Record<string, Buffer> = {};
  for (const o of doc.outputs) {
    const size = o.parameters?.binary_data_size;
    if (size === undefined) continue;
    bytes[o.name] = res.body.subarray(at, at + size);
    at += size;
  }
  expect(at).toBe(res.body.length);
  return { doc, bytes };
}

// Per datatype: values a JSON client sends, and what the tensor must hold.
interface Case {
  dtype: TensorDType;
  datatype: OipDatatype;
  json: unknown[];
  held: TensorData;
}
const CASES: Case[] = [
  { dtype: 'bool', datatype: 'BOOL', json: [true, false, true], held: new Uint8Array([1, 0, 1]) },
  { dtype: 'uint8', datatype: 'UINT8', json: [0, 7, 255], held: new Uint8Array([0, 7, 255]) },
  { dtype: 'uint16', datatype: 'UINT16', json: [0, 300, 65535], held: new Uint16Array([0, 300, 65535]) },
  { dtype: 'uint32', datatype: 'UINT32', json: [0, 70000, 4294967295], held: new Uint32Array([0, 70000, 4294967295]) },
  {
    dtype: 'uint64',
    datatype: 'UINT64',
    json: [0, 9007199254740991, '18446744073709551615'],
    held: new BigUint64Array([0n, 9007199254740991n, 18446744073709551615n]),
  },
  { dtype: 'int8', datatype: 'INT8', json: [-128, 0, 127], held: new Int8Array([-128, 0, 127]) },
  { dtype: 'int16', datatype: 'INT16', json: [-32768, 1, 32767], held: new Int16Array([-32768, 1, 32767]) },
  {
    dtype: 'int32',
    datatype: 'INT32',
    json: [-2147483648, 5, 2147483647],
    held: new Int32Array([-2147483648, 5, 2147483647]),
  },
  {
    dtype: 'int64',
    datatype: 'INT64',
    json: [-9007199254740991, '-9223372036854775808', '9223372036854775807'],
    held: new BigInt64Array([-9007199254740991n, -9223372036854775808n, 9223372036854775807n]),
  },
  { dtype: 'float16', datatype: 'FP16', json: [1, -2.5, 65504], held: new Uint16Array([0x3c00, 0xc100, 0x7bff]) },
  { dtype: 'float32', datatype: 'FP32', json: [0.5, -1e-3, 3.4e38], held: new Float32Array([0.5, -1e-3, 3.4e38]) },
  { dtype: 'float64', datatype: 'FP64', json: [0.1, -1e300, 5e-324], held: new Float64Array([0.1, -1e300, 5e-324]) },
];

/** One input and one output per datatype, named after the datatype, any length. */
const ALL_TYPES: ModelSignature = {
  name: 'all',
  versions: [],
  inputs: CASES.map((c) => ({ name: c.datatype, datatype: c.datatype, shape: [-1] })),
  outputs: CASES.map((c) => ({ name: c.datatype, datatype: c.datatype, shape: [-1] })),
};

/** JSON text of the output value a client gets back for the case's values. */
const EXPECT_OUT: Record<OipDatatype, string> = {
  BOOL: '[true,false,true]',
  UINT8: '[0,7,255]',
  UINT16: '[0,300,65535]',
  UINT32: '[0,70000,4294967295]',
  UINT64: '[0,9007199254740991,18446744073709551615]',
  INT8: '[-128,0,127]',
  INT16: '[-32768,1,32767]',
  INT32: '[-2147483648,5,2147483647]',
  INT64: '[-9007199254740991,-9223372036854775808,9223372036854775807]',
  FP16: '[1,-2.5,65504]',
  FP32: `[0.5,${Math.fround(-1e-3)},${Math.fround(3.4e38)}]`,
  FP64: '[0.1,-1e+300,5e-324]',
  BYTES: '',
};

// ---------------------------------------------------------------------------------------------------------

describe('datatypes', () => {
  it('maps every tensor dtype to its OIP name and back', () => {
    for (const c of CASES) {
      expect(toOipDatatype(c.dtype)).toBe(c.datatype);
      expect(fromOipDatatype(c.datatype)).toBe(c.dtype);
    }
  });

  it('refuses BYTES as unsupported and an unknown name as bad input', () => {
    expectError(() => fromOipDatatype('BYTES'), 'E_UNSUPPORTED', 'BYTES');
    expectError(() => fromOipDatatype('FLOAT32'), 'E_BAD_INPUT', "'FLOAT32'", 'FP32');
  });

  it('builds a signature from session value infos, symbolic dims as -1', () => {
    const sig = signatureOf(
      'm',
      ['3'],
      [{ name: 'in', dtype: 'float32', shape: ['batch', 3, -1] }],
      [{ name: 'out', dtype: 'int64', shape: [] }],
    );
    expect(sig.inputs).toEqual([{ name: 'in', datatype: 'FP32', shape: [-1, 3, -1] }]);
    expect(sig.outputs).toEqual([{ name: 'out', datatype: 'INT64', shape: [] }]);
  });

  it('writes model metadata per the protocol', () => {
    expect(modelMetadata(IMAGE)).toEqual({
      name: 'net',
      versions: ['1'],
      platform: 'onnxruntime_onnx',
      inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3, 2, 2] }],
      outputs: [
        { name: 'y', datatype: 'FP32', shape: [-1, 4] },
        { name: 'z', datatype: 'INT64', shape: [-1] },
      ],
    });
  });
});

describe('FP16 conversion', () => {
  it('converts known values, rounding to nearest even', () => {
    const known: [number, number][] = [
      [0, 0x0000],
      [-0, 0x8000],
      [1, 0x3c00],
      [-2, 0xc000],
      [0.1, 0x2e66],
      [1 / 3, 0x3555],
      [65504, 0x7bff],
      [65519, 0x7bff], // below the halfway point to 65536
      [2 ** -24, 0x0001], // smallest subnormal
      [2 ** -25, 0x0000], // tie: to even, zero
      [3 * 2 ** -25, 0x0002], // tie: 1.5 ulp to even, 2
      [2 ** -14, 0x0400], // smallest normal
      [2 ** -14 - 2 ** -26, 0x0400], // subnormal rounding up into the normals
      [1 + 2 ** -11, 0x3c00], // tie at 1: to even
      [1 + 3 * 2 ** -11, 0x3c02],
      [Infinity, 0x7c00],
      [-Infinity, 0xfc00],
    ];
    for (const [v, h] of known) expect([v, halfBits(v)]).toEqual([v, h]);
    expect(halfBits(65520)).toBeUndefined();
    expect(halfBits(-1e6)).toBeUndefined();
    expect(halfBits(NaN)).toBe(0x7e00);
  });

  it('round-trips every one of the 65536 bit patterns except NaNs', () => {
    for (let h = 0; h < 0x10000; h++) {
      const v = halfToNumber(h);
      if (Number.isNaN(v)) {
        expect((h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0).toBe(true);
        continue;
      }
      if (halfBits(v) !== h) expect([h, halfBits(v)]).toEqual([h, h]);
    }
  });
});

describe('JSON requests and responses', () => {
  it.each(CASES)('round-trips $datatype through JSON', (c) => {
    const req = parse({ inputs: [{ name: c.datatype, datatype: c.datatype, shape: [3], data: c.json }] }, onlyInput(c));
    const t = req.inputs[c.datatype];
    expect(t.dtype).toBe(c.dtype);
    expect(t.dims).toEqual([3]);
    expect(t.data.constructor).toBe(c.held.constructor);
    expect(Array.from(t.data as ArrayLike<number | bigint>)).toEqual(Array.from(c.held as ArrayLike<number | bigint>));

    const res = encodeInferResponse(onlyOutput(c), { binaryOutputs: false }, { [c.datatype]: t });
    expect(res.headers).toEqual({ 'Content-Type': 'application/json' });
    const text = res.body.toString('utf8');
    expect(text).toContain(`"data":${EXPECT_OUT[c.datatype]}`);
    const doc = JSON.parse(text);
    expect(doc.outputs[0]).toMatchObject({ name: c.datatype, datatype: c.datatype, shape: [3] });
  });

  it('accepts nested data in row-major order', () => {
    const nested = [
      [
        [0, 0.25],
        [0.5, 0.75],
      ],
      [
        [1, 1.25],
        [1.5, 1.75],
      ],
      [
        [2, 2.25],
        [2.5, 2.75],
      ],
    ];
    const req = parse({ inputs: [xInput({ data: [nested] })] });
    expect(Array.from(req.inputs.x.data as Float32Array)).toEqual(x12());
    // Partly flattened nesting is row-major too.
    const partly = parse({ inputs: [xInput({ data: [x12().slice(0, 6), x12().slice(6)] })] });
    expect(Array.from(partly.inputs.x.data as Float32Array)).toEqual(x12());
  });

  it('takes any size where the model has -1 and only the fixed size elsewhere', () => {
    const sig: ModelSignature = { ...IMAGE, inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 2] }] };
    for (const batch of [0, 1, 5]) {
      const req = parse(
        { inputs: [{ name: 'x', datatype: 'FP32', shape: [batch, 2], data: new Array(batch * 2).fill(1) }] },
        sig,
      );
      expect(req.inputs.x.dims).toEqual([batch, 2]);
    }
    expectError(
      () => parse({ inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 3], data: new Array(6).fill(1) }] }, sig),
      'E_BAD_INPUT',
      'inputs[0].shape: expected [-1,2] but got [2,3]',
    );
  });

  it('echoes the id, names the model and version, and keeps request parameters', () => {
    const req = parse({ id: 'r-1', parameters: { timeout: 5000 }, inputs: [xInput()] });
    expect(req.id).toBe('r-1');
    expect(req.parameters).toEqual({ timeout: 5000 });
    expect(req.binaryOutputs).toBe(false);
    expect(req.outputs).toBeUndefined();
    const res = encodeInferResponse(IMAGE, req, outputsOfImage());
    const doc = JSON.parse(res.body.toString());
    expect(doc).toMatchObject({ id: 'r-1', model_name: 'net', model_version: '1' });
    expect(doc.outputs.map((o: { name: string }) => o.name)).toEqual(['y', 'z']);
    const noId = JSON.parse(
      encodeInferResponse(IMAGE, { binaryOutputs: false, modelVersion: '7' }, outputsOfImage()).body.toString(),
    );
    expect(noId.id).toBeUndefined();
    expect(noId.model_version).toBe('7');
  });

  it('writes int64 past 2^53 as exact digits', () => {
    const res = encodeInferResponse(
      IMAGE,
      { outputs: [{ name: 'z', binary: false }], binaryOutputs: false },
      {
        z: { dtype: 'int64', dims: [2], data: new BigInt64Array([9007199254740993n, -9007199254740993n]) },
      },
    );
    expect(res.body.toString()).toContain('"data":[9007199254740993,-9007199254740993]');
  });
});

describe('NaN and Infinity', () => {
  it('accepts the strings "NaN", "Infinity", "-Infinity" for FP16, FP32 and FP64', () => {
    for (const datatype of ['FP16', 'FP32', 'FP64'] as const) {
      const sig = sigOf(datatype);
      const req = parse(
        { inputs: [{ name: 'v', datatype, shape: [4], data: ['NaN', 'Infinity', '-Infinity', 1] }] },
        sig,
      );
      const d = req.inputs.v.data;
      const values = datatype === 'FP16' ? Array.from(d as Uint16Array, halfToNumber) : Array.from(d as Float32Array);
      expect(values).toEqual([NaN, Infinity, -Infinity, 1]);
      // ...and writes them back as the same strings, so the JSON stays valid.
      const res = encodeInferResponse(sig, { binaryOutputs: false }, { v: req.inputs.v });
      expect(JSON.parse(res.body.toString()).outputs[0].data).toEqual(['NaN', 'Infinity', '-Infinity', 1]);
    }
  });

  it('refuses the bare NaN literal, which is not JSON, with a hint', () => {
    const body = Buffer.from('{"inputs":[{"name":"v","datatype":"FP32","shape":[1],"data":[NaN]}]}');
    const pos = body.indexOf('NaN');
    expectError(() => parseInferRequest(body, undefined, sigOf('FP32')), 'E_BAD_INPUT', `position ${pos}`, '"NaN"');
  });

  it('keeps NaN bits through binary data', () => {
    const sig = sigOf('FP32');
    const data = new Float32Array([NaN, -Infinity]);
    const req = parse(
      { inputs: [{ name: 'v', datatype: 'FP32', shape: [2], parameters: { binary_data_size: 8 } }] },
      sig,
      data,
    );
    expect(Array.from(req.inputs.v.data as Float32Array)).toEqual([NaN, -Infinity]);
  });

  it('refuses numbers too large for the datatype instead of storing infinity', () => {
    expectError(() => parseOne('FP32', [1e39]), 'E_BAD_INPUT', "input 'v'", 'data[0]', 'out of range for FP32');
    expectError(() => parseOne('FP16', [70000]), 'E_BAD_INPUT', "input 'v'", 'data[0]', 'out of range for FP16');
    // JSON.stringify would write 1e400 (Infinity) as null: send the text as a client would.
    const body = Buffer.from('{"inputs":[{"name":"v","datatype":"FP64","shape":[1],"data":[1e400]}]}');
    expectError(
      () => parseInferRequest(body, undefined, sigOf('FP64')),
      'E_BAD_INPUT',
      "input 'v'",
      'data[0]',
      'out of range for FP64',
    );
  });
});

describe('binary tensor data', () => {
  it.each(CASES)('round-trips $datatype through binary data', (c) => {
    const req = parse(
      {
        inputs: [
          { name: c.datatype, datatype: c.datatype, shape: [3], parameters: { binary_data_size: c.held.byteLength } },
        ],
      },
      onlyInput(c),
      c.held,
    );
    const t = req.inputs[c.datatype];
    expect(t.dtype).toBe(c.dtype);
    expect(t.data.constructor).toBe(c.held.constructor);
    expect(Array.from(t.data as ArrayLike<number | bigint>)).toEqual(Array.from(c.held as ArrayLike<number | bigint>));

    const res = encodeInferResponse(onlyOutput(c), { binaryOutputs: true }, { [c.datatype]: t });
    expect(res.headers['Content-Type']).toBe('application/octet-stream');
    const { doc, bytes } = splitResponse(res);
    expect(doc.outputs[0]).toEqual({
      name: c.datatype,
      datatype: c.datatype,
      shape: [3],
      parameters: { binary_data_size: c.held.byteLength },
    });
    expect(Buffer.compare(bytes[c.datatype], Buffer.from(c.held.buffer, c.held.byteOffset, c.held.byteLength))).toBe(0);
  });

  it('views the body when aligned and copies when not', () => {
    const values = new Float32Array(x12());
    for (let pad = 0; pad < 4; pad++) {
      const json = Buffer.from(
        JSON.stringify({ inputs: [xInput({ data: undefined, parameters: { binary_data_size: 48 } })] }) +
          ' '.repeat(pad),
      );
      const body = Buffer.alloc(json.length + 48); // not pooled: byteOffset 0, so alignment is json.length's
      json.copy(body);
      Buffer.from(values.buffer).copy(body, json.length);
      const t = parseInferRequest(body, json.length, IMAGE).inputs.x;
      expect(Array.from(t.data as Float32Array)).toEqual(x12());
      expect(t.data.buffer === body.buffer).toBe(json.length % 4 === 0);
    }
  });

  it('takes binary inputs in order, mixed with JSON ones, and counts the header in bytes', () => {
    const sig: ModelSignature = {
      name: 'mix',
      versions: [],
      inputs: [
        { name: 'a', datatype: 'INT64', shape: [2] },
        { name: 'b', datatype: 'FP32', shape: [2] },
        { name: 'c', datatype: 'UINT8', shape: [3] },
      ],
      outputs: [],
    };
    const req = parse(
      {
        id: 'é✓ multi-byte id',
        inputs: [
          { name: 'c', datatype: 'UINT8', shape: [3], parameters: { binary_data_size: 3 } },
          { name: 'b', datatype: 'FP32', shape: [2], data: [1.5, 2.5] },
          { name: 'a', datatype: 'INT64', shape: [2], parameters: { binary_data_size: 16 } },
        ],
      },
      sig,
      new Uint8Array([7, 8, 9]),
      new BigInt64Array([-1n, 2n ** 40n]),
    );
    expect(req.id).toBe('é✓ multi-byte id');
    expect(Array.from(req.inputs.c.data as Uint8Array)).toEqual([7, 8, 9]);
    expect(Array.from(req.inputs.b.data as Float32Array)).toEqual([1.5, 2.5]);
    expect(Array.from(req.inputs.a.data as BigInt64Array)).toEqual([-1n, 2n ** 40n]);
  });

  it('accepts a plain Uint8Array body and a numeric header length', () => {
    const { body, header } = request(
      { inputs: [xInput({ data: undefined, parameters: { binary_data_size: 48 } })] },
      new Float32Array(x12()),
    );
    const req = parseInferRequest(new Uint8Array(body), Number(header), IMAGE);
    expect(Array.from(req.inputs.x.data as Float32Array)).toEqual(x12());
  });

  it('accepts a header length equal to the body for a JSON-only request', () => {
    const { body } = request({ inputs: [xInput()] });
    expect(parseInferRequest(body, String(body.length), IMAGE).inputs.x.dims).toEqual([1, 3, 2, 2]);
  });
});

describe('output selection and binary outputs', () => {
  it('returns only the outputs asked for, in the order asked', () => {
    const req = parse({ inputs: [xInput()], outputs: [{ name: 'z' }] });
    expect(req.outputs).toEqual([{ name: 'z', binary: false }]);
    const doc = JSON.parse(encodeInferResponse(IMAGE, req, outputsOfImage()).body.toString());
    expect(doc.outputs).toEqual([{ name: 'z', datatype: 'INT64', shape: [2], data: [3, -4] }]);
    const both = parse({ inputs: [xInput()], outputs: [{ name: 'z' }, { name: 'y' }] });
    const names = JSON.parse(encodeInferResponse(IMAGE, both, outputsOfImage()).body.toString()).outputs.map(
      (o: { name: string }) => o.name,
    );
    expect(names).toEqual(['z', 'y']);
  });

  it('treats an empty outputs list as all outputs', () => {
    expect(parse({ inputs: [xInput()], outputs: [] }).outputs).toBeUndefined();
  });

  it('lays out binary outputs after the JSON, a per-output binary_data overriding binary_data_output', () => {
    const req = parse({
      inputs: [xInput()],
      parameters: { binary_data_output: true },
      outputs: [{ name: 'y' }, { name: 'z', parameters: { binary_data: false } }],
    });
    expect(req.binaryOutputs).toBe(true);
    expect(req.outputs).toEqual([
      { name: 'y', binary: true },
      { name: 'z', binary: false },
    ]);
    const res = encodeInferResponse(IMAGE, req, outputsOfImage());
    const { doc, bytes } = splitResponse(res);
    expect(doc.outputs[0]).toEqual({
      name: 'y',
      datatype: 'FP32',
      shape: [1, 4],
      parameters: { binary_data_size: 16 },
    });
    expect(doc.outputs[1]).toEqual({ name: 'z', datatype: 'INT64', shape: [2], data: [3, -4] });
    const y = bytes.y;
    expect([0, 1, 2, 3].map((i) => y.readFloatLE(i * 4))).toEqual([0.5, -1, 2, 1024]);
  });

  it('makes every output binary when binary_data_output is set and no outputs are listed', () => {
    const req = parse({ inputs: [xInput()], parameters: { binary_data_output: true } });
    const { doc, bytes } = splitResponse(encodeInferResponse(IMAGE, req, outputsOfImage()));
    expect(doc.outputs.map((o: { parameters: { binary_data_size: number } }) => o.parameters.binary_data_size)).toEqual(
      [16, 16],
    );
    expect([bytes.z.readBigInt64LE(0), bytes.z.readBigInt64LE(8)]).toEqual([3n, -4n]);
  });

  it('refuses unknown and repeated outputs', () => {
    expectError(
      () => parse({ inputs: [xInput()], outputs: [{ name: 'w' }] }),
      'E_BAD_INPUT',
      "unknown output 'w'",
      'model outputs: y, z',
    );
    expectError(
      () => parse({ inputs: [xInput()], outputs: [{ name: 'y' }, { name: 'y' }] }),
      'E_BAD_INPUT',
      'outputs[1].name',
      "'y'",
    );
    expectError(
      () => parse({ inputs: [xInput()], outputs: { name: 'y' } }),
      'E_BAD_INPUT',
      'outputs: expected an array',
    );
    expectError(() => parse({ inputs: [xInput()], outputs: [{}] }), 'E_BAD_INPUT', 'outputs[0].name');
    expectError(
      () => parse({ inputs: [xInput()], outputs: [{ name: 'y', parameters: { binary_data: 'yes' } }] }),
      'E_BAD_INPUT',
      'outputs[0].parameters.binary_data',
    );
  });

  it('treats a missing or inconsistent output tensor as an internal error', () => {
    expectError(
      () => encodeInferResponse(IMAGE, { binaryOutputs: false }, { y: outputsOfImage().y }),
      'E_INTERNAL',
      "output 'z'",
    );
    expectError(
      () =>
        encodeInferResponse(
          IMAGE,
          { binaryOutputs: false },
          { ...outputsOfImage(), y: { dtype: 'float32', dims: [2, 4], data: new Float32Array(4) } },
        ),
      'E_INTERNAL',
      "output 'y'",
    );
  });
});

describe('malformed requests', () => {
  it('refuses an empty body', () => {
    expectError(() => parseInferRequest(Buffer.alloc(0), undefined, IMAGE), 'E_BAD_INPUT', 'body is empty');
  });

  it('refuses a body over the limit with 413', () => {
    const { body } = request({ inputs: [xInput()] });
    expectError(
      () => parseInferRequest(body, undefined, IMAGE, { maxBodyBytes: 100 }),
      'E_TOO_LARGE',
      `${body.length} bytes`,
      '100-byte limit',
      'maxBodyBytes',
    );
    expect(parseInferRequest(body, undefined, IMAGE, { maxBodyBytes: body.length }).inputs.x).toBeDefined();
  });

  it('names the position of malformed JSON', () => {
    const body = Buffer.from('{"inputs": [1,}');
    expectError(
      () => parseInferRequest(body, undefined, IMAGE),
      'E_BAD_INPUT',
      'malformed JSON',
      'position 14',
      'line 1, column 15',
    );
    const multi = Buffer.from('{\n  "inputs": [\n    {"name" "x"}\n  ]\n}');
    expectError(() => parseInferRequest(multi, undefined, IMAGE), 'E_BAD_INPUT', 'line 3, column 13', "expected ':'");
  });

  it('refuses JSON that is not an object', () => {
    for (const text of ['[]', '42', 'null', '"inputs"']) {
      expectError(
        () => parseInferRequest(Buffer.from(text), undefined, IMAGE),
        'E_BAD_INPUT',
        'request body: expected a JSON object',
      );
    }
  });

  it('refuses inputs that are missing or not an array', () => {
    expectError(() => parse({}), 'E_BAD_INPUT', 'inputs: missing');
    expectError(() => parse({ inputs: { x: [1] } }), 'E_BAD_INPUT', 'inputs: expected an array, got an object');
    expectError(() => parse({ inputs: [42] }), 'E_BAD_INPUT', 'inputs[0]: expected an object');
    expectError(() => parse({ inputs: [{ datatype: 'FP32' }] }), 'E_BAD_INPUT', 'inputs[0].name');
  });

  it('refuses bad top-level fields', () => {
    expectError(() => parse({ id: 7, inputs: [xInput()] }), 'E_BAD_INPUT', 'id: expected a string');
    expectError(() => parse({ parameters: [], inputs: [xInput()] }), 'E_BAD_INPUT', 'parameters: expected an object');
    expectError(
      () => parse({ parameters: { binary_data_output: 1 }, inputs: [xInput()] }),
      'E_BAD_INPUT',
      'parameters.binary_data_output',
    );
  });

  it('refuses unknown, missing and repeated inputs', () => {
    expectError(
      () => parse({ inputs: [xInput(), { ...xInput(), name: 'y' }] }),
      'E_BAD_INPUT',
      "unknown input 'y' (model inputs: x)",
    );
    expectError(() => parse({ inputs: [] }), 'E_BAD_INPUT', "missing input 'x'");
    expectError(
      () => parse({ inputs: [xInput(), xInput()] }),
      'E_BAD_INPUT',
      'inputs[1].name',
      "input 'x' is given twice",
    );
  });

  it('refuses a wrong shape, naming the field', () => {
    expectError(
      () => parse({ inputs: [xInput({ shape: [1, 3, 2], data: x12() })] }),
      'E_BAD_INPUT',
      'inputs[0].shape: expected [1,3,2,2] but got [1,3,2]',
    );
    expectError(
      () => parse({ inputs: [xInput({ shape: [2, 3, 2, 2] })] }),
      'E_BAD_INPUT',
      'inputs[0].shape',
      'but got [2,3,2,2]',
    );
    for (const shape of [[1, 3, -2, 2], [1, 3, 2.5, 2], '1,3,2,2', undefined]) {
      expectError(
        () => parse({ inputs: [xInput({ shape })] }),
        'E_BAD_INPUT',
        'inputs[0].shape: expected an array of non-negative integers',
      );
    }
  });

  it('refuses a datatype that does not match the model', () => {
    expectError(
      () => parse({ inputs: [xInput({ datatype: 'INT64' })] }),
      'E_BAD_INPUT',
      "input 'x': datatype INT64 does not match the model's FP32",
    );
    expectError(
      () => parse({ inputs: [xInput({ datatype: 'BYTES' })] }),
      'E_BAD_INPUT',
      "input 'x': datatype BYTES does not match the model's FP32",
    );
    expectError(
      () => parse({ inputs: [xInput({ datatype: 'float32' })] }),
      'E_BAD_INPUT',
      "inputs[0].datatype: unknown datatype 'float32'",
    );
    expectError(
      () => parse({ inputs: [xInput({ datatype: 5 })] }),
      'E_BAD_INPUT',
      'inputs[0].datatype: expected a string',
    );
  });

  it('refuses a value count that does not fit the shape', () => {
    expectError(
      () => parse({ inputs: [xInput({ data: x12().slice(1) })] }),
      'E_BAD_INPUT',
      "input 'x': 11 values for shape [1,3,2,2] (12 expected)",
    );
    expectError(
      () => parse({ inputs: [xInput({ data: [x12().slice(0, 6), x12().slice(0, 5)] })] }),
      'E_BAD_INPUT',
      '11 values',
    );
  });

  it('refuses data nested deeper than the rank', () => {
    const sig = sigOf('FP32');
    expectError(
      () => parse({ inputs: [{ name: 'v', datatype: 'FP32', shape: [2], data: [1, [2]] }] }, sig),
      'E_BAD_INPUT',
      "input 'v': data[1]",
      'deeper',
    );
  });

  it('refuses elements of the wrong type, naming the element', () => {
    expectError(
      () => parse({ inputs: [xInput({ data: [0, 1, '2', ...x12().slice(3)] })] }),
      'E_BAD_INPUT',
      "input 'x': data[2] is a string",
      'FP32',
    );
    const nested = [x12().slice(0, 6), [0, null, 0, 0, 0, 0]];
    expectError(() => parse({ inputs: [xInput({ data: nested })] }), 'E_BAD_INPUT', "input 'x': data[1][1] is null");
    expectError(() => parseOne('INT32', [1.5]), 'E_BAD_INPUT', 'data[0] 1.5 is not an integer');
    expectError(() => parseOne('UINT8', [256]), 'E_BAD_INPUT', 'data[0] 256 is out of range for UINT8');
    expectError(() => parseOne('INT8', [true]), 'E_BAD_INPUT', 'data[0] is a boolean');
    expectError(() => parseOne('BOOL', [1]), 'E_BAD_INPUT', 'data[0] is the number 1, BOOL needs true or false');
    expectError(
      () => parseOne('INT64', [2 ** 53]),
      'E_BAD_INPUT',
      'data[0] 9007199254740992 is past 2^53-1',
      'decimal string',
    );
    expectError(() => parseOne('UINT64', [-1]), 'E_BAD_INPUT', 'data[0] -1 is out of range for UINT64');
    expectError(() => parseOne('INT64', ['9223372036854775808']), 'E_BAD_INPUT', 'out of range for INT64');
    expectError(() => parseOne('INT64', ['12x']), 'E_BAD_INPUT', 'data[0] is a string ("12x")');
  });

  it('refuses inputs without usable data', () => {
    expectError(() => parse({ inputs: [xInput({ data: undefined })] }), 'E_BAD_INPUT', "input 'x': no data");
    expectError(
      () => parse({ inputs: [xInput({ data: 'AAAA' })] }),
      'E_BAD_INPUT',
      "input 'x': data must be an array, got a string",
    );
    expectError(
      () => parse({ inputs: [xInput({ parameters: { binary_data_size: 48 } })] }, IMAGE, new Float32Array(12)),
      'E_BAD_INPUT',
      "input 'x': has both data and parameters.binary_data_size",
    );
    expectError(
      () => parse({ inputs: [xInput({ parameters: 'p' })] }),
      'E_BAD_INPUT',
      'inputs[0].parameters: expected an object',
    );
  });

  it('refuses a header length that is not an integer', () => {
    const { body } = request({ inputs: [xInput()] });
    for (const h of ['12a', '-1', '1.5', '', '0x10', 1.5, -3]) {
      expectError(
        () => parseInferRequest(body, h, IMAGE),
        'E_BAD_INPUT',
        INFERENCE_HEADER,
        'not a non-negative integer',
      );
    }
    expectError(() => parseInferRequest(body, '0', IMAGE), 'E_BAD_INPUT', INFERENCE_HEADER, 'is 0');
  });

  it('refuses a header length past the end of the body', () => {
    const body = Buffer.alloc(512, 0x20);
    expectError(
      () => parseInferRequest(body, '900', IMAGE),
      'E_BAD_INPUT',
      'Inference-Header-Content-Length 900 is past the end of the 512-byte body',
    );
  });

  it('refuses a binary_data_size that does not fit the shape', () => {
    expectError(
      () =>
        parse(
          { inputs: [xInput({ data: undefined, parameters: { binary_data_size: 100 } })] },
          IMAGE,
          new Uint8Array(100),
        ),
      'E_BAD_INPUT',
      "input 'x': binary_data_size 100 but 48 bytes expected",
    );
    expectError(
      () =>
        parse(
          { inputs: [xInput({ data: undefined, parameters: { binary_data_size: '48' } })] },
          IMAGE,
          new Uint8Array(48),
        ),
      'E_BAD_INPUT',
      'inputs[0].parameters.binary_data_size: expected a non-negative integer',
    );
  });

  it('refuses binary data that runs past the body, is missing, or is left over', () => {
    const doc = { inputs: [xInput({ data: undefined, parameters: { binary_data_size: 48 } })] };
    expectError(
      () => parse(doc, IMAGE, new Uint8Array(40)),
      'E_BAD_INPUT',
      "input 'x': binary data",
      'runs past the end of the',
    );
    const { body } = request(doc);
    expectError(() => parseInferRequest(body, undefined, IMAGE), 'E_BAD_INPUT', "input 'x'", `no ${INFERENCE_HEADER}`);
    expectError(() => parse(doc, IMAGE, new Uint8Array(52)), 'E_BAD_INPUT', '4 bytes', 'unused');
    expectError(() => parse({ inputs: [xInput()] }, IMAGE, new Uint8Array(3)), 'E_BAD_INPUT', '3 bytes', 'unused');
  });

  it('refuses binary BOOL bytes other than 0 and 1', () => {
    const sig = sigOf('BOOL');
    expectError(
      () =>
        parse(
          { inputs: [{ name: 'v', datatype: 'BOOL', shape: [3], parameters: { binary_data_size: 3 } }] },
          sig,
          new Uint8Array([0, 1, 2]),
        ),
      'E_BAD_INPUT',
      "input 'v': BOOL element 2 is byte 2",
    );
  });
});

describe('locateJsonError', () => {
  it('finds the first bad character of assorted broken documents', () => {
    const cases: [string, number, string][] = [
      ['', 0, 'end of the JSON'],
      ['{"a":1', 6, "expected ',' or '}'"],
      ['{"a":1}}', 7, 'after the JSON value'],
      ['{"a\n":1}', 3, 'malformed string'],
      ['["\\x"]', 2, 'malformed string'],
      ['[1 2]', 3, "expected ',' or ']'"],
      ['{a:1}', 1, 'property name'],
      ['{"a":1,}', 7, 'property name'],
      ['[01]', 2, "expected ',' or ']'"],
      ['[tru]', 1, 'expected a value'],
      ['[-Infinity]', 1, 'no NaN or Infinity'],
    ];
    for (const [text, pos, reason] of cases) {
      expect(() => JSON.parse(text)).toThrow();
      const e = locateJsonError(text);
      expect([text, e.pos]).toEqual([text, pos]);
      expect(e.reason).toContain(reason);
    }
  });

  it('survives hostile nesting without overflowing the stack', () => {
    const text = '['.repeat(200_000);
    expect(locateJsonError(text).pos).toBe(200_000);
    // The request parser refuses it before parsing: nested deeper than a request can need.
    expectError(
      () => parseInferRequest(Buffer.from(text), undefined, IMAGE),
      'E_BAD_INPUT',
      'JSON nested deeper than 64 levels (at offset 64)',
    );
  });
});

// ---------------------------------------------------------------------------------------------------------
// fixtures used above

function onlyInput(c: Case): ModelSignature {
  return { ...ALL_TYPES, inputs: ALL_TYPES.inputs.filter((i) => i.name === c.datatype) };
}

function onlyOutput(c: Case): ModelSignature {
  return { ...ALL_TYPES, outputs: ALL_TYPES.outputs.filter((o) => o.name === c.datatype) };
}

/** A model with one input and one output, both 'v' of `datatype`, any length. */
function sigOf(datatype: OipDatatype): ModelSignature {
  const spec = { name: 'v', datatype, shape: [-1] };
  return { name: 'one', versions: [], inputs: [spec], outputs: [spec] };
}

/** Parses a JSON request for sigOf(datatype) giving `data` for 'v'. */
function parseOne(datatype: OipDatatype, data: unknown[]) {
  return parse({ inputs: [{ name: 'v', datatype, shape: [data.length], data }] }, sigOf(datatype));
}

function outputsOfImage(): Record<string, TensorLike> {
  return {
    y: { dtype: 'float32', dims: [1, 4], data: new Float32Array([0.5, -1, 2, 1024]) },
    z: { dtype: 'int64', dims: [2], data: new BigInt64Array([3n, -4n]) },
  };
}
