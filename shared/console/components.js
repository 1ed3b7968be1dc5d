// @ts-check
/** The pieces every screen uses: htm bound to Preact, loading with its states, problems in
 * words, a dialog, a confirmation, paging, the period picker. Text from data is always passed
 * as a child or an attribute, so Preact renders it as text, never as markup. */

import { h } from './vendor/preact.js';
import { useCallback, useEffect, useId, useRef, useState } from './vendor/preact-hooks.js';
import htm from './vendor/htm.js';
import { CHANGED } from './api.js';

export const html = htm.bind(h);

/** Loads with `load` whenever `deps` change, and again when the window regains focus or the
 * console changed something (see `api`), keeping what it shows meanwhile: a list is never older
 * than the last look at it. Answers {data, error, loading, reload}. */
export function useLoad(/** @type {() => Promise<any>} */ load, /** @type {any[]} */ deps) {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true, error: null }));
    load().then(
      (data) => live && setState({ data, error: null, loading: false }),
      (error) => live && setState({ data: null, error, loading: false }),
    );
    return () => {
      live = false;
    };
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  useRefresh(reload);
  return { ...state, reload };
}

/** Calls `f` when the page becomes visible again or the window regains focus (at most once a
 * second for both), and when the console changed something through the API. */
export function useRefresh(/** @type {() => void} */ f) {
  useEffect(() => {
    let last = 0;
    const again = () => {
      if (document.visibilityState !== 'visible' || Date.now() - last < 1000) return;
      last = Date.now();
      f();
    };
    window.addEventListener('focus', again);
    document.addEventListener('visibilitychange', again);
    window.addEventListener(CHANGED, f);
    return () => {
      window.removeEventListener('focus', again);
      document.removeEventListener('visibilitychange', again);
      window.removeEventListener(CHANGED, f);
    };
  }, [f]);
}


/** Calls `f` every `ms` while `on` and the page is visible: a gentle poll for a state that
 * someone else will change (a pending request). */
export function usePoll(/** @type {() => void} */ f, /** @type {boolean} */ on, ms = 15_000) {
  useEffect(() => {
    if (!on) return undefined;
    const timer = setInterval(() => { if (document.visibilityState === 'visible') f(); }, ms);
    return () => clearInterval(timer);
  }, [f, on, ms]);
}

/** Moves focus to the element with `id` (a tile, a row) after an action on it, once no dialog
 * is open and the element is drawn; and again, for a moment, if the redrawn list removed what
 * had focus (the button pressed), which would leave it on the page's body. Keyboard and
 * screen-reader users stay where things happened. */
export function focusSoon(/** @type {string} */ id) {
  const until = Date.now() + 1500;
  let focused = false;
  const attempt = () => {
    const el = document.getElementById(id);
    const lost = !document.activeElement || document.activeElement === document.body;
    if (el && !document.querySelector('dialog[open]') && (!focused || lost)) {
      el.focus();
      focused = true;
    }
    if (Date.now() < until) setTimeout(attempt, 50);
  };
  setTimeout(attempt, 0);
}

/** A problem the API answered, in words; `fields` are shown by the inputs they belong to. */
export function Problem({ error, fieldsShown = [] }) {
  if (!error) return null;
  const named = Object.entries(error.fields ?? {});
  const rest = named.filter(([f]) => !fieldsShown.includes(f));
  // When every field's message stands by its field, the summary only points there.
  const detail = named.length && !rest.length ? 'See the marked fields above.' : error.message;
  return html`<div class="problem" role="alert">
    <strong>${problemTitle(error)}</strong>
    ${detail ? html`<span> ${plain(detail)}</span>` : null}
    ${rest.length ? html`<ul>${rest.map(([f, m]) => html`<li><code>${f}</code>: ${plain(m)}</li>`)}</ul>` : null}
    ${error.conflicts?.length ? html`<p>Already taken: ${error.conflicts.map((n) => html`<code class="conflict">${n}</code> `)}</p>` : null}
  </div>`;
}

function problemTitle(error) {
  switch (error.status) {
    case 0: return 'Not reachable.';
    case 403: return 'You may not do this here.';
    case 404: return 'Not found.';
    case 409: return 'This cannot be done as things are now.';
    case 412: return 'Changed meanwhile.';
    case 422: return 'Please correct the form.';
    case 503: return 'Temporarily unavailable.';
    default: return error.title ? `${error.title}.` : 'Something went wrong.';
  }
}

/** What each permission lets a key or a member do, in words. */
export const PERMISSION_WORDS = {
  project_view: 'see the project',
  project_edit: 'edit the project',
  project_manage: 'manage the project (its keys, requests, members and secrets)',
  graph_ui: 'open the graph editor',
  graph_view: 'see graphs',
  graph_edit: 'edit graphs',
  code_view: 'see code',
  code_edit: 'edit code',
  interface_manage: 'manage interfaces',
  package_view: 'see packages',
  package_create: 'create packages',
  package_delete: 'delete packages',
};

/** An API message with its permission ids in words: "this needs the project_manage permission
 * on the project" reads "this needs the permission to manage the project (…)". */
export function plain(/** @type {string} */ message) {
  return String(message ?? '').replace(/\bthe (\w+) permission\b/g,
    (whole, id) => (PERMISSION_WORDS[id] ? `the permission to ${PERMISSION_WORDS[id]}` : whole));
}

/** The message for one input, from the problem's `errors[{field, message}]`. */
export function FieldError({ error, field, id }) {
  const message = error?.fields?.[field];
  return message ? html`<span class="field-error" id=${id} role="alert">${message}</span>` : null;
}

/** A labelled input whose problem, when the API names it, shows beside it. */
export function Input({ label, field, error, value, onInput, type = 'text', required = false, 'aria-describedby': hint = '', ...rest }) {
  const id = useId();
  const message = error?.fields?.[field];
  const described = [message ? `${id}-error` : '', hint].filter(Boolean).join(' ');
  return html`<div class="input">
    <label for=${id}>${label}</label>
    <input id=${id} type=${type} value=${value} required=${required} aria-invalid=${message ? 'true' : undefined}
      aria-describedby=${described || undefined}
      onInput=${(e) => onInput(e.currentTarget.value)} ...${rest} />
    <${FieldError} error=${error} field=${field} id=${`${id}-error`} />
  </div>`;
}

/** A list's three states before its rows: loading, failed, empty. */
export function ListState({ load, empty }) {
  if (load.loading && !load.data) return html`<p class="loading" role="status">Loading…</p>`;
  if (load.error) return html`<${Problem} error=${load.error} />`;
  if (load.data && (load.data.items ?? load.data).length === 0) return html`<p class="empty">${empty}</p>`;
  return null;
}

/** A modal dialog (the browser's own <dialog>: focus kept inside, Escape closes). */
export function Dialog({ title, open, onClose, children }) {
  const ref = useRef(/** @type {HTMLDialogElement | null} */ (null));
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (open && !d.open) d.showModal();
    if (!open && d.open) d.close();
  }, [open]);
  return html`<dialog ref=${ref} aria-label=${title} onClose=${onClose} onCancel=${onClose}>
    <h2>${title}</h2>
    ${open ? children : null}
  </dialog>`;
}

/** The end of a form: Cancel, and the submit button named for what it does. */
export function FormActions({ onCancel, label, busy, disabled = false, danger = false }) {
  return html`<div class="actions">
    <button type="button" onClick=${onCancel}>Cancel</button>
    <button type="submit" class=${danger ? 'danger' : 'primary'} disabled=${busy || disabled}>${label}</button>
  </div>`;
}

/** "Are you sure?" with the action's own words on its button. */
export function Confirm({ open, title, text, action, onConfirm, onClose, busy, error }) {
  return html`<${Dialog} title=${title} open=${open} onClose=${onClose}>
    <p>${text}</p>
    <${Problem} error=${error} />
    <div class="actions">
      <button type="button" onClick=${onClose}>Cancel</button>
      <button type="button" class="danger" disabled=${busy} onClick=${onConfirm}>${action}</button>
    </div>
  <//>`;
}

/** Previous / next over cursor pages: the cursors seen so far are the way back. */
export function usePages() {
  const [cursors, setCursors] = useState(/** @type {(string|null)[]} */ ([null]));
  const cursor = cursors[cursors.length - 1];
  return {
    cursor,
    page: cursors.length,
    next: (/** @type {string} */ c) => setCursors([...cursors, c]),
    previous: () => setCursors(cursors.slice(0, -1)),
    reset: () => setCursors([null]),
  };
}

export function Pager({ pages, nextCursor }) {
  if (pages.page === 1 && !nextCursor) return null;
  return html`<nav class="pager" aria-label="Pages">
    <button type="button" disabled=${pages.page === 1} onClick=${pages.previous}>‹ Previous</button>
    <span>Page ${pages.page}</span>
    <button type="button" disabled=${!nextCursor} onClick=${() => pages.next(nextCursor)}>Next ›</button>
  </nav>`;
}

// Formatters are built once, on first use: building an Intl formatter costs far more than using
// one (the first loads the locale's data, tens of milliseconds), and a screen formats hundreds.
const once = (/** @type {() => any} */ make) => { let f; return () => (f ??= make()); };
const dateTime = once(() => new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' }));
const dateOnly = once(() => new Intl.DateTimeFormat(undefined, { dateStyle: 'medium' }));

const dateShort = once(() => new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' }));
const dateShortYear = once(() => new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short', year: 'numeric' }));

/** A date short enough for a table's cell: "4 Dec, 14:02" this year, "4 Dec 2025" before;
 * `when` gives the whole of it (for a title). */
export const short = (/** @type {string | null | undefined} */ t) => {
  if (!t) return '—';
  const d = new Date(t);
  return d.getFullYear() === new Date().getFullYear() ? dateShort().format(d) : dateShortYear().format(d);
};

/** A date as people read it, in their time zone; "—" for none. */
export const when = (/** @type {string | null | undefined} */ t) => (t ? dateTime().format(new Date(t)) : '—');
export const day = (/** @type {string | null | undefined} */ t) => (t ? dateOnly().format(new Date(t)) : '—');

/** A count as people read it ("1,234"; the console is in English). Integers only, grouped by
 * hand: Intl's number formatter would load the locale's data for the price on a tile. */
export const count = (/** @type {number} */ n) => String(Math.trunc(n ?? 0)).replace(/\B(?=(\d{3})+(?!\d))/g, ',');

/** The deployment's currency (`config.json`), set once before the first screen is drawn. */
let currency = { code: 'EUR', exponent: 2 };
const moneyFormat = once(() => new Intl.NumberFormat('en', {
  style: 'currency', currency: currency.code, minimumFractionDigits: currency.exponent, maximumFractionDigits: currency.exponent,
}));
export function setCurrency(/** @type {{code: string, exponent: number} | undefined} */ c) {
  if (c?.code) currency = c;
}
export const currencyCode = () => currency.code;
export const currencyExponent = () => currency.exponent;

/** An amount in minor units (the API's integers) as money: 21 → "€0.21" (EUR, 2 places). */
export const money = (/** @type {number} */ minor) => moneyFormat().format((minor ?? 0) / 10 ** currency.exponent);

/** A template's quota as a rule: "1,000 calls per day (UTC)". */
export const quotaRule = (/** @type {any} */ q) => (q ? `${count(q.requests)} calls per ${q.per} (UTC)` : 'none');

/** A template's rate limit as a rule: "10 calls per second, bursts of 20 (strict)". */
export const rateRule = (/** @type {any} */ r) =>
  (r ? `${count(r.per_second)} calls per second, bursts of ${count(r.burst)}${r.mode === 'strict' ? ' (strict)' : ''}` : 'none');

/** What each rate-limit mode means and costs, in one sentence each (the API's `mode`). */
export const RATE_MODES = {
  local: 'Each gateway instance counts on its own, in memory, at no cost per call; with several instances running, a key can get this rate from each of them.',
  strict: 'Exact across every gateway instance: decided in the database, for one more database write per call when the key has no quota (none more with a quota).',
};

/** The choice of a rate limit's mode, with the sentence that explains the one chosen. */
export function RateModeSelect({ value, onChange }) {
  const id = useId();
  return html`<div class="input rate-mode">
    <label for=${id}>Rate limit is decided</label>
    <select id=${id} value=${value} aria-describedby=${`${id}-means`} onChange=${(/** @type {any} */ e) => onChange(e.currentTarget.value)}>
      <option value="local">per gateway instance (local)</option>
      <option value="strict">exactly, across all instances (strict)</option>
    </select>
    <p class="hint" id=${`${id}-means`}>${RATE_MODES[value === 'strict' ? 'strict' : 'local']}</p>
  </div>`;
}

/** A key's use of its quota in the current period: "40 of 50 today (UTC)", "40 of 50 + 10
 * extra today (UTC) (this key's own)". */
export const quotaUse = (/** @type {any} */ q) => {
  if (!q) return '—';
  const allowed = q.top_up ? `${count(q.requests)} + ${count(q.top_up)} extra` : count(q.requests);
  return `${count(q.used)} of ${allowed} ${q.per === 'day' ? 'today' : 'this month'} (UTC)${q.own ? " (this key's own)" : ''}`;
};

/** The same, short, for a table's cell: "40 of 50 today", "40 of 60 this month". */
export const quotaShort = (/** @type {any} */ q) =>
  `${count(q.used)} of ${count(q.requests + (q.top_up ?? 0))} ${q.per === 'day' ? 'today' : 'this month'}`;

/** Why calls were refused, in words (the API's outcomes, `refused` of a usage answer). */
const REFUSED = {
  revoked: 'revoked key',
  rerolled: 'old token after a reroll',
  expired: 'expired key',
  not_yet_valid: 'not valid yet',
  permission: 'missing permission',
  quota: 'over quota',
  rate_limit: 'over rate limit',
  key_not_usable: 'key no longer matches its template',
};

/** Refused calls by outcome as words: "12 (10 revoked key, 2 over quota)", or "none". */
export function refusedWords(/** @type {any} */ refused) {
  if (!refused?.total) return 'none';
  const parts = Object.entries(REFUSED).filter(([k]) => refused[k] > 0).map(([k, words]) => `${count(refused[k])} ${words}`);
  return `${count(refused.total)} (${parts.join(', ')})`;
}

/** Days from now until `t` (rounded up), for keys that expire soon. */
export const daysUntil = (/** @type {string} */ t) => Math.ceil((new Date(t).getTime() - Date.now()) / 86400e3);

/** "1 day", "3 days". */
export const days = (/** @type {number} */ n) => `${count(n)} ${n === 1 ? 'day' : 'days'}`;

/** yyyy-mm-dd of a Date, in UTC (the API's periods are UTC days). */
export const isoDay = (/** @type {Date} */ d) => d.toISOString().slice(0, 10);

/** From / to dates; the period runs from the start of `from` to the end of `to` (UTC). A
 * period that ends before it starts is refused here, once, beside the date it concerns. */
export function PeriodPicker({ period, onChange }) {
  const [from, setFrom] = useState(period.from);
  const [to, setTo] = useState(period.to);
  const [error, setError] = useState(/** @type {any} */ (null));
  const submit = (/** @type {Event} */ e) => {
    e.preventDefault();
    if (to < from) {
      setError({ fields: { to: `must be on or after the start (${day(from)})` } });
      return;
    }
    setError(null);
    onChange({ from, to });
  };
  return html`<form class="period" onSubmit=${submit} aria-label="Period">
    <${Input} label="From" type="date" field="from" error=${error} value=${from} onInput=${setFrom} required />
    <${Input} label="To" type="date" field="to" error=${error} value=${to} onInput=${setTo} required />
    <button type="submit">Show period</button>
  </form>`;
}

/** Whole days of a period (both ends counted). */
export const periodDays = (/** @type {{from: string, to: string}} */ p) =>
  Math.round((new Date(`${p.to}T00:00:00Z`).getTime() - new Date(`${p.from}T00:00:00Z`).getTime()) / 86400e3) + 1;

/** The last 30 days up to today, as the API's default. */
export function defaultPeriod() {
  const to = new Date();
  const from = new Date(to.getTime() - 29 * 86400e3);
  return { from: isoDay(from), to: isoDay(to) };
}

/** A period as the API's query: `to` is the day after, so that the last day counts whole. */
export function periodQuery(/** @type {{from: string, to: string}} */ p) {
  const end = new Date(`${p.to}T00:00:00Z`);
  const now = new Date();
  const to = new Date(Math.min(end.getTime() + 86400e3, now.getTime()));
  return `from=${p.from}&to=${encodeURIComponent(to.toISOString().replace(/\.\d+Z$/, 'Z'))}`;
}

/** Runs an action, keeping its busy flag and the problem it ended with. */
export function useAction() {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(/** @type {any} */ (null));
  const run = useCallback(async (/** @type {() => Promise<any>} */ f) => {
    setBusy(true);
    setError(null);
    try {
      return await f();
    } catch (e) {
      setError(e);
      return undefined;
    } finally {
      setBusy(false);
    }
  }, []);
  return { busy, error, run, clear: () => setError(null) };
}
