/**
 * Messages between the executor and its ORT worker threads. Every request carries an id that its one reply
 * echoes; the worker handles requests one at a time, in the order they were posted.
 */
import type { ErrorCode } from '../../errors.js';
import type { TensorLike, ValueInfo } from './tensors.js';

export interface LoadRequest {
  readonly op: 'load';
  readonly id: number;
  readonly key: string;
  /** A file path the worker reads itself, or ONNX bytes in a SharedArrayBuffer (shared, not copied). */
  readonly model: Uint8Array | string;
  readonly intraOpThreads: number;
  readonly warmup: number;
  readonly warmupFeeds?: Record<string, TensorLike>;
}

export interface RunRequest {
  readonly op: 'run';
  readonly id: number;
  readonly key: string;
  readonly feeds: Record<string, TensorLike>;
  readonly outputs?: readonly string[];
}

interface ReleaseRequest {
  readonly op: 'release';
  readonly id: number;
  readonly key: string;
}

/** Releases every session and closes the worker's port after the reply, so the thread exits. */
interface CloseRequest {
  readonly op: 'close';
  readonly id: number;
}

export type WorkerRequest = LoadRequest | RunRequest | ReleaseRequest | CloseRequest;

export interface LoadedReply {
  readonly id: number;
  readonly ok: true;
  readonly inputs: ValueInfo[];
  readonly outputs: ValueInfo[];
  readonly createMs: number;
  readonly warmupMs: number;
}

export interface RanReply {
  readonly id: number;
  readonly ok: true;
  readonly outputs: Record<string, TensorLike>;
  /** Time inside `session.run`, measured in the worker. */
  readonly computeMs: number;
  /** The feeds' buffers, done with and sent back for reuse by later feed copies. */
  readonly spent: ArrayBuffer[];
}

export interface DoneReply {
  readonly id: number;
  readonly ok: true;
}

interface FailedReply {
  readonly id: number;
  readonly ok: false;
  readonly code: ErrorCode;
  readonly message: string;
}

/** Posted once by a worker when ORT is imported and it accepts requests. */
export interface ReadyMessage {
  readonly op: 'ready';
}

export type WorkerReply = LoadedReply | RanReply | DoneReply | FailedReply;
export type WorkerMessage = WorkerReply | ReadyMessage;
