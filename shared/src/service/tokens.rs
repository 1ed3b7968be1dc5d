//! Narrowed tokens ([`crate::narrowed`]): minted by a key's holder, with the key itself or
//! signed in; listed by the holder and the key's managers; revoked one by one by the holder.

use std::collections::HashSet;

use serde::Serialize;
use serde_json::json;

use super::App;
use crate::audit::AuditAction;
use crate::error::{Error, Result};
use crate::identity::Caller;
use crate::ids::{KeyId, NodeId, ProjectId, TemplateId, TokenId};
use crate::key::IssuedKey;
use crate::narrowed::{MintFacts, MintInput, MintedWith, NarrowedToken};
use crate::permission::Permissions;
use crate::project::Role;
use crate::secret::SecretValue;
use crate::signing::{KeyClaims, audience};
use crate::store::{Cond, layout};
use crate::template::KeyTemplate;

/// A key as its own token presents it ([`App::authenticate_key`]).
pub(crate) struct Presented {
    pub claims: KeyClaims,
    pub key: IssuedKey,
    pub version: u64,
    pub template: Option<KeyTemplate>,
}

/// The answer to a mint: the token, shown this once, and its record.
#[derive(Debug, Serialize)]
pub struct Minted {
    pub token: SecretValue,
    #[serde(flatten)]
    pub narrowed: NarrowedToken,
}

impl App {
    /// The key whose token is `token`, with its template: a token whose signature or issuer
    /// does not verify, or that names no key of this deployment, is refused with the same
    /// words, whatever was wrong with it.
    pub(crate) async fn authenticate_key(&self, token: &str) -> Result<Presented> {
        let unknown = || Error::Unauthenticated("the bearer token is not a key issued by this keygate".into());
        let claims = self.keys.verify_signature(token).map_err(|_| unknown())?;
        let project = crate::signing::audience_project(&claims.aud)
            .filter(|_| claims.iss == self.keys.issuer())
            .ok_or_else(unknown)?;
        let key_id = KeyId::parse(claims.key_id()).ok_or_else(unknown)?;
        let template_id = TemplateId::parse(&claims.tpl).ok_or_else(unknown)?;
        // The token names the template: the key and its template in one read, as the
        // authorizer reads them.
        let items =
            self.store.get_many(&[layout::key(&project, &key_id), layout::template(&project, &template_id)]).await?;
        let [Some(key_item), template_item] = items.as_slice() else { return Err(unknown()) };
        let key: IssuedKey = super::decode(key_item)?;
        if key.user_id.as_str() != claims.sub || key.template_id != template_id {
            return Err(unknown());
        }
        let template = template_item.as_ref().map(super::decode).transpose()?;
        Ok(Presented { claims, key, version: key_item.version, template })
    }

    /// The permissions of `template`'s role now (none when the template or role is gone).
    pub(crate) async fn role_permissions(
        &self,
        project: &ProjectId,
        template: Option<&KeyTemplate>,
    ) -> Result<Permissions> {
        Ok(match template {
            Some(t) => self.load::<Role>(&layout::role(project, &t.role)).await?.map(|(r, _)| r.permissions),
            None => None,
        }
        .unwrap_or(Permissions::NONE))
    }

    /// Mints a narrowed token with the key itself (`POST /v1/key/tokens`). Only the key's
    /// current token may: not a narrowed one, nor a token a reroll replaced (its grace is for
    /// the calls in flight, not for new tokens that would outlive it).
    pub async fn mint_with_key(&self, token: &str, input: MintInput) -> Result<Minted> {
        let Presented { claims, key, version, template } = self.authenticate_key(token).await?;
        if claims.narrowed.is_some() {
            return Err(Error::Forbidden("a narrowed token cannot mint tokens; mint with its key".into()));
        }
        if claims.generation != key.generation {
            return Err(Error::Forbidden(
                "this token was replaced by a reroll: mint with the key's new token, from My keys".into(),
            ));
        }
        let template = template.ok_or_else(|| Error::conflict("the key's template was deleted"))?;
        let holder = Caller { id: key.user_id.clone(), email: key.user_email.clone(), name: None };
        self.mint(&holder, key, version, &template, input, MintedWith::Key).await
    }

    /// Mints a narrowed token from the caller's own key (`POST /v1/me/keys/{key}/tokens`).
    pub async fn mint_for_holder(&self, caller: &Caller, kid: &KeyId, input: MintInput) -> Result<Minted> {
        let held = self.my_key(caller, kid).await?;
        let (key, version) = self
            .load::<IssuedKey>(&layout::key(&held.project_id, kid))
            .await?
            .ok_or_else(|| Error::not_found("key"))?;
        let template = self.template(&key.project_id, &key.template_id).await?;
        self.mint(caller, key, version, &template, input, MintedWith::User).await
    }

    async fn mint(
        &self,
        caller: &Caller,
        key: IssuedKey,
        version: u64,
        template: &KeyTemplate,
        input: MintInput,
        minted_with: MintedWith,
    ) -> Result<Minted> {
        let project = key.project_id.clone();
        let role = self.role_permissions(&project, Some(template)).await?;
        let nodes: HashSet<NodeId> = match &input.nodes {
            Some(_) => self
                .load_all::<crate::project::Node>(layout::project_pk(&project), layout::NODES)
                .await?
                .into_iter()
                .map(|n| n.id)
                .collect(),
            None => HashSet::new(),
        };
        let now = self.now();
        let facts = MintFacts { key: &key, policy: template.narrowed_tokens, role, nodes: &nodes, minted_with, now };
        let record = input.check(&facts)?;
        let with_token = IssuedKey { version, ..key.clone() }.with_token(record.live(), now)?;
        let mut tx = self.tx();
        tx.put_key(&with_token, Cond::Version(version))
            .put(layout::narrowed_token(&project, &key.id, &record.id), 1, &record, Cond::NotExists)
            .audit(
                &project,
                caller,
                AuditAction::KeyTokenMinted,
                &key.id,
                json!({
                    "token_id": record.id,
                    "label": record.label,
                    "expires_at": record.expires_at,
                    "permissions": record.permissions,
                    "nodes": record.nodes,
                    "minted_with": record.minted_with,
                }),
                now,
            );
        self.commit(tx, |_| Error::conflict("the key changed meanwhile; try again")).await?;
        self.key_events.key_retired(&project, &key.id);
        tracing::info!(key_id = %key.id, project_id = %project, token_id = %record.id, label = %record.label, "narrowed token minted");
        let claims = KeyClaims {
            iss: self.keys.issuer().to_owned(),
            sub: key.user_id.to_string(),
            aud: audience(&project),
            jti: record.id.to_string(),
            iat: now.timestamp(),
            exp: Some(record.expires_at.timestamp()),
            nbf: None,
            tpl: key.template_id.to_string(),
            generation: key.generation,
            narrowed: Some(record.narrowing()),
        };
        let token = self.keys.sign(&claims).map_err(Error::internal)?;
        Ok(Minted { token, narrowed: record })
    }

    /// The live narrowed tokens of one of the caller's keys.
    pub async fn my_key_tokens(&self, caller: &Caller, kid: &KeyId) -> Result<Vec<NarrowedToken>> {
        let key = self.my_key(caller, kid).await?;
        self.live_tokens(&key).await
    }

    /// The live narrowed tokens of a key, for its holder and its managers.
    pub async fn key_tokens(&self, caller: &Caller, id: &ProjectId, kid: &KeyId) -> Result<Vec<NarrowedToken>> {
        let (_, key) = self.key_for(caller, id, kid).await?;
        self.live_tokens(&key).await
    }

    async fn live_tokens(&self, key: &IssuedKey) -> Result<Vec<NarrowedToken>> {
        let now = self.now();
        let records: Vec<NarrowedToken> =
            self.load_all(layout::project_pk(&key.project_id), &layout::tokens_of(&key.id)).await?;
        Ok(records.into_iter().filter(|t| key.live_tokens(now).any(|live| live.id == t.id)).collect())
    }

    /// Revokes one narrowed token of the caller's key: refused from the next call on (within a
    /// second on every instance), its key and the other tokens untouched.
    pub async fn revoke_my_key_token(&self, caller: &Caller, kid: &KeyId, tid: &TokenId) -> Result<NarrowedToken> {
        let held = self.my_key(caller, kid).await?;
        self.revoke_token(caller, &held.project_id, kid, tid).await
    }

    /// Revokes one narrowed token of a key of the project, for its managers (and its holder),
    /// from the key's page: as [`App::revoke_my_key_token`].
    pub async fn revoke_key_token(
        &self,
        caller: &Caller,
        id: &ProjectId,
        kid: &KeyId,
        tid: &TokenId,
    ) -> Result<NarrowedToken> {
        self.key_for(caller, id, kid).await?;
        self.revoke_token(caller, id, kid, tid).await
    }

    async fn revoke_token(
        &self,
        caller: &Caller,
        project: &ProjectId,
        kid: &KeyId,
        tid: &TokenId,
    ) -> Result<NarrowedToken> {
        let (key, version) =
            self.load::<IssuedKey>(&layout::key(project, kid)).await?.ok_or_else(|| Error::not_found("key"))?;
        let now = self.now();
        let at = layout::narrowed_token(project, kid, tid);
        let (record, _) = self.load::<NarrowedToken>(&at).await?.ok_or_else(|| Error::not_found("narrowed token"))?;
        let without = IssuedKey { version, ..key }.without_token(tid, now)?;
        let mut tx = self.tx();
        tx.put_key(&without, Cond::Version(version)).delete(at, Cond::Exists).audit(
            project,
            caller,
            AuditAction::KeyTokenRevoked,
            kid,
            json!({"token_id": tid, "label": record.label}),
            now,
        );
        self.commit(tx, |_| Error::conflict("the key changed meanwhile; try again")).await?;
        self.key_events.key_retired(project, kid);
        tracing::info!(key_id = %kid, project_id = %project, token_id = %tid, "narrowed token revoked");
        Ok(record)
    }
}
