// @ts-check
/** A project's audit log, newest first: who did what, when. */

import { html, ListState, Pager, when, useLoad, usePages } from '../components.js';
import { get, seg } from '../api.js';

export function Audit({ project }) {
  const pages = usePages();
  const load = useLoad(() => get(`/v1/projects/${seg(project.id)}/audit?limit=50${pages.cursor ? `&cursor=${seg(pages.cursor)}` : ''}`), [project.id, pages.cursor]);
  return html`<div>
    <div class="toolbar"><h2>Audit log</h2><button type="button" onClick=${load.reload}>Refresh</button></div>
    <${ListState} load=${load} empty="Nothing has happened yet." />
    ${load.data?.items.length ? html`<table>
      <thead><tr><th scope="col">When</th><th scope="col">Who</th><th scope="col">What</th><th scope="col">Object</th><th scope="col">Details</th></tr></thead>
      <tbody>${load.data.items.map((e) => html`<tr key=${e.id}>
        <td>${when(e.at)}</td><td>${e.actor}</td><td>${e.action.replace(/_/g, ' ')}</td><td><code>${e.subject}</code></td>
        <td class="detail">${Object.entries(e.detail ?? {}).map(([k, v]) => html`<span>${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}</span> `)}</td>
      </tr>`)}</tbody>
    </table>` : null}
    <${Pager} pages=${pages} nextCursor=${load.data?.next_cursor} />
  </div>`;
}
