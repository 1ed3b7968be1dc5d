//! Mail delivery that never loses a notice: mail is committed to the outbox in the same
//! transaction as the state change it reports, sent right after the commit (retried once), and
//! removed only once sent. What is still in the outbox is retried by `retry_pending` (a
//! scheduled function on AWS, a background task in the local gateway).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{App, decode};
use crate::error::Result;
use crate::key::IssuedKey;
use crate::mail::Mail;
use crate::store::{Cond, ItemKey, Query, SkRange, Write, layout};

/// Whether an operation's mail went out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Notification {
    /// The operation sends no mail.
    None,
    Sent,
    /// Sending failed for now; the mail is kept and will be retried.
    Pending,
}

impl Notification {
    pub(crate) fn and(self, other: Notification) -> Notification {
        match (self, other) {
            (Self::Pending, _) | (_, Self::Pending) => Self::Pending,
            (Self::Sent, _) | (_, Self::Sent) => Self::Sent,
            _ => Self::None,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Pending {
    pub mail: Mail,
    /// When it was queued; for mail sent later, when it is due.
    pub queued_at: DateTime<Utc>,
    pub attempts: u32,
    /// The key a notice is about: sent only while that key is usable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub about_key: Option<ItemKey>,
    /// A due notice whose `key.expiring` webhook event is queued (once, whatever the mail does).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub announced: bool,
}

/// The outbox write of `mail` under `id`, for mail that is not sent by the request that
/// queues it (the authorizer's quota notices): the retry task sends it. `id` makes it once only.
pub fn queued_mail(id: &str, mail: Mail, now: DateTime<Utc>) -> Write {
    let item = super::encode(
        layout::outbox(id),
        1,
        &Pending { mail, queued_at: now, attempts: 0, about_key: None, announced: false },
    );
    Write::Put { item, cond: Cond::NotExists }
}

/// The write that queues a webhook event in the outbox (on the condition that it is new).
pub fn queued_event(event: crate::webhook::Event) -> Write {
    let queued = crate::webhook::Queued::new(event);
    let item = super::encode(layout::webhook_event(&queued.event.id), 1, &queued);
    Write::Put { item, cond: Cond::NotExists }
}

/// Mail younger than this is left to the request that queued it.
const GRACE: chrono::Duration = chrono::Duration::seconds(30);

impl App {
    pub(crate) async fn deliver(&self, key: &ItemKey, mail: &Mail) -> Notification {
        if !self.mailer.sends() {
            tracing::info!(outbox = %key.sk, "mail left in the outbox for the mail-retry function");
            return Notification::Pending;
        }
        for attempt in 0..2 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            match self.mailer.send(mail).await {
                Ok(()) => {
                    // A failure here only means the retry task sends the mail once more.
                    if let Err(e) =
                        self.store.transact(vec![Write::Delete { key: key.clone(), cond: Cond::Always }]).await
                    {
                        tracing::warn!(error = %e, outbox = %key.sk, "sent mail stays in the outbox");
                    }
                    return Notification::Sent;
                }
                Err(e) => tracing::warn!(error = %e, to = %mail.to, attempt, "mail not sent"),
            }
        }
        tracing::warn!(outbox = %key.sk, to = %mail.to, "mail kept in the outbox for retry");
        Notification::Pending
    }

    /// Sends what the outbox holds (older than a short grace period); returns how many went out.
    /// Mail sent later (expiry notices) goes out once due, if its key is still usable.
    pub async fn retry_pending(&self) -> Result<usize> {
        let now = self.now();
        let queued = Query::prefix(layout::OUTBOX_PK, "").limit(100);
        let mut due = Query::prefix(layout::LATER_PK, "").limit(100);
        // From "0": every due time is a year of four digits, and a key may not be empty.
        due.sk = SkRange::Between("0".into(), format!("{}#\u{10FFFF}", layout::later_sk(now)));
        let (queued, due) = tokio::try_join!(self.store.query(&queued), self.store.query(&due))?;
        let mut sent = 0;
        for mut item in queued.items.into_iter().chain(due.items) {
            let mut pending: Pending = decode(&item)?;
            let later = item.key.pk == layout::LATER_PK;
            if !later && now - pending.queued_at < GRACE {
                continue;
            }
            if let Some(about) = &pending.about_key {
                let Some((key, _)) = self.load::<IssuedKey>(about).await?.filter(|(key, _)| key.is_usable(now)) else {
                    tracing::info!(outbox = %item.key.sk, "notice dropped: its key is revoked or expired");
                    let gone = Write::Delete { key: item.key, cond: Cond::Version(item.version) };
                    self.store.transact(vec![gone]).await?;
                    continue;
                };
                if later && self.settings.webhook_events && !pending.announced {
                    pending.announced = true;
                    self.announce_expiry(&key, &mut item, &pending, now).await?;
                }
            }
            match self.mailer.send(&pending.mail).await {
                Ok(()) => {
                    self.store
                        .transact(vec![Write::Delete { key: item.key, cond: Cond::Version(item.version) }])
                        .await?;
                    sent += 1;
                }
                Err(e) => {
                    tracing::warn!(error = %e, to = %pending.mail.to, attempts = pending.attempts + 1, "mail retry failed");
                    let next = Pending { attempts: pending.attempts + 1, ..pending };
                    let item = super::encode(item.key, item.version + 1, &next);
                    let cond = Cond::Version(item.version - 1);
                    self.store.transact(vec![Write::Put { item, cond }]).await?;
                }
            }
        }
        Ok(sent)
    }

    /// Queues the `key.expiring` event of a due expiry notice, in one transaction with the
    /// notice marked announced (`pending`), so that it is queued once whether or not the mail
    /// goes out now.
    async fn announce_expiry(
        &self,
        key: &IssuedKey,
        item: &mut crate::store::Item,
        pending: &Pending,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let left = key.expires_at.map(|at| (at - now).num_seconds().max(0));
        let facts = serde_json::json!({
            "expires_at": key.expires_at,
            "days_left": left.map(|s| (s + 86_399) / 86_400),
        });
        let event = crate::webhook::Event::about_key(crate::webhook::EventType::KeyExpiring, now, key, facts)?;
        let marked = super::encode(item.key.clone(), item.version + 1, pending);
        let writes = vec![queued_event(event), Write::Put { item: marked, cond: Cond::Version(item.version) }];
        self.store.transact(writes).await?;
        item.version += 1;
        Ok(())
    }

    /// [`App::retry_pending`], its mail sent and the mail still waiting told to `figures`.
    pub async fn retry_reporting(&self, figures: &dyn crate::figures::Figures) -> Result<usize> {
        let sent = self.retry_pending().await.inspect_err(|_| figures.store_error())?;
        let pending = self.pending_mail().await.inspect_err(|_| figures.store_error()).ok();
        figures.mail(sent as u64, pending);
        Ok(sent)
    }

    /// Mail in the outbox not sent yet (the first thousand), mail for later not counted.
    pub async fn pending_mail(&self) -> Result<u64> {
        Ok(self.store.query(&Query::prefix(layout::OUTBOX_PK, "").limit(1000)).await?.items.len() as u64)
    }
}
