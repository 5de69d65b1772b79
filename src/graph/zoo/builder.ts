/**
 * Builds ONNX models in code: the zoo's architectures are written against this, one call per node, with
 * seeded deterministic weights. It also records the Keras layer graph the architecture mirrors, so `inspect`
 * can count the split points Scission's single-tensor rule finds on the Keras model itself.
 */
import { onnx, type INodeProto, type ITensorProto, type IAttributeProto, type IValueInfoProto } from '../onnx.js';

/** Wrap a number to store it as a FLOAT attribute even when it is an integer (e.g. `alpha: float(1)`). */
class FloatAttr {
  constructor(readonly value: number) {}
}
export const float = (v: number): FloatAttr => new FloatAttr(v);

type AttrValue = number | number[] | string | FloatAttr;

/** How a weight tensor is filled. All kinds are deterministic given the builder's seed. */
export type WeightInit =
  | 'he' // uniform with the He-normal variance for fan-in = product of dims[1..]: keeps activations O(1)
  | 'lecun' // variance 1/fan-in: for kernels whose input did not pass a ReLU (pointwise after depthwise)
  | 'zeros'
  | 'ones'
  | 'bias' // small uniform in [-0.05, 0.05]
  | 'gamma' // uniform in [0.8, 1.2]
  | 'beta' // uniform in [-0.1, 0.1]
  | 'mean' // uniform in [-0.1, 0.1]
  | 'var'; // uniform in [0.8, 1.2]

interface KerasLayerRecord {
  readonly name: string;
  readonly kind: string;
  /** Tensor names feeding the layer (its Keras inbound layers' outputs). */
  readonly inputs: string[];
  readonly output: string;
}

/** Metadata key under which the Keras layer graph is stored in the model (JSON). */
export const KERAS_LAYERS_KEY = 'cleave.keras_layers';

/** xorshift32: tiny, fast, and the same on every machine. */
class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 0x9e3779b9;
  }
  next(): number {
    let x = this.s;
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    this.s = x;
    return x / 4294967296;
  }
}

export class GraphBuilder {
  private readonly nodes: INodeProto[] = [];
  private readonly inits: ITensorProto[] = [];
  private readonly inputs: IValueInfoProto[] = [];
  private readonly outputs: IValueInfoProto[] = [];
  private readonly layers: KerasLayerRecord[] = [];
  private readonly used = new Set<string>();
  private readonly rng: Rng;
  /** Parameters counted as Keras counts them (weights created with `keras: false` are left out). */
  paramCount = 0;

  /**
   * `weights: false` builds the graph without filling weight data: parameter counts and the Keras layer
   * record stay exact, but `toBytes()` refuses (used to check full-size architectures cheaply).
   */
  constructor(
    readonly name: string,
    seed: number,
    readonly opset = 13,
    private readonly opts: { weights?: boolean } = {},
  ) {
    this.rng = new Rng(seed);
  }

  /** A name not used before, derived from `base`. */
  unique(base: string): string {
    let n = base;
    for (let i = 1; this.used.has(n); i++) n = `${base}_${i}`;
    this.used.add(n);
    return n;
  }

  input(name: string, dims: number[]): string {
    const n = this.unique(name);
    this.inputs.push(valueInfo(n, dims));
    this.layers.push({ name: n, kind: 'InputLayer', inputs: [], output: n });
    return n;
  }

  /** Marks a tensor as a graph output (float32 of the given dims; dims may be omitted). */
  output(tensor: string, dims?: number[]): void {
    this.outputs.push(valueInfo(tensor, dims));
  }

  /**
   * Adds a float32 initializer. `keras: false` leaves it out of the parameter count, for tensors ONNX
   * needs that Keras does not have (a BatchNormalization scale of ones where Keras uses `scale=False`).
   */
  weight(base: string, dims: number[], init: WeightInit, opts: { keras?: boolean } = {}): string {
    const n = this.unique(base);
    const count = dims.reduce((a, d) => a * d, 1);
    const data = new Float32Array(this.opts.weights === false ? 0 : count);
    if (this.opts.weights !== false) this.fill(data, dims, init);
    this.inits.push({
      name: n,
      dims,
      dataType: onnx.TensorProto.DataType.FLOAT,
      rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    });
    if (opts.keras !== false) this.paramCount += count;
    return n;
  }

  /** An int64 constant initializer (shapes, axes, pads); never counted as a parameter. */
  int64s(base: string, values: number[]): string {
    const n = this.unique(base);
    const data = BigInt64Array.from(values.map((v) => BigInt(v)));
    this.inits.push({
      name: n,
      dims: [values.length],
      dataType: onnx.TensorProto.DataType.INT64,
      rawData: new Uint8Array(data.buffer),
    });
    return n;
  }

  /** A float32 scalar constant initializer (Clip bounds); never counted as a parameter. */
  scalar(base: string, value: number): string {
    const n = this.unique(base);
    const data = Float32Array.of(value);
    this.inits.push({
      name: n,
      dims: [],
      dataType: onnx.TensorProto.DataType.FLOAT,
      rawData: new Uint8Array(data.buffer),
    });
    return n;
  }

  /** Adds a node; returns its output tensor names (`outputs` of them, named after the node). */
  node(
    opType: string,
    inputs: string[],
    attrs: Record<string, AttrValue> = {},
    opts: { name?: string; outputs?: number } = {},
  ): string[] {
    const name = this.unique(opts.name ?? opType.toLowerCase());
    const outs: string[] = [];
    const k = opts.outputs ?? 1;
    for (let i = 0; i < k; i++) outs.push(k === 1 ? name : this.unique(`${name}:${i}`));
    this.nodes.push({
      name,
      opType,
      input: inputs,
      output: outs,
      attribute: Object.entries(attrs).map(([a, v]) => attr(a, v)),
    });
    return outs;
  }

  /** `node` for the common one-output case. */
  op(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, name?: string): string {
    return this.node(opType, inputs, attrs, { name })[0];
  }

  /** Records one Keras layer of the mirrored architecture: its inbound tensors and its output tensor. */
  keras(kind: string, name: string, inputs: string[], output: string): string {
    this.layers.push({ name, kind, inputs, output });
    return output;
  }

  get kerasLayers(): readonly KerasLayerRecord[] {
    return this.layers;
  }

  /** The finished model as ONNX bytes. */
  toBytes(): Uint8Array {
    if (this.opts.weights === false) throw new Error(`model '${this.name}' was built without weights`);
    const model = onnx.ModelProto.create({
      irVersion: 7,
      producerName: 'cleave-zoo',
      producerVersion: '1',
      opsetImport: [{ domain: '', version: this.opset }],
      graph: {
        name: this.name,
        node: this.nodes,
        initializer: this.inits,
        input: this.inputs,
        output: this.outputs,
      },
      metadataProps: [
        {
          key: KERAS_LAYERS_KEY,
          value: JSON.stringify(this.layers.map((l) => ({ n: l.name, k: l.kind, i: l.inputs, o: l.output }))),
        },
        { key: 'cleave.keras_params', value: String(this.paramCount) },
      ],
    });
    return onnx.ModelProto.encode(model).finish();
  }

  private fill(data: Float32Array, dims: number[], init: WeightInit): void {
    const r = this.rng;
    const uni = (lo: number, hi: number): void => {
      const w = hi - lo;
      for (let i = 0; i < data.length; i++) data[i] = lo + w * r.next();
    };
    switch (init) {
      case 'zeros':
        return;
      case 'ones':
        data.fill(1);
        return;
      case 'he': {
        const fanIn = dims.slice(1).reduce((a, d) => a * d, 1) || 1;
        const a = Math.sqrt(3) * Math.sqrt(2 / fanIn);
        uni(-a, a);
        return;
      }
      case 'lecun': {
        const fanIn = dims.slice(1).reduce((a, d) => a * d, 1) || 1;
        const a = Math.sqrt(3) * Math.sqrt(1 / fanIn);
        uni(-a, a);
        return;
      }
      case 'bias':
        uni(-0.05, 0.05);
        return;
      case 'gamma':
      case 'var':
        uni(0.8, 1.2);
        return;
      case 'beta':
      case 'mean':
        uni(-0.1, 0.1);
        return;
    }
  }
}

function valueInfo(name: string, dims?: number[]): IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: onnx.TensorProto.DataType.FLOAT,
        shape: dims ? { dim: dims.map((d) => ({ dimValue: d })) } : undefined,
      },
    },
  };
}

function attr(name: string, v: AttrValue): IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (v instanceof FloatAttr) return { name, type: T.FLOAT, f: v.value };
  if (typeof v === 'string') return { name, type: T.STRING, s: new TextEncoder().encode(v) };
  if (Array.isArray(v)) return { name, type: T.INTS, ints: v };
  return Number.isInteger(v) ? { name, type: T.INT, i: v } : { name, type: T.FLOAT, f: v };
}
