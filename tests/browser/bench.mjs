// The console's weight and speed, measured in Debian's Chromium (docs/benchmarks-history.md, "Console"):
// - everything a first load transfers (no cache), from Resource/Navigation Timing;
// - the API keys section of a project with 20 templates, fully drawn: milliseconds from the
//   navigation's start to the frame in which all 20 tiles are in the page, over repeated loads
//   in fresh browser contexts (median, min, max).
//
//   node tests/browser/bench.mjs [loads=15]        (TIMELINE=1 also prints one load's requests)
//
// It starts its own keygate-local ($KEYGATE_LOCAL_BIN, else target/release/keygate-local) on a
// fresh data directory, and stops it at the end.

import { callApi, launchBrowser, localToken, startGateway } from './harness.mjs';

const loads = Number(process.argv[2] ?? 15);
const gateway = await startGateway([], 'release');
const { url } = gateway;

const call = (token, method, path, body) => callApi(url, token, method, path, body);

const token = await localToken(url, 'bench');
const project = await call(token, 'POST', '/v1/projects', { name: 'Twenty templates' });
await call(token, 'PUT', `/v1/projects/${project.id}/roles/reader`, { permissions: ['project_view', 'package_view'] });
await call(token, 'PUT', `/v1/projects/${project.id}/nodes/in`, { name: 'Input' });
for (let i = 1; i <= 20; i++) {
  await call(token, 'POST', `/v1/projects/${project.id}/templates`, {
    name: `API ${String(i).padStart(2, '0')}`, description: 'A template of the benchmark', role: 'reader',
    price_per_request: i, validity_days: 30,
    fields: [{ name: 'project', kind: 'project' }, { name: 'input', kind: 'node', value: 'in' }, { name: 'note', value: 'text' }],
  });
}

const browser = await launchBrowser();

async function load() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await context.addInitScript((t) => sessionStorage.setItem('keygate.token', t), token);
  const page = await context.newPage();
  await page.goto(`${url}/projects/${project.id}`);
  // Checked on every animation frame; the first frame with all 20 tiles is the figure.
  const drawn = await page.waitForFunction(() => document.querySelectorAll('article.tile').length === 20 && performance.now(), null, { polling: 'raf' });
  const ms = await drawn.jsonValue();
  await page.waitForLoadState('networkidle');
  const timeline = await page.evaluate(() => [...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')]
    .map((e) => `${e.startTime.toFixed(0).padStart(5)} → ${e.responseEnd.toFixed(0).padStart(5)} ms  ${new URL(e.name).pathname}`));
  const transfer = await page.evaluate(() => {
    const entries = [...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')];
    const files = entries.filter((e) => !e.name.includes('/v1/'));
    const api = entries.filter((e) => e.name.includes('/v1/'));
    const sum = (list, k) => list.reduce((a, e) => a + e[k], 0);
    return {
      files: files.length, filesTransfer: sum(files, 'transferSize'), filesBody: sum(files, 'encodedBodySize'),
      filesDecoded: sum(files, 'decodedBodySize'), api: api.length, apiTransfer: sum(api, 'transferSize'),
    };
  });
  await context.close();
  return { ms, transfer, timeline };
}

await load(); // warms the gateway (its gzip of each file is made on first request)
const runs = [];
for (let i = 0; i < loads; i++) runs.push(await load());
await browser.close();
gateway.stop();

const times = runs.map((r) => r.ms).sort((a, b) => a - b);
const median = times[Math.floor(times.length / 2)];
const t = runs[0].transfer;
if (process.env.TIMELINE) console.log(runs[Math.floor(runs.length / 2)].timeline.join('\n'));
const kb = (n) => `${(n / 1024).toFixed(1)} KB`;
console.log(`first load, no cache: ${t.files} console files, ${kb(t.filesTransfer)} transferred (${kb(t.filesBody)} compressed bodies, ${kb(t.filesDecoded)} uncompressed); plus ${t.api} API calls, ${kb(t.apiTransfer)}`);
console.log(`everything transferred: ${kb(t.filesTransfer + t.apiTransfer)}`);
console.log(`API keys section with 20 templates drawn after navigation, ${loads} loads: median ${median.toFixed(1)} ms, min ${times[0].toFixed(1)} ms, max ${times[times.length - 1].toFixed(1)} ms`);
process.exit(0);
