//! Rate limits and quotas, and the metering write that enforces the quota.
//!
//! - The **rate limit** is a GCRA per key (`governor`), in the memory of one process: exact
//!   within one `keygate-local`; on AWS each authorizer instance keeps its own, so a key gets at
//!   most `per_second × instances` calls per second there (SECURITY.md).
//! - The **quota** is decided by the store: the key's counter is increased only while the
//!   period's count stays within the quota in force (a conditional write), in the same
//!   [`Store::count`] as the usage bucket. So under any concurrency no period allows more than
//!   the quota, and every allowed call is counted once; a refused call writes nothing. Which
//!   quota is in force and which counter counts it is [`crate::limits`]' rule: every instance
//!   agrees on both at every moment, through every change of limits.
//! - A counter item is created before its first call from the key's hour buckets since the
//!   month began (`NotExists`, the first creation wins), so calls made before it, under no
//!   quota or by an earlier release, count against it. Each instance checks once per item.
//! - At 80 % and 100 % of a quota the holder is told once per period: a flag on the counter
//!   (set only while it is 0) and the mail in the outbox, in one transaction.

use std::num::NonZeroU32;
use std::sync::Arc;

use chrono::{DateTime, Datelike, Utc};
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultDirectRateLimiter, RateLimiter};
use quick_cache::sync::Cache;
use serde::Serialize;

use super::{Authorizer, CACHE_CAPACITY, Denial, Grant, bounded};
use crate::ids::KeyId;
use crate::key::IssuedKey;
use crate::limits::{Counting, QuotaInForce};
use crate::store::{Cond, Counters, Increment, Item, Pace, StoreError, Write, layout};
use crate::template::{Quota, QuotaPeriod, RateLimit, RateMode};
use crate::usage;

/// Which limit refused a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Limit {
    /// The quota is used up until `resets_at`.
    Quota {
        quota: Quota,
        resets_at: DateTime<Utc>,
    },
    Rate(RateLimit),
}

/// A call refused by a limit: answered 429, never forwarded, never metered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limited {
    pub limit: Limit,
    /// Whole seconds until a call may succeed again (at least 1).
    pub retry_after: u64,
}

/// How much of its quota a key has used in the current period, after an allowed call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuotaUse {
    pub quota: Quota,
    pub used: i64,
    pub resets_at: DateTime<Utc>,
}

impl QuotaUse {
    pub fn remaining(&self) -> i64 {
        (self.quota.requests - self.used).max(0)
    }

    /// The `RateLimit-Policy` and `RateLimit` headers of an allowed call.
    pub fn headers(&self, now: DateTime<Utc>) -> [(&'static str, String); 2] {
        let reset = seconds_until(self.resets_at, now);
        [
            ("ratelimit-policy", quota_policy(&self.quota)),
            ("ratelimit", format!("\"quota\";r={};t={reset}", self.remaining())),
        ]
    }
}

fn quota_policy(quota: &Quota) -> String {
    format!("\"quota\";q={};w={}", quota.requests, quota.per.seconds())
}

fn seconds_until(at: DateTime<Utc>, now: DateTime<Utc>) -> u64 {
    let ms = (at - now).num_milliseconds().max(0) as u64;
    ms.div_ceil(1000).max(1)
}

impl Limited {
    /// `quota` or `rate_limit`: the template field that refused the call.
    pub fn name(&self) -> &'static str {
        match self.limit {
            Limit::Quota { .. } => "quota",
            Limit::Rate(_) => "rate_limit",
        }
    }

    /// `Retry-After`, and the `RateLimit-Policy` / `RateLimit` headers of the IETF httpapi
    /// draft (draft-ietf-httpapi-ratelimit-headers): the policy, and nothing left until `t`.
    pub fn headers(&self) -> [(&'static str, String); 3] {
        let t = self.retry_after;
        let (policy, name) = match &self.limit {
            Limit::Quota { quota, .. } => (quota_policy(quota), "quota"),
            Limit::Rate(r) => (format!("\"rate\";q={};w=1;burst={}", r.per_second, r.burst), "rate"),
        };
        [("retry-after", t.to_string()), ("ratelimit-policy", policy), ("ratelimit", format!("\"{name}\";r=0;t={t}"))]
    }

    /// What the caller reads in the problem's `detail`.
    pub fn detail(&self) -> String {
        match &self.limit {
            Limit::Quota { quota, resets_at } => format!(
                "this key has used its quota of {} calls per {}; it renews at {}",
                quota.requests,
                period_name(quota.per),
                resets_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            Limit::Rate(r) => format!(
                "this key is limited to {} calls per second (bursts of {}); retry in {} s",
                r.per_second, r.burst, self.retry_after
            ),
        }
    }

    /// The problem+json body of the 429.
    pub fn problem(&self) -> serde_json::Value {
        let title = match self.limit {
            Limit::Quota { .. } => "Quota exceeded",
            Limit::Rate(_) => "Rate limit exceeded",
        };
        serde_json::json!({
            "type": format!("urn:keygate:problem:{}", self.name().replace('_', "-")),
            "title": title,
            "status": 429,
            "detail": self.detail(),
            "limit": self.name(),
            "retry_after": self.retry_after,
        })
    }

    /// The authorizer context of a limited call on AWS (strings and numbers only, as API
    /// Gateway requires), from which the gateway builds the 429.
    pub fn context(&self) -> serde_json::Value {
        #[derive(Serialize)]
        struct Context<'a> {
            limit: &'a str,
            retry_after: u64,
            ratelimit_policy: String,
            ratelimit: String,
            detail: String,
        }
        let [_, (_, policy), (_, ratelimit)] = self.headers();
        serde_json::to_value(Context {
            limit: self.name(),
            retry_after: self.retry_after,
            ratelimit_policy: policy,
            ratelimit,
            detail: self.detail(),
        })
        .unwrap_or_default()
    }
}

fn period_name(per: QuotaPeriod) -> &'static str {
    match per {
        QuotaPeriod::Day => "UTC day",
        QuotaPeriod::Month => "UTC month",
    }
}

/// A key's rate limiter, and the limit it was built for (rebuilt when the template changes).
struct Bucket {
    rate: RateLimit,
    limiter: DefaultDirectRateLimiter,
}

/// The limits' memory in one process.
pub(super) struct Limits {
    rates: Cache<KeyId, Arc<Bucket>>,
    /// For strict rates: the time of the next call each key's item held at its last write
    /// (microseconds), which tells DynamoDB's write which condition to try first.
    paces: Cache<KeyId, i64>,
    /// Keys whose quota is used up: the counter item, the counter and the ceiling it was used
    /// up for. Later calls are refused without a store write (a raised quota is seen again).
    exhausted: Cache<KeyId, Exhausted>,
    /// Counter items known to exist (key, item's label).
    seeded: Cache<(KeyId, String), ()>,
}

#[derive(Clone, PartialEq, Eq)]
struct Exhausted {
    label: String,
    counter: &'static str,
    ceiling: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            rates: bounded(CACHE_CAPACITY),
            paces: bounded(CACHE_CAPACITY),
            exhausted: bounded(CACHE_CAPACITY),
            seeded: bounded(CACHE_CAPACITY),
        }
    }
}

impl Limits {
    /// Takes one call from the key's rate limit, or says how long to wait.
    pub(super) fn take_rate(&self, key: &KeyId, rate: RateLimit) -> Result<(), Limited> {
        let bucket = match self.rates.get(key) {
            Some(bucket) if bucket.rate == rate => bucket,
            _ => {
                let per_second = NonZeroU32::new(rate.per_second).unwrap_or(NonZeroU32::MIN);
                let burst = NonZeroU32::new(rate.burst).unwrap_or(NonZeroU32::MIN);
                let limiter = RateLimiter::direct(governor::Quota::per_second(per_second).allow_burst(burst));
                let bucket = Arc::new(Bucket { rate, limiter });
                self.rates.insert(key.clone(), bucket.clone());
                bucket
            }
        };
        bucket.limiter.check().map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            Limited { limit: Limit::Rate(rate), retry_after: wait.as_millis().div_ceil(1000).max(1) as u64 }
        })
    }
}

/// The 31 counter names `<prefix>01` to `<prefix>31`.
macro_rules! notices {
    ($prefix:literal) => {
        [
            concat!($prefix, "01"),
            concat!($prefix, "02"),
            concat!($prefix, "03"),
            concat!($prefix, "04"),
            concat!($prefix, "05"),
            concat!($prefix, "06"),
            concat!($prefix, "07"),
            concat!($prefix, "08"),
            concat!($prefix, "09"),
            concat!($prefix, "10"),
            concat!($prefix, "11"),
            concat!($prefix, "12"),
            concat!($prefix, "13"),
            concat!($prefix, "14"),
            concat!($prefix, "15"),
            concat!($prefix, "16"),
            concat!($prefix, "17"),
            concat!($prefix, "18"),
            concat!($prefix, "19"),
            concat!($prefix, "20"),
            concat!($prefix, "21"),
            concat!($prefix, "22"),
            concat!($prefix, "23"),
            concat!($prefix, "24"),
            concat!($prefix, "25"),
            concat!($prefix, "26"),
            concat!($prefix, "27"),
            concat!($prefix, "28"),
            concat!($prefix, "29"),
            concat!($prefix, "30"),
            concat!($prefix, "31"),
        ]
    };
}

/// The counter flag set once the holder was told of `percent` % in a period: per month, or
/// per day of the month for a daily quota.
fn notice_flag(percent: u8, per: QuotaPeriod, now: DateTime<Utc>) -> &'static str {
    const DAY_80: [&str; 31] = notices!("notice_80_day");
    const DAY_100: [&str; 31] = notices!("notice_100_day");
    match (per, percent >= 100) {
        (QuotaPeriod::Month, false) => "notice_80",
        (QuotaPeriod::Month, true) => "notice_100",
        (QuotaPeriod::Day, false) => DAY_80[now.day0() as usize % 31],
        (QuotaPeriod::Day, true) => DAY_100[now.day0() as usize % 31],
    }
}

impl Authorizer {
    /// Counts one allowed call: +1 request and +price in the key's current hour bucket (the
    /// shard spreads a busy key over several partitions) and, with a quota in force, +1 on the
    /// month's and the day's counts of the key's counter item, only while the period's count
    /// stays within the quota. One [`Store::count`]: one store write per call without a quota,
    /// two with one.
    pub(super) async fn meter(
        &self,
        key: &IssuedKey,
        grant: &Grant,
        label: Option<&str>,
    ) -> Result<Option<QuotaUse>, Denial> {
        let now = self.now();
        let shards = self.usage_shards.max(1);
        let shard = if shards == 1 { 0 } else { now.timestamp_subsec_nanos() % shards };
        let bucket = Increment::new(
            layout::usage_bucket(&key.id, shard, usage::hour_of(now)),
            vec![(usage::REQUESTS, 1), (usage::COST, grant.price)],
            usage::BucketBody::json(now),
        );
        // A narrowed token's call is also counted under its label, on a row of its own.
        let labelled = label.map(|label| {
            Increment::new(
                layout::usage_label(&key.id, shard, label, usage::hour_of(now)),
                vec![(usage::REQUESTS, 1), (usage::COST, grant.price)],
                "{}".to_owned(),
            )
        });
        let strict = grant.limits.rate_limit.filter(|r| r.mode == RateMode::Strict);
        let pace = strict.map(|rate| self.pace(&key.id, rate, now));
        let Some(in_force) = &grant.limits.quota else {
            let started = std::time::Instant::now();
            let writes = match pace {
                // A strict rate without a quota: its own item per key, then the bucket.
                Some(pace) => vec![Increment::new(layout::rate(&key.id), vec![], "{}".to_owned()).paced(pace), bucket],
                None => vec![bucket],
            }
            .into_iter()
            .chain(labelled)
            .collect();
            return match self.store.count(writes).await {
                Ok(counters) => {
                    self.figures.metered(started.elapsed());
                    self.remember_pace(&key.id, pace, counters.first());
                    Ok(None)
                }
                Err(StoreError::Refused { index: 0, counters }) => match (strict, pace) {
                    (Some(rate), Some(pace)) => Err(self.rate_refused(&key.id, rate, pace, &counters).into()),
                    _ => Err(metering_failed(StoreError::Refused { index: 0, counters }, &key.id)),
                },
                Err(e) => Err(metering_failed(e, &key.id)),
            };
        };
        let quota = in_force.quota;
        let window = &in_force.window;
        let label = in_force.counting.label();
        let counter = Counting::counter(quota.per, now);
        let limited = || Limited {
            limit: Limit::Quota { quota, resets_at: window.end },
            retry_after: seconds_until(window.end, now),
        };
        let used_up = Exhausted { label: label.clone(), counter, ceiling: quota.requests };
        if self.limits.exhausted.get(&key.id).is_some_and(|e| e == used_up) {
            return Err(limited().into());
        }
        let item = layout::quota_counter(&key.id, &label);
        self.seed(&key.id, &in_force.counting, &item, now).await.map_err(|e| metering_failed(e, &key.id))?;
        let mut take = Increment::new(
            item.clone(),
            vec![(usage::REQUESTS, 1), (Counting::day(now), 1)],
            counter_body(&in_force.counting),
        )
        .at_most(counter, quota.requests);
        // A strict rate lives on the quota's counter item: still two writes per call.
        if let Some(pace) = pace {
            take = take.paced(pace);
        }
        let started = std::time::Instant::now();
        match self.store.count([take.clone(), bucket].into_iter().chain(labelled).collect()).await {
            Ok(counters) => {
                self.figures.metered(started.elapsed());
                let counters = counters.into_iter().next().unwrap_or_default();
                self.remember_pace(&key.id, pace, Some(&counters));
                self.tell_holder(key, in_force, &item, &counters, now).await;
                Ok(Some(QuotaUse { quota, used: counters.get(counter).copied().unwrap_or(0), resets_at: window.end }))
            }
            Err(StoreError::Refused { index: 0, counters }) if take.fits(&counters) => match (strict, pace) {
                // The quota has room: the pace refused the call.
                (Some(rate), Some(pace)) => Err(self.rate_refused(&key.id, rate, pace, &counters).into()),
                _ => Err(metering_failed(StoreError::Refused { index: 0, counters }, &key.id)),
            },
            Err(StoreError::Refused { index: 0, counters }) => {
                // Used up. Make sure the holder was told (a notice lost with a crashed instance
                // is sent by the first refused call), then refuse from memory for the period.
                self.tell_holder(key, in_force, &item, &counters, now).await;
                self.limits.exhausted.insert(key.id.clone(), used_up);
                Err(limited().into())
            }
            Err(e) => Err(metering_failed(e, &key.id)),
        }
    }

    /// The pace of a strict rate at `now`, in microseconds.
    fn pace(&self, key: &KeyId, rate: RateLimit, now: DateTime<Utc>) -> Pace {
        let interval = 1_000_000 / i64::from(rate.per_second.max(1));
        let now = now.timestamp_micros();
        Pace {
            counter: RATE_COUNTER,
            now,
            interval,
            tolerance: interval * (i64::from(rate.burst.max(1)) - 1),
            busy: self.limits.paces.get(key).is_some_and(|tat| tat > now),
        }
    }

    fn remember_pace(&self, key: &KeyId, pace: Option<Pace>, counters: Option<&Counters>) {
        if let Some(pace) = pace
            && let Some(tat) = counters.and_then(|c| c.get(pace.counter))
        {
            self.limits.paces.insert(key.clone(), *tat);
        }
    }

    /// A call a strict rate refused: `Retry-After` from the item the refusal returned (no read).
    fn rate_refused(&self, key: &KeyId, rate: RateLimit, pace: Pace, counters: &Counters) -> Limited {
        let tat = counters.get(pace.counter).copied().unwrap_or(0);
        self.limits.paces.insert(key.clone(), tat);
        let wait = pace.wait(tat);
        Limited { limit: Limit::Rate(rate), retry_after: (wait.max(1) as u64).div_ceil(1_000_000) }
    }

    /// Queues the 80 % and 100 % notices the counters call for and that were not sent in this
    /// period: the flag is set (only while 0) and the mail queued in one transaction, so the
    /// notice goes out once. A failure here does not refuse the call; a later call retries.
    async fn tell_holder(
        &self,
        key: &IssuedKey,
        in_force: &QuotaInForce,
        item: &crate::store::ItemKey,
        counters: &Counters,
        now: DateTime<Utc>,
    ) {
        let quota = in_force.quota;
        let used = counters.get(Counting::counter(quota.per, now)).copied().unwrap_or(0);
        for (percent, at) in quota.thresholds() {
            let flag = notice_flag(percent, quota.per, now);
            if used < at || counters.get(flag).copied().unwrap_or(0) > 0 {
                continue;
            }
            let window = &in_force.window;
            let mail = crate::mail::quota_used(&self.console_url, key, percent, &quota, &window.label);
            let id = format!("Q#{}#{}#{percent}", key.id, window.label);
            let mut writes = vec![
                Write::Increment(
                    Increment::new(item.clone(), vec![(flag, 1)], counter_body(&in_force.counting)).at_most(flag, 1),
                ),
                crate::service::queued_mail(&id, mail, self.now()),
            ];
            if self.webhook_events {
                let facts = serde_json::json!({
                    "percent": percent,
                    "used": used,
                    "quota": {"requests": quota.requests, "per": quota.per},
                    "period": match quota.per {
                        QuotaPeriod::Day => now.format("%Y-%m-%d").to_string(),
                        QuotaPeriod::Month => now.format("%Y-%m").to_string(),
                    },
                });
                match crate::webhook::Event::about_key(crate::webhook::EventType::QuotaThreshold, now, key, facts) {
                    Ok(event) => writes.push(crate::service::queued_event(event)),
                    Err(e) => tracing::error!(error = %e, "quota.threshold event not queued"),
                }
            }
            match self.store.transact(writes).await {
                Ok(()) => tracing::info!(key_id = %key.id, percent, period = %window.label, "quota notice queued"),
                Err(StoreError::ConditionFailed { .. }) => {} // another call queued it
                Err(e) => tracing::warn!(error = %e, key_id = %key.id, percent, "quota notice not queued yet"),
            }
        }
    }

    /// Makes sure the counter item of a run of quotas exists before its first call, created
    /// from the key's usage metered since the month (or the run) began: the first creation
    /// wins (`NotExists`), and no call takes from the item before it exists, so every call is
    /// counted once: before the creation in the buckets read, after it on the item.
    async fn seed(
        &self,
        key: &KeyId,
        counting: &Counting,
        item: &crate::store::ItemKey,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let cache_key = (key.clone(), item.sk.clone());
        if self.limits.seeded.get(&cache_key).is_some() {
            return Ok(());
        }
        if self.store.get(item).await?.is_none() {
            let (month, today) = self.used_since(key, counting.month.start, now).await?;
            let counters = [(usage::REQUESTS.to_owned(), month), (Counting::day(now).to_owned(), today)].into();
            let created =
                Item { key: item.clone(), index_key: None, version: 0, body: counter_body(counting), counters };
            match self.store.transact(vec![Write::Put { item: created, cond: Cond::NotExists }]).await {
                Ok(()) => {
                    tracing::info!(key_id = %key, counter = %item.sk, month, today, "quota counter started from usage")
                }
                Err(StoreError::ConditionFailed { .. }) => {} // another call created it
                Err(e) => return Err(e),
            }
        }
        self.limits.seeded.insert(cache_key, ());
        Ok(())
    }

    /// The calls metered for `key` from the hour of `from` on, over every shard, and those of
    /// `now`'s day among them.
    async fn used_since(&self, key: &KeyId, from: DateTime<Utc>, now: DateTime<Utc>) -> Result<(i64, i64), StoreError> {
        let buckets =
            crate::service::usage_items(self.store.as_ref(), self.usage_shards, key, usage::hour_of(from), None)
                .await?;
        let today = layout::usage_hour(QuotaPeriod::Day.window(now).start);
        let all = buckets.iter().map(|b| b.counter(usage::REQUESTS)).sum();
        let day = buckets.iter().filter(|b| b.key.sk >= today).map(|b| b.counter(usage::REQUESTS)).sum();
        Ok((all, day))
    }
}

/// The counter of a strict rate's next call time (GCRA), on the quota's item or the rate's own.
const RATE_COUNTER: &str = "rate_next_us";

fn counter_body(counting: &Counting) -> String {
    serde_json::json!({ "month": counting.month.label, "since": counting.since }).to_string()
}

fn metering_failed(e: StoreError, key: &KeyId) -> Denial {
    tracing::error!(error = %e, key_id = %key, "metering failed; denying");
    Denial::StoreFailed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_limit_allows_its_burst_then_says_when() {
        let limits = Limits::default();
        let key = KeyId::generate();
        let rate = RateLimit::new(2, 3);
        assert!((0..3).all(|_| limits.take_rate(&key, rate).is_ok()));
        let refused = limits.take_rate(&key, rate).unwrap_err();
        assert_eq!(refused.retry_after, 1);
        assert_eq!(refused.headers()[1].1, "\"rate\";q=2;w=1;burst=3");
        // A changed limit starts a new bucket.
        assert!(limits.take_rate(&key, RateLimit::new(2, 4)).is_ok());
    }

    #[test]
    fn a_used_up_quota_names_itself_and_its_renewal() {
        use chrono::TimeZone;
        let quota = Quota { requests: 50, per: QuotaPeriod::Day };
        let now = Utc.with_ymd_and_hms(2026, 12, 2, 23, 0, 0).unwrap();
        let window = quota.per.window(now);
        let limited = Limited {
            limit: Limit::Quota { quota, resets_at: window.end },
            retry_after: seconds_until(window.end, now),
        };
        assert_eq!(limited.retry_after, 3600);
        let [retry, policy, state] = limited.headers();
        assert_eq!(retry, ("retry-after", "3600".into()));
        assert_eq!(policy.1, "\"quota\";q=50;w=86400");
        assert_eq!(state.1, "\"quota\";r=0;t=3600");
        assert!(limited.detail().contains("50 calls per UTC day"), "{}", limited.detail());
        assert_eq!(limited.problem()["limit"], "quota");
        assert_eq!(limited.context()["retry_after"], 3600);
    }
}
