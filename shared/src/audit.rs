//! Audit events: who changed what, and when, per project.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{EventId, ProjectId, UserId};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    ProjectRegistered,
    RoleDefined,
    NodeRegistered,
    MemberSet,
    TemplateCreated,
    TemplateEdited,
    TemplateDeleted,
    KeyRequested,
    RequestApproved,
    RequestRejected,
    KeyRevoked,
    KeyRerolled,
    KeyLimitsChanged,
    KeyLeakReported,
    KeyTokenMinted,
    KeyTokenRevoked,
    KeyImported,
    SecretChanged,
    SecretDeleted,
    WebhookAdded,
    WebhookChanged,
    WebhookDeleted,
    WebhookSecretRotated,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AuditEvent {
    pub id: EventId,
    pub project_id: ProjectId,
    pub at: DateTime<Utc>,
    pub actor: UserId,
    pub action: AuditAction,
    /// The id or name of the object acted on.
    pub subject: String,
    /// Non-secret particulars (never a token or secret value).
    #[serde(default)]
    pub detail: serde_json::Value,
}
