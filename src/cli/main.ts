/**
 * The `cleave` command. The only module that reads argv; each subcommand lives in commands/ and returns
 * its exit code. Errors print one line naming the problem (a stack trace only with CLEAVE_DEBUG=1).
 */
import { isCleaveError, errorMessage } from '../errors.js';

type Command = (argv: string[]) => Promise<number>;

const COMMANDS: Record<string, { summary: string; load: () => Promise<Command> }> = {
  inspect: {
    summary: 'show a model: inputs, outputs, cuts with frontier bytes, blocks',
    load: async () => (await import('./commands/inspect.js')).inspectCommand,
  },
  split: {
    summary: 'write the segments of a model split at given cuts',
    load: async () => (await import('./commands/split.js')).splitCommand,
  },
  verify: {
    summary: 'check that split models reproduce the whole model',
    load: async () => (await import('./commands/verify.js')).verifyCommand,
  },
  profile: {
    summary: 'benchmark every block of a model on this machine (profile JSON)',
    load: async () => (await import('./commands/profile.js')).profileCommand,
  },
  plan: {
    summary: 'pick the best split across hosts from profiles and a network file',
    load: async () => (await import('./commands/plan.js')).planCommand,
  },
  serve: {
    summary: 'run one host (device, edge or cloud) of a deployment',
    load: async () => (await import('./commands/serve.js')).serveCommand,
  },
  up: {
    summary: 'start device, edge and cloud hosts on this machine and serve',
    load: async () => (await import('./commands/up.js')).upCommand,
  },
  link: {
    summary: 'change or show emulated links of a running deployment',
    load: async () => (await import('./commands/link.js')).linkCommand,
  },
  model: {
    summary: "list, unload or load a running deployment's model (the repository)",
    load: async () => (await import('./commands/model.js')).modelCommand,
  },
  watch: {
    summary: 'live view of a deployment: route, links, hosts, events',
    load: async () => (await import('./commands/watch.js')).watchCommand,
  },
  zoo: {
    summary: 'build the Keras Applications model zoo as ONNX',
    load: async () => (await import('./commands/zoo.js')).zooCommand,
  },
};

export function usage(): string {
  const names = Object.keys(COMMANDS);
  const w = Math.max(...names.map((n) => n.length));
  return [
    'cleave — split DNN inference across device, edge and cloud',
    '',
    'usage: cleave COMMAND [options]     (cleave COMMAND --help for its options)',
    '',
    ...names.map((n) => `  ${n.padEnd(w)}  ${COMMANDS[n].summary}`),
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${usage()}\n`);
    return name ? 0 : 2;
  }
  const cmd = COMMANDS[name];
  if (!cmd) {
    process.stderr.write(`cleave: unknown command '${name}'\n\n${usage()}\n`);
    return 2;
  }
  try {
    return await (
      await cmd.load()
    )(rest);
  } catch (e) {
    if (process.env.CLEAVE_DEBUG) process.stderr.write(`${(e as Error)?.stack ?? String(e)}\n`);
    const code = isCleaveError(e)
      ? e.code
      : (e as { code?: string })?.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION'
        ? 'E_BAD_INPUT'
        : undefined;
    process.stderr.write(`cleave ${name}: ${errorMessage(e)}${code ? ` [${code}]` : ''}\n`);
    return 2;
  }
}

process.exitCode = await main(process.argv.slice(2));
