// @ts-check
/** A project's secrets: names, hidden values with reveal, node access; and the seeds' "add API
 * key" menu, which imports one of the person's keys as secrets (`<prefix>_token` and one per
 * information field), granted to the nodes they choose. */

import { useState } from '../vendor/preact-hooks.js';
import { html, FormActions, Confirm, Dialog, Input, ListState, Pager, Problem, when, useAction, useLoad, usePages } from '../components.js';
import { all, api, get, seg } from '../api.js';

export function Secrets({ project }) {
  const base = `/v1/projects/${seg(project.id)}`;
  const pages = usePages();
  const load = useLoad(() => get(`${base}/secrets?limit=50${pages.cursor ? `&cursor=${seg(pages.cursor)}` : ''}`), [project.id, pages.cursor]);
  const nodes = useLoad(() => all(`${base}/nodes`), [project.id]);
  // Where an imported secret came from, by name: the person's own keys and their projects.
  const imported = !!load.data?.items.some((/** @type {any} */ s) => s.origin);
  const origins = useLoad(() => (imported ? Promise.all([all('/v1/me/keys'), all('/v1/me/projects')]) : Promise.resolve([[], []])), [imported]);
  /** "Forecast API key of Weather" for a key of the person's, else null (another member's key). */
  const originName = (/** @type {string} */ keyId) => {
    const [keys, projects] = origins.data || [[], []];
    const key = keys.find((/** @type {any} */ k) => k.id === keyId);
    if (!key) return null;
    const of = projects.find((/** @type {any} */ p) => p.id === key.project_id);
    return `${key.template_name} key${of ? ` of ${of.name}` : ''}`;
  };
  const [revealed, setRevealed] = useState(/** @type {Record<string, string>} */ ({}));
  const [importing, setImporting] = useState(false);
  const [editing, setEditing] = useState(/** @type {any} */ (null));
  const [deleting, setDeleting] = useState(/** @type {any} */ (null));
  const [notice, setNotice] = useState('');
  const reveal = useAction();
  const values = async () => Object.fromEntries((await all(`${base}/secrets?reveal=true`)).map((s) => [s.name, s.value]));
  const show = (/** @type {string} */ name) => reveal.run(async () => setRevealed({ ...revealed, [name]: (await values())[name] ?? '' }));
  const nodeName = (/** @type {string} */ id) => (nodes.data ?? []).find((n) => n.id === id)?.name ?? id;
  const [copied, setCopied] = useState('');
  const copy = (/** @type {string} */ name) => reveal.run(async () => {
    await navigator.clipboard.writeText(revealed[name]);
    setCopied(name);
  });
  return html`<div>
    <div class="toolbar">
      <h2>Secrets</h2>
      <button type="button" class="primary" onClick=${() => setImporting(true)} aria-haspopup="dialog">+ Add API key</button>
    </div>
    ${notice ? html`<p class="notice" role="status">${notice}</p>` : null}
    <${Problem} error=${reveal.error} />
    <${ListState} load=${load} empty="No secrets yet. “Add API key” imports one of your keys with its information." />
    ${load.data?.items.length ? html`<table>
      <caption class="sr-only">Secrets of ${project.name}</caption>
      <thead><tr><th scope="col">Name</th><th scope="col">Value</th><th scope="col">Nodes</th><th scope="col">Origin</th><th scope="col">Updated</th><th scope="col">Actions</th></tr></thead>
      <tbody>${load.data.items.map((s) => html`<tr key=${s.name}>
        <td><code>${s.name}</code>${s.description ? html`<br /><small class="muted">${s.description}</small>` : null}</td>
        <td class="secret">${s.name in revealed
          ? html`<code class="revealed">${revealed[s.name]}</code> <button type="button" class="small" onClick=${() => copy(s.name)} aria-label=${`Copy ${s.name}`}>${copied === s.name ? 'Copied' : 'Copy'}</button>
            <button type="button" class="small" onClick=${() => { const r = { ...revealed }; delete r[s.name]; setRevealed(r); }} aria-label=${`Hide ${s.name}`}>Hide</button>`
          : html`<span aria-label="hidden value">••••••</span> <button type="button" class="small" onClick=${() => show(s.name)} aria-label=${`Reveal ${s.name}`}>Reveal</button>`}</td>
        <td>${s.nodes.length ? s.nodes.map((n) => html`<span class="badge">${nodeName(n)}</span> `) : html`<span class="muted">no node</span>`}</td>
        <td>${!s.origin ? 'set by hand' : originName(s.origin.key_id) || html`API key <code>${s.origin.key_id}</code>`}</td>
        <td>${when(s.updated_at)}</td>
        <td class="actions">
          <button type="button" class="small" onClick=${() => setEditing(s)} aria-label=${`Nodes of ${s.name}`}>Nodes…</button>
          <button type="button" class="small danger" onClick=${() => setDeleting(s)} aria-label=${`Delete ${s.name}`}>Delete</button>
        </td>
      </tr>`)}</tbody>
    </table>` : null}
    <${Pager} pages=${pages} nextCursor=${load.data?.next_cursor} />
    <${ImportKey} open=${importing} base=${base} nodes=${nodes.data ?? []} onClose=${() => setImporting(false)}
      onDone=${(/** @type {any} */ answer) => { setImporting(false); setNotice(`Imported ${answer.secrets.length === 1 ? '1 secret' : `${answer.secrets.length} secrets`}: ${answer.secrets.map((s) => s.name).join(', ')}.`); }} />
    <${NodeAccess} secret=${editing} base=${base} nodes=${nodes.data ?? []} values=${values} onClose=${() => setEditing(null)}
      onDone=${() => setEditing(null)} />
    <${DeleteSecret} secret=${deleting} base=${base} onClose=${() => setDeleting(null)} onDone=${() => setDeleting(null)} />
  </div>`;
}

function NodePicker({ nodes, chosen, onChange, legend }) {
  return html`<fieldset class="checks">
    <legend>${legend}</legend>
    ${nodes.length ? nodes.map((n) => html`<label>
      <input type="checkbox" checked=${chosen.includes(n.id)}
        onChange=${(e) => onChange(e.currentTarget.checked ? [...chosen, n.id] : chosen.filter((c) => c !== n.id))} />
      ${n.name} <small class="muted">(${n.id})</small>
    </label>`) : html`<p class="muted">This project has no nodes yet (Roles, nodes and members).</p>`}
  </fieldset>`;
}

/** The "add API key" menu: pick a key, a prefix, see the secrets it makes, choose the nodes. */
function ImportKey({ open, base, nodes, onClose, onDone }) {
  const keys = useLoad(() => (open ? all('/v1/me/keys') : Promise.resolve([])), [open]);
  const projects = useLoad(() => (open ? all('/v1/me/projects') : Promise.resolve([])), [open]);
  const projectName = (/** @type {string} */ id) => (projects.data ?? []).find((p) => p.id === id)?.name;
  const active = (keys.data ?? []).filter((k) => k.status === 'active');
  const [form, setForm] = useState({ key_id: '', prefix: 'project_server', nodes: /** @type {string[]} */ ([]), overwrite: false });
  const key = active.find((k) => k.id === form.key_id);
  const template = useLoad(
    () => (key ? all(`/v1/projects/${seg(key.project_id)}/templates`).then((ts) => ts.find((t) => t.id === key.template_id) ?? null) : Promise.resolve(null)),
    [key?.id],
  );
  const action = useAction();
  const names = [`${form.prefix}_token`, ...(template.data?.fields ?? []).map((f) => `${form.prefix}_${f.name}`)];
  const submit = (/** @type {Event} */ e) => {
    e.preventDefault();
    action.run(async () => onDone(await api('POST', `${base}/secrets/import`, form)));
  };
  return html`<${Dialog} title="Add API key" open=${open} onClose=${() => { action.clear(); onClose(); }}>
    <form onSubmit=${submit}>
      <${ListState} load=${{ ...keys, data: keys.data && active }} empty="You hold no active key. Request one on a project's API keys tab." />
      ${active.length ? html`<fieldset class="choices">
        <legend>Your key</legend>
        ${active.map((k) => html`<label>
          <input type="radio" name="key" value=${k.id} checked=${form.key_id === k.id} onChange=${() => setForm({ ...form, key_id: k.id })} />
          <strong>${k.template_name}</strong> <small class="muted">of ${projectName(k.project_id) ?? `project ${k.project_id}`}, issued ${when(k.issued_at)}</small>
        </label>`)}
      </fieldset>` : null}
      <${Input} label="Prefix of the secrets" field="prefix" error=${action.error} value=${form.prefix} onInput=${(v) => setForm({ ...form, prefix: v })} required />
      ${key ? html`<div class="preview" aria-live="polite">
        <p>These secrets will be created:</p>
        <ul>${names.map((n) => html`<li><code class=${action.error?.conflicts?.includes(n) ? 'conflict' : ''}>${n}</code>${action.error?.conflicts?.includes(n) ? ' (exists)' : ''}</li>`)}</ul>
      </div>` : null}
      <${NodePicker} nodes=${nodes} chosen=${form.nodes} onChange=${(n) => setForm({ ...form, nodes: n })} legend="Nodes that may read them" />
      ${action.error?.status === 409 ? html`<label class="overwrite"><input type="checkbox" checked=${form.overwrite} onChange=${(e) => setForm({ ...form, overwrite: e.currentTarget.checked })} /> Replace the secrets that exist</label>` : null}
      <${Problem} error=${action.error} fieldsShown=${['prefix']} />
      <${FormActions} onCancel=${onClose} label="Import key" busy=${action.busy} disabled=${!key} />
    </form>
  <//>`;
}

function NodeAccess({ secret, base, nodes, values, onClose, onDone }) {
  const [chosen, setChosen] = useState(/** @type {string[] | null} */ (null));
  const action = useAction();
  const current = chosen ?? secret?.nodes ?? [];
  const save = (/** @type {Event} */ e) => {
    e.preventDefault();
    action.run(async () => {
      // PUT takes the whole secret: its value stays as it is.
      const value = (await values())[secret.name];
      await api('PUT', `${base}/secrets/${seg(secret.name)}`, { description: secret.description, value, nodes: current });
      setChosen(null);
      onDone();
    });
  };
  return html`<${Dialog} title=${`Nodes that may read ${secret?.name ?? ''}`} open=${!!secret} onClose=${() => { setChosen(null); action.clear(); onClose(); }}>
    <form onSubmit=${save}>
      <${NodePicker} nodes=${nodes} chosen=${current} onChange=${setChosen} legend="Nodes" />
      <${Problem} error=${action.error} />
      <${FormActions} onCancel=${onClose} label="Save access" busy=${action.busy} />
    </form>
  <//>`;
}

function DeleteSecret({ secret, base, onClose, onDone }) {
  const action = useAction();
  return html`<${Confirm} open=${!!secret} title=${`Delete ${secret?.name ?? 'the secret'}?`}
    text="Nodes reading it will no longer find it. This cannot be undone." action="Delete secret"
    busy=${action.busy} error=${action.error} onClose=${() => { action.clear(); onClose(); }}
    onConfirm=${() => action.run(async () => { await api('DELETE', `${base}/secrets/${seg(secret.name)}`); onDone(); })} />`;
}
