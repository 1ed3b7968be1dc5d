//! Secrets of a client project, and importing a key into them.

use std::collections::HashSet;

use serde::Serialize;
use serde_json::json;

use super::{App, ListPage, PageRequest};
use crate::audit::AuditAction;
use crate::error::{Error, Result};
use crate::identity::Caller;
use crate::ids::{KeyId, NodeId, ProjectId, SecretName};
use crate::permission::Permission;
use crate::project::Node;
use crate::secret::{ImportInput, ImportRef, Secret, SecretInput, SecretOrigin, SecretView, plan_import};
use crate::store::{Cond, Query, layout};

#[derive(Debug, Serialize)]
pub struct ImportAnswer {
    pub key_id: KeyId,
    pub secrets: Vec<SecretView>,
}

impl App {
    async fn check_nodes(&self, id: &ProjectId, nodes: &[NodeId]) -> Result<()> {
        if nodes.is_empty() {
            return Ok(());
        }
        let known: Vec<Node> = self.load_all(layout::project_pk(id), layout::NODES).await?;
        let known: HashSet<&NodeId> = known.iter().map(|n| &n.id).collect();
        let missing: Vec<&str> = nodes.iter().filter(|n| !known.contains(n)).map(|n| n.as_str()).collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(Error::invalid("nodes", format!("the project has no node(s) {}", missing.join(", "))))
        }
    }

    /// Imports the caller's key into project `client`: `<prefix>_token` and one secret per
    /// information field, granted to `nodes`. Existing names fail the whole import (409, all
    /// of them listed) unless `overwrite` is set.
    pub async fn import_key(&self, caller: &Caller, client: &ProjectId, input: ImportInput) -> Result<ImportAnswer> {
        self.access(caller, client).await?.require(Permission::ProjectManage)?;
        let key = self.my_key(caller, &input.key_id).await?;
        if !key.is_usable(self.now()) {
            return Err(Error::conflict("the key is revoked or expired"));
        }
        self.check_nodes(client, &input.nodes).await?;
        let template = self.template(&key.project_id, &key.template_id).await?;
        let plan = plan_import(&input.prefix, self.token_of(&key)?, &template.fields)?;
        let mut existing = Vec::new();
        for s in &plan {
            existing.push(self.load::<Secret>(&layout::secret(client, &s.name)).await?);
        }
        let taken: Vec<String> =
            plan.iter().zip(&existing).filter(|(_, e)| e.is_some()).map(|(s, _)| s.name.to_string()).collect();
        if !taken.is_empty() && !input.overwrite {
            return Err(Error::Conflict {
                detail: format!(
                    "the project already has secrets named {}; choose another prefix or set overwrite",
                    taken.join(", ")
                ),
                names: taken,
            });
        }
        let now = self.now();
        let mut tx = self.tx();
        let mut views = Vec::new();
        let mut names = Vec::new();
        // The token's secret comes first in the plan; the key remembers where it went.
        let token_secret = ImportRef { project_id: client.clone(), name: plan[0].name.clone() };
        tx.put(layout::import(&key.project_id, &key.id, client, &token_secret.name), 1, &token_secret, Cond::Always);
        for (planned, current) in plan.into_iter().zip(existing) {
            let (created_at, version, cond) = match current {
                Some((s, v)) => (s.created_at, v + 1, Cond::Version(v)),
                None => (now, 1, Cond::NotExists),
            };
            let secret = Secret {
                name: planned.name,
                description: planned.description,
                value: planned.value,
                nodes: input.nodes.clone(),
                origin: Some(SecretOrigin { key_id: key.id.clone() }),
                created_at,
                updated_at: now,
                version,
            };
            tx.put(layout::secret(client, &secret.name), version, &secret, cond);
            names.push(secret.name.to_string());
            views.push(secret.view(false));
        }
        tx.audit(
            client,
            caller,
            AuditAction::KeyImported,
            &key.id,
            json!({"prefix": input.prefix, "secrets": names}),
            now,
        );
        let conflict_names = names.clone();
        self.commit(tx, move |i| Error::Conflict {
            detail: "a secret of this import was created or changed meanwhile; try again".into(),
            // The import's record is the transaction's first write, the secrets follow.
            names: i.checked_sub(1).and_then(|i| conflict_names.get(i)).cloned().into_iter().collect(),
        })
        .await?;
        tracing::info!(key_id = %key.id, client = %client, secrets = names.len(), "key imported");
        Ok(ImportAnswer { key_id: key.id, secrets: views })
    }

    pub async fn list_secrets(
        &self,
        caller: &Caller,
        id: &ProjectId,
        reveal: bool,
        page: &PageRequest,
    ) -> Result<ListPage<SecretView>> {
        self.access(caller, id).await?.require(Permission::ProjectManage)?;
        let list: ListPage<Secret> = self.page(Query::prefix(layout::project_pk(id), layout::SECRETS), page).await?;
        Ok(ListPage { items: list.items.into_iter().map(|s| s.view(reveal)).collect(), next_cursor: list.next_cursor })
    }

    pub async fn put_secret(
        &self,
        caller: &Caller,
        id: &ProjectId,
        name: SecretName,
        input: SecretInput,
    ) -> Result<SecretView> {
        self.access(caller, id).await?.require(Permission::ProjectManage)?;
        input.validate()?;
        self.check_nodes(id, &input.nodes).await?;
        let key = layout::secret(id, &name);
        let current = self.load::<Secret>(&key).await?;
        let now = self.now();
        let (created_at, origin, version, cond) = match current {
            Some((s, v)) => (s.created_at, s.origin, v + 1, Cond::Version(v)),
            None => (now, None, 1, Cond::NotExists),
        };
        let secret = Secret {
            name,
            description: input.description,
            value: input.value,
            nodes: input.nodes,
            origin,
            created_at,
            updated_at: now,
            version,
        };
        let mut tx = self.tx();
        tx.put(key, version, &secret, cond).audit(
            id,
            caller,
            AuditAction::SecretChanged,
            &secret.name,
            json!({"nodes": secret.nodes}),
            now,
        );
        self.commit(tx, |_| Error::conflict("the secret was changed meanwhile; try again")).await?;
        Ok(secret.view(false))
    }

    pub async fn delete_secret(&self, caller: &Caller, id: &ProjectId, name: &SecretName) -> Result<()> {
        self.access(caller, id).await?.require(Permission::ProjectManage)?;
        let key = layout::secret(id, name);
        let Some(item) = self.store.get(&key).await? else {
            return Err(Error::not_found("secret"));
        };
        let mut tx = self.tx();
        tx.delete(key, Cond::Version(item.version)).audit(
            id,
            caller,
            AuditAction::SecretDeleted,
            name,
            serde_json::Value::Null,
            self.now(),
        );
        self.commit(tx, |_| Error::conflict("the secret was changed meanwhile; try again")).await?;
        Ok(())
    }
}
