// @ts-check
/** What the holder and the owner can do to one key besides revoking it: give it a new token
 * (reroll, with a grace period for the old one) and, for the owner, set its own limits or
 * grant extra calls for the current period. */

import { useState } from './vendor/preact-hooks.js';
import { html, Dialog, FormActions, Input, Problem, RateModeSelect, count, quotaRule, rateRule, when, useAction } from './components.js';
import { api, seg } from './api.js';

/** The grace periods offered, in seconds (the API takes 0 to 7 days). */
const GRACE = [
  [0, 'stops at once'],
  [3600, 'works 1 more hour'],
  [86400, 'works 24 more hours'],
  [3 * 86400, 'works 3 more days'],
  [7 * 86400, 'works 7 more days'],
];

/** "The old token works until …" while a reroll's grace period lasts, else nothing. */
export function oldTokenEnd(/** @type {any} */ k, short = false) {
  if (!k.previous_until || new Date(k.previous_until).getTime() <= Date.now()) return null;
  const words = short ? 'old token works until' : 'The token before the last reroll works until';
  return html`<span class="grace">${words} ${when(k.previous_until)}</span>`;
}

/** Reroll with a chosen grace period and a confirmation; `onDone(answer)` gets the API's answer. */
export function Reroll({ open, projectId, keyId, who, onClose, onDone }) {
  const [grace, setGrace] = useState(86400);
  const action = useAction();
  const submit = (/** @type {Event} */ e) => {
    e.preventDefault();
    action.run(async () => onDone(await api('POST', `/v1/projects/${seg(projectId)}/keys/${seg(keyId)}/reroll`, { grace_seconds: grace })));
  };
  return html`<${Dialog} title="Give this key a new token?" open=${open} onClose=${() => { action.clear(); onClose(); }}>
    <form onSubmit=${submit}>
      <p>${who} gets a new token with the same quota, usage and expiry. The secrets it was imported into get the new token at once; programs that hold the old token anywhere else need the new one before the old one stops.</p>
      <fieldset class="choices">
        <legend>The old token</legend>
        ${GRACE.map(([seconds, words]) => html`<label key=${seconds}>
          <input type="radio" name="grace" value=${seconds} checked=${grace === seconds} onChange=${() => setGrace(Number(seconds))} /> ${words}${seconds === 86400 ? ' (default)' : ''}
        </label>`)}
      </fieldset>
      <${Problem} error=${action.error} />
      <${FormActions} onCancel=${onClose} label="Reroll key" busy=${action.busy} danger=${true} />
    </form>
  <//>`;
}

/** In words, what a reroll did: "New token made; 2 imported secrets updated; the old token works until …". */
export function rerollWords(/** @type {any} */ answer) {
  const secrets = answer.secrets.length === 1 ? '1 imported secret now holds it' : `${count(answer.secrets.length)} imported secrets now hold it`;
  const old = answer.key.previous_until ? `the old token works until ${when(answer.key.previous_until)}` : 'the old token stopped working';
  return `New token made for ${answer.key.user_email}'s key; ${secrets}; ${old}.`;
}

/** The owner's limits for one key: its own quota and rate limit over the template's, and extra
 * calls for the current period. Empty fields keep the template's. */
export function KeyLimits({ row, base, onClose, onDone }) {
  const own = row?.limits ?? {};
  const [requests, setRequests] = useState(own.quota ? String(own.quota.requests) : '');
  const [per, setPer] = useState(own.quota?.per ?? row?.quota?.per ?? 'day');
  const [perSecond, setPerSecond] = useState(own.rate_limit ? String(own.rate_limit.per_second) : '');
  const [burst, setBurst] = useState(own.rate_limit ? String(own.rate_limit.burst) : '');
  const [mode, setMode] = useState(own.rate_limit?.mode ?? 'local');
  const [topUp, setTopUp] = useState('');
  const action = useAction();
  const submit = (/** @type {Event} */ e) => {
    e.preventDefault();
    /** @type {any} */
    const patch = {
      quota: requests.trim() ? { requests: Number(requests), per } : null,
      rate_limit: perSecond.trim() || burst.trim() ? { per_second: Number(perSecond), burst: Number(burst || perSecond), mode } : null,
    };
    if (topUp.trim()) patch.top_up = Number(topUp);
    action.run(async () => onDone(await api('PATCH', `${base}/keys/${seg(row.key_id)}`, patch)));
  };
  if (!row) return html`<${Dialog} title="Limits of this key" open=${false} onClose=${onClose} />`;
  return html`<${Dialog} title=${`Limits of ${row.user_email}'s key for ${row.template_name}`} open=${true} onClose=${() => { action.clear(); onClose(); }}>
    <form onSubmit=${submit}>
      <p class="muted">Leave a limit empty to use the template's. In use now: quota ${row.quota ? `${count(row.quota.requests)} calls per ${row.quota.per}` : 'none'}${own.quota ? " (this key's own)" : ''}; rate limit ${own.rate_limit ? `${rateRule(own.rate_limit)} (this key's own)` : "the template's"}.</p>
      <div class="limit-row">
        <${Input} label="Quota for this key (calls)" field="quota.requests" error=${action.error} value=${requests} onInput=${setRequests} type="number" min="1" inputmode="numeric" />
        <div class="input"><label for="limit-per">per</label>
          <select id="limit-per" value=${per} onChange=${(e) => setPer(e.currentTarget.value)}>
            <option value="day">UTC day</option><option value="month">UTC month</option>
          </select></div>
      </div>
      <div class="limit-row">
        <${Input} label="Rate limit (calls per second)" field="rate_limit.per_second" error=${action.error} value=${perSecond} onInput=${setPerSecond} type="number" min="1" inputmode="numeric" />
        <${Input} label="Burst (calls at once)" field="rate_limit.burst" error=${action.error} value=${burst} onInput=${setBurst} type="number" min="1" inputmode="numeric" />
      </div>
      <${RateModeSelect} value=${mode} onChange=${setMode} />
      <${Input} label=${`Extra calls for the current period${row.quota?.top_up ? ` (${count(row.quota.top_up)} granted so far)` : ''}`} field="top_up" error=${action.error} value=${topUp} onInput=${setTopUp} type="number" min="1" inputmode="numeric" />
      <${Problem} error=${action.error} fieldsShown=${['quota.requests', 'rate_limit.per_second', 'rate_limit.burst', 'top_up']} />
      <${FormActions} onCancel=${onClose} label="Save limits" busy=${action.busy} />
    </form>
  <//>`;
}

/** The key's own limits in words, for the holder and the owner; null when it has none. */
export function ownLimitsWords(/** @type {any} */ limits) {
  if (!limits || (!limits.quota && !limits.rate_limit)) return null;
  const parts = [];
  if (limits.quota) parts.push(`quota ${quotaRule(limits.quota)}`);
  if (limits.rate_limit) parts.push(`rate ${rateRule(limits.rate_limit)}`);
  return `Set for this key by the project's owner: ${parts.join('; ')}`;
}
