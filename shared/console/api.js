// @ts-check
/** The one client of keygate's /v1 API: the user token on every call, problem+json turned into
 * an ApiError that names the fields, lists read page by page with their cursors. */

import { token, signOut } from './auth.js';

export class ApiError extends Error {
  /** @param {number} status @param {any} problem */
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `the server answered ${status}`);
    this.status = status;
    this.title = problem?.title ?? '';
    /** @type {Record<string, string>} field → message, as the API names the field */
    this.fields = {};
    for (const e of problem?.errors ?? []) this.fields[e.field] = e.message;
    /** @type {string[]} names that already exist (import) */
    this.conflicts = problem?.conflicting_names ?? [];
  }
}

/** The event sent on `window` after every change made through the API, so that the lists on
 * the screen (and the pending count on the Requests tab) load again (`useLoad` listens): a
 * screen does not reload them itself after its own changes. */
export const CHANGED = 'keygate:changed';

/** Listeners told when the token is refused, so that the console asks to sign in again. */
const unauthenticated = new Set();
/** @param {() => void} f */
export function onUnauthenticated(f) {
  unauthenticated.add(f);
  return () => unauthenticated.delete(f);
}

/**
 * @param {string} method
 * @param {string} path  /v1/... with ids already in it
 * @param {any} [body]
 * @param {Record<string, string>} [headers]
 */
export async function api(method, path, body, headers = {}) {
  /** @type {Record<string, string>} */
  const h = { Accept: 'application/json', ...headers };
  const t = token();
  if (t) h.Authorization = `Bearer ${t}`;
  if (body !== undefined) h['Content-Type'] = 'application/json';
  let r;
  try {
    r = await fetch(path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, { detail: 'keygate cannot be reached; check that it is running and try again' });
  }
  const answer = r.status === 204 ? null : await r.json().catch(() => null);
  if (!r.ok) {
    if (r.status === 401) {
      signOut();
      unauthenticated.forEach((f) => f());
    }
    throw new ApiError(r.status, answer);
  }
  if (method !== 'GET') window.dispatchEvent(new Event(CHANGED));
  return answer;
}

/** A billing export as one CSV text: every page of keys, followed through its
 * `Link: <…>; rel="next"` header, with the header row once. */
export async function exportCsv(/** @type {string} */ path) {
  let text = '';
  for (let next = path; next;) {
    /** @type {Record<string, string>} */
    const h = { Accept: 'text/csv' };
    const t = token();
    if (t) h.Authorization = `Bearer ${t}`;
    const r = await fetch(next, { headers: h }).catch(() => null);
    if (!r) throw new ApiError(0, { detail: 'keygate cannot be reached; check that it is running and try again' });
    if (!r.ok) throw new ApiError(r.status, await r.json().catch(() => null));
    const body = await r.text();
    text += text ? body.slice(body.indexOf('\n') + 1) : body;
    next = /<([^>]+)>;\s*rel="next"/.exec(r.headers.get('Link') ?? '')?.[1];
  }
  return text;
}

/** Answers asked for ahead of the screen part that needs them (see `prefetch`), and when. */
const early = new Map();
/** How long an early answer may wait for its taker: after that it is asked for again. */
const EARLY_MS = 2000;

/** Starts a GET now for a part of the screen that will ask for it once it is drawn; that first
 * ask takes this answer instead of asking again. */
export function prefetch(/** @type {string} */ path) {
  if (early.has(path) && Date.now() - early.get(path).at < EARLY_MS) return;
  const answer = api('GET', path);
  answer.catch(() => {}); // a failure is reported to whoever takes the answer
  early.set(path, { answer, at: Date.now() });
}

export function get(/** @type {string} */ path) {
  const ahead = early.get(path);
  early.delete(path);
  if (ahead && Date.now() - ahead.at < EARLY_MS) return ahead.answer;
  return api('GET', path);
}

/** The path `all` asks for first, so that a screen can start that request early. */
export const firstPage = (/** @type {string} */ path) => `${path}${path.includes('?') ? '&' : '?'}limit=100`;

/** A path segment, encoded. */
export const seg = (/** @type {string} */ s) => encodeURIComponent(s);

/** Every page of a list (for short lists: roles, nodes, the caller's keys). */
export async function all(/** @type {string} */ path) {
  const items = [];
  let cursor = null;
  do {
    const page = await get(`${firstPage(path)}${cursor ? `&cursor=${seg(cursor)}` : ''}`);
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor);
  return items;
}

/** The console's address of a key's page (the owner's and the holder's). */
export const keyPage = (/** @type {string} */ project, /** @type {string} */ key) => `/projects/${seg(project)}/keys/${seg(key)}`;
