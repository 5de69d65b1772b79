/**
 * Control-plane calls from this host to another host's HTTP API (profiles, status, links, preparing a
 * segment), authenticated with the peer token. A peer's error keeps its code and status: a peer that answers
 * 503 E_NOT_READY is reported as such, not as an unreachable peer.
 */
import { CleaveError, isErrorCode } from '../../errors.js';
import type { HostConfig } from '../config.js';

export interface PeerClientOptions {
  readonly hosts: readonly HostConfig[];
  readonly token: string;
  readonly timeoutMs: number;
}

export class PeerClient {
  constructor(private readonly o: PeerClientOptions) {}

  async request(host: string, method: string, path: string, body?: unknown): Promise<unknown> {
    const h = this.o.hosts.find((x) => x.name === host);
    if (!h) throw new CleaveError('E_NOT_FOUND', `'${host}' is not a host of this deployment`);
    let res: Response;
    try {
      res = await fetch(`http://${h.listen}${path}`, {
        method,
        headers: { authorization: `Bearer ${this.o.token}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.o.timeoutMs),
      });
    } catch (e) {
      throw new CleaveError('E_PEER_GONE', `${host}: ${method} ${path} failed: ${(e as Error).message}`);
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = { error: text };
    }
    if (!res.ok) {
      const { error, code } = (json ?? {}) as { error?: unknown; code?: unknown };
      const msg = typeof error === 'string' ? error : res.statusText;
      // The peer's own code when it sent one we know; otherwise one that keeps the status's meaning.
      const c = isErrorCode(code)
        ? code
        : res.status >= 500
          ? 'E_PEER_GONE'
          : res.status === 404
            ? 'E_NOT_FOUND'
            : 'E_BAD_INPUT';
      throw new CleaveError(c, `${host}: ${msg}`);
    }
    return json;
  }
}
