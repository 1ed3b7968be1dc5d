// @ts-check
/** Signing in: keygate-local's own form (user id, e-mail, name; the gateway mints the token),
 * or the platform's identity provider (OpenID Connect) on AWS. */

import { useEffect, useState } from '../vendor/preact-hooks.js';
import { useLocation } from '../vendor/preact-iso-router.js';
import { html, Input, Problem, useAction } from '../components.js';
import { ApiError } from '../api.js';
import { consoleConfig, localSignIn, oidcSignIn } from '../auth.js';

export function SignIn() {
  const { route, query } = useLocation();
  const next = query.next && query.next.startsWith('/') && !query.next.startsWith('//') ? query.next : '/';
  const [config, setConfig] = useState(/** @type {any} */ (null));
  useEffect(() => { consoleConfig().then(setConfig); }, []);
  if (!config) return html`<p class="loading" role="status">Loading…</p>`;
  if (config.sign_in === 'oidc') return html`<${OidcSignIn} config=${config} next=${next} />`;
  return html`<${LocalSignIn} onDone=${() => route(next)} />`;
}

function OidcSignIn({ config, next }) {
  const action = useAction();
  return html`<section class="narrow">
    <h1>Sign in to keygate</h1>
    <p>Sign in with your platform account.</p>
    <${Problem} error=${action.error} />
    <button type="button" class="primary" disabled=${action.busy} onClick=${() => action.run(() => oidcSignIn(config, next))}>Sign in</button>
  </section>`;
}

function LocalSignIn({ onDone }) {
  const [form, setForm] = useState({ sub: '', email: '', name: '' });
  const action = useAction();
  const set = (/** @type {string} */ k) => (/** @type {string} */ v) => setForm({ ...form, [k]: v });
  const submit = (/** @type {Event} */ e) => {
    e.preventDefault();
    action.run(async () => {
      const { problem } = await localSignIn(form);
      if (problem) throw new ApiError(problem.status, problem);
      onDone();
    });
  };
  return html`<section class="narrow">
    <h1>Sign in to keygate-local</h1>
    <p class="hint">This form exists only in keygate-local, for trying keygate on one machine: anyone who
      can reach this address may act as any user. It mints the same user token as
      <code>keygate-local token</code>.</p>
    <form onSubmit=${submit}>
      <${Input} label="User id" field="sub" error=${action.error} value=${form.sub} onInput=${set('sub')} required autocomplete="username" />
      <${Input} label="E-mail" field="email" type="email" error=${action.error} value=${form.email} onInput=${set('email')} required autocomplete="email" />
      <${Input} label="Name (optional)" field="name" error=${action.error} value=${form.name} onInput=${set('name')} autocomplete="name" />
      <${Problem} error=${action.error} fieldsShown=${['sub', 'email', 'name']} />
      <button type="submit" class="primary" disabled=${action.busy}>Sign in</button>
    </form>
  </section>`;
}
