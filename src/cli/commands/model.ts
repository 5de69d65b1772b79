import { parseArgs } from 'node:util';
import { CleaveError } from '../../errors.js';
import { controlCall } from '../control-call.js';
import { controlTokenFor } from '../control-token.js';
import { table } from '../format.js';

const modelHelp = `cleave model list [--url URL]
cleave model unload NAME [--url URL] [--token T]
cleave model load NAME [--url URL] [--token T]

The model repository of a running deployment (Triton's repository extension on the device host at --url,
default http://127.0.0.1:8000). list: every model in the repository and its state (those served READY, or
UNAVAILABLE with the reason; the others are not loaded). unload: new requests are refused at once, those
in flight finish, then every host frees its segment sessions; the other models keep serving. load: every host
of the plan in force warms its segment again, then the model answers; a model not loaded yet is read and
profiled by every host (while they serve), then planned and served. A change needs the deployment's control token: --token, else
CLEAVE_CONTROL_TOKEN, else the file 'cleave up' wrote for that URL (~/.cache/cleave/run/control-HOST_PORT.token).`;

export async function modelCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      url: { type: 'string' },
      token: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [sub, name, ...extra] = positionals;
  if (values.help || (sub !== 'list' && sub !== 'load' && sub !== 'unload')) {
    process.stdout.write(`${modelHelp}\n`);
    return values.help ? 0 : 2;
  }
  const url = (values.url ?? 'http://127.0.0.1:8000').replace(/\/$/, '');
  const token = controlTokenFor(url, values.token);
  if (sub === 'list') {
    if (name !== undefined)
      throw new CleaveError('E_BAD_INPUT', `cleave model list takes no model name, got '${name}'`);
    const index = (await controlCall(`${url}/v2/repository/index`, 'POST', token, {})) as {
      name: string;
      version: string;
      state: string;
      reason?: string;
    }[];
    process.stdout.write(
      `${table(
        ['model', 'version', 'state', 'reason'],
        index.map((m) => [m.name, m.version, m.state, m.reason ?? '']),
      )}\n`,
    );
    return 0;
  }
  if (!name || extra.length > 0) throw new CleaveError('E_BAD_INPUT', `usage: cleave model ${sub} NAME`);
  const t0 = performance.now();
  const r = (await controlCall(
    `${url}/v2/repository/models/${encodeURIComponent(name)}/${sub}`,
    'POST',
    token,
    {},
  )) as { failed?: { host: string; error: string }[]; leftInFlight?: number };
  const ms = Math.round(performance.now() - t0);
  if (sub === 'load') process.stdout.write(`${name}: loaded in ${ms} ms, READY\n`);
  else {
    const failed = r.failed ?? [];
    const freed = failed.length ? 'the other hosts freed their sessions' : 'every host freed its sessions';
    process.stdout.write(`${name}: unloaded in ${ms} ms, ${freed}\n`);
    for (const f of failed) process.stdout.write(`  ${f.host} could not be told to free its sessions: ${f.error}\n`);
    if (r.leftInFlight) process.stdout.write(`  ${r.leftInFlight} request(s) still in flight when the wait ended\n`);
  }
  return 0;
}
