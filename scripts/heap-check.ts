/**
 * `node --expose-gc --import tsx scripts/heap-check.ts [--phases 8] [--requests 1500]`
 *
 * Does a host keep JS objects per request? Three hosts in this one process (so one heap holds them all),
 * MobileNetV2 (small) on a plan pinned through all three, 4 clients in a closed loop; after each phase of
 * N requests, two full GCs, then the heap in use, external memory and RSS. A leak shows as a heap that keeps
 * growing phase after phase; garbage awaiting collection (what a soak's heap samples see) is gone after gc().
 */
import { parseArgs } from 'node:util';
import { zooEntry } from '../src/graph/zoo/index.js';
import { inferBinary, putJson, startDeployment } from '../test/helpers/deployment.js';

const { values } = parseArgs({
  options: { phases: { type: 'string', default: '8' }, requests: { type: 'string', default: '1500' } },
});
const PHASES = Number(values.phases);
const REQUESTS = Number(values.requests);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) {
  console.error('heap-check: run with node --expose-gc');
  process.exit(2);
}

const d = await startDeployment({
  modelName: 'mnv2',
  modelBytes: zooEntry('mobilenetv2')!.build({ small: true }).toBytes(),
});
try {
  const n = d.device.analysis.blocks.length;
  const a = Math.floor(n / 3);
  const b = Math.floor((2 * n) / 3);
  const pin = await putJson(`${d.url}/v1/plan`, {
    stages: [
      { host: 'dev', blocks: [0, a] },
      { host: 'edg', blocks: [a, b] },
      { host: 'cld', blocks: [b, n] },
    ],
  });
  if (pin.status !== 200) throw new Error(`pinning the plan: ${pin.status} ${await pin.text()}`);
  const x = {
    name: d.device.analysis.model.inputs[0].name,
    dtype: 'float32' as const,
    dims: [1, 3, 64, 64],
    data: Float32Array.from({ length: 3 * 64 * 64 }, (_, i) => Math.sin(i)),
  };
  const mb = (v: number): number => Math.round((v / 1048576) * 100) / 100;
  const rows: { phase: number; requests: number; heapMb: number; externalMb: number; rssMb: number }[] = [];
  let sent = 0;
  for (let phase = 0; phase < PHASES; phase++) {
    const until = sent + REQUESTS;
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        while (sent < until) {
          sent++;
          const r = await inferBinary(d.url, 'mnv2', [x]);
          if (r.status !== 200) throw new Error(`request answered ${r.status}`);
        }
      }),
    );
    await new Promise((r) => setTimeout(r, 1000));
    gc();
    gc();
    const m = process.memoryUsage();
    rows.push({ phase, requests: sent, heapMb: mb(m.heapUsed), externalMb: mb(m.external), rssMb: mb(m.rss) });
    console.log(JSON.stringify(rows[rows.length - 1]));
  }
  const half = rows[Math.floor(rows.length / 2)];
  const last = rows[rows.length - 1];
  console.log(
    JSON.stringify({
      name: 'heap-check',
      requests: sent,
      heapFirstMb: rows[0].heapMb,
      heapLastMb: last.heapMb,
      heapGrowthSecondHalfMb: Math.round((last.heapMb - half.heapMb) * 100) / 100,
      bytesPerRequestSecondHalf: Math.round(((last.heapMb - half.heapMb) * 1048576) / (last.requests - half.requests)),
    }),
  );
} finally {
  await d.close();
}
