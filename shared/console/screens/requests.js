// @ts-check
/** The owner's Requests list: pending requests with requester, template and date; approve (✓)
 * or reject with a reason; what happened to the mail is said. A request decided here stays where
 * it was in the list, marked, with focus on it, until the screen is left; the columns keep their
 * widths and the rows their heights, so that the next request's buttons stay under the mouse
 * and several can be decided in a row. */

import { useRef, useState } from '../vendor/preact-hooks.js';
import { html, FormActions, Dialog, Input, ListState, Pager, Problem, focusSoon, when, useAction, useLoad, usePages } from '../components.js';
import { api, get, seg } from '../api.js';

const told = (/** @type {string} */ n) => (n === 'pending' ? 'the mail could not be sent yet and will be retried' : 'they have been told by mail');
/** The same, short enough for the row's Decision cell beside its badge. */
const toldShort = (/** @type {string} */ n) => (n === 'pending' ? 'mail to be retried' : 'told by mail');

export function Requests({ project }) {
  const base = `/v1/projects/${seg(project.id)}`;
  const pages = usePages();
  const load = useLoad(
    () => get(`${base}/requests?status=pending&limit=50${pages.cursor ? `&cursor=${seg(pages.cursor)}` : ''}`),
    [project.id, pages.cursor],
  );
  const [notice, setNotice] = useState('');
  const [rejecting, setRejecting] = useState(/** @type {any} */ (null));
  /** What was decided on this screen, by request id: the decided request and what was done. */
  const [decided, setDecided] = useState(/** @type {Record<string, any>} */ ({}));
  /** The requests of this page in the order first seen: a decided one keeps its place. */
  const seen = useRef({ cursor: /** @type {string | null} */ (null), rows: /** @type {Map<string, any>} */ (new Map()) });
  if (seen.current.cursor !== pages.cursor) seen.current = { cursor: pages.cursor, rows: new Map() };
  for (const r of load.data?.items ?? []) if (!seen.current.rows.has(r.id)) seen.current.rows.set(r.id, r);
  const approve = useAction();
  const decide = (/** @type {any} */ request, /** @type {string} */ words) => {
    setDecided((d) => ({ ...d, [request.id]: { ...request, words } }));
    focusSoon(`request-row-${request.id}`);
  };
  const doApprove = (/** @type {any} */ r) => approve.run(async () => {
    const answer = await api('POST', `${base}/requests/${seg(r.id)}/approve`);
    setNotice(`Approved: a key for ${r.template_name} was issued to ${r.user_email}; ${told(answer.notification)}.`);
    decide(answer.request, `key issued, ${toldShort(answer.notification)}`);
  });
  const pending = new Set((load.data?.items ?? []).map((r) => r.id));
  // Requests decided elsewhere meanwhile leave the list when it is next read.
  const rows = [...seen.current.rows.values()].filter((r) => pending.has(r.id) || decided[r.id]);
  return html`<div>
    <div class="toolbar">
      <h2>Requests</h2>
      <button type="button" onClick=${load.reload}>Refresh</button>
    </div>
    ${rows.length ? null : html`<${ListState} load=${load} empty="No pending requests." />`}
    ${rows.length ? html`<table class="requests">
      <caption class="sr-only">Pending key requests</caption>
      <colgroup><col class="requester" /><col class="template" /><col class="requested" /><col class="decision" /></colgroup>
      <thead><tr><th scope="col">Requester</th><th scope="col">API key</th><th scope="col">Requested</th><th scope="col">Decision</th></tr></thead>
      <tbody>${rows.map((r) => {
        const done = decided[r.id];
        return html`<tr key=${r.id} id=${`request-row-${r.id}`} tabindex="-1" class=${done ? 'decided' : ''}>
          <td><span class="clip" title=${`${r.user_email} (${r.user_id})`}>${r.user_email} <small class="muted">(${r.user_id})</small></span></td>
          <td><span class="clip">${r.template_name}</span></td>
          <td>${when(r.created_at)}</td>
          <td class="decision">${done
            ? html`<span class="clip" title=${done.words}><span class=${`badge ${done.status}`}>${done.status}</span> ${done.words}</span>`
            : html`<span class="actions">
              <button type="button" class="approve" disabled=${approve.busy} onClick=${() => doApprove(r)}
                aria-label=${`Approve the request of ${r.user_email} for ${r.template_name}`}>✓ Approve</button>
              <button type="button" class="danger" onClick=${() => setRejecting(r)}
                aria-label=${`Reject the request of ${r.user_email} for ${r.template_name}`}>✕ Reject</button>
            </span>`}</td>
        </tr>`;
      })}</tbody>
    </table>` : null}
    ${rows.length && load.data && !pending.size ? html`<p class="empty">No pending requests.</p>` : null}
    ${rows.length ? html`<${Problem} error=${load.error} />` : null}
    <${Pager} pages=${pages} nextCursor=${load.data?.next_cursor} />
    <${Problem} error=${approve.error} />
    ${notice ? html`<p class="notice" role="status">${notice}</p>` : null}
    <${Reject} request=${rejecting} base=${base} onClose=${() => setRejecting(null)}
      onDone=${(/** @type {any} */ answer) => {
        setRejecting(null);
        setNotice(`Rejected the request of ${answer.request.user_email} for ${answer.request.template_name}; ${told(answer.notification)}.`);
        decide(answer.request, toldShort(answer.notification));
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
