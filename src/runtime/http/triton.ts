/**
 * What Triton's clients (`tritonclient`) call beyond the Open Inference Protocol core, in Triton's JSON
 * shapes: the model configuration (`GET /v2/models/{m}/config`), inference statistics (`GET
 * /v2/models[/{m}]/stats`), the repository index (`POST /v2/repository/index`) and the checks of its load and
 * unload. Pure: the gateway passes what it knows.
 */
import { CleaveError } from '../../errors.js';
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

/** A model of the repository folder. */
export interface RepoEntry {
  readonly name: string;
  readonly version: string;
}

/**
 * `POST /v2/repository/index` (and gRPC's RepositoryIndex): every model in the repository folder, Triton's
 * way. Those this deployment serves are READY, or UNAVAILABLE with their `unavailable` as the reason; the
 * others are UNAVAILABLE, not loaded (a load adds one). `readyOnly`: only READY ones.
 */
export function repositoryIndex(
  served: readonly { readonly signature: ModelSignature; readonly unavailable: string | null }[],
  models: readonly RepoEntry[],
  readyOnly = false,
): Record<string, string>[] {
  const names = served.map((m) => m.signature.name);
  const mine = served.flatMap(({ signature: sig, unavailable }) =>
    sig.versions.map((version) => ({
      name: sig.name,
      version,
      state: unavailable === null ? 'READY' : 'UNAVAILABLE',
      ...(unavailable === null ? {} : { reason: unavailable }),
    })),
  );
  const others = models
    .filter((m) => !names.includes(m.name))
    .map((m) => ({
      name: m.name,
      version: m.version,
      state: 'UNAVAILABLE',
      reason: `not loaded (this deployment serves ${quoted(names)})`,
    }));
  const all = [...mine, ...others].sort((x, y) => x.name.localeCompare(y.name));
  return readyOnly ? all.filter((m) => m.state === 'READY') : all;
}

const quoted = (names: readonly string[]): string => names.map((n) => `'${n}'`).join(', ');

/**
 * Checks a repository `load` or `unload` of `name`: one of the deployment's models, with parameters Cleave
 * takes (none for load: it loads the repository's files as they are; `unload_dependents` for unload, which
 * has nothing to do with no ensembles). Throws E_UNKNOWN_MODEL for a model not in the repository,
 * E_UNSUPPORTED for a model of it the deployment does not serve or a parameter Cleave does not take.
 */
export function checkRepositoryChange(
  op: 'load' | 'unload',
  name: string,
  served: readonly string[],
  models: readonly RepoEntry[],
  parameters: Readonly<Record<string, unknown>>,
  /** A model of the repository not served yet may be loaded (the deployment can add one at run time). */
  canAdd = false,
): void {
  if (!served.includes(name)) {
    if (!models.some((m) => m.name === name))
      throw new CleaveError(
        'E_UNKNOWN_MODEL',
        `model '${name}' is not in the repository (has: ${models.map((m) => m.name).join(', ') || 'nothing'})`,
      );
    if (op === 'unload')
      throw new CleaveError(
        'E_UNSUPPORTED',
        `cannot unload '${name}': it is not loaded (this deployment serves ${quoted(served)})`,
      );
    if (!canAdd)
      throw new CleaveError(
        'E_UNSUPPORTED',
        `cannot ${op} '${name}': this deployment serves ${quoted(served)} and cannot load another while it runs; add '${name}' to the config's models to serve it`,
      );
  }
  for (const [k, v] of Object.entries(parameters)) {
    if (op === 'unload' && k === 'unload_dependents' && typeof v === 'boolean') continue;
    throw new CleaveError(
      'E_UNSUPPORTED',
      op === 'load'
        ? `parameters.${k}: load takes no parameters (the model loads from the repository's files as they are)`
        : `parameters.${k}: unload takes only unload_dependents (a boolean)`,
    );
  }
}
