/**
 * The network statistics CSV, Scission's layout accepted unchanged:
 *
 *   source,destination,ping(ms),bandwidth(mbps)
 *   raspi4,vm2Core,            66.7,  1.6
 *
 * One directed row per link (data flows source -> destination); the header row is optional; fields are
 * trimmed; blank lines and lines starting with '#' are skipped. Mbps are 10^6 bits per second, turned into
 * bytes per second as Scission does (x 125000, rounded).
 */
import { CleaveError } from '../errors.js';
import type { PlanLink } from './types.js';

export interface NetworkLink extends PlanLink {
  /** 1-based line number in the file. */
  readonly row: number;
}

export function parseNetworkCsv(text: string, source: string): NetworkLink[] {
  const out: NetworkLink[] = [];
  const seen = new Map<string, number>();
  const lines = text.split(/\r?\n/);
  let first = true;
  lines.forEach((raw, i) => {
    const row = i + 1;
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const fields = line.split(',').map((f) => f.trim());
    const bad = (msg: string): never => {
      throw new CleaveError(
        'E_BAD_NETWORK',
        `${source}:${row}: ${msg} (expected source,destination,ping(ms),bandwidth(mbps))`,
      );
    };
    if (first) {
      first = false;
      // A header: the first row whose ping and bandwidth are both words.
      if (
        fields.length === 4 &&
        /[a-z]/i.test(fields[2]) &&
        /[a-z]/i.test(fields[3]) &&
        Number.isNaN(Number(fields[2])) &&
        Number.isNaN(Number(fields[3]))
      )
        return;
    }
    if (fields.length !== 4) bad(`${fields.length} fields`);
    const [from, to, pingText, mbpsText] = fields;
    if (from === '' || to === '') bad('empty host name');
    if (from === to) bad(`a link from '${from}' to itself`);
    const ping = Number(pingText);
    if (pingText === '' || !Number.isFinite(ping) || ping < 0) bad(`ping '${pingText}' is not a number of ms >= 0`);
    const mbps = Number(mbpsText);
    if (mbpsText === '' || !Number.isFinite(mbps) || mbps <= 0)
      bad(`bandwidth '${mbpsText}' is not a number of Mbps > 0`);
    const bytesPerSecond = Math.round(mbps * 125_000);
    if (bytesPerSecond <= 0) bad(`bandwidth ${mbps} Mbps is below 1 byte per second`);
    const key = `${from}\u0000${to}`;
    const dup = seen.get(key);
    if (dup !== undefined) bad(`a second row for ${from} -> ${to} (first at row ${dup})`);
    seen.set(key, row);
    out.push({ from, to, rttMs: ping, bytesPerSecond, row });
  });
  if (out.length === 0) throw new CleaveError('E_BAD_NETWORK', `${source}: no links`);
  return out;
}
