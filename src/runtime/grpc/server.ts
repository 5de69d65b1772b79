/**
 * The Open Inference Protocol over gRPC (@grpc/grpc-js), on the origin's own port beside HTTP: the six RPCs
 * of KServe's GRPCInferenceService (grpc_predict_v2.proto here), and Triton's ModelConfig, ModelStatistics,
 * RepositoryIndex, RepositoryModelLoad and RepositoryModelUnload. It shares the HTTP gateway's deps: the same
 * signature checks, plan, pipeline, deadline limit, metrics, Triton statistics and latency window. A call's
 * gRPC deadline is the request's deadline (capped by `deadlineMs`). Errors carry gRPC status codes mapped
 * from Cleave's error codes (INVALID_ARGUMENT, NOT_FOUND, UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED).
 */
import type { Http2Server, ServerHttp2Session } from 'node:http2';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { CleaveError, errorMessage, isCleaveError, type ErrorCode } from '../../errors.js';
import type { TlsMaterial } from '../tls.js';
import {
  authorizeChange,
  changeRepository,
  repositoryIndexOf,
  requestDeadlineMs,
  serveInference,
  servedModel,
  type GatewayDeps,
  type ServedModel,
} from '../http/gateway.js';
import { modelMetadata } from '../http/oip.js';
import { describeRoute } from '../plan/route.js';
import { modelConfig, modelStats } from '../http/triton.js';
import { inferInputs, inferResponse, type ModelInferRequest } from './codec.js';

/** The service definition clients and tests load too: names and numbers are KServe's. */
export const OIP_PROTO = fileURLToPath(new URL('./grpc_predict_v2.proto', import.meta.url));

/** How the proto is loaded on both sides: field names as written, int64 as decimal strings, defaults set. */
export const PROTO_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
};

/** The extensions ServerMetadata lists: those the gRPC side has (Triton's names). */
const extensions = (d: GatewayDeps): string[] => [
  'model_configuration',
  'statistics',
  ...(d.repository ? ['model_repository'] : []),
];

const STATUS: Partial<Record<ErrorCode, grpc.status>> = {
  E_BAD_INPUT: grpc.status.INVALID_ARGUMENT,
  E_BAD_SHAPE: grpc.status.INVALID_ARGUMENT,
  E_BAD_MODEL: grpc.status.INVALID_ARGUMENT,
  E_UNSUPPORTED: grpc.status.INVALID_ARGUMENT,
  E_UNKNOWN_MODEL: grpc.status.NOT_FOUND,
  E_NOT_FOUND: grpc.status.NOT_FOUND,
  E_NOT_READY: grpc.status.UNAVAILABLE,
  E_PEER_GONE: grpc.status.UNAVAILABLE,
  E_QUEUE_FULL: grpc.status.RESOURCE_EXHAUSTED,
  E_TOO_LARGE: grpc.status.RESOURCE_EXHAUSTED,
  E_DEADLINE: grpc.status.DEADLINE_EXCEEDED,
  E_UNAUTHORIZED: grpc.status.UNAUTHENTICATED,
  E_FORBIDDEN: grpc.status.PERMISSION_DENIED,
};

/** A thrown error as a gRPC status: Cleave's code mapped, its message the details (and a cleave-code trailer). */
export function grpcError(e: unknown): grpc.ServiceError {
  const code = isCleaveError(e) ? (STATUS[e.code] ?? grpc.status.INTERNAL) : grpc.status.INTERNAL;
  const metadata = new grpc.Metadata();
  metadata.set('cleave-code', isCleaveError(e) ? e.code : 'E_INTERNAL');
  return Object.assign(new Error(errorMessage(e)), { code, details: errorMessage(e), metadata });
}

export interface GrpcFrontOptions {
  /** `HOST:PORT` to listen on (port 0: a free one). */
  readonly listen: string;
  /** The deployment's TLS: the same certificate as HTTPS. */
  readonly tls?: TlsMaterial | null;
}

export class GrpcFront {
  private constructor(
    private readonly server: grpc.Server,
    readonly port: number,
  ) {}

  static async start(d: GatewayDeps, o: GrpcFrontOptions): Promise<GrpcFront> {
    const def = protoLoader.loadSync(OIP_PROTO, PROTO_OPTIONS);
    const pkg = grpc.loadPackageDefinition(def) as unknown as {
      inference: { GRPCInferenceService: { service: grpc.ServiceDefinition } };
    };
    const server = new grpc.Server({
      // The whole request is one message: the body limit plus room for names and shapes.
      'grpc.max_receive_message_length': d.limits.maxBodyBytes + 1024 * 1024,
      'grpc.max_send_message_length': -1,
    });
    server.addService(pkg.inference.GRPCInferenceService.service, handlers(d));
    const creds = o.tls
      ? grpc.ServerCredentials.createSsl(null, [{ cert_chain: o.tls.cert, private_key: o.tls.key }], false)
      : grpc.ServerCredentials.createInsecure();
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(o.listen, creds, (err, p) => (err ? reject(err) : resolve(p))),
    ).catch((e: unknown) => {
      throw new CleaveError('E_BAD_INPUT', `grpc ${o.listen}: ${errorMessage(e)}`);
    });
    widenReceiveWindows(server);
    return new GrpcFront(server, port);
  }

  /** Stops taking calls; those in flight are cancelled after `graceMs`. */
  close(graceMs = 1000): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, graceMs);
      timer.unref();
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

/** The HTTP/2 receive window each connection and call of the gRPC front gets (Node's default is 64 KiB). */
export const GRPC_RECEIVE_WINDOW = 8 * 1024 * 1024;

/**
 * grpc-js 1.14's server leaves its HTTP/2 receive windows at Node's 64 KiB and has no option to raise them
 * (grpc/grpc-node#3058 would add `grpc-node.flow_control_window`): a 600 KB request then crosses in ~10
 * windows, each waiting for a WINDOW_UPDATE round trip. Every session of the server's HTTP/2 listeners gets
 * GRPC_RECEIVE_WINDOW for the connection and for each stream instead. The listeners are grpc-js's own
 * (`http2Servers`, private): without them (a grpc-js that renamed it) the windows stay as they are.
 */
function widenReceiveWindows(server: grpc.Server): void {
  const listeners = (server as unknown as { http2Servers?: Map<Http2Server, unknown> }).http2Servers;
  for (const h of listeners?.keys() ?? [])
    h.on('session', (session: ServerHttp2Session) => {
      session.setLocalWindowSize(GRPC_RECEIVE_WINDOW);
      session.settings({ initialWindowSize: GRPC_RECEIVE_WINDOW });
    });
}

type Unary<Req, Res> = grpc.handleUnaryCall<Req, Res>;

/** RepositoryModelLoadRequest and RepositoryModelUnloadRequest, as proto-loader decodes them (oneofs named). */
interface RepositoryChangeRequest {
  readonly repository_name: string;
  readonly model_name: string;
  readonly parameters?: Record<
    string,
    { parameter_choice?: 'bool_param' | 'int64_param' | 'string_param' | 'bytes_param' } & Record<string, unknown>
  >;
}

function handlers(d: GatewayDeps): grpc.UntypedServiceImplementation {
  const model = (name: string, version: string): ServedModel => servedModel(d, name, version);
  /** A handler whose throw (or rejection) is the call's error status. */
  const unary =
    <Req, Res>(fn: (req: Req, call: grpc.ServerUnaryCall<Req, Res>) => Res | Promise<Res>): Unary<Req, Res> =>
    (call, callback) => {
      Promise.resolve()
        .then(() => fn(call.request, call))
        .then(
          (res) => callback(null, res),
          (e: unknown) => callback(grpcError(e)),
        );
    };

  const ServerLive = unary(() => ({ live: true }));
  const ServerReady = unary(() => ({ ready: d.ready() }));
  const ModelReady = unary((req: { name: string; version: string }) => ({
    ready: model(req.name, req.version).ready(),
  }));
  const ServerMetadata = unary(() => ({ name: 'cleave', version: d.serverVersion, extensions: extensions(d) }));
  const ModelMetadata = unary((req: { name: string; version: string }) =>
    modelMetadata(model(req.name, req.version).model.signature),
  );
  const ModelInfer = unary((req: ModelInferRequest, call) =>
    serveInference(
      d,
      () => model(req.model_name, req.model_version),
      async (m, plan, run) => {
        const sig = m.model.signature;
        const parsed = inferInputs(req, sig, d.limits.maxBodyBytes);
        const outputs = await run(parsed.inputs, requestDeadlineMs(callDeadlineMs(call), d.limits));
        const res = inferResponse(sig, { ...parsed, modelVersion: m.model.version }, outputs);
        // The epoch that served it, as HTTP's x-cleave-epoch header.
        const md = new grpc.Metadata();
        md.set('cleave-epoch', String(plan.epoch));
        call.sendMetadata(md);
        return res;
      },
    ),
  );
  const ModelStatistics = unary((req: { name: string; version: string }) => {
    const ms = req.name !== '' ? [model(req.name, req.version)] : d.models;
    return { model_stats: ms.flatMap((m) => modelStats(m.model.signature, m.stats).model_stats) };
  });
  const RepositoryIndex = unary((req: { repository_name: string; ready: boolean }) => ({
    models: repositoryIndexOf(d, req.ready),
  }));
  /** Load and unload: the control token in the `authorization` metadata, as HTTP's header. */
  const change = (op: 'load' | 'unload') =>
    unary(async (req: RepositoryChangeRequest, call) => {
      const auth = call.metadata.get('authorization');
      const repo = authorizeChange(
        d,
        op,
        req.model_name,
        auth.length > 1 ? null : auth.length ? String(auth[0]) : undefined,
      );
      const params = Object.fromEntries(
        Object.entries(req.parameters ?? {}).map(([k, v]) => [k, v[v.parameter_choice ?? 'string_param']]),
      );
      await changeRepository(d, repo, op, req.model_name, params);
      return {};
    });
  const ModelConfig = unary((req: { name: string; version: string }) => {
    const m = model(req.name, req.version);
    const p = m.plan();
    const c = modelConfig(m.model.signature, p ? { epoch: p.epoch, route: describeRoute(p.route) } : null);
    return {
      config: {
        name: c.name,
        platform: c.platform,
        backend: c.backend,
        max_batch_size: c.max_batch_size,
        input: c.input,
        output: c.output,
        parameters: Object.fromEntries(
          Object.entries(c.cleave).map(([k, v]) => [`cleave.${k}`, { string_value: JSON.stringify(v) }]),
        ),
      },
    };
  });
  return {
    ServerLive,
    ServerReady,
    ModelReady,
    ServerMetadata,
    ModelMetadata,
    ModelInfer,
    ModelStatistics,
    RepositoryIndex,
    RepositoryModelLoad: change('load'),
    RepositoryModelUnload: change('unload'),
    ModelConfig,
  };
}

/** Milliseconds left before the call's deadline; undefined when it has none. Past it: E_DEADLINE. */
function callDeadlineMs(call: grpc.ServerUnaryCall<unknown, unknown>): number | undefined {
  const dl = call.getDeadline();
  const at = dl instanceof Date ? dl.getTime() : dl;
  if (!Number.isFinite(at)) return undefined;
  const left = at - Date.now();
  if (left <= 0) throw new CleaveError('E_DEADLINE', 'the call reached its deadline before it was run');
  return left;
}
