/**
 * Per-host peer credentials. Each host proves who it is with its own token, and a connection whose hello
 * names another host than its credential's is refused: a host's token lets it speak as itself only.
 *
 * A host's token is HMAC-SHA256(master, "cleave-host\0" + name), base64url. Whoever holds the master can
 * make every host's token. The launcher (`cleave up`) therefore gives each host its own token and the
 * SHA-256 digests of the others' (`CLEAVE_HOST_TOKEN`, `CLEAVE_PEER_DIGESTS`), never the master. A host given
 * only the master (`cleave serve` with the config's `token`) derives them all; it also accepts the master
 * itself, as any host, which is the shared-token behaviour.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/** Who a credential (an Authorization header) belongs to: a host name, '*' for the master (any host), or null. */
export type Identify = (authorization: string | undefined) => string | null;

export function hostToken(master: string, host: string): string {
  return createHmac('sha256', master).update(`cleave-host\u0000${host}`).digest('base64url');
}

/** SHA-256 of a token, hex: what a host is told of the others' tokens. */
export function tokenDigest(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/**
 * Identifies a `Bearer TOKEN` header against the hosts' token digests (and, when given, the master's digest
 * as '*'). Every digest is compared, in constant time, whatever matched first.
 */
export function identifyBy(digests: ReadonlyMap<string, string>, masterDigest?: string): Identify {
  const known = [...digests].map(([host, d]) => ({ host, d: Buffer.from(d, 'hex') }));
  if (masterDigest !== undefined) known.push({ host: '*', d: Buffer.from(masterDigest, 'hex') });
  return (authorization) => {
    if (!authorization?.startsWith('Bearer ')) return null;
    const presented = createHash('sha256').update(authorization.slice(7)).digest();
    let who: string | null = null;
    for (const k of known) if (k.d.length === presented.length && timingSafeEqual(k.d, presented)) who ??= k.host;
    return who;
  };
}

/** Each host's token digest, derived from the master. */
export function digestsFrom(master: string, hosts: readonly string[]): Map<string, string> {
  return new Map(hosts.map((h) => [h, tokenDigest(hostToken(master, h))]));
}
