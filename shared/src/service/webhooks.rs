//! Delivering the webhook events the outbox holds (issue 32). A change queues its event in the
//! same transaction ([`super::Tx::audit`]), so no change is committed without it; a worker (a
//! task of keygate-local today) sends what is due, oldest first, to the deployment's endpoint:
//! deleted once delivered, otherwise tried again on the schedule of [`crate::webhook::next_attempt`]
//! with the same `webhook-id`, and given up 3 days after its first attempt. No operation waits
//! on an endpoint.

use chrono::Utc;

use super::{App, decode, encode};
use crate::error::Result;
use crate::secret::SecretValue;
use crate::store::{Cond, Query, Write, layout};
use crate::webhook::{Queued, message_id, next_attempt};
use crate::webhook_delivery::{Outcome, Sender};

/// Where every event of the deployment goes: the operator's endpoint (the platform listens
/// there), with the secrets it is signed with (the new one first).
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// Part of each message's `webhook-id`.
    pub id: String,
    pub url: String,
    pub secrets: Vec<SecretValue>,
}

/// Events read at once by one round of the worker.
const ROUND: usize = 100;

/// What one round did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Round {
    pub delivered: usize,
    pub failed: usize,
    pub given_up: usize,
}

fn words(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Delivered { status } => format!("delivered: HTTP {status}"),
        Outcome::Rejected { status } => format!("rejected: HTTP {status}"),
        Outcome::Refused { why } => format!("refused: {why}"),
        Outcome::TimedOut => "timed out".to_owned(),
        Outcome::Unreachable { why } => format!("unreachable: {why}"),
    }
}

impl App {
    /// One round of delivery: every queued event that is due, oldest first, one attempt each.
    pub async fn deliver_webhooks(&self, sender: &Sender, endpoint: &Endpoint) -> Result<Round> {
        let page = self.store.query(&Query::prefix(layout::WEBHOOK_EVENTS_PK, "").limit(ROUND)).await?;
        let secrets: Vec<&SecretValue> = endpoint.secrets.iter().collect();
        let mut round = Round::default();
        for item in page.items {
            let queued: Queued = decode(&item)?;
            let now = self.now();
            if queued.next_at.is_some_and(|at| at > now) {
                continue;
            }
            let id = message_id(&queued.event.id, &endpoint.id);
            let attempt = sender.send(&endpoint.url, &id, Utc::now(), &queued.event.payload(), &secrets).await;
            let done = Write::Delete { key: item.key.clone(), cond: Cond::Version(item.version) };
            if attempt.outcome.delivered() {
                // A failure here only means the event is sent once more, with the same id.
                self.store.transact(vec![done]).await?;
                round.delivered += 1;
                continue;
            }
            let first = queued.first_attempt.unwrap_or(now);
            let attempts = queued.attempts + 1;
            let last = words(&attempt.outcome);
            match next_attempt(first, attempts, self.now()) {
                Some(next) => {
                    tracing::warn!(webhook_id = %id, attempts, outcome = %last, next = %next, "webhook not delivered; tried again later");
                    let again = Queued {
                        attempts,
                        first_attempt: Some(first),
                        next_at: Some(next),
                        last_outcome: Some(last),
                        ..queued
                    };
                    let item = encode(item.key, item.version + 1, &again);
                    let cond = Cond::Version(item.version - 1);
                    self.store.transact(vec![Write::Put { item, cond }]).await?;
                    round.failed += 1;
                }
                None => {
                    tracing::error!(webhook_id = %id, attempts, outcome = %last, "webhook given up after 3 days of failed attempts");
                    self.store.transact(vec![done]).await?;
                    round.given_up += 1;
                }
            }
        }
        Ok(round)
    }

    /// Events waiting for delivery (at most one round's worth is counted).
    pub async fn pending_webhooks(&self) -> Result<usize> {
        Ok(self.store.query(&Query::prefix(layout::WEBHOOK_EVENTS_PK, "").limit(ROUND)).await?.items.len())
    }
}
