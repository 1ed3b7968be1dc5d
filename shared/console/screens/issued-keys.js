// @ts-check
/** The owner's issued keys, as in the seeds: a table of one line per key (user, key, issued,
 * status, last used, and the period's requests, cost and refused calls, and its quota now), a
 * Revoke button on each row, and the row opening the key's own page for everything else (its
 * chart, limits, reroll, narrowed tokens). Sorted by a numeric column and filtered by user or
 * status within the page shown; the period's totals over every key of the project above the
 * table, the pager beside it. */

import { useState } from '../vendor/preact-hooks.js';
import { useLocation } from '../vendor/preact-iso-router.js';
import { html, Confirm, ListState, Pager, PeriodPicker, Problem, count, days, daysUntil, defaultPeriod, focusSoon, money, periodQuery, quotaShort, quotaUse, refusedWords, short, when, day, useAction, useLoad, usePages } from '../components.js';
import { api, exportCsv, get, keyPage, seg } from '../api.js';

/** The numeric columns a person may sort by, and the value each sorts on. */
const SORTS = {
  requests: { label: 'Requests', value: (/** @type {any} */ r) => r.requests },
  cost: { label: 'Cost', value: (/** @type {any} */ r) => r.cost },
  refused: { label: 'Refused', value: (/** @type {any} */ r) => r.refused.total },
  quota: { label: 'Quota used now', value: (/** @type {any} */ r) => (r.status === 'active' && r.quota ? r.quota.used : -1) },
};

const PAGE_SIZES = [20, 50, 100];

export function IssuedKeys({ project }) {
  const base = `/v1/projects/${seg(project.id)}`;
  const { route } = useLocation();
  const [period, setPeriod] = useState(defaultPeriod);
  const [pageSize, setPageSize] = useState(50);
  const pages = usePages();
  const load = useLoad(
    () => get(`${base}/keys?${periodQuery(period)}&limit=${pageSize}${pages.cursor ? `&cursor=${seg(pages.cursor)}` : ''}`),
    [project.id, period.from, period.to, pages.cursor, pageSize],
  );
  // The period over every key, not only this page's: summed by the server (GET …/usage).
  const whole = useLoad(() => get(`${base}/usage?${periodQuery(period)}`), [project.id, period.from, period.to]);
  const [revoking, setRevoking] = useState(/** @type {any} */ (null));
  const [notice, setNotice] = useState('');
  const [sort, setSort] = useState(/** @type {{by: keyof typeof SORTS, descending: boolean} | null} */ (null));
  const [who, setWho] = useState('');
  const [status, setStatus] = useState('');
  const download = useAction();
  /** The billing export of the period, by UTC day, as a CSV file. */
  const saveCsv = () => download.run(async () => {
    const csv = await exportCsv(`${base}/usage/export?${periodQuery(period)}&granularity=day&format=csv`);
    const a = document.createElement('a');
    a.href = URL.createObjectURL(new Blob([csv], { type: 'text/csv' }));
    a.download = `usage-${project.id}-${period.from}-${period.to}.csv`;
    a.click();
    URL.revokeObjectURL(a.href);
  });
  const loaded = load.data?.items ?? [];
  const needle = who.trim().toLowerCase();
  const rows = loaded.filter((r) => (!needle || r.user_email.toLowerCase().includes(needle) || r.user_id.toLowerCase().includes(needle))
    && (!status || r.status === status));
  if (sort) {
    const value = SORTS[sort.by].value;
    rows.sort((a, b) => (sort.descending ? value(b) - value(a) : value(a) - value(b)));
  }
  const filtered = rows.length !== loaded.length;
  const totals = rows.reduce((a, r) => ({ requests: a.requests + r.requests, cost: a.cost + r.cost, refused: a.refused + r.refused.total }), { requests: 0, cost: 0, refused: 0 });
  const expiring = loaded.filter((r) => r.status === 'active' && r.expires_at && daysUntil(r.expires_at) <= 7);
  const several = !!(load.data?.next_cursor || pages.page > 1);
  const sortBy = (/** @type {keyof typeof SORTS} */ by) => setSort(sort?.by === by ? { by, descending: !sort.descending } : { by, descending: true });
  /** A column header that sorts: a button inside the header, its order said by aria-sort. */
  const sortable = (/** @type {keyof typeof SORTS} */ by) => html`<th scope="col" class="num"
    aria-sort=${sort?.by === by ? (sort.descending ? 'descending' : 'ascending') : undefined}>
    <button type="button" class="sort" onClick=${() => sortBy(by)}>${SORTS[by].label}<span aria-hidden="true">${sort?.by === by ? (sort.descending ? ' ▼' : ' ▲') : ' ↕'}</span></button></th>`;
  /** A click anywhere on a row opens its key's page, but not one on its buttons or links. */
  const open = (/** @type {any} */ r, /** @type {MouseEvent} */ e) => {
    if (!(/** @type {HTMLElement} */ (e.target)).closest('a, button')) route(keyPage(project.id, r.key_id));
  };
  return html`<div>
    <div class="toolbar">
      <h2>Issued keys</h2>
      <${PeriodPicker} period=${period} onChange=${(p) => { pages.reset(); setPeriod(p); }} />
      <button type="button" onClick=${load.reload}>Refresh</button>
      <button type="button" onClick=${saveCsv} disabled=${download.busy}
        title="Requests and cost per key per UTC day in the period, for billing">Download CSV</button>
    </div>
    <${Problem} error=${download.error} />
    ${notice ? html`<p class="notice" role="status">${notice}</p>` : null}
    ${whole.data && whole.data.keys !== undefined ? html`<${PeriodTotals} totals=${whole.data} period=${period} />` : null}
    ${load.error ? null : html`<${Problem} error=${whole.error} />`}
    ${expiring.length ? html`<section class="expiring" aria-labelledby="expiring-title">
      <strong id="expiring-title">${expiring.length === 1 ? '1 key expires' : `${expiring.length} keys expire`} within 7 days</strong> (its holder is mailed 7 days and 1 day before):
      <ul>${expiring.map((r) => html`<li key=${r.key_id}>${r.user_email}, ${r.template_name}: ${when(r.expires_at)}, in ${days(Math.max(daysUntil(r.expires_at), 0))}</li>`)}</ul>
    </section>` : null}
    <div class="filters" role="search" aria-label="Filter the keys">
      <div class="input inline"><label for="filter-user">User</label>
        <input id="filter-user" type="search" placeholder="e-mail or id" value=${who} onInput=${(e) => setWho(e.currentTarget.value)} /></div>
      <div class="input inline"><label for="filter-status">Status</label>
        <select id="filter-status" value=${status} onChange=${(e) => setStatus(e.currentTarget.value)}>
          <option value="">any</option><option value="active">active</option><option value="revoked">revoked</option>
        </select></div>
      <div class="input inline"><label for="page-size">Keys a page</label>
        <select id="page-size" value=${pageSize} onChange=${(e) => { pages.reset(); setPageSize(Number(e.currentTarget.value)); }}>
          ${PAGE_SIZES.map((n) => html`<option key=${n} value=${n}>${n}</option>`)}
        </select></div>
      <${Pager} pages=${pages} nextCursor=${load.data?.next_cursor} />
    </div>
    ${several && (sort || filtered) ? html`<p class="hint">Sorted and filtered within this page of ${count(loaded.length)} keys.</p>` : null}
    <${ListState} load=${load} empty=${pages.page > 1 ? 'No more keys.' : 'No keys had been issued in this project by the end of the period.'} />
    ${loaded.length && !rows.length ? html`<p class="empty">No key on this page matches the filter.</p>` : null}
    ${rows.length ? html`<table class="issued">
      <caption>Keys and their use from ${day(period.from)} to ${day(period.to)} (UTC days). Open a key for its chart, limits, reroll and narrowed tokens.</caption>
      <thead><tr>
        <th scope="col">User</th><th scope="col">API key</th><th scope="col">Issued</th><th scope="col">Status</th>
        <th scope="col">Last used</th>${sortable('requests')}${sortable('cost')}${sortable('refused')}${sortable('quota')}<th scope="col"><span class="sr-only">Actions</span></th>
      </tr></thead>
      <tbody>${rows.map((r) => html`<tr key=${r.key_id} id=${`key-row-${r.key_id}`} tabindex="-1" class=${r.refused.total && !r.requests ? 'refused-only' : ''} onClick=${(e) => open(r, e)}>
        <td class="user"><span class="clip" title=${`${r.user_email} (${r.user_id})`}>${r.user_email}</span></td>
        <td class="name"><a href=${keyPage(project.id, r.key_id)} class="clip" aria-label=${`${r.template_name} key of ${r.user_email}`}>${r.template_name}</a></td>
        <td title=${when(r.issued_at)}>${short(r.issued_at)}</td>
        <td><span class=${`badge ${r.status}`}>${r.status}</span></td>
        <td title=${when(r.last_used_at)}>${r.last_used_at ? short(r.last_used_at) : 'never'}</td>
        <td class="num">${count(r.requests)}</td>
        <td class="num">${money(r.cost)}</td>
        <td class=${r.refused.total ? 'num refused alert' : 'num refused'} title=${refusedWords(r.refused)}>${r.refused.total ? count(r.refused.total) : 'none'}</td>
        <td class=${r.status === 'active' && r.quota && r.quota.used >= r.quota.requests + (r.quota.top_up ?? 0) ? 'num quota used-up' : 'num quota'}
          title=${r.status === 'active' && r.quota ? quotaUse(r.quota) : undefined}>${r.status !== 'active' ? 'key revoked' : r.quota ? quotaShort(r.quota) : 'no quota'}</td>
        <td class="actions">${r.status === 'active' ? html`<button type="button" class="danger small" onClick=${() => setRevoking(r)}
            aria-label=${`Revoke the key of ${r.user_email} for ${r.template_name}`}>Revoke</button>` : null}</td>
      </tr>`)}</tbody>
      <tfoot>
        <tr><th scope="row" colspan="5">Total ${filtered ? 'of the keys shown' : 'on this page'} (${rows.length === 1 ? '1 key' : `${count(rows.length)} keys`})</th><td class="num">${count(totals.requests)}</td><td class="num">${money(totals.cost)}</td><td class="num">${totals.refused ? count(totals.refused) : 'none'}</td><td></td><td></td></tr>
        ${whole.data && (several || filtered) ? html`<tr class="all"><th scope="row" colspan="5">Total of all ${count(whole.data.keys)} keys in the period</th><td class="num">${count(whole.data.requests)}</td><td class="num">${money(whole.data.cost)}</td><td class="num">${whole.data.refused.total ? count(whole.data.refused.total) : 'none'}</td><td></td><td></td></tr>` : null}
      </tfoot>
    </table>` : null}
    <${Revoke} row=${revoking} base=${base} onClose=${() => setRevoking(null)}
      onDone=${(/** @type {any} */ answer) => {
        setRevoking(null);
        setNotice(`Revoked the key of ${answer.key.user_email}; ${answer.notification === 'pending' ? 'the mail will be retried' : 'they have been told by mail'}.`);
        focusSoon(`key-row-${answer.key.id}`);
      }} />
  </div>`;
}

/** The period's totals over every key of the project (revoked ones included). */
function PeriodTotals({ totals, period }) {
  return html`<section class="totals" aria-labelledby="totals-title">
    <h3 id="totals-title">Whole project, ${day(period.from)} to ${day(period.to)} (${count(totals.keys)} ${totals.keys === 1 ? 'key' : 'keys'})</h3>
    <dl>
      <div><dt>Requests</dt><dd>${count(totals.requests)}</dd></div>
      <div><dt>Cost</dt><dd>${money(totals.cost)}</dd></div>
      <div><dt>Refused calls (not billed)</dt><dd>${refusedWords(totals.refused)}</dd></div>
    </dl>
  </section>`;
}

function Revoke({ row, base, onClose, onDone }) {
  const action = useAction();
  return html`<${Confirm} open=${!!row} title="Revoke this key?"
    text=${row ? `${row.user_email}'s key for ${row.template_name} stops working within a second, and they are told by mail. This cannot be undone; they may request a new key.` : ''}
    action="Revoke key" busy=${action.busy} error=${action.error}
    onClose=${() => { action.clear(); onClose(); }}
    onConfirm=${() => action.run(async () => onDone(await api('DELETE', `${base}/keys/${seg(row.key_id)}`)))} />`;
}
