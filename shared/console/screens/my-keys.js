// @ts-check
/** The keys the signed-in person holds: their state and own use; the token only after an
 * explicit Reveal or Copy, never in the page before. */

import { useState } from '../vendor/preact-hooks.js';
import { html, ListState, PeriodPicker, Problem, count, defaultPeriod, money, periodQuery, quotaUse, refusedWords, when, useAction, useLoad } from '../components.js';
import { all, api, get, keyPage, seg } from '../api.js';
import { UsageChart } from '../chart.js';
import { Reroll, oldTokenEnd, ownLimitsWords, rerollWords } from '../key-actions.js';
import { NarrowedTokens } from '../narrowed-tokens.js';


export function MyKeys() {
  const load = useLoad(() => all('/v1/me/keys'), []);
  const projects = useLoad(() => all('/v1/me/projects'), []);
  const names = Object.fromEntries((projects.data ?? []).map((p) => [p.id, p.name]));
  const [period, setPeriod] = useState(defaultPeriod);
  return html`<section>
    <h1>My keys</h1>
    <p class="muted">To use a key from another project's compute nodes, open that project's Secrets and choose “Add API key”.</p>
    <${PeriodPicker} period=${period} onChange=${setPeriod} />
    <${ListState} load=${load} empty="You hold no keys. Request one on a project's API keys tab." />
    <ul class="tiles keys">${(load.data ?? []).map((k) => html`<li key=${k.id}><${MyKey} k=${k} project=${names[k.project_id]} period=${period} /></li>`)}</ul>
  </section>`;
}

function MyKey({ k, project, period }) {
  const usage = useLoad(() => get(`/v1/projects/${seg(k.project_id)}/keys/${seg(k.id)}/usage?${periodQuery(period)}&granularity=day`), [k.id, period.from, period.to]);
  const [token, setToken] = useState(/** @type {string | null} */ (null));
  const [copied, setCopied] = useState(false);
  const [rerolling, setRerolling] = useState(false);
  const [notice, setNotice] = useState('');
  const action = useAction();
  const fetchToken = async () => (await get(`/v1/me/keys/${seg(k.id)}/token`)).token;
  const reveal = () => action.run(async () => setToken(await fetchToken()));
  const copy = () => action.run(async () => {
    await navigator.clipboard.writeText(token ?? (await fetchToken()));
    setCopied(true);
  });
  const points = usage.data?.points ?? [];
  const total = points.reduce((a, p) => ({ requests: a.requests + p.requests, cost: a.cost + p.cost }), { requests: 0, cost: 0 });
  const refused = usage.data?.totals?.refused;
  return html`<article class=${`tile state-${k.status}`} aria-labelledby=${`key-${k.id}`}>
    <h2 id=${`key-${k.id}`}><a href=${keyPage(k.project_id, k.id)}>${k.template_name}</a></h2>
    <dl>
      <dt>Status</dt><dd><span class=${`badge ${k.status}`}>${k.status}</span></dd>
      <dt>Project</dt><dd><a href=${`/projects/${seg(k.project_id)}`}>${project ?? html`<code>${k.project_id}</code>`}</a></dd>
      <dt>Issued</dt><dd>${when(k.issued_at)}</dd>
      <dt>Expires</dt><dd>${k.expires_at ? when(k.expires_at) : 'never'}</dd>
      <dt>Last used</dt><dd>${when(k.last_used_at)}</dd>
      ${k.quota ? html`<dt>Quota</dt><dd>${quotaUse(k.quota)}, renews ${when(k.quota.resets_at)}</dd>` : null}
      ${ownLimitsWords(k.limits) ? html`<dt>Limits</dt><dd class="own-limits">${ownLimitsWords(k.limits)}</dd>` : null}
      ${oldTokenEnd(k) ? html`<dt>Old token</dt><dd>${oldTokenEnd(k)}</dd>` : null}
      <dt>In the period</dt><dd>${usage.data ? `${count(total.requests)} requests, cost ${money(total.cost)}` : '…'}</dd>
      <dt>Refused in the period</dt><dd class=${refused?.total ? 'refused-note' : ''}>${usage.data ? refusedWords(refused) : '…'}</dd>
      ${k.refused?.total && k.refused.total !== refused?.total ? html`<dt>Refused in the last 7 days</dt><dd class="refused-note">${refusedWords(k.refused)}</dd>` : null}
    </dl>
    ${usage.data && (total.requests || refused?.total) ? html`<${UsageChart} series=${usage.data} measure="requests" title=${k.template_name} />` : null}
    ${k.status === 'active' ? html`<div class="token">
      ${token ? html`<code class="revealed" aria-label="Key token">${token}</code>` : null}
      <div class="actions">
        ${token ? html`<button type="button" onClick=${() => setToken(null)}>Hide token</button>`
          : html`<button type="button" onClick=${reveal} disabled=${action.busy} aria-label=${`Reveal token of ${k.template_name}`}>Reveal token</button>`}
        <button type="button" onClick=${copy} disabled=${action.busy} aria-label=${`Copy token of ${k.template_name}`}>${copied ? 'Copied' : 'Copy token'}</button>
        <button type="button" onClick=${() => setRerolling(true)} aria-label=${`Reroll token of ${k.template_name}`}>Reroll token</button>
        <${RevokeOwn} k=${k} />
      </div>
      ${notice ? html`<p class="notice" role="status">${notice}</p>` : null}
    </div>` : null}
    ${k.status === 'active' ? html`<${NarrowedTokens} name=${k.template_name} base=${`/v1/me/keys/${seg(k.id)}/tokens`} />` : null}
    <${Reroll} open=${rerolling} projectId=${k.project_id} keyId=${k.id} who="Your key" onClose=${() => setRerolling(false)}
      onDone=${(/** @type {any} */ answer) => {
        setRerolling(false);
        setToken(answer.token ?? null);
        setNotice(`${rerollWords(answer)} The new token is shown above.`);
      }} />
    <${Problem} error=${action.error ?? usage.error} />
  </article>`;
}

function RevokeOwn({ k }) {
  const action = useAction();
  const [sure, setSure] = useState(false);
  return sure
    ? html`<span class="confirm-inline" role="group" aria-label="Confirm revocation">Revoke for good?
        <button type="button" class="danger" disabled=${action.busy} onClick=${() => action.run(async () => { await api('DELETE', `/v1/projects/${seg(k.project_id)}/keys/${seg(k.id)}`); })}>Yes, revoke</button>
        <button type="button" onClick=${() => setSure(false)}>No</button>
        <${Problem} error=${action.error} /></span>`
    : html`<button type="button" class="danger" onClick=${() => setSure(true)}>Revoke my key</button>`;
}
