//! API key templates: create, list with the caller's tile, edit, delete.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use serde_json::json;

use super::{App, ListPage, PageRequest};
use crate::audit::AuditAction;
use crate::error::{Error, Result};
use crate::identity::Caller;
use crate::ids::{NodeId, ProjectId, TemplateId};
use crate::key::{IssuedKey, KeyStatus, Tile, TileState};
use crate::mail;
use crate::permission::{Permission, Permissions};
use crate::project::Node;
use crate::request::{KeyRequest, RequestStatus};
use crate::store::{Cond, Query, layout};
use crate::template::{KeyTemplate, ProjectFacts, TemplateInput, TemplatePatch, ValidTemplate};

/// A template as a user sees it in the key tiles: the template and the caller's tile on it.
#[derive(Debug, Serialize)]
pub struct TemplateWithTile {
    #[serde(flatten)]
    pub template: KeyTemplate,
    /// The permissions of the template's role as it is now: what a key of it may do.
    pub permissions: Permissions,
    pub tile: Tile,
}

/// The mark that holds a template's name, so that names stay unique in a project.
#[derive(Serialize, serde::Deserialize)]
struct NameHold {
    template_id: TemplateId,
}

/// How the caller wants an edit guarded: by the body's `version` or an `If-Match` header.
#[derive(Clone, Copy, Debug, Default)]
pub struct Expected {
    pub if_match: Option<u64>,
}

impl App {
    async fn validate_template(&self, project: &ProjectId, input: TemplateInput) -> Result<ValidTemplate> {
        let roles = self.roles(project).await?;
        let nodes: Vec<Node> = self.load_all(layout::project_pk(project), layout::NODES).await?;
        let nodes: HashSet<NodeId> = nodes.into_iter().map(|n| n.id).collect();
        input.validate(&ProjectFacts { project_id: project, roles: &roles, nodes: &nodes })
    }

    pub async fn create_template(&self, caller: &Caller, id: &ProjectId, input: TemplateInput) -> Result<KeyTemplate> {
        self.access(caller, id).await?.require(Permission::ProjectManage)?;
        let v = self.validate_template(id, input).await?;
        let now = self.now();
        let template = v.into_template(TemplateId::generate(), id.clone(), now, now, 1);
        let mut tx = self.tx();
        tx.put(
            layout::template_name(id, &template.name),
            1,
            &NameHold { template_id: template.id.clone() },
            Cond::NotExists,
        )
        .put(layout::template(id, &template.id), 1, &template, Cond::NotExists)
        .audit(id, caller, AuditAction::TemplateCreated, &template.id, json!({"name": template.name}), now);
        let name = template.name.clone();
        self.commit(tx, move |_| name_taken(&name)).await?;
        Ok(template)
    }

    /// The project's templates, each with the caller's tile (what they may do with it).
    pub async fn list_templates(
        &self,
        caller: &Caller,
        id: &ProjectId,
        page: &PageRequest,
    ) -> Result<ListPage<TemplateWithTile>> {
        let access = self.access(caller, id).await?;
        access.require_view()?;
        let templates: ListPage<KeyTemplate> =
            self.page(Query::prefix(layout::project_pk(id), layout::TEMPLATES), page).await?;
        let tiles = self.tiles_of(caller, id).await?;
        Ok(ListPage {
            items: templates
                .items
                .into_iter()
                .map(|t| {
                    let tile = tiles.get(&t.id).cloned().unwrap_or(Tile::REQUESTABLE);
                    let permissions =
                        access.roles.iter().find(|r| r.name == t.role).map_or(Permissions::NONE, |r| r.permissions);
                    TemplateWithTile { template: t, permissions, tile }
                })
                .collect(),
            next_cursor: templates.next_cursor,
        })
    }

    async fn tiles_of(&self, caller: &Caller, id: &ProjectId) -> Result<HashMap<TemplateId, Tile>> {
        let prefix = layout::tiles_of(&caller.id);
        let items =
            crate::store::query_all(self.store.as_ref(), Query::prefix(layout::project_pk(id), &prefix)).await?;
        items
            .iter()
            .map(|item| {
                let tile: Tile = super::decode(item)?;
                let tid = item.key.sk.strip_prefix(&prefix).and_then(TemplateId::parse);
                Ok(tid.map(|t| (t, tile)))
            })
            .filter_map(Result::transpose)
            .collect()
    }

    pub(crate) async fn template(&self, id: &ProjectId, tid: &TemplateId) -> Result<KeyTemplate> {
        self.load(&layout::template(id, tid)).await?.map(|(t, _)| t).ok_or_else(|| Error::not_found("template"))
    }

    pub async fn edit_template(
        &self,
        caller: &Caller,
        id: &ProjectId,
        tid: &TemplateId,
        mut patch: TemplatePatch,
        expected: Expected,
    ) -> Result<KeyTemplate> {
        self.access(caller, id).await?.require(Permission::ProjectManage)?;
        let mut current = self.template(id, tid).await?;
        if let Some(pending) = current.limits_before.as_ref().filter(|b| b.until > self.now()) {
            // Its last limits change is not in force yet: this one follows it.
            self.in_force_at(pending.until).await;
            current = self.template(id, tid).await?;
        }
        let stale = |v: u64| match expected.if_match {
            Some(_) => Error::PreconditionFailed(format!("the template is at version {v}; fetch it and try again")),
            None => Error::conflict(format!("the template is at version {v}; fetch it and try again")),
        };
        if let Some(want) = expected.if_match.or(patch.version.take())
            && want != current.version
        {
            return Err(stale(current.version));
        }
        let v = self.validate_template(id, patch.apply_to(&current)).await?;
        let now = self.now();
        let mut next = v.into_template(tid.clone(), id.clone(), current.created_at, now, current.version + 1);
        // New limits take effect everywhere at once, a moment from now ([`crate::limits`]).
        let limits_change = (next.quota != current.quota || next.rate_limit != current.rate_limit)
            .then_some(now + crate::limits::SETTLE);
        match limits_change {
            Some(at) => {
                next.quota_since = current.limits().then(next.quota, next.rate_limit, at).quota_since;
                next.limits_before = Some(crate::limits::Before { until: at, limits: current.limits() });
            }
            None => next.quota_since = current.quota_since,
        }
        let mut tx = self.tx();
        tx.put(layout::template(id, tid), next.version, &next, Cond::Version(current.version));
        let renamed = layout::template_name(id, &next.name) != layout::template_name(id, &current.name);
        if renamed {
            tx.delete(layout::template_name(id, &current.name), Cond::Exists).put(
                layout::template_name(id, &next.name),
                1,
                &NameHold { template_id: tid.clone() },
                Cond::NotExists,
            );
        }
        tx.audit(
            id,
            caller,
            AuditAction::TemplateEdited,
            tid,
            json!({"name": next.name, "version": next.version}),
            now,
        );
        let name = next.name.clone();
        self.commit(tx, move |i| if renamed && i == 2 { name_taken(&name) } else { stale(current.version + 1) })
            .await?;
        self.key_events.template_changed(id, tid);
        if let Some(at) = limits_change {
            self.in_force_at(at).await;
        }
        Ok(next)
    }

    /// Deletes a template. Its active keys must be revoked first, or with it (`revoke_keys`);
    /// its pending requests are cancelled.
    pub async fn delete_template(
        &self,
        caller: &Caller,
        id: &ProjectId,
        tid: &TemplateId,
        revoke_keys: bool,
    ) -> Result<()> {
        let access = self.access(caller, id).await?;
        access.require(Permission::ProjectManage)?;
        let template = self.template(id, tid).await?;
        let keys: Vec<IssuedKey> = self.load_all(layout::project_pk(id), layout::KEYS).await?;
        let active: Vec<IssuedKey> =
            keys.into_iter().filter(|k| &k.template_id == tid && k.status == KeyStatus::Active).collect();
        if !active.is_empty() && !revoke_keys {
            return Err(Error::conflict(format!(
                "the template has {} active key(s); revoke them first, or delete with ?revoke_keys=true",
                active.len()
            )));
        }
        let requests: Vec<KeyRequest> = self.load_all(layout::project_pk(id), layout::REQUESTS).await?;
        let pending: Vec<KeyRequest> =
            requests.into_iter().filter(|r| &r.template_id == tid && r.status == RequestStatus::Pending).collect();
        if 3 + 3 * active.len() + 3 * pending.len() > crate::store::MAX_TRANSACTION_ITEMS {
            return Err(Error::conflict("too many keys and requests to settle at once; revoke some keys first"));
        }
        let now = self.now();
        let mut tx = self.tx();
        tx.delete(layout::template(id, tid), Cond::Version(template.version))
            .delete(layout::template_name(id, &template.name), Cond::Always);
        for key in &active {
            let revoked = key.revoke(&caller.id, now)?;
            tx.put_key(&revoked, Cond::Version(key.version));
            tx.put(
                layout::tile(id, &key.user_id, tid),
                1,
                &Tile { state: TileState::Revoked, request_id: None, key_id: Some(key.id.clone()), reason: None },
                Cond::Always,
            );
            tx.mail(mail::key_revoked(&self.settings.console_url, &access.project, &revoked), now);
        }
        for r in &pending {
            let cancelled = KeyRequest {
                status: r.status.transition(RequestStatus::Cancelled)?,
                updated_at: now,
                version: r.version + 1,
                ..r.clone()
            };
            tx.put(layout::request(id, &r.id), cancelled.version, &cancelled, Cond::Version(r.version))
                .delete(layout::pending(id, &r.id), Cond::Always);
            tx.put(layout::tile(id, &r.user_id, tid), 1, &Tile::REQUESTABLE, Cond::Always);
        }
        tx.audit(
            id,
            caller,
            AuditAction::TemplateDeleted,
            tid,
            json!({"name": template.name, "revoked_keys": active.len(), "cancelled_requests": pending.len()}),
            now,
        );
        self.commit(tx, |_| Error::conflict("the template changed meanwhile; try again")).await?;
        for key in &active {
            self.key_events.key_retired(id, &key.id);
        }
        Ok(())
    }
}

fn name_taken(name: &str) -> Error {
    Error::Conflict {
        detail: format!(
            "the project already has a template named like '{name}' (names are compared ignoring case, spacing and letter forms)"
        ),
        names: vec![name.to_owned()],
    }
}
