/**
 * One call to a running deployment's API for the CLI's commands: the control token as a bearer header when
 * given, the JSON answer back, and a failure as one line naming the method, the URL and why.
 */
import { CleaveError, errorMessage } from '../errors.js';
import { controlHeaders } from './control-token.js';

export async function controlCall(
  url: string,
  method: string,
  token: string | undefined,
  body?: unknown,
): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(url, {
      method,
      headers: controlHeaders(token),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    // fetch() says only 'fetch failed'; the reason (refused, a certificate not trusted) is its cause.
    const why = errorMessage((e as { cause?: unknown }).cause ?? e);
    const hint = /certificate|self.signed/i.test(why)
      ? '(a deployment with its own CA: run with NODE_EXTRA_CA_CERTS=CA.pem)'
      : "(is 'cleave up' running?)";
    throw new CleaveError('E_PEER_GONE', `${method} ${url}: ${why} ${hint}`);
  }
  const json = (await res.json().catch(() => ({}))) as { error?: string };
  if (!res.ok) throw new CleaveError('E_BAD_INPUT', `${method} ${url}: ${res.status} ${json.error ?? ''}`);
  return json;
}
