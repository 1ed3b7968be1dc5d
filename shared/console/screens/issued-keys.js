// @ts-check
/** The owner's issued keys, as in the seeds: user, template, issued, status, last used,
 * requests, cost and refused calls over a period the owner picks, paged, with the period's
 * totals over every key of the project above the pages; revoke with confirmation; each key's
 * usage as a chart; and the keys that expire within a week. */

import { useState } from '../vendor/preact-hooks.js';
import { html, Confirm, ListState, Pager, PeriodPicker, Problem, count, days, daysUntil, defaultPeriod, focusSoon, money, periodDays, periodQuery, quotaUse, refusedWords, when, day, useAction, useLoad, usePages } from '../components.js';
import { api, exportCsv, get, seg } from '../api.js';
import { UsageChart } from '../chart.js';
import { KeyLimits, Reroll, oldTokenEnd, rerollWords } from '../key-actions.js';

export function IssuedKeys({ project }) {
  const base = `/v1/projects/${seg(project.id)}`;
  const [period, setPeriod] = useState(defaultPeriod);
  const pages = usePages();
  const load = useLoad(
    () => get(`${base}/keys?${periodQuery(period)}&limit=20${pages.cursor ? `&cursor=${seg(pages.cursor)}` : ''}`),
    [project.id, period.from, period.to, pages.cursor],
  );
  // The period over every key, not only this page's: summed by the server (GET …/usage).
  const whole = useLoad(() => get(`${base}/usage?${periodQuery(period)}`), [project.id, period.from, period.to]);
  const [revoking, setRevoking] = useState(/** @type {any} */ (null));
  const [rerolling, setRerolling] = useState(/** @type {any} */ (null));
  const [limiting, setLimiting] = useState(/** @type {any} */ (null));
  const [charted, setCharted] = useState(/** @type {any} */ (null));
  const [notice, setNotice] = useState('');
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
  const rows = load.data?.items ?? [];
  const totals = rows.reduce((a, r) => ({ requests: a.requests + r.requests, cost: a.cost + r.cost, refused: a.refused + r.refused.total }), { requests: 0, cost: 0, refused: 0 });
  const expiring = rows.filter((r) => r.status === 'active' && r.expires_at && daysUntil(r.expires_at) <= 7);
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
    <${ListState} load=${load} empty="No keys have been issued in this project." />
    ${whole.data && whole.data.keys ? html`<${PeriodTotals} totals=${whole.data} period=${period} />` : null}
    ${load.error ? null : html`<${Problem} error=${whole.error} />`}
    ${expiring.length ? html`<section class="expiring" aria-labelledby="expiring-title">
      <strong id="expiring-title">${expiring.length === 1 ? '1 key expires' : `${expiring.length} keys expire`} within 7 days</strong> (its holder is mailed 7 days and 1 day before):
      <ul>${expiring.map((r) => html`<li key=${r.key_id}>${r.user_email}, ${r.template_name}: ${when(r.expires_at)}, in ${days(Math.max(daysUntil(r.expires_at), 0))}</li>`)}</ul>
    </section>` : null}
    ${rows.length ? html`<table class="issued">
      <caption>Keys and their use from ${day(period.from)} to ${day(period.to)} (UTC days)</caption>
      <thead><tr>
        <th scope="col">User</th><th scope="col">API key</th><th scope="col">Issued</th><th scope="col">Status</th>
        <th scope="col">Last used</th><th scope="col" class="num">Requests</th><th scope="col" class="num">Cost</th><th scope="col">Refused calls</th><th scope="col">Quota used now</th><th scope="col">Actions</th>
      </tr></thead>
      <tbody>${rows.map((r) => html`<tr key=${r.key_id} id=${`key-row-${r.key_id}`} tabindex="-1" class=${r.refused.total && !r.requests ? 'refused-only' : ''}>
        <td>${r.user_email}</td>
        <td>${r.template_name}</td>
        <td>${when(r.issued_at)}</td>
        <td><span class=${`badge ${r.status}`}>${r.status}</span>${r.status === 'active' && r.generation ? html`<br /><span class="muted">rerolled ${r.generation === 1 ? 'once' : `${count(r.generation)} times`}</span>` : null}${r.status === 'active' && oldTokenEnd(r) ? html`<br />${oldTokenEnd(r, true)}` : null}</td>
        <td>${when(r.last_used_at)}</td>
        <td class="num">${count(r.requests)}</td>
        <td class="num">${money(r.cost)}</td>
        <td class=${r.refused.total ? 'refused alert' : 'refused'}>${refusedWords(r.refused)}${r.refused.total && !r.requests
          ? html`<br /><span class="refused-note">every call refused in the period</span>` : null}</td>
        <td class=${r.quota && r.quota.used >= r.quota.requests ? 'quota used-up' : 'quota'}>${r.status !== 'active' ? 'key revoked' : r.quota ? quotaUse(r.quota) : 'no quota'}</td>
        <td class="actions">
          <button type="button" aria-pressed=${charted?.key_id === r.key_id ? 'true' : 'false'} onClick=${() => setCharted(charted?.key_id === r.key_id ? null : r)}
            aria-label=${`Usage chart of ${r.template_name} for ${r.user_email}`}>Chart</button>
          ${r.status === 'active' ? html`<button type="button" onClick=${() => setLimiting(r)}
            aria-label=${`Limits of the key of ${r.user_email} for ${r.template_name}`}>Limits</button>
          <button type="button" onClick=${() => setRerolling(r)}
            aria-label=${`Reroll the key of ${r.user_email} for ${r.template_name}`}>Reroll</button>
          <button type="button" class="danger" onClick=${() => setRevoking(r)}
            aria-label=${`Revoke the key of ${r.user_email} for ${r.template_name}`}>Revoke</button>` : null}
        </td>
      </tr>`)}</tbody>
      <tfoot>
        <tr><th scope="row" colspan="5">Total on this page (${rows.length === 1 ? '1 key' : `${count(rows.length)} keys`})</th><td class="num">${count(totals.requests)}</td><td class="num">${money(totals.cost)}</td><td>${totals.refused ? count(totals.refused) : 'none'}</td><td></td><td></td></tr>
        ${whole.data && (load.data?.next_cursor || pages.page > 1) ? html`<tr class="all"><th scope="row" colspan="5">Total of all ${count(whole.data.keys)} keys in the period</th><td class="num">${count(whole.data.requests)}</td><td class="num">${money(whole.data.cost)}</td><td>${whole.data.refused.total ? count(whole.data.refused.total) : 'none'}</td><td></td><td></td></tr>` : null}
      </tfoot>
    </table>` : null}
    <${Pager} pages=${pages} nextCursor=${load.data?.next_cursor} />
    ${charted ? html`<${KeyChart} base=${base} row=${charted} period=${period} />` : null}
    <${Reroll} open=${!!rerolling} projectId=${project.id} keyId=${rerolling?.key_id} who=${rerolling ? `${rerolling.user_email}'s key for ${rerolling.template_name}` : ''}
      onClose=${() => setRerolling(null)}
      onDone=${(/** @type {any} */ answer) => { setRerolling(null); setNotice(`${rerollWords(answer)} They have been told by mail.`); }} />
    ${limiting ? html`<${KeyLimits} row=${limiting} base=${base} onClose=${() => setLimiting(null)}
      onDone=${(/** @type {any} */ key) => { setLimiting(null); setNotice(`Saved the limits of ${key.user_email}'s key for ${key.template_name}; they apply from the next call.`); }} />` : null}
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

/** Periods up to this many days are drawn by the hour at first; longer ones by the day, and
 * Hourly draws their last days only: more hours would be bars a pixel wide. */
const HOURLY_DAYS = 3;

function KeyChart({ base, row, period }) {
  const long = periodDays(period) > HOURLY_DAYS;
  const [granularity, setGranularity] = useState(/** @type {'hour'|'day'} */ (long ? 'day' : 'hour'));
  const [measure, setMeasure] = useState(/** @type {'requests'|'cost'} */ ('requests'));
  const q = granularity === 'hour' ? hourly(period) : periodQuery(period);
  const load = useLoad(() => get(`${base}/keys/${seg(row.key_id)}/usage?${q}&granularity=${granularity}`), [row.key_id, q, granularity]);
  return html`<section class="panel" aria-labelledby="chart-title">
    <div class="toolbar">
      <h3 id="chart-title">Usage of ${row.template_name} by ${row.user_email}</h3>
      <div class="segmented" role="group" aria-label="Granularity">
        <button type="button" aria-pressed=${granularity === 'day' ? 'true' : 'false'} onClick=${() => setGranularity('day')}>Daily</button>
        <button type="button" aria-pressed=${granularity === 'hour' ? 'true' : 'false'} onClick=${() => setGranularity('hour')}>Hourly</button>
      </div>
      <div class="segmented" role="group" aria-label="Measure">
        <button type="button" aria-pressed=${measure === 'requests' ? 'true' : 'false'} onClick=${() => setMeasure('requests')}>Requests</button>
        <button type="button" aria-pressed=${measure === 'cost' ? 'true' : 'false'} onClick=${() => setMeasure('cost')}>Cost</button>
      </div>
    </div>
    ${granularity === 'hour' && long ? html`<p class="hint">By the hour: the last ${HOURLY_DAYS} days of the period (${day(lastDays(period).from)} to ${day(period.to)}). Choose Daily for the whole period.</p>` : null}
    ${load.error ? html`<${Problem} error=${load.error} />` : load.data
      ? html`<${UsageChart} series=${load.data} measure=${measure} title=${`${row.template_name}, ${row.user_email}`} />`
      : html`<p class="loading" role="status">Loading…</p>`}
  </section>`;
}

/** The period's last [`HOURLY_DAYS`] days at most. */
function lastDays(/** @type {{from: string, to: string}} */ p) {
  const to = new Date(`${p.to}T00:00:00Z`);
  const earliest = new Date(to.getTime() - (HOURLY_DAYS - 1) * 86400e3).toISOString().slice(0, 10);
  return { from: p.from > earliest ? p.from : earliest, to: p.to };
}

/** The query of an hourly series: the period's last days. */
const hourly = (/** @type {{from: string, to: string}} */ p) => periodQuery(lastDays(p));

function Revoke({ row, base, onClose, onDone }) {
  const action = useAction();
  return html`<${Confirm} open=${!!row} title="Revoke this key?"
    text=${row ? `${row.user_email}'s key for ${row.template_name} stops working within a second, and they are told by mail. This cannot be undone; they may request a new key.` : ''}
    action="Revoke key" busy=${action.busy} error=${action.error}
    onClose=${() => { action.clear(); onClose(); }}
    onConfirm=${() => action.run(async () => onDone(await api('DELETE', `${base}/keys/${seg(row.key_id)}`)))} />`;
}
