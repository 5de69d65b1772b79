/**
 * What Triton's clients (`tritonclient`) call beyond the Open Inference Protocol core, in Triton's JSON
 * shapes: the model configuration (`GET /v2/models/{m}/config`), inference statistics (`GET
 * /v2/models[/{m}]/stats`) and the repository index (`POST /v2/repository/index`). Pure: the gateway
 * passes what it knows.
 */
import type { ModelSignature } from './oip.js';

/** Triton's `data_type` name of an OIP datatype (its model config spells types TYPE_...). */
export function tritonDataType(datatype: string): string {
  return datatype === 'BYTES' ? 'TYPE_STRING' : `TYPE_${datatype}`;
}

/** Triton's model config, the fields Cleave fills, plus its own section. */
export interface TritonModelConfig {
  readonly name: string;
  readonly platform: string;
  readonly backend: string;
  readonly version_policy: { readonly specific: { readonly versions: number[] } };
  readonly max_batch_size: number;
  readonly input: readonly { name: string; data_type: string; dims: number[] }[];
  readonly output: readonly { name: string; data_type: string; dims: number[] }[];
  readonly cleave: {
    readonly split: boolean;
    readonly plan: { readonly epoch: number; readonly route: string } | null;
  };
}

/** `GET /v2/models/{m}/config` (and gRPC's ModelConfig): the JSON form of Triton's model config. */
export function modelConfig(
  sig: ModelSignature,
  plan: { readonly epoch: number; readonly route: string } | null,
): TritonModelConfig {
  const io = (t: ModelSignature['inputs'][number]) => ({
    name: t.name,
    data_type: tritonDataType(t.datatype),
    dims: [...t.shape],
  });
  return {
    name: sig.name,
    platform: sig.platform ?? 'onnxruntime_onnx',
    backend: 'onnxruntime',
    version_policy: { specific: { versions: sig.versions.map(Number).filter((v) => Number.isInteger(v)) } },
    // The served shapes are whole (the batch dimension, if any, is part of dims): no server-side batching.
    max_batch_size: 0,
    input: sig.inputs.map(io),
    output: sig.outputs.map(io),
    cleave: { split: true, plan },
  };
}

/** Counters of one model's requests, kept by the gateway beside its Prometheus metrics. */
export class InferenceStats {
  successCount = 0;
  successNs = 0;
  failCount = 0;
  failNs = 0;
  /** ms since the epoch of the last request answered (0: none yet), as Triton reports it. */
  lastInference = 0;

  record(ok: boolean, ms: number, at = Date.now()): void {
    const ns = Math.round(ms * 1e6);
    if (ok) {
      this.successCount++;
      this.successNs += ns;
    } else {
      this.failCount++;
      this.failNs += ns;
    }
    this.lastInference = at;
  }
}

/**
 * `GET /v2/models/{m}/stats` (and `/v2/models/stats`): Triton's `model_stats` list. A request's whole time
 * is its compute (`compute_infer`): the split pipeline has no separate server-side queue or input/output
 * copy phases to report (queueing happens per host, inside the stages), so those are 0.
 */
export function modelStats(sig: ModelSignature, s: InferenceStats): { model_stats: Record<string, unknown>[] } {
  const d = (count: number, ns: number) => ({ count, ns });
  return {
    model_stats: sig.versions.map((version) => ({
      name: sig.name,
      version,
      last_inference: s.lastInference,
      inference_count: s.successCount,
      execution_count: s.successCount,
      inference_stats: {
        success: d(s.successCount, s.successNs),
        fail: d(s.failCount, s.failNs),
        queue: d(s.successCount, 0),
        compute_input: d(s.successCount, 0),
        compute_infer: d(s.successCount, s.successNs),
        compute_output: d(s.successCount, 0),
        cache_hit: d(0, 0),
        cache_miss: d(0, 0),
      },
      batch_stats: [],
      memory_usage: [],
    })),
  };
}

/** `POST /v2/repository/index`: the one model this deployment serves. */
export function repositoryIndex(sig: ModelSignature, ready: boolean): Record<string, string>[] {
  return sig.versions.map((version) => ({
    name: sig.name,
    version,
    state: ready ? 'READY' : 'UNAVAILABLE',
    ...(ready ? {} : { reason: 'the deployment has no plan yet' }),
  }));
}
