/**
 * Binary Open Inference Protocol requests for the benchmarks: one body built once, posted with node:http and
 * keep-alive (fetch, undici, adds ~0.5 ms per request here, which is the client's cost, not Cleave's).
 */
import http from 'node:http';

/** The JSON header and the whole body of a binary-extension request for one FP32 input. */
export function binaryBody(
  input: { name: string; dims: readonly number[] },
  x: Float32Array,
): { header: Buffer; body: Buffer } {
  const header = Buffer.from(
    JSON.stringify({
      inputs: [
        { name: input.name, shape: input.dims, datatype: 'FP32', parameters: { binary_data_size: x.byteLength } },
      ],
      parameters: { binary_data_output: true },
    }),
  );
  return { header, body: Buffer.concat([header, Buffer.from(x.buffer, x.byteOffset, x.byteLength)]) };
}

/** Posts `body` to `model`'s infer endpoint; resolves with the status and the epoch the answer came from. */
export function postInfer(o: {
  port: number;
  model: string;
  agent: http.Agent;
  header: Buffer;
  body: Buffer;
}): Promise<{ status: number; epoch: number }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port: o.port,
        path: `/v2/models/${o.model}/infer`,
        method: 'POST',
        agent: o.agent,
        headers: {
          'inference-header-content-length': String(o.header.length),
          'content-type': 'application/octet-stream',
          'content-length': o.body.length,
        },
      },
      (res) => {
        res.resume();
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, epoch: Number(res.headers['x-cleave-epoch'] ?? -1) }),
        );
      },
    );
    req.on('error', reject);
    req.end(o.body);
  });
}
