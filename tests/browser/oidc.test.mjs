// Signing in with an OpenID Connect provider, as the console does on AWS: authorization code
// flow with PKCE. A small provider of the test's own (discovery, authorize, token, JWKS; ES256
// ID tokens) runs on 127.0.0.1, and keygate-local is started with --oidc-issuer, so that the
// page's flow and the gateway's check of the provider's ID tokens both run for real.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { createServer } from 'node:http';
import { launchBrowser, person, screen, startGateway } from './harness.mjs';

const CLIENT = 'keygate-console';
const b64url = (buf) => Buffer.from(buf).toString('base64url');

/** The provider: one user (carol), codes bound to their PKCE challenge and redirect URI. */
function provider() {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = { ...publicKey.export({ format: 'jwk' }), kid: 'test-key-1', alg: 'ES256', use: 'sig' };
  const codes = new Map();
  const seen = { authorize: [], token: [] };
  let issuer;
  const idToken = (nonceless) => {
    const now = Math.floor(Date.now() / 1000);
    const header = b64url(JSON.stringify({ alg: 'ES256', kid: jwk.kid, typ: 'JWT' }));
    const claims = b64url(JSON.stringify({
      iss: issuer, aud: CLIENT, sub: 'carol', email: 'carol@example.com', name: 'Carol Provider', iat: now, exp: now + 600, ...nonceless,
    }));
    const signature = sign('sha256', Buffer.from(`${header}.${claims}`), { key: privateKey, dsaEncoding: 'ieee-p1363' });
    return `${header}.${claims}.${b64url(signature)}`;
  };
  const server = createServer((req, res) => {
    const url = new URL(req.url, issuer);
    // The console reads discovery and trades the code from the browser: CORS for its origin.
    res.setHeader('Access-Control-Allow-Origin', req.headers.origin ?? '*');
    const json = (status, body) => { res.writeHead(status, { 'Content-Type': 'application/json' }); res.end(JSON.stringify(body)); };
    if (url.pathname === '/.well-known/openid-configuration') {
      return json(200, { issuer, authorization_endpoint: `${issuer}/authorize`, token_endpoint: `${issuer}/token`, jwks_uri: `${issuer}/jwks` });
    }
    if (url.pathname === '/jwks') return json(200, { keys: [jwk] });
    if (url.pathname === '/authorize') {
      const q = Object.fromEntries(url.searchParams);
      seen.authorize.push(q);
      if (q.client_id !== CLIENT || q.response_type !== 'code' || q.code_challenge_method !== 'S256' || !q.code_challenge) {
        return json(400, { error: 'invalid_request' });
      }
      const code = b64url(randomBytes(16));
      codes.set(code, { challenge: q.code_challenge, redirect: q.redirect_uri });
      res.writeHead(302, { Location: `${q.redirect_uri}?code=${code}&state=${encodeURIComponent(q.state)}` });
      return res.end();
    }
    if (url.pathname === '/token' && req.method === 'POST') {
      let body = '';
      req.on('data', (d) => { body += d; });
      req.on('end', () => {
        const form = Object.fromEntries(new URLSearchParams(body));
        seen.token.push(form);
        const grant = codes.get(form.code);
        codes.delete(form.code);
        const verified = grant && b64url(createHash('sha256').update(form.code_verifier ?? '').digest()) === grant.challenge;
        if (!verified || grant.redirect !== form.redirect_uri || form.client_id !== CLIENT) return json(400, { error: 'invalid_grant' });
        json(200, { access_token: 'opaque', token_type: 'Bearer', expires_in: 600, id_token: idToken({}) });
      });
      return undefined;
    }
    return json(404, { error: 'not_found' });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => {
    issuer = `http://127.0.0.1:${server.address().port}`;
    resolve({ issuer, seen, close: () => server.close() });
  }));
}

let idp;
let gateway;
let browser;

before(async () => {
  idp = await provider();
  gateway = await startGateway(['--oidc-issuer', idp.issuer, '--oidc-client-id', CLIENT]);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  gateway?.stop();
  idp?.close();
});

test('people sign in with the identity provider (code flow with PKCE) and use the API with its ID token', async () => {
  const carol = await person(browser, 'carol');
  await carol.goto(`${gateway.url}/me/keys`);
  await carol.getByRole('heading', { name: 'Sign in to keygate' }).waitFor();
  assert.equal(await carol.getByLabel('User id').count(), 0, 'no local form when a provider signs people in');
  await screen(carol, '21-sign-in-oidc');
  await carol.getByRole('button', { name: 'Sign in' }).click();
  // Back from the provider, on the page the person asked for, signed in.
  await carol.getByRole('heading', { name: 'My keys' }).waitFor();
  await carol.getByText('Carol Provider').waitFor();
  assert.equal(new URL(carol.url()).search, '', 'no code or token stays in the address');

  const [authorize] = idp.seen.authorize;
  assert.equal(authorize.redirect_uri, `${gateway.url}/auth/callback`);
  assert.match(authorize.scope, /\bopenid\b/);
  assert.ok(authorize.state.length >= 16);
  const [token] = idp.seen.token;
  assert.equal(token.grant_type, 'authorization_code');
  assert.ok(token.code_verifier.length >= 43, 'a PKCE verifier of at least 43 characters');

  // The ID token is the user token: kept for the tab only, and accepted by the API.
  const storage = await carol.evaluate(() => ({ local: localStorage.length, session: sessionStorage.getItem('keygate.token') }));
  assert.equal(storage.local, 0, 'nothing in local storage');
  assert.equal(storage.session.split('.').length, 3);
  await carol.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Projects' }).click();
  await carol.getByLabel('Name', { exact: true }).fill('Provider project');
  await carol.getByRole('button', { name: 'Register project' }).click();
  await carol.getByRole('heading', { name: 'Provider project', level: 1 }).waitFor();
  assert.ok(!gateway.log().includes(storage.session), 'the ID token never reaches the gateway log');

  // keygate-local's own sign-in does not exist in this mode.
  const local = await fetch(`${gateway.url}/local/sign-in`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"sub":"x","email":"x@example.com"}',
  });
  assert.equal(local.status, 404);
});

test('a sign-in answer that this tab did not start is refused in words', async () => {
  const mallory = await person(browser, 'mallory');
  await mallory.goto(`${gateway.url}/auth/callback?code=stolen&state=forged`);
  const alert = mallory.getByRole('alert');
  await alert.waitFor();
  assert.match(await alert.innerText(), /Sign-in failed\.[\s\S]*does not match/);
  assert.equal(await mallory.evaluate(() => sessionStorage.getItem('keygate.token')), null);
  assert.equal(idp.seen.token.filter((t) => t.code === 'stolen').length, 0, 'the code was not even tried');
});
