//! The key layout of the single table, in one place. Every entity of a project lives in the
//! project's partition `P#<project>`, so a project's data is read with one query and one
//! project can never reach another's items by key. Usage buckets live in partitions of their own
//! (`U#<key>#<shard>`), sharded so that a busy key is not bound to one partition's write rate.

use chrono::{DateTime, Datelike, Timelike, Utc};

use super::ItemKey;
use crate::ids::{DataLayerId, EventId, KeyId, NodeId, ProjectId, RequestId, RoleName, SecretName, TemplateId, UserId};

pub fn project_pk(p: &ProjectId) -> String {
    format!("P#{p}")
}

pub fn project(p: &ProjectId) -> ItemKey {
    ItemKey::new(project_pk(p), "PROJECT")
}

pub const ROLES: &str = "ROLE#";
pub fn role(p: &ProjectId, name: &RoleName) -> ItemKey {
    ItemKey::new(project_pk(p), format!("{ROLES}{name}"))
}

pub const NODES: &str = "NODE#";
pub fn node(p: &ProjectId, n: &NodeId) -> ItemKey {
    ItemKey::new(project_pk(p), format!("{NODES}{n}"))
}

pub const MEMBERS: &str = "MEMBER#";
pub fn member(p: &ProjectId, u: &UserId) -> ItemKey {
    ItemKey::new(project_pk(p), format!("{MEMBERS}{u}"))
}

pub const TEMPLATES: &str = "TPL#";
pub fn template(p: &ProjectId, t: &TemplateId) -> ItemKey {
    ItemKey::new(project_pk(p), format!("{TEMPLATES}{t}"))
}

/// Holds a template name so that names are unique in a project, as people read them: by
/// [`crate::project::name_key`] (compatibility forms, case and runs of spaces folded; for an
/// ASCII name with single spaces, its lower case, as before).
pub fn template_name(p: &ProjectId, name: &str) -> ItemKey {
    ItemKey::new(project_pk(p), format!("TPLNAME#{}", crate::project::name_key(name)))
}

pub const REQUESTS: &str = "REQ#";
pub fn request(p: &ProjectId, r: &RequestId) -> ItemKey {
    ItemKey::new(project_pk(p), format!("{REQUESTS}{r}"))
}

/// A pending request's marker, written and removed with the request's status: the owner's
/// pending list and count read these alone, however many requests were decided before.
pub const PENDING: &str = "PENDING#";
pub fn pending(p: &ProjectId, r: &RequestId) -> ItemKey {
    ItemKey::new(project_pk(p), format!("{PENDING}{r}"))
}

pub const KEYS: &str = "KEY#";
pub fn key(p: &ProjectId, k: &KeyId) -> ItemKey {
    ItemKey::new(project_pk(p), format!("{KEYS}{k}"))
}

/// The secondary-index key of a key: the holder's keys across projects.
pub fn user_pk(u: &UserId) -> String {
    format!("U#{u}")
}
pub fn key_by_holder(u: &UserId, k: &KeyId) -> ItemKey {
    ItemKey::new(user_pk(u), format!("{KEYS}{k}"))
}

/// The secondary-index key of a membership: the projects a user belongs to.
pub const MEMBERSHIPS: &str = "PROJECT#";
pub fn membership(u: &UserId, p: &ProjectId) -> ItemKey {
    ItemKey::new(user_pk(u), format!("{MEMBERSHIPS}{p}"))
}

/// A user's tile on a template: the state of their latest request or key for it. It is also
/// the lock that makes "one pending request, or one active key, per user and template" hold.
pub fn tiles_of(u: &UserId) -> String {
    format!("TILE#{u}#")
}
pub fn tile(p: &ProjectId, u: &UserId, t: &TemplateId) -> ItemKey {
    ItemKey::new(project_pk(p), format!("{}{t}", tiles_of(u)))
}

pub const DATA_LAYERS: &str = "LAYER#";
pub fn data_layer(p: &ProjectId, l: &DataLayerId) -> ItemKey {
    ItemKey::new(project_pk(p), format!("{DATA_LAYERS}{l}"))
}

pub const SECRETS: &str = "SECRET#";
pub fn secret(p: &ProjectId, name: &SecretName) -> ItemKey {
    ItemKey::new(project_pk(p), format!("{SECRETS}{name}"))
}

/// Where a key's token was imported: one item per secret holding it, in the key's project
/// (`IMPORT#<key>#<client project>#<secret>`), so that a reroll finds and updates them all.
pub fn imports_of(k: &KeyId) -> String {
    format!("IMPORT#{k}#")
}
pub fn import(key_project: &ProjectId, k: &KeyId, client: &ProjectId, name: &SecretName) -> ItemKey {
    ItemKey::new(project_pk(key_project), format!("{}{client}#{name}", imports_of(k)))
}

pub const AUDIT: &str = "AUDIT#";
pub fn audit(p: &ProjectId, e: &EventId) -> ItemKey {
    ItemKey::new(project_pk(p), format!("{AUDIT}{e}"))
}

pub fn usage_pk(k: &KeyId, shard: u32) -> String {
    format!("USAGE#{k}#{shard}")
}

/// The prefix of every hour bucket's sort key.
pub const USAGE_HOURS: &str = "H#";

/// The sort key of an hour bucket: `H#2026-11-23T16`, which sorts by time. Written field by
/// field: this runs on every metered call, and chrono's `format` parses its pattern each time.
pub fn usage_hour(hour: DateTime<Utc>) -> String {
    format!("{USAGE_HOURS}{:04}-{:02}-{:02}T{:02}", hour.year(), hour.month(), hour.day(), hour.hour())
}

pub fn usage_bucket(k: &KeyId, shard: u32, hour: DateTime<Utc>) -> ItemKey {
    ItemKey::new(usage_pk(k, shard), usage_hour(hour))
}

/// The prefix of a key's rows of calls made with narrowed tokens, by label and hour, beside
/// the hour buckets (which count those calls too): `L#ci#2026-11-23T16`.
pub const USAGE_LABELS: &str = "L#";

pub fn usage_label(k: &KeyId, shard: u32, label: &str, hour: DateTime<Utc>) -> ItemKey {
    ItemKey::new(usage_pk(k, shard), format!("{USAGE_LABELS}{label}#{}", &usage_hour(hour)[USAGE_HOURS.len()..]))
}

/// A narrowed token's record, beside its key in the project's partition.
pub fn tokens_of(k: &KeyId) -> String {
    format!("NTOKEN#{k}#")
}
pub fn narrowed_token(p: &ProjectId, k: &KeyId, t: &crate::ids::TokenId) -> ItemKey {
    ItemKey::new(project_pk(p), format!("{}{t}", tokens_of(k)))
}

/// A project's webhook endpoints ([`crate::webhook::Endpoint`]), in its partition.
pub const WEBHOOKS: &str = "WEBHOOK#";
pub fn webhook(p: &ProjectId, w: &crate::ids::WebhookId) -> ItemKey {
    ItemKey::new(project_pk(p), format!("{WEBHOOKS}{w}"))
}

/// An endpoint's deliveries, newest last (by their ULID), in the project's partition.
pub fn deliveries_of(w: &crate::ids::WebhookId) -> String {
    format!("WHD#{w}#")
}
pub fn webhook_delivery(p: &ProjectId, w: &crate::ids::WebhookId, d: &crate::ids::DeliveryId) -> ItemKey {
    ItemKey::new(project_pk(p), format!("{}{d}", deliveries_of(w)))
}

/// The prefix of a key's refusal rows, in the partition of its shard 0 beside the hour
/// buckets: `R#2026-11-23T16`, one row per hour with a counter per outcome. Apart from the
/// buckets, whose body (`last_used_at`) every allowed call replaces.
pub const REFUSAL_HOURS: &str = "R#";

pub fn refusal_hour(hour: DateTime<Utc>) -> String {
    format!("{REFUSAL_HOURS}{}", &usage_hour(hour)[USAGE_HOURS.len()..])
}

pub fn key_refusals(k: &KeyId, hour: DateTime<Utc>) -> ItemKey {
    ItemKey::new(usage_pk(k, 0), refusal_hour(hour))
}

/// Calls to a project whose token names no key of it (forged, another project's, none), by
/// reason and hour: written only while the project exists.
pub fn project_refusals_pk(p: &ProjectId) -> String {
    format!("REFUSED#{p}")
}

pub fn project_refusals(p: &ProjectId, hour: DateTime<Utc>) -> ItemKey {
    ItemKey::new(project_refusals_pk(p), usage_hour(hour))
}

/// A key's quota counter for one period (`D2026-12-02` or `M2026-12`): its own partition per
/// key, like the usage buckets, but never sharded: the quota is decided on one item.
pub fn quota_counter(k: &KeyId, period: &str) -> ItemKey {
    ItemKey::new(format!("QUOTA#{k}"), period)
}

/// A strict rate limit's item for a key without a quota (with one, the rate lives on the
/// quota's counter item): in the key's counter partition.
pub fn rate(k: &KeyId) -> ItemKey {
    ItemKey::new(format!("QUOTA#{k}"), "RATE")
}

/// Mail to send later (a key's expiry notices), by the time it is due: `2026-12-10T16:00:00Z#<id>`,
/// so the retry reads the due ones with one range query however many wait.
pub const LATER_PK: &str = "OUTBOX#LATER";
pub fn later_sk(due: DateTime<Utc>) -> String {
    due.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
pub fn later(due: DateTime<Utc>, id: &str) -> ItemKey {
    ItemKey::new(LATER_PK, format!("{}#{id}", later_sk(due)))
}

/// Webhook events waiting for delivery ([`crate::webhook`]): one item per change, by its
/// event id (a ULID: in the order of the changes), written with the change.
pub const WEBHOOK_EVENTS_PK: &str = "OUTBOX#WEBHOOKS";
pub fn webhook_event(id: &str) -> ItemKey {
    ItemKey::new(WEBHOOK_EVENTS_PK, id)
}

/// Mail committed with a state change and not yet delivered.
pub const OUTBOX_PK: &str = "OUTBOX";
pub fn outbox(id: &str) -> ItemKey {
    ItemKey::new(OUTBOX_PK, id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn template_names_are_case_folded_for_uniqueness() {
        let p = ProjectId::generate();
        assert_eq!(template_name(&p, "Weather API"), template_name(&p, "weather api"));
    }

    #[test]
    fn usage_hours_sort_by_time() {
        let a = usage_hour(Utc.with_ymd_and_hms(2026, 9, 30, 23, 0, 0).unwrap());
        let b = usage_hour(Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).unwrap());
        assert_eq!(a, "H#2026-09-30T23");
        assert!(a < b);
    }
}
