//! Key requests: ask for a key, list requests, approve (issue the key) or reject.

use chrono::Duration;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{App, ListPage, Notification, PageRequest, decode};
use crate::audit::AuditAction;
use crate::error::{Error, Result};
use crate::identity::Caller;
use crate::ids::{DataLayerId, KeyId, ProjectId, RequestId, TemplateId};
use crate::key::{DataLayer, IssuedKey, KeyStatus, Tile, TileState};
use crate::mail;

/// The holder of a key that expires is mailed this many days before, once each (through the
/// outbox, sent by the mail retry when due).
pub const EXPIRY_NOTICE_DAYS: [i64; 2] = [7, 1];
use crate::permission::Permission;
use crate::project::MAX_TEXT;
use crate::request::{KeyRequest, Rejection, RequestStatus};
use crate::store::{Cond, Query, layout, query_all};

/// The answer of a decision: the request as it is now, and whether its mail went out.
#[derive(Debug, Serialize)]
pub struct Decision {
    pub request: KeyRequest,
    pub notification: Notification,
}

/// The marker of a pending request ([`layout::pending`]).
#[derive(Debug, Serialize, Deserialize)]
struct Marker {
    request_id: RequestId,
}

/// The answer of an approval: the request, the key it issued, and the mail's fate.
#[derive(Debug, Serialize)]
pub struct Approval {
    pub request: KeyRequest,
    pub key: IssuedKey,
    pub notification: Notification,
}

impl App {
    async fn tile(&self, id: &ProjectId, caller: &crate::ids::UserId, tid: &TemplateId) -> Result<(Tile, u64)> {
        Ok(self.load(&layout::tile(id, caller, tid)).await?.unwrap_or((Tile::REQUESTABLE, 0)))
    }

    /// Asks for a key of a template; the project owner is mailed.
    pub async fn request_key(&self, caller: &Caller, id: &ProjectId, tid: &TemplateId) -> Result<Decision> {
        let access = self.access(caller, id).await?;
        access.require_view()?;
        let template = self.template(id, tid).await?;
        let (tile, tile_version) = self.tile(id, &caller.id, tid).await?;
        tile.check_requestable()?;
        let now = self.now();
        let request = KeyRequest {
            id: RequestId::generate(),
            project_id: id.clone(),
            template_id: tid.clone(),
            template_name: template.name.clone(),
            user_id: caller.id.clone(),
            user_email: caller.email.clone(),
            user_name: caller.name.clone(),
            status: RequestStatus::Pending,
            created_at: now,
            updated_at: now,
            decided_by: None,
            reason: None,
            key_id: None,
            version: 1,
        };
        let tile = Tile { state: TileState::Pending, request_id: Some(request.id.clone()), key_id: None, reason: None };
        let mut tx = self.tx();
        tx.check(layout::template(id, tid), Cond::Version(template.version))
            .put(layout::tile(id, &caller.id, tid), tile_version + 1, &tile, version_or_absent(tile_version))
            .put(layout::request(id, &request.id), 1, &request, Cond::NotExists)
            .put(layout::pending(id, &request.id), 1, &Marker { request_id: request.id.clone() }, Cond::NotExists)
            .audit(
                id,
                caller,
                AuditAction::KeyRequested,
                &request.id,
                json!({"template_id": tid, "user_id": request.user_id}),
                now,
            )
            .mail(mail::key_requested(&self.settings.console_url, &access.project, &request), now);
        let notification = self
            .commit(tx, |i| match i {
                0 => Error::conflict("the template changed meanwhile; try again"),
                _ => Error::conflict("you already have a pending request or an active key for this template"),
            })
            .await?;
        Ok(Decision { request, notification })
    }

    pub async fn list_requests(
        &self,
        caller: &Caller,
        id: &ProjectId,
        status: Option<RequestStatus>,
        page: &PageRequest,
    ) -> Result<ListPage<KeyRequest>> {
        self.access(caller, id).await?.require(Permission::ProjectManage)?;
        if status == Some(RequestStatus::Pending) {
            // The markers name the pending requests alone: a page is full of them however many
            // requests were decided before.
            let markers: ListPage<Marker> =
                self.page(Query::prefix(layout::project_pk(id), layout::PENDING), page).await?;
            let keys: Vec<_> = markers.items.iter().map(|m| layout::request(id, &m.request_id)).collect();
            let found = if keys.is_empty() { Vec::new() } else { self.store.get_many(&keys).await? };
            let items = found.iter().flatten().map(decode::<KeyRequest>).collect::<Result<Vec<_>>>()?;
            let items = items.into_iter().filter(|r| r.status == RequestStatus::Pending).collect();
            return Ok(ListPage { items, next_cursor: markers.next_cursor });
        }
        let mut list: ListPage<KeyRequest> =
            self.page(Query::prefix(layout::project_pk(id), layout::REQUESTS), page).await?;
        if let Some(status) = status {
            list.items.retain(|r| r.status == status);
        }
        Ok(list)
    }

    /// How many requests of the project wait for a decision: one query over their markers,
    /// which hold nothing but the request's id.
    pub(crate) async fn pending_requests(&self, id: &ProjectId) -> Result<usize> {
        let q = Query::prefix(layout::project_pk(id), layout::PENDING).limit(1000);
        Ok(query_all(self.store.as_ref(), q).await?.len())
    }

    async fn pending_request(
        &self,
        caller: &Caller,
        id: &ProjectId,
        rid: &RequestId,
    ) -> Result<(crate::project::Access, KeyRequest)> {
        let access = self.access(caller, id).await?;
        access.require(Permission::ProjectManage)?;
        let (request, _) =
            self.load::<KeyRequest>(&layout::request(id, rid)).await?.ok_or_else(|| Error::not_found("request"))?;
        Ok((access, request))
    }

    /// Approves a request: the key, the personal data layer and the new states are one atomic
    /// step, so concurrent approvals of one request issue exactly one key.
    pub async fn approve(&self, caller: &Caller, id: &ProjectId, rid: &RequestId) -> Result<Approval> {
        let (access, request) = self.pending_request(caller, id, rid).await?;
        let status = request.status.transition(RequestStatus::Approved)?;
        let template = self
            .template(id, &request.template_id)
            .await
            .map_err(|_| Error::conflict("the request's template no longer exists"))?;
        let (_, tile_version) = self.tile(id, &request.user_id, &request.template_id).await?;
        let now = self.now();
        let key = IssuedKey {
            id: KeyId::generate(),
            project_id: id.clone(),
            template_id: template.id.clone(),
            template_name: template.name.clone(),
            user_id: request.user_id.clone(),
            user_email: request.user_email.clone(),
            data_layer_id: DataLayerId::generate(),
            kid: self.keys.kid().to_owned(),
            issued_at: now,
            expires_at: template.validity_days.map(|d| now + Duration::days(d)),
            status: KeyStatus::Active,
            revoked_at: None,
            revoked_by: None,
            generation: 0,
            rerolled_at: None,
            previous_until: None,
            limits: Default::default(),
            leak: None,
            tokens: Vec::new(),
            version: 1,
        };
        let layer = DataLayer {
            id: key.data_layer_id.clone(),
            project_id: id.clone(),
            owner: request.user_id.clone(),
            name: format!("{} ({})", template.name, request.user_email),
            created_at: now,
        };
        let approved = KeyRequest {
            status,
            updated_at: now,
            decided_by: Some(caller.id.clone()),
            key_id: Some(key.id.clone()),
            version: request.version + 1,
            ..request.clone()
        };
        let tile = Tile {
            state: TileState::Active,
            request_id: Some(rid.clone()),
            key_id: Some(key.id.clone()),
            reason: None,
        };
        let mut tx = self.tx();
        tx.put(layout::request(id, rid), approved.version, &approved, Cond::Version(request.version))
            .delete(layout::pending(id, rid), Cond::Always)
            .put_key(&key, Cond::NotExists)
            .put(layout::data_layer(id, &layer.id), 1, &layer, Cond::NotExists)
            .put(
                layout::tile(id, &request.user_id, &request.template_id),
                tile_version + 1,
                &tile,
                version_or_absent(tile_version),
            )
            .audit(
                id,
                caller,
                AuditAction::RequestApproved,
                rid,
                json!({
                    "key_id": key.id,
                    "user_id": key.user_id,
                    "template_id": key.template_id,
                    "data_layer_id": key.data_layer_id,
                }),
                now,
            )
            .mail(mail::request_approved(&self.settings.console_url, &access.project, &approved, &key), now);
        for days in EXPIRY_NOTICE_DAYS {
            if let Some(due) = key.expires_at.map(|exp| exp - Duration::days(days)).filter(|due| *due > now) {
                let notice = mail::key_expires_soon(&self.settings.console_url, &access.project, &key, days);
                tx.mail_later(notice, due, layout::key(id, &key.id));
            }
        }
        let notification = self.commit(tx, |_| Error::conflict("the request was decided meanwhile")).await?;
        Ok(Approval { request: approved, key, notification })
    }

    pub async fn reject(&self, caller: &Caller, id: &ProjectId, rid: &RequestId, input: Rejection) -> Result<Decision> {
        if input.reason.chars().count() > MAX_TEXT {
            return Err(Error::invalid("reason", format!("must be at most {MAX_TEXT} characters")));
        }
        let (access, request) = self.pending_request(caller, id, rid).await?;
        let status = request.status.transition(RequestStatus::Rejected)?;
        let (_, tile_version) = self.tile(id, &request.user_id, &request.template_id).await?;
        let now = self.now();
        let rejected = KeyRequest {
            status,
            updated_at: now,
            decided_by: Some(caller.id.clone()),
            reason: Some(input.reason.clone()),
            version: request.version + 1,
            ..request.clone()
        };
        let reason = Some(input.reason).filter(|r| !r.is_empty());
        let tile = Tile { state: TileState::Rejected, request_id: Some(rid.clone()), key_id: None, reason };
        let mut tx = self.tx();
        tx.put(layout::request(id, rid), rejected.version, &rejected, Cond::Version(request.version))
            .delete(layout::pending(id, rid), Cond::Always)
            .put(
                layout::tile(id, &request.user_id, &request.template_id),
                tile_version + 1,
                &tile,
                version_or_absent(tile_version),
            )
            .audit(id, caller, AuditAction::RequestRejected, rid, json!({"user_id": request.user_id}), now)
            .mail(mail::request_rejected(&self.settings.console_url, &access.project, &rejected), now);
        let notification = self.commit(tx, |_| Error::conflict("the request was decided meanwhile")).await?;
        Ok(Decision { request: rejected, notification })
    }
}

pub(crate) fn version_or_absent(version: u64) -> Cond {
    if version == 0 { Cond::NotExists } else { Cond::Version(version) }
}
