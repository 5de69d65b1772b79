/**
 * This host's peer credentials (transport/identity.ts): the token it presents to its peers, and who a
 * presented token belongs to. From the launcher (`CLEAVE_HOST_TOKEN` and `CLEAVE_PEER_DIGESTS`: this host's
 * own token and every host's token digest, no master), else derived from the master peer token
 * (`CLEAVE_TOKEN` or the config's `token`), which is then accepted too, as any host.
 */
import { CleaveError } from '../../errors.js';
import { digestsFrom, hostToken, identifyBy, tokenDigest, type Identify } from '../../transport/identity.js';
import { peerToken, type DeploymentConfig } from '../config.js';

export interface PeerCredentials {
  /** What this host presents (Authorization: Bearer ...) on its peer links and peer HTTP calls. */
  readonly token: string;
  readonly identify: Identify;
  /** Given only its own token and digests: holding this host's secrets speaks for no other host. */
  readonly isolated: boolean;
  /** No token anywhere: the fixed development master (logged as such). */
  readonly fromDefault: boolean;
}

export function peerCredentials(
  cfg: DeploymentConfig,
  self: string,
  env: NodeJS.ProcessEnv = process.env,
): PeerCredentials {
  const names = cfg.hosts.map((h) => h.name);
  const own = env.CLEAVE_HOST_TOKEN;
  const raw = env.CLEAVE_PEER_DIGESTS;
  if (own !== undefined || raw !== undefined) {
    const bad = (what: string): never => {
      throw new CleaveError('E_BAD_INPUT', `CLEAVE_HOST_TOKEN / CLEAVE_PEER_DIGESTS: ${what}`);
    };
    if (!own) bad('CLEAVE_PEER_DIGESTS is set without CLEAVE_HOST_TOKEN');
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw ?? '');
    } catch {
      bad('CLEAVE_PEER_DIGESTS is not JSON ({"host": "sha256 hex", ...})');
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) bad('CLEAVE_PEER_DIGESTS is not a map');
    const digests = new Map<string, string>();
    for (const n of names) {
      const d = (parsed as Record<string, unknown>)[n];
      if (typeof d !== 'string' || !/^[0-9a-f]{64}$/.test(d)) bad(`no SHA-256 digest for host '${n}'`);
      digests.set(n, d as string);
    }
    if (digests.get(self) !== tokenDigest(own as string)) bad(`CLEAVE_HOST_TOKEN is not the token of '${self}'`);
    return { token: own as string, identify: identifyBy(digests), isolated: true, fromDefault: false };
  }
  const { token: master, fromDefault } = peerToken(cfg);
  return {
    token: hostToken(master, self),
    identify: identifyBy(digestsFrom(master, names), tokenDigest(master)),
    isolated: false,
    fromDefault,
  };
}
