// @ts-check
/** The console's frame: who is signed in, the navigation, and which screen each address shows.
 * Every screen is a client of the /v1 API with the signed-in user's token. */

import { render } from './vendor/preact.js';
import { useEffect, useState } from './vendor/preact-hooks.js';
import { LocationProvider, Router, Route, useLocation } from './vendor/preact-iso-router.js';
import lazy from './vendor/preact-iso-lazy.js';
import { html, setCurrency } from './components.js';
import { onUnauthenticated } from './api.js';
import { consoleConfig, oidcCallback, signOut, user } from './auth.js';

// Each screen's module is fetched when its address is first opened (the router waits for it),
// so that a first load fetches only what its screen needs.
const SignIn = lazy(() => import('./screens/sign-in.js').then((m) => m.SignIn));
const Projects = lazy(() => import('./screens/projects.js').then((m) => m.Projects));
const Project = lazy(() => import('./screens/project.js').then((m) => m.Project));
const MyKeys = lazy(() => import('./screens/my-keys.js').then((m) => m.MyKeys));
const KeyPage = lazy(() => import('./screens/key.js').then((m) => m.KeyPage));

function Header() {
  // Read on every navigation, so that signing in or out shows at once.
  const { route } = useLocation();
  const me = user();
  return html`<header class="top">
    <a class="brand" href="/">keygate</a>
    ${me ? html`<nav aria-label="Main">
      <a href="/">Projects</a>
      <a href="/me/keys">My keys</a>
    </nav>
    <div class="who">
      <span>${me.name || me.email} <small>(${me.id})</small></span>
      <button type="button" onClick=${() => { signOut(); route('/sign-in'); }}>Sign out</button>
    </div>` : null}
  </header>`;
}

function Callback() {
  const { route } = useLocation();
  const [error, setError] = useState(/** @type {string | null} */ (null));
  useEffect(() => {
    consoleConfig()
      .then((c) => (c.sign_in === 'oidc' ? oidcCallback(c) : '/'))
      .then((next) => route(next, true), (e) => setError(String(e.message ?? e)));
  }, []);
  return error
    ? html`<div class="problem" role="alert"><strong>Sign-in failed.</strong> ${error} <a href="/sign-in">Sign in again</a></div>`
    : html`<p class="loading" role="status">Signing in…</p>`;
}

function NotFound() {
  return html`<section><h1>Nothing here</h1><p>This address is not a page of the console. <a href="/">Go to your projects</a>.</p></section>`;
}

/** The screens; without a signed-in user, every one but signing in goes to the sign-in screen,
 * which comes back to the address asked for. */
function Screens() {
  const { path, url, route } = useLocation();
  const me = user();
  const open = path === '/sign-in' || path === '/auth/callback';
  useEffect(() => {
    if (!me && !open) route(`/sign-in?next=${encodeURIComponent(url)}`, true);
  }, [me, open, url]);
  if (!me && !open) return null;
  return html`<${Router}>
    <${Route} path="/sign-in" component=${SignIn} />
    <${Route} path="/auth/callback" component=${Callback} />
    <${Route} path="/" component=${Projects} />
    <${Route} path="/me/keys" component=${MyKeys} />
    <${Route} path="/projects/:project/keys/:keyId" component=${KeyPage} />
    <${Route} path="/projects/:project/:tab?" component=${Project} />
    <${Route} default component=${NotFound} />
  <//>`;
}

function App() {
  const [, redraw] = useState(0);
  useEffect(() => onUnauthenticated(() => redraw((n) => n + 1)), []);
  return html`<${LocationProvider}>
    <${Header} />
    <main id="main"><${Screens} /></main>
  <//>`;
}

const root = /** @type {HTMLElement} */ (document.getElementById('app'));
// Amounts are drawn in the deployment's currency, so the screens wait for it (preloaded by the
// page beside the modules); without it they show euros.
consoleConfig().then((c) => setCurrency(c.currency), () => {}).finally(() => {
  root.textContent = '';
  render(html`<${App} />`, root);
});
