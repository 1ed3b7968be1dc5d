// @ts-check
/** The owner's set-up of a project: roles (permissions as checkboxes), nodes and members. */

import { useState } from '../vendor/preact-hooks.js';
import { html, Input, ListState, Problem, useAction, useLoad } from '../components.js';
import { all, api, seg } from '../api.js';

const PERMISSIONS = ['project_view', 'project_edit', 'project_manage', 'graph_ui', 'graph_view', 'graph_edit',
  'code_view', 'code_edit', 'interface_manage', 'package_view', 'package_create', 'package_delete'];

export function Settings({ project }) {
  const base = `/v1/projects/${seg(project.id)}`;
  const roles = useLoad(() => all(`${base}/roles`), [project.id]);
  const nodes = useLoad(() => all(`${base}/nodes`), [project.id]);
  const members = useLoad(() => all(`${base}/members`), [project.id]);
  return html`<div class="settings">
    <${Roles} base=${base} load=${roles} />
    <${Nodes} base=${base} load=${nodes} />
    <${Members} base=${base} load=${members} roles=${roles.data ?? []} ownerId=${project.owner_id} />
  </div>`;
}

function Roles({ base, load }) {
  const empty = { name: '', description: '', permissions: /** @type {string[]} */ (['project_view']), public: false };
  const [form, setForm] = useState(empty);
  const action = useAction();
  const edit = (/** @type {any} */ r) => setForm({ name: r.name, description: r.description, permissions: [...r.permissions], public: r.public });
  const submit = (/** @type {Event} */ e) => {
    e.preventDefault();
    action.run(async () => {
      await api('PUT', `${base}/roles/${seg(form.name)}`, { description: form.description, permissions: form.permissions, public: form.public });
      setForm(empty);
    });
  };
  return html`<section class="panel" aria-labelledby="roles-title">
    <h2 id="roles-title">Roles</h2>
    <${ListState} load=${load} empty="No roles." />
    ${load.data?.length ? html`<table>
      <thead><tr><th scope="col">Role</th><th scope="col">Permissions</th><th scope="col">Public</th><th scope="col">Actions</th></tr></thead>
      <tbody>${load.data.map((r) => html`<tr key=${r.name}>
        <td><strong>${r.name}</strong>${r.description ? html`<br /><small class="muted">${r.description}</small>` : null}</td>
        <td>${r.permissions.map((p) => html`<span class="perm">${p}</span> `)}</td>
        <td>${r.public ? 'yes: everyone has it' : 'no'}</td>
        <td>${r.name === 'owner' ? null : html`<button type="button" class="small" onClick=${() => edit(r)} aria-label=${`Edit role ${r.name}`}>Edit</button>`}</td>
      </tr>`)}</tbody>
    </table>` : null}
    <form onSubmit=${submit} aria-label="Define a role">
      <h3>Define a role</h3>
      <${Input} label="Role name" field="role" error=${action.error} value=${form.name} onInput=${(v) => setForm({ ...form, name: v })} required />
      <${Input} label="Description" field="description" error=${action.error} value=${form.description} onInput=${(v) => setForm({ ...form, description: v })} />
      <fieldset class="checks grid">
        <legend>Permissions</legend>
        ${PERMISSIONS.map((p) => html`<label>
          <input type="checkbox" checked=${form.permissions.includes(p)}
            onChange=${(e) => setForm({ ...form, permissions: e.currentTarget.checked ? [...form.permissions, p] : form.permissions.filter((x) => x !== p) })} />
          ${p}
        </label>`)}
      </fieldset>
      <label class="check"><input type="checkbox" checked=${form.public} onChange=${(e) => setForm({ ...form, public: e.currentTarget.checked })} /> Public: everyone has this role</label>
      <${Problem} error=${action.error} fieldsShown=${['role', 'description']} />
      <button type="submit" class="primary" disabled=${action.busy}>Save role</button>
    </form>
  </section>`;
}

function Nodes({ base, load }) {
  const [form, setForm] = useState({ id: '', name: '' });
  const action = useAction();
  const submit = (/** @type {Event} */ e) => {
    e.preventDefault();
    action.run(async () => {
      await api('PUT', `${base}/nodes/${seg(form.id)}`, { name: form.name });
      setForm({ id: '', name: '' });
    });
  };
  return html`<section class="panel" aria-labelledby="nodes-title">
    <h2 id="nodes-title">Nodes</h2>
    <${ListState} load=${load} empty="No nodes yet." />
    ${load.data?.length ? html`<ul class="plain">${load.data.map((n) => html`<li key=${n.id}><strong>${n.name}</strong> <code>${n.id}</code></li>`)}</ul>` : null}
    <form onSubmit=${submit} aria-label="Register a node">
      <h3>Register a node</h3>
      <${Input} label="Node id" field="node" error=${action.error} value=${form.id} onInput=${(v) => setForm({ ...form, id: v })} required />
      <${Input} label="Node name" field="name" error=${action.error} value=${form.name} onInput=${(v) => setForm({ ...form, name: v })} required />
      <${Problem} error=${action.error} fieldsShown=${['node', 'name']} />
      <button type="submit" class="primary" disabled=${action.busy}>Save node</button>
    </form>
  </section>`;
}

function Members({ base, load, roles, ownerId }) {
  const [form, setForm] = useState({ user: '', email: '', role: '' });
  const action = useAction();
  const submit = (/** @type {Event} */ e) => {
    e.preventDefault();
    action.run(async () => {
      await api('PUT', `${base}/members/${seg(form.user)}`, { email: form.email, role: form.role });
      setForm({ user: '', email: '', role: '' });
    });
  };
  return html`<section class="panel" aria-labelledby="members-title">
    <h2 id="members-title">Members</h2>
    <${ListState} load=${load} empty="No members." />
    ${load.data?.length ? html`<table>
      <thead><tr><th scope="col">User</th><th scope="col">E-mail</th><th scope="col">Role</th></tr></thead>
      <tbody>${load.data.map((m) => html`<tr key=${m.user_id}><td>${m.user_id}${m.user_id === ownerId ? ' (owner)' : ''}</td><td>${m.email}</td><td>${m.role}</td></tr>`)}</tbody>
    </table>` : null}
    <form onSubmit=${submit} aria-label="Add or change a member">
      <h3>Add or change a member</h3>
      <${Input} label="User id" field="user" error=${action.error} value=${form.user} onInput=${(v) => setForm({ ...form, user: v })} required />
      <${Input} label="Member e-mail" field="email" type="email" error=${action.error} value=${form.email} onInput=${(v) => setForm({ ...form, email: v })} required />
      <div class="input">
        <label for="member-role">Member role</label>
        <select id="member-role" value=${form.role} required onChange=${(e) => setForm({ ...form, role: e.currentTarget.value })}>
          <option value="">Choose a role…</option>
          ${roles.map((r) => html`<option value=${r.name}>${r.name}</option>`)}
        </select>
      </div>
      <${Problem} error=${action.error} fieldsShown=${['user', 'email']} />
      <button type="submit" class="primary" disabled=${action.busy}>Save member</button>
    </form>
  </section>`;
}
