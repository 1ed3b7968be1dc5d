// What the browser tests share: a keygate-local of their own on a fresh data directory,
// Debian's Chromium, and the check every screen gets (a screenshot, axe-core, no script error).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
export const out = process.env.KEYGATE_BROWSER_OUT ?? join(here, 'out');
const axeSource = readFileSync(join(here, 'node_modules', 'axe-core', 'axe.min.js'), 'utf8');

/** Starts keygate-local on a free port; answers {url, dataDir, log(), stop()}. */
export async function startGateway(args = [], binary = 'debug') {
  const dataDir = mkdtempSync(join(tmpdir(), 'keygate-browser-'));
  const bin = process.env.KEYGATE_LOCAL_BIN ?? join(process.env.CARGO_TARGET_DIR ?? join(root, 'target'), binary, 'keygate-local');
  const port = args.includes('--port') ? [] : ['--port', '0'];
  const child = spawn(bin, [...port, '--data-dir', join(dataDir, 'data'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stderr.on('data', (d) => { log += d; });
  // The gateway goes when the test goes, however it ends.
  process.on('exit', () => child.kill('SIGKILL'));
  const url = await new Promise((resolve, reject) => {
    let seen = '';
    child.stdout.on('data', (d) => {
      seen += d;
      const m = seen.match(/keygate-local listening on (http:\/\/\S+)/);
      if (m) resolve(m[1]);
    });
    child.on('exit', (code) => reject(new Error(`keygate-local exited (${code}): ${log}`)));
    setTimeout(() => reject(new Error(`keygate-local did not start: ${log}`)), 30_000);
  });
  return {
    url,
    dataDir,
    log: () => log,
    stop: () => { child.kill('SIGTERM'); rmSync(dataDir, { recursive: true, force: true }); },
  };
}

/** Signs `sub` in on keygate-local's form (e-mail `sub@example.com`), landing on Projects. */
export async function signInAs(page, url, sub) {
  await page.goto(`${url}/`);
  await page.getByLabel('User id').fill(sub);
  await page.getByLabel('E-mail').fill(`${sub}@example.com`);
  await page.getByLabel('Name (optional)').fill(sub);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Projects', level: 1 }).waitFor();
}

/** A user token of keygate-local's sign-in form, for setting a project up over the API. */
export async function localToken(url, sub) {
  const r = await fetch(`${url}/local/sign-in`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ sub, email: `${sub}@example.com`, name: sub }),
  });
  if (!r.ok) throw new Error(`sign-in of ${sub}: ${r.status} ${await r.text()}`);
  return (await r.json()).token;
}

/** One call of the /v1 API with a user token; its JSON answer, or an error naming the call. */
export async function callApi(url, token, method, path, body) {
  const r = await fetch(`${url}${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

export function launchBrowser() {
  mkdirSync(out, { recursive: true });
  return chromium.launch({
    executablePath: process.env.KEYGATE_CHROMIUM ?? '/usr/bin/chromium',
    // Without the background-networking flags Chromium tries Google's hosts, which this
    // machine's closed network refuses.
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
}

/** A person at their own browser window (own session storage), with what went wrong in it. */
export async function person(browser, name) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'en-GB', timezoneId: 'UTC' });
  const page = await context.newPage();
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error' && !/status of 4\d\d/.test(m.text())) page.errors.push(m.text()); });
  page.who = name;
  return page;
}

/** Saves the screen and checks it with axe-core: no violation rated serious or critical. */
export async function screen(page, name) {
  await page.waitForLoadState('networkidle');
  await page.screenshot({ path: join(out, `${name}.png`), fullPage: true });
  const hasAxe = await page.evaluate(() => typeof window.axe !== 'undefined');
  if (!hasAxe) await page.evaluate(axeSource);
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  assert.deepEqual(
    bad.map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).slice(0, 3).join('; ')}`),
    [],
    `accessibility problems on the ${name} screen`,
  );
  assert.deepEqual(page.errors, [], `script errors on the ${name} screen`);
}
