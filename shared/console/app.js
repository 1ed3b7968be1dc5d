// @ts-check
/** The console's frame: who is signed in, the navigation, and which screen each address shows.
 * Every screen is a client of the /v1 API with the signed-in user's token. */

import { render } from './vendor/preact.js';
import { useEffect, useState } from './vendor/preact-hooks.js';
import { LocationProvider, Router, Route, useLocation } from './vendor/preact-iso-router.js';
import { html } from './components.js';
import { onUnauthenticated } from './api.js';
import { consoleConfig, oidcCallback, signOut, user } from './auth.js';
import { SignIn } from './screens/sign-in.js';
import { Projects } from './screens/projects.js';
import { Project } from './screens/project.js';
import { MyKeys } from './screens/my-keys.js';

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

/** Screens that need a user: without one, the sign-in screen, which comes back here after. */
function Signed({ component: Screen, ...props }) {
  const { route, url } = useLocation();
  const me = user();
  useEffect(() => {
    if (!me) route(`/sign-in?next=${encodeURIComponent(url)}`, true);
  }, [me, url]);
  return me ? html`<${Screen} ...${props} me=${me} />` : null;
}

/** @param {any} Screen */
const signed = (Screen) => (/** @type {any} */ props) => html`<${Signed} ...${props} component=${Screen} />`;
const ProjectsPage = signed(Projects);
const MyKeysPage = signed(MyKeys);
const ProjectPage = signed(Project);

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

function App() {
  const [, redraw] = useState(0);
  useEffect(() => onUnauthenticated(() => redraw((n) => n + 1)), []);
  return html`<${LocationProvider}>
    <${Header} />
    <main id="main">
      <${Router}>
        <${Route} path="/sign-in" component=${SignIn} />
        <${Route} path="/auth/callback" component=${Callback} />
        <${Route} path="/" component=${ProjectsPage} />
        <${Route} path="/me/keys" component=${MyKeysPage} />
        <${Route} path="/projects/:project/:tab?" component=${ProjectPage} />
        <${Route} default component=${NotFound} />
      <//>
    </main>
  <//>`;
}

const root = /** @type {HTMLElement} */ (document.getElementById('app'));
root.textContent = '';
render(html`<${App} />`, root);
