//! Keys found in public (a secret scanner's report): each match that is a key keygate issued
//! and that still works is answered as its template says (`on_leak`), once per token.

use chrono::Duration;
use serde_json::json;

use super::App;
use crate::audit::AuditAction;
use crate::error::{Error, Result};
use crate::identity::Caller;
use crate::ids::{KeyId, TemplateId, UserId};
use crate::key::{IssuedKey, LeakReport};
use crate::mail;
use crate::scanning::{Found, Label};
use crate::store::{Cond, layout};
use crate::template::OnLeak;

/// What keygate did with one match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeakOutcome {
    /// Not a key keygate issued, or one that no longer works: nothing changed.
    NotOurs,
    /// Reported before for this token: nothing changed again.
    AlreadyReported,
    /// Acted on, as the template says.
    Acted(OnLeak),
}

impl App {
    /// Answers each match of a verified report (`scanner` names who sent it).
    pub async fn leak_reports(&self, scanner: &str, found: &[Found]) -> Result<Vec<Label>> {
        let mut labels = Vec::with_capacity(found.len());
        for f in found {
            let outcome = self.leak_report(scanner, f).await?;
            labels.push(Label::of(f, outcome != LeakOutcome::NotOurs));
        }
        Ok(labels)
    }

    /// One match. The token is checked as the authorizer would (signature, issuer, its key's
    /// record and generation); whatever fails, the answer is the same and nothing is written.
    pub async fn leak_report(&self, scanner: &str, found: &Found) -> Result<LeakOutcome> {
        let Some((key, generation)) = self.live_key_of(found.token.expose()).await? else {
            return Ok(LeakOutcome::NotOurs);
        };
        if key.leak.as_ref().is_some_and(|l| l.generation == generation) {
            return Ok(LeakOutcome::AlreadyReported);
        }
        let now = self.now();
        let id = key.project_id.clone();
        let project = self.project(&id).await?;
        let on_leak = self.template(&id, &key.template_id).await.map_or(OnLeak::default(), |t| t.on_leak);
        let leak = LeakReport { generation, reported_at: now, url: found.url.clone(), scanner: scanner.to_owned() };
        let reported = IssuedKey { leak: Some(leak), ..key.clone() };
        let actor = scanner_caller(scanner);
        let mut tx = self.tx();
        let (after, action) = match on_leak {
            OnLeak::Revoke => {
                (self.plan_revoke(&mut tx, &reported, &actor.id).await?, "The key was revoked: calls made with it are refused from now on. Request a new key in the project's API keys section.".to_owned())
            }
            OnLeak::Reroll if generation == key.generation => {
                let plan = self.plan_reroll(&mut tx, &reported, Duration::zero()).await?;
                let words = format!("The key was given a new token and the old one stopped working at once. {} secret(s) it was imported into now hold the new token; programs that hold it elsewhere need the new one.", plan.secrets.len());
                (plan.key, words)
            }
            OnLeak::Reroll => {
                // The token reported is the one before the last reroll: its grace ends now.
                let ended = IssuedKey { previous_until: Some(now), version: key.version + 1, ..reported };
                tx.put_key(&ended, Cond::Version(key.version));
                (ended, "The key had been rerolled; the old token reported stopped working at once. The current token is unchanged.".to_owned())
            }
            OnLeak::Notify => {
                let noted = IssuedKey { version: key.version + 1, ..reported };
                tx.put_key(&noted, Cond::Version(key.version));
                (noted, "The key still works (its template asks only to be told). Consider rerolling it from My keys.".to_owned())
            }
        };
        tx.audit(
            &id,
            &actor,
            AuditAction::KeyLeakReported,
            &key.id,
            json!({"url": found.url, "source": found.source, "on_leak": on_leak, "generation": generation}),
            now,
        );
        self.mail_holder_and_owner(&mut tx, &project, &after, |to| {
            mail::key_leaked(&self.settings.console_url, &project, &after, to, &found.url, &action)
        });
        self.commit(tx, |_| Error::conflict("the key changed meanwhile; the report will be acted on when sent again"))
            .await?;
        self.key_events.key_retired(&id, &key.id);
        tracing::warn!(key_id = %key.id, project_id = %id, ?on_leak, "leaked key reported");
        Ok(LeakOutcome::Acted(on_leak))
    }

    /// The key a token names and the token's generation, if keygate signed it and it works now.
    async fn live_key_of(&self, token: &str) -> Result<Option<(IssuedKey, u32)>> {
        let Ok(claims) = self.keys.verify_signature(token) else { return Ok(None) };
        let project = crate::signing::audience_project(&claims.aud);
        let (Some(project), Some(kid), true) = (project, KeyId::parse(&claims.jti), claims.iss == self.keys.issuer())
        else {
            return Ok(None);
        };
        let Some((key, _)) = self.load::<IssuedKey>(&layout::key(&project, &kid)).await? else { return Ok(None) };
        let now = self.now();
        let same =
            key.user_id.as_str() == claims.sub && TemplateId::parse(&claims.tpl).as_ref() == Some(&key.template_id);
        let works = key.is_usable(now) && key.admits_generation(claims.generation, now);
        Ok((same && works).then_some((key, claims.generation)))
    }
}

/// The scanner as the audit log names it.
fn scanner_caller(scanner: &str) -> Caller {
    Caller {
        id: UserId::parse(&format!("secret-scanning:{scanner}"))
            .unwrap_or_else(|_| UserId::parse("secret-scanning").expect("a valid id")),
        email: String::new(),
        name: Some(format!("{scanner} secret scanning")),
    }
}
