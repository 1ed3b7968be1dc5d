// @ts-check
/** The owner's Requests list: pending requests with requester, template and date; approve (✓)
 * or reject with a reason; what happened to the mail is said. A request decided here stays in
 * the list, marked, with focus on it, until the list is next read. */

import { useState } from '../vendor/preact-hooks.js';
import { html, FormActions, Dialog, Input, ListState, Pager, Problem, focusSoon, when, useAction, useLoad, usePages } from '../components.js';
import { api, get, seg } from '../api.js';

const told = (/** @type {string} */ n) => (n === 'pending' ? 'the mail could not be sent yet and will be retried' : 'they have been told by mail');

export function Requests({ project }) {
  const base = `/v1/projects/${seg(project.id)}`;
  const pages = usePages();
  const load = useLoad(
    () => get(`${base}/requests?status=pending&limit=50${pages.cursor ? `&cursor=${seg(pages.cursor)}` : ''}`),
    [project.id, pages.cursor],
  );
  const [notice, setNotice] = useState('');
  const [rejecting, setRejecting] = useState(/** @type {any} */ (null));
  /** Requests decided on this screen, newest first, with what was done: shown until left. */
  const [decided, setDecided] = useState(/** @type {any[]} */ ([]));
  const approve = useAction();
  const decide = (/** @type {any} */ request, /** @type {string} */ words) => {
    setDecided((d) => [{ ...request, words }, ...d.filter((x) => x.id !== request.id)]);
    focusSoon(`request-row-${request.id}`);
  };
  const doApprove = (/** @type {any} */ r) => approve.run(async () => {
    const answer = await api('POST', `${base}/requests/${seg(r.id)}/approve`);
    setNotice(`Approved: a key for ${r.template_name} was issued to ${r.user_email}; ${told(answer.notification)}.`);
    decide(answer.request, `Approved: key issued; ${told(answer.notification)}`);
  });
  const shown = new Set(decided.map((d) => d.id));
  const waiting = (load.data?.items ?? []).filter((r) => !shown.has(r.id));
  return html`<div>
    <div class="toolbar">
      <h2>Requests</h2>
      <button type="button" onClick=${load.reload}>Refresh</button>
    </div>
    ${notice ? html`<p class="notice" role="status">${notice}</p>` : null}
    <${Problem} error=${approve.error} />
    <${ListState} load=${load} empty="No pending requests." />
    ${waiting.length || decided.length ? html`<table>
      <caption class="sr-only">Pending key requests</caption>
      <thead><tr><th scope="col">Requester</th><th scope="col">API key</th><th scope="col">Requested</th><th scope="col">Decision</th></tr></thead>
      <tbody>${decided.map((r) => html`<tr key=${r.id} id=${`request-row-${r.id}`} tabindex="-1" class="decided">
        <td>${r.user_email} <small class="muted">(${r.user_id})</small></td>
        <td>${r.template_name}</td>
        <td>${when(r.created_at)}</td>
        <td><span class=${`badge ${r.status}`}>${r.status}</span> ${r.words}</td>
      </tr>`)}${waiting.map((r) => html`<tr key=${r.id} id=${`request-row-${r.id}`} tabindex="-1">
        <td>${r.user_email} <small class="muted">(${r.user_id})</small></td>
        <td>${r.template_name}</td>
        <td>${when(r.created_at)}</td>
        <td class="actions">
          <button type="button" class="approve" disabled=${approve.busy} onClick=${() => doApprove(r)}
            aria-label=${`Approve the request of ${r.user_email} for ${r.template_name}`}>✓ Approve</button>
          <button type="button" class="danger" onClick=${() => setRejecting(r)}
            aria-label=${`Reject the request of ${r.user_email} for ${r.template_name}`}>✕ Reject</button>
        </td>
      </tr>`)}</tbody>
    </table>` : null}
    <${Pager} pages=${pages} nextCursor=${load.data?.next_cursor} />
    <${Reject} request=${rejecting} base=${base} onClose=${() => setRejecting(null)}
      onDone=${(/** @type {any} */ answer) => {
        setRejecting(null);
        setNotice(`Rejected the request of ${answer.request.user_email} for ${answer.request.template_name}; ${told(answer.notification)}.`);
        decide(answer.request, `Rejected; ${told(answer.notification)}`);
      }} />
  </div>`;
}

function Reject({ request, base, onClose, onDone }) {
  const [reason, setReason] = useState('');
  const action = useAction();
  const submit = (/** @type {Event} */ e) => {
    e.preventDefault();
    action.run(async () => {
      const answer = await api('POST', `${base}/requests/${seg(request.id)}/reject`, { reason });
      setReason('');
      onDone(answer);
    });
  };
  return html`<${Dialog} title="Reject the request" open=${!!request} onClose=${() => { action.clear(); onClose(); }}>
    <form onSubmit=${submit}>
      <p>${request?.user_email} asked for a key for ${request?.template_name}. They will be told by mail, with your reason.</p>
      <${Input} label="Reason" field="reason" error=${action.error} value=${reason} onInput=${setReason} />
      <${Problem} error=${action.error} fieldsShown=${['reason']} />
      <${FormActions} onCancel=${onClose} label="Reject request" busy=${action.busy} danger />
    </form>
  <//>`;
}
