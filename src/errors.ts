/**
 * Typed errors with stable codes, shared by every layer. This module imports nothing so any layer may use it.
 * Handlers read `code`, `status` (HTTP) and `closeCode` (WebSocket); they never parse messages.
 */
export type ErrorCode =
  | 'E_BAD_INPUT'
  | 'E_BAD_MODEL'
  | 'E_BAD_SHAPE'
  | 'E_BAD_CUT'
  | 'E_BAD_PROFILE'
  | 'E_BAD_NETWORK'
  | 'E_NO_PLAN'
  | 'E_UNKNOWN_MODEL'
  | 'E_UNSUPPORTED'
  | 'E_TOO_LARGE'
  | 'E_QUEUE_FULL'
  | 'E_DEADLINE'
  | 'E_PEER_GONE'
  | 'E_BAD_FRAME'
  | 'E_UNAUTHORIZED'
  | 'E_FORBIDDEN'
  | 'E_NOT_READY'
  | 'E_NOT_FOUND'
  | 'E_INTERNAL';

const STATUS: Record<ErrorCode, number> = {
  E_BAD_INPUT: 400,
  E_BAD_MODEL: 400,
  E_BAD_SHAPE: 400,
  E_BAD_CUT: 400,
  E_BAD_PROFILE: 400,
  E_BAD_NETWORK: 400,
  E_NO_PLAN: 409,
  E_UNKNOWN_MODEL: 404,
  E_UNSUPPORTED: 400,
  E_TOO_LARGE: 413,
  E_QUEUE_FULL: 503,
  E_DEADLINE: 504,
  E_PEER_GONE: 502,
  E_BAD_FRAME: 400,
  E_UNAUTHORIZED: 401,
  E_FORBIDDEN: 403,
  E_NOT_READY: 503,
  E_NOT_FOUND: 404,
  E_INTERNAL: 500,
};

/** WebSocket close codes in the private-use range 4000-4999, one per code that can end a peer connection. */
const CLOSE: Partial<Record<ErrorCode, number>> = {
  E_BAD_FRAME: 4400,
  E_UNAUTHORIZED: 4401,
  E_UNKNOWN_MODEL: 4404,
  E_BAD_MODEL: 4409,
  E_TOO_LARGE: 4413,
  E_INTERNAL: 4500,
};

export class CleaveError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly closeCode: number;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CleaveError';
    this.code = code;
    this.status = STATUS[code];
    this.closeCode = CLOSE[code] ?? 4000;
  }
}

/** True for the codes this module knows (a peer of another version may send others). */
export function isErrorCode(c: unknown): c is ErrorCode {
  return typeof c === 'string' && Object.hasOwn(STATUS, c);
}

export function isCleaveError(e: unknown): e is CleaveError {
  return e instanceof CleaveError;
}

/** Any thrown value as a message, for logs and CLI output. */
export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
