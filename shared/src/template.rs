//! API key templates and their information fields, with every rule a template must satisfy.

use crate::narrowed::NarrowedPolicy;
use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{Error, FieldError, Result};
use crate::ids::{FieldName, NodeId, ProjectId, RoleName, TemplateId};
use crate::limits::{Before, TemplateLimits};
use crate::permission::Permission;
use crate::project::{Role, check_name, check_text, finish};

pub const MAX_FIELDS: usize = 32;
pub const MAX_PRICE: i64 = 1_000_000_000;
pub const MAX_VALIDITY_DAYS: i64 = 3650;
pub const MAX_FIELD_VALUE: usize = 4096;
pub const MAX_QUOTA: i64 = 1_000_000_000;
pub const MAX_RATE: u32 = 100_000;
pub const MAX_BURST: u32 = 1_000_000;
/// `<prefix>_token` holds the key itself, so no field may be called `token`.
pub const RESERVED_FIELD: &str = "token";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    Text,
    Project,
    Node,
}

/// A value handed to the key holder with the key, imported as the secret `<prefix>_<name>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InfoField {
    pub name: FieldName,
    pub description: String,
    pub kind: FieldKind,
    pub value: String,
}

/// At most `requests` allowed calls per key in each UTC calendar day or month.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    pub requests: i64,
    pub per: QuotaPeriod,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuotaPeriod {
    Day,
    Month,
}

/// One quota period of a key: a UTC calendar day or month, `[start, end)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaWindow {
    /// `D2026-12-02` or `M2026-12`: the sort key of the key's counter for this period.
    pub label: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl QuotaPeriod {
    /// The period that holds `now`.
    pub fn window(self, now: DateTime<Utc>) -> QuotaWindow {
        use chrono::{Datelike, Months, TimeZone};
        let day = now.date_naive();
        let (label, first) = match self {
            Self::Day => (format!("D{}", day.format("%Y-%m-%d")), day),
            Self::Month => (format!("M{}", day.format("%Y-%m")), day.with_day(1).unwrap_or(day)),
        };
        let start = Utc.from_utc_datetime(&first.and_time(chrono::NaiveTime::MIN));
        let end = match self {
            Self::Day => start + chrono::Duration::days(1),
            Self::Month => start.checked_add_months(Months::new(1)).unwrap_or(start + chrono::Duration::days(31)),
        };
        QuotaWindow { label, start, end }
    }

    /// The period's length in seconds, for the `RateLimit-Policy` header (a month: 30 days).
    pub fn seconds(self) -> i64 {
        match self {
            Self::Day => 86_400,
            Self::Month => 30 * 86_400,
        }
    }
}

impl KeyTemplate {
    /// The template's limits as they are now (or will be, once the last change takes effect).
    pub fn limits(&self) -> TemplateLimits {
        TemplateLimits { quota: self.quota, rate_limit: self.rate_limit, quota_since: self.quota_since }
    }

    /// The template's limits in force at `now`.
    pub fn limits_at(&self, now: DateTime<Utc>) -> TemplateLimits {
        crate::limits::at(&self.limits(), self.limits_before.as_ref(), now)
    }
}

impl Quota {
    /// The used counts at which the holder is told: 80 % (at least one call) and 100 %.
    pub fn thresholds(self) -> [(u8, i64); 2] {
        [(80, ((self.requests * 4 + 4) / 5).max(1)), (100, self.requests)]
    }
}

/// At most `per_second` calls per second per key on average, and `burst` at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
    #[serde(default)]
    pub mode: RateMode,
}

/// Where a rate limit is decided.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateMode {
    /// In each authorizer instance's memory: no store write, but each instance allows the
    /// rate, so a key gets up to `per_second` times the instances running (on AWS, those warm).
    #[default]
    Local,
    /// In the store, on one item per key: exact across any number of instances, for one more
    /// conditional write per call on a key without a quota (on the quota's counter otherwise).
    Strict,
}

impl RateLimit {
    pub fn new(per_second: u32, burst: u32) -> Self {
        Self { per_second, burst, mode: RateMode::Local }
    }
}

/// What keygate does with a key of the template that a secret scanner reports found in public
/// (SECURITY.md, "Leaked keys"). The holder and the owner are mailed in every case.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnLeak {
    /// Revoke the key: the holder must request a new one.
    Revoke,
    /// Give the key a new token at once (no grace period) and update the secrets it was
    /// imported into: the holder's programs that read those secrets keep working.
    #[default]
    Reroll,
    /// Change nothing; only tell the holder and the owner.
    Notify,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeyTemplate {
    pub id: TemplateId,
    pub project_id: ProjectId,
    pub name: String,
    pub description: String,
    pub role: RoleName,
    pub price_per_request: i64,
    pub validity_days: Option<i64>,
    #[serde(default)]
    pub quota: Option<Quota>,
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    /// Since when the template has had a quota without a break (none: since it was created, or
    /// no quota): the run of quotas its keys' calls are counted in ([`crate::limits`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_since: Option<DateTime<Utc>>,
    /// The limits in force until the last edit of them took effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits_before: Option<Before<TemplateLimits>>,
    #[serde(default)]
    pub on_leak: OnLeak,
    /// Whether holders may mint narrowed tokens from its keys, and for how long at most.
    #[serde(default)]
    pub narrowed_tokens: NarrowedPolicy,
    pub fields: Vec<InfoField>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldInput {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "text")]
    pub kind: FieldKind,
    #[serde(default)]
    pub value: String,
}

fn text() -> FieldKind {
    FieldKind::Text
}

/// The body of `POST .../templates`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateInput {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub role: String,
    #[serde(default)]
    pub price_per_request: i64,
    #[serde(default)]
    pub validity_days: Option<i64>,
    #[serde(default)]
    pub quota: Option<Quota>,
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    #[serde(default)]
    pub on_leak: OnLeak,
    #[serde(default)]
    pub narrowed_tokens: NarrowedPolicy,
    #[serde(default)]
    pub fields: Vec<FieldInput>,
}

/// The body of `PATCH .../templates/{template}`: what is present changes; `validity_days: null`
/// removes the expiry, `quota: null` and `rate_limit: null` the limits. `version` (or an `If-Match` header) guards against lost updates.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplatePatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub role: Option<String>,
    pub price_per_request: Option<i64>,
    #[serde(default, deserialize_with = "present")]
    pub validity_days: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    pub quota: Option<Option<Quota>>,
    #[serde(default, deserialize_with = "present")]
    pub rate_limit: Option<Option<RateLimit>>,
    pub on_leak: Option<OnLeak>,
    pub narrowed_tokens: Option<NarrowedPolicy>,
    pub fields: Option<Vec<FieldInput>>,
    pub version: Option<u64>,
}

pub(crate) fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

impl TemplatePatch {
    /// The full input this patch makes of `current`.
    pub fn apply_to(self, current: &KeyTemplate) -> TemplateInput {
        TemplateInput {
            name: self.name.unwrap_or_else(|| current.name.clone()),
            description: self.description.unwrap_or_else(|| current.description.clone()),
            role: self.role.unwrap_or_else(|| current.role.to_string()),
            price_per_request: self.price_per_request.unwrap_or(current.price_per_request),
            validity_days: self.validity_days.unwrap_or(current.validity_days),
            quota: self.quota.unwrap_or(current.quota),
            rate_limit: self.rate_limit.unwrap_or(current.rate_limit),
            on_leak: self.on_leak.unwrap_or(current.on_leak),
            narrowed_tokens: self.narrowed_tokens.unwrap_or(current.narrowed_tokens),
            fields: self.fields.unwrap_or_else(|| {
                current
                    .fields
                    .iter()
                    .map(|f| FieldInput {
                        name: f.name.to_string(),
                        description: f.description.clone(),
                        kind: f.kind,
                        value: f.value.clone(),
                    })
                    .collect()
            }),
        }
    }
}

/// What a template is checked against: the project's roles and nodes.
pub struct ProjectFacts<'a> {
    pub project_id: &'a ProjectId,
    pub roles: &'a [Role],
    pub nodes: &'a HashSet<NodeId>,
}

impl ProjectFacts<'_> {
    pub fn has_public_role(&self) -> bool {
        self.roles.iter().any(|r| r.public)
    }
}

/// A template input that passed every rule.
#[derive(Debug)]
pub struct ValidTemplate {
    pub name: String,
    pub description: String,
    pub role: RoleName,
    pub price_per_request: i64,
    pub validity_days: Option<i64>,
    pub quota: Option<Quota>,
    pub rate_limit: Option<RateLimit>,
    pub on_leak: OnLeak,
    pub narrowed_tokens: NarrowedPolicy,
    pub fields: Vec<InfoField>,
}

impl ValidTemplate {
    /// The template these values make, with its identity and history.
    pub fn into_template(
        self,
        id: TemplateId,
        project_id: ProjectId,
        created_at: DateTime<Utc>,
        updated_at: DateTime<Utc>,
        version: u64,
    ) -> KeyTemplate {
        KeyTemplate {
            id,
            project_id,
            name: self.name,
            description: self.description,
            role: self.role,
            price_per_request: self.price_per_request,
            validity_days: self.validity_days,
            quota: self.quota,
            rate_limit: self.rate_limit,
            quota_since: None,
            limits_before: None,
            on_leak: self.on_leak,
            narrowed_tokens: self.narrowed_tokens,
            fields: self.fields,
            created_at,
            updated_at,
            version,
        }
    }
}

impl TemplateInput {
    /// Checks every rule at once, so that one answer names every bad field.
    pub fn validate(self, facts: &ProjectFacts<'_>) -> Result<ValidTemplate> {
        let mut errors = Vec::new();
        check_name(&mut errors, "name", &self.name, 64);
        check_text(&mut errors, "description", &self.description);
        if !(0..=MAX_PRICE).contains(&self.price_per_request) {
            errors.push(FieldError::new("price_per_request", format!("must be an integer from 0 to {MAX_PRICE}")));
        }
        if let Some(days) = self.validity_days
            && !(1..=MAX_VALIDITY_DAYS).contains(&days)
        {
            errors.push(FieldError::new("validity_days", format!("must be from 1 to {MAX_VALIDITY_DAYS}, or null")));
        }
        check_limits(&mut errors, self.quota, self.rate_limit);
        self.narrowed_tokens.check(&mut errors);
        let role = check_role(&mut errors, &self.role, facts);
        if self.fields.len() > MAX_FIELDS {
            errors.push(FieldError::new("fields", format!("at most {MAX_FIELDS} fields")));
        }
        let mut seen = HashSet::new();
        let mut fields = Vec::new();
        for (i, f) in self.fields.into_iter().enumerate() {
            if let Some(field) = check_field(&mut errors, i, f, facts, &mut seen) {
                fields.push(field);
            }
        }
        finish(errors)?;
        let role = role.ok_or_else(|| Error::invalid("role", "is required"))?;
        Ok(ValidTemplate {
            name: crate::project::normalize_name(&self.name),
            description: self.description,
            role,
            price_per_request: self.price_per_request,
            validity_days: self.validity_days,
            quota: self.quota,
            rate_limit: self.rate_limit,
            on_leak: self.on_leak,
            narrowed_tokens: self.narrowed_tokens,
            fields,
        })
    }
}

/// The bounds of a quota and a rate limit, a template's or one key's.
pub fn check_limits(errors: &mut Vec<FieldError>, quota: Option<Quota>, rate_limit: Option<RateLimit>) {
    if let Some(q) = quota
        && !(1..=MAX_QUOTA).contains(&q.requests)
    {
        errors.push(FieldError::new("quota.requests", format!("must be an integer from 1 to {MAX_QUOTA}")));
    }
    if let Some(r) = rate_limit {
        if !(1..=MAX_RATE).contains(&r.per_second) {
            errors.push(FieldError::new("rate_limit.per_second", format!("must be an integer from 1 to {MAX_RATE}")));
        }
        if !(1..=MAX_BURST).contains(&r.burst) {
            errors.push(FieldError::new("rate_limit.burst", format!("must be an integer from 1 to {MAX_BURST}")));
        }
    }
}

/// The seeds' rule: without a public role, a key's role must let it see the project.
fn check_role(errors: &mut Vec<FieldError>, name: &str, facts: &ProjectFacts<'_>) -> Option<RoleName> {
    let Ok(name) = RoleName::parse(name) else {
        errors.push(FieldError::new("role", RoleName::RULE));
        return None;
    };
    let Some(role) = facts.roles.iter().find(|r| r.name == name) else {
        errors.push(FieldError::new("role", format!("the project has no role '{name}'")));
        return None;
    };
    if !facts.has_public_role() && !role.permissions.contains(Permission::ProjectView) {
        errors.push(FieldError::new(
            "role",
            format!("role '{name}' must include the project_view permission, because the project has no public role"),
        ));
        return None;
    }
    Some(name)
}

fn check_field(
    errors: &mut Vec<FieldError>,
    i: usize,
    f: FieldInput,
    facts: &ProjectFacts<'_>,
    seen: &mut HashSet<String>,
) -> Option<InfoField> {
    let at = |what: &str| format!("fields[{i}].{what}");
    let before = errors.len();
    let name = match FieldName::parse(&f.name) {
        Ok(n) if n.as_str() == RESERVED_FIELD => {
            errors.push(FieldError::new(at("name"), "'token' is reserved for the key itself"));
            None
        }
        Ok(n) if !seen.insert(n.to_string()) => {
            errors.push(FieldError::new(at("name"), format!("'{n}' appears twice in this template")));
            None
        }
        Ok(n) => Some(n),
        Err(rule) => {
            errors.push(FieldError::new(at("name"), rule));
            None
        }
    };
    check_text(errors, &at("description"), &f.description);
    let value = match f.kind {
        FieldKind::Text if f.value.len() > MAX_FIELD_VALUE => {
            errors.push(FieldError::new(at("value"), format!("must be at most {MAX_FIELD_VALUE} bytes")));
            None
        }
        FieldKind::Text => Some(f.value),
        FieldKind::Project if f.value.is_empty() || f.value == facts.project_id.as_str() => {
            Some(facts.project_id.to_string())
        }
        FieldKind::Project => {
            errors.push(FieldError::new(
                at("value"),
                "a project field holds this project's id (leave it empty to fill it in)",
            ));
            None
        }
        FieldKind::Node => match NodeId::parse(&f.value) {
            Ok(node) if facts.nodes.contains(&node) => Some(f.value),
            _ => {
                errors.push(FieldError::new(at("value"), format!("the project has no node '{}'", f.value)));
                None
            }
        },
    };
    if errors.len() > before {
        return None;
    }
    Some(InfoField { name: name?, description: f.description, kind: f.kind, value: value? })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::permission::Permissions;

    fn role(name: &str, perms: &[Permission], public: bool) -> Role {
        Role {
            name: RoleName::parse(name).unwrap(),
            description: String::new(),
            permissions: perms.iter().copied().collect(),
            public,
            paid: false,
            cost_coefficient: 1.0,
            updated_at: Utc::now(),
        }
    }

    fn input(json: serde_json::Value) -> TemplateInput {
        serde_json::from_value(json).unwrap()
    }

    struct Fixture {
        project: ProjectId,
        roles: Vec<Role>,
        nodes: HashSet<NodeId>,
    }

    impl Fixture {
        fn new(roles: Vec<Role>) -> Self {
            let nodes = ["in", "out"].iter().map(|n| NodeId::parse(n).unwrap()).collect();
            Self { project: ProjectId::generate(), roles, nodes }
        }
        fn facts(&self) -> ProjectFacts<'_> {
            ProjectFacts { project_id: &self.project, roles: &self.roles, nodes: &self.nodes }
        }
    }

    fn fields_of(err: Error) -> Vec<String> {
        match err {
            Error::Validation(e) => e.into_iter().map(|e| e.field).collect(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn given_no_public_role_when_the_role_lacks_project_view_then_422_names_the_rule() {
        let fx = Fixture::new(vec![role("writer", &[Permission::PackageCreate], false)]);
        let err = input(serde_json::json!({"name": "t", "role": "writer"})).validate(&fx.facts()).unwrap_err();
        let p = err.to_problem();
        assert_eq!(p.status, 422);
        assert_eq!(p.errors[0].field, "role");
        assert!(p.errors[0].message.contains("project_view"), "{}", p.errors[0].message);
    }

    #[test]
    fn given_a_public_role_the_template_role_needs_no_project_view() {
        let fx = Fixture::new(vec![
            role("writer", &[Permission::PackageCreate], false),
            role("everyone", &[Permission::ProjectView], true),
        ]);
        assert!(input(serde_json::json!({"name": "t", "role": "writer"})).validate(&fx.facts()).is_ok());
    }

    #[test]
    fn project_fields_are_filled_and_node_fields_must_exist() {
        let fx = Fixture::new(vec![role("reader", &[Permission::ProjectView], false)]);
        let ok = input(serde_json::json!({"name": "t", "role": "reader", "fields": [
            {"name": "project", "kind": "project"},
            {"name": "input", "kind": "node", "value": "in"},
        ]}))
        .validate(&fx.facts())
        .unwrap();
        assert_eq!(ok.fields[0].value, fx.project.as_str());
        let err = input(serde_json::json!({"name": "t", "role": "reader", "fields": [
            {"name": "output", "kind": "node", "value": "nowhere"},
            {"name": "project", "kind": "project", "value": "another"},
        ]}))
        .validate(&fx.facts())
        .unwrap_err();
        assert_eq!(fields_of(err), ["fields[0].value", "fields[1].value"]);
    }

    #[test]
    fn every_bad_field_is_named_at_once() {
        let fx = Fixture::new(vec![role("reader", &[Permission::ProjectView], false)]);
        let err = input(serde_json::json!({
            "name": "", "role": "nobody", "price_per_request": -1, "validity_days": 0,
            "fields": [{"name": "1bad"}, {"name": "token"}, {"name": "a"}, {"name": "a"}],
        }))
        .validate(&fx.facts())
        .unwrap_err();
        assert_eq!(
            fields_of(err),
            [
                "name",
                "price_per_request",
                "validity_days",
                "role",
                "fields[0].name",
                "fields[1].name",
                "fields[3].name"
            ]
        );
    }

    #[test]
    fn quota_periods_are_utc_calendar_days_and_months() {
        use chrono::TimeZone;
        let at = Utc.with_ymd_and_hms(2026, 12, 31, 23, 59, 59).unwrap();
        let day = QuotaPeriod::Day.window(at);
        assert_eq!(day.label, "D2026-12-31");
        assert_eq!(
            (day.start, day.end),
            (Utc.with_ymd_and_hms(2026, 12, 31, 0, 0, 0).unwrap(), Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap())
        );
        let month = QuotaPeriod::Month.window(Utc.with_ymd_and_hms(2028, 2, 10, 5, 0, 0).unwrap());
        assert_eq!(month.label, "M2028-02");
        assert_eq!(month.end, Utc.with_ymd_and_hms(2028, 3, 1, 0, 0, 0).unwrap());
        assert_eq!(Quota { requests: 50, per: QuotaPeriod::Day }.thresholds(), [(80, 40), (100, 50)]);
        assert_eq!(Quota { requests: 1, per: QuotaPeriod::Day }.thresholds(), [(80, 1), (100, 1)]);
        assert_eq!(Quota { requests: 7, per: QuotaPeriod::Day }.thresholds(), [(80, 6), (100, 7)]);
    }

    #[test]
    fn limits_are_checked_and_named() {
        let fx = Fixture::new(vec![role("reader", &[Permission::ProjectView], false)]);
        let ok = input(serde_json::json!({"name": "t", "role": "reader",
            "quota": {"requests": 50, "per": "day"}, "rate_limit": {"per_second": 10, "burst": 20}}))
        .validate(&fx.facts())
        .unwrap();
        assert_eq!(ok.quota, Some(Quota { requests: 50, per: QuotaPeriod::Day }));
        assert_eq!(ok.rate_limit, Some(RateLimit::new(10, 20)));
        let err = input(serde_json::json!({"name": "t", "role": "reader",
            "quota": {"requests": 0, "per": "month"}, "rate_limit": {"per_second": 0, "burst": 2_000_000}}))
        .validate(&fx.facts())
        .unwrap_err();
        assert_eq!(fields_of(err), ["quota.requests", "rate_limit.per_second", "rate_limit.burst"]);
        let unknown = serde_json::from_value::<TemplateInput>(serde_json::json!({"name": "t", "role": "r",
            "quota": {"requests": 5, "per": "week"}}));
        assert!(unknown.unwrap_err().to_string().contains("week"));
    }

    #[test]
    fn a_patch_keeps_what_it_does_not_name_and_can_clear_the_expiry() {
        let fx = Fixture::new(vec![role("reader", &[Permission::ProjectView], false)]);
        let valid =
            input(serde_json::json!({"name": "t", "role": "reader", "validity_days": 30, "price_per_request": 5}))
                .validate(&fx.facts())
                .unwrap();
        let current = KeyTemplate {
            id: TemplateId::generate(),
            project_id: fx.project.clone(),
            name: valid.name,
            description: valid.description,
            role: valid.role,
            price_per_request: valid.price_per_request,
            validity_days: valid.validity_days,
            quota: valid.quota,
            rate_limit: valid.rate_limit,
            quota_since: None,
            limits_before: None,
            on_leak: valid.on_leak,
            narrowed_tokens: valid.narrowed_tokens,
            fields: valid.fields,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            version: 1,
        };
        let patch: TemplatePatch = serde_json::from_str(r#"{"validity_days": null}"#).unwrap();
        let next = patch.apply_to(&current);
        assert_eq!(next.validity_days, None);
        assert_eq!(next.price_per_request, 5);
        let patch: TemplatePatch = serde_json::from_str(r#"{"name": "u"}"#).unwrap();
        assert_eq!(patch.apply_to(&current).validity_days, Some(30));
        let limited = KeyTemplate { quota: Some(Quota { requests: 9, per: QuotaPeriod::Month }), ..current.clone() };
        let patch: TemplatePatch = serde_json::from_str(r#"{"name": "u"}"#).unwrap();
        assert_eq!(patch.apply_to(&limited).quota, limited.quota);
        let patch: TemplatePatch = serde_json::from_str(r#"{"quota": null}"#).unwrap();
        assert_eq!(patch.apply_to(&limited).quota, None);
        assert_eq!(Permissions::NONE.iter().count(), 0);
    }
}
