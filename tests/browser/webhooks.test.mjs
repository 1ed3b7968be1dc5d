// The Webhooks screen (issue 32), in Debian's Chromium against a keygate-local of its own: the
// owner adds an endpoint for approvals, sees its signing secret once, approves a request on the
// Requests screen, sees the delivery appear (failed: the receiver answers 500 at first), and
// retries it once the receiver is fixed; the receiver gets the same webhook-id twice; then a
// test event on demand arrives and shows as delivered. The
// receiver is a small HTTP server of this test on 127.0.0.1 (the Rust tests verify signatures
// with Python's standardwebhooks). Screenshots in tests/browser/out/ (h*.png).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { callApi, launchBrowser, localToken, person as open, screen, signInAs, startGateway } from './harness.mjs';

let gateway;
let url;
let browser;
let receiver;
/** What the receiver was sent: each message's headers and body. */
const received = [];
/** What it answers: 500 until the test mends it. */
let answer = 500;

before(async () => {
  gateway = await startGateway();
  url = gateway.url;
  browser = await launchBrowser();
  receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      received.push({ headers: req.headers, body });
      res.writeHead(answer);
      res.end();
    });
  });
  await new Promise((resolve) => receiver.listen(0, '127.0.0.1', resolve));
});

after(async () => {
  await browser?.close();
  receiver?.close();
  gateway?.stop();
});

const call = (token, method, path, body) => callApi(url, token, method, path, body);

const signIn = (page, sub) => signInAs(page, url, sub);

/** Reloads `page` until `locator` shows, for up to `ms`. */
async function reloadUntil(page, locator, ms = 8000) {
  const until = Date.now() + ms;
  for (;;) {
    if (await locator.count()) return;
    if (Date.now() > until) throw new Error(`not shown after ${ms} ms: ${locator}`);
    await page.waitForTimeout(300);
    await page.reload();
    await page.getByRole('heading', { name: 'Webhooks', level: 2 }).waitFor();
  }
}

test('an owner adds an endpoint, sees a delivery after an approval, and retries a failed one', async () => {
  const owner = await localToken(url, 'hann');
  const holder = await localToken(url, 'hbob');
  const project = await call(owner, 'POST', '/v1/projects', { name: 'Hooks' });
  const p = project.id;
  await call(owner, 'PUT', `/v1/projects/${p}/roles/reader`, { permissions: ['project_view'] });
  await call(owner, 'PUT', `/v1/projects/${p}/members/hbob`, { role: 'reader', email: 'hbob@example.com' });
  const template = await call(owner, 'POST', `/v1/projects/${p}/templates`, { name: 'Forecast API', role: 'reader' });
  await call(holder, 'POST', `/v1/projects/${p}/templates/${template.id}/requests`);

  const ann = await open(browser, 'hann');
  await signIn(ann, 'hann');
  await ann.goto(`${url}/projects/${p}/webhooks`);
  await ann.getByText('No endpoints yet.', { exact: false }).waitFor();
  await screen(ann, 'h1-webhooks-empty');

  // An address inside is refused in words, beside its field.
  await ann.getByRole('button', { name: '+ Add endpoint' }).click();
  const dialog = ann.getByRole('dialog', { name: 'Add a webhook endpoint' });
  await dialog.getByLabel(/^URL/).fill('https://169.254.169.254/latest/meta-data/');
  await dialog.getByRole('button', { name: 'Add endpoint' }).click();
  await dialog.getByText(/the cloud metadata address/).waitFor();
  const hook = `http://127.0.0.1:${receiver.address().port}/hook`;
  await dialog.getByLabel(/^URL/).fill(hook);
  await dialog.getByRole('checkbox', { name: /a request was approved/ }).check();
  await screen(ann, 'h2-add-endpoint');
  await dialog.getByRole('button', { name: 'Add endpoint' }).click();
  const secret = (await ann.getByLabel('Signing secret').innerText()).trim();
  assert.match(secret, /^whsec_[A-Za-z0-9+/=]{40,}$/);
  const endpoint = ann.getByRole('region', { name: `Endpoint ${hook}` });
  await endpoint.getByText('Sends request.approved.').waitFor();
  await screen(ann, 'h3-endpoint-added-secret-once');
  await ann.getByRole('button', { name: 'Done' }).click();
  assert.ok(!(await ann.content()).includes(secret), 'the secret is not in the page after Done');

  // Approve on the Requests screen: the delivery appears, failed (the receiver answers 500).
  await ann.getByRole('navigation', { name: 'Project sections' }).getByRole('link', { name: /^Requests/ }).click();
  await ann.getByRole('button', { name: 'Approve the request of hbob@example.com for Forecast API' }).click();
  await ann.getByText(/Approved: a key for Forecast API was issued to hbob@example\.com/).waitFor();
  await ann.getByRole('navigation', { name: 'Project sections' }).getByRole('link', { name: 'Webhooks' }).click();
  await ann.getByRole('heading', { name: 'Webhooks', level: 2 }).waitFor();
  const row = endpoint.getByRole('row', { name: /request\.approved/ });
  await reloadUntil(ann, row);
  await row.getByText('retrying').waitFor();
  assert.match(await row.innerText(), /rejected: HTTP 500/);
  assert.ok(received.length >= 1, 'attempted');
  const id = received[0].headers['webhook-id'];
  assert.match(id, /^msg_/);
  assert.ok(received[0].headers['webhook-signature'].startsWith('v1,'));
  assert.equal(JSON.parse(received[0].body).type, 'request.approved');
  // The endpoint says it is failing, and what happens if it goes on.
  await ann.reload();
  await endpoint.getByText(/Every delivery has failed since/).waitFor();
  assert.match(await endpoint.getByRole('status').first().innerText(), /After 3 days of failures keygate disables the endpoint/);
  await screen(ann, 'h4-delivery-failed');

  // The receiver is mended; Retry sends it again at once, with the same id.
  answer = 204;
  await row.getByRole('button', { name: 'Retry the request.approved delivery' }).click();
  await reloadUntil(ann, endpoint.getByRole('row', { name: /request\.approved/ }).getByText('delivered'));
  const sent = received.length;
  assert.ok(sent >= 2, 'the retry');
  assert.ok(received.every((r) => r.headers['webhook-id'] === id), 'the same webhook-id on every attempt');
  await ann.waitForTimeout(6000);
  assert.equal(received.length, sent, 'once delivered, not sent again by the schedule');
  await screen(ann, 'h5-delivery-retried');
  await ann.reload();
  await ann.getByRole('heading', { name: 'Webhooks', level: 2 }).waitFor();
  assert.equal(await endpoint.getByText(/Every delivery has failed/).count(), 0, 'answering again: no warning');

  // A test event on demand: sent to this endpoint although it asked for approvals only.
  await endpoint.getByRole('button', { name: `Send test event to ${hook}` }).click();
  await endpoint.getByText(/Test event sent/).waitFor();
  await endpoint.getByRole('row', { name: /webhook\.test/ }).getByText('delivered', { exact: true }).waitFor({ timeout: 8000 });
  const last = received[received.length - 1];
  assert.equal(JSON.parse(last.body).type, 'webhook.test');
  assert.notEqual(last.headers['webhook-id'], id);
  await screen(ann, 'h6-test-event');
  assert.ok(!gateway.log().includes(secret), 'the secret never reaches the log');
});
