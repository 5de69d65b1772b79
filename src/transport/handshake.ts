/**
 * What the two ends of a connection agree on before frames flow: the shared token (checked on the HTTP
 * upgrade), then one `hello` frame each way carrying host name, tier and model sha256.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { CleaveError, type ErrorCode } from '../errors.js';

/** Protocol spoken in hello frames; a peer with another one is refused like a different model. */
export const PROTOCOL = 1;

export interface HostIdentity {
  /** Unique host name, as used in routes and link names. */
  host: string;
  /** 'device' | 'edge' | 'cloud' (not checked here). */
  tier: string;
}

export interface PeerIdentity extends HostIdentity {
  modelSha256: string;
}

interface HelloBody extends PeerIdentity {
  protocol: number;
}

export function helloBody(self: HostIdentity, modelSha256: string): HelloBody {
  return { host: self.host, tier: self.tier, modelSha256, protocol: PROTOCOL };
}

/** Validates a received hello body (E_BAD_FRAME naming the field). */
export function checkHello(body: unknown): HelloBody {
  if (typeof body !== 'object' || body === null)
    throw new CleaveError('E_BAD_FRAME', 'bad frame: hello body is not a map');
  const b = body as Record<string, unknown>;
  for (const k of ['host', 'tier', 'modelSha256'] as const) {
    if (typeof b[k] !== 'string' || b[k] === '')
      throw new CleaveError('E_BAD_FRAME', `bad frame: hello body.${k} is not a non-empty string`);
  }
  if (typeof b.protocol !== 'number')
    throw new CleaveError('E_BAD_FRAME', 'bad frame: hello body.protocol is not a number');
  return { host: b.host as string, tier: b.tier as string, modelSha256: b.modelSha256 as string, protocol: b.protocol };
}

/** Null when the peer may talk to us, else the error that ends the connection (close code 4409). */
export function mismatch(ours: string, peer: HelloBody): CleaveError | null {
  if (peer.protocol !== PROTOCOL) {
    return new CleaveError(
      'E_BAD_MODEL',
      `peer ${peer.host} speaks transport protocol ${peer.protocol}, this host ${PROTOCOL}`,
    );
  }
  if (peer.modelSha256 !== ours) {
    return new CleaveError(
      'E_BAD_MODEL',
      `peer ${peer.host} holds model sha256 ${peer.modelSha256.slice(0, 12)}..., this host ${ours.slice(0, 12)}...`,
    );
  }
  return null;
}

export function bearer(token: string): string {
  return `Bearer ${token}`;
}

/**
 * A request's Authorization header when it has exactly one; undefined when it has none, null when it has
 * several (refused whatever the first says: a proxy and a server may not agree on which one counts).
 */
export function singleAuthorization(req: IncomingMessage): string | undefined | null {
  // headersDistinct is Node's; a request object without it (an injected one in tests) has at most one value.
  const all = req.headersDistinct?.authorization ?? (req.headers.authorization ? [req.headers.authorization] : []);
  return all.length > 1 ? null : all[0];
}

/** Constant-time check of an Authorization header against the shared token. */
export function tokenMatches(header: string | undefined, token: string): boolean {
  if (!header?.startsWith('Bearer ')) return false;
  // Hash both so the comparison neither leaks the length nor throws on a length mismatch.
  const a = createHash('sha256').update(header.slice(7)).digest();
  const b = createHash('sha256').update(token).digest();
  return timingSafeEqual(a, b);
}

const CLOSE_CODES: ErrorCode[] = [
  'E_BAD_FRAME',
  'E_UNAUTHORIZED',
  'E_BAD_MODEL',
  'E_TOO_LARGE',
  'E_UNKNOWN_MODEL',
  'E_INTERNAL',
];

/** The error a peer meant by closing with `code` (our 44xx/45xx codes, or ws's 1009 for an oversized frame). */
export function errorForClose(code: number, reason: string): CleaveError {
  if (code === 1009) return new CleaveError('E_TOO_LARGE', `peer closed: frame too large (${reason || 'max payload'})`);
  for (const c of CLOSE_CODES) {
    const e = new CleaveError(c, `peer closed the connection with ${code}: ${reason}`);
    if (e.closeCode === code) return e;
  }
  return new CleaveError('E_PEER_GONE', `connection closed (${code}${reason ? `: ${reason}` : ''})`);
}

/** The error for an HTTP status answered to our upgrade request. */
export function errorForStatus(status: number): CleaveError {
  if (status === 401 || status === 403)
    return new CleaveError('E_UNAUTHORIZED', `peer refused the token (HTTP ${status})`);
  return new CleaveError('E_PEER_GONE', `peer refused the upgrade (HTTP ${status})`);
}
