// @ts-check
/** The projects the signed-in person owns or belongs to, and registering a new one. */

import { useState } from '../vendor/preact-hooks.js';
import { useLocation } from '../vendor/preact-iso-router.js';
import { html, Input, ListState, Pager, Problem, day, useAction, useLoad, usePages } from '../components.js';
import { api, get, seg } from '../api.js';

export function Projects() {
  const pages = usePages();
  const load = useLoad(() => get(`/v1/me/projects?limit=20${pages.cursor ? `&cursor=${seg(pages.cursor)}` : ''}`), [pages.cursor]);
  return html`<section>
    <h1>Projects</h1>
    <div class="columns">
      <div>
        <h2>Your projects</h2>
        <${ListState} load=${load} empty="You belong to no project yet. Register one, or ask a project's owner to add you." />
        ${load.data?.items.length ? html`<ul class="cards">
          ${load.data.items.map((p) => html`<li class="card">
            <a href=${`/projects/${seg(p.id)}`}><strong>${p.name}</strong></a>
            <span class="muted">${p.description}</span>
            <span class="badge">${p.role}</span>
            ${p.pending_requests ? html`<a class="pending" href=${`/projects/${seg(p.id)}/requests`}>${p.pending_requests === 1 ? '1 request waits' : `${p.pending_requests} requests wait`} for your decision</a>` : null}
            <span class="muted">since ${day(p.created_at)}</span>
          </li>`)}
        </ul>` : null}
        <${Pager} pages=${pages} nextCursor=${load.data?.next_cursor} />
      </div>
      <${RegisterProject} />
    </div>
  </section>`;
}

function RegisterProject() {
  const { route } = useLocation();
  const [form, setForm] = useState({ name: '', description: '' });
  const action = useAction();
  const submit = (/** @type {Event} */ e) => {
    e.preventDefault();
    action.run(async () => {
      const p = await api('POST', '/v1/projects', form);
      route(`/projects/${seg(p.id)}/settings`);
    });
  };
  return html`<form class="panel" onSubmit=${submit} aria-labelledby="register-title">
    <h2 id="register-title">Register a project</h2>
    <p class="hint">You become its owner, with every permission.</p>
    <${Input} label="Name" field="name" error=${action.error} value=${form.name} onInput=${(v) => setForm({ ...form, name: v })} required />
    <${Input} label="Description" field="description" error=${action.error} value=${form.description} onInput=${(v) => setForm({ ...form, description: v })} />
    <${Problem} error=${action.error} fieldsShown=${['name', 'description']} />
    <button type="submit" class="primary" disabled=${action.busy}>Register project</button>
  </form>`;
}
