// What the period's totals over a whole project cost (docs/benchmarks-history.md, "Console after the first week"): a
// project with N keys, each used on a few hours of the last days, and the time of
// `GET /v1/projects/{p}/usage` over 30 days (which sums every key's buckets on read) beside the
// time of one issued-keys page of 20 keys, over repeated calls (median, min, max).
//
//   node tests/browser/bench-totals.mjs [keys=200] [calls=15]
//
// It starts its own keygate-local ($KEYGATE_LOCAL_BIN, else target/release/keygate-local) on a
// fresh data directory (SQLite), and stops it at the end.

import { callApi, localToken, startGateway } from './harness.mjs';

const keys = Number(process.argv[2] ?? 200);
const calls = Number(process.argv[3] ?? 15);
const gateway = await startGateway([], 'release');
const { url } = gateway;

const call = (token, method, path, body) => callApi(url, token, method, path, body);
const tokenOf = (sub) => localToken(url, sub);

try {
  const owner = await tokenOf('owner');
  const { id: p } = await call(owner, 'POST', '/v1/projects', { name: 'Many keys' });
  await call(owner, 'PUT', `/v1/projects/${p}/roles/reader`, { permissions: ['project_view', 'package_view'] });
  const template = await call(owner, 'POST', `/v1/projects/${p}/templates`, { name: 'API', role: 'reader', price_per_request: 3 });
  let used = 0;
  for (let i = 0; i < keys; i++) {
    const sub = `holder${i}`;
    await call(owner, 'PUT', `/v1/projects/${p}/members/${sub}`, { role: 'reader', email: `${sub}@example.com` });
    const holder = await tokenOf(sub);
    const { request } = await call(holder, 'POST', `/v1/projects/${p}/templates/${template.id}/requests`);
    const { key } = await call(owner, 'POST', `/v1/projects/${p}/requests/${request.id}/approve`);
    const { token } = await call(holder, 'GET', `/v1/me/keys/${key.id}/token`);
    for (let n = 0; n < 1 + (i % 3); n++, used++) {
      const r = await fetch(`${url}/api/projects/${p}/data_layers/last`, { headers: { Authorization: `Bearer ${token}` } });
      if (r.status !== 200) throw new Error(`call ${r.status}`);
    }
  }
  const time = async (path) => {
    const ms = [];
    let answer;
    for (let i = 0; i <= calls; i++) {
      const started = performance.now();
      answer = await call(owner, 'GET', path);
      if (i > 0) ms.push(performance.now() - started); // the first warms the caches
    }
    ms.sort((a, b) => a - b);
    return { answer, median: ms[Math.floor(ms.length / 2)], min: ms[0], max: ms[ms.length - 1] };
  };
  const totals = await time(`/v1/projects/${p}/usage`);
  if (totals.answer.requests !== used || totals.answer.keys !== keys) throw new Error(`totals ${JSON.stringify(totals.answer)}`);
  const page = await time(`/v1/projects/${p}/keys?limit=20`);
  const f = (t) => `median ${t.median.toFixed(1)} ms, min ${t.min.toFixed(1)} ms, max ${t.max.toFixed(1)} ms`;
  console.log(`${keys} keys, ${used} calls; ${calls} calls each`);
  console.log(`GET /v1/projects/{p}/usage (all ${keys} keys, 30 days): ${f(totals)}`);
  console.log(`GET /v1/projects/{p}/keys?limit=20 (one page):        ${f(page)}`);
} finally {
  gateway.stop();
}
