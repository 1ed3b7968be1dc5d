// The console after its first week (issue 24), in Debian's Chromium against a keygate-local
// started on a port of its own choosing (--port N, not 3000): a project with more keys than a
// page shows the period's totals over all of them, as money; the pending count stands on the
// Requests tab and in the project list and follows decisions; a holder's tile turns active when
// the window regains focus, without a reload; the owner follows the link in her mail to this
// gateway; focus lands on the tile or row each action changed; labels repeated in the template
// editor are unique to screen readers; the chart's labels never overlap; a reversed period is
// refused once, beside its field. Screenshots in tests/browser/out/ (w*.png).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { callApi, launchBrowser, localToken, person as open, screen, signInAs, startGateway } from './harness.mjs';

let gateway;
let url;
let port;
let browser;

/** A port nobody listens on now, on 127.0.0.1. */
const freePort = () => new Promise((resolve, reject) => {
  const s = createServer();
  s.on('error', reject);
  s.listen(0, '127.0.0.1', () => {
    const { port: p } = s.address();
    s.close(() => resolve(p));
  });
});

before(async () => {
  port = await freePort();
  gateway = await startGateway(['--port', String(port)]);
  url = gateway.url;
  assert.equal(url, `http://127.0.0.1:${port}`, 'the gateway serves the port it was given');
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  gateway?.stop();
});

const tokenOf = (sub) => localToken(url, sub);
const call = (token, method, path, body) => callApi(url, token, method, path, body);

const signIn = (page, sub) => signInAs(page, url, sub);

/** The full link in the newest mail to `to` whose subject matches. */
function linkInMail(to, subject) {
  const dir = join(gateway.dataDir, 'data', 'mail');
  const mails = readdirSync(dir).sort().map((f) => readFileSync(join(dir, f), 'utf8'))
    .filter((m) => m.includes(`To: ${to}`) && subject.test(m));
  assert.ok(mails.length, `a mail to ${to} matching ${subject}`);
  return mails[mails.length - 1].match(/http:\/\/[^\s<"]+/g).find((l) => !l.includes('/v1/'));
}

/** The id of the focused element and its text. */
const focused = (page) => page.evaluate(() => ({ id: document.activeElement?.id ?? '', text: document.activeElement?.textContent ?? '' }));

const KEYS = 24;

test('a week later: totals over every page, pending counts, focus, mail links to this port', async () => {
  const owner = await tokenOf('wann');
  const project = await call(owner, 'POST', '/v1/projects', { name: 'Busy', description: 'More keys than a page' });
  const p = project.id;
  await call(owner, 'PUT', `/v1/projects/${p}/roles/reader`, { permissions: ['project_view', 'package_view'] });
  const template = await call(owner, 'POST', `/v1/projects/${p}/templates`, { name: 'Forecast API', role: 'reader', price_per_request: 7 });
  await call(owner, 'POST', `/v1/projects/${p}/templates`, { name: 'Trial API', role: 'reader', validity_days: 1 });
  // 24 holders, each of whose keys is used (i % 3) + 1 times: 48 calls, €3.36.
  let calls = 0;
  for (let i = 0; i < KEYS; i++) {
    const sub = `u${String(i).padStart(2, '0')}`;
    await call(owner, 'PUT', `/v1/projects/${p}/members/${sub}`, { role: 'reader', email: `${sub}@example.com` });
    const holder = await tokenOf(sub);
    const { request } = await call(holder, 'POST', `/v1/projects/${p}/templates/${template.id}/requests`);
    const { key } = await call(owner, 'POST', `/v1/projects/${p}/requests/${request.id}/approve`);
    const { token } = await call(holder, 'GET', `/v1/me/keys/${key.id}/token`);
    for (let n = 0; n < (i % 3) + 1; n++, calls++) {
      const r = await fetch(`${url}/api/projects/${p}/data_layers/last`, { headers: { Authorization: `Bearer ${token}` } });
      assert.equal(r.status, 200);
    }
  }
  assert.equal(calls, 48);
  for (const sub of ['wbob', 'wcarl']) {
    await call(owner, 'PUT', `/v1/projects/${p}/members/${sub}`, { role: 'reader', email: `${sub}@example.com` });
  }

  // Bob requests from his tile: focus moves to the tile, which says it waits.
  const bob = await open(browser, 'wbob');
  await signIn(bob, 'wbob');
  await bob.goto(`${url}/projects/${p}`);
  const tile = bob.getByRole('article', { name: 'Forecast API' });
  await tile.getByRole('button', { name: 'Request a key for Forecast API' }).click();
  await tile.getByText('waiting for the owner to approve').waitFor();
  await bob.waitForFunction(() => document.activeElement?.id.startsWith('tile-card-'));
  assert.match((await focused(bob)).text, /Forecast API[\s\S]*waiting for the owner/, 'focus is on the tile that changed');
  assert.match(await bob.getByRole('article', { name: 'Trial API' }).innerText(), /Valid\s*1 day after issue/);
  await screen(bob, 'w1-tile-requested-focus');
  const carl = await tokenOf('wcarl');
  await call(carl, 'POST', `/v1/projects/${p}/templates/${template.id}/requests`);

  // Ann: the pending count in her project list and on the Requests tab.
  const ann = await open(browser, 'wann');
  await signIn(ann, 'wann');
  await ann.getByRole('link', { name: '2 requests wait for your decision' }).waitFor();
  await screen(ann, 'w2-projects-pending');
  // The mail's link leads to this gateway (its own port), and she follows it as it is.
  const link = linkInMail('wann@example.com', /Subject: API key request/);
  assert.ok(link.startsWith(`http://127.0.0.1:${port}/projects/${p}/requests`), `the mail links to the address served: ${link}`);
  await ann.goto(link);
  const tabs = ann.getByRole('navigation', { name: 'Project sections' });
  await tabs.getByRole('link', { name: 'Requests 2 pending' }).waitFor();
  await ann.getByRole('row', { name: /wbob@example\.com/ }).waitFor();
  await screen(ann, 'w3-requests-pending-count');

  // Approve: the row stays where it was, marked, with focus on it; the count follows; the next
  // request's buttons have not moved, so that a person can go on deciding with the mouse.
  const nextApprove = ann.getByRole('button', { name: 'Approve the request of wcarl@example.com for Forecast API' });
  const nextReject = ann.getByRole('button', { name: 'Reject the request of wcarl@example.com for Forecast API' });
  const before = [await nextApprove.boundingBox(), await nextReject.boundingBox()];
  await ann.getByRole('button', { name: 'Approve the request of wbob@example.com for Forecast API' }).click();
  await ann.waitForFunction(() => document.activeElement?.id.startsWith('request-row-'));
  assert.match((await focused(ann)).text, /wbob@example\.com[\s\S]*approved/);
  await tabs.getByRole('link', { name: 'Requests 1 pending' }).waitFor();
  await ann.getByText(/Approved: a key for Forecast API was issued to wbob@example\.com/).waitFor();
  const after = [await nextApprove.boundingBox(), await nextReject.boundingBox()];
  assert.deepEqual(after, before, 'Approve and Reject of the next request stay where they were');
  const rowsInOrder = await ann.locator('table.requests tbody tr').allInnerTexts();
  assert.match(rowsInOrder[0], /wbob@example\.com[\s\S]*approved/, 'the decided request keeps its place');
  await screen(ann, 'w3b-requests-after-approve');

  // Bob's window regains focus: his tile shows the key, with no reload of the page.
  await bob.evaluate(() => { window.__stayed = true; });
  await bob.evaluate(() => window.dispatchEvent(new Event('focus')));
  await tile.getByText('Your key is active').waitFor();
  assert.equal(await bob.evaluate(() => window.__stayed), true, 'the same page, not a reload');
  // A member who opens the owner's Issued keys is told why once, in words, not once per list.
  await bob.goto(`${url}/projects/${p}/issued-keys`);
  await bob.getByRole('alert').first().waitFor();
  await bob.waitForLoadState('networkidle');
  assert.equal(await bob.getByRole('alert').count(), 1, 'one problem, shown once');
  assert.match(await bob.getByRole('alert').innerText(), /You may not do this here\.[\s\S]*permission to manage the project/);

  // Reject: the dialog names the request; focus lands on its row; nothing waits any more.
  await ann.getByRole('button', { name: 'Reject the request of wcarl@example.com for Forecast API' }).click();
  const reject = ann.getByRole('dialog', { name: 'Reject the request' });
  assert.match(await reject.innerText(), /wcarl@example\.com asked for a key for Forecast API/);
  await reject.getByLabel('Reason').fill('Use the Trial API first');
  await reject.getByRole('button', { name: 'Reject request' }).click();
  await ann.waitForFunction(() => document.activeElement?.id.startsWith('request-row-') && document.activeElement.textContent.includes('wcarl'));
  assert.match((await focused(ann)).text, /rejected/);
  await tabs.getByRole('link', { name: 'Requests', exact: true }).waitFor();
  await screen(ann, 'w4-requests-decided-focus');

  // Issued keys: 25 keys on one page, each on one line at 1280 px; the period's totals are
  // the whole project's, as money, above the table.
  await tabs.getByRole('link', { name: 'Issued keys' }).click();
  const totals = ann.getByRole('region', { name: /Whole project/ });
  await totals.waitFor();
  assert.match(await totals.innerText(), /25 keys/);
  assert.match(await totals.innerText(), /Requests\s*48/);
  assert.match(await totals.innerText(), /Cost\s*€3\.36/);
  const bodyRows = ann.locator('table.issued tbody tr');
  await ann.getByRole('row', { name: /Total on this page \(25 keys\)/ }).waitFor();
  assert.equal(await bodyRows.count(), 25, 'the 25 keys on the first page');
  const heights = await bodyRows.evaluateAll((rows) => rows.map((r) => r.getBoundingClientRect().height));
  const line = await ann.locator('table.issued tbody td').first().evaluate((td) => parseFloat(getComputedStyle(td).lineHeight));
  assert.ok(heights.every((h) => h < 2 * line + 12), `every row on one line (line ${line}px): ${heights.join(', ')}`);
  const wraps = await ann.locator('table.issued tbody td').evaluateAll((tds) => tds.filter((td) => td.scrollWidth > td.clientWidth + 1).length);
  assert.equal(wraps, 0, 'no cell overflows its column');
  assert.ok((await totals.boundingBox()).y < 900, 'the totals are in the first screen');
  assert.match(await ann.getByRole('columnheader', { name: /Quota used now/ }).innerText(), /now/);
  await screen(ann, 'w5-issued-keys-table');

  // Sorted by requests: most first, then fewest; filtered by user and by status.
  const requestsColumn = () => bodyRows.evaluateAll((rows) => rows.map((r) => Number(r.querySelectorAll('td')[5].textContent)));
  await ann.getByRole('button', { name: /^Requests/ }).click();
  assert.equal(await ann.getByRole('columnheader', { name: /^Requests/ }).getAttribute('aria-sort'), 'descending');
  const down = await requestsColumn();
  assert.deepEqual(down, [...down].sort((a, b) => b - a), `requests, most first: ${down}`);
  assert.equal(down[0], 3);
  await ann.getByRole('button', { name: /^Requests/ }).click();
  const up = await requestsColumn();
  assert.deepEqual(up, [...up].sort((a, b) => a - b), `requests, fewest first: ${up}`);
  assert.equal(up[0], 0, "wbob's new key has no calls yet");
  await ann.getByLabel('User', { exact: true }).fill('u05');
  assert.equal(await bodyRows.count(), 1);
  assert.match(await bodyRows.first().innerText(), /u05@example\.com/);
  await ann.getByRole('row', { name: /Total of the keys shown \(1 key\)/ }).waitFor();
  await ann.getByRole('row', { name: /Total of all 25 keys in the period/ }).waitFor();
  await ann.getByLabel('User', { exact: true }).fill('');
  await ann.getByLabel('Status', { exact: true }).selectOption('revoked');
  await ann.getByText('No key on this page matches the filter.').waitFor();
  await ann.getByLabel('Status', { exact: true }).selectOption('');

  // 20 a page: the pager is above the table; the page's totals and the project's.
  await ann.getByLabel('Keys a page').selectOption('20');
  await ann.getByRole('row', { name: /Total on this page \(20 keys\)/ }).waitFor();
  const all = ann.getByRole('row', { name: /Total of all 25 keys in the period/ });
  assert.deepEqual((await all.getByRole('cell').allInnerTexts()).slice(0, 2), ['48', '€3.36']);
  const pageTotal = ann.getByRole('row', { name: /Total on this page \(20 keys\)/ });
  const pageCost = (await pageTotal.getByRole('cell').allInnerTexts())[1];
  assert.match(pageCost, /^€\d+\.\d\d$/);
  assert.ok(Number(pageCost.slice(1)) < 3.36, 'the page is a part of the whole');
  const pager = await ann.getByRole('navigation', { name: 'Pages' }).boundingBox();
  assert.ok(pager.y < (await ann.locator('table.issued').boundingBox()).y, 'the pager is above the list');
  await screen(ann, 'w5b-issued-keys-paged');

  // A reversed period is refused once, beside the date it concerns.
  await ann.getByLabel('From', { exact: true }).fill('2026-12-10');
  await ann.getByLabel('To', { exact: true }).fill('2026-12-01');
  await ann.getByRole('button', { name: 'Show period' }).click();
  const alerts = ann.getByRole('alert');
  await alerts.first().waitFor();
  assert.equal(await alerts.count(), 1, 'one error, once');
  assert.match(await alerts.innerText(), /must be on or after the start/);
  assert.equal(await ann.getByLabel('To', { exact: true }).getAttribute('aria-invalid'), 'true');
  await screen(ann, 'w6-reversed-period');
  // A period that ended before any key was issued lists none and counts none.
  await ann.getByLabel('From', { exact: true }).fill('2025-01-01');
  await ann.getByLabel('To', { exact: true }).fill('2025-01-31');
  await ann.getByRole('button', { name: 'Show period' }).click();
  await ann.getByText('No keys had been issued in this project by the end of the period.').waitFor();
  assert.match(await totals.innerText(), /\(0 keys\)/);
  await ann.reload();

  // A key's page, opened from its row: the chart over 30 days (labels never overlap; Hourly
  // draws the last 3 days); the owner rerolls the key there.
  await bodyRows.filter({ hasText: 'u00@example.com' }).getByRole('cell').nth(2).click();
  await ann.getByRole('heading', { name: /Forecast API key of u00@example\.com/ }).waitFor();
  await ann.getByRole('img', { name: /requests per day/ }).waitFor();
  const overlaps = () => ann.evaluate(() => {
    const boxes = [...document.querySelectorAll('.chart text.time')].map((t) => t.getBBox());
    return { labels: boxes.length, overlapping: boxes.slice(1).filter((b, i) => b.x < boxes[i].x + boxes[i].width).length };
  });
  const daily = await overlaps();
  assert.ok(daily.labels >= 4 && daily.overlapping === 0, `daily labels: ${JSON.stringify(daily)}`);
  await ann.getByRole('button', { name: 'Hourly' }).click();
  await ann.getByRole('img', { name: /requests per hour/ }).waitFor();
  const hourly = await overlaps();
  assert.ok(hourly.labels >= 4 && hourly.overlapping === 0, `hourly labels: ${JSON.stringify(hourly)}`);
  await screen(ann, 'w7-chart-hourly');
  await ann.getByRole('button', { name: 'Reroll' }).click();
  const reroll = ann.getByRole('dialog', { name: 'Give this key a new token?' });
  await reroll.getByRole('radio', { name: /stops at once/ }).check();
  await reroll.getByRole('button', { name: 'Reroll key' }).click();
  await ann.getByText(/New token made for u00@example\.com's key; .* the old token stopped working\. They have been told by mail\./).waitFor();
  assert.match(await ann.getByRole('region', { name: 'This key' }).innerText(), /Token\s*rerolled once/);
  assert.equal(await ann.getByLabel('New key token').count(), 0, "the owner is not shown the holder's token");
  await screen(ann, 'w7b-key-page-rerolled');

  // Revoke Bob's key from its row (on the second page of 20): focus lands on its row, which
  // says revoked.
  await ann.goBack();
  await ann.getByLabel('Keys a page').selectOption('20');
  await ann.getByRole('button', { name: 'Next ›' }).click();
  const bobRow = ann.getByRole('row', { name: /wbob@example\.com/ });
  await bobRow.getByRole('button', { name: 'Revoke the key of wbob@example.com for Forecast API' }).click();
  await ann.getByRole('dialog', { name: 'Revoke this key?' }).getByRole('button', { name: 'Revoke key' }).click();
  await bobRow.getByRole('cell', { name: 'revoked', exact: true }).waitFor();
  await ann.waitForFunction(() => document.activeElement?.id.startsWith('key-row-'));
  assert.match((await focused(ann)).text, /wbob@example\.com[\s\S]*revoked/);
  assert.equal((await bobRow.getByRole('cell').allInnerTexts())[8], 'key revoked', 'a revoked key has no current quota, and says why');

  // The template editor: each field's inputs have names of their own.
  await tabs.getByRole('link', { name: 'API keys' }).click();
  await ann.getByRole('button', { name: 'Edit template Forecast API' }).click();
  const editor = ann.getByRole('form', { name: 'Edit template Forecast API' });
  await editor.getByRole('button', { name: '+ Field' }).click();
  await editor.getByRole('button', { name: '+ Field' }).click();
  for (const label of ['Field name, field 1', 'Field name, field 2', 'Label, field 2', 'Kind, field 2', 'Value, field 2']) {
    assert.equal(await editor.getByLabel(label, { exact: true }).count(), 1, `one input named “${label}”`);
  }
  await screen(ann, 'w8-template-editor-labels');
  assert.ok(!gateway.log().includes(owner), 'user tokens never reach the log');
});
