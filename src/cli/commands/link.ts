import { parseArgs } from 'node:util';
import { CleaveError } from '../../errors.js';
import { parseFloatFlag } from '../args.js';
import { controlCall as call } from '../control-call.js';
import { controlTokenFor } from '../control-token.js';
import { table } from '../format.js';

const linkHelp = `cleave link set FROM TO [--mbps N] [--delay MS] [--off] [--url URL] [--token T]
cleave link show [--url URL] [--token T]

Changes the emulated bandwidth (Mbit/s, 10^6 bits) and one-way delay of the directed link FROM -> TO
while the deployment runs (PUT /v1/links/FROM/TO on the device host at --url, default
http://127.0.0.1:8000), or shows every link's measured RTT and throughput. --off removes emulation.
A change needs the deployment's control token: --token, else CLEAVE_CONTROL_TOKEN, else the file
'cleave up' wrote for that URL (~/.cache/cleave/run/control-HOST_PORT.token).`;

export async function linkCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      mbps: { type: 'string' },
      delay: { type: 'string' },
      off: { type: 'boolean' },
      url: { type: 'string' },
      token: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [sub, from, to] = positionals;
  if (values.help || (sub !== 'set' && sub !== 'show')) {
    process.stdout.write(`${linkHelp}\n`);
    return values.help ? 0 : 2;
  }
  const url = (values.url ?? 'http://127.0.0.1:8000').replace(/\/$/, '');
  const token = controlTokenFor(url, values.token);
  if (sub === 'show') {
    const topo = (await call(`${url}/v1/topology`, 'GET', token)) as {
      links: {
        from: string;
        to: string;
        rttMs: number | null;
        throughputBps: number | null;
        state: string;
        emulation: { bandwidthBps: number | null; delayMs: number } | null;
      }[];
    };
    const mbit = (bps: number | null | undefined): string => (bps ? ((bps * 8) / 1e6).toFixed(2) : '-');
    process.stdout.write(
      `${table(
        ['link', 'state', 'rtt ms', 'measured Mbit/s', 'emulated Mbit/s', 'emulated delay ms'],
        topo.links.map((l) => [
          `${l.from}->${l.to}`,
          l.state,
          l.rttMs?.toFixed(2) ?? '-',
          mbit(l.throughputBps),
          mbit(l.emulation?.bandwidthBps),
          l.emulation?.delayMs ?? '-',
        ]),
      )}\n`,
    );
    return 0;
  }
  if (!from || !to)
    throw new CleaveError('E_BAD_INPUT', 'usage: cleave link set FROM TO [--mbps N] [--delay MS] [--off]');
  let body: Record<string, unknown> | null;
  if (values.off) body = null;
  else {
    if (values.mbps === undefined && values.delay === undefined)
      throw new CleaveError('E_BAD_INPUT', 'give --mbps, --delay or --off');
    body = { delayMs: values.delay !== undefined ? parseFloatFlag('--delay', values.delay) : 0 };
    if (values.mbps !== undefined) body.mbps = parseFloatFlag('--mbps', values.mbps);
  }
  const r = await call(`${url}/v1/links/${encodeURIComponent(from)}/${encodeURIComponent(to)}`, 'PUT', token, body);
  process.stdout.write(`${JSON.stringify(r)}\n`);
  return 0;
}
