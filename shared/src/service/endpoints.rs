//! A project's webhook endpoints (issue 32), managed by those who manage the project: add (the
//! secret shown once), list, change, delete, and give a new secret (the old one signs beside
//! it for 24 hours). URLs follow the deployment's rules ([`crate::webhook::UrlPolicy`]), checked
//! with their host's addresses at every change and again before every delivery.

use serde_json::json;

use super::{App, decode};
use crate::audit::AuditAction;
use crate::error::{Error, Result};
use crate::identity::Caller;
use crate::ids::{DeliveryId, ProjectId, WebhookId};
use crate::permission::Permission;
use crate::store::{Cond, Query, layout, query_all};
use crate::webhook::{
    Delivery, Endpoint, EndpointInput, EndpointView, Event, EventType, MAX_ENDPOINTS, Queued, ROTATION_OVERLAP, Target,
    UrlPolicy, WithSecret, message_id, new_secret,
};

/// A test event queued for an endpoint: its delivery shows in the endpoint's deliveries.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TestSent {
    pub event_id: String,
    /// The message's `webhook-id`.
    pub message_id: String,
    pub delivery_id: DeliveryId,
}

/// Deliveries an endpoint's list shows: the newest.
const LISTED_DELIVERIES: usize = 20;

impl App {
    fn webhook_policy(&self) -> Result<&UrlPolicy> {
        self.settings.webhook_policy.as_ref().ok_or_else(|| {
            Error::conflict("this deployment does not deliver webhooks yet: its operator has not set them up")
        })
    }

    /// The URL checked by the deployment's rules, its host's addresses included.
    async fn checked_url(&self, url: &str) -> Result<String> {
        let policy = self.webhook_policy()?;
        let parsed = policy.check_url(url.trim())?;
        policy.resolve(&parsed).await?;
        Ok(parsed.to_string())
    }

    async fn endpoints(&self, project: &ProjectId) -> Result<Vec<Endpoint>> {
        let items =
            query_all(self.store.as_ref(), Query::prefix(layout::project_pk(project), layout::WEBHOOKS).limit(100))
                .await?;
        items.iter().map(|item| decode::<Endpoint>(item).map(|e| Endpoint { version: item.version, ..e })).collect()
    }

    async fn endpoint(&self, project: &ProjectId, id: &WebhookId) -> Result<Endpoint> {
        let (endpoint, version) = self
            .load::<Endpoint>(&layout::webhook(project, id))
            .await?
            .ok_or_else(|| Error::not_found("webhook endpoint"))?;
        Ok(Endpoint { version, ..endpoint })
    }

    pub async fn add_webhook(&self, caller: &Caller, project: &ProjectId, input: EndpointInput) -> Result<WithSecret> {
        self.access(caller, project).await?.require(Permission::ProjectManage)?;
        let raw = input.url.as_deref().ok_or_else(|| Error::invalid("url", "is required"))?;
        let events = input.event_types()?.unwrap_or_default();
        let url = self.checked_url(raw).await?;
        if self.endpoints(project).await?.len() >= MAX_ENDPOINTS {
            return Err(Error::conflict(format!(
                "a project has at most {MAX_ENDPOINTS} webhook endpoints; delete one first"
            )));
        }
        let now = self.now();
        let endpoint = Endpoint {
            id: WebhookId::generate(),
            project_id: project.clone(),
            url,
            events,
            enabled: input.enabled.unwrap_or(true),
            secret: new_secret(),
            previous_secret: None,
            previous_until: None,
            failing_since: None,
            disabled_reason: None,
            created_at: now,
            created_by: caller.id.clone(),
            version: 1,
        };
        let mut tx = self.tx();
        tx.put(layout::webhook(project, &endpoint.id), 1, &endpoint, Cond::NotExists).audit(
            project,
            caller,
            AuditAction::WebhookAdded,
            &endpoint.id,
            json!({"host": host(&endpoint.url), "events": endpoint.view().events}),
            now,
        );
        self.commit(tx, |_| Error::conflict("the endpoint exists already")).await?;
        tracing::info!(project_id = %project, webhook_id = %endpoint.id, "webhook endpoint added");
        Ok(WithSecret { webhook: endpoint.view(), secret: endpoint.secret })
    }

    pub async fn list_webhooks(&self, caller: &Caller, project: &ProjectId) -> Result<Vec<EndpointView>> {
        self.access(caller, project).await?.require(Permission::ProjectManage)?;
        Ok(self.endpoints(project).await?.iter().map(Endpoint::view).collect())
    }

    /// Changes an endpoint's URL, event types or whether it is enabled.
    pub async fn edit_webhook(
        &self,
        caller: &Caller,
        project: &ProjectId,
        id: &WebhookId,
        input: EndpointInput,
    ) -> Result<EndpointView> {
        self.access(caller, project).await?.require(Permission::ProjectManage)?;
        let mut endpoint = self.endpoint(project, id).await?;
        if let Some(raw) = &input.url {
            endpoint.url = self.checked_url(raw).await?;
        }
        if let Some(events) = input.event_types()? {
            endpoint.events = events;
        }
        if let Some(enabled) = input.enabled {
            if enabled && !endpoint.enabled {
                // Enabled again by its managers: a fresh start, counted from now.
                endpoint.failing_since = None;
                endpoint.disabled_reason = None;
            }
            endpoint.enabled = enabled;
        }
        self.save_endpoint(caller, project, endpoint, AuditAction::WebhookChanged).await.map(|e| e.view())
    }

    /// A new secret for an endpoint, shown this once; the one before signs beside it for 24 h.
    pub async fn rotate_webhook_secret(
        &self,
        caller: &Caller,
        project: &ProjectId,
        id: &WebhookId,
    ) -> Result<WithSecret> {
        self.access(caller, project).await?.require(Permission::ProjectManage)?;
        let endpoint = self.endpoint(project, id).await?;
        let now = self.now();
        let rotated = Endpoint {
            previous_secret: Some(endpoint.secret.clone()),
            previous_until: Some(now + ROTATION_OVERLAP),
            secret: new_secret(),
            ..endpoint
        };
        let saved = self.save_endpoint(caller, project, rotated, AuditAction::WebhookSecretRotated).await?;
        Ok(WithSecret { webhook: saved.view(), secret: saved.secret })
    }

    pub async fn delete_webhook(&self, caller: &Caller, project: &ProjectId, id: &WebhookId) -> Result<EndpointView> {
        self.access(caller, project).await?.require(Permission::ProjectManage)?;
        let endpoint = self.endpoint(project, id).await?;
        let mut tx = self.tx();
        tx.delete(layout::webhook(project, id), Cond::Version(endpoint.version)).audit(
            project,
            caller,
            AuditAction::WebhookDeleted,
            id,
            json!({"host": host(&endpoint.url)}),
            self.now(),
        );
        self.commit(tx, |_| Error::conflict("the endpoint changed meanwhile; try again")).await?;
        Ok(endpoint.view())
    }

    /// Queues a `webhook.test` event for this endpoint alone (whatever types it asked for), sent
    /// and listed like any delivery: how its managers check that their receiver verifies.
    pub async fn test_webhook(&self, caller: &Caller, project: &ProjectId, id: &WebhookId) -> Result<TestSent> {
        self.access(caller, project).await?.require(Permission::ProjectManage)?;
        let endpoint = self.endpoint(project, id).await?;
        if !endpoint.enabled {
            return Err(Error::conflict("the endpoint is disabled: enable it before sending it a test event"));
        }
        let now = self.now();
        let data = json!({"project_id": project, "webhook_id": id, "actor_id": caller.id, "test": true});
        let event = Event::new(EventType::WebhookTest, now, data)?;
        let delivery = DeliveryId::generate();
        let target = Target { delivery: Some(delivery.clone()), ..Target::new(id.to_string()) };
        let sent = TestSent {
            event_id: event.id.clone(),
            message_id: message_id(&event.id, id.as_str()),
            delivery_id: delivery,
        };
        let queued = Queued { targets: Some(vec![target]), ..Queued::new(event) };
        let mut tx = self.tx();
        tx.put(layout::webhook_event(&queued.event.id), 1, &queued, Cond::NotExists);
        self.commit(tx, |_| Error::conflict("the test event exists already; try again")).await?;
        tracing::info!(project_id = %project, webhook_id = %id, message_id = %sent.message_id, "webhook test event queued");
        Ok(sent)
    }

    /// An endpoint's last deliveries, newest first: event, state, attempts, last outcome.
    pub async fn list_deliveries(&self, caller: &Caller, project: &ProjectId, id: &WebhookId) -> Result<Vec<Delivery>> {
        self.access(caller, project).await?.require(Permission::ProjectManage)?;
        self.endpoint(project, id).await?;
        let mut query = Query::prefix(layout::project_pk(project), layout::deliveries_of(id)).limit(LISTED_DELIVERIES);
        query.descending = true;
        self.store.query(&query).await?.items.iter().map(decode).collect()
    }

    /// Sends a delivery again now, with the same `webhook-id`: a failed one once its endpoint is
    /// back, or a delivered one a receiver lost.
    pub async fn retry_delivery(
        &self,
        caller: &Caller,
        project: &ProjectId,
        id: &WebhookId,
        delivery: &DeliveryId,
    ) -> Result<Delivery> {
        self.access(caller, project).await?.require(Permission::ProjectManage)?;
        let endpoint = self.endpoint(project, id).await?;
        if !endpoint.enabled {
            return Err(Error::conflict("the endpoint is disabled: enable it before retrying its deliveries"));
        }
        let (found, _) = self
            .load::<Delivery>(&layout::webhook_delivery(project, id, delivery))
            .await?
            .ok_or_else(|| Error::not_found("webhook delivery"))?;
        // Still queued (waiting for its next attempt): made due now, so that it is not sent
        // twice. Otherwise (delivered, or given up): queued again for this endpoint alone.
        let waiting = layout::webhook_event(&found.event.id);
        let mut tx = self.tx();
        match self.store.get(&waiting).await? {
            Some(item)
                if decode::<Queued>(&item)?.targets.iter().flatten().any(|t| t.delivery.as_ref() == Some(delivery)) =>
            {
                let mut queued: Queued = decode(&item)?;
                for target in queued.targets.iter_mut().flatten() {
                    if target.delivery.as_ref() == Some(delivery) {
                        target.next_at = None;
                    }
                }
                tx.put(waiting, item.version + 1, &queued, Cond::Version(item.version));
            }
            _ => {
                let target = Target { delivery: Some(found.id.clone()), ..Target::new(id.to_string()) };
                let queued = Queued { targets: Some(vec![target]), ..Queued::new(found.event.clone()) };
                let key = layout::webhook_event(&format!("{}#retry#{}", found.event.id, ulid::Ulid::new()));
                tx.put(key, 1, &queued, Cond::NotExists);
            }
        }
        self.commit(tx, |_| Error::conflict("the delivery changed meanwhile; try again")).await?;
        tracing::info!(project_id = %project, webhook_id = %id, delivery_id = %delivery, "webhook delivery retried");
        Ok(found)
    }

    async fn save_endpoint(
        &self,
        caller: &Caller,
        project: &ProjectId,
        endpoint: Endpoint,
        action: AuditAction,
    ) -> Result<Endpoint> {
        let saved = Endpoint { version: endpoint.version + 1, ..endpoint };
        let mut tx = self.tx();
        tx.put(layout::webhook(project, &saved.id), saved.version, &saved, Cond::Version(saved.version - 1)).audit(
            project,
            caller,
            action,
            &saved.id,
            json!({"host": host(&saved.url), "events": saved.view().events, "enabled": saved.enabled}),
            self.now(),
        );
        self.commit(tx, |_| Error::conflict("the endpoint changed meanwhile; try again")).await?;
        Ok(saved)
    }
}

/// The host of an endpoint's URL: what the audit log keeps (a path or query may hold what its
/// owner considers a credential).
fn host(url: &str) -> String {
    url::Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_owned)).unwrap_or_default()
}
