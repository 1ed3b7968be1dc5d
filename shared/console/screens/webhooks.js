// @ts-check
/** A project's webhook endpoints, for those who manage it: where its events go (signed, as
 * Standard Webhooks say), which types, and each endpoint's last deliveries with their outcome,
 * time and a Retry button; a test event on demand; adding one shows its signing secret once,
 * with Copy. An endpoint that keeps failing says since when, and why keygate disabled it. */

import { useState } from '../vendor/preact-hooks.js';
import { html, Confirm, Dialog, FormActions, Input, ListState, Problem, count, when, useAction, useLoad } from '../components.js';
import { api, get, seg } from '../api.js';

/** The event types, in the order people think of them, with what each says. */
const EVENTS = [
  ['request.created', 'a key was requested'],
  ['request.approved', 'a request was approved (a key issued)'],
  ['request.rejected', 'a request was rejected'],
  ['key.revoked', 'a key was revoked'],
  ['key.rerolled', 'a key got a new token'],
  ['key.limits_changed', "a key's own limits changed"],
  ['key.expiring', 'a key expires in 7 days, then in 1 day'],
  ['quota.threshold', 'a key used 80 %, then 100 % of its quota'],
  ['key.leak_reported', 'a key was reported leaked'],
  ['secrets.imported', 'a key was imported as secrets'],
  ['template.created', 'a template was published'],
  ['template.changed', 'a template changed'],
  ['template.deleted', 'a template was deleted'],
];

export function Webhooks({ project }) {
  const base = `/v1/projects/${seg(project.id)}/webhooks`;
  const load = useLoad(() => get(base), [project.id]);
  const [adding, setAdding] = useState(false);
  const [secret, setSecret] = useState(/** @type {{id: string, secret: string, words: string} | null} */ (null));
  const [copied, setCopied] = useState(false);
  const copy = async () => {
    await navigator.clipboard.writeText(secret?.secret ?? '');
    setCopied(true);
  };
  const shown = (/** @type {any} */ answer, /** @type {string} */ words) => {
    setCopied(false);
    setSecret({ id: answer.webhook.id, secret: answer.secret, words });
  };
  return html`<div>
    <div class="toolbar">
      <h2>Webhooks</h2>
      <button type="button" class="primary" onClick=${() => setAdding(true)} aria-haspopup="dialog">+ Add endpoint</button>
    </div>
    <p class="muted">Programs hear this project's events at their own address: each message is signed (Standard Webhooks), sent within seconds of the change, and retried for 3 days if the endpoint does not answer.</p>
    ${secret ? html`<div class="panel minted" role="status">
      <p><strong>${secret.words}</strong> Copy its signing secret now: it is shown only once. Your receiver verifies each message with it.</p>
      <code class="revealed" aria-label="Signing secret">${secret.secret}</code>
      <div class="actions">
        <button type="button" class="small" onClick=${copy}>${copied ? 'Copied' : 'Copy secret'}</button>
        <button type="button" class="small" onClick=${() => setSecret(null)}>Done</button>
      </div>
    </div>` : null}
    <${ListState} load=${load} empty="No endpoints yet. Add one to have this project's events sent to a program." />
    ${(load.data?.items ?? []).map((/** @type {any} */ w) => html`<${Endpoint} key=${w.id} w=${w} base=${base}
      onSecret=${(/** @type {any} */ answer) => shown(answer, 'New secret made; the old one still signs for 24 hours.')} />`)}
    <${AddEndpoint} open=${adding} base=${base} onClose=${() => setAdding(false)}
      onDone=${(/** @type {any} */ answer) => { setAdding(false); shown(answer, 'Endpoint added.'); }} />
  </div>`;
}

function Endpoint({ w, base, onSecret }) {
  const at = `${base}/${seg(w.id)}`;
  const deliveries = useLoad(() => get(`${at}/deliveries`), [w.id]);
  const action = useAction();
  const [deleting, setDeleting] = useState(false);
  const [tested, setTested] = useState(/** @type {string | null} */ (null));
  const types = w.events.length ? w.events.join(', ') : 'every event';
  const test = () => action.run(async () => {
    const sent = await api('POST', `${at}/test`);
    setTested(sent.message_id);
    // Sent within a second or two: its delivery then shows below.
    setTimeout(deliveries.reload, 1500);
  });
  const rows = deliveries.data?.items ?? [];
  return html`<section class="panel endpoint" aria-label=${`Endpoint ${w.url}`}>
    <div class="toolbar">
      <h3><code>${w.url}</code> ${w.enabled ? html`<span class="badge active">enabled</span>` : html`<span class="badge revoked">disabled</span>`}</h3>
      <div class="actions">
        <button type="button" class="small" disabled=${action.busy || !w.enabled} onClick=${test}
          aria-label=${`Send test event to ${w.url}`}>Send test event</button>
        <button type="button" class="small" disabled=${action.busy} onClick=${() => action.run(() => api('PATCH', at, { enabled: !w.enabled }))}>${w.enabled ? 'Disable' : 'Enable'}</button>
        <button type="button" class="small" disabled=${action.busy} onClick=${() => action.run(async () => onSecret(await api('POST', `${at}/rotate`)))}
          aria-label=${`New secret for ${w.url}`}>New secret</button>
        <button type="button" class="small danger" onClick=${() => setDeleting(true)} aria-label=${`Delete endpoint ${w.url}`}>Delete</button>
      </div>
    </div>
    <p class="muted">Sends ${types}.${w.previous_secret_until ? ` The secret before the last one still signs until ${when(w.previous_secret_until)}.` : ''}</p>
    ${w.disabled_reason ? html`<p class="notice warning" role="status">keygate ${w.disabled_reason.replace(/^disabled by keygate/, 'disabled it')}. Once it answers again, enable it and retry what it missed.</p>`
      : w.failing_since ? html`<p class="notice warning" role="status">Every delivery has failed since ${when(w.failing_since)}. After 3 days of failures keygate disables the endpoint and mails the project's owner.</p>` : null}
    ${tested ? html`<p class="muted" role="status">Test event sent (<code>webhook.test</code>, webhook-id <code>${tested}</code>); it shows below once tried.</p>` : null}
    <${Problem} error=${action.error ?? deliveries.error} />
    ${rows.length ? html`<table class="deliveries">
      <caption>Last deliveries, newest first</caption>
      <thead><tr><th scope="col">Event</th><th scope="col">Changed</th><th scope="col">State</th><th scope="col" class="num">Attempts</th><th scope="col">Last attempt</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
      <tbody>${rows.map((/** @type {any} */ d) => html`<tr key=${d.id}>
        <td><code>${d.event.type}</code></td>
        <td>${when(d.event.timestamp)}</td>
        <td><span class=${`badge ${d.state === 'delivered' ? 'active' : d.state === 'failed' ? 'revoked' : 'pending'}`}>${d.state}</span>${d.state === 'retrying' && d.next_at ? html` <small class="muted">next ${when(d.next_at)}</small>` : null}</td>
        <td class="num">${count(d.attempts)}</td>
        <td>${when(d.last_attempt_at)}: ${d.last_outcome} <small class="muted">(${count(d.took_ms)} ms)</small></td>
        <td>${d.state === 'delivered' ? null : html`<${Retry} at=${at} d=${d} />`}</td>
      </tr>`)}</tbody>
    </table>` : html`<p class="muted">${deliveries.data ? 'No deliveries yet.' : '…'}</p>`}
    <${Confirm} open=${deleting} title="Delete this endpoint?"
      text=${`${w.url} hears nothing more from this project. Messages not yet delivered to it are dropped.`}
      action="Delete endpoint" busy=${action.busy} error=${action.error}
      onClose=${() => setDeleting(false)}
      onConfirm=${() => action.run(async () => { await api('DELETE', at); setDeleting(false); })} />
  </section>`;
}

function Retry({ at, d }) {
  const action = useAction();
  const [sent, setSent] = useState(false);
  return html`<span class="actions">
    <button type="button" class="small" disabled=${action.busy || sent}
      onClick=${() => action.run(async () => { await api('POST', `${at}/deliveries/${seg(d.id)}/retry`); setSent(true); })}
      aria-label=${`Retry the ${d.event.type} delivery`}>${sent ? 'Sent again' : 'Retry'}</button>
    <${Problem} error=${action.error} /></span>`;
}

function AddEndpoint({ open, base, onClose, onDone }) {
  const [url, setUrl] = useState('');
  const [only, setOnly] = useState(/** @type {string[]} */ ([]));
  const action = useAction();
  const toggle = (/** @type {string} */ e) => setOnly(only.includes(e) ? only.filter((x) => x !== e) : [...only, e]);
  const submit = (/** @type {Event} */ e) => {
    e.preventDefault();
    action.run(async () => {
      onDone(await api('POST', base, { url: url.trim(), events: only }));
      setUrl('');
      setOnly([]);
    });
  };
  return html`<${Dialog} title="Add a webhook endpoint" open=${open} onClose=${() => { action.clear(); onClose(); }}>
    <form onSubmit=${submit}>
      <${Input} label="URL (https; an address inside your networks is refused)" field="url" error=${action.error} value=${url} onInput=${setUrl} required=${true} type="url" />
      <fieldset class="choices">
        <legend>Send (none ticked: every event)</legend>
        ${EVENTS.map(([type, words]) => html`<label key=${type}>
          <input type="checkbox" checked=${only.includes(type)} onChange=${() => toggle(type)} /> ${words} <code>${type}</code>
        </label>`)}
      </fieldset>
      <${Problem} error=${action.error} fieldsShown=${['url']} />
      <${FormActions} onCancel=${onClose} label="Add endpoint" busy=${action.busy} />
    </form>
  <//>`;
}
