//! keygate-local's figures for the people who run it, at `GET /metrics` in the OpenMetrics text
//! format that Prometheus scrapes: every decision on a platform call by outcome (the outcomes
//! refused callers are told, `Denial::outcome`, and `allowed`), and how long deciding and
//! metering took.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The content type of the answer (Prometheus reads OpenMetrics text natively).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: &'static str,
}

pub struct Metrics {
    registry: Registry,
    decisions: Family<Outcome, Counter>,
    decision_seconds: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("keygate");
        let decisions = Family::<Outcome, Counter>::default();
        registry.register(
            "decisions",
            "Platform API calls decided by the authorizer, by outcome (allowed, or why refused)",
            decisions.clone(),
        );
        // 50 µs to about 100 ms.
        let decision_seconds = Histogram::new(exponential_buckets(0.000_05, 2.0, 12));
        registry.register(
            "decision_seconds",
            "Time to decide a platform API call, metering included",
            decision_seconds.clone(),
        );
        Self { registry, decisions, decision_seconds }
    }
}

impl Metrics {
    /// Counts one decision and how long it took.
    pub fn decided(&self, outcome: &'static str, took: Duration) {
        self.decisions.get_or_create(&Outcome { outcome }).inc();
        self.decision_seconds.observe(took.as_secs_f64());
    }

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
    fn decisions_are_counted_by_outcome_and_timed() {
        let m = Metrics::default();
        m.decided("allowed", Duration::from_micros(80));
        m.decided("allowed", Duration::from_micros(90));
        m.decided("revoked", Duration::from_micros(40));
        let text = m.render();
        assert!(text.contains("keygate_decisions_total{outcome=\"allowed\"} 2"), "{text}");
        assert!(text.contains("keygate_decisions_total{outcome=\"revoked\"} 1"), "{text}");
        assert!(text.contains("keygate_decision_seconds_count 3"), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}
