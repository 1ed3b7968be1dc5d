//! Issued keys, the personal data layers created with them, and a user's tile on a template.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ids::{DataLayerId, KeyId, ProjectId, RequestId, TemplateId, UserId};

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
    pub version: u64,
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
            version: 1,
        }
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
