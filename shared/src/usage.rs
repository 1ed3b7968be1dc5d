//! Usage metering arithmetic: UTC hour buckets, periods, and series of points.
//!
//! A period `[from, to)` counts every hour bucket that overlaps it, so figures are exact to the
//! hour: a period from 10:30 includes the whole 10:00 bucket.

use chrono::{DateTime, Duration, DurationRound, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, FieldError, Result};
use crate::ids::KeyId;

pub const REQUESTS: &str = "requests";
pub const COST: &str = "cost";
/// The longest period a list of keys sums over.
pub const MAX_PERIOD_DAYS: i64 = 366;
/// The longest hourly series (31 days of hours).
pub const MAX_HOURLY_DAYS: i64 = 31;
pub const DEFAULT_PERIOD_DAYS: i64 = 30;

/// What each metered call writes on its usage bucket besides the counters: the newest call
/// wins, so a key's `last_used_at` is the newest among its buckets.
#[derive(Debug, Serialize, Deserialize)]
pub struct BucketBody {
    pub last_used_at: DateTime<Utc>,
}

impl BucketBody {
    /// The stored body of a bucket written by a call at `at`.
    pub fn json(at: DateTime<Utc>) -> String {
        serde_json::to_string(&Self { last_used_at: at }).expect("a timestamp serializes to JSON")
    }
}

pub fn hour_of(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(Duration::hours(1)).unwrap_or(t)
}

pub(crate) fn day_of(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(Duration::days(1)).unwrap_or(t)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Period {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// Reads a period bound: RFC 3339 (`2026-11-01T00:00:00Z`) or a date (`2026-11-01`, midnight UTC).
fn parse_instant(field: &str, s: &str) -> std::result::Result<DateTime<Utc>, FieldError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| Utc.from_utc_datetime(&d))
        .ok_or_else(|| FieldError::new(field, "must be an RFC 3339 time (2026-11-01T00:00:00Z) or a date (2026-11-01)"))
}

impl Period {
    /// The period of `?from=&to=`: `to` defaults to now, `from` to 30 days before `to`.
    pub fn parse(from: Option<&str>, to: Option<&str>, now: DateTime<Utc>, max_days: i64) -> Result<Period> {
        let mut errors = Vec::new();
        let to = to.map(|s| parse_instant("to", s)).transpose().unwrap_or_else(|e| {
            errors.push(e);
            None
        });
        let from = from.map(|s| parse_instant("from", s)).transpose().unwrap_or_else(|e| {
            errors.push(e);
            None
        });
        if !errors.is_empty() {
            return Err(Error::Validation(errors));
        }
        let to = to.unwrap_or(now);
        let from = from.unwrap_or(to - Duration::days(DEFAULT_PERIOD_DAYS));
        if from >= to {
            return Err(Error::invalid("from", "must be before to"));
        }
        if to - from > Duration::days(max_days) {
            return Err(Error::invalid("to", format!("the period may be at most {max_days} days long")));
        }
        Ok(Period { from, to })
    }

    /// The first and last hour buckets that overlap the period.
    pub fn hours(&self) -> (DateTime<Utc>, DateTime<Utc>) {
        (hour_of(self.from), hour_of(self.to - Duration::nanoseconds(1)))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    Hour,
    Day,
}

impl Granularity {
    pub fn parse(s: Option<&str>) -> Result<Self> {
        match s {
            None | Some("hour") => Ok(Self::Hour),
            Some("day") => Ok(Self::Day),
            Some(_) => Err(Error::invalid("granularity", "must be hour or day")),
        }
    }

    pub fn max_days(self) -> i64 {
        match self {
            Self::Hour => MAX_HOURLY_DAYS,
            Self::Day => MAX_PERIOD_DAYS,
        }
    }

    /// The start of the hour or day that holds `t`.
    pub fn start_of(self, t: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Self::Hour => hour_of(t),
            Self::Day => day_of(t),
        }
    }

    fn step(self) -> Duration {
        match self {
            Self::Hour => Duration::hours(1),
            Self::Day => Duration::days(1),
        }
    }
}

/// The refused calls of a key, by outcome: the outcomes a caller with a token keygate issued
/// for this key can be refused with (`Denial::outcome`). Answered with every outcome and their
/// `total`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Refusals {
    pub revoked: i64,
    /// The token of a generation before the key's last reroll, after its grace period.
    pub rerolled: i64,
    pub expired: i64,
    pub not_yet_valid: i64,
    pub permission: i64,
    pub quota: i64,
    pub rate_limit: i64,
    pub key_not_usable: i64,
}

impl Refusals {
    /// Every outcome counted per key, in the order the API, the export and the console show.
    pub const OUTCOMES: [&'static str; 8] =
        ["revoked", "rerolled", "expired", "not_yet_valid", "permission", "quota", "rate_limit", "key_not_usable"];

    fn slot(&mut self, outcome: &str) -> Option<&mut i64> {
        Some(match outcome {
            "revoked" => &mut self.revoked,
            "rerolled" => &mut self.rerolled,
            "expired" => &mut self.expired,
            "not_yet_valid" => &mut self.not_yet_valid,
            "permission" => &mut self.permission,
            "quota" => &mut self.quota,
            "rate_limit" => &mut self.rate_limit,
            "key_not_usable" => &mut self.key_not_usable,
            _ => return None,
        })
    }

    /// The refusals a stored row's counters hold (other counters are ignored).
    pub fn of_counters(counters: &std::collections::BTreeMap<String, i64>) -> Self {
        let mut r = Self::default();
        for (name, n) in counters {
            if let Some(slot) = r.slot(name) {
                *slot += n;
            }
        }
        r
    }

    /// Each outcome and its count, in [`Refusals::OUTCOMES`]' order.
    pub fn counts(&self) -> [(&'static str, i64); 8] {
        let c = [
            self.revoked,
            self.rerolled,
            self.expired,
            self.not_yet_valid,
            self.permission,
            self.quota,
            self.rate_limit,
            self.key_not_usable,
        ];
        std::array::from_fn(|i| (Self::OUTCOMES[i], c[i]))
    }

    pub fn total(&self) -> i64 {
        self.counts().iter().map(|(_, n)| n).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.total() == 0
    }
}

impl std::ops::AddAssign for Refusals {
    fn add_assign(&mut self, other: Self) {
        for (outcome, n) in other.counts() {
            if let Some(slot) = self.slot(outcome) {
                *slot += n;
            }
        }
    }
}

impl Serialize for Refusals {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(Self::OUTCOMES.len() + 1))?;
        for (outcome, n) in self.counts() {
            map.serialize_entry(outcome, &n)?;
        }
        map.serialize_entry("total", &self.total())?;
        map.end()
    }
}

/// One hour of a key as read from the store: its metered calls (the hour bucket) and its
/// refused calls (the refusal row).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bucket {
    pub hour: DateTime<Utc>,
    pub requests: i64,
    pub cost: i64,
    pub refused: Refusals,
}

impl Bucket {
    pub fn new(hour: DateTime<Utc>, requests: i64, cost: i64) -> Self {
        Self { hour, requests, cost, refused: Refusals::default() }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub requests: i64,
    pub cost: i64,
    pub refused: Refusals,
}

impl Totals {
    /// Adds one hour's calls.
    pub fn add(&mut self, b: &Bucket) {
        self.requests += b.requests;
        self.cost += b.cost;
        self.refused += b.refused;
    }
}

pub fn totals<'a>(buckets: impl IntoIterator<Item = &'a Bucket>) -> Totals {
    buckets.into_iter().fold(Totals::default(), |mut t, b| {
        t.add(b);
        t
    })
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UsagePoint {
    pub start: DateTime<Utc>,
    pub requests: i64,
    pub cost: i64,
    pub refused: Refusals,
}

#[derive(Clone, Debug, Serialize)]
pub struct UsageSeries {
    pub key_id: KeyId,
    pub granularity: Granularity,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub points: Vec<UsagePoint>,
    /// The period's sums.
    pub totals: Totals,
    /// The key's quota and its use in the current quota period (not the period asked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota: Option<QuotaStatus>,
    /// The period's calls made with the key's narrowed tokens, by label (they are in the
    /// points and totals too).
    pub by_label: Vec<LabelUsage>,
}

/// Calls made with a key's narrowed tokens of one label: one hour's, or a period's sum.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LabelUsage {
    pub label: String,
    #[serde(skip)]
    pub hour: DateTime<Utc>,
    pub requests: i64,
    pub cost: i64,
}

impl LabelUsage {
    /// One hour's row, from its sort key (`L#<label>#2026-11-23T16`) and counters.
    pub fn of_row(sk: &str, requests: i64, cost: i64) -> Option<Self> {
        let (label, hour) = sk.strip_prefix(crate::store::layout::USAGE_LABELS)?.rsplit_once('#')?;
        let hour = parse_hour(&format!("{}{hour}", crate::store::layout::USAGE_HOURS))?;
        Some(Self { label: label.to_owned(), hour, requests, cost })
    }
}

/// Per label, the sums of `rows`, by label.
pub fn by_label(rows: &[LabelUsage]) -> Vec<LabelUsage> {
    let mut sums: std::collections::BTreeMap<&str, (i64, i64)> = std::collections::BTreeMap::new();
    for r in rows {
        let sum = sums.entry(&r.label).or_default();
        sum.0 += r.requests;
        sum.1 += r.cost;
    }
    sums.into_iter()
        .map(|(label, (requests, cost))| LabelUsage {
            label: label.to_owned(),
            hour: DateTime::UNIX_EPOCH,
            requests,
            cost,
        })
        .collect()
}

/// A key's quota now (its template's) and what it has used of it in the current period.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct QuotaStatus {
    pub requests: i64,
    /// Extra calls granted for the current period (a top-up), over `requests`.
    pub top_up: i64,
    /// Whether the quota is the key's own (set by the owner), not its template's.
    pub own: bool,
    pub per: crate::template::QuotaPeriod,
    /// The current period: `2026-12-02` or `2026-12`.
    pub period: String,
    pub used: i64,
    pub resets_at: DateTime<Utc>,
}

/// A dense series over the period: one point per hour or day, zero where nothing was used.
pub fn series(buckets: &[Bucket], period: Period, granularity: Granularity) -> Vec<UsagePoint> {
    let (first, last) = period.hours();
    let mut points = Vec::new();
    let mut start = granularity.start_of(first);
    while start <= last {
        points.push(UsagePoint { start, requests: 0, cost: 0, refused: Refusals::default() });
        start += granularity.step();
    }
    for b in buckets {
        let at = granularity.start_of(b.hour);
        if let Some(p) = points.iter_mut().find(|p| p.start == at) {
            p.requests += b.requests;
            p.cost += b.cost;
            p.refused += b.refused;
        }
    }
    points
}

/// The hour a bucket's or a refusal row's sort key (`H#2026-11-23T16`, `R#2026-11-23T16`)
/// names.
pub fn parse_hour(sk: &str) -> Option<DateTime<Utc>> {
    let s = sk.strip_prefix("H#").or_else(|| sk.strip_prefix("R#"))?;
    let naive = chrono::NaiveDateTime::parse_from_str(&format!("{s}:00:00"), "%Y-%m-%dT%H:%M:%S").ok()?;
    Some(Utc.from_utc_datetime(&naive))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_period_covers_every_hour_it_overlaps() {
        let p = Period { from: t("2026-11-23T10:30:00Z"), to: t("2026-11-23T12:00:00Z") };
        assert_eq!(p.hours(), (t("2026-11-23T10:00:00Z"), t("2026-11-23T11:00:00Z")));
        let p = Period { from: t("2026-11-23T10:00:00Z"), to: t("2026-11-23T12:00:01Z") };
        assert_eq!(p.hours().1, t("2026-11-23T12:00:00Z"));
    }

    #[test]
    fn periods_default_and_refuse_nonsense() {
        let now = t("2026-11-23T16:00:00Z");
        let p = Period::parse(None, None, now, MAX_PERIOD_DAYS).unwrap();
        assert_eq!((p.from, p.to), (now - Duration::days(30), now));
        let p = Period::parse(Some("2026-11-01"), Some("2026-11-02"), now, MAX_PERIOD_DAYS).unwrap();
        assert_eq!(p.from, t("2026-11-01T00:00:00Z"));
        let field = |r: Result<Period>| r.unwrap_err().to_problem().errors[0].field.clone();
        assert_eq!(field(Period::parse(Some("2026-11-02"), Some("2026-11-01"), now, 366)), "from");
        assert_eq!(field(Period::parse(Some("yesterday"), None, now, 366)), "from");
        assert_eq!(field(Period::parse(Some("2020-01-01"), Some("2026-01-01"), now, 366)), "to");
    }

    #[test]
    fn a_daily_series_sums_hours_and_fills_gaps() {
        let period = Period { from: t("2026-11-01T00:00:00Z"), to: t("2026-11-04T00:00:00Z") };
        let mut refused = Bucket::new(t("2026-11-03T00:00:00Z"), 4, 40);
        refused.refused.revoked = 5;
        let buckets =
            [Bucket::new(t("2026-11-01T05:00:00Z"), 2, 20), Bucket::new(t("2026-11-01T23:00:00Z"), 1, 10), refused];
        let days = series(&buckets, period, Granularity::Day);
        let got: Vec<_> = days.iter().map(|p| (p.requests, p.cost, p.refused.total())).collect();
        assert_eq!(got, [(3, 30, 0), (0, 0, 0), (4, 40, 5)]);
        assert_eq!(series(&buckets, period, Granularity::Hour).len(), 72);
        let sums = totals(&buckets);
        assert_eq!((sums.requests, sums.cost, sums.refused.revoked), (7, 70, 5));
    }

    #[test]
    fn refusals_answer_every_outcome_and_their_total() {
        let counters = [("revoked".to_owned(), 2), ("quota".to_owned(), 3), ("requests".to_owned(), 9)].into();
        let r = Refusals::of_counters(&counters);
        assert_eq!((r.revoked, r.quota, r.total()), (2, 3, 5));
        let json = serde_json::to_value(r).unwrap();
        assert_eq!(json["total"], 5);
        assert_eq!(json["permission"], 0);
        assert_eq!(json.as_object().unwrap().len(), Refusals::OUTCOMES.len() + 1);
    }

    #[test]
    fn bucket_keys_parse_back() {
        let h = t("2026-11-23T16:00:00Z");
        assert_eq!(parse_hour(&crate::store::layout::usage_hour(h)), Some(h));
        let row = crate::store::layout::usage_label(&KeyId::generate(), 0, "nightly-run", h);
        let read = LabelUsage::of_row(&row.sk, 3, 9).unwrap();
        assert_eq!((read.label.as_str(), read.hour, read.requests), ("nightly-run", h, 3));
        assert_eq!(parse_hour("H#garbage"), None);
    }
}
