/**
 * Who may call the control API. Changes (`PUT`/`DELETE /v1/plan`, `PUT /v1/links`, `PUT /v1/controller`)
 * need a bearer credential: the operators' control token, or a host's peer credential (hosts forward link
 * settings to each other with theirs). Reads follow `readAccess`: 'loopback' (the default) lets callers on this machine in
 * without a token, 'token' never does, 'open' always does. A missing credential is 401, a wrong one 403;
 * a request with more than one Authorization header is refused whatever its first one says.
 */
import type { IncomingMessage } from 'node:http';
import { CleaveError } from '../../errors.js';
import { singleAuthorization, tokenMatches } from '../../transport/handshake.js';
import type { Identify } from '../../transport/identity.js';
import type { ReadAccess } from '../config.js';

export interface AccessPolicy {
  /** The operators' token; null: no change is allowed through it (the peer token still works). */
  readonly controlToken: string | null;
  /** Who a peer credential belongs to (a host name, '*' for the master peer token, or null). */
  readonly identifyPeer: Identify;
  /** The origin host: the one that prepares segments on the others. */
  readonly origin: string;
  readonly readAccess: ReadAccess;
}

/** Whether the request's peer address is this machine (IPv4 127/8, ::1, or IPv4-mapped 127/8). */
export function fromLoopback(req: IncomingMessage): boolean {
  const a = req.socket.remoteAddress ?? '';
  return a === '::1' || a.startsWith('127.') || a.startsWith('::ffff:127.');
}

/** The one Authorization header, undefined when there is none; throws when there are several. */
function authorization(req: IncomingMessage): string | undefined {
  const one = singleAuthorization(req);
  if (one === null) throw new CleaveError('E_UNAUTHORIZED', 'more than one Authorization header');
  return one;
}

/**
 * Throws unless the request carries the origin's peer credential (or the master peer token): only the
 * origin asks hosts to prepare segments. Another host's credential is a 403 naming it.
 */
export function checkOrigin(req: IncomingMessage, p: AccessPolicy): void {
  const who = p.identifyPeer(authorization(req));
  if (who === null) throw new CleaveError('E_UNAUTHORIZED', 'peer token missing or wrong');
  if (who !== '*' && who !== p.origin)
    throw new CleaveError('E_FORBIDDEN', `${who}'s credential: only the origin (${p.origin}) may do this`);
}

/**
 * Throws unless the request carries the control or the peer token. `what` names the action in the message.
 */
export function checkCredential(req: IncomingMessage, p: AccessPolicy, what: string): void {
  checkHeader(authorization(req), p, what);
}

/** The same for a credential that came another way than an HTTP request (gRPC metadata, a checked header). */
export function checkHeader(header: string | undefined, p: AccessPolicy, what: string): void {
  if (header === undefined)
    throw new CleaveError(
      'E_UNAUTHORIZED',
      `${what} needs the control token: send "Authorization: Bearer TOKEN" (cleave up writes it to its run directory; CLEAVE_CONTROL_TOKEN or the config's controlToken set it)`,
    );
  const ok = (p.controlToken !== null && tokenMatches(header, p.controlToken)) || p.identifyPeer(header) !== null;
  if (!ok) throw new CleaveError('E_FORBIDDEN', `${what}: the token is wrong`);
}

/**
 * Throws unless the request may read the control API under the policy. `offered`: a token the request
 * carries another way than its Authorization header (a browser's WebSocket cannot set headers, so the
 * events stream also takes it as a subprotocol), used when it has no such header.
 */
export function checkRead(req: IncomingMessage, p: AccessPolicy, what: string, offered?: string): void {
  if (p.readAccess === 'open') return;
  const header = authorization(req) ?? (offered === undefined ? undefined : `Bearer ${offered}`);
  // A token, when sent, is checked even where none is needed: a wrong one is a mistake worth saying.
  if (p.readAccess === 'loopback' && fromLoopback(req) && header === undefined) return;
  checkHeader(header, p, what);
}
