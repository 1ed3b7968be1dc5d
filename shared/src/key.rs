//! Issued keys, the personal data layers created with them, and a user's tile on a template.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, FieldError, Result};
use crate::ids::{DataLayerId, KeyId, ProjectId, RequestId, TemplateId, UserId};
use crate::limits::{InForce, TemplateLimits};
use crate::template::{MAX_QUOTA, Quota, RateLimit};

/// The longest a rerolled key's old token may keep working.
pub const MAX_REROLL_GRACE: Duration = Duration::days(7);
/// The old token's grace period when the caller names none.
pub const DEFAULT_REROLL_GRACE: Duration = Duration::hours(24);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    Active,
    Revoked,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IssuedKey {
    pub id: KeyId,
    pub project_id: ProjectId,
    pub template_id: TemplateId,
    pub template_name: String,
    pub user_id: UserId,
    pub user_email: String,
    pub data_layer_id: DataLayerId,
    /// The signing key (JWK thumbprint) that signs this key's token.
    pub kid: String,
    pub issued_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub status: KeyStatus,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_by: Option<UserId>,
    /// The token's generation: 0 when issued, one more at each reroll. It is a claim of the
    /// token (`gen`, absent for 0), so the token is re-created from the record, never stored.
    #[serde(default)]
    pub generation: u32,
    /// When the key was last rerolled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerolled_at: Option<DateTime<Utc>>,
    /// Until when the token of the generation before this one is still let through (the
    /// reroll's grace period); after it that token is refused as `rerolled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_until: Option<DateTime<Utc>>,
    /// The owner's limits for this key alone, over its template's.
    #[serde(default, skip_serializing_if = "KeyLimits::is_default")]
    pub limits: KeyLimits,
    /// The last secret-scanning report of this key's token (so that a report twice acts once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leak: Option<LeakReport>,
    /// The narrowed tokens minted from this key and not revoked ([`crate::narrowed`]), some
    /// perhaps expired since (they are dropped at the next mint or revocation).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tokens: Vec<LiveToken>,
    pub version: u64,
}

use crate::narrowed::{LiveToken, MAX_LIVE};

pub use crate::limits::{KeyLimits, TopUp};

/// A secret scanner's report of the key's token, found in public.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeakReport {
    /// The generation of the token reported.
    pub generation: u32,
    pub reported_at: DateTime<Utc>,
    /// Where it was found (the scanner's `url`).
    pub url: String,
    pub scanner: String,
}

/// The body of `PATCH .../keys/{key}`: what is present changes; `quota: null` and
/// `rate_limit: null` give the key its template's again. `top_up` adds calls to the current
/// quota period.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsPatch {
    #[serde(default, deserialize_with = "crate::template::present")]
    pub quota: Option<Option<Quota>>,
    #[serde(default, deserialize_with = "crate::template::present")]
    pub rate_limit: Option<Option<RateLimit>>,
    pub top_up: Option<i64>,
}

impl LimitsPatch {
    /// The key's limits after this patch takes effect at `at`: `current` are the key's limits
    /// and `template` its template's, both as they are at `at` ([`crate::limits`]).
    pub fn apply_to(self, current: &KeyLimits, template: &TemplateLimits, at: DateTime<Utc>) -> Result<KeyLimits> {
        let mut errors = Vec::new();
        if self.quota.is_none() && self.rate_limit.is_none() && self.top_up.is_none() {
            errors.push(FieldError::new("quota", "name quota, rate_limit or top_up to change"));
        }
        crate::template::check_limits(&mut errors, self.quota.flatten(), self.rate_limit.flatten());
        let mut next = match self.quota {
            Some(quota) => current.with_quota(quota, template, at),
            None => current.at(at),
        };
        if let Some(rate) = self.rate_limit {
            next.rate_limit = rate;
        }
        if let Some(extra) = self.top_up {
            // The period a top-up is for: that of the quota the key has after this patch.
            let window = crate::limits::in_force(template, &next, at).quota.map(|q| q.window);
            match window {
                None => errors.push(FieldError::new("top_up", "this key has no quota to top up")),
                Some(_) if !(1..=MAX_QUOTA).contains(&extra) => {
                    errors.push(FieldError::new("top_up", format!("must be an integer from 1 to {MAX_QUOTA}")))
                }
                Some(window) => {
                    let before = next.extra_in(&window);
                    next.top_up = Some(TopUp { period: window.label, requests: before + extra, granted_at: at });
                }
            }
        }
        crate::project::finish(errors)?;
        Ok(next)
    }
}

impl IssuedKey {
    /// Whether the key lets calls through at `now`.
    pub fn is_usable(&self, now: DateTime<Utc>) -> bool {
        self.status == KeyStatus::Active && self.expires_at.is_none_or(|exp| now < exp)
    }

    /// The key after revocation; revoking twice is a conflict, not a silent success.
    pub fn revoke(&self, by: &UserId, now: DateTime<Utc>) -> Result<IssuedKey> {
        if self.status == KeyStatus::Revoked {
            return Err(Error::conflict("the key is already revoked"));
        }
        Ok(IssuedKey {
            status: KeyStatus::Revoked,
            revoked_at: Some(now),
            revoked_by: Some(by.clone()),
            version: self.version + 1,
            ..self.clone()
        })
    }

    /// The key with a new token (the next generation): the current token keeps working for
    /// `grace`, never past the key's end; a token older than that stops at once. Nothing else
    /// changes: template, fields, data layer, quota counter, usage, `exp`.
    pub fn reroll(&self, grace: Duration, now: DateTime<Utc>) -> Result<IssuedKey> {
        if !self.is_usable(now) {
            return Err(Error::conflict("the key is revoked or expired; request a new one instead"));
        }
        if grace < Duration::zero() || grace > MAX_REROLL_GRACE {
            return Err(Error::invalid("grace_seconds", "must be from 0 to 604800 (7 days)"));
        }
        let until = now + grace;
        let until = self.expires_at.map_or(until, |exp| until.min(exp));
        Ok(IssuedKey {
            generation: self.generation + 1,
            rerolled_at: Some(now),
            previous_until: (grace > Duration::zero()).then_some(until),
            version: self.version + 1,
            ..self.clone()
        })
    }

    /// Whether a token of generation `generation` may be used at `now`: the current one, or
    /// the one before during its grace period.
    pub fn admits_generation(&self, generation: u32, now: DateTime<Utc>) -> bool {
        generation == self.generation
            || (generation + 1 == self.generation && self.previous_until.is_some_and(|until| now < until))
    }

    /// Whether the narrowed token `id` is alive at `now`: minted from this key, not revoked,
    /// not expired. (Its key's own state is checked apart.)
    pub fn admits_token(&self, id: &str, now: DateTime<Utc>) -> bool {
        self.tokens.iter().any(|t| t.id.as_str() == id && now < t.expires_at)
    }

    /// The narrowed tokens alive at `now`: not expired, and of a generation the key still
    /// admits (a reroll's grace over, those of the generation before are dead).
    pub fn live_tokens(&self, now: DateTime<Utc>) -> impl Iterator<Item = &LiveToken> {
        self.tokens.iter().filter(move |t| now < t.expires_at && self.admits_generation(t.generation, now))
    }

    /// The key with one more narrowed token, and without those expired; refused when the key
    /// does not work or has [`MAX_LIVE`] alive already.
    pub fn with_token(&self, token: LiveToken, now: DateTime<Utc>) -> Result<IssuedKey> {
        if !self.is_usable(now) {
            return Err(Error::conflict("the key is revoked or expired: it cannot mint tokens"));
        }
        let mut tokens: Vec<LiveToken> = self.live_tokens(now).cloned().collect();
        if tokens.len() >= MAX_LIVE {
            return Err(Error::conflict(format!(
                "this key has {MAX_LIVE} live narrowed tokens, the most it may have: revoke one, or wait for one to expire"
            )));
        }
        tokens.push(token);
        Ok(IssuedKey { tokens, version: self.version + 1, ..self.clone() })
    }

    /// The key without narrowed token `id` (and without those expired).
    pub fn without_token(&self, id: &crate::ids::TokenId, now: DateTime<Utc>) -> Result<IssuedKey> {
        if !self.admits_token(id.as_str(), now) {
            return Err(Error::not_found("live narrowed token"));
        }
        let tokens = self.live_tokens(now).filter(|t| &t.id != id).cloned().collect();
        Ok(IssuedKey { tokens, version: self.version + 1, ..self.clone() })
    }

    /// The limits that decide this key's calls at `now`, over its template's limits at `now`.
    pub fn limits_in_force(&self, template: &TemplateLimits, now: DateTime<Utc>) -> InForce {
        crate::limits::in_force(template, &self.limits.at(now), now)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DataLayer {
    pub id: DataLayerId,
    pub project_id: ProjectId,
    pub owner: UserId,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TileState {
    Requestable,
    Pending,
    Active,
    Rejected,
    Revoked,
}

/// What a user sees on a template's tile, and the lock that allows one pending request or one
/// active key per user and template.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tile {
    pub state: TileState,
    pub request_id: Option<RequestId>,
    pub key_id: Option<KeyId>,
    /// Why the request was rejected, shown to the requester on the tile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Tile {
    pub const REQUESTABLE: Tile = Tile { state: TileState::Requestable, request_id: None, key_id: None, reason: None };

    /// Whether the user may ask for a key now.
    pub fn check_requestable(&self) -> Result<()> {
        match self.state {
            TileState::Pending => Err(Error::conflict("you already have a pending request for this template")),
            TileState::Active => Err(Error::conflict("you already hold an active key of this template")),
            TileState::Requestable | TileState::Rejected | TileState::Revoked => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn key(expires_at: Option<DateTime<Utc>>) -> IssuedKey {
        IssuedKey {
            id: KeyId::generate(),
            project_id: ProjectId::generate(),
            template_id: TemplateId::generate(),
            template_name: "t".into(),
            user_id: UserId::parse("u").unwrap(),
            user_email: "u@example.com".into(),
            data_layer_id: DataLayerId::generate(),
            kid: "k".into(),
            issued_at: Utc::now(),
            expires_at,
            status: KeyStatus::Active,
            revoked_at: None,
            revoked_by: None,
            generation: 0,
            rerolled_at: None,
            previous_until: None,
            limits: KeyLimits::default(),
            leak: None,
            tokens: Vec::new(),
            version: 1,
        }
    }

    #[test]
    fn a_key_holds_at_most_a_hundred_live_narrowed_tokens() {
        let now = Utc::now();
        let live = |exp| LiveToken { id: crate::ids::TokenId::generate(), expires_at: exp, generation: 0 };
        let mut k = key(None);
        let first = live(now + Duration::hours(1));
        k = k.with_token(first.clone(), now).unwrap();
        assert!(k.admits_token(first.id.as_str(), now));
        assert!(!k.admits_token(first.id.as_str(), now + Duration::hours(1)), "expired");
        for _ in 1..MAX_LIVE {
            k = k.with_token(live(now + Duration::hours(1)), now).unwrap();
        }
        assert_eq!(k.live_tokens(now).count(), MAX_LIVE);
        assert_eq!(k.with_token(live(now + Duration::hours(1)), now).unwrap_err().status(), 409, "the 101st");
        // One revoked, or all expired: room again, and the expired are dropped.
        let fewer = k.without_token(&first.id, now).unwrap();
        assert!(!fewer.admits_token(first.id.as_str(), now));
        assert!(fewer.with_token(live(now + Duration::hours(1)), now).is_ok());
        let later = now + Duration::hours(2);
        assert_eq!(k.with_token(live(later + Duration::hours(1)), later).unwrap().tokens.len(), 1);
        assert_eq!(k.without_token(&first.id, later).unwrap_err().status(), 404);
        let revoked = k.revoke(&UserId::parse("o").unwrap(), now).unwrap();
        assert_eq!(revoked.with_token(live(now + Duration::hours(1)), now).unwrap_err().status(), 409);
    }

    #[test]
    fn a_reroll_keeps_the_old_token_for_its_grace_period_and_never_past_the_end() {
        let now = Utc::now();
        let k = key(Some(now + Duration::days(2)));
        let rerolled = k.reroll(Duration::hours(24), now).unwrap();
        assert_eq!((rerolled.generation, rerolled.version, rerolled.expires_at), (1, 2, k.expires_at));
        assert!(rerolled.admits_generation(1, now) && rerolled.admits_generation(0, now));
        assert!(!rerolled.admits_generation(0, now + Duration::hours(24)));
        let again = rerolled.reroll(Duration::zero(), now).unwrap();
        assert!(again.admits_generation(2, now));
        assert!(!again.admits_generation(1, now) && !again.admits_generation(0, now), "no grace: refused at once");
        let long = k.reroll(MAX_REROLL_GRACE, now).unwrap();
        assert_eq!(long.previous_until, k.expires_at, "the grace ends with the key");
        assert_eq!(k.reroll(MAX_REROLL_GRACE + Duration::seconds(1), now).unwrap_err().status(), 422);
        assert_eq!(k.reroll(Duration::seconds(-1), now).unwrap_err().status(), 422);
        let revoked = k.revoke(&UserId::parse("o").unwrap(), now).unwrap();
        assert_eq!(revoked.reroll(Duration::zero(), now).unwrap_err().status(), 409);
    }

    #[test]
    fn limits_patches_override_the_template_and_top_ups_add_to_the_period() {
        use crate::template::QuotaPeriod;
        let now = Utc::now();
        let window = QuotaPeriod::Day.window(now);
        let none = TemplateLimits::default();
        let patch = |json: &str| serde_json::from_str::<LimitsPatch>(json).unwrap();
        let limits =
            patch(r#"{"quota": {"requests": 50, "per": "day"}}"#).apply_to(&KeyLimits::default(), &none, now).unwrap();
        assert_eq!(limits.quota, Some(Quota { requests: 50, per: QuotaPeriod::Day }));
        assert_eq!(limits.counted_since, Some(now), "a quota where there was none counts from now on");
        let topped = patch(r#"{"top_up": 5}"#).apply_to(&limits, &none, now).unwrap();
        let topped = patch(r#"{"top_up": 7}"#).apply_to(&topped, &none, now).unwrap();
        assert_eq!(topped.extra_in(&window), 12);
        assert_eq!(
            topped.extra_in(&QuotaPeriod::Day.window(now + Duration::days(1))),
            0,
            "a top-up ends with its period"
        );
        let back = patch(r#"{"quota": null}"#).apply_to(&topped, &none, now).unwrap();
        assert_eq!((back.quota, back.top_up.clone(), back.own_until), (None, None, Some(now)));
        assert!(back.is_empty());
        let e = patch(r#"{"top_up": 5}"#).apply_to(&KeyLimits::default(), &none, now).unwrap_err();
        assert!(e.to_string().contains("no quota"), "{e}");
        let e = patch(r#"{"quota": {"requests": 0, "per": "day"}, "top_up": 0}"#)
            .apply_to(&limits, &none, now)
            .unwrap_err();
        assert!(format!("{e:?}").contains("quota.requests") && format!("{e:?}").contains("top_up"), "{e:?}");
        assert!(patch("{}").apply_to(&limits, &none, now).is_err());
    }

    #[test]
    fn a_key_is_usable_until_it_expires_or_is_revoked() {
        let now = Utc::now();
        assert!(key(None).is_usable(now));
        let k = key(Some(now + Duration::days(1)));
        assert!(k.is_usable(now));
        assert!(!k.is_usable(now + Duration::days(1)));
        let revoked = k.revoke(&UserId::parse("owner").unwrap(), now).unwrap();
        assert!(!revoked.is_usable(now));
        assert_eq!(revoked.version, 2);
        assert_eq!(revoked.revoke(&UserId::parse("owner").unwrap(), now).unwrap_err().status(), 409);
    }

    #[test]
    fn a_user_may_request_again_after_rejection_or_revocation_only() {
        let tile = |state| Tile { state, request_id: None, key_id: None, reason: None };
        assert!(tile(TileState::Requestable).check_requestable().is_ok());
        assert!(tile(TileState::Rejected).check_requestable().is_ok());
        assert!(tile(TileState::Revoked).check_requestable().is_ok());
        assert_eq!(tile(TileState::Pending).check_requestable().unwrap_err().status(), 409);
        assert_eq!(tile(TileState::Active).check_requestable().unwrap_err().status(), 409);
    }
}
