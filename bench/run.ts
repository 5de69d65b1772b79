/**
 * `npm run bench -- NAME [args...]` runs bench/NAME.ts. Each benchmark measures its own baseline in the same
 * run and prints one JSON object as its last line: name, figures, ratio, goal, pass.
 */
import { existsSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join, dirname } from 'node:path';

const here = dirname(fileURLToPath(import.meta.url));
const name = process.argv[2];
const known = readdirSync(here)
  .filter((f) => f.endsWith('.ts') && f !== 'run.ts' && !f.startsWith('_'))
  .map((f) => f.slice(0, -3));
if (!name || !existsSync(join(here, `${name}.ts`)) || name === 'run') {
  console.error(`usage: npm run bench -- NAME [args...]\nbenchmarks: ${known.join(', ')}`);
  process.exit(2);
}
process.argv.splice(2, 1);
await import(`./${name}.ts`);
