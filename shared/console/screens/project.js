// @ts-check
/** One project: its name, and the sections the signed-in person may use, as tabs. Viewers see
 * the API keys; managers also Requests (with the number waiting), Issued keys, Secrets,
 * Settings, Webhooks and the Audit log. The project is read again on focus and after every change, so
 * the count follows decisions made here or elsewhere. */

import { useRef } from '../vendor/preact-hooks.js';
import { html, Problem, useLoad } from '../components.js';
import { firstPage, get, prefetch, seg } from '../api.js';
import lazy from '../vendor/preact-iso-lazy.js';
import { ApiKeys } from './api-keys.js';

// The API keys section comes with the project; the owner's sections when first opened.
const Requests = lazy(() => import('./requests.js').then((m) => m.Requests));
const IssuedKeys = lazy(() => import('./issued-keys.js').then((m) => m.IssuedKeys));
const Secrets = lazy(() => import('./secrets.js').then((m) => m.Secrets));
const Settings = lazy(() => import('./settings.js').then((m) => m.Settings));
const Audit = lazy(() => import('./audit.js').then((m) => m.Audit));
const Webhooks = lazy(() => import('./webhooks.js').then((m) => m.Webhooks));

const TABS = [
  { id: 'api-keys', title: 'API keys', screen: ApiKeys, manage: false },
  { id: 'requests', title: 'Requests', screen: Requests, manage: true },
  { id: 'issued-keys', title: 'Issued keys', screen: IssuedKeys, manage: true },
  { id: 'secrets', title: 'Secrets', screen: Secrets, manage: true },
  { id: 'settings', title: 'Roles, nodes and members', screen: Settings, manage: true },
  { id: 'webhooks', title: 'Webhooks', screen: Webhooks, manage: true },
  { id: 'audit', title: 'Audit log', screen: Audit, manage: true },
];

export function Project({ project: id, tab = 'api-keys' }) {
  const prefetched = useRef(/** @type {string | null} */ (null));
  const load = useLoad(() => {
    // The API keys section's templates are asked for at once, beside the project, not after it:
    // on the project's first load only (the section reads them again itself on later ones).
    if (tab === 'api-keys' && prefetched.current !== id) prefetch(firstPage(`/v1/projects/${seg(id)}/templates`));
    prefetched.current = id;
    return get(`/v1/projects/${seg(id)}`);
  }, [id]);
  if (load.loading && !load.data) return html`<p class="loading" role="status">Loading…</p>`;
  if (load.error) return html`<section><h1>Project</h1><${Problem} error=${load.error} /><p><a href="/">Back to your projects</a></p></section>`;
  const project = load.data;
  const manage = project.permissions.includes('project_manage');
  const tabs = TABS.filter((t) => manage || !t.manage);
  // A link may name a section the person may not use: it opens, and the API's answer says why.
  const current = TABS.find((t) => t.id === tab) ?? tabs[0];
  return html`<section>
    <p class="crumbs"><a href="/">Projects</a> › <span>${project.name}</span></p>
    <h1>${project.name}</h1>
    ${project.description ? html`<p class="muted">${project.description}</p>` : null}
    <nav class="tabs" aria-label="Project sections">
      ${tabs.map((t) => html`<a href=${`/projects/${seg(id)}/${t.id}`} aria-current=${t === current ? 'page' : undefined}>${t.title}${t.id === 'requests' && project.pending_requests
        ? html` <span class="count">${project.pending_requests}</span><span class="sr-only"> pending</span>` : null}</a>`)}
    </nav>
    <${current.screen} project=${project} manage=${manage} />
  </section>`;
}
