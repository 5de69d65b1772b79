/**
 * Control-plane calls from this host to another host's HTTP API (profiles, status, links, preparing a
 * segment), authenticated with the peer token. A peer's error keeps its code and status: a peer that answers
 * 503 E_NOT_READY is reported as such, not as an unreachable peer.
 */
import { CleaveError, isErrorCode } from '../../errors.js';
import type { HostConfig } from '../config.js';
import { requestHost } from '../http-client.js';
import { httpScheme, type TlsMaterial } from '../tls.js';

export interface PeerClientOptions {
  readonly hosts: readonly HostConfig[];
  readonly token: string;
  readonly timeoutMs: number;
  /** The deployment's TLS: peers are called over https, trusting its CA. */
  readonly tls?: TlsMaterial | null;
}

export class PeerClient {
  constructor(private readonly o: PeerClientOptions) {}

  async request(host: string, method: string, path: string, body?: unknown): Promise<unknown> {
    const h = this.o.hosts.find((x) => x.name === host);
    if (!h) throw new CleaveError('E_NOT_FOUND', `'${host}' is not a host of this deployment`);
    let res: { status: number; text: string };
    try {
      res = await requestHost(`${httpScheme(this.o.tls)}://${h.listen}${path}`, {
        method,
        headers: { authorization: `Bearer ${this.o.token}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        ca: this.o.tls?.ca,
        timeoutMs: this.o.timeoutMs,
      });
    } catch (e) {
      throw new CleaveError('E_PEER_GONE', `${host}: ${method} ${path} failed: ${(e as Error).message}`);
    }
    const text = res.text;
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = { error: text };
    }
    if (res.status < 200 || res.status > 299) {
      const { error, code } = (json ?? {}) as { error?: unknown; code?: unknown };
      const msg = typeof error === 'string' ? error : `HTTP ${res.status}`;
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
