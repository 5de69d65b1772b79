/**
 * One HTTP(S) request from a host or the launcher to a host of the deployment, trusting the deployment's CA
 * (fetch() cannot be given one in Node 20). Resolves with the status and body text whatever the status;
 * rejects when nothing answered (refused, reset, a certificate not trusted, past `timeoutMs`).
 */
import http from 'node:http';
import https from 'node:https';

export interface HostRequest {
  readonly method?: string;
  readonly headers?: Record<string, string>;
  readonly body?: string;
  /** PEM CA certificates to trust for an https URL; absent: the system's roots. */
  readonly ca?: Buffer;
  readonly timeoutMs: number;
}

export function requestHost(url: string, o: HostRequest): Promise<{ status: number; text: string }> {
  const u = new URL(url);
  const secure = u.protocol === 'https:';
  return new Promise((resolve, reject) => {
    const headers = {
      ...o.headers,
      ...(o.body !== undefined ? { 'content-length': String(Buffer.byteLength(o.body)) } : {}),
    };
    const options = { method: o.method ?? 'GET', headers, ...(secure && o.ca ? { ca: o.ca } : {}) };
    const req = (secure ? https : http).request(u, options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') });
      });
      res.on('error', reject);
    });
    const timer = setTimeout(() => req.destroy(new Error(`no answer within ${o.timeoutMs} ms`)), o.timeoutMs);
    req.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    req.end(o.body);
  });
}
