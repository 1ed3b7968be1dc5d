//! A key's new token (reroll) and its own limits: what answers a leaked or overused key without
//! revoking it. The reroll updates, in its one transaction, every secret the old token was
//! imported into.

use chrono::Duration;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{App, Notification, Tx};
use crate::audit::AuditAction;
use crate::error::{Error, Result};
use crate::identity::Caller;
use crate::ids::{KeyId, ProjectId};
use crate::key::{DEFAULT_REROLL_GRACE, IssuedKey, LimitsPatch};
use crate::mail;
use crate::project::Project;
use crate::secret::{ImportRef, Secret, SecretValue};
use crate::store::{Cond, MAX_TRANSACTION_ITEMS, layout};

/// The body of `POST .../keys/{key}/reroll`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RerollInput {
    /// How long the old token keeps working, 0 to 604800 seconds (7 days); 24 hours when absent.
    pub grace_seconds: Option<i64>,
}

/// The answer to a reroll: the key, the secrets updated, and the new token for its holder only.
#[derive(Debug, Serialize)]
pub struct Reroll {
    pub key: IssuedKey,
    /// The secrets (project and name) that now hold the new token.
    pub secrets: Vec<ImportRef>,
    /// The new token: answered to the holder, never to a manager who rerolls.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<SecretValue>,
    pub notification: Notification,
}

/// The writes of a reroll, before they are committed.
pub(crate) struct RerollPlan {
    pub key: IssuedKey,
    pub secrets: Vec<ImportRef>,
}

impl App {
    /// Gives a key a new token (its holder or its managers); the old one works for the grace
    /// period asked. Every secret holding the old token gets the new one in the same
    /// transaction, and the holder and the owner are mailed.
    pub async fn reroll(&self, caller: &Caller, id: &ProjectId, kid: &KeyId, input: RerollInput) -> Result<Reroll> {
        let (access, key) = self.key_for(caller, id, kid).await?;
        let grace = match input.grace_seconds {
            Some(s) if !(0..=crate::key::MAX_REROLL_GRACE.num_seconds()).contains(&s) => {
                return Err(Error::invalid("grace_seconds", "must be from 0 to 604800 (7 days)"));
            }
            Some(s) => Duration::seconds(s),
            None => DEFAULT_REROLL_GRACE,
        };
        let now = self.now();
        let mut tx = self.tx();
        let plan = self.plan_reroll(&mut tx, &key, grace).await?;
        tx.audit(
            id,
            caller,
            AuditAction::KeyRerolled,
            kid,
            json!({
                "user_id": key.user_id,
                "grace_seconds": grace.num_seconds(),
                "previous_until": plan.key.previous_until,
                "generation": plan.key.generation,
                "secrets": plan.secrets.len(),
            }),
            now,
        );
        let by = caller.name.clone().unwrap_or_else(|| caller.email.clone());
        self.mail_holder_and_owner(&mut tx, &access.project, &plan.key, |to| {
            mail::key_rerolled(&self.settings.console_url, &access.project, &plan.key, &by, to, plan.secrets.len())
        });
        let notification = self
            .commit(tx, |_| Error::conflict("the key or a secret it was imported into changed meanwhile; try again"))
            .await?;
        self.key_events.key_retired(id, kid);
        tracing::info!(key_id = %kid, project_id = %id, grace_s = grace.num_seconds(), secrets = plan.secrets.len(), "key rerolled");
        let token = (plan.key.user_id == caller.id).then(|| self.token_of(&plan.key)).transpose()?;
        Ok(Reroll { key: plan.key, secrets: plan.secrets, token, notification })
    }

    /// Adds to `tx` the rerolled key and every imported secret that holds its current token
    /// (a secret changed by hand since is left alone; a record of a secret gone is removed).
    pub(crate) async fn plan_reroll(&self, tx: &mut Tx, key: &IssuedKey, grace: Duration) -> Result<RerollPlan> {
        let now = self.now();
        let rerolled = key.reroll(grace, now)?;
        let (old, new) = (self.token_of(key)?, self.token_of(&rerolled)?);
        let id = &key.project_id;
        tx.put_key(&rerolled, Cond::Version(key.version));
        let imports: Vec<ImportRef> = self.load_all(layout::project_pk(id), &layout::imports_of(&key.id)).await?;
        let mut secrets = Vec::new();
        for import in imports {
            let at = layout::secret(&import.project_id, &import.name);
            match self.load::<Secret>(&at).await? {
                Some((secret, version))
                    if secret.origin.as_ref().is_some_and(|o| o.key_id == key.id) && secret.value == old =>
                {
                    let updated = Secret { value: new.clone(), updated_at: now, version: version + 1, ..secret };
                    tx.put(at, version + 1, &updated, Cond::Version(version));
                    secrets.push(import);
                }
                Some(_) => {}
                None => {
                    tx.delete(layout::import(id, &key.id, &import.project_id, &import.name), Cond::Always);
                }
            }
        }
        // Room for the key, the secrets, an audit event per client project and two mails.
        if tx.len() + secrets.len() + 3 > MAX_TRANSACTION_ITEMS {
            return Err(Error::conflict(format!(
                "the key was imported into {} secrets, more than one reroll can update together; delete the imports no longer used and try again",
                secrets.len()
            )));
        }
        let mut clients: Vec<&ProjectId> = secrets.iter().map(|s| &s.project_id).collect();
        clients.sort();
        clients.dedup();
        let caller = rerolled_by(key);
        for client in clients {
            let names: Vec<_> =
                secrets.iter().filter(|s| &s.project_id == client).map(|s| s.name.to_string()).collect();
            tx.audit(
                client,
                &caller,
                AuditAction::SecretChanged,
                names.join(","),
                json!({"rerolled_key": key.id}),
                now,
            );
        }
        Ok(RerollPlan { key: rerolled, secrets })
    }

    /// Queues `mail` to the key's holder, and to the project's owner when another person.
    pub(crate) fn mail_holder_and_owner(
        &self,
        tx: &mut Tx,
        project: &Project,
        key: &IssuedKey,
        mail: impl Fn(&str) -> mail::Mail,
    ) {
        let now = self.now();
        tx.mail(mail(&key.user_email), now);
        if !project.owner_email.eq_ignore_ascii_case(&key.user_email) {
            tx.mail(mail(&project.owner_email), now);
        }
    }

    /// Sets one key's own quota and rate limit over its template's, or grants extra calls for
    /// the current quota period (its managers). Applies from the next call on (within a
    /// second on other instances); exactness is the store's, as for the template's quota.
    pub async fn set_key_limits(
        &self,
        caller: &Caller,
        id: &ProjectId,
        kid: &KeyId,
        patch: LimitsPatch,
    ) -> Result<IssuedKey> {
        self.access(caller, id).await?.require(crate::permission::Permission::ProjectManage)?;
        let mut loaded = self.load::<IssuedKey>(&layout::key(id, kid)).await?.ok_or_else(|| Error::not_found("key"))?;
        if let Some(pending) = loaded.0.limits.before.as_ref().filter(|b| b.until > self.now()) {
            // Its last limits change is not in force yet: this one follows it.
            self.in_force_at(pending.until).await;
            loaded = self.load::<IssuedKey>(&layout::key(id, kid)).await?.ok_or_else(|| Error::not_found("key"))?;
        }
        let (key, version) = loaded;
        if !key.is_usable(self.now()) {
            return Err(Error::conflict("the key is revoked or expired; its limits no longer matter"));
        }
        let template = self.template(id, &key.template_id).await?;
        let now = self.now();
        // In force everywhere at once, a moment from now ([`crate::limits`]): decided against
        // the template's limits as they will be then.
        let at = now + crate::limits::SETTLE;
        let current = key.limits.at(now);
        let next = patch.apply_to(&current, &template.limits_at(at), at)?;
        let changed = IssuedKey { limits: current.scheduled(next, at), version: version + 1, ..key };
        let mut tx = self.tx();
        tx.put_key(&changed, Cond::Version(version)).audit(
            id,
            caller,
            AuditAction::KeyLimitsChanged,
            kid,
            json!({"limits": changed.limits.at(at)}),
            now,
        );
        self.commit(tx, |_| Error::conflict("the key changed meanwhile; try again")).await?;
        self.key_events.key_retired(id, kid);
        tracing::info!(key_id = %kid, project_id = %id, "key limits changed");
        self.in_force_at(at).await;
        Ok(changed)
    }
}

/// Who an imported secret's audit event names: the key's holder, whose key it is.
fn rerolled_by(key: &IssuedKey) -> Caller {
    Caller { id: key.user_id.clone(), email: key.user_email.clone(), name: None }
}
