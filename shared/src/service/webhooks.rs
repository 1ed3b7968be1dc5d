//! Delivering the webhook events the outbox holds (issue 32). A change queues its event in the
//! same transaction ([`super::Tx::audit`]), so no change is committed without it; workers
//! (a task of each keygate-local process; on AWS the `webhook-delivery` function, woken by the
//! table's stream and a schedule) send what is due, oldest first: to the deployment's endpoint
//! (the operator's) and to the endpoints of the event's project that asked for its type, looked
//! up when a worker first reads the event.
//!
//! - **Once per worker pool.** A worker claims an event (a lease written on the condition of
//!   its version) before sending it, so several workers on one table send each message once;
//!   one that stops mid-way leaves a lease that runs out, and the event is sent again with the
//!   same `webhook-id` (at least once).
//! - **Nothing waits on an endpoint.** Events are sent side by side, and an event's endpoints
//!   side by side: an endpoint that hangs holds its own delivery for 10 s, nobody else's.
//! - **Retries.** Each endpoint's delivery is its own: done once delivered, otherwise tried
//!   again on the schedule of [`crate::webhook::next_attempt`] with the same `webhook-id`, and
//!   given up 3 days after its first attempt. A project's endpoint every delivery to which has
//!   failed for 3 days is disabled and the project's owner mailed.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;

use super::{App, decode, encode};
use crate::error::Result;
use crate::ids::{DeliveryId, ProjectId, WebhookId};
use crate::secret::SecretValue;
use crate::store::{Cond, Item, Query, StoreError, Write, layout};
use crate::webhook::{
    DEPLOYMENT, Delivery, DeliveryState, Deployment, Endpoint, Event, GIVE_UP_AFTER, Queued, Target, message_id,
    next_attempt,
};
use crate::webhook_delivery::{Outcome, Sender};

/// Events read at once by one round of a worker.
const ROUND: usize = 100;
/// Pages of [`ROUND`] events a round reads at most looking for due ones.
const SCANNED_PAGES: usize = 20;
/// Events sent side by side.
const SIDE_BY_SIDE: usize = 16;
/// How long a worker holds an event it claimed: one attempt's 10 s and its 3 s of DNS, with room.
const LEASE: chrono::Duration = chrono::Duration::seconds(60);
/// An endpoint failing for longer counts in the figure the stack's alarm watches.
pub const FAILING_ALARM_AFTER: chrono::Duration = chrono::Duration::hours(1);

/// What one round did, for the logs and the figures.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Round {
    pub delivered: usize,
    pub failed: usize,
    pub given_up: usize,
    /// Each attempt's outcome ([`Outcome::name`]) and how long it took.
    pub attempts: Vec<(&'static str, Duration)>,
    /// Failed attempts to endpoints that have been failing for over an hour.
    pub failing_for_an_hour: usize,
    /// Endpoints disabled for failing 3 days.
    pub disabled: usize,
    /// Events left for a later round because the store failed.
    pub errors: usize,
    /// When the earliest retry seen is due.
    pub next_due: Option<DateTime<Utc>>,
}

fn earliest(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl Round {
    fn add(&mut self, other: Round) {
        self.delivered += other.delivered;
        self.failed += other.failed;
        self.given_up += other.given_up;
        self.attempts.extend(other.attempts);
        self.failing_for_an_hour += other.failing_for_an_hour;
        self.disabled += other.disabled;
        self.errors += other.errors;
        self.next_due = earliest(self.next_due, other.next_due);
    }

    /// Whether it sent anything (or failed to).
    pub fn is_idle(&self) -> bool {
        self.attempts.is_empty() && self.errors == 0
    }

    /// Tells `figures` what the round did.
    pub fn report(&self, figures: &dyn crate::figures::Figures) {
        // Recorded first: it is written with the attempts that follow.
        figures.webhooks_failing(self.failing_for_an_hour as u64);
        for (outcome, took) in &self.attempts {
            figures.webhook(outcome, *took);
        }
        for _ in 0..self.errors {
            figures.store_error();
        }
    }
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

/// Where a delivery goes now: the URL, the secrets in force, and the project's endpoint it is
/// (none for the deployment's).
struct Destination {
    url: String,
    secrets: Vec<SecretValue>,
    endpoint: Option<Endpoint>,
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

    /// Where `target` is now; `None` if it was deleted, disabled or no longer wants the event's
    /// type (its delivery is dropped). A test event goes to its endpoint whatever its types.
    async fn destination(
        &self,
        event: &Event,
        target: &Target,
        deployment: Option<&Deployment>,
    ) -> Result<Option<Destination>> {
        if target.endpoint == DEPLOYMENT {
            return Ok(deployment.map(|d| Destination {
                url: d.url.clone(),
                secrets: d.secrets.clone(),
                endpoint: None,
            }));
        }
        let (Some(project), Some(id)) = (project_of(event), WebhookId::parse(&target.endpoint)) else {
            return Ok(None);
        };
        let Some((endpoint, version)) = self.load::<Endpoint>(&layout::webhook(&project, &id)).await? else {
            return Ok(None);
        };
        let test = event.kind == crate::webhook::EventType::WebhookTest;
        if !(endpoint.wants(event.kind) || test && endpoint.enabled) {
            return Ok(None);
        }
        let secrets = endpoint.secrets(self.now()).into_iter().cloned().collect();
        Ok(Some(Destination { url: endpoint.url.clone(), secrets, endpoint: Some(Endpoint { version, ..endpoint }) }))
    }

    /// One round of delivery: every queued event that is due and not claimed by another worker,
    /// oldest first (up to [`ROUND`]), one attempt per endpoint that waits for it. Events
    /// waiting for a retry are passed over, so that they never hold back the new ones behind
    /// them. An event the store failed on is counted in [`Round::errors`] and left for later.
    pub async fn deliver_webhooks(&self, sender: &Sender, deployment: Option<&Deployment>) -> Result<Round> {
        let mut round = Round::default();
        let mut due = Vec::new();
        let mut query = Query::prefix(layout::WEBHOOK_EVENTS_PK, "").limit(ROUND);
        for _ in 0..SCANNED_PAGES {
            let page = self.store.query(&query).await?;
            let now = self.now();
            for item in page.items {
                let queued: Queued = decode(&item)?;
                if queued.lease_until.is_some_and(|until| until > now) {
                    continue;
                }
                let later = queued.targets.iter().flatten().map(|t| t.next_at).collect::<Option<Vec<_>>>();
                match later.and_then(|at| at.into_iter().min()) {
                    Some(first) if first > now => round.next_due = earliest(round.next_due, Some(first)),
                    _ => due.push(item),
                }
            }
            match page.next {
                Some(next) if due.len() < ROUND => query.cursor = Some(next),
                _ => break,
            }
        }
        let rounds: Vec<Round> = futures_util::stream::iter(due)
            .map(|item| async move {
                let sk = item.key.sk.clone();
                self.deliver_event(item, sender, deployment).await.unwrap_or_else(|e| {
                    tracing::warn!(error = %e, event = %sk, "webhook event left for a later round");
                    Round { errors: 1, ..Round::default() }
                })
            })
            .buffer_unordered(SIDE_BY_SIDE)
            .collect()
            .await;
        for r in rounds {
            round.add(r);
        }
        Ok(round)
    }

    /// Claims one queued event, makes the attempts that are due, and writes where it stands.
    async fn deliver_event(&self, item: Item, sender: &Sender, deployment: Option<&Deployment>) -> Result<Round> {
        let queued: Queued = decode(&item)?;
        let now = self.now();
        if queued.lease_until.is_some_and(|until| until > now) {
            return Ok(Round::default()); // another worker is sending it
        }
        let targets = match queued.targets {
            Some(targets) => targets,
            None => self.targets(&queued.event, deployment).await?,
        };
        let (due, mut waiting): (Vec<Target>, Vec<Target>) =
            targets.into_iter().partition(|t| t.next_at.is_none_or(|at| at <= now));
        let next_due = waiting.iter().filter_map(|t| t.next_at).min();
        if due.is_empty() && !waiting.is_empty() {
            return Ok(Round { next_due, ..Round::default() });
        }
        let held = item.version + 1;
        let claim = Queued {
            event: queued.event.clone(),
            targets: Some(due.iter().chain(&waiting).cloned().collect()),
            lease_until: Some(now + LEASE),
        };
        match self
            .store
            .transact(vec![Write::Put {
                item: encode(item.key.clone(), held, &claim),
                cond: Cond::Version(item.version),
            }])
            .await
        {
            Ok(()) => {}
            Err(StoreError::ConditionFailed { .. }) => return Ok(Round::default()), // claimed meanwhile
            Err(e) => return Err(e.into()),
        }
        let payload = queued.event.payload();
        let attempts = due.into_iter().map(|t| self.attempt(&queued.event, &payload, t, sender, deployment));
        let mut round = Round { next_due, ..Round::default() };
        for result in futures_util::future::join_all(attempts).await {
            let (again, r) = result?;
            round.add(r);
            round.next_due = earliest(round.next_due, again.as_ref().and_then(|t| t.next_at));
            waiting.extend(again);
        }
        // A failure to write here only means an endpoint gets the event once more, with the
        // same id, when the lease runs out.
        let release = if waiting.is_empty() {
            Write::Delete { key: item.key, cond: Cond::Version(held) }
        } else {
            let next = Queued { event: queued.event, targets: Some(waiting), lease_until: None };
            Write::Put { item: encode(item.key, held + 1, &next), cond: Cond::Version(held) }
        };
        if let Err(e) = self.store.transact(vec![release]).await {
            tracing::warn!(error = %e, "webhook event not released; sent again when its lease runs out");
            round.errors += 1;
        }
        Ok(round)
    }

    /// One attempt to one endpoint: the target again if it is to be tried later.
    async fn attempt(
        &self,
        event: &Event,
        payload: &str,
        target: Target,
        sender: &Sender,
        deployment: Option<&Deployment>,
    ) -> Result<(Option<Target>, Round)> {
        let mut round = Round::default();
        let now = self.now();
        let Some(to) = self.destination(event, &target, deployment).await? else {
            let why = "not sent: the endpoint was disabled or deleted";
            self.record(event, &target, DeliveryState::Failed, why, None, 0).await;
            return Ok((None, round));
        };
        let id = message_id(&event.id, &target.endpoint);
        let signing: Vec<&SecretValue> = to.secrets.iter().collect();
        let attempt = sender.send(&to.url, &id, Utc::now(), payload, &signing).await;
        round.attempts.push((attempt.outcome.name(), attempt.took));
        let took = attempt.took.as_millis() as u64;
        let last = words(&attempt.outcome);
        let attempts = target.attempts + 1;
        let delivered = attempt.outcome.delivered();
        let first = target.first_attempt.unwrap_or(now);
        let next = if delivered { None } else { next_attempt(first, attempts, self.now()) };
        if let Some(endpoint) = to.endpoint {
            let given_up = (!delivered && next.is_none()).then_some(first);
            round.add(self.endpoint_health(event, endpoint, delivered, given_up, &last).await);
        } else if !delivered && now - first >= FAILING_ALARM_AFTER {
            round.failing_for_an_hour += 1;
        }
        if delivered {
            let done = Target { attempts, ..target };
            self.record(event, &done, DeliveryState::Delivered, &last, None, took).await;
            round.delivered += 1;
            return Ok((None, round));
        }
        match next {
            Some(next) => {
                tracing::warn!(webhook_id = %id, attempts, outcome = %last, next = %next, "webhook not delivered; tried again later");
                let again = Target {
                    attempts,
                    first_attempt: Some(first),
                    next_at: Some(next),
                    last_outcome: Some(last.clone()),
                    ..target
                };
                self.record(event, &again, DeliveryState::Retrying, &last, Some(next), took).await;
                round.failed += 1;
                Ok((Some(again), round))
            }
            None => {
                tracing::error!(webhook_id = %id, attempts, outcome = %last, "webhook given up after 3 days of failed attempts");
                let failed = Target { attempts, ..target };
                self.record(event, &failed, DeliveryState::Failed, &last, None, took).await;
                round.given_up += 1;
                Ok((None, round))
            }
        }
    }

    /// Keeps a project's endpoint's failing streak: started at its first failure, ended by a
    /// delivery. An endpoint failing for 3 days (or whose delivery was just given up after its
    /// 3 days of retries, `given_up` holding its first attempt, with no delivery since) is
    /// disabled and the project's owner mailed, in one transaction. Best effort: a write lost
    /// here is made at the next attempt.
    async fn endpoint_health(
        &self,
        event: &Event,
        endpoint: Endpoint,
        delivered: bool,
        given_up: Option<DateTime<Utc>>,
        last: &str,
    ) -> Round {
        let mut round = Round::default();
        let now = self.now();
        let project = endpoint.project_id.clone();
        let key = layout::webhook(&project, &endpoint.id);
        let cond = Cond::Version(endpoint.version);
        let version = endpoint.version + 1;
        let mut tx = self.tx();
        match (delivered, endpoint.failing_since) {
            (true, None) => return round,
            (true, Some(_)) => {
                tx.put(key, version, &Endpoint { failing_since: None, ..endpoint }, cond);
            }
            (false, None) => {
                tx.put(key, version, &Endpoint { failing_since: Some(now), ..endpoint }, cond);
            }
            (false, Some(since))
                if endpoint.enabled
                    && (now - since >= GIVE_UP_AFTER || given_up.is_some_and(|first| first >= since)) =>
            {
                round.failing_for_an_hour += 1;
                let project_record = match self.project(&project).await {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::warn!(error = %e, "webhook endpoint to disable: project not read");
                        return round;
                    }
                };
                let host = url::Url::parse(&endpoint.url).ok().and_then(|u| u.host_str().map(str::to_owned));
                let host = host.unwrap_or_default();
                let reason = format!(
                    "disabled by keygate at {}: every delivery failed for 3 days (last: {last})",
                    now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                );
                let mail =
                    crate::mail::webhook_disabled(&self.settings.console_url, &project_record, &host, since, last);
                let disabled = Endpoint { enabled: false, disabled_reason: Some(reason), ..endpoint };
                tx.put(key, version, &disabled, cond).mail(mail, now);
                tracing::warn!(project_id = %project, webhook_id = %disabled.id, event = %event.id, "webhook endpoint disabled after failing for 3 days");
                round.disabled += 1;
            }
            (false, Some(since)) => {
                if now - since >= FAILING_ALARM_AFTER {
                    round.failing_for_an_hour += 1;
                }
                return round;
            }
        }
        if let Err(e) = self.commit(tx, |_| crate::error::Error::conflict("the endpoint changed meanwhile")).await {
            tracing::info!(error = %e, project_id = %project, "webhook endpoint's failing streak not written this time");
            round.disabled = 0;
        }
        round
    }

    /// Writes where a delivery to a project's endpoint stands, for its managers' list. Best
    /// effort: a failure to write it costs the list a line, never a delivery.
    async fn record(
        &self,
        event: &Event,
        target: &Target,
        state: DeliveryState,
        outcome: &str,
        next_at: Option<DateTime<Utc>>,
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

/// Delivery rounds until nothing is due before `until`: a round after a round that sent
/// something, and a wait for a retry due in time (the first comes 5 s after a failure). The
/// delivery function runs this for each invocation.
pub async fn deliver_until(
    app: &App,
    sender: &Sender,
    deployment: Option<&Deployment>,
    until: std::time::Instant,
) -> Round {
    let mut total = Round::default();
    loop {
        let round = app.deliver_webhooks(sender, deployment).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "webhook delivery round failed");
            Round { errors: 1, ..Round::default() }
        });
        let (sent, next_due, failed) = (!round.attempts.is_empty(), round.next_due, round.errors > 0);
        total.add(round);
        if failed || std::time::Instant::now() >= until {
            break;
        }
        if sent {
            continue;
        }
        let Some(at) = next_due else { break };
        let wait = (at - app.now()).to_std().unwrap_or_default().max(Duration::from_millis(100));
        if std::time::Instant::now() + wait > until {
            break;
        }
        tokio::time::sleep(wait).await;
    }
    total
}
