// @ts-check
/** A key's narrowed tokens: short-lived copies of the key for a CI job or a colleague's
 * notebook, with fewer permissions or some nodes only. Its holder mints them (on My keys and on
 * the key's page); minting shows the token once (keygate keeps only its id, label and limits).
 * The holder and the project's owner list them and revoke each on its own. */

import { useState } from './vendor/preact-hooks.js';
import { html, Dialog, FormActions, Input, PERMISSION_WORDS, Problem, when, useAction, useLoad } from './components.js';
import { api, get, seg } from './api.js';

/** The lifetimes offered, in seconds (the template's maximum may be lower: the API says so). */
const LIFETIMES = [
  [3600, '1 hour'],
  [86400, '1 day'],
  [7 * 86400, '7 days'],
  [30 * 86400, '30 days'],
];

/** `name`: the key's template name; `base`: the tokens' address, the holder's
 * (`/v1/me/keys/{key}/tokens`) or the project's (`/v1/projects/{p}/keys/{key}/tokens`), which
 * lists them and revokes one at `{base}/{token}`; `canMint`: for the holder only. */
export function NarrowedTokens({ name, base, canMint = true }) {
  const load = useLoad(() => get(base).then((a) => a.items), [base]);
  const [minting, setMinting] = useState(false);
  const [minted, setMinted] = useState(/** @type {any} */ (null));
  const [copied, setCopied] = useState(false);
  const tokens = load.data ?? [];
  const copy = async () => {
    await navigator.clipboard.writeText(minted.token);
    setCopied(true);
  };
  return html`<section class="narrowed" aria-label=${`Narrowed tokens of ${name}`}>
    <h3>Narrowed tokens</h3>
    <p class="muted">${canMint
      ? 'A short-lived copy of this key for a job or a colleague, with fewer permissions if you like. It stops with the key, and you can revoke it on its own.'
      : "Short-lived copies of this key that its holder made for a job or a colleague. Each stops with the key; revoke one to stop it alone."}</p>
    ${minted ? html`<div class="minted" role="status">
      <p><strong>Token “${minted.label}” made.</strong> Copy it now: it is shown only once, keygate does not keep it.</p>
      <code class="revealed" aria-label="Narrowed token">${minted.token}</code>
      <div class="actions">
        <button type="button" class="small" onClick=${copy}>${copied ? 'Copied' : 'Copy token'}</button>
        <button type="button" class="small" onClick=${() => { setMinted(null); setCopied(false); }}>Done</button>
      </div>
    </div>` : null}
    ${tokens.length ? html`<table class="narrowed-tokens">
      <thead><tr><th scope="col">Label</th><th scope="col">May</th><th scope="col">Nodes</th><th scope="col">Expires</th><th scope="col">Action</th></tr></thead>
      <tbody>${tokens.map((t) => html`<${TokenRow} key=${t.id} t=${t} base=${base} />`)}</tbody>
    </table>` : html`<p class="muted">${load.data ? 'None yet.' : '…'}</p>`}
    ${canMint ? html`<button type="button" onClick=${() => setMinting(true)} aria-label=${`Mint a token of ${name}`}>Mint a token</button>
    <${Mint} open=${minting} base=${base} onClose=${() => setMinting(false)}
      onDone=${(/** @type {any} */ answer) => { setMinting(false); setCopied(false); setMinted(answer); }} />` : null}
    <${Problem} error=${load.error} />
  </section>`;
}

function TokenRow({ t, base }) {
  const action = useAction();
  const [sure, setSure] = useState(false);
  const may = t.permissions ? t.permissions.map((p) => PERMISSION_WORDS[p] ?? p).join(', ') : "all of the key's";
  return html`<tr>
    <td><code>${t.label}</code></td>
    <td>${may}</td>
    <td>${t.nodes ? t.nodes.join(', ') : 'any'}</td>
    <td>${when(t.expires_at)}</td>
    <td>${sure
      ? html`<span class="confirm-inline" role="group" aria-label=${`Confirm revoking ${t.label}`}>Revoke?
          <button type="button" class="danger small" disabled=${action.busy} onClick=${() => action.run(() => api('DELETE', `${base}/${seg(t.id)}`))}>Yes, revoke</button>
          <button type="button" class="small" onClick=${() => setSure(false)}>No</button></span>`
      : html`<button type="button" class="danger small" onClick=${() => setSure(true)} aria-label=${`Revoke token ${t.label}`}>Revoke</button>`}
      <${Problem} error=${action.error} /></td>
  </tr>`;
}

function Mint({ open, base, onClose, onDone }) {
  const [label, setLabel] = useState('');
  const [ttl, setTtl] = useState(86400);
  const [only, setOnly] = useState(/** @type {string[]} */ ([]));
  const [nodes, setNodes] = useState('');
  const action = useAction();
  const toggle = (/** @type {string} */ p) => setOnly(only.includes(p) ? only.filter((x) => x !== p) : [...only, p]);
  const submit = (/** @type {Event} */ e) => {
    e.preventDefault();
    /** @type {any} */
    const body = { label: label.trim(), ttl_seconds: ttl };
    if (only.length) body.permissions = only;
    const names = nodes.split(',').map((n) => n.trim()).filter(Boolean);
    if (names.length) body.nodes = names;
    action.run(async () => {
      onDone(await api('POST', base, body));
      setLabel('');
      setOnly([]);
      setNodes('');
    });
  };
  return html`<${Dialog} title="Mint a narrowed token" open=${open} onClose=${() => { action.clear(); onClose(); }}>
    <form onSubmit=${submit}>
      <${Input} label="Label (what it is for: ci, nightly-run)" field="label" error=${action.error} value=${label} onInput=${setLabel} required=${true} maxlength="40" />
      <fieldset class="choices">
        <legend>It works for</legend>
        ${LIFETIMES.map(([seconds, words]) => html`<label key=${seconds}>
          <input type="radio" name="ttl" value=${seconds} checked=${ttl === seconds} onChange=${() => setTtl(Number(seconds))} /> ${words}${seconds === 86400 ? ' (default)' : ''}
        </label>`)}
      </fieldset>
      <fieldset class="choices">
        <legend>It may only (none ticked: everything the key may)</legend>
        ${Object.entries(PERMISSION_WORDS).map(([p, words]) => html`<label key=${p}>
          <input type="checkbox" checked=${only.includes(p)} onChange=${() => toggle(p)} /> ${words} <code>${p}</code>
        </label>`)}
      </fieldset>
      <${Input} label="Only these nodes (names, comma-separated; empty: any)" field="nodes" error=${action.error} value=${nodes} onInput=${setNodes} />
      <${Problem} error=${action.error} fieldsShown=${['label', 'nodes']} />
      <${FormActions} onCancel=${onClose} label="Mint token" busy=${action.busy} />
    </form>
  <//>`;
}
