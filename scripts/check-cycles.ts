/**
 * Fails (exit 1) when a module under src/ can reach itself through relative imports, type-only imports
 * included: a type cycle still couples two modules that should be layered. Run by `npm run lint`.
 *
 *   node --import tsx scripts/check-cycles.ts [DIR]
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';

const root = resolve(process.argv[2] ?? 'src');

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? files(p) : /\.(ts|mts)$/.test(n) && !n.endsWith('.d.ts') ? [p] : [];
  });
}

const all = files(root);
const known = new Set(all);
const edges = new Map<string, string[]>();
for (const f of all) {
  const { importedFiles } = ts.preProcessFile(readFileSync(f, 'utf8'), true, true);
  const out: string[] = [];
  for (const { fileName } of importedFiles) {
    if (!fileName.startsWith('.')) continue;
    const target = resolve(dirname(f), fileName).replace(/\.js$/, '.ts');
    if (known.has(target)) out.push(target);
  }
  edges.set(f, out);
}

// Tarjan's strongly connected components: any component of more than one module (or a self-import) is a cycle.
let index = 0;
const idx = new Map<string, number>();
const low = new Map<string, number>();
const stack: string[] = [];
const on = new Set<string>();
const cycles: string[][] = [];
function visit(v: string): void {
  idx.set(v, index);
  low.set(v, index++);
  stack.push(v);
  on.add(v);
  for (const w of edges.get(v) ?? []) {
    if (!idx.has(w)) {
      visit(w);
      low.set(v, Math.min(low.get(v)!, low.get(w)!));
    } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
  }
  if (low.get(v) === idx.get(v)) {
    const comp: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      on.delete(w);
      comp.push(w);
    } while (w !== v);
    if (comp.length > 1 || (edges.get(v) ?? []).includes(v)) cycles.push(comp);
  }
}
for (const f of all) if (!idx.has(f)) visit(f);

if (cycles.length > 0) {
  for (const c of cycles) console.error(`import cycle: ${c.map((f) => relative(process.cwd(), f)).join(' <-> ')}`);
  process.exit(1);
}
console.log(`no import cycles among ${all.length} modules under ${relative(process.cwd(), root) || '.'}`);
