//! Signed webhooks (issue 32), the rules underneath them: the events keygate tells programs
//! about and their payloads, the endpoint URLs it may call (no SSRF), the secrets it signs with
//! ([Standard Webhooks](https://www.standardwebhooks.com/), through the `standardwebhooks`
//! crate), and when a failed delivery is tried again. The endpoints' API, the outbox's event
//! records and the delivery workers build on these (docs/webhooks.md says what is in place).
//!
//! Decisions written down here:
//! - **An event is not a message.** One event (a change) becomes one message per endpoint that
//!   asked for its type; a message's `webhook-id` is derived from the event and the endpoint
//!   ([`message_id`]), so every retry, and a fan-out that runs twice, sends the same id.
//! - **No secret in a payload.** [`Event::new`] refuses data that holds a field named like a
//!   token, a secret or an Authorization header, whatever its value: payloads carry ids and facts.
//! - **Addresses, not names, are checked.** A URL's host is resolved and every address it
//!   resolves to must be public, at creation and again before each delivery (a name may be
//!   re-pointed at a private address after it was accepted: DNS rebinding); the delivery then
//!   connects to an address that was checked.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::secret::SecretValue;

/// The events a webhook endpoint can ask for; `as_str` is the payload's `type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EventType {
    #[serde(rename = "request.created")]
    RequestCreated,
    #[serde(rename = "request.approved")]
    RequestApproved,
    #[serde(rename = "request.rejected")]
    RequestRejected,
    #[serde(rename = "key.revoked")]
    KeyRevoked,
    #[serde(rename = "key.rerolled")]
    KeyRerolled,
    #[serde(rename = "key.limits_changed")]
    KeyLimitsChanged,
    /// The 7- and 1-day notices before a key expires.
    #[serde(rename = "key.expiring")]
    KeyExpiring,
    #[serde(rename = "key.leak_reported")]
    KeyLeakReported,
    /// 80 % and 100 % of a key's quota used in its period.
    #[serde(rename = "quota.threshold")]
    QuotaThreshold,
    #[serde(rename = "secrets.imported")]
    SecretsImported,
    #[serde(rename = "template.created")]
    TemplateCreated,
    #[serde(rename = "template.changed")]
    TemplateChanged,
    #[serde(rename = "template.deleted")]
    TemplateDeleted,
    /// Sent to one endpoint when its managers ask for a test event; never subscribed to.
    #[serde(rename = "webhook.test")]
    WebhookTest,
}

impl EventType {
    pub const ALL: [EventType; 13] = [
        Self::RequestCreated,
        Self::RequestApproved,
        Self::RequestRejected,
        Self::KeyRevoked,
        Self::KeyRerolled,
        Self::KeyLimitsChanged,
        Self::KeyExpiring,
        Self::KeyLeakReported,
        Self::QuotaThreshold,
        Self::SecretsImported,
        Self::TemplateCreated,
        Self::TemplateChanged,
        Self::TemplateDeleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RequestCreated => "request.created",
            Self::RequestApproved => "request.approved",
            Self::RequestRejected => "request.rejected",
            Self::KeyRevoked => "key.revoked",
            Self::KeyRerolled => "key.rerolled",
            Self::KeyLimitsChanged => "key.limits_changed",
            Self::KeyExpiring => "key.expiring",
            Self::KeyLeakReported => "key.leak_reported",
            Self::QuotaThreshold => "quota.threshold",
            Self::SecretsImported => "secrets.imported",
            Self::TemplateCreated => "template.created",
            Self::TemplateChanged => "template.changed",
            Self::TemplateDeleted => "template.deleted",
            Self::WebhookTest => "webhook.test",
        }
    }

    /// The type named `s`, or a problem that lists the types there are.
    pub fn parse(s: &str) -> Result<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s).ok_or_else(|| {
            let names: Vec<_> = Self::ALL.iter().map(|t| t.as_str()).collect();
            Error::invalid("events", format!("{s:?} is not an event type; the types are {}", names.join(", ")))
        })
    }
}

/// The JSON type of a field of an event's `data` (as JSON Schema names it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    String,
    Integer,
    Boolean,
    Object,
    Array,
    /// An RFC 3339 time, or null.
    Time,
}

impl FieldType {
    fn schema(self) -> Value {
        match self {
            Self::String => serde_json::json!({"type": "string"}),
            Self::Integer => serde_json::json!({"type": "integer"}),
            Self::Boolean => serde_json::json!({"type": "boolean"}),
            Self::Object => serde_json::json!({"type": "object"}),
            Self::Array => serde_json::json!({"type": "array", "items": {"type": "string"}}),
            Self::Time => serde_json::json!({"type": ["string", "null"], "format": "date-time"}),
        }
    }

    fn fits(self, v: &Value) -> bool {
        match self {
            Self::String => v.is_string(),
            Self::Integer => v.is_i64() || v.is_u64(),
            Self::Boolean => v.is_boolean(),
            Self::Object => v.is_object(),
            Self::Array => v.is_array(),
            Self::Time => v.is_null() || v.as_str().is_some_and(|t| DateTime::parse_from_rfc3339(t).is_ok()),
        }
    }
}

/// The version of the events' payloads; a change that removes or retypes a field makes a new one.
pub const EVENT_VERSION: u32 = 1;

impl EventType {
    /// The fields of this event's `data`: name, type, and whether every event has it. Audited
    /// changes also carry `actor_id`, who made the change.
    pub fn fields(self) -> Vec<(&'static str, FieldType, bool)> {
        use FieldType::{Array, Boolean, Integer, Object, String as S, Time};
        let mut fields = vec![("project_id", S, true)];
        let actor = ("actor_id", S, true);
        let key = [("key_id", S, true), ("user_id", S, true), ("template_id", S, true), ("data_layer_id", S, true)];
        match self {
            Self::TemplateCreated => fields.extend([actor, ("template_id", S, true), ("name", S, true)]),
            Self::TemplateChanged => {
                fields.extend([actor, ("template_id", S, true), ("name", S, true), ("version", Integer, true)])
            }
            Self::TemplateDeleted => fields.extend([
                actor,
                ("template_id", S, true),
                ("name", S, true),
                ("revoked_keys", Integer, true),
                ("cancelled_requests", Integer, true),
            ]),
            Self::RequestCreated => {
                fields.extend([actor, ("request_id", S, true), ("template_id", S, true), ("user_id", S, true)])
            }
            Self::RequestApproved => {
                fields.extend([actor, ("request_id", S, true)]);
                fields.extend(key);
            }
            Self::RequestRejected => fields.extend([actor, ("request_id", S, true), ("user_id", S, true)]),
            Self::KeyRevoked => {
                fields.push(actor);
                fields.extend(key);
            }
            Self::KeyRerolled => fields.extend([
                actor,
                ("key_id", S, true),
                ("user_id", S, true),
                ("generation", Integer, true),
                ("grace_seconds", Integer, true),
                ("previous_until", Time, true),
                ("secrets", Integer, true),
            ]),
            Self::KeyLimitsChanged => fields.extend([actor, ("key_id", S, true), ("limits", Object, true)]),
            Self::KeyExpiring => {
                fields.extend(key);
                fields.extend([("expires_at", Time, true), ("days_left", Integer, true)]);
            }
            Self::KeyLeakReported => fields.extend([
                actor,
                ("key_id", S, true),
                ("url", S, false),
                ("source", S, false),
                ("on_leak", S, true),
                ("generation", Integer, false),
            ]),
            Self::QuotaThreshold => {
                fields.extend(key);
                fields.extend([
                    ("percent", Integer, true),
                    ("used", Integer, true),
                    ("quota", Object, true),
                    ("period", S, true),
                ]);
            }
            Self::SecretsImported => {
                fields.extend([actor, ("key_id", S, true), ("prefix", S, true), ("secrets", Array, true)])
            }
            Self::WebhookTest => fields.extend([actor, ("webhook_id", S, true), ("test", Boolean, true)]),
        }
        fields
    }

    /// The JSON Schema of this event's payload (`type`, `timestamp`, `data`), versioned.
    pub fn schema(self) -> Value {
        let fields = self.fields();
        let properties: serde_json::Map<_, _> = fields.iter().map(|(n, t, _)| ((*n).to_owned(), t.schema())).collect();
        let required: Vec<&str> = fields.iter().filter(|f| f.2).map(|f| f.0).collect();
        serde_json::json!({
            "$id": format!("urn:keygate:webhook:{}:v{EVENT_VERSION}", self.as_str()),
            "title": self.as_str(),
            "type": "object",
            "required": ["type", "timestamp", "data"],
            "properties": {
                "type": {"const": self.as_str()},
                "timestamp": {"type": "string", "format": "date-time"},
                "data": {"type": "object", "required": required, "properties": properties, "additionalProperties": false},
            },
        })
    }

    /// Whether `data` is what [`EventType::fields`] documents: every required field, each of
    /// its type, and nothing else; the first difference in words.
    pub fn check_data(self, data: &Value) -> std::result::Result<(), String> {
        let Some(object) = data.as_object() else { return Err("data is not an object".into()) };
        let fields = self.fields();
        for (name, kind, required) in &fields {
            match object.get(*name) {
                None if *required => return Err(format!("{}: {name} is missing", self.as_str())),
                Some(v) if !kind.fits(v) => return Err(format!("{}: {name} is not {kind:?}: {v}", self.as_str())),
                _ => {}
            }
        }
        match object.keys().find(|k| !fields.iter().any(|f| f.0 == k.as_str())) {
            Some(extra) => Err(format!("{}: {extra} is not documented", self.as_str())),
            None => Ok(()),
        }
    }
}

/// Field names a payload never carries, whatever their value (compared without case, `-` and
/// `_`): a name that is or ends in `token`, `secret` or `password`, or is `authorization` or
/// `bearer`. A token, a secret or an Authorization header has no place in an event (the names
/// of imported secrets do: `secrets`, `secret_names`).
fn forbidden(name: &str) -> bool {
    let plain: String = name.chars().filter(|c| *c != '_' && *c != '-').flat_map(char::to_lowercase).collect();
    ["token", "secret", "password"].iter().any(|end| plain.ends_with(end))
        || plain == "authorization"
        || plain == "bearer"
}

fn forbidden_field(value: &Value) -> Option<String> {
    match value {
        Value::Object(map) => {
            map.iter().find_map(|(name, v)| if forbidden(name) { Some(name.clone()) } else { forbidden_field(v) })
        }
        Value::Array(items) => items.iter().find_map(forbidden_field),
        _ => None,
    }
}

/// The event an audited change is reported as, and the name its subject takes in the event's
/// data; `None` for changes no event reports (projects, roles, nodes, members, narrowed tokens
/// and secrets set by hand).
pub fn of_audit(action: crate::audit::AuditAction) -> Option<(EventType, &'static str)> {
    use crate::audit::AuditAction as A;
    Some(match action {
        A::TemplateCreated => (EventType::TemplateCreated, "template_id"),
        A::TemplateEdited => (EventType::TemplateChanged, "template_id"),
        A::TemplateDeleted => (EventType::TemplateDeleted, "template_id"),
        A::KeyRequested => (EventType::RequestCreated, "request_id"),
        A::RequestApproved => (EventType::RequestApproved, "request_id"),
        A::RequestRejected => (EventType::RequestRejected, "request_id"),
        A::KeyRevoked => (EventType::KeyRevoked, "key_id"),
        A::KeyRerolled => (EventType::KeyRerolled, "key_id"),
        A::KeyLimitsChanged => (EventType::KeyLimitsChanged, "key_id"),
        A::KeyLeakReported => (EventType::KeyLeakReported, "key_id"),
        A::KeyImported => (EventType::SecretsImported, "key_id"),
        A::ProjectRegistered
        | A::RoleDefined
        | A::NodeRegistered
        | A::MemberSet
        | A::KeyTokenMinted
        | A::KeyTokenRevoked
        | A::SecretChanged
        | A::SecretDeleted
        | A::WebhookAdded
        | A::WebhookChanged
        | A::WebhookDeleted
        | A::WebhookSecretRotated => return None,
    })
}

/// The event of an audited change: its data the project, who acted, the subject under its own
/// name, and the audit's particulars (never a secret: [`Event::new`] checks).
pub fn event_of_audit(audit: &crate::audit::AuditEvent) -> Option<Result<Event>> {
    let (kind, subject) = of_audit(audit.action)?;
    let mut data = serde_json::Map::new();
    data.insert("project_id".into(), Value::String(audit.project_id.to_string()));
    data.insert("actor_id".into(), Value::String(audit.actor.to_string()));
    data.insert(subject.into(), Value::String(audit.subject.clone()));
    if let Value::Object(detail) = &audit.detail {
        for (name, value) in detail {
            data.entry(name.clone()).or_insert_with(|| value.clone());
        }
    }
    Some(Event::new(kind, audit.at, Value::Object(data)))
}

/// One change keygate reports: its payload is `{"type", "timestamp", "data"}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Unique per change; with an endpoint's id it makes the message's `webhook-id`.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: EventType,
    pub timestamp: DateTime<Utc>,
    pub data: Value,
}

impl Event {
    /// An event of `kind` at `at` with `data` (an object of ids and facts); refused if a field
    /// of `data`, however deep, is named like a token, a secret or an Authorization header.
    pub fn new(kind: EventType, at: DateTime<Utc>, data: Value) -> Result<Self> {
        if !data.is_object() {
            return Err(Error::internal(format!("the data of a {} event is not an object", kind.as_str())));
        }
        if let Some(field) = forbidden_field(&data) {
            return Err(Error::internal(format!("the data of a {} event names {field:?}", kind.as_str())));
        }
        Ok(Self { id: format!("evt_{}", ulid::Ulid::new()), kind, timestamp: at, data })
    }

    /// An event about `key` (made by keygate, not by a person): the key's project, id, holder,
    /// template and data layer, and the facts in `more` (an object).
    pub fn about_key(kind: EventType, at: DateTime<Utc>, key: &crate::key::IssuedKey, more: Value) -> Result<Self> {
        let mut data = serde_json::json!({
            "project_id": key.project_id,
            "key_id": key.id,
            "user_id": key.user_id,
            "template_id": key.template_id,
            "data_layer_id": key.data_layer_id,
        });
        if let (Some(data), Value::Object(more)) = (data.as_object_mut(), more) {
            data.extend(more);
        }
        Self::new(kind, at, data)
    }

    /// The body sent: `type`, `timestamp` (RFC 3339, UTC) and `data`.
    pub fn payload(&self) -> String {
        let body = serde_json::json!({
            "type": self.kind.as_str(),
            "timestamp": self.timestamp.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "data": self.data,
        });
        body.to_string()
    }
}

/// Endpoints a project may have.
pub const MAX_ENDPOINTS: usize = 10;

/// A project's webhook endpoint: where its events go, which types, and the secrets they are
/// signed with. Stored with its secrets (HMAC needs them); never answered with them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Endpoint {
    pub id: crate::ids::WebhookId,
    pub project_id: crate::ids::ProjectId,
    pub url: String,
    /// The types sent; empty: every type.
    pub events: Vec<EventType>,
    pub enabled: bool,
    pub secret: SecretValue,
    /// The secret before the last rotation, signing beside the new one until `previous_until`.
    #[serde(default)]
    pub previous_secret: Option<SecretValue>,
    #[serde(default)]
    pub previous_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub created_by: crate::ids::UserId,
    /// Since when every delivery to it failed; `None` while it answers.
    #[serde(default)]
    pub failing_since: Option<DateTime<Utc>>,
    /// Why keygate disabled it (every delivery failed for 3 days); cleared when enabled again.
    #[serde(default)]
    pub disabled_reason: Option<String>,
    #[serde(skip)]
    pub version: u64,
}

impl Endpoint {
    /// Whether it asked for events of `kind`.
    pub fn wants(&self, kind: EventType) -> bool {
        self.enabled && (self.events.is_empty() || self.events.contains(&kind))
    }

    /// The secrets in force at `now`: the current one, and the one before a rotation for 24 h.
    pub fn secrets(&self, now: DateTime<Utc>) -> Vec<&SecretValue> {
        let mut secrets = vec![&self.secret];
        if let (Some(previous), Some(until)) = (&self.previous_secret, self.previous_until)
            && now < until
        {
            secrets.push(previous);
        }
        secrets
    }

    /// As the API answers it: never a secret.
    pub fn view(&self) -> EndpointView {
        EndpointView {
            id: self.id.clone(),
            project_id: self.project_id.clone(),
            url: self.url.clone(),
            events: self.events.iter().map(|e| e.as_str()).collect(),
            enabled: self.enabled,
            created_at: self.created_at,
            previous_secret_until: self.previous_until,
            failing_since: self.failing_since,
            disabled_reason: self.disabled_reason.clone(),
            version: self.version,
        }
    }
}

/// A webhook endpoint as the API shows it.
#[derive(Clone, Debug, Serialize)]
pub struct EndpointView {
    pub id: crate::ids::WebhookId,
    pub project_id: crate::ids::ProjectId,
    pub url: String,
    /// The types sent; empty: every type.
    pub events: Vec<&'static str>,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    /// Until when the secret before the last rotation still signs beside the new one.
    pub previous_secret_until: Option<DateTime<Utc>>,
    /// Since when every delivery failed (absent while it answers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<DateTime<Utc>>,
    /// Why keygate disabled it, in words (absent unless it did).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    pub version: u64,
}

/// What adding or changing an endpoint takes; `events` absent or empty: every type.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointInput {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

impl EndpointInput {
    /// The event types named, each known.
    pub fn event_types(&self) -> Result<Option<Vec<EventType>>> {
        let Some(names) = &self.events else { return Ok(None) };
        let mut types: Vec<EventType> = names.iter().map(|n| EventType::parse(n)).collect::<Result<_>>()?;
        types.sort();
        types.dedup();
        Ok(Some(types))
    }
}

/// An endpoint made or given a new secret: the secret, shown this once.
#[derive(Debug, Serialize)]
pub struct WithSecret {
    pub webhook: EndpointView,
    pub secret: SecretValue,
}

/// An event waiting in the outbox, and where it still has to go.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Queued {
    pub event: Event,
    /// The endpoints it goes to, each with how its delivery went so far; `None` until the
    /// worker first reads it and looks the endpoints up.
    #[serde(default)]
    pub targets: Option<Vec<Target>>,
    /// A worker is sending it until then; others leave it alone, so that several workers on
    /// one table (keygate-local processes, Lambda instances) send each message once. A worker
    /// that stops mid-way leaves a lease that runs out: the event is sent again, same id.
    #[serde(default)]
    pub lease_until: Option<DateTime<Utc>>,
}

impl Queued {
    pub fn new(event: Event) -> Self {
        Self { event, targets: None, lease_until: None }
    }
}

/// One endpoint an event goes to, and how its delivery went so far.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// [`DEPLOYMENT`], or a project endpoint's id.
    pub endpoint: String,
    /// Failed attempts so far.
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub first_attempt: Option<DateTime<Utc>>,
    /// Not tried again before then.
    #[serde(default)]
    pub next_at: Option<DateTime<Utc>>,
    /// The last attempt's outcome, in words (never an answer's body).
    #[serde(default)]
    pub last_outcome: Option<String>,
    /// The record of this delivery that a project's endpoint lists (none for the deployment's).
    #[serde(default)]
    pub delivery: Option<crate::ids::DeliveryId>,
}

impl Target {
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            attempts: 0,
            first_attempt: None,
            next_at: None,
            last_outcome: None,
            delivery: None,
        }
    }
}

/// Where a delivery to a project's endpoint stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    Delivered,
    /// Failed so far; tried again at `next_at`.
    Retrying,
    /// Given up after 3 days, or the endpoint was disabled or deleted meanwhile.
    Failed,
}

/// One event's delivery to one of a project's endpoints, as its managers see it: updated at
/// every attempt; Retry queues it again.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Delivery {
    pub id: crate::ids::DeliveryId,
    pub webhook_id: crate::ids::WebhookId,
    /// The message's `webhook-id`, the same on every attempt.
    pub message_id: String,
    pub event: Event,
    pub state: DeliveryState,
    pub attempts: u32,
    /// The last attempt's outcome in words, and when it was made.
    pub last_outcome: String,
    pub last_attempt_at: DateTime<Utc>,
    /// How long the last attempt took.
    pub took_ms: u64,
    pub next_at: Option<DateTime<Utc>>,
}

/// The deployment's own endpoint, where every event of every project goes (the platform listens
/// there), with the secrets it is signed with (the new one first).
#[derive(Clone, Debug)]
pub struct Deployment {
    pub url: String,
    pub secrets: Vec<SecretValue>,
}

/// The name of the deployment's own endpoint (the operator's) among an event's targets.
pub const DEPLOYMENT: &str = "deployment";

/// The `webhook-id` of `event`'s message to endpoint `endpoint`: the same on every retry and
/// whichever worker sends it, so a receiver can drop the duplicates at-least-once delivery sends.
pub fn message_id(event: &str, endpoint: &str) -> String {
    format!("msg_{}_{}", event.trim_start_matches("evt_"), endpoint)
}

/// Random bytes in a new signing secret (Standard Webhooks asks for 24 to 64).
const SECRET_BYTES: usize = 32;

/// A new endpoint secret, `whsec_` and the base64 of 32 random bytes: shown once, at creation
/// or rotation, and stored for signing only.
pub fn new_secret() -> SecretValue {
    let mut bytes = [0u8; SECRET_BYTES];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system random source works");
    SecretValue::new(format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(bytes)))
}

/// Whether `secret` can sign: `whsec_` and base64, as [`new_secret`] makes them; the words of
/// the problem otherwise (never the secret).
pub fn check_secret(secret: &SecretValue) -> std::result::Result<(), &'static str> {
    let signs = signed_headers("msg_probe", Utc::now(), "{}", &[secret]).is_ok();
    if signs && secret.expose().starts_with("whsec_") {
        Ok(())
    } else {
        Err("the webhook secret must be whsec_ followed by base64")
    }
}

/// How long the secret before a rotation still signs beside the new one.
pub const ROTATION_OVERLAP: chrono::Duration = chrono::Duration::hours(24);

/// The three Standard Webhooks headers of one message: `webhook-signature` holds one `v1,`
/// signature per secret in force (the new one first; the old one during a rotation's overlap).
pub fn signed_headers(
    message_id: &str,
    at: DateTime<Utc>,
    payload: &str,
    secrets: &[&SecretValue],
) -> Result<[(&'static str, String); 3]> {
    let timestamp = at.timestamp();
    let mut signatures = Vec::with_capacity(secrets.len());
    for secret in secrets {
        let signer = standardwebhooks::Webhook::new(secret.expose())
            .map_err(|_| Error::internal("a webhook secret is not whsec_ and base64"))?;
        let signature = signer
            .sign(message_id, timestamp, payload.as_bytes())
            .map_err(|_| Error::internal("a webhook payload is not UTF-8"))?;
        signatures.push(signature);
    }
    Ok([
        ("webhook-id", message_id.to_owned()),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", signatures.join(" ")),
    ])
}

/// One delivery attempt's time limit; the response body is read up to [`MAX_RESPONSE_BYTES`]
/// and ignored; redirects are not followed (a 3xx is a failed attempt).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// How long a message is tried: from its first attempt, after which it has failed for good,
/// and an endpoint that failed every message for as long is disabled (its owner is mailed).
pub const GIVE_UP_AFTER: chrono::Duration = chrono::Duration::days(3);

/// The waits after each failed attempt, as Standard Webhooks suggests; after the last, every
/// 10 hours until [`GIVE_UP_AFTER`].
const RETRY_WAITS: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];

/// When to try a message again after its `failed`-th failed attempt (1 for the first), its
/// first attempt made at `first`; `None` once [`GIVE_UP_AFTER`] has passed: it failed for good.
pub fn next_attempt(first: DateTime<Utc>, failed: u32, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let wait = RETRY_WAITS.get(failed.saturating_sub(1) as usize).copied().unwrap_or(RETRY_WAITS[6]);
    let next = now + chrono::Duration::from_std(wait).ok()?;
    (next <= first + GIVE_UP_AFTER).then_some(next)
}

/// How long a host name may take to resolve when an endpoint is checked.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);

/// Where keygate may send webhooks: on AWS only to public addresses (and the networks the
/// operator allows); on keygate-local also plain `http` to the loopback, for a receiver on the
/// same machine.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UrlPolicy {
    /// keygate-local: `http://` to a loopback address or `localhost` is allowed.
    pub local: bool,
    /// Networks the operator allows although they are not public (`10.1.0.0/16`).
    pub allowed: Vec<ipnet::IpNet>,
}

/// The endpoint URLs accepted and the words of each refusal, for the API's problem (`url`).
impl UrlPolicy {
    /// Checks the URL's form: `https` (or `http` to the loopback on keygate-local), a host,
    /// no user info, at most 2,000 characters. Addresses are checked by [`UrlPolicy::check_addresses`].
    pub fn check_url(&self, raw: &str) -> Result<url::Url> {
        let refuse = |why: &str| Err(Error::invalid("url", why.to_owned()));
        if raw.len() > 2000 {
            return refuse("is longer than 2,000 characters");
        }
        let Ok(url) = url::Url::parse(raw) else { return refuse("is not an absolute URL (https://host/path)") };
        if !url.username().is_empty() || url.password().is_some() {
            return refuse("must not hold a user name or password: send credentials in the signature's secret instead");
        }
        let Some(host) = url.host() else { return refuse("has no host") };
        if url.fragment().is_some() {
            return refuse("must not have a fragment (#...)");
        }
        match url.scheme() {
            "https" => {}
            "http" if self.local && is_loopback_host(&host) => {}
            "http" if self.local => {
                return refuse("may use plain http only to the loopback (127.0.0.1, ::1, localhost); use https");
            }
            "http" => return refuse("must use https"),
            _ => return refuse("must use https"),
        }
        let literal = match host {
            url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
            url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
            url::Host::Domain(_) => None,
        };
        if let Some(ip) = literal {
            self.check_addresses(&url, &[ip])?;
        }
        Ok(url)
    }

    /// Checks every address `url`'s host resolved to: each must be public, or in a network the
    /// operator allows, or (keygate-local, plain http) the loopback.
    pub fn check_addresses(&self, url: &url::Url, addresses: &[IpAddr]) -> Result<()> {
        if addresses.is_empty() {
            return Err(Error::invalid("url", "its host name does not resolve to any address"));
        }
        for &address in addresses {
            let address = canonical(address);
            if self.allowed.iter().any(|net| net.contains(&address)) {
                continue;
            }
            if self.local && address.is_loopback() {
                continue;
            }
            if let Some(class) = not_public(address) {
                let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
                // The address in parentheses when the host is a name (or another spelling of it).
                let named = if host == address.to_string() { String::new() } else { format!(" ({address})") };
                return Err(Error::invalid(
                    "url",
                    format!(
                        "{host} is {class}{named}: keygate sends webhooks to public addresses only, unless the operator allows the network"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Resolves `url`'s host and checks its addresses; answers them, for the delivery to
    /// connect to the addresses checked.
    pub async fn resolve(&self, url: &url::Url) -> Result<Vec<std::net::SocketAddr>> {
        let host = url.host_str().ok_or_else(|| Error::invalid("url", "has no host"))?;
        let port = url.port_or_known_default().unwrap_or(443);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let lookup = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port)));
        let found: Vec<_> = match lookup.await {
            Ok(Ok(found)) => found.collect(),
            Ok(Err(_)) => return Err(Error::invalid("url", format!("its host name {host} does not resolve"))),
            Err(_) => return Err(Error::invalid("url", format!("its host name {host} did not resolve within 3 s"))),
        };
        self.check_addresses(url, &found.iter().map(|a| a.ip()).collect::<Vec<_>>())?;
        Ok(found)
    }
}

fn is_loopback_host(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(v4) => v4.is_loopback(),
        url::Host::Ipv6(v6) => v6.is_loopback(),
    }
}

/// An IPv6 address that embeds an IPv4 one (mapped `::ffff:a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`)
/// as that IPv4 address: it is where the connection goes.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [a, b] = s[6].to_be_bytes();
                let [c, d] = s[7].to_be_bytes();
                return IpAddr::V4(Ipv4Addr::new(a, b, c, d));
            }
            IpAddr::V6(v6)
        }
        v4 => v4,
    }
}

/// Why `address` is not a public one, in words; `None` if it is.
fn not_public(address: IpAddr) -> Option<&'static str> {
    match address {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            if v4.is_unspecified() || a == 0 {
                Some("an unspecified address")
            } else if v4.is_loopback() {
                Some("a loopback address")
            } else if v4 == Ipv4Addr::new(169, 254, 169, 254) {
                Some("the cloud metadata address")
            } else if v4.is_link_local() {
                Some("a link-local address")
            } else if v4.is_private() || (a == 100 && (64..128).contains(&b)) || (a == 198 && (b == 18 || b == 19)) {
                Some("a private address")
            } else if v4.is_multicast() {
                Some("a multicast address")
            } else if v4.is_broadcast()
                || a >= 240
                || v4.is_documentation()
                || (a == 192 && b == 0 && v4.octets()[2] == 0)
            {
                Some("a reserved address")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            if v6.is_unspecified() {
                Some("an unspecified address")
            } else if v6.is_loopback() {
                Some("a loopback address")
            } else if first & 0xffc0 == 0xfe80 {
                Some("a link-local address")
            } else if v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
                Some("the cloud metadata address")
            } else if first & 0xfe00 == 0xfc00 {
                Some("a private address")
            } else if v6.is_multicast() {
                Some("a multicast address")
            } else if first == 0x2001 && v6.segments()[1] == 0xdb8 {
                Some("a reserved address")
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_event_type_reads_back_from_its_name() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()).unwrap(), t);
            assert_eq!(serde_json::to_value(t).unwrap(), json!(t.as_str()));
        }
        let err = EventType::parse("key.created").unwrap_err();
        assert!(err.to_string().contains("request.created, request.approved"), "{err}");
    }

    #[test]
    fn a_payload_is_type_timestamp_and_data_and_never_a_secret() {
        let at = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 12, 5, 9, 0, 0).unwrap();
        let e = Event::new(EventType::KeyRevoked, at, json!({"key_id": "K1", "project_id": "P1"})).unwrap();
        let payload: Value = serde_json::from_str(&e.payload()).unwrap();
        assert_eq!(
            payload,
            json!({"type": "key.revoked", "timestamp": "2026-12-05T09:00:00.000Z", "data": {"key_id": "K1", "project_id": "P1"}})
        );
        for data in [
            json!({"token": "x"}),
            json!({"key": {"Access_Token": "x"}}),
            json!({"items": [{"webhook-secret": "x"}]}),
            json!({"headers": {"Authorization": "Bearer x"}}),
            json!({"user": {"password": "x"}}),
        ] {
            assert!(Event::new(EventType::KeyRerolled, at, data.clone()).is_err(), "{data}");
        }
        let names = json!({"key_id": "K1", "secrets": ["srv_token", "srv_project"], "token_count": 2});
        assert!(Event::new(EventType::SecretsImported, at, names).is_ok(), "names of secrets are facts");
        assert!(Event::new(EventType::KeyRerolled, at, json!("text")).is_err(), "data is an object");
    }

    /// Signed as the crate's own test vector signs; verified by the crate with each secret of
    /// a rotation; an edited payload is refused.
    #[test]
    fn messages_are_signed_the_standard_way_with_every_secret_in_force() {
        let known = SecretValue::new("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD");
        let at = DateTime::from_timestamp(1649367553, 0).unwrap();
        let payload = r#"{"email":"test@example.com","username":"test_user"}"#;
        let [_, _, (_, signature)] = signed_headers("msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", at, payload, &[&known]).unwrap();
        assert_eq!(signature, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");

        let (new, old) = (new_secret(), new_secret());
        assert!(new.expose().starts_with("whsec_") && new.expose() != old.expose());
        let now = Utc::now();
        let headers = signed_headers("msg_1", now, payload, &[&new, &old]).unwrap();
        let mut map = http::HeaderMap::new();
        for (name, value) in &headers {
            map.insert(*name, value.parse().unwrap());
        }
        assert_eq!(headers[2].1.split(' ').count(), 2, "both signatures during the overlap");
        for secret in [&new, &old] {
            let receiver = standardwebhooks::Webhook::new(secret.expose()).unwrap();
            receiver.verify(payload.as_bytes(), &map).unwrap();
            assert!(receiver.verify(br#"{"email":"other@example.com"}"#, &map).is_err());
        }
        let stranger = standardwebhooks::Webhook::new(new_secret().expose()).unwrap();
        assert!(stranger.verify(payload.as_bytes(), &map).is_err());
    }

    #[test]
    fn retries_follow_the_standard_schedule_then_every_ten_hours_for_three_days() {
        let first = Utc::now();
        let mut now = first;
        let mut waits = Vec::new();
        let mut failed = 1;
        while let Some(next) = next_attempt(first, failed, now) {
            waits.push((next - now).num_seconds());
            now = next;
            failed += 1;
        }
        assert_eq!(waits[..7], [5, 300, 1800, 7200, 18000, 36000, 36000]);
        assert!(waits[7..].iter().all(|w| *w == 36000), "{waits:?}");
        assert!(now <= first + GIVE_UP_AFTER && now + chrono::Duration::hours(10) > first + GIVE_UP_AFTER);
        assert_eq!(message_id("evt_01ABC", "WH1"), message_id("evt_01ABC", "WH1"), "the same id on every retry");
    }

    /// The refused URLs, each with the rule it breaks in its problem.
    #[test]
    fn urls_that_would_reach_inside_are_refused_with_the_rule_they_break() {
        let aws = UrlPolicy::default();
        let local = UrlPolicy { local: true, ..Default::default() };
        let cases: [(&UrlPolicy, &str, &str); 24] = [
            (&aws, "http://hooks.example.com/in", "must use https"),
            (&aws, "ftp://hooks.example.com/in", "must use https"),
            (&aws, "https://user:pw@hooks.example.com/in", "user name or password"),
            (&aws, "https://user@hooks.example.com/in", "user name or password"),
            (&aws, "hooks.example.com/in", "not an absolute URL"),
            (&aws, "https://hooks.example.com/in#x", "fragment"),
            (&aws, "https://10.0.0.5/in", "a private address"),
            (&aws, "https://172.16.3.4/in", "a private address"),
            (&aws, "https://192.168.1.1/in", "a private address"),
            (&aws, "https://100.64.0.1/in", "a private address"),
            (&aws, "https://169.254.169.254/latest/meta-data/", "the cloud metadata address"),
            (&aws, "https://169.254.10.10/in", "a link-local address"),
            (&aws, "https://127.0.0.1/in", "a loopback address"),
            (&aws, "https://[::1]/in", "a loopback address"),
            (&aws, "https://[::ffff:10.0.0.5]/in", "a private address"),
            (&aws, "https://[64:ff9b::a9fe:a9fe]/in", "the cloud metadata address"),
            (&aws, "https://[fd00:ec2::254]/in", "the cloud metadata address"),
            (&aws, "https://[fe80::1]/in", "a link-local address"),
            (&aws, "https://[fc00::1]/in", "a private address"),
            (&aws, "https://224.0.0.1/in", "a multicast address"),
            (&aws, "https://0.0.0.0/in", "an unspecified address"),
            (&aws, "https://2130706433/in", "a loopback address"),
            (&local, "http://hooks.example.com/in", "plain http only to the loopback"),
            (&local, "https://10.0.0.5/in", "a private address"),
        ];
        for (policy, url, rule) in cases {
            let err = policy.check_url(url).unwrap_err();
            assert_eq!(err.status(), 422, "{url}");
            assert!(err.to_string().starts_with("url: ") && err.to_string().contains(rule), "{url}: {err}");
        }
        for url in ["https://hooks.example.com/in", "https://93.184.215.14:8443/in"] {
            aws.check_url(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        }
        for url in ["http://127.0.0.1:9000/in", "http://localhost:9000/in", "http://[::1]:9000/in"] {
            local.check_url(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        }
        // A name is checked by its addresses: one private address among public ones refuses it.
        let url = url::Url::parse("https://rebound.example.com/in").unwrap();
        let public: IpAddr = "93.184.215.14".parse().unwrap();
        let err = aws.check_addresses(&url, &[public, "10.1.2.3".parse().unwrap()]).unwrap_err();
        assert!(err.to_string().contains("rebound.example.com is a private address (10.1.2.3)"), "{err}");
        let allowed = UrlPolicy { allowed: vec!["10.1.0.0/16".parse().unwrap()], ..Default::default() };
        allowed.check_addresses(&url, &[public, "10.1.2.3".parse().unwrap()]).unwrap();
        assert!(allowed.check_addresses(&url, &["10.2.0.1".parse().unwrap()]).is_err(), "only the network allowed");
    }

    /// A name is resolved and its addresses checked (at creation and before each delivery): a
    /// name that resolves to the loopback is refused on AWS, and allowed over http on
    /// keygate-local, which then connects to the addresses it checked.
    #[tokio::test]
    async fn a_name_that_resolves_inside_is_refused_by_its_address() {
        let url = UrlPolicy::default().check_url("https://localhost:8443/in").unwrap();
        let err = UrlPolicy::default().resolve(&url).await.unwrap_err();
        assert!(err.to_string().contains("localhost is a loopback address ("), "{err}");
        let local = UrlPolicy { local: true, ..Default::default() };
        let url = local.check_url("http://localhost:9000/in").unwrap();
        let addresses = local.resolve(&url).await.unwrap();
        assert!(addresses.iter().all(|a| a.ip().is_loopback() && a.port() == 9000), "{addresses:?}");
        let nowhere = url::Url::parse("https://keygate-test.invalid/in").unwrap();
        let err = UrlPolicy::default().resolve(&nowhere).await.unwrap_err();
        assert!(err.to_string().contains("does not resolve"), "{err}");
    }
}
