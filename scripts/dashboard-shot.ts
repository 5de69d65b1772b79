/**
 * `node --import tsx scripts/dashboard-shot.ts [--model mobilenetv2] [--out docs/dashboard.png]`
 *
 * The README's picture of the dashboard, taken for real: the default deployment (three hosts, CPU quotas)
 * under a closed loop of two clients, the page open in headless Chromium, the device->edge link slowed
 * from the page's own form (the page asks for the control token, which this types in), and the page
 * photographed once the plan has moved and the charts show it. Needs Chromium at /usr/bin/chromium.
 */
import { existsSync, rmSync } from 'node:fs';
import http from 'node:http';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { makeFeeds } from '../src/runtime/local/ort-local.js';
import { launchDefault } from '../bench/_deploy.js';
import { binaryBody, postInfer } from '../bench/_oip.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string', default: 'mobilenetv2' },
    out: { type: 'string', default: 'docs/dashboard.png' },
  },
});
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
if (!existsSync(CHROMIUM)) {
  console.error(`dashboard-shot: no Chromium at ${CHROMIUM} (apt-get install -y chromium)`);
  process.exit(2);
}
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const { d, dir, specs } = await launchDefault(values.model, 'cleave-shot-', { onLine: () => undefined });
let stop = false;
try {
  await d.ready(300_000);
  const port = Number(d.origin.listen.split(':').pop());
  const agent = new http.Agent({ keepAlive: true, maxSockets: 2 });
  const x = makeFeeds(specs)[specs[0].name].data as Float32Array;
  const { header, body } = binaryBody(specs[0], x);
  const client = async (): Promise<void> => {
    while (!stop) await postInfer({ port, model: values.model, agent, header, body }).catch(() => undefined);
  };
  const clients = [client(), client()];
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  await page.goto(`${d.url}/`);
  await sleep(25_000);
  const before = await page.getAttribute('#route', 'data-epoch');
  await page.selectOption('#link-select', 'device->edge');
  await page.fill('#link-mbps', '5');
  await page.fill('#link-delay', '1');
  await page.click('#link-apply');
  await page.waitForSelector('#token-form:not([hidden])');
  await page.fill('#token', d.controlToken);
  await page.click('#token-form button[type=submit]');
  await page.waitForFunction((e) => document.getElementById('route')!.dataset.epoch !== e, before, {
    timeout: 30_000,
  });
  await sleep(15_000);
  await page.screenshot({ path: values.out, fullPage: true });
  console.log(`dashboard-shot: ${values.out} (route ${await page.textContent('#route')})`);
  await browser.close();
  stop = true;
  await Promise.all(clients);
} finally {
  stop = true;
  await d.stop();
  rmSync(dir, { recursive: true, force: true });
}
