/**
 * TLS for a deployment's HTTP and peer links: the config's `tls` names a certificate and key (PEM files), and
 * the CA that peers and the launcher trust when they dial a host. With it every host serves HTTPS and `wss://`
 * on its `listen` address, so the control token and the peer credentials never cross a network in clear.
 * A host's own `tls` (cert and key) overrides the deployment's, for deployments with a certificate per host.
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { CleaveError, errorMessage } from '../errors.js';

export interface TlsConfig {
  /** PEM certificate chain this host presents. */
  readonly cert: string;
  /** PEM private key of `cert`. */
  readonly key: string;
  /**
   * PEM CA certificates a host trusts when it dials another (a self-signed deployment names its certificate
   * here). Absent: the system's roots.
   */
  readonly ca?: string;
}

/** The PEM bytes a host serves and dials with. */
export interface TlsMaterial {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly ca?: Buffer;
}

/** Checks a `tls` value of the config (paths, not their contents: those are read when a host starts). */
export function checkTlsConfig(v: unknown, field: string, bad: (field: string, what: string) => never): void {
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    bad(field, 'must be {"cert": PATH, "key": PATH, "ca"?: PATH}');
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o))
    if (!['cert', 'key', 'ca'].includes(k)) bad(`${field}.${k}`, 'is not a TLS setting (cert, key, ca)');
  for (const k of ['cert', 'key'])
    if (typeof o[k] !== 'string' || o[k] === '') bad(`${field}.${k}`, 'must be the path of a PEM file');
  if (o.ca !== undefined && (typeof o.ca !== 'string' || o.ca === ''))
    bad(`${field}.ca`, 'must be the path of a PEM file');
}

/** `t` with its paths made absolute against `dir` (the config file's folder). */
export function resolveTlsPaths<T extends Partial<TlsConfig>>(t: T, dir: string): T {
  const abs = (p: string | undefined): string | undefined => (p === undefined || isAbsolute(p) ? p : resolve(dir, p));
  return { ...t, cert: abs(t.cert), key: abs(t.key), ...(t.ca !== undefined ? { ca: abs(t.ca) } : {}) };
}

/** Reads the PEM files of `t` (a host's own cert and key win over the deployment's); null without TLS. */
export function loadTls(deployment: TlsConfig | undefined, host?: Partial<TlsConfig>): TlsMaterial | null {
  if (!deployment && !host) return null;
  const cert = host?.cert ?? deployment?.cert;
  const key = host?.key ?? deployment?.key;
  if (!cert || !key) throw new CleaveError('E_BAD_INPUT', 'tls: a certificate needs both "cert" and "key"');
  const read = (what: string, path: string): Buffer => {
    let b: Buffer;
    try {
      b = readFileSync(path);
    } catch (e) {
      throw new CleaveError('E_BAD_INPUT', `tls.${what} ${path}: ${errorMessage(e)}`);
    }
    if (!b.includes('-----BEGIN ')) throw new CleaveError('E_BAD_INPUT', `tls.${what} ${path}: not a PEM file`);
    return b;
  };
  const ca = deployment?.ca;
  return { cert: read('cert', cert), key: read('key', key), ...(ca ? { ca: read('ca', ca) } : {}) };
}

/** `http` or `https`, as a deployment's URLs start. */
export function httpScheme(tls: TlsMaterial | null | undefined): 'http' | 'https' {
  return tls ? 'https' : 'http';
}
