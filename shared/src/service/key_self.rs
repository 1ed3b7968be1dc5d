//! What a key says of itself (`GET /v1/key`), to the script that holds it: asked with the key
//! alone, the same `Authorization: Bearer <key>` the platform's calls carry. A key the platform
//! would refuse is still answered, with its state and when it works again, so that a script
//! refused with a bare 403 can ask why; a token keygate did not sign learns nothing.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::App;
use crate::error::Result;
use crate::ids::{DataLayerId, KeyId, ProjectId, TemplateId, UserId};
use crate::key::{IssuedKey, KeyStatus};
use crate::limits::InForce;
use crate::permission::Permissions;
use crate::template::RateLimit;
use crate::usage::QuotaStatus;

/// Whether a key's token works now, as the authorizer would decide before its permissions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    /// It works (within its permissions, quota and rate limit).
    Active,
    /// The token of the generation before a reroll, in its grace period.
    InGrace,
    /// Its quota for the current period is spent.
    QuotaSpent,
    Revoked,
    Expired,
    /// A token of a generation before the key's last reroll, past its grace.
    Rerolled,
}

/// The answer of `GET /v1/key`.
#[derive(Debug, Serialize)]
pub struct KeySelf {
    pub key_id: KeyId,
    pub project_id: ProjectId,
    pub template_id: TemplateId,
    pub template_name: String,
    pub user_id: UserId,
    pub data_layer_id: DataLayerId,
    pub state: KeyState,
    /// Whether the platform lets this token through now (before permissions and rate limit).
    pub works: bool,
    /// Why, in words, when it does not or will stop soon.
    pub detail: String,
    /// When it works again, when that is known (a quota's reset).
    pub works_again_at: Option<DateTime<Utc>>,
    /// What the key's role allows.
    pub permissions: Permissions,
    pub quota: Option<QuotaStatus>,
    pub rate_limit: Option<RateLimit>,
    pub issued_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    /// The key's generation (rerolls so far), and the generation of the token that asked.
    pub generation: u32,
    pub token_generation: u32,
    /// Until when the token of the generation before the last reroll still works.
    pub previous_until: Option<DateTime<Utc>>,
    /// Whether the token is a narrowed one minted from the key; then `permissions` are what it
    /// keeps, and `token` says what else narrows it.
    pub narrowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<NarrowedSelf>,
}

/// What narrows a narrowed token, besides its permissions.
#[derive(Debug, Serialize)]
pub struct NarrowedSelf {
    pub token_id: String,
    pub label: String,
    /// The nodes whose paths it may call; any path when absent.
    pub nodes: Option<Vec<String>>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl App {
    /// Describes the key whose token is `token`. A token whose signature or issuer does not
    /// verify, or that names no key of this deployment, is refused with the same words.
    pub async fn describe_key(&self, token: &str) -> Result<KeySelf> {
        let super::tokens::Presented { claims, key, template, .. } = self.authenticate_key(token).await?;
        let now = self.now();
        let role = self.role_permissions(&key.project_id, template.as_ref()).await?;
        let in_force = template.as_ref().map(|t| key.limits_in_force(&t.limits_at(now), now)).unwrap_or(InForce::NONE);
        let quota =
            self.quota_statuses_in_force(std::slice::from_ref(&key), vec![in_force.quota]).await?.pop().flatten();
        let rate_limit = in_force.rate_limit;
        let (mut state, mut detail, works_again_at) =
            state_of(&key, claims.generation, quota.as_ref(), template.is_some(), now);
        let narrowed = claims.narrowed.as_ref().map(|n| NarrowedSelf {
            token_id: claims.jti.clone(),
            label: n.lbl.clone(),
            nodes: n.nodes.clone(),
            expires_at: claims.exp.and_then(|t| DateTime::from_timestamp(t, 0)),
        });
        if let Some(n) = &narrowed
            && matches!(state, KeyState::Active | KeyState::InGrace)
        {
            if n.expires_at.is_some_and(|exp| now >= exp) {
                (state, detail) = (KeyState::Expired, "this narrowed token has expired; mint a new one".into());
            } else if !key.admits_token(&claims.jti, now) {
                (state, detail) =
                    (KeyState::Revoked, "this narrowed token was revoked by its key's holder; mint a new one".into());
            }
        }
        Ok(KeySelf {
            works: matches!(state, KeyState::Active | KeyState::InGrace),
            key_id: key.id,
            project_id: key.project_id,
            template_id: key.template_id,
            template_name: key.template_name,
            user_id: key.user_id,
            data_layer_id: key.data_layer_id,
            state,
            detail,
            works_again_at,
            permissions: claims.narrowed.as_ref().map_or(role, |n| n.permissions(role)),
            quota,
            rate_limit,
            issued_at: key.issued_at,
            expires_at: key.expires_at,
            generation: key.generation,
            token_generation: claims.generation,
            previous_until: key.previous_until,
            narrowed: narrowed.is_some(),
            token: narrowed,
        })
    }
}

/// The state of a key's token of generation `generation`, in the order the authorizer checks.
fn state_of(
    key: &IssuedKey,
    generation: u32,
    quota: Option<&QuotaStatus>,
    template_exists: bool,
    now: DateTime<Utc>,
) -> (KeyState, String, Option<DateTime<Utc>>) {
    let at = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    if key.status == KeyStatus::Revoked {
        let when = key.revoked_at.map(|t| format!(" at {}", at(t))).unwrap_or_default();
        return (KeyState::Revoked, format!("the key was revoked{when}; ask the project's owner for a new one"), None);
    }
    if let Some(exp) = key.expires_at.filter(|exp| now >= *exp) {
        return (KeyState::Expired, format!("the key expired at {}; request a new one", at(exp)), None);
    }
    if !template_exists {
        return (KeyState::Revoked, "the key's template was deleted; ask the project's owner".into(), None);
    }
    let mut state = (KeyState::Active, "the key works".to_owned(), None);
    if generation < key.generation {
        let in_grace = generation + 1 == key.generation && key.previous_until.is_some_and(|until| now < until);
        match key.previous_until.filter(|_| in_grace) {
            Some(until) => {
                state = (
                    KeyState::InGrace,
                    format!(
                        "the key was rerolled; this token works until {} (the holder's new token is on My keys)",
                        at(until)
                    ),
                    None,
                )
            }
            None => {
                return (
                    KeyState::Rerolled,
                    "the key was rerolled and this token's grace is over; use the new token from My keys".into(),
                    None,
                );
            }
        }
    }
    if let Some(q) = quota.filter(|q| q.used >= q.requests + q.top_up) {
        return (
            KeyState::QuotaSpent,
            format!(
                "the key's quota of {} calls per {} is spent; it works again at {}",
                q.requests + q.top_up,
                match q.per {
                    crate::template::QuotaPeriod::Day => "day",
                    crate::template::QuotaPeriod::Month => "month",
                },
                at(q.resets_at)
            ),
            Some(q.resets_at),
        );
    }
    if let Some(exp) = key.expires_at {
        state.1 = format!("{}; the key expires at {}", state.1, at(exp));
    }
    state
}
