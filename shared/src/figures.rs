//! Figures for the people who run keygate: what the authorizer decided and how long it took,
//! what the store and the mail did. The code reports to a [`Figures`]; the process chooses
//! where the figures go:
//! - keygate-local: Prometheus text at `GET /metrics` (`local/src/metrics.rs`);
//! - a Lambda function: CloudWatch metrics in Embedded Metric Format, in its own log lines
//!   ([`Emf`]): no API call, no agent; CloudWatch Logs extracts them.
//!
//! Both use the same names ([`names`]); Prometheus adds its `keygate_` prefix, `_total` to
//! counters, and reads seconds where EMF reads milliseconds.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The metrics' names, shared by EMF and Prometheus.
pub mod names {
    /// Decisions on platform calls, by `outcome` (`allowed`, or why refused).
    pub const DECISIONS: &str = "decisions";
    /// Time to decide a call, metering included.
    pub const DECISION_TIME: &str = "decision_time";
    /// Time of the metering write of an allowed call.
    pub const METERING_TIME: &str = "metering_time";
    /// Store calls that failed (the call was refused as `unavailable`, or a refusal or mail
    /// could not be written yet).
    pub const STORE_ERRORS: &str = "store_errors";
    /// Lookups answered from the authorizer's memory, by `cache` (`token`, `key`, `template`, `role`).
    pub const CACHE_HITS: &str = "cache_hits";
    /// Lookups that went to the store, by `cache`.
    pub const CACHE_MISSES: &str = "cache_misses";
    /// Mail handed to the mail service.
    pub const MAIL_SENT: &str = "mail_sent";
    /// Mail still in the outbox after a retry run.
    pub const MAIL_PENDING: &str = "mail_pending";
    /// EMF only (Prometheus sums `decisions` instead): all decisions, and the refused ones,
    /// without a dimension, for the refusal-rate alarm's metric math.
    pub const DECIDED: &str = "decided";
    /// `GET /v1/key` answered, by `answer`: `described` (the key's state told, whatever it
    /// is) or `refused` (a token keygate did not sign). Not a decision: such a call is neither
    /// billed nor counted against a quota.
    pub const KEY_DESCRIBED: &str = "key_described";
    pub const REFUSED: &str = "refused";
    /// Webhook delivery attempts, by `outcome` (`delivered`, `rejected`, `refused`,
    /// `timed_out`, `unreachable`).
    pub const WEBHOOK_DELIVERIES: &str = "webhook_deliveries";
    /// Time of a webhook delivery attempt, the endpoint's answer included.
    pub const WEBHOOK_TIME: &str = "webhook_time";
    /// Failed attempts to webhook endpoints that have been failing for over an hour (the
    /// stack's alarm watches it).
    pub const WEBHOOKS_FAILING: &str = "webhooks_failing";
}

/// Where a process's figures go. Every method is cheap (a few atomic operations or a short
/// lock): it runs on every call.
pub trait Figures: Send + Sync {
    fn decided(&self, outcome: &'static str, took: Duration);
    fn metered(&self, took: Duration);
    fn store_error(&self);
    fn cache(&self, cache: &'static str, hit: bool);
    fn mail(&self, sent: u64, pending: Option<u64>);
    /// A key asked what it is (`GET /v1/key`): told, or refused as not keygate's.
    fn described(&self, told: bool);
    /// A webhook delivery attempt, its outcome and how long it took.
    fn webhook(&self, outcome: &'static str, took: Duration);
    /// A delivery round's failed attempts to endpoints failing for over an hour.
    fn webhooks_failing(&self, attempts: u64);
}

/// The `answer` dimension of [`names::KEY_DESCRIBED`].
pub fn described_answer(told: bool) -> &'static str {
    if told { "described" } else { "refused" }
}

/// Figures that go nowhere (tests, benchmarks).
pub struct NoFigures;

impl Figures for NoFigures {
    fn decided(&self, _: &'static str, _: Duration) {}
    fn metered(&self, _: Duration) {}
    fn store_error(&self) {}
    fn cache(&self, _: &'static str, _: bool) {}
    fn mail(&self, _: u64, _: Option<u64>) {}
    fn described(&self, _: bool) {}
    fn webhook(&self, _: &'static str, _: Duration) {}
    fn webhooks_failing(&self, _: u64) {}
}

/// Latencies kept as EMF's values and counts: each value rounded to two significant digits
/// (in milliseconds), so a minute of calls is a few dozen distinct values, well under EMF's
/// 100 per line, whatever the number of calls.
#[derive(Default)]
struct Distribution {
    counts: BTreeMap<u64, u64>,
}

impl Distribution {
    /// Microseconds rounded to two significant digits.
    fn add(&mut self, took: Duration) {
        let us = took.as_micros().min(u128::from(u64::MAX)) as u64;
        let digits = us.checked_ilog10().unwrap_or(0);
        let unit = 10u64.pow(digits.saturating_sub(1));
        *self.counts.entry((us / unit) * unit).or_default() += 1;
    }

    fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// `(values in ms, counts)`, at most 100 values: the rarest merged into their neighbours
    /// beyond that (never seen with two-digit rounding below 100 s).
    fn values_and_counts(&self) -> (Vec<f64>, Vec<u64>) {
        let mut pairs: Vec<(u64, u64)> = self.counts.iter().map(|(v, c)| (*v, *c)).collect();
        while pairs.len() > 100 {
            let last = pairs.pop().map_or(0, |(_, c)| c);
            if let Some(p) = pairs.last_mut() {
                p.1 += last;
            }
        }
        pairs.into_iter().map(|(us, c)| (us as f64 / 1000.0, c)).unzip()
    }
}

#[derive(Default)]
struct Aggregate {
    decisions: BTreeMap<&'static str, u64>,
    decision_time: Distribution,
    metering_time: Distribution,
    store_errors: u64,
    cache: BTreeMap<(&'static str, bool), u64>,
    mail_sent: u64,
    mail_pending: Option<u64>,
    described: BTreeMap<&'static str, u64>,
    webhooks: BTreeMap<&'static str, u64>,
    webhook_time: Distribution,
    webhooks_failing: u64,
    last_emit: Option<Instant>,
}

impl Aggregate {
    fn is_empty(&self) -> bool {
        self.decisions.is_empty()
            && self.metering_time.is_empty()
            && self.store_errors == 0
            && self.cache.is_empty()
            && self.mail_sent == 0
            && self.mail_pending.is_none()
            && self.described.is_empty()
            && self.webhooks.is_empty()
    }
}

/// CloudWatch Embedded Metric Format, aggregated in memory and written as log lines to
/// standard output at most once per interval (and by [`Emf::emit`] on shutdown): a busy
/// authorizer writes a few lines every few seconds, not one per call.
pub struct Emf {
    namespace: String,
    every: Duration,
    state: Mutex<Aggregate>,
    out: Box<dyn Fn(&str) + Send + Sync>,
}

/// The namespace of keygate's metrics in CloudWatch, unless configured (the stack names its
/// own, `keygate/<stack>`, so that two stacks in one account keep their figures apart).
pub const NAMESPACE: &str = "keygate";

impl Emf {
    /// Figures in CloudWatch namespace `namespace`, written to standard output, one JSON
    /// document per line.
    pub fn new(namespace: &str, every: Duration) -> Self {
        let mut emf = Self::writing_to(every, |line| {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
        });
        namespace.clone_into(&mut emf.namespace);
        emf
    }

    /// Figures in [`NAMESPACE`] handed to `out`, one line each (tests).
    pub fn writing_to(every: Duration, out: impl Fn(&str) + Send + Sync + 'static) -> Self {
        Self { namespace: NAMESPACE.into(), every, state: Mutex::new(Aggregate::default()), out: Box::new(out) }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Aggregate> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records with `f`, then writes the figures if the interval has passed.
    fn record(&self, f: impl FnOnce(&mut Aggregate)) {
        let lines = {
            let mut state = self.state();
            f(&mut state);
            if state.last_emit.is_some_and(|at| at.elapsed() < self.every) {
                return;
            }
            self.take_lines(&mut state)
        };
        for line in lines {
            (self.out)(&line);
        }
    }

    /// Writes every figure not written yet.
    pub fn emit(&self) {
        let lines = self.take_lines(&mut self.state());
        for line in lines {
            (self.out)(&line);
        }
    }

    fn take_lines(&self, state: &mut Aggregate) -> Vec<String> {
        state.last_emit = Some(Instant::now());
        if state.is_empty() {
            return Vec::new();
        }
        let a = std::mem::replace(state, Aggregate { last_emit: state.last_emit, ..Aggregate::default() });
        let timestamp =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let mut lines = Vec::new();
        let mut line = |dimension: Option<(&str, &str)>, metrics: Vec<(&str, &str, serde_json::Value)>| {
            if metrics.is_empty() {
                return;
            }
            let dims: Vec<&str> = dimension.iter().map(|(k, _)| *k).collect();
            let definitions: Vec<_> =
                metrics.iter().map(|(name, unit, _)| serde_json::json!({ "Name": name, "Unit": unit })).collect();
            let mut doc = serde_json::json!({
                "_aws": {
                    "Timestamp": timestamp,
                    "CloudWatchMetrics": [{ "Namespace": self.namespace, "Dimensions": [dims], "Metrics": definitions }],
                },
            });
            if let Some((k, v)) = dimension {
                doc[k] = serde_json::json!(v);
            }
            for (name, _, value) in metrics {
                doc[name] = value;
            }
            lines.push(doc.to_string());
        };
        for (outcome, n) in &a.decisions {
            line(Some(("outcome", outcome)), vec![(names::DECISIONS, "Count", serde_json::json!(n))]);
        }
        for (answer, n) in &a.described {
            line(Some(("answer", answer)), vec![(names::KEY_DESCRIBED, "Count", serde_json::json!(n))]);
        }
        for (outcome, n) in &a.webhooks {
            line(Some(("outcome", outcome)), vec![(names::WEBHOOK_DELIVERIES, "Count", serde_json::json!(n))]);
        }
        let mut plain = Vec::new();
        let decided: u64 = a.decisions.values().sum();
        if decided > 0 {
            let refused = decided - a.decisions.get("allowed").copied().unwrap_or(0);
            plain.push((names::DECIDED, "Count", serde_json::json!(decided)));
            plain.push((names::REFUSED, "Count", serde_json::json!(refused)));
        }
        let times = [
            (names::DECISION_TIME, &a.decision_time),
            (names::METERING_TIME, &a.metering_time),
            (names::WEBHOOK_TIME, &a.webhook_time),
        ];
        for (name, d) in times {
            if !d.is_empty() {
                let (values, counts) = d.values_and_counts();
                plain.push((name, "Milliseconds", serde_json::json!({ "Values": values, "Counts": counts })));
            }
        }
        if a.store_errors > 0 {
            plain.push((names::STORE_ERRORS, "Count", serde_json::json!(a.store_errors)));
        }
        if a.mail_sent > 0 {
            plain.push((names::MAIL_SENT, "Count", serde_json::json!(a.mail_sent)));
        }
        if let Some(pending) = a.mail_pending {
            plain.push((names::MAIL_PENDING, "Count", serde_json::json!(pending)));
        }
        if !a.webhooks.is_empty() {
            plain.push((names::WEBHOOKS_FAILING, "Count", serde_json::json!(a.webhooks_failing)));
        }
        line(None, plain);
        let caches: std::collections::BTreeSet<&str> = a.cache.keys().map(|(c, _)| *c).collect();
        for cache in caches {
            let hits = a.cache.get(&(cache, true)).copied().unwrap_or(0);
            let misses = a.cache.get(&(cache, false)).copied().unwrap_or(0);
            line(
                Some(("cache", cache)),
                vec![
                    (names::CACHE_HITS, "Count", serde_json::json!(hits)),
                    (names::CACHE_MISSES, "Count", serde_json::json!(misses)),
                ],
            );
        }
        lines
    }
}

impl Figures for Emf {
    fn decided(&self, outcome: &'static str, took: Duration) {
        self.record(|a| {
            *a.decisions.entry(outcome).or_default() += 1;
            a.decision_time.add(took);
        });
    }

    fn metered(&self, took: Duration) {
        // Written with the decision that follows.
        self.state().metering_time.add(took);
    }

    fn store_error(&self) {
        self.record(|a| a.store_errors += 1);
    }

    fn cache(&self, cache: &'static str, hit: bool) {
        *self.state().cache.entry((cache, hit)).or_default() += 1;
    }

    fn described(&self, told: bool) {
        self.record(|a| *a.described.entry(described_answer(told)).or_default() += 1);
    }

    fn webhook(&self, outcome: &'static str, took: Duration) {
        self.record(|a| {
            *a.webhooks.entry(outcome).or_default() += 1;
            a.webhook_time.add(took);
        });
    }

    fn webhooks_failing(&self, attempts: u64) {
        // Written with the attempts that follow ([`crate::service::WebhookRound::report`]).
        self.state().webhooks_failing += attempts;
    }

    fn mail(&self, sent: u64, pending: Option<u64>) {
        self.record(|a| {
            a.mail_sent += sent;
            if pending.is_some() {
                a.mail_pending = pending;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn emf(every: Duration) -> (Emf, Arc<Mutex<Vec<serde_json::Value>>>) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let seen = lines.clone();
        let emf = Emf::writing_to(every, move |l| seen.lock().unwrap().push(serde_json::from_str(l).unwrap()));
        (emf, lines)
    }

    #[test]
    fn figures_are_written_once_per_interval_as_embedded_metric_format() {
        let (emf, lines) = emf(Duration::from_secs(3600));
        emf.decided("allowed", Duration::from_micros(120));
        // The first decision is written at once; the rest wait for the interval.
        assert_eq!(lines.lock().unwrap().len(), 2, "decisions by outcome, and their time");
        for _ in 0..1000 {
            emf.cache("token", true);
            emf.metered(Duration::from_micros(3100));
            emf.decided("allowed", Duration::from_micros(3456));
        }
        emf.decided("revoked", Duration::from_micros(40));
        assert_eq!(lines.lock().unwrap().len(), 2);
        emf.emit();
        let lines = lines.lock().unwrap();
        let allowed = lines.iter().rev().find(|l| l["outcome"] == "allowed").unwrap();
        assert_eq!(allowed["decisions"], 1000);
        let directive = &allowed["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "keygate");
        assert_eq!(directive["Dimensions"], serde_json::json!([["outcome"]]));
        assert_eq!(directive["Metrics"][0], serde_json::json!({"Name": "decisions", "Unit": "Count"}));
        let revoked = lines.iter().find(|l| l["outcome"] == "revoked").unwrap();
        assert_eq!(revoked["decisions"], 1);
        let times = lines.iter().rev().find(|l| l.get("decision_time").is_some()).unwrap();
        assert_eq!(times["decision_time"]["Values"], serde_json::json!([0.04, 3.4]), "two significant digits");
        assert_eq!(times["decision_time"]["Counts"], serde_json::json!([1, 1000]));
        assert_eq!(times["metering_time"]["Values"], serde_json::json!([3.1]));
        assert_eq!((times["decided"].as_u64(), times["refused"].as_u64()), (Some(1001), Some(1)));
        let token = lines.iter().find(|l| l["cache"] == "token").unwrap();
        assert_eq!((token["cache_hits"].as_u64(), token["cache_misses"].as_u64()), (Some(1000), Some(0)));
    }

    #[test]
    fn a_key_asking_what_it_is_has_its_own_figure_not_a_decision() {
        let (emf, lines) = emf(Duration::ZERO);
        emf.described(true);
        emf.described(true);
        emf.described(false);
        let lines = lines.lock().unwrap();
        let described: Vec<(String, u64)> = lines
            .iter()
            .filter(|l| !l["key_described"].is_null())
            .map(|l| (l["answer"].as_str().unwrap().to_owned(), l["key_described"].as_u64().unwrap()))
            .collect();
        // Written at once (interval zero): one line per call, by answer.
        assert_eq!(described, [("described".into(), 1), ("described".into(), 1), ("refused".into(), 1)]);
        assert!(lines.iter().all(|l| l["decided"].is_null()), "not a decision: {lines:?}");
    }

    #[test]
    fn nothing_is_written_when_nothing_happened() {
        let (emf, lines) = emf(Duration::ZERO);
        emf.emit();
        assert!(lines.lock().unwrap().is_empty());
    }

    #[test]
    fn latencies_keep_two_significant_digits() {
        let mut d = Distribution::default();
        for us in [0, 7, 12, 129, 1_234, 98_765] {
            d.add(Duration::from_micros(us));
        }
        assert_eq!(d.values_and_counts().0, [0.0, 0.007, 0.012, 0.12, 1.2, 98.0]);
    }
}
