/**
 * `npm run fuzz [-- --runs 10000] [--seed N]`: the fuzz suite at full size (test/helpers/fuzz.ts): that many
 * generated HTTP bodies and that many generated peer frames against a real three-host deployment of the small
 * MobileNetV2, with a valid request checked against ORT along the way. Prints one JSON summary; exits 1 when
 * any case broke a rule (a 5xx or non-JSON error for bad input, a host down, a wrong or failed valid request).
 */
import { parseArgs } from 'node:util';
import { fuzzFrames, fuzzHttp, startFuzzTarget } from '../test/helpers/fuzz.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '10000' }, seed: { type: 'string' } } });
const runs = Number(values.runs);
const seed = values.seed === undefined ? Date.now() % 2 ** 31 : Number(values.seed);
if (!Number.isInteger(runs) || runs < 1) {
  process.stderr.write(`fuzz: --runs must be a positive integer, got ${values.runs}\n`);
  process.exit(2);
}
const t = await startFuzzTarget();
try {
  const t0 = Date.now();
  const http = await fuzzHttp(t, { runs, seed });
  const t1 = Date.now();
  const frames = await fuzzFrames(t, { runs, seed });
  const t2 = Date.now();
  const failures = [...http.failures, ...frames.failures];
  for (const f of failures.slice(0, 20)) process.stderr.write(`${f.what}: sent ${f.sent}\n  got ${f.got}\n`);
  console.log(
    JSON.stringify({
      name: 'fuzz',
      seed,
      http: { cases: http.cases, byStatus: http.byStatus, seconds: (t1 - t0) / 1000 },
      frames: { cases: frames.cases, byStatus: frames.byStatus, seconds: (t2 - t1) / 1000 },
      failures: failures.length,
      pass: failures.length === 0,
    }),
  );
  process.exitCode = failures.length === 0 ? 0 : 1;
} finally {
  await t.d.close();
}
