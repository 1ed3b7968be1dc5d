//! Projects, roles, nodes, members and the audit log.

use serde_json::json;

use super::{App, ListPage, PageRequest, Tx};
use crate::audit::{AuditAction, AuditEvent};
use crate::error::{Error, Result};
use crate::identity::Caller;
use crate::ids::{NodeId, ProjectId, RoleName, UserId};
use crate::permission::Permission;
use crate::project::{Member, MemberInput, NewProject, Node, NodeInput, Project, Role, RoleInput};
use crate::store::{Cond, Query, layout};

impl App {
    /// Registers a project; the caller becomes its owner, with the `owner` role.
    pub async fn register_project(&self, caller: &Caller, input: NewProject) -> Result<Project> {
        input.validate()?;
        let now = self.now();
        let project = Project {
            id: ProjectId::generate(),
            name: input.name.trim().to_owned(),
            description: input.description,
            owner_id: caller.id.clone(),
            owner_email: caller.email.clone(),
            created_at: now,
        };
        let owner = Role::owner(now);
        let member = Member {
            user_id: caller.id.clone(),
            email: caller.email.clone(),
            role: owner.name.clone(),
            updated_at: now,
        };
        let mut tx = Tx::default();
        tx.put(layout::project(&project.id), 1, &project, Cond::NotExists)
            .put(layout::role(&project.id, &owner.name), 1, &owner, Cond::NotExists)
            .put(layout::member(&project.id, &caller.id), 1, &member, Cond::NotExists)
            .audit(
                &project.id,
                caller,
                AuditAction::ProjectRegistered,
                &project.id,
                json!({"name": project.name}),
                now,
            );
        self.commit(tx, |_| Error::conflict("the project id is taken; try again")).await?;
        Ok(project)
    }

    pub async fn get_project(&self, caller: &Caller, id: &ProjectId) -> Result<Project> {
        let access = self.access(caller, id).await?;
        access.require_view()?;
        Ok(access.project)
    }

    pub async fn put_role(&self, caller: &Caller, id: &ProjectId, name: RoleName, input: RoleInput) -> Result<Role> {
        self.access(caller, id).await?.require(Permission::ProjectManage)?;
        let role = input.into_role(name, self.now())?;
        let key = layout::role(id, &role.name);
        let current = self.store.get(&key).await?;
        let (version, cond) = match &current {
            Some(item) => (item.version + 1, Cond::Version(item.version)),
            None => (1, Cond::NotExists),
        };
        let mut tx = Tx::default();
        tx.put(key, version, &role, cond).audit(
            id,
            caller,
            AuditAction::RoleDefined,
            &role.name,
            json!({"permissions": role.permissions, "public": role.public}),
            role.updated_at,
        );
        self.commit(tx, |_| Error::conflict("the role was changed concurrently; try again")).await?;
        Ok(role)
    }

    pub async fn list_roles(&self, caller: &Caller, id: &ProjectId) -> Result<ListPage<Role>> {
        self.access(caller, id).await?.require(Permission::ProjectManage)?;
        Ok(ListPage { items: self.roles(id).await?, next_cursor: None })
    }

    pub async fn put_node(&self, caller: &Caller, id: &ProjectId, node: NodeId, input: NodeInput) -> Result<Node> {
        self.access(caller, id).await?.require(Permission::ProjectManage)?;
        input.validate()?;
        let node = Node { id: node, name: input.name, updated_at: self.now() };
        let key = layout::node(id, &node.id);
        let version = self.store.get(&key).await?.map_or(0, |i| i.version);
        let cond = if version == 0 { Cond::NotExists } else { Cond::Version(version) };
        let mut tx = Tx::default();
        tx.put(key, version + 1, &node, cond).audit(
            id,
            caller,
            AuditAction::NodeRegistered,
            &node.id,
            json!({"name": node.name}),
            node.updated_at,
        );
        self.commit(tx, |_| Error::conflict("the node was changed concurrently; try again")).await?;
        Ok(node)
    }

    pub async fn list_nodes(&self, caller: &Caller, id: &ProjectId, page: &PageRequest) -> Result<ListPage<Node>> {
        self.access(caller, id).await?.require(Permission::ProjectManage)?;
        self.page(Query::prefix(layout::project_pk(id), layout::NODES), page).await
    }

    pub async fn put_member(
        &self,
        caller: &Caller,
        id: &ProjectId,
        user: UserId,
        input: MemberInput,
    ) -> Result<Member> {
        let access = self.access(caller, id).await?;
        access.require(Permission::ProjectManage)?;
        input.validate()?;
        if user == access.project.owner_id {
            return Err(Error::invalid("user", "the project owner's role cannot be changed"));
        }
        let role_key = layout::role(id, &input.role);
        if self.store.get(&role_key).await?.is_none() {
            return Err(Error::invalid("role", format!("the project has no role '{}'", input.role)));
        }
        let member = Member { user_id: user, email: input.email, role: input.role, updated_at: self.now() };
        let key = layout::member(id, &member.user_id);
        let version = self.store.get(&key).await?.map_or(0, |i| i.version);
        let cond = if version == 0 { Cond::NotExists } else { Cond::Version(version) };
        let mut tx = Tx::default();
        tx.check(role_key, Cond::Exists).put(key, version + 1, &member, cond).audit(
            id,
            caller,
            AuditAction::MemberSet,
            &member.user_id,
            json!({"role": member.role}),
            member.updated_at,
        );
        self.commit(tx, |i| match i {
            0 => Error::invalid("role", "the role was deleted meanwhile"),
            _ => Error::conflict("the member was changed concurrently; try again"),
        })
        .await?;
        Ok(member)
    }

    /// The project's audit log, newest first.
    pub async fn list_audit(
        &self,
        caller: &Caller,
        id: &ProjectId,
        page: &PageRequest,
    ) -> Result<ListPage<AuditEvent>> {
        self.access(caller, id).await?.require(Permission::ProjectManage)?;
        let mut query = Query::prefix(layout::project_pk(id), layout::AUDIT);
        query.descending = true;
        self.page(query, page).await
    }
}
