//! The limits in force, in one place: which quota and rate limit decide a key's call at a
//! moment, and which counter counts it. Every reader (the authorizer, the pages) and every
//! writer (template and key edits) goes through these functions.
//!
//! Two rules keep the quota exact across every instance and through every change:
//!
//! - **Changes are scheduled.** An edit of a template's or a key's limits takes effect
//!   [`SETTLE`] after it is committed, and keeps the limits before it beside the new ones
//!   ([`Before`]). Every authorizer reads a key's record and its template again at least every
//!   [`crate::authorizer::KEY_RECORD_TTL`], which is shorter, so at each moment every instance
//!   decides on the same limits: the ones the store holds for that moment. The edit answers
//!   once its limits are in force.
//! - **One counter while any quota is in force.** A key's calls are counted on one item per UTC
//!   month holding the month's total and each day's ([`Counting`]), whatever the quota's
//!   number, period or source (the template's or the key's own): changing any of them goes on
//!   counting on the same item. Counting stops only while no quota is in force; the next run of
//!   quotas counts on a new item, created from the key's hour buckets (which every allowed call
//!   writes) before its first call.

use chrono::{DateTime, Datelike, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::template::{Quota, QuotaPeriod, QuotaWindow, RateLimit};

/// How long after an edit its limits take effect: longer than an authorizer trusts a key's
/// record and template without reading them again (with room for the instances' clocks).
pub const SETTLE: Duration = Duration::seconds(1);

/// Limits that were in force until `until`, kept beside the ones that replace them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Before<T> {
    pub until: DateTime<Utc>,
    pub limits: T,
}

/// A template's limits at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateLimits {
    pub quota: Option<Quota>,
    pub rate_limit: Option<RateLimit>,
    /// Since when the template has had a quota without a break (none: since it was created).
    pub quota_since: Option<DateTime<Utc>>,
}

impl TemplateLimits {
    /// The template's limits once `quota` and `rate_limit` take effect at `at`: a quota set
    /// where there was none starts a run at `at`; any other change of quota continues it.
    pub fn then(&self, quota: Option<Quota>, rate_limit: Option<RateLimit>, at: DateTime<Utc>) -> Self {
        let quota_since = match (self.quota, quota) {
            (_, None) => None,
            (None, Some(_)) => Some(at),
            (Some(_), Some(_)) => self.quota_since,
        };
        Self { quota, rate_limit, quota_since }
    }
}

/// What an owner set for one key over its template's limits, and what was in force before the
/// last change until it took effect.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyLimits {
    /// Replaces the template's quota for this key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<Quota>,
    /// Since when the key's calls have been counted without a break, as its own quota was set
    /// (none: since before any period that matters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counted_since: Option<DateTime<Utc>>,
    /// When the key's own quota last ended (it went back to the template's, or to none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub own_until: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Extra calls for one quota period, over the quota.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_up: Option<TopUp>,
    /// The limits in force until the last change took effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Box<Before<KeyLimits>>>,
}

/// Extra calls granted for one quota period (`D2026-12-03`, `M2026-12`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopUp {
    pub period: String,
    pub requests: i64,
    pub granted_at: DateTime<Utc>,
}

impl KeyLimits {
    /// Whether the key has none of its own limits (it follows its template's).
    pub fn is_empty(&self) -> bool {
        self.quota.is_none() && self.rate_limit.is_none() && self.top_up.is_none()
    }

    /// Whether nothing was ever set (nothing to store).
    pub fn is_default(&self) -> bool {
        self.quota.is_none()
            && self.rate_limit.is_none()
            && self.top_up.is_none()
            && self.before.is_none()
            && self.counted_since.is_none()
            && self.own_until.is_none()
    }

    /// The limits in force at `now`.
    pub fn at(&self, now: DateTime<Utc>) -> Self {
        match &self.before {
            Some(b) if now < b.until => b.limits.clone(),
            _ => Self { before: None, ..self.clone() },
        }
    }

    /// These limits (as in force at `at`) replaced by `next` from `at` on, the present ones
    /// kept beside them until then.
    pub fn scheduled(&self, next: Self, at: DateTime<Utc>) -> Self {
        Self { before: Some(Box::new(Before { until: at, limits: Self { before: None, ..self.clone() } })), ..next }
    }

    /// The calls `top_up` adds in `window` (none once its period is over).
    pub fn extra_in(&self, window: &QuotaWindow) -> i64 {
        self.top_up.as_ref().filter(|t| t.period == window.label).map_or(0, |t| t.requests)
    }

    /// These limits once the key's own quota becomes `quota` at `at`, over `template` (the
    /// template's limits at that moment): the counting run goes on when a quota was in force
    /// just before and one is after, and a top-up ends with a changed quota.
    pub fn with_quota(&self, quota: Option<Quota>, template: &TemplateLimits, at: DateTime<Utc>) -> Self {
        let mut next = Self { before: None, ..self.clone() };
        if quota == self.quota {
            return next;
        }
        next.top_up = None;
        match (self.quota, quota) {
            (None, Some(_)) => {
                let before = in_force(template, self, at - Duration::milliseconds(1));
                next.counted_since = match before.quota {
                    Some(q) => q.counting.since,
                    None => Some(at),
                };
            }
            (Some(_), None) => next.own_until = Some(at),
            _ => {}
        }
        next.quota = quota;
        next
    }
}

/// What decides a key's calls at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InForce {
    /// Boxed: most keys have none, and the decision moves this value along.
    pub quota: Option<Box<QuotaInForce>>,
    pub rate_limit: Option<RateLimit>,
}

impl InForce {
    /// No quota and no rate limit.
    pub const NONE: Self = Self { quota: None, rate_limit: None };
}

/// The quota in force for a key, and where its calls are counted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaInForce {
    /// The quota with the period's top-up added: the ceiling the store decides on.
    pub quota: Quota,
    /// The top-up included in `quota`.
    pub top_up: i64,
    /// Whether it is the key's own quota rather than its template's.
    pub own: bool,
    /// The quota's current period.
    pub window: QuotaWindow,
    pub counting: Counting,
}

/// Where a key's calls are counted while quotas are in force without a break: one item per
/// UTC month and run of quotas, holding the month's total and one total per day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counting {
    /// When the present run of quotas began (none: before any period that matters).
    pub since: Option<DateTime<Utc>>,
    /// The month counted.
    pub month: QuotaWindow,
}

/// The counter of each day of a month, `day01` to `day31`; the month's is `requests`.
const DAYS: [&str; 31] = [
    "day01", "day02", "day03", "day04", "day05", "day06", "day07", "day08", "day09", "day10", "day11", "day12",
    "day13", "day14", "day15", "day16", "day17", "day18", "day19", "day20", "day21", "day22", "day23", "day24",
    "day25", "day26", "day27", "day28", "day29", "day30", "day31",
];

impl Counting {
    /// The counter item's sort key: `M2026-12`, or `M2026-12@<ms>` for a run that began
    /// within the month (counted from the key's usage before it).
    pub fn label(&self) -> String {
        match self.since {
            Some(since) if since > self.month.start => format!("{}@{}", self.month.label, since.timestamp_millis()),
            _ => self.month.label.clone(),
        }
    }

    /// Whether the item starts from the key's usage metered earlier in the month (its
    /// creation reads the hour buckets) rather than from 0 at the month's start.
    pub fn starts_from_usage(&self) -> bool {
        self.since.is_some_and(|since| since > self.month.start)
    }

    /// The counter of `now`'s day.
    pub fn day(now: DateTime<Utc>) -> &'static str {
        DAYS[(now.day0() as usize).min(30)]
    }

    /// The counter that a quota of period `per` is decided on at `now`.
    pub fn counter(per: QuotaPeriod, now: DateTime<Utc>) -> &'static str {
        match per {
            QuotaPeriod::Day => Self::day(now),
            QuotaPeriod::Month => crate::usage::REQUESTS,
        }
    }
}

/// The limits that decide a key's call at `now`: the key's own over its template's (both as
/// they are at `now`), the quota with its period's top-up, and where it is counted.
pub fn in_force(template: &TemplateLimits, own: &KeyLimits, now: DateTime<Utc>) -> InForce {
    let rate_limit = own.rate_limit.or(template.rate_limit);
    let (quota, since, is_own) = match (own.quota, template.quota) {
        (Some(quota), _) => (quota, own.counted_since, true),
        (None, Some(quota)) => {
            // The key's own quota ended while the template's was in force: counting went on.
            let since = match own.own_until {
                Some(until) if template.quota_since.is_none_or(|run| run <= until) => own.counted_since,
                _ => template.quota_since,
            };
            (quota, since, false)
        }
        (None, None) => return InForce { quota: None, rate_limit },
    };
    let window = quota.per.window(now);
    let top_up = own.extra_in(&window);
    let counting = Counting { since, month: QuotaPeriod::Month.window(now) };
    let quota = Quota { requests: quota.requests + top_up, ..quota };
    InForce { quota: Some(Box::new(QuotaInForce { quota, top_up, own: is_own, window, counting })), rate_limit }
}

/// The limits of a record at `now`: those before its last change until it takes effect.
pub fn at<T: Clone>(current: &T, before: Option<&Before<T>>, now: DateTime<Utc>) -> T {
    match before {
        Some(b) if now < b.until => b.limits.clone(),
        _ => current.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn q(requests: i64, per: QuotaPeriod) -> Option<Quota> {
        Some(Quota { requests, per })
    }

    #[test]
    fn a_key_back_on_its_templates_quota_counts_on_the_same_item() {
        // Given a template of 100 a day since before the month, and a key with its own 150.
        let t0 = Utc.with_ymd_and_hms(2026, 12, 4, 10, 0, 0).unwrap();
        let template = TemplateLimits { quota: q(100, QuotaPeriod::Day), ..Default::default() };
        let own = KeyLimits::default().with_quota(q(150, QuotaPeriod::Day), &template, t0);
        let mine = in_force(&template, &own, t0).quota.unwrap();
        assert!(mine.own && mine.quota.requests == 150);
        // When the own quota goes, the template's is counted on the same item.
        let back = own.with_quota(None, &template, t0 + Duration::minutes(5));
        let theirs = in_force(&template, &back, t0 + Duration::minutes(6)).quota.unwrap();
        assert!(!theirs.own && theirs.quota.requests == 100);
        assert_eq!(theirs.counting.label(), mine.counting.label());
        assert_eq!(theirs.counting.label(), "M2026-12");
    }

    #[test]
    fn counting_restarts_only_after_a_time_without_any_quota() {
        let t0 = Utc.with_ymd_and_hms(2026, 12, 4, 10, 0, 0).unwrap();
        let none = TemplateLimits::default();
        // A key's own quota on a template without one starts a run, counted from usage.
        let own = KeyLimits::default().with_quota(q(10, QuotaPeriod::Month), &none, t0);
        let first = in_force(&none, &own, t0).quota.unwrap().counting;
        assert!(first.starts_from_usage());
        // Day to month and back: the same run.
        let day = own.with_quota(q(3, QuotaPeriod::Day), &none, t0 + Duration::hours(1));
        assert_eq!(in_force(&none, &day, t0 + Duration::hours(1)).quota.unwrap().counting, first);
        // Off, then on again: a new run.
        let off = day.with_quota(None, &none, t0 + Duration::hours(2));
        assert_eq!(in_force(&none, &off, t0 + Duration::hours(2)).quota, None);
        let on = off.with_quota(q(3, QuotaPeriod::Day), &none, t0 + Duration::hours(3));
        let second = in_force(&none, &on, t0 + Duration::hours(3)).quota.unwrap().counting;
        assert_ne!(second.label(), first.label());
        // The template's quota set later, after the key's own ended: a run of its own.
        let off = on.with_quota(None, &none, t0 + Duration::hours(4));
        let template = none.then(q(5, QuotaPeriod::Day), None, t0 + Duration::hours(5));
        let third = in_force(&template, &off, t0 + Duration::hours(5)).quota.unwrap().counting;
        assert_eq!(third.since, Some(t0 + Duration::hours(5)));
    }

    #[test]
    fn a_change_is_in_force_from_its_moment() {
        let t0 = Utc.with_ymd_and_hms(2026, 12, 4, 10, 0, 0).unwrap();
        let before = Before { until: t0, limits: 1 };
        assert_eq!(at(&2, Some(&before), t0 - Duration::milliseconds(1)), 1);
        assert_eq!(at(&2, Some(&before), t0), 2);
        assert_eq!(at(&2, None, t0), 2);
    }

    #[test]
    fn day_counters_name_each_day_of_the_month() {
        let last = Utc.with_ymd_and_hms(2026, 12, 31, 23, 0, 0).unwrap();
        assert_eq!(Counting::day(last), "day31");
        assert_eq!(Counting::counter(QuotaPeriod::Day, last - Duration::days(30)), "day01");
        assert_eq!(Counting::counter(QuotaPeriod::Month, last), "requests");
    }
}
