// @ts-check
/** One key on a page of its own (`/projects/{p}/keys/{k}`), for the project's owner (from
 * Issued keys) and for its holder (from My keys): who holds it, its template, dates, status,
 * generation and grace, its limits and quota now; the period's requests, cost and refusals by
 * outcome with the usage chart; its last hours of calls; its narrowed tokens; and the actions
 * each may take (the owner: Limits, Reroll, Revoke; the holder: Reroll, Revoke and minting
 * narrowed tokens). Everything comes from the /v1 API: `GET …/keys/{key}` and its usage. */

import { useState } from '../vendor/preact-hooks.js';
import { html, Confirm, PeriodPicker, Problem, count, day, defaultPeriod, money, periodDays, periodQuery, quotaUse, rateRule, refusedWords, when, useAction, useLoad } from '../components.js';
import { api, get, seg } from '../api.js';
import { user } from '../auth.js';
import { UsageChart } from '../chart.js';
import { KeyLimits, Reroll, oldTokenEnd, ownLimitsWords, rerollWords } from '../key-actions.js';
import { NarrowedTokens } from '../narrowed-tokens.js';

// The route names its parameter keyId: Preact keeps a prop named `key` to itself.
export function KeyPage({ project: projectId, keyId }) {
  const base = `/v1/projects/${seg(projectId)}`;
  const keyBase = `${base}/keys/${seg(keyId)}`;
  const [period, setPeriod] = useState(defaultPeriod);
  const project = useLoad(() => get(base), [projectId]);
  const load = useLoad(() => get(`${keyBase}?${periodQuery(period)}`), [keyBase, period.from, period.to]);
  const [dialog, setDialog] = useState(/** @type {'limits' | 'reroll' | 'revoke' | null} */ (null));
  const [notice, setNotice] = useState('');
  const [newToken, setNewToken] = useState(/** @type {string | null} */ (null));
  const k = load.data;
  if (!k) {
    return html`<section>
      <p class="crumbs"><a href="/">Projects</a></p>
      <h1>API key</h1>
      ${load.error ? html`<${Problem} error=${load.error} /><p><a href="/me/keys">Your keys</a> · <a href="/">Your projects</a></p>`
        : html`<p class="loading" role="status">Loading…</p>`}
    </section>`;
  }
  const manage = !!project.data?.permissions.includes('project_manage');
  const holder = user()?.id === k.user_id;
  const active = k.status === 'active';
  const projectName = project.data?.name ?? projectId;
  const title = holder && !manage ? `Your ${k.template_name} key` : `${k.template_name} key of ${k.user_email}`;
  const done = (/** @type {string} */ words) => { setDialog(null); setNotice(words); };
  return html`<section class="key-page">
    <p class="crumbs">${manage
      ? html`<a href="/">Projects</a> › <a href=${`/projects/${seg(projectId)}`}>${projectName}</a> › <a href=${`/projects/${seg(projectId)}/issued-keys`}>Issued keys</a>`
      : html`<a href="/me/keys">My keys</a>`} › <span>${k.template_name}</span></p>
    <div class="toolbar">
      <h1>${title} <span class=${`badge ${k.status}`}>${k.status}</span></h1>
      ${active ? html`<div class="actions">
        ${manage ? html`<button type="button" onClick=${() => setDialog('limits')}>Limits</button>` : null}
        <button type="button" onClick=${() => setDialog('reroll')}>Reroll</button>
        <button type="button" class="danger" onClick=${() => setDialog('revoke')}>Revoke</button>
      </div>` : null}
    </div>
    ${notice ? html`<p class="notice" role="status">${notice}</p>` : null}
    ${newToken ? html`<div class="panel"><p><strong>The new token</strong>, shown once here (My keys reveals it again):</p>
      <code class="revealed" aria-label="New key token">${newToken}</code>
      <button type="button" class="small" onClick=${() => setNewToken(null)}>Hide token</button></div>` : null}
    <div class="columns">
      <section class="panel" aria-labelledby="about-title">
        <h2 id="about-title">This key</h2>
        <dl class="facts">
          <dt>Held by</dt><dd>${k.user_email} <small class="muted">(${k.user_id})</small></dd>
          <dt>Project</dt><dd><a href=${`/projects/${seg(projectId)}`}>${projectName}</a></dd>
          <dt>Template</dt><dd>${k.template_name}</dd>
          <dt>Issued</dt><dd>${when(k.issued_at)}</dd>
          <dt>Expires</dt><dd>${k.expires_at ? when(k.expires_at) : 'never'}</dd>
          <dt>Status</dt><dd>${statusWords(k)}</dd>
          <dt>Token</dt><dd>${k.generation ? `rerolled ${k.generation === 1 ? 'once' : `${count(k.generation)} times`}, last ${when(k.rerolled_at)}` : 'the first one issued'}${oldTokenEnd(k) ? html`<br />${oldTokenEnd(k)}` : null}</dd>
          <dt>Limits</dt><dd>${ownLimitsWords(k.limits) ?? "the template's"}</dd>
          <dt>Quota now</dt><dd class=${k.quota && k.quota.used >= k.quota.requests + (k.quota.top_up ?? 0) ? 'quota used-up' : ''}>${!active ? 'none: the key is revoked' : k.quota ? `${quotaUse(k.quota)}, renews ${when(k.quota.resets_at)}` : 'no quota: calls are not limited in number'}</dd>
          ${k.limits?.rate_limit ? html`<dt>Rate limit</dt><dd>${rateRule(k.limits.rate_limit)}</dd>` : null}
          <dt>Last used</dt><dd>${k.last_used_at ? when(k.last_used_at) : 'never'}</dd>
        </dl>
      </section>
      <section class="panel" aria-labelledby="period-title">
        <h2 id="period-title">Use from ${day(period.from)} to ${day(period.to)}</h2>
        <${PeriodPicker} period=${period} onChange=${setPeriod} />
        <dl class="facts">
          <dt>Requests</dt><dd>${count(k.requests)}</dd>
          <dt>Cost</dt><dd>${money(k.cost)}</dd>
          <dt>Refused (not billed)</dt><dd class=${k.refused.total ? 'refused-note' : ''}>${refusedWords(k.refused)}</dd>
        </dl>
      </section>
    </div>
    <${KeyChart} keyBase=${keyBase} title=${`${k.template_name}, ${k.user_email}`} period=${period} />
    <${LastCalls} keyBase=${keyBase} lastUsed=${k.last_used_at} />
    ${active || manage ? html`<${NarrowedTokens} name=${k.template_name} canMint=${holder && active}
      base=${holder ? `/v1/me/keys/${seg(keyId)}/tokens` : `${keyBase}/tokens`} />` : null}
    ${dialog === 'limits' ? html`<${KeyLimits} row=${k} base=${base} onClose=${() => setDialog(null)}
      onDone=${() => done('Saved the limits of this key; they apply from the next call.')} />` : null}
    <${Reroll} open=${dialog === 'reroll'} projectId=${projectId} keyId=${keyId} who=${holder ? 'Your key' : `${k.user_email}'s key for ${k.template_name}`}
      onClose=${() => setDialog(null)}
      onDone=${(/** @type {any} */ answer) => {
        setNewToken(answer.token ?? null);
        done(`${rerollWords(answer)} ${holder ? 'The new token is shown below.' : 'They have been told by mail.'}`);
      }} />
    <${RevokeKey} open=${dialog === 'revoke'} keyBase=${keyBase} who=${holder ? 'Your key' : `${k.user_email}'s key for ${k.template_name}`}
      onClose=${() => setDialog(null)}
      onDone=${(/** @type {any} */ answer) => done(`Revoked; ${answer.notification === 'pending' ? 'the mail will be retried' : 'the holder has been told by mail'}.`)} />
  </section>`;
}

function statusWords(/** @type {any} */ k) {
  if (k.status === 'revoked') return `revoked ${when(k.revoked_at)}: every call with it is refused`;
  if (k.expires_at && new Date(k.expires_at).getTime() <= Date.now()) return 'expired: every call with it is refused';
  return 'active: calls with it are allowed within its permissions and limits';
}

function RevokeKey({ open, keyBase, who, onClose, onDone }) {
  const action = useAction();
  return html`<${Confirm} open=${open} title="Revoke this key?"
    text=${`${who} stops working within a second, with its narrowed tokens, and its holder is told by mail. This cannot be undone; a new key can be requested.`}
    action="Revoke key" busy=${action.busy} error=${action.error}
    onClose=${() => { action.clear(); onClose(); }}
    onConfirm=${() => action.run(async () => onDone(await api('DELETE', keyBase)))} />`;
}

/** Periods up to this many days are drawn by the hour at first; longer ones by the day, and
 * Hourly draws their last days only: more hours would be bars a pixel wide. */
const HOURLY_DAYS = 3;

/** The key's usage over the period, with refusals by outcome beside the requests. */
function KeyChart({ keyBase, title, period }) {
  const long = periodDays(period) > HOURLY_DAYS;
  const [granularity, setGranularity] = useState(/** @type {'hour'|'day'} */ (long ? 'day' : 'hour'));
  const [measure, setMeasure] = useState(/** @type {'requests'|'cost'} */ ('requests'));
  const q = granularity === 'hour' ? periodQuery(lastDays(period)) : periodQuery(period);
  const load = useLoad(() => get(`${keyBase}/usage?${q}&granularity=${granularity}`), [keyBase, q, granularity]);
  return html`<section class="panel" aria-labelledby="chart-title">
    <div class="toolbar">
      <h2 id="chart-title">Usage</h2>
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
      ? html`<${UsageChart} series=${load.data} measure=${measure} title=${title} />`
      : html`<p class="loading" role="status">Loading…</p>`}
  </section>`;
}

/** The period's last [`HOURLY_DAYS`] days at most. */
function lastDays(/** @type {{from: string, to: string}} */ p) {
  const to = new Date(`${p.to}T00:00:00Z`);
  const earliest = new Date(to.getTime() - (HOURLY_DAYS - 1) * 86400e3).toISOString().slice(0, 10);
  return { from: p.from > earliest ? p.from : earliest, to: p.to };
}

/** Hours of the last day shown at most in Last calls. */
const LAST_HOURS = 8;

/** The key's last calls and their outcomes, by the hour: keygate counts every call by hour and
 * outcome (that is what it bills), and keeps no log of single calls. */
function LastCalls({ keyBase, lastUsed }) {
  const to = new Date();
  const from = new Date(to.getTime() - 24 * 3600e3);
  const iso = (/** @type {Date} */ d) => encodeURIComponent(d.toISOString().replace(/\.\d+Z$/, 'Z'));
  // Read again with the key (a call, a revocation), not on every second that passes.
  const load = useLoad(() => get(`${keyBase}/usage?from=${iso(from)}&to=${iso(to)}&granularity=hour`), [keyBase, lastUsed]);
  const hours = (load.data?.points ?? []).filter((p) => p.requests || p.refused?.total).reverse().slice(0, LAST_HOURS);
  const end = (/** @type {string} */ t) => new Date(new Date(t).getTime() + 3600e3).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
  const hour = (/** @type {string} */ t) => `${when(t)} – ${end(t)}`;
  return html`<section class="panel" aria-labelledby="last-title">
    <h2 id="last-title">Last calls</h2>
    <p class="hint">Calls of the last 24 hours by hour and outcome, newest first. keygate counts every call; it keeps no log of single calls.</p>
    ${load.error ? html`<${Problem} error=${load.error} />` : !load.data ? html`<p class="loading" role="status">Loading…</p>`
      : hours.length ? html`<table class="last-calls">
        <caption class="sr-only">Calls by hour, newest first</caption>
        <thead><tr><th scope="col">Hour</th><th scope="col" class="num">Allowed</th><th scope="col">Refused, and why</th></tr></thead>
        <tbody>${hours.map((p) => html`<tr key=${p.start}>
          <td>${hour(p.start)}</td>
          <td class="num">${count(p.requests)}</td>
          <td class=${p.refused?.total ? 'refused alert' : 'refused'}>${refusedWords(p.refused)}</td>
        </tr>`)}</tbody>
      </table>` : html`<p class="empty">No calls in the last 24 hours${lastUsed ? `; last used ${when(lastUsed)}` : ''}.</p>`}
  </section>`;
}
