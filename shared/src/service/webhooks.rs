//! Delivering the webhook events the outbox holds (issue 32). A change queues its event in the
//! same transaction ([`super::Tx::audit`]), so no change is committed without it; a worker (a
//! task of keygate-local today) sends what is due, oldest first: to the deployment's endpoint
//! (the operator's) and to the endpoints of the event's project that asked for its type, looked
//! up when the worker first reads the event. Each endpoint's delivery is its own: done once
//! delivered, otherwise tried again on the schedule of [`crate::webhook::next_attempt`] with the
//! same `webhook-id`, and given up 3 days after its first attempt; the event is deleted when no
//! endpoint waits for it. No operation waits on an endpoint.

use chrono::Utc;

use super::{App, decode, encode};
use crate::error::Result;
use crate::ids::{DeliveryId, ProjectId, WebhookId};
use crate::secret::SecretValue;
use crate::store::{Cond, Query, Write, layout};
use crate::webhook::{DEPLOYMENT, Delivery, DeliveryState, Endpoint, Event, Queued, Target, message_id, next_attempt};
use crate::webhook_delivery::{Outcome, Sender};

/// The deployment's own endpoint, where every event of every project goes (the platform listens
/// there), with the secrets it is signed with (the new one first).
#[derive(Clone, Debug)]
pub struct Deployment {
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

fn project_of(event: &Event) -> Option<ProjectId> {
    event.data.get("project_id")?.as_str().and_then(ProjectId::parse)
}

impl App {
    /// The endpoints an event goes to: the deployment's, and its project's that want its type.
    async fn targets(&self, event: &Event, deployment: Option<&Deployment>) -> Result<Vec<Target>> {
        let mut targets: Vec<Target> = deployment.map(|_| Target::new(DEPLOYMENT)).into_iter().collect();
        if let Some(project) = project_of(event) {
            let endpoints: Vec<Endpoint> = self.load_all(layout::project_pk(&project), layout::WEBHOOKS).await?;
            targets.extend(
                endpoints
                    .iter()
                    .filter(|e| e.wants(event.kind))
                    .map(|e| Target { delivery: Some(DeliveryId::generate()), ..Target::new(e.id.to_string()) }),
            );
        }
        Ok(targets)
    }

    /// Where `target` is now and the secrets in force; `None` if it was deleted, disabled or no
    /// longer wants the event's type (its delivery is dropped).
    async fn destination(
        &self,
        event: &Event,
        target: &Target,
        deployment: Option<&Deployment>,
    ) -> Result<Option<(String, Vec<SecretValue>)>> {
        if target.endpoint == DEPLOYMENT {
            return Ok(deployment.map(|d| (d.url.clone(), d.secrets.clone())));
        }
        let (Some(project), Some(id)) = (project_of(event), WebhookId::parse(&target.endpoint)) else {
            return Ok(None);
        };
        let Some((endpoint, _)) = self.load::<Endpoint>(&layout::webhook(&project, &id)).await? else {
            return Ok(None);
        };
        if !endpoint.wants(event.kind) {
            return Ok(None);
        }
        let secrets = endpoint.secrets(self.now()).into_iter().cloned().collect();
        Ok(Some((endpoint.url, secrets)))
    }

    /// One round of delivery: every queued event that is due, oldest first, one attempt per
    /// endpoint that waits for it.
    pub async fn deliver_webhooks(&self, sender: &Sender, deployment: Option<&Deployment>) -> Result<Round> {
        let page = self.store.query(&Query::prefix(layout::WEBHOOK_EVENTS_PK, "").limit(ROUND)).await?;
        let mut round = Round::default();
        for item in page.items {
            let queued: Queued = decode(&item)?;
            let (targets, mut changed) = match queued.targets {
                Some(targets) => (targets, false),
                None => (self.targets(&queued.event, deployment).await?, true),
            };
            let payload = queued.event.payload();
            let mut waiting = Vec::with_capacity(targets.len());
            for target in targets {
                let now = self.now();
                if target.next_at.is_some_and(|at| at > now) {
                    waiting.push(target);
                    continue;
                }
                changed = true;
                let Some((url, secrets)) = self.destination(&queued.event, &target, deployment).await? else {
                    self.record(
                        &queued.event,
                        &target,
                        DeliveryState::Failed,
                        "not sent: the endpoint was disabled or deleted",
                        None,
                        0,
                    )
                    .await;
                    continue;
                };
                let id = message_id(&queued.event.id, &target.endpoint);
                let signing: Vec<&SecretValue> = secrets.iter().collect();
                let attempt = sender.send(&url, &id, Utc::now(), &payload, &signing).await;
                let took = attempt.took.as_millis() as u64;
                let last = words(&attempt.outcome);
                let attempts = target.attempts + 1;
                if attempt.outcome.delivered() {
                    self.record(
                        &queued.event,
                        &Target { attempts, ..target },
                        DeliveryState::Delivered,
                        &last,
                        None,
                        took,
                    )
                    .await;
                    round.delivered += 1;
                    continue;
                }
                let first = target.first_attempt.unwrap_or(now);
                match next_attempt(first, attempts, self.now()) {
                    Some(next) => {
                        tracing::warn!(webhook_id = %id, attempts, outcome = %last, next = %next, "webhook not delivered; tried again later");
                        let again = Target {
                            attempts,
                            first_attempt: Some(first),
                            next_at: Some(next),
                            last_outcome: Some(last.clone()),
                            ..target
                        };
                        self.record(&queued.event, &again, DeliveryState::Retrying, &last, Some(next), took).await;
                        waiting.push(again);
                        round.failed += 1;
                    }
                    None => {
                        tracing::error!(webhook_id = %id, attempts, outcome = %last, "webhook given up after 3 days of failed attempts");
                        self.record(
                            &queued.event,
                            &Target { attempts, ..target },
                            DeliveryState::Failed,
                            &last,
                            None,
                            took,
                        )
                        .await;
                        round.given_up += 1;
                    }
                }
            }
            // A failure to write here only means an endpoint gets the event once more, with the
            // same id.
            if waiting.is_empty() {
                self.store.transact(vec![Write::Delete { key: item.key, cond: Cond::Version(item.version) }]).await?;
            } else if changed {
                let next = Queued { event: queued.event, targets: Some(waiting) };
                let item = encode(item.key, item.version + 1, &next);
                let cond = Cond::Version(item.version - 1);
                self.store.transact(vec![Write::Put { item, cond }]).await?;
            }
        }
        Ok(round)
    }

    /// Writes where a delivery to a project's endpoint stands, for its managers' list. Best
    /// effort: a failure to write it costs the list a line, never a delivery.
    async fn record(
        &self,
        event: &Event,
        target: &Target,
        state: DeliveryState,
        outcome: &str,
        next_at: Option<chrono::DateTime<Utc>>,
        took_ms: u64,
    ) {
        let (Some(project), Some(webhook), Some(id)) =
            (project_of(event), WebhookId::parse(&target.endpoint), target.delivery.clone())
        else {
            return;
        };
        let delivery = Delivery {
            id: id.clone(),
            webhook_id: webhook.clone(),
            message_id: message_id(&event.id, &target.endpoint),
            event: event.clone(),
            state,
            attempts: target.attempts,
            last_outcome: outcome.to_owned(),
            last_attempt_at: self.now(),
            took_ms,
            next_at,
        };
        let item = encode(layout::webhook_delivery(&project, &webhook, &id), 1, &delivery);
        if let Err(e) = self.store.transact(vec![Write::Put { item, cond: Cond::Always }]).await {
            tracing::warn!(error = %e, delivery_id = %id, "webhook delivery record not written");
        }
    }
}
