// @ts-check
/** The project's "API keys" section, as in the seeds: one tile per template with its role's
 * permissions, price, validity and information fields, and the viewer's state on it with the
 * REQUEST button. Owners add templates (the + button), edit and delete them. */

import { useId, useState } from '../vendor/preact-hooks.js';
import { html, FormActions, Confirm, Dialog, FieldError, Input, ListState, Problem, currencyCode, currencyExponent, days, focusSoon, money, quotaRule, rateRule, RateModeSelect, useAction, useLoad, usePoll } from '../components.js';
import { all, api, get, seg } from '../api.js';

const STATES = {
  requestable: 'You have no key for this API yet.',
  pending: 'Requested: waiting for the owner to approve.',
  active: 'Your key is active. Find it under My keys.',
  rejected: 'Your request was rejected.',
  revoked: 'Your key was revoked.',
};

export function ApiKeys({ project, manage }) {
  const base = `/v1/projects/${seg(project.id)}`;
  const load = useLoad(() => all(`${base}/templates`), [project.id]);
  const extras = useLoad(
    () => (manage ? Promise.all([all(`${base}/roles`), all(`${base}/nodes`)]) : Promise.resolve([[], []])),
    [project.id, manage],
  );
  const [adding, setAdding] = useState(false);
  const [editing, setEditing] = useState(/** @type {string | null} */ (null));
  const [roles, nodes] = extras.data ?? [[], []];
  // While one of the viewer's requests waits, the owner's decision shows without a reload.
  usePoll(load.reload, (load.data ?? []).some((t) => t.tile.state === 'pending'));
  return html`<div>
    <div class="toolbar">
      <h2>API key templates</h2>
      ${manage ? html`<button type="button" class="primary" onClick=${() => setAdding(true)}>+ Add API key template</button>` : null}
    </div>
    <${ListState} load=${load} empty=${manage ? 'No templates yet. Add one with “+ Add API key template”.' : 'This project offers no API keys yet.'} />
    <ul class="tiles">
      ${(load.data ?? []).map((t) => html`<li key=${t.id} class=${editing === t.id ? 'wide' : undefined}>
        ${editing === t.id
          ? html`<${TemplateEditor} project=${project} template=${t} roles=${roles} nodes=${nodes}
              onDone=${() => setEditing(null)} onCancel=${() => setEditing(null)} />`
          : html`<${Tile} project=${project} template=${t} manage=${manage} onEdit=${() => setEditing(t.id)} />`}
      </li>`)}
    </ul>
    <${NewTemplate} open=${adding} base=${base} roles=${roles}
      onClose=${() => setAdding(false)} onCreated=${(t) => { setAdding(false); setEditing(t.id); }} />
  </div>`;
}

function Tile({ project, template: t, manage, onEdit }) {
  const request = useAction();
  const [notice, setNotice] = useState('');
  const [deleting, setDeleting] = useState(false);
  const state = t.tile.state;
  const ask = () => request.run(async () => {
    const answer = await api('POST', `/v1/projects/${seg(project.id)}/templates/${seg(t.id)}/requests`);
    setNotice(answer.notification === 'pending'
      ? 'Requested. The owner will be told by mail as soon as mail can be sent.'
      : 'Requested. The owner has been told by mail.');
    focusSoon(`tile-card-${t.id}`);
  });
  const titleId = `tile-${t.id}`;
  return html`<article class=${`tile state-${state}`} aria-labelledby=${titleId} id=${`tile-card-${t.id}`} tabindex="-1">
    <h3 id=${titleId}>${t.name}</h3>
    ${t.description ? html`<p>${t.description}</p>` : null}
    <dl>
      <dt>Role</dt><dd>${t.role}</dd>
      <dt>Permissions</dt><dd>${t.permissions.length ? t.permissions.map((p) => html`<span class="perm">${p}</span> `) : '—'}</dd>
      <dt>Price per request</dt><dd>${money(t.price_per_request)}</dd>
      <dt>Valid</dt><dd>${t.validity_days ? `${days(t.validity_days)} after issue` : 'no expiry'}</dd>
      <dt>Quota</dt><dd>${quotaRule(t.quota)}</dd>
      <dt>Rate limit</dt><dd>${rateRule(t.rate_limit)}</dd>
      ${t.fields.length ? html`<dt>Information</dt><dd><ul class="fields">${t.fields.map((f) => html`<li>
        <code>${f.name}</code>${f.description ? html` (${f.description})` : null}: <span class="value">${f.value || '—'}</span>
      </li>`)}</ul></dd>` : null}
    </dl>
    <p class="state" role="status">
      <span class=${`badge ${state}`}>${state === 'requestable' ? 'no key' : state}</span>
      ${' '}${STATES[state]}
      ${state === 'rejected' && t.tile.reason ? html` Reason: <q>${t.tile.reason}</q>` : null}
    </p>
    ${notice ? html`<p class="notice">${notice}</p>` : null}
    <${Problem} error=${request.error} />
    <div class="actions">
      ${['requestable', 'rejected', 'revoked'].includes(state)
        ? html`<button type="button" class="primary" disabled=${request.busy} onClick=${ask} aria-label=${`Request a key for ${t.name}`}>REQUEST</button>`
        : null}
      ${manage ? html`<button type="button" onClick=${onEdit} aria-label=${`Edit template ${t.name}`}>Edit</button>
        <button type="button" class="danger" onClick=${() => setDeleting(true)} aria-label=${`Delete template ${t.name}`}>Delete</button>` : null}
    </div>
    ${manage ? html`<${DeleteTemplate} open=${deleting} project=${project} template=${t} onClose=${() => setDeleting(false)} />` : null}
  </article>`;
}

function DeleteTemplate({ open, project, template: t, onClose }) {
  const action = useAction();
  const remove = (/** @type {boolean} */ revoke) => action.run(async () => {
    await api('DELETE', `/v1/projects/${seg(project.id)}/templates/${seg(t.id)}${revoke ? '?revoke_keys=true' : ''}`);
    onClose();
  });
  const hasKeys = action.error?.status === 409;
  return html`<${Confirm} open=${open} title=${`Delete template “${t.name}”?`}
    text=${hasKeys ? 'Keys issued from it are still active. Deleting it can revoke them at the same time; their holders are told by mail.' : 'Nobody can request a key for it any more. This cannot be undone.'}
    action=${hasKeys ? 'Delete and revoke its keys' : 'Delete template'} busy=${action.busy} error=${action.error}
    onClose=${() => { action.clear(); onClose(); }}
    onConfirm=${() => remove(hasKeys)} />`;
}

function NewTemplate({ open, base, roles, onClose, onCreated }) {
  const [form, setForm] = useState({ name: '', role: '' });
  const action = useAction();
  const submit = (/** @type {Event} */ e) => {
    e.preventDefault();
    action.run(async () => {
      const t = await api('POST', `${base}/templates`, { name: form.name, role: form.role });
      setForm({ name: '', role: '' });
      onCreated(t);
    });
  };
  return html`<${Dialog} title="New API key template" open=${open} onClose=${() => { action.clear(); onClose(); }}>
    <form onSubmit=${submit}>
      <${Input} label="Name (unique in the project)" field="name" error=${action.error} value=${form.name} onInput=${(v) => setForm({ ...form, name: v })} required />
      <${RoleSelect} roles=${roles} value=${form.role} error=${action.error} onChange=${(v) => setForm({ ...form, role: v })} />
      <${Problem} error=${action.error} fieldsShown=${['name', 'role']} />
      <${FormActions} onCancel=${onClose} label="CREATE" busy=${action.busy} />
    </form>
  <//>`;
}

function RoleSelect({ roles, value, error, onChange }) {
  const id = useId();
  return html`<div class="input">
    <label for=${id}>Role (what keys of this template may do)</label>
    <select id=${id} value=${value} required onChange=${(e) => onChange(e.currentTarget.value)}
      aria-invalid=${error?.fields?.role ? 'true' : undefined} aria-describedby=${error?.fields?.role ? `${id}-error` : undefined}>
      <option value="">Choose a role…</option>
      ${roles.map((r) => html`<option value=${r.name}>${r.name}: ${r.permissions.join(', ') || 'no permissions'}</option>`)}
    </select>
    <${FieldError} error=${error} field="role" id=${`${id}-error`} />
  </div>`;
}

/** The part of a repeated label only screen readers hear, so that each field's inputs have
 * names of their own: "Field name, field 2". */
const nth = (/** @type {number} */ i) => html`<span class="sr-only">, field ${i + 1}</span>`;

/** The currency's minor unit in words: "hundredths of EUR (cents: 7 = €0.07)". */
function minorUnit() {
  const e = currencyExponent();
  if (e === 0) return `whole ${currencyCode()} (7 = ${money(7)})`;
  return `${e === 2 ? 'hundredths' : e === 3 ? 'thousandths' : `1/${10 ** e}`} of ${currencyCode()} (7 = ${money(7)})`;
}

/** The owner's editor of one tile: every property, and the information fields with the seeds'
 * "insert project ID" and node picker. */
function TemplateEditor({ project, template: t, roles, nodes, onDone, onCancel }) {
  const [form, setForm] = useState({
    name: t.name,
    description: t.description,
    role: t.role,
    price_per_request: String(t.price_per_request),
    validity_days: t.validity_days ? String(t.validity_days) : '',
    quota_requests: t.quota ? String(t.quota.requests) : '',
    quota_per: t.quota ? t.quota.per : 'day',
    rate_per_second: t.rate_limit ? String(t.rate_limit.per_second) : '',
    rate_burst: t.rate_limit ? String(t.rate_limit.burst) : '',
    rate_mode: t.rate_limit?.mode ?? 'local',
    fields: t.fields.map((f) => ({ ...f })),
  });
  const action = useAction();
  const uid = useId();
  const set = (/** @type {string} */ k) => (/** @type {any} */ v) => setForm({ ...form, [k]: v });
  const setField = (/** @type {number} */ i, /** @type {string} */ k, /** @type {string} */ v) =>
    setForm({ ...form, fields: form.fields.map((f, j) => (j === i ? { ...f, [k]: v, ...(k === 'kind' && v === 'project' ? { value: project.id } : {}) } : f)) });
  const addField = () => setForm({ ...form, fields: [...form.fields, { name: '', description: '', kind: 'text', value: '' }] });
  const removeField = (/** @type {number} */ i) => setForm({ ...form, fields: form.fields.filter((_, j) => j !== i) });
  const save = (/** @type {Event} */ e) => {
    e.preventDefault();
    action.run(async () => {
      const price = Number(form.price_per_request);
      await api('PATCH', `/v1/projects/${seg(project.id)}/templates/${seg(t.id)}`, {
        version: t.version,
        name: form.name,
        description: form.description,
        role: form.role,
        price_per_request: Number.isInteger(price) && form.price_per_request !== '' ? price : form.price_per_request,
        validity_days: form.validity_days === '' ? null : Number(form.validity_days),
        quota: form.quota_requests === '' ? null : { requests: Number(form.quota_requests), per: form.quota_per },
        rate_limit: form.rate_per_second === ''
          ? null
          : { per_second: Number(form.rate_per_second), burst: Number(form.rate_burst === '' ? form.rate_per_second : form.rate_burst), mode: form.rate_mode },
        fields: form.fields,
      });
      onDone();
    });
  };
  const shown = ['name', 'description', 'role', 'price_per_request', 'validity_days', 'quota', 'quota.requests', 'quota.per',
    'rate_limit', 'rate_limit.per_second', 'rate_limit.burst',
    ...form.fields.flatMap((_, i) => ['name', 'description', 'kind', 'value'].map((k) => `fields[${i}].${k}`))];
  return html`<form class="tile editing" onSubmit=${save} aria-label=${`Edit template ${t.name}`}>
    <h3>Edit “${t.name}”</h3>
    <${Input} label="Name" field="name" error=${action.error} value=${form.name} onInput=${set('name')} required />
    <${Input} label="Description" field="description" error=${action.error} value=${form.description} onInput=${set('description')} />
    <${RoleSelect} roles=${roles} value=${form.role} error=${action.error} onChange=${set('role')} />
    <${Input} label=${`Price per request, in ${minorUnit()}`} field="price_per_request" type="number" min="0" step="1" error=${action.error} value=${form.price_per_request} onInput=${set('price_per_request')}
      aria-describedby=${`${uid}-price`} />
    <p class="price-preview" id=${`${uid}-price`}>${/^\d+$/.test(form.price_per_request) ? `${money(Number(form.price_per_request))} per request` : 'A whole number.'}</p>
    <${Input} label="Valid for days (empty: no expiry)" field="validity_days" type="number" min="1" step="1" error=${action.error} value=${form.validity_days} onInput=${set('validity_days')} />
    <fieldset class="limits">
      <legend>Limits per key (empty: none). Calls over a limit are refused with 429 and not billed.</legend>
      <${Input} label="Quota: calls" field="quota.requests" type="number" min="1" step="1" error=${action.error} value=${form.quota_requests} onInput=${set('quota_requests')} />
      <div class="input">
        <label for=${`${uid}-quota-per`}>per</label>
        <select id=${`${uid}-quota-per`} value=${form.quota_per} onChange=${(e) => set('quota_per')(e.currentTarget.value)}>
          <option value="day">day (UTC)</option>
          <option value="month">month (UTC)</option>
        </select>
      </div>
      <${Input} label="Rate: calls per second" field="rate_limit.per_second" type="number" min="1" step="1" error=${action.error} value=${form.rate_per_second} onInput=${set('rate_per_second')} />
      <${Input} label="Burst (empty: same as the rate)" field="rate_limit.burst" type="number" min="1" step="1" error=${action.error} value=${form.rate_burst} onInput=${set('rate_burst')} />
      <${RateModeSelect} value=${form.rate_mode} onChange=${set('rate_mode')} />
    </fieldset>
    <fieldset>
      <legend>Information fields (imported as secrets with the key)</legend>
      <p class="hint">Recommended: <code>project</code> (this project's id), <code>input</code> and <code>output</code> (the nodes to send data to and fetch results from).</p>
      ${form.fields.map((f, i) => html`<div class="field-row" key=${i}>
        <${Input} label=${html`Field name${nth(i)}`} field=${`fields[${i}].name`} error=${action.error} value=${f.name} onInput=${(v) => setField(i, 'name', v)} required />
        <${Input} label=${html`Label${nth(i)}`} field=${`fields[${i}].description`} error=${action.error} value=${f.description} onInput=${(v) => setField(i, 'description', v)} />
        <div class="input">
          <label for=${`${uid}-kind-${i}`}>Kind${nth(i)}</label>
          <select id=${`${uid}-kind-${i}`} value=${f.kind} onChange=${(e) => setField(i, 'kind', e.currentTarget.value)}>
            <option value="text">text</option>
            <option value="project">project ID</option>
            <option value="node">node ID</option>
          </select>
        </div>
        ${f.kind === 'node'
          ? html`<div class="input">
              <label for=${`${uid}-node-${i}`}>Node${nth(i)}</label>
              <select id=${`${uid}-node-${i}`} value=${f.value} onChange=${(e) => setField(i, 'value', e.currentTarget.value)}
                aria-describedby=${action.error?.fields?.[`fields[${i}].value`] ? `${uid}-node-${i}-error` : undefined}>
                <option value="">Choose a node…</option>
                ${nodes.map((n) => html`<option value=${n.id}>${n.name} (${n.id})</option>`)}
              </select>
              <${FieldError} error=${action.error} field=${`fields[${i}].value`} id=${`${uid}-node-${i}-error`} />
            </div>`
          : f.kind === 'project'
            ? html`<div class="input"><span class="label">Value${nth(i)}</span><code>${project.id}</code></div>`
            : html`<${Input} label=${html`Value${nth(i)}`} field=${`fields[${i}].value`} error=${action.error} value=${f.value} onInput=${(v) => setField(i, 'value', v)} />`}
        <button type="button" class="danger small" onClick=${() => removeField(i)} aria-label=${`Remove field ${f.name || i + 1}`}>Remove</button>
      </div>`)}
      <button type="button" onClick=${addField}>+ Field</button>
    </fieldset>
    <${Problem} error=${action.error} fieldsShown=${shown} />
    <${FormActions} onCancel=${onCancel} label="Save template" busy=${action.busy} />
  </form>`;
}
