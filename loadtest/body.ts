/**
 * A binary-extension OIP request body built from a model's signature (`GET /v2/models/{m}`): random FP32
 * inputs (zeros for other types), symbolic dims as 1, and the header length the binary extension needs.
 */
const SIZE: Record<string, number> = { FP32: 4, FP64: 8, INT64: 8, INT32: 4, UINT8: 1, INT8: 1, BOOL: 1, FP16: 2 };

export interface InferBody {
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body: Buffer;
}

export async function inferBody(url: string, model: string): Promise<InferBody> {
  let meta: { inputs?: { name: string; datatype: string; shape: number[] }[]; error?: string };
  try {
    meta = (await (await fetch(`${url}/v2/models/${encodeURIComponent(model)}`)).json()) as typeof meta;
  } catch (e) {
    throw new Error(`${url}/v2/models/${model}: ${(e as Error).message}`);
  }
  if (!meta.inputs) throw new Error(`${url}/v2/models/${model}: ${meta.error ?? 'no metadata'}`);
  const parts: Buffer[] = [];
  const inputs = meta.inputs.map((i) => {
    const dims = i.shape.map((d) => (d < 0 ? 1 : d));
    const bytes = dims.reduce((a, d) => a * d, 1) * (SIZE[i.datatype] ?? 4);
    const data = Buffer.alloc(bytes);
    if (i.datatype === 'FP32') for (let k = 0; k < bytes / 4; k++) data.writeFloatLE(Math.random(), k * 4);
    parts.push(data);
    return { name: i.name, shape: dims, datatype: i.datatype, parameters: { binary_data_size: bytes } };
  });
  const header = Buffer.from(JSON.stringify({ inputs }));
  return {
    path: `/v2/models/${encodeURIComponent(model)}/infer`,
    headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(header.length) },
    body: Buffer.concat([header, ...parts]),
  };
}
