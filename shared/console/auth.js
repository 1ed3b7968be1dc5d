// @ts-check
/** The signed-in user's token: kept in this tab's session storage only (never in a URL or in
 * local storage), and how to get one: keygate-local's sign-in form, or OpenID Connect
 * (authorization code + PKCE) on AWS. */

const TOKEN = 'keygate.token';
const FLOW = 'keygate.oidc';

/** @typedef {{sign_in: 'local'} | {sign_in: 'oidc', issuer: string, client_id: string, scope: string}} ConsoleConfig */

/** @type {Promise<ConsoleConfig> | null} */
let config = null;

/** How this deployment signs people in (served beside the console's files). */
export function consoleConfig() {
  config ??= fetch('/console/config.json').then((r) => r.json());
  return config;
}

export function token() {
  return sessionStorage.getItem(TOKEN);
}

/** The claims of the user token (sub, email, name), read for display only: the API checks it. */
export function user() {
  const t = token();
  if (!t) return null;
  try {
    const part = t.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const claims = JSON.parse(atob(part));
    if (claims.exp && claims.exp * 1000 < Date.now()) return null;
    return { id: String(claims.sub), email: String(claims.email ?? ''), name: claims.name ? String(claims.name) : '' };
  } catch {
    return null;
  }
}

/** @param {string} t */
export function keep(t) {
  sessionStorage.setItem(TOKEN, t);
}

export function signOut() {
  sessionStorage.removeItem(TOKEN);
}

/** keygate-local only: the gateway mints a user token for these details. */
export async function localSignIn(/** @type {{sub: string, email: string, name: string}} */ details) {
  const r = await fetch('/local/sign-in', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(details),
  });
  const body = await r.json();
  if (!r.ok) return { problem: body };
  keep(body.token);
  return { problem: null };
}

/** @param {Uint8Array} bytes */
function base64url(bytes) {
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** @param {string} issuer */
async function discover(issuer) {
  const r = await fetch(`${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`);
  if (!r.ok) throw new Error(`the identity provider's configuration could not be read (${r.status})`);
  return r.json();
}

/** Starts the authorization code flow: remembers verifier and state, goes to the provider. */
export async function oidcSignIn(/** @type {{issuer: string, client_id: string, scope: string}} */ c, returnTo = '/') {
  const provider = await discover(c.issuer);
  const verifier = base64url(crypto.getRandomValues(new Uint8Array(32)));
  const state = base64url(crypto.getRandomValues(new Uint8Array(16)));
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier)));
  sessionStorage.setItem(FLOW, JSON.stringify({ verifier, state, returnTo }));
  const url = new URL(provider.authorization_endpoint);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: c.client_id,
    redirect_uri: `${location.origin}/auth/callback`,
    scope: c.scope,
    state,
    code_challenge: base64url(digest),
    code_challenge_method: 'S256',
  }).toString();
  location.assign(url.toString());
}

/** Finishes the flow on /auth/callback: checks state, trades the code for tokens, keeps the ID
 * token (the user token the API's JWT authorizer accepts). Answers where to go next. */
export async function oidcCallback(/** @type {{issuer: string, client_id: string}} */ c) {
  const params = new URLSearchParams(location.search);
  const flow = JSON.parse(sessionStorage.getItem(FLOW) ?? 'null');
  sessionStorage.removeItem(FLOW);
  // The code leaves the address bar at once.
  history.replaceState(null, '', '/auth/callback');
  if (params.get('error')) throw new Error(`the identity provider refused: ${params.get('error_description') ?? params.get('error')}`);
  if (!flow || flow.state !== params.get('state')) throw new Error('the sign-in answer does not match the sign-in started here; sign in again');
  const provider = await discover(c.issuer);
  const r = await fetch(provider.token_endpoint, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code: params.get('code') ?? '',
      redirect_uri: `${location.origin}/auth/callback`,
      client_id: c.client_id,
      code_verifier: flow.verifier,
    }),
  });
  const body = await r.json();
  if (!r.ok || !body.id_token) throw new Error(`the identity provider gave no token (${body.error ?? r.status})`);
  keep(body.id_token);
  return flow.returnTo || '/';
}
