/**
 * fp16 and int8 tensors crossing cuts between real hosts: a model (built here) that computes in half
 * precision and quantises to int8 (QuantizeLinear / DequantizeLinear, as QDQ exporters write), split so that
 * the device -> edge hop carries a float16 tensor and the edge -> cloud hop an int8 one. The answer through
 * the three hosts must equal single-process ORT exactly.
 */
import ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OnnxModel } from '../src/graph/model.js';
import { onnx } from '../src/graph/onnx.js';
import { inferBinary, putJson, startDeployment, type Deployment } from './helpers/deployment.js';
import { floats, runBytes, tinyModel } from './helpers/tiny-onnx.js';

const T = onnx.TensorProto.DataType;
const int8 = (name: string, v: number) => ({
  name,
  dims: [],
  dataType: T.INT8,
  rawData: new Uint8Array(Int8Array.from([v]).buffer),
});

// x -> Cast(fp16) -> Relu -> Cast(fp32) -> QuantizeLinear(int8) -> DequantizeLinear -> Sigmoid -> y
const BYTES = tinyModel({
  opset: 13,
  inputs: [{ name: 'x', dims: [1, 64] }],
  outputs: [{ name: 'y', dims: [1, 64] }],
  inits: [floats('scale', [], [0.02]), int8('zero', 0)],
  nodes: [
    { op: 'Cast', inputs: ['x'], outputs: ['h'], attrs: { to: T.FLOAT16 }, name: 'half' },
    { op: 'Relu', inputs: ['h'], outputs: ['hr'], name: 'relu' },
    { op: 'Cast', inputs: ['hr'], outputs: ['f'], attrs: { to: T.FLOAT }, name: 'full' },
    { op: 'QuantizeLinear', inputs: ['f', 'scale', 'zero'], outputs: ['q'], name: 'quant' },
    { op: 'DequantizeLinear', inputs: ['q', 'scale', 'zero'], outputs: ['d'], name: 'dequant' },
    { op: 'Sigmoid', inputs: ['d'], outputs: ['y'], name: 'sigmoid' },
  ],
});

describe('runtime: float16 and int8 tensors on the wire', () => {
  let d: Deployment;
  beforeAll(async () => {
    d = await startDeployment({ modelName: 'halfq', modelBytes: BYTES });
  }, 60_000);
  afterAll(async () => {
    await d?.close();
  });

  it('device -> edge carries float16, edge -> cloud int8, and the answer equals one process', async () => {
    const a = d.device.analysis;
    const after = (name: string): number => a.blocks.findIndex((b) => b.after.tensors.includes(name)) + 1;
    const [h, q] = [after('h'), after('q')];
    expect(a.types.get('h')?.dtype).toBe('float16');
    expect(a.types.get('q')?.dtype).toBe('int8');
    const n = a.blocks.length;
    const pin = await putJson(`${d.url}/v1/plan`, {
      stages: [
        { host: 'dev', blocks: [0, h] },
        { host: 'edg', blocks: [h, q] },
        { host: 'cld', blocks: [q, n] },
      ],
    });
    expect(pin.status, await pin.clone().text()).toBe(200);
    const x = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i) * 2);
    const want = (await runBytes(BYTES, { x: new ort.Tensor('float32', x, [1, 64]) })).y.data;
    const r = await inferBinary(d.url, 'halfq', [{ name: 'x', dtype: 'float32', dims: [1, 64], data: x }]);
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    expect(Array.from(r.outputs.y)).toEqual(Array.from(want as Float32Array));
    // The tensors did cross: the device sent to the edge and the edge to the cloud.
    const plan = await (await fetch(`${d.url}/v1/plan`)).json();
    expect(plan.hops.map((x: { from: string; to: string; rawBytes: number }) => [x.from, x.to, x.rawBytes])).toEqual([
      ['dev', 'edg', 128],
      ['edg', 'cld', 64],
      ['cld', 'dev', 256],
    ]);
    expect(OnnxModel.fromBytes(BYTES).nodes.length).toBe(6);
  });
});
