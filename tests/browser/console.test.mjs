// The console used as people use it: Debian's Chromium, driven by Playwright, against a
// keygate-local this test starts on a fresh data directory. It walks the story of the seeds
// (owner sets up a project and a template, a user requests, the owner approves, the user imports
// the key, a metered call shows in the owner's issued keys and chart, the owner revokes), shows
// that 403, 409 and 422 answers read as words, that typed markup never runs, and that request →
// approve works with the keyboard alone. axe-core checks every screen; each screen is saved as a
// screenshot in tests/browser/out/ (or $KEYGATE_BROWSER_OUT) for a person to look at.
//
// Run by scripts/test: node --test tests/browser/ (needs KEYGATE_LOCAL_BIN, or a debug build).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { launchBrowser, person as open, screen, startGateway } from './harness.mjs';

let gateway;
let url;
let dataDir;
let browser;

before(async () => {
  gateway = await startGateway();
  ({ url, dataDir } = gateway);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  gateway?.stop();
});

const person = (name) => open(browser, name);

async function signIn(page, sub, email, name) {
  await page.goto(`${url}/`);
  await page.getByRole('heading', { name: 'Sign in to keygate-local' }).waitFor();
  await page.getByLabel('User id').fill(sub);
  await page.getByLabel('E-mail').fill(email);
  await page.getByLabel('Name (optional)').fill(name);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Projects', level: 1 }).waitFor();
}

/** The console path linked from the newest mail to `to` whose subject matches (mail is on disk). */
function linkInMail(to, subject) {
  const dir = join(dataDir, 'data', 'mail');
  const mails = readdirSync(dir).sort().map((f) => readFileSync(join(dir, f), 'utf8'))
    .filter((m) => m.includes(`To: ${to}`) && subject.test(m));
  assert.ok(mails.length, `a mail to ${to} matching ${subject}`);
  const link = mails[mails.length - 1].match(/http:\/\/[^\s<"]+/g).find((l) => !l.includes('/v1/'));
  return new URL(link).pathname;
}

const projectId = (page) => new URL(page.url()).pathname.split('/')[2];

async function registerProject(page, name) {
  await page.getByLabel('Name', { exact: true }).fill(name);
  await page.getByRole('button', { name: 'Register project' }).click();
  await page.getByRole('heading', { name, level: 1 }).waitFor();
  return projectId(page);
}

async function addNode(page, id, name) {
  await page.getByLabel('Node id').fill(id);
  await page.getByLabel('Node name').fill(name);
  await page.getByRole('button', { name: 'Save node' }).click();
  await page.locator('#nodes-title ~ ul li', { hasText: id }).waitFor();
}

async function addMember(page, user, email, role) {
  await page.getByLabel('User id').fill(user);
  await page.getByLabel('Member e-mail').fill(email);
  await page.getByLabel('Member role').selectOption(role);
  await page.getByRole('button', { name: 'Save member' }).click();
  await page.getByRole('cell', { name: email }).waitFor();
}

/** The + button's dialog, filled in; answers the dialog (still open if the API refused). */
async function newTemplate(page, name, role) {
  await page.getByRole('button', { name: 'Add API key template' }).click();
  const dialog = page.getByRole('dialog', { name: 'New API key template' });
  await dialog.getByLabel('Name (unique in the project)').fill(name);
  await dialog.getByLabel('Role (what keys of this template may do)').selectOption(role);
  return dialog;
}

async function openTab(page, name) {
  await page.getByRole('navigation', { name: 'Project sections' }).getByRole('link', { name }).click();
}

/** Presses Tab until the focused element is the one named, then answers it (keyboard only). */
async function tabTo(page, role, name) {
  for (let i = 0; i < 80; i++) {
    await page.keyboard.press('Tab');
    const focused = await page.evaluate(() => {
      const el = document.activeElement;
      return el ? { label: el.getAttribute('aria-label') ?? el.textContent?.trim() ?? '', tag: el.tagName } : null;
    });
    if (focused && focused.label === name) return;
  }
  throw new Error(`Tab never reached the ${role} “${name}”`);
}

test('the story of the seeds, screen by screen', async () => {
  const ann = await person('ann');
  const bob = await person('bob');

  // Sign-in (local form) and the empty projects list.
  await ann.goto(`${url}/`);
  await ann.getByRole('heading', { name: 'Sign in to keygate-local' }).waitFor();
  await screen(ann, '01-sign-in');
  await ann.getByLabel('User id').fill('ann');
  await ann.getByLabel('E-mail').fill('ann@example.com');
  await ann.getByLabel('Name (optional)').fill('Ann Owner');
  await ann.getByRole('button', { name: 'Sign in' }).click();
  await ann.getByText('You belong to no project yet').waitFor();
  await screen(ann, '02-projects-empty');

  // Owner: project, a role (permissions as checkboxes), two nodes, Bob as a member.
  const p = await registerProject(ann, 'Weather');
  await ann.getByLabel('Role name').fill('reader');
  await ann.getByRole('checkbox', { name: 'package_view' }).check();
  await ann.getByRole('button', { name: 'Save role' }).click();
  await ann.getByRole('cell', { name: 'reader', exact: true }).waitFor();
  await addNode(ann, 'in', 'Input');
  await addNode(ann, 'out', 'Output');
  await addMember(ann, 'bob', 'bob@example.com', 'reader');
  await screen(ann, '03-settings');

  // Owner: a template from the + button; the tile takes its information fields.
  await openTab(ann, 'API keys');
  await ann.getByText('No templates yet').waitFor();
  const dialog = await newTemplate(ann, 'Forecast API', 'reader');
  await screen(ann, '04-new-template-dialog');
  await dialog.getByRole('button', { name: 'CREATE' }).click();
  const editor = ann.getByRole('form', { name: 'Edit template Forecast API' });
  await editor.waitFor();
  await editor.getByLabel(/Price per request, in hundredths of EUR/).fill('7');
  await editor.getByText('€0.07 per request').waitFor();
  await editor.getByLabel('Quota: calls').fill('100');
  // A strict rate limit, and the sentence that says what it means and costs.
  await editor.getByLabel('Rate: calls per second').fill('50');
  const mode = editor.getByLabel('Rate limit is decided');
  assert.match(await ann.locator(`#${await mode.getAttribute('aria-describedby')}`).innerText(), /counts on its own, in memory, at no cost per call/);
  await mode.selectOption('strict');
  const means = ann.locator(`#${await mode.getAttribute('aria-describedby')}`);
  assert.match(await means.innerText(), /^Exact across every gateway instance: decided in the database, for one more database write per call/);
  await screen(ann, '05a-template-editor-strict-rate');
  for (const [i, [name, kind, value]] of [['project', 'project'], ['input', 'node', 'in'], ['output', 'node', 'out']].entries()) {
    await editor.getByRole('button', { name: '+ Field' }).click();
    await editor.getByLabel('Field name').nth(i).fill(i === 0 ? '1project' : name);
    await editor.getByLabel('Kind').nth(i).selectOption(kind);
    if (value) await editor.getByLabel(`Node, field ${i + 1}`, { exact: true }).selectOption(value);
  }
  // 422: the API names the field; the message stands next to it.
  await editor.getByRole('button', { name: 'Save template' }).click();
  const fieldError = editor.locator('.field-error');
  await fieldError.first().waitFor();
  assert.match(await fieldError.first().innerText(), /must|letter/i);
  assert.equal(await editor.getByLabel('Field name').first().getAttribute('aria-invalid'), 'true');
  await screen(ann, '05-template-editor-422');
  await editor.getByLabel('Field name').first().fill('project');
  await editor.getByRole('button', { name: 'Save template' }).click();
  const annTile = ann.getByRole('article', { name: 'Forecast API' });
  await annTile.waitFor();
  await annTile.getByText(p).waitFor();
  assert.match(await annTile.innerText(), /package_view/);
  assert.match(await annTile.innerText(), /Price per request\s*€0\.07/);
  assert.match(await annTile.innerText(), /Quota\s*100 calls per day \(UTC\)/);
  assert.match(await annTile.innerText(), /Rate limit\s*50 calls per second, bursts of 50 \(strict\)/);

  // 409: the same name again is refused, in words.
  await newTemplate(ann, 'forecast api', 'reader');
  await dialog.getByRole('button', { name: 'CREATE' }).click();
  const conflict = dialog.getByRole('alert');
  await conflict.waitFor();
  assert.match(await conflict.innerText(), /This cannot be done as things are now\.[\s\S]*name/i);
  await screen(ann, '06-new-template-409');
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  await screen(ann, '07-api-keys-owner');

  // The user: sees the tile with its facts and REQUEST; requests; the tile waits.
  await signIn(bob, 'bob', 'bob@example.com', 'Bob User');
  await bob.getByRole('link', { name: 'Weather' }).click();
  const tile = bob.getByRole('article', { name: 'Forecast API' });
  await tile.waitFor();
  assert.match(await tile.innerText(), /project_view[\s\S]*package_view/);
  assert.match(await tile.innerText(), /no key/);
  await screen(bob, '08-tiles-requestable');
  await tile.getByRole('button', { name: 'Request a key for Forecast API' }).click();
  await tile.getByText('waiting for the owner to approve').waitFor();
  assert.equal(await tile.getByRole('button', { name: /Request a key/ }).count(), 0, 'no second request while pending');
  await screen(bob, '09-tiles-pending');

  // 403: a member who opens the owner's Requests page is told why, in words.
  await bob.goto(`${url}/projects/${p}/requests`);
  const forbidden = bob.getByRole('alert');
  await forbidden.waitFor();
  assert.match(await forbidden.innerText(), /You may not do this here\.[\s\S]*permission to manage the project/);
  assert.doesNotMatch(await forbidden.innerText(), /project_manage/, 'permissions are named in words, not by id');
  await screen(bob, '10-requests-403');

  // The owner follows the link in her mail to the Requests list, and approves (✓); the
  // notification's fate is said.
  const requestsLink = linkInMail('ann@example.com', /Subject: API key request/);
  assert.equal(requestsLink, `/projects/${p}/requests`);
  await ann.goto(`${url}${requestsLink}`);
  await ann.getByRole('row', { name: /bob@example\.com/ }).waitFor();
  await screen(ann, '11-requests');
  await ann.getByRole('button', { name: 'Approve the request of bob@example.com for Forecast API' }).click();
  await ann.getByText(/Approved: a key for Forecast API was issued to bob@example\.com; they have been told by mail\./).waitFor();
  await ann.getByText('No pending requests.').waitFor();

  // The user follows the link in the approval mail to their keys; the tile is active too; they
  // import the key into their own project's secrets.
  await bob.goto(`${url}${linkInMail('bob@example.com', /Subject: Your API key for "Forecast API" is ready/)}`);
  await bob.getByRole('heading', { name: 'My keys' }).waitFor();
  await bob.getByRole('article', { name: 'Forecast API' }).getByText('active').waitFor();
  await bob.goto(`${url}/projects/${p}`);
  await tile.getByText('Your key is active').waitFor();
  await bob.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Projects' }).click();
  const c = await registerProject(bob, 'Client');
  await addNode(bob, 'worker', 'Worker');
  await addNode(bob, 'spare', 'Spare');
  await openTab(bob, 'Secrets');
  await bob.getByText('No secrets yet').waitFor();
  await bob.getByRole('button', { name: /Add API key/ }).click();
  const menu = bob.getByRole('dialog', { name: 'Add API key' });
  await menu.getByRole('radio', { name: /Forecast API/ }).check();
  await menu.getByText('project_server_output').waitFor();
  const preview = await menu.locator('.preview').innerText();
  for (const name of ['project_server_token', 'project_server_project', 'project_server_input', 'project_server_output']) {
    assert.ok(preview.includes(name), `the menu shows ${name} before importing`);
  }
  assert.match(await menu.getByText(/of Weather, issued/).innerText(), /of Weather/, "the key's project by its name, not its id");
  await menu.getByRole('checkbox', { name: /Worker/ }).check();
  await screen(bob, '12-import-menu');
  await menu.getByRole('button', { name: 'Import key' }).click();
  await bob.getByText(/Imported 4 secrets/).waitFor();
  const tokenRow = bob.getByRole('row', { name: /project_server_token/ });
  assert.match(await tokenRow.innerText(), /Worker/);
  assert.doesNotMatch(await tokenRow.innerText(), /Spare/);
  await tokenRow.getByText('Forecast API key of Weather').waitFor();
  await screen(bob, '13-secrets');

  // Importing again: the names that exist are shown.
  await bob.getByRole('button', { name: /Add API key/ }).click();
  await menu.getByRole('radio', { name: /Forecast API/ }).check();
  await menu.getByRole('button', { name: 'Import key' }).click();
  await menu.getByText('Already taken:').waitFor();
  assert.equal(await menu.locator('code.conflict', { hasText: 'project_server_token' }).count() > 0, true);
  await screen(bob, '14-import-conflict');
  await menu.getByRole('button', { name: 'Cancel' }).click();

  // The token: hidden until revealed.
  await bob.getByRole('button', { name: 'Reveal project_server_token' }).click();
  const token = (await bob.locator('code.revealed').first().innerText()).trim();
  assert.match(token, /^ey[\w-]+\.[\w-]+\.[\w-]+$/);
  await bob.getByRole('button', { name: 'Copy project_server_token' }).waitFor();

  // A program calls the platform API with the key, over HTTP: metered three times.
  for (let i = 0; i < 3; i++) {
    const r = await fetch(`${url}/api/projects/${p}/data_layers/last`, { headers: { Authorization: `Bearer ${token}` } });
    assert.equal(r.status, 200);
  }
  const denied = await fetch(`${url}/api/projects/${p}/nodes/in/packages`, { method: 'POST', headers: { Authorization: `Bearer ${token}` } });
  assert.equal(denied.status, 403, 'the role has no package_create; a denied call is not metered');

  // My keys: state and own use; the token only after Reveal.
  await bob.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'My keys' }).click();
  const myKey = bob.getByRole('article', { name: 'Forecast API' });
  await myKey.getByText(/3 requests, cost €0\.21/).waitFor();
  await myKey.getByText(/3 of 100 today \(UTC\)/).waitFor();
  await myKey.getByText('1 (1 missing permission)').first().waitFor();
  assert.ok(!(await bob.content()).includes(token), 'the token is not in the page before Reveal');
  await screen(bob, '15-my-keys');
  await myKey.getByRole('button', { name: 'Reveal token of Forecast API' }).click();
  assert.equal((await myKey.getByLabel('Key token').innerText()).trim(), token);

  // The owner's issued keys: one line per key with requests, cost, refusals, quota now.
  await openTab(ann, 'Issued keys');
  const row = ann.getByRole('row', { name: /bob@example\.com/ });
  await row.waitFor();
  const cells = await row.getByRole('cell').allInnerTexts();
  assert.equal(cells[0], 'bob@example.com');
  assert.equal(cells[1], 'Forecast API');
  assert.equal(cells[3], 'active');
  assert.notEqual(cells[4], 'never', 'last used is shown');
  assert.equal(cells[5], '3');
  assert.equal(cells[6], '€0.21');
  assert.equal(cells[7], '1', 'the refused call');
  assert.equal(await row.getByRole('cell').nth(7).getAttribute('title'), '1 (1 missing permission)', 'and why, on the cell');
  assert.equal(cells[8], '3 of 100 today', 'used / quota in the current period');
  // The billing export of the period, as the owner downloads it.
  const [download] = await Promise.all([ann.waitForEvent('download'), ann.getByRole('button', { name: 'Download CSV' }).click()]);
  const csv = readFileSync(await download.path(), 'utf8');
  const lines = csv.trim().split('\n');
  assert.equal(lines[0], 'key_id,user_id,user_email,template_id,template_name,start,requests,cost,refused,'
    + 'refused_revoked,refused_rerolled,refused_expired,refused_not_yet_valid,refused_permission,refused_quota,refused_rate_limit,refused_key_not_usable,amount,currency,label');
  assert.equal(lines.length, 2, csv);
  assert.match(lines[1], /,bob,bob@example\.com,[^,]+,Forecast API,\d{4}-\d\d-\d\dT00:00:00Z,3,21,1,0,0,0,0,1,0,0,0,0\.21,EUR,$/, "the key's own calls: an empty label");
  await screen(ann, '16-issued-keys');

  // The row opens the key's page: its facts, its period, its chart and its last calls.
  await row.getByRole('cell').first().click();
  await ann.getByRole('heading', { name: /Forecast API key of bob@example\.com/, level: 1 }).waitFor();
  const keyUrl = new URL(ann.url()).pathname;
  assert.match(keyUrl, new RegExp(`^/projects/${p}/keys/[0-9A-Z]+$`), 'the key page has an address of its own');
  const facts = ann.getByRole('region', { name: 'This key' });
  assert.match(await facts.innerText(), /Held by\s*bob@example\.com \(bob\)/);
  assert.match(await facts.innerText(), /Limits\s*the template's/);
  assert.match(await facts.innerText(), /Quota now\s*3 of 100 today \(UTC\), renews/);
  const inPeriod = await ann.getByRole('region', { name: / to / }).innerText();
  assert.match(inPeriod, /Requests\s*3\s*Cost\s*€0\.21\s*Refused \(not billed\)\s*1 \(1 missing permission\)/);
  const chart = ann.getByRole('img', { name: /requests per day/ });
  await chart.waitFor();
  assert.match(await chart.getAttribute('aria-label'), /total 3/);
  assert.ok((await ann.locator('.chart rect.bar').count()) >= 28, 'one bar per day of the period');
  assert.match(await ann.locator('.chart figcaption').innerText(), /Requests in the period: 3/);
  assert.match(await ann.locator('.chart figcaption').innerText(), /Refused in the period: 1 \(1 missing permission\)/);
  assert.equal(await ann.locator('.chart rect.bar.refused').count(), 1, 'the refused call beside the requests of its day');
  await ann.getByRole('button', { name: 'Hourly' }).click();
  await ann.getByRole('img', { name: /requests per hour/ }).waitFor();
  const hourBars = await ann.locator('.chart rect.bar').count();
  assert.ok(hourBars > 48 && hourBars <= 72, `one bar per hour of the last 3 days, up to now: ${hourBars}`);
  await ann.getByText(/By the hour: the last 3 days of the period/).waitFor();
  assert.equal(await ann.locator('.chart text.axis-title').first().textContent(), 'Hour (UTC)');
  await ann.getByRole('button', { name: 'Daily' }).click();
  await ann.getByRole('img', { name: /requests per day/ }).waitFor();
  // The last hours' calls by outcome (one hour, unless the test ran across the hour's end).
  const hours = await ann.getByRole('region', { name: 'Last calls' }).locator('tbody tr').evaluateAll(
    (rows) => rows.map((r) => [...r.querySelectorAll('td')].map((td) => td.textContent)));
  assert.equal(hours.reduce((sum, h) => sum + Number(h[1]), 0), 3, `allowed calls by hour: ${JSON.stringify(hours)}`);
  assert.ok(hours.some((h) => h[2] === '1 (1 missing permission)'), `the refused call and why: ${JSON.stringify(hours)}`);
  await screen(ann, '16a-key-page-owner');

  // The holder rerolls from My keys, keeping the old token one more hour: the new token is
  // shown, the client project's secret holds it, and both work until then.
  await myKey.getByRole('button', { name: 'Reroll token of Forecast API' }).click();
  const rerollDialog = bob.getByRole('dialog', { name: 'Give this key a new token?' });
  await rerollDialog.getByRole('radio', { name: /works 1 more hour/ }).check();
  await screen(bob, '15b-reroll-confirm');
  await rerollDialog.getByRole('button', { name: 'Reroll key' }).click();
  await myKey.getByText(/New token made for bob@example\.com's key; 1 imported secret now holds it; the old token works until/).waitFor();
  const rerolled = (await myKey.getByLabel('Key token').innerText()).trim();
  assert.match(rerolled, /^ey[\w-]+\.[\w-]+\.[\w-]+$/);
  assert.notEqual(rerolled, token, 'a new token');
  await myKey.getByText(/The token before the last reroll works until/).waitFor();
  await screen(bob, '15c-my-keys-rerolled');
  for (const t of [token, rerolled]) {
    const r = await fetch(`${url}/api/projects/${p}/data_layers/last`, { headers: { Authorization: `Bearer ${t}` } });
    assert.equal(r.status, 200, 'old and new tokens both work in the grace period');
  }
  await bob.goto(`${url}/projects/${c}`);
  await openTab(bob, 'Secrets');
  await bob.getByRole('button', { name: 'Reveal project_server_token' }).click();
  assert.equal((await bob.locator('code.revealed').first().innerText()).trim(), rerolled, "the client project's secret holds the new token");
  await screen(bob, '15d-secrets-after-reroll');

  // The owner raises this one key's quota and grants extra calls for today, from its page; the
  // page is reloaded by its address first, as a shared link would open it.
  await ann.goto(`${url}${keyUrl}`);
  await ann.getByRole('button', { name: 'Limits' }).click();
  const limits = ann.getByRole('dialog', { name: "Limits of bob@example.com's key for Forecast API" });
  await limits.getByLabel('Quota for this key (calls)').fill('500');
  await limits.getByLabel(/Extra calls for the current period/).fill('50');
  await screen(ann, '16b-key-limits');
  await limits.getByRole('button', { name: 'Save limits' }).click();
  await ann.getByText(/Saved the limits of this key; they apply from the next call\./).waitFor();
  await facts.getByText("5 of 500 + 50 extra today (UTC) (this key's own), renews", { exact: false }).waitFor();
  assert.match(await facts.innerText(), /Limits\s*Set for this key by the project's owner: quota 500 calls per day/);
  assert.match(await facts.innerText(), /Token\s*rerolled once/);
  await screen(ann, '16c-key-page-limits');
  await bob.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'My keys' }).click();
  await myKey.getByText(/Set for this key by the project's owner: quota 500 calls per day \(UTC\)/).waitFor();
  await myKey.getByText(/5 of 500 \+ 50 extra today \(UTC\)/).waitFor();

  // The holder mints a narrowed token for a CI job: one hour, read-only; it is shown once,
  // works on the platform, is listed without its value, and is revoked on its own.
  await myKey.getByRole('button', { name: 'Mint a token of Forecast API' }).click();
  const mint = bob.getByRole('dialog', { name: 'Mint a narrowed token' });
  await mint.getByLabel(/^Label/).fill('ci');
  await mint.getByRole('radio', { name: '1 hour' }).check();
  await mint.getByRole('checkbox', { name: /see the project/ }).check();
  await screen(bob, '15e-mint-narrowed-token');
  await mint.getByRole('button', { name: 'Mint token' }).click();
  await myKey.getByText(/Token “ci” made\. Copy it now: it is shown only once/).waitFor();
  const narrowed = (await myKey.getByLabel('Narrowed token', { exact: true }).innerText()).trim();
  assert.match(narrowed, /^ey[\w-]+\.[\w-]+\.[\w-]+$/);
  const tokens = myKey.getByRole('table');
  await tokens.getByRole('row', { name: /ci see the project any/ }).waitFor();
  await screen(bob, '15f-narrowed-token-minted');
  const byNarrowed = await fetch(`${url}/api/projects/${p}/data_layers/last`, { headers: { Authorization: `Bearer ${narrowed}` } });
  assert.equal(byNarrowed.status, 200, 'the narrowed token works for what it keeps');
  await myKey.getByRole('button', { name: 'Done' }).click();
  assert.ok(!(await bob.content()).includes(narrowed), 'the narrowed token is not in the page after Done');
  await tokens.getByRole('button', { name: 'Revoke token ci' }).click();
  await tokens.getByRole('button', { name: 'Yes, revoke' }).click();
  await myKey.getByText('None yet.').waitFor();
  const described = await (await fetch(`${url}/v1/key`, { headers: { Authorization: `Bearer ${narrowed}` } })).json();
  assert.deepEqual([described.state, described.works], ['revoked', false], 'revoked on its own; the key still works');
  const byKey = await fetch(`${url}/v1/key`, { headers: { Authorization: `Bearer ${rerolled}` } });
  assert.equal((await byKey.json()).works, true);
  await screen(bob, '15g-narrowed-token-revoked');

  // The holder opens his key's page from My keys: the same facts, without the owner's Limits;
  // he mints a token for a notebook there, and the owner sees it on her page and revokes it.
  await myKey.getByRole('link', { name: 'Forecast API' }).click();
  await bob.getByRole('heading', { name: /Your Forecast API key/, level: 1 }).waitFor();
  assert.equal(new URL(bob.url()).pathname, keyUrl, "the holder's page is the owner's address");
  assert.equal(await bob.getByRole('button', { name: 'Limits' }).count(), 0, 'limits are the owner\'s');
  assert.match(await bob.getByRole('region', { name: 'This key' }).innerText(), /Quota now\s*\d+ of 500 \+ 50 extra today/);
  await bob.getByRole('button', { name: 'Mint a token of Forecast API' }).click();
  await mint.getByLabel(/^Label/).fill('notebook');
  await mint.getByRole('button', { name: 'Mint token' }).click();
  const notebook = (await bob.getByLabel('Narrowed token', { exact: true }).innerText()).trim();
  await bob.getByRole('button', { name: 'Done' }).click();
  await screen(bob, '16d-key-page-holder');
  await ann.reload();
  const ownerTokens = ann.getByRole('region', { name: 'Narrowed tokens of Forecast API' });
  await ownerTokens.getByRole('row', { name: /notebook/ }).waitFor();
  assert.equal(await ownerTokens.getByRole('button', { name: 'Mint a token of Forecast API' }).count(), 0, "minting is the holder's");
  await ownerTokens.getByRole('button', { name: 'Revoke token notebook' }).click();
  await ownerTokens.getByRole('button', { name: 'Yes, revoke' }).click();
  await ownerTokens.getByText('None yet.').waitFor();
  const notebookNow = await (await fetch(`${url}/v1/key`, { headers: { Authorization: `Bearer ${notebook}` } })).json();
  assert.equal(notebookNow.state, 'revoked', "revoked by the owner from the key's page");

  // The owner revokes from the key's page, after confirming; the table and the user's tile
  // show it.
  await ann.getByRole('button', { name: 'Revoke', exact: true }).click();
  const confirm = ann.getByRole('dialog', { name: 'Revoke this key?' });
  await screen(ann, '17-revoke-confirm');
  await confirm.getByRole('button', { name: 'Revoke key' }).click();
  await ann.getByText(/Revoked; the holder has been told by mail\./).waitFor();
  await ann.getByRole('heading', { level: 1 }).getByText('revoked').waitFor();
  assert.match(await facts.innerText(), /Status\s*revoked .*: every call with it is refused/);
  for (let i = 0; i < 3; i++) {
    const after = await fetch(`${url}/api/projects/${p}/data_layers/last`, { headers: { Authorization: `Bearer ${token}` } });
    assert.equal(after.status, 403, 'a revoked key is refused');
    const problem = await after.json();
    assert.equal(problem.outcome, 'revoked');
    assert.match(problem.detail, /revoked; ask the project's owner/, 'and the caller is told why, in words');
  }
  // The owner sees the revoked key's refusals in the table and on its page, with its chart.
  await ann.getByRole('link', { name: 'Issued keys' }).click();
  await row.getByRole('cell', { name: 'revoked', exact: true }).waitFor();
  assert.deepEqual((await row.getByRole('cell').allInnerTexts()).slice(7, 9), ['4', 'key revoked']);
  assert.equal(await row.getByRole('cell').nth(7).getAttribute('title'), '4 (3 revoked key, 1 missing permission)');
  await screen(ann, '17a-issued-keys-revoked');
  await row.getByRole('link', { name: 'Forecast API key of bob@example.com' }).click();
  await ann.getByText('Refused in the period: 4 (3 revoked key, 1 missing permission)', { exact: false }).waitFor();
  assert.match(await ann.getByRole('img', { name: /requests per day/ }).getAttribute('aria-label'), /refused calls 4/);
  assert.equal(await ann.getByRole('button', { name: 'Revoke', exact: true }).count(), 0, 'nothing to do on a revoked key');
  await screen(ann, '17b-key-page-refusals');

  await bob.goto(`${url}/projects/${p}`);
  await tile.getByText('Your key was revoked.').waitFor();
  assert.equal(await tile.getByRole('button', { name: 'Request a key for Forecast API' }).count(), 1, 'may request again');
  await screen(bob, '18-tiles-revoked');
  // And the holder sees his own refusals, in words, in My keys and its chart.
  await bob.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'My keys' }).click();
  const revokedKey = bob.getByRole('article', { name: 'Forecast API' });
  await revokedKey.getByText('4 (3 revoked key, 1 missing permission)').first().waitFor();
  assert.match(await revokedKey.getByRole('img', { name: /requests per day/ }).getAttribute('aria-label'), /refused calls 4/);
  await screen(bob, '18b-my-keys-refusals');

  // The audit log tells the story back.
  await ann.goto(`${url}/projects/${p}/audit`);
  await ann.getByRole('cell', { name: 'key revoked' }).waitFor();
  await screen(ann, '19-audit');
  assert.ok(c, 'the client project exists');
  assert.ok(!gateway.log().includes(token), 'the key never reaches the gateway log');
});

test('typed markup is shown as text and never runs', async () => {
  const ann = await person('ann');
  const bob = await person('bob');
  await signIn(ann, 'xann', 'xann@example.com', '<img src=x onerror="window.__xss=1">');
  const p = await registerProject(ann, '<script>window.__xss=1</script>');
  await ann.getByLabel('Role name').fill('viewer');
  await ann.getByRole('button', { name: 'Save role' }).click();
  await ann.getByRole('cell', { name: 'viewer', exact: true }).waitFor();
  await addMember(ann, 'xbob', 'xbob@example.com', 'viewer');
  await openTab(ann, 'API keys');
  const evil = '<img src=x onerror="window.__xss=1">';
  await (await newTemplate(ann, evil, 'viewer')).getByRole('button', { name: 'CREATE' }).click();
  const editor = ann.getByRole('form', { name: `Edit template ${evil}` });
  await editor.getByLabel('Description').fill('<script>window.__xss=1</script>');
  await editor.getByRole('button', { name: '+ Field' }).click();
  await editor.getByLabel('Field name').fill('note');
  await editor.getByLabel('Value').fill('<svg onload="window.__xss=1"></svg>');
  await editor.getByRole('button', { name: 'Save template' }).click();
  const tile = ann.getByRole('article', { name: evil });
  await tile.waitFor();
  // The value reads as typed (once the saved template is shown).
  await tile.getByText('<svg onload="window.__xss=1"></svg>', { exact: true }).waitFor();

  await signIn(bob, 'xbob', 'xbob@example.com', 'X Bob');
  await bob.goto(`${url}/projects/${p}`);
  await bob.getByRole('button', { name: `Request a key for ${evil}` }).click();
  await openTab(ann, 'Requests');
  await ann.getByRole('button', { name: `Reject the request of xbob@example.com for ${evil}` }).click();
  const reject = ann.getByRole('dialog', { name: 'Reject the request' });
  await reject.getByLabel('Reason').fill('<img src=y onerror="window.__xss=1"><script>window.__xss=1</script>');
  await reject.getByRole('button', { name: 'Reject request' }).click();
  await ann.getByText(/Rejected the request of xbob@example\.com/).waitFor();
  await bob.reload();
  const bobTile = bob.getByRole('article', { name: evil });
  await bobTile.getByText('Your request was rejected.').waitFor();
  assert.ok((await bobTile.innerText()).includes('<img src=y onerror="window.__xss=1"><script>window.__xss=1</script>'));
  await screen(bob, '20-markup-as-text');
  // The owner deletes the template, after confirming.
  await openTab(ann, 'API keys');
  await ann.getByRole('button', { name: `Delete template ${evil}` }).click();
  const confirm = ann.getByRole('dialog', { name: `Delete template “${evil}”?` });
  await confirm.getByRole('button', { name: 'Delete template' }).click();
  await ann.getByText('No templates yet').waitFor();
  for (const page of [ann, bob]) {
    await page.goto(`${url}/projects/${p}/audit`);
    await page.waitForLoadState('networkidle');
    assert.equal(await page.evaluate(() => window.__xss), undefined, `nothing typed ran for ${page.who}`);
    assert.equal(await page.locator('img[src=x], img[src=y], svg[onload]').count(), 0);
  }
});

test('request and approval with the keyboard alone', async () => {
  const ann = await person('ann');
  const bob = await person('bob');
  await signIn(ann, 'kann', 'kann@example.com', 'Keyboard Ann');
  const p = await registerProject(ann, 'Keyboard');
  await addMember(ann, 'kbob', 'kbob@example.com', 'owner');
  await openTab(ann, 'API keys');
  await (await newTemplate(ann, 'Typing API', 'owner')).getByRole('button', { name: 'CREATE' }).click();
  await ann.getByRole('button', { name: 'Save template' }).click();
  await ann.getByRole('article', { name: 'Typing API' }).waitFor();

  // From here on, only keys are pressed.
  await signIn(bob, 'kbob', 'kbob@example.com', 'Keyboard Bob');
  await bob.goto(`${url}/projects/${p}`);
  await bob.getByRole('article', { name: 'Typing API' }).waitFor();
  await tabTo(bob, 'button', 'Request a key for Typing API');
  await bob.keyboard.press('Enter');
  await bob.getByText('waiting for the owner to approve').waitFor();

  await ann.goto(`${url}/projects/${p}/requests`);
  await ann.getByRole('row', { name: /kbob@example\.com/ }).waitFor();
  await tabTo(ann, 'button', 'Approve the request of kbob@example.com for Typing API');
  await ann.keyboard.press('Enter');
  await ann.getByText(/Approved: a key for Typing API was issued to kbob@example\.com/).waitFor();

  await bob.reload();
  await bob.getByRole('article', { name: 'Typing API' }).getByText('Your key is active').waitFor();
  // The revoke dialog: opened and dismissed with keys; focus stays inside while it is open.
  await ann.goto(`${url}/projects/${p}/issued-keys`);
  await ann.getByRole('row', { name: /kbob@example\.com/ }).waitFor();
  await tabTo(ann, 'button', 'Revoke the key of kbob@example.com for Typing API');
  await ann.keyboard.press('Enter');
  await ann.getByRole('dialog', { name: 'Revoke this key?' }).waitFor();
  await ann.keyboard.press('Escape');
  await ann.getByRole('dialog', { name: 'Revoke this key?' }).waitFor({ state: 'hidden' });
});
