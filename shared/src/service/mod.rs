//! keygate's operations: each one checks who may do it, applies the domain rules and commits
//! its changes, with an audit event and any mail, in one conditional transaction.

mod endpoints;
pub use endpoints::TestSent as WebhookTestSent;
mod export;
mod key_self;
mod keys;
mod leaks;
mod outbox;
mod projects;
mod requests;
mod rerolls;
mod secrets;
mod templates;
mod tokens;
#[cfg(feature = "delivery")]
mod webhooks;

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use crate::webhook::Deployment as WebhookDeployment;
pub use export::{Export, ExportFormat, MAX_EXPORT_KEYS};
pub use key_self::{KeySelf, KeyState};
pub(crate) use keys::usage_items;
pub use keys::{IssuedKeyRow, MyKey, Revocation, TokenAnswer};
pub use leaks::LeakOutcome;
pub use outbox::{Notification, queued_event, queued_mail};
pub use requests::{Approval, Decision as RequestDecision};
pub use rerolls::{Reroll, RerollInput};
pub use secrets::ImportAnswer;
pub use templates::{Expected, TemplateWithTile};
#[cfg(feature = "delivery")]
pub use webhooks::{FAILING_ALARM_AFTER as WEBHOOK_FAILING_ALARM_AFTER, Round as WebhookRound, deliver_until};

use crate::audit::{AuditAction, AuditEvent};
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::identity::Caller;
use crate::ids::{EventId, KeyId, ProjectId, TemplateId};
use crate::mail::{Mail, Mailer};
use crate::permission::Permissions;
use crate::project::{Access, Member, Project, Role};
use crate::signing::KeyRing;
use crate::store::{Cond, Cursor, Item, ItemKey, Query, Store, Write, layout, query_all};

/// Settings the operations need beyond their collaborators.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Base URL of the console, for links in mail.
    pub console_url: String,
    /// Partitions each key's usage buckets are spread over (1 unless a key is very busy).
    pub usage_shards: u32,
    /// The public keys leaked-key reports must be signed with (none: reports are refused).
    pub scanning: crate::scanning::ScanningKeys,
    /// The currency of prices and costs, for the billing export's amounts.
    pub currency: crate::money::Currency,
    /// Whether changes queue webhook events (this deployment delivers webhooks): written in the
    /// same transaction as the change, delivered by the webhook worker.
    pub webhook_events: bool,
    /// Where projects' webhook endpoints may point; `None`: this deployment delivers no
    /// webhooks yet, and adding an endpoint is refused.
    pub webhook_policy: Option<crate::webhook::UrlPolicy>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            console_url: "http://127.0.0.1:3000".into(),
            usage_shards: 1,
            scanning: Default::default(),
            currency: Default::default(),
            webhook_events: false,
            webhook_policy: None,
        }
    }
}

/// Everything an operation needs, built once per process from configuration.
pub struct App {
    pub store: Arc<dyn Store>,
    pub mailer: Arc<dyn Mailer>,
    pub keys: Arc<KeyRing>,
    pub clock: Arc<dyn Clock>,
    pub settings: Settings,
    /// Told of revoked keys and changed templates (the authorizer's caches in the same process).
    pub key_events: Arc<dyn KeyEvents>,
}

/// What the operations tell whatever in their process remembers keys and templates, so that a
/// revocation or a template change applies there from the next call on.
pub trait KeyEvents: Send + Sync {
    fn key_retired(&self, project: &ProjectId, key: &KeyId);
    fn template_changed(&self, project: &ProjectId, template: &TemplateId);
}

/// Nobody to tell (a Lambda function: the authorizer runs in another process).
pub struct NoKeyEvents;

impl KeyEvents for NoKeyEvents {
    fn key_retired(&self, _: &ProjectId, _: &KeyId) {}
    fn template_changed(&self, _: &ProjectId, _: &TemplateId) {}
}

/// A page of a list, as every list route answers it.
#[derive(Debug, Serialize)]
pub struct ListPage<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// `?limit=&cursor=` of a list route.
#[derive(Clone, Debug)]
pub struct PageRequest {
    pub limit: usize,
    pub cursor: Option<Cursor>,
}

/// The first page, of the size a list route answers without `?limit=`.
impl Default for PageRequest {
    fn default() -> Self {
        Self { limit: DEFAULT_PAGE, cursor: None }
    }
}

pub const DEFAULT_PAGE: usize = 50;
pub const MAX_PAGE: usize = 100;

impl PageRequest {
    pub fn parse(limit: Option<&str>, cursor: Option<&str>) -> Result<Self> {
        Self::parse_up_to(limit, cursor, MAX_PAGE)
    }

    /// `?limit=&cursor=` of a route whose pages hold at most `max` items (and `max` by default
    /// when that is fewer than [`DEFAULT_PAGE`]).
    pub fn parse_up_to(limit: Option<&str>, cursor: Option<&str>, max: usize) -> Result<Self> {
        let limit = match limit {
            None => DEFAULT_PAGE.min(max),
            Some(s) => match s.parse::<usize>() {
                Ok(n) if (1..=max).contains(&n) => n,
                _ => {
                    return Err(Error::invalid("limit", format!("must be an integer from 1 to {max}")));
                }
            },
        };
        let cursor = cursor.filter(|c| !c.is_empty()).map(Cursor::decode).transpose()?;
        Ok(Self { limit, cursor })
    }

    fn apply(&self, query: Query) -> Query {
        query.limit(self.limit).after(self.cursor.clone())
    }
}

pub(crate) fn decode<T: DeserializeOwned>(item: &Item) -> Result<T> {
    serde_json::from_str(&item.body).map_err(|e| {
        Error::internal(crate::store::StoreError::Corrupt(format!("{}/{}", item.key.pk, item.key.sk), Box::new(e)))
    })
}

pub(crate) fn encode<T: Serialize>(key: ItemKey, version: u64, value: &T) -> Item {
    Item {
        key,
        index_key: None,
        version,
        body: serde_json::to_string(value).expect("entities serialize to JSON"),
        counters: Default::default(),
    }
}

/// The writes of one operation, committed together.
#[derive(Default)]
pub(crate) struct Tx {
    writes: Vec<Write>,
    mail: Vec<(ItemKey, Mail)>,
    /// Whether audited changes also queue their webhook event ([`Settings::webhook_events`]).
    events: bool,
}

impl Tx {
    /// The writes so far.
    pub fn len(&self) -> usize {
        self.writes.len()
    }

    pub fn put<T: Serialize>(&mut self, key: ItemKey, version: u64, value: &T, cond: Cond) -> &mut Self {
        self.writes.push(Write::Put { item: encode(key, version, value), cond });
        self
    }

    pub fn put_indexed<T: Serialize>(
        &mut self,
        key: ItemKey,
        index: ItemKey,
        version: u64,
        value: &T,
        cond: Cond,
    ) -> &mut Self {
        let mut item = encode(key, version, value);
        item.index_key = Some(index);
        self.writes.push(Write::Put { item, cond });
        self
    }

    pub fn delete(&mut self, key: ItemKey, cond: Cond) -> &mut Self {
        self.writes.push(Write::Delete { key, cond });
        self
    }

    pub fn check(&mut self, key: ItemKey, cond: Cond) -> &mut Self {
        self.writes.push(Write::Check { key, cond });
        self
    }

    pub fn audit(
        &mut self,
        project: &ProjectId,
        actor: &Caller,
        action: AuditAction,
        subject: impl ToString,
        detail: serde_json::Value,
        now: chrono::DateTime<chrono::Utc>,
    ) -> &mut Self {
        let event = AuditEvent {
            id: EventId::generate(),
            project_id: project.clone(),
            at: now,
            actor: actor.id.clone(),
            action,
            subject: subject.to_string(),
            detail,
        };
        if self.events
            && let Some(made) = crate::webhook::event_of_audit(&event)
        {
            match made {
                Ok(webhook) => {
                    self.writes.push(queued_event(webhook));
                }
                // A field named like a secret in an audit's particulars: a bug, never sent.
                Err(e) => tracing::error!(error = %e, action = ?action, "webhook event not queued"),
            }
        }
        self.put(layout::audit(project, &event.id), 1, &event, Cond::NotExists)
    }

    /// Queues mail to be sent at `due`, and only if the key `about` is still usable then (the
    /// retry drops it otherwise).
    pub fn mail_later(&mut self, mail: Mail, due: chrono::DateTime<chrono::Utc>, about: ItemKey) -> &mut Self {
        let key = layout::later(due, &ulid::Ulid::new().to_string());
        let pending = outbox::Pending { mail, queued_at: due, attempts: 0, about_key: Some(about), announced: false };
        self.put(key, 1, &pending, Cond::NotExists)
    }

    /// A key's record, at its own version, with its place in the holder's index (My keys).
    pub fn put_key(&mut self, key: &crate::key::IssuedKey, cond: Cond) -> &mut Self {
        let index = layout::key_by_holder(&key.user_id, &key.id);
        self.put_indexed(layout::key(&key.project_id, &key.id), index, key.version, key, cond)
    }

    /// Queues mail in the outbox, committed with the state change it reports.
    pub fn mail(&mut self, mail: Mail, now: chrono::DateTime<chrono::Utc>) -> &mut Self {
        let key = layout::outbox(&ulid::Ulid::new().to_string());
        let pending =
            outbox::Pending { mail: mail.clone(), queued_at: now, attempts: 0, about_key: None, announced: false };
        self.put(key.clone(), 1, &pending, Cond::NotExists);
        self.mail.push((key, mail));
        self
    }
}

impl App {
    pub fn new(
        store: Arc<dyn Store>,
        mailer: Arc<dyn Mailer>,
        keys: Arc<KeyRing>,
        clock: Arc<dyn Clock>,
        settings: Settings,
    ) -> Self {
        Self { store, mailer, keys, clock, settings, key_events: Arc::new(NoKeyEvents) }
    }

    /// The same application with other collaborators (telling nobody of key events): for tests
    /// and tools.
    pub fn with(
        &self,
        store: Arc<dyn Store>,
        mailer: Arc<dyn Mailer>,
        keys: Arc<KeyRing>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self::new(store, mailer, keys, clock, self.settings.clone())
    }

    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// A transaction of this deployment: its audited changes queue webhook events if it has
    /// webhooks.
    pub(crate) fn tx(&self) -> Tx {
        Tx { events: self.settings.webhook_events, ..Tx::default() }
    }

    /// Waits for `at`, when a change of limits is in force on every instance
    /// ([`crate::limits::SETTLE`]), so that an edit answers once it holds.
    pub(crate) async fn in_force_at(&self, at: chrono::DateTime<chrono::Utc>) {
        tokio::time::sleep(self.clock.wait_for(at)).await;
    }

    pub(crate) async fn load<T: DeserializeOwned>(&self, key: &ItemKey) -> Result<Option<(T, u64)>> {
        match self.store.get(key).await? {
            Some(item) => Ok(Some((decode(&item)?, item.version))),
            None => Ok(None),
        }
    }

    pub(crate) async fn load_all<T: DeserializeOwned>(&self, pk: String, prefix: &str) -> Result<Vec<T>> {
        query_all(self.store.as_ref(), Query::prefix(pk, prefix).limit(1000)).await?.iter().map(decode).collect()
    }

    pub(crate) async fn page<T: DeserializeOwned>(&self, query: Query, page: &PageRequest) -> Result<ListPage<T>> {
        let p = self.store.query(&page.apply(query)).await?;
        Ok(ListPage {
            items: p.items.iter().map(decode).collect::<Result<_>>()?,
            next_cursor: p.next.map(|c| c.encode()),
        })
    }

    /// Commits the writes, then delivers their mail. `on_condition` turns the index of a failed
    /// condition into the error the caller should see.
    pub(crate) async fn commit(&self, tx: Tx, on_condition: impl FnOnce(usize) -> Error) -> Result<Notification> {
        match self.store.transact(tx.writes).await {
            Ok(()) => {}
            Err(crate::store::StoreError::ConditionFailed { index }) => {
                return Err(on_condition(index));
            }
            Err(e) => return Err(e.into()),
        }
        let mut notification = Notification::None;
        for (key, mail) in tx.mail {
            notification = notification.and(self.deliver(&key, &mail).await);
        }
        Ok(notification)
    }

    pub(crate) async fn project(&self, id: &ProjectId) -> Result<Project> {
        self.load(&layout::project(id)).await?.map(|(p, _)| p).ok_or_else(|| Error::not_found("project"))
    }

    pub(crate) async fn roles(&self, id: &ProjectId) -> Result<Vec<Role>> {
        self.load_all(layout::project_pk(id), layout::ROLES).await
    }

    /// What `caller` may do on project `id`. A project the caller may not see is "not found".
    pub async fn access(&self, caller: &Caller, id: &ProjectId) -> Result<Access> {
        let project = self.project(id).await?;
        let roles = self.roles(id).await?;
        let member: Option<(Member, u64)> = self.load(&layout::member(id, &caller.id)).await?;
        let member_role = member.as_ref().map(|(m, _)| &m.role);
        let permissions = roles
            .iter()
            .filter(|r| r.public || Some(&r.name) == member_role)
            .fold(Permissions::NONE, |acc, r| acc.union(r.permissions));
        Ok(Access { project, roles, permissions, is_member: member.is_some() })
    }
}
