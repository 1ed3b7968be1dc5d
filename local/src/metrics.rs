//! keygate-local's figures for the people who run it, at `GET /metrics` in the OpenMetrics text
//! format that Prometheus scrapes. The authorizer and the mail retry report them
//! ([`keygate::figures::Figures`]) under the names the Lambda functions write in Embedded
//! Metric Format ([`keygate::figures::names`]), with Prometheus' conventions: a `keygate_`
//! prefix, `_total` on counters, times in seconds (`decision_time_seconds`).

use std::time::Duration;

use keygate::figures::{Figures, names};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// The content type of the answer (Prometheus reads OpenMetrics text natively).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Answer {
    answer: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Cache {
    cache: &'static str,
}

pub struct Metrics {
    registry: Registry,
    decisions: Family<Outcome, Counter>,
    decision_time: Histogram,
    metering_time: Histogram,
    store_errors: Counter,
    cache_hits: Family<Cache, Counter>,
    cache_misses: Family<Cache, Counter>,
    mail_sent: Counter,
    mail_pending: Gauge,
    described: Family<Answer, Counter>,
    webhooks: Family<Outcome, Counter>,
    webhook_time: Histogram,
    webhooks_failing: Counter,
}

/// 20 µs to about 80 ms.
fn latencies() -> Histogram {
    Histogram::new(exponential_buckets(0.000_02, 2.0, 13))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("keygate");
        let decisions = Family::<Outcome, Counter>::default();
        registry.register(
            names::DECISIONS,
            "Platform API calls decided by the authorizer, by outcome (allowed, or why refused)",
            decisions.clone(),
        );
        let decision_time = latencies();
        registry.register_with_unit(
            names::DECISION_TIME,
            "Time to decide a platform API call, metering included",
            Unit::Seconds,
            decision_time.clone(),
        );
        let metering_time = latencies();
        registry.register_with_unit(
            names::METERING_TIME,
            "Time of the metering write of an allowed call",
            Unit::Seconds,
            metering_time.clone(),
        );
        let store_errors = Counter::default();
        registry.register(names::STORE_ERRORS, "Store calls that failed", store_errors.clone());
        let cache_hits = Family::<Cache, Counter>::default();
        registry.register(names::CACHE_HITS, "Authorizer lookups answered from memory", cache_hits.clone());
        let cache_misses = Family::<Cache, Counter>::default();
        registry.register(names::CACHE_MISSES, "Authorizer lookups that read the store", cache_misses.clone());
        let mail_sent = Counter::default();
        registry.register(names::MAIL_SENT, "Mail handed to the mail service by the retry", mail_sent.clone());
        let mail_pending = Gauge::default();
        registry.register(names::MAIL_PENDING, "Mail in the outbox after the last retry", mail_pending.clone());
        let described = Family::<Answer, Counter>::default();
        registry.register(
            names::KEY_DESCRIBED,
            "GET /v1/key answered, by answer (described, or refused: not a key of this keygate); neither billed nor a decision",
            described.clone(),
        );
        let webhooks = Family::<Outcome, Counter>::default();
        registry.register(
            names::WEBHOOK_DELIVERIES,
            "Webhook delivery attempts, by outcome (delivered, rejected, refused, timed_out, unreachable)",
            webhooks.clone(),
        );
        // 10 ms to about 20 s (an attempt gives up at 10 s).
        let webhook_time = Histogram::new(exponential_buckets(0.01, 2.0, 12));
        registry.register_with_unit(
            names::WEBHOOK_TIME,
            "Time of a webhook delivery attempt, the endpoint's answer included",
            Unit::Seconds,
            webhook_time.clone(),
        );
        let webhooks_failing = Counter::default();
        registry.register(
            names::WEBHOOKS_FAILING,
            "Failed webhook attempts to endpoints failing for over an hour",
            webhooks_failing.clone(),
        );
        Self {
            webhooks,
            webhook_time,
            webhooks_failing,
            described,
            registry,
            decisions,
            decision_time,
            metering_time,
            store_errors,
            cache_hits,
            cache_misses,
            mail_sent,
            mail_pending,
        }
    }
}

impl Figures for Metrics {
    fn decided(&self, outcome: &'static str, took: Duration) {
        self.decisions.get_or_create(&Outcome { outcome }).inc();
        self.decision_time.observe(took.as_secs_f64());
    }

    fn metered(&self, took: Duration) {
        self.metering_time.observe(took.as_secs_f64());
    }

    fn store_error(&self) {
        self.store_errors.inc();
    }

    fn cache(&self, cache: &'static str, hit: bool) {
        let family = if hit { &self.cache_hits } else { &self.cache_misses };
        family.get_or_create(&Cache { cache }).inc();
    }

    fn described(&self, told: bool) {
        self.described.get_or_create(&Answer { answer: keygate::figures::described_answer(told) }).inc();
    }

    fn webhook(&self, outcome: &'static str, took: Duration) {
        self.webhooks.get_or_create(&Outcome { outcome }).inc();
        self.webhook_time.observe(took.as_secs_f64());
    }

    fn webhooks_failing(&self, attempts: u64) {
        self.webhooks_failing.inc_by(attempts);
    }

    fn mail(&self, sent: u64, pending: Option<u64>) {
        self.mail_sent.inc_by(sent);
        if let Some(pending) = pending {
            self.mail_pending.set(pending as i64);
        }
    }
}

impl Metrics {
    /// The figures, in OpenMetrics text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_are_counted_by_outcome_and_timed_under_the_emf_names() {
        let m = Metrics::default();
        m.decided("allowed", Duration::from_micros(80));
        m.decided("allowed", Duration::from_micros(90));
        m.decided("revoked", Duration::from_micros(40));
        m.metered(Duration::from_micros(30));
        m.cache("token", true);
        m.cache("token", false);
        m.mail(2, Some(1));
        m.webhook("delivered", Duration::from_millis(30));
        m.webhook("timed_out", Duration::from_secs(10));
        m.webhooks_failing(1);
        let text = m.render();
        for line in [
            "keygate_decisions_total{outcome=\"allowed\"} 2",
            "keygate_decisions_total{outcome=\"revoked\"} 1",
            "keygate_decision_time_seconds_count 3",
            "keygate_metering_time_seconds_count 1",
            "keygate_cache_hits_total{cache=\"token\"} 1",
            "keygate_cache_misses_total{cache=\"token\"} 1",
            "keygate_mail_sent_total 2",
            "keygate_mail_pending 1",
            "keygate_store_errors_total 0",
            "keygate_webhook_deliveries_total{outcome=\"delivered\"} 1",
            "keygate_webhook_deliveries_total{outcome=\"timed_out\"} 1",
            "keygate_webhook_time_seconds_count 2",
            "keygate_webhooks_failing_total 1",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }
}
