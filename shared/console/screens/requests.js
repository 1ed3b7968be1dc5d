// @ts-check
/** The owner's Requests list: pending requests with requester, template and date; approve (✓)
 * or reject with a reason; what happened to the mail is said. */

import { useState } from '../vendor/preact-hooks.js';
import { html, FormActions, Dialog, Input, ListState, Pager, Problem, when, useAction, useLoad, usePages } from '../components.js';
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
  const approve = useAction();
  const doApprove = (/** @type {any} */ r) => approve.run(async () => {
    const answer = await api('POST', `${base}/requests/${seg(r.id)}/approve`);
    setNotice(`Approved: a key for ${r.template_name} was issued to ${r.user_email}; ${told(answer.notification)}.`);
    load.reload();
  });
  return html`<div>
    <div class="toolbar">
      <h2>Requests</h2>
      <button type="button" onClick=${load.reload}>Refresh</button>
    </div>
    ${notice ? html`<p class="notice" role="status">${notice}</p>` : null}
    <${Problem} error=${approve.error} />
    <${ListState} load=${load} empty="No pending requests." />
    ${load.data?.items.length ? html`<table>
      <caption class="sr-only">Pending key requests</caption>
      <thead><tr><th scope="col">Requester</th><th scope="col">API key</th><th scope="col">Requested</th><th scope="col">Decision</th></tr></thead>
      <tbody>${load.data.items.map((r) => html`<tr key=${r.id}>
        <td>${r.user_email} <small class="muted">(${r.user_id})</small></td>
        <td>${r.template_name}</td>
        <td>${when(r.created_at)}</td>
        <td class="actions">
          <button type="button" class="approve" disabled=${approve.busy} onClick=${() => doApprove(r)}
            aria-label=${`Approve the request of ${r.user_email} for ${r.template_name}`}>✓ Approve</button>
          <button type="button" class="danger" onClick=${() => setRejecting(r)}
            aria-label=${`Reject the request of ${r.user_email}`}>✕ Reject</button>
        </td>
      </tr>`)}</tbody>
    </table>` : null}
    <${Pager} pages=${pages} nextCursor=${load.data?.next_cursor} />
    <${Reject} request=${rejecting} base=${base} onClose=${() => setRejecting(null)}
      onDone=${(/** @type {any} */ answer) => { setRejecting(null); setNotice(`Rejected the request of ${answer.request.user_email}; ${told(answer.notification)}.`); load.reload(); }} />
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
      <p>${request?.user_email} will be told by mail, with your reason.</p>
      <${Input} label="Reason" field="reason" error=${action.error} value=${reason} onInput=${setReason} />
      <${Problem} error=${action.error} fieldsShown=${['reason']} />
      <${FormActions} onCancel=${onClose} label="Reject request" busy=${action.busy} danger />
    </form>
  <//>`;
}
