//! Projects, roles, nodes, members and the audit log.

use futures_util::future::try_join_all;
use serde_json::json;

use super::{App, ListPage, PageRequest, decode};
use crate::audit::{AuditAction, AuditEvent};
use crate::error::{Error, Result};
use crate::identity::Caller;
use crate::ids::{NodeId, ProjectId, RoleName, UserId};
use crate::permission::Permission;
use crate::project::{
    Member, MemberInput, MyProject, NewProject, Node, NodeInput, Project, ProjectView, Role, RoleInput,
};
use crate::store::{Cond, Query, layout};

impl App {
    /// Registers a project; the caller becomes its owner, with the `owner` role.
    pub async fn register_project(&self, caller: &Caller, input: NewProject) -> Result<Project> {
        input.validate()?;
        let now = self.now();
        let project = Project {
            id: ProjectId::generate(),
            name: crate::project::normalize_name(&input.name),
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
            project_id: Some(project.id.clone()),
        };
        let mut tx = self.tx();
        tx.put(layout::project(&project.id), 1, &project, Cond::NotExists)
            .put(layout::role(&project.id, &owner.name), 1, &owner, Cond::NotExists)
            .put_indexed(
                layout::member(&project.id, &caller.id),
                layout::membership(&caller.id, &project.id),
                1,
                &member,
                Cond::NotExists,
            )
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

    /// The project, with what the caller may do on it (so that a client shows only what works).
    pub async fn get_project(&self, caller: &Caller, id: &ProjectId) -> Result<ProjectView> {
        let access = self.access(caller, id).await?;
        access.require_view()?;
        let pending_requests = match access.can(Permission::ProjectManage) {
            true => Some(self.pending_requests(id).await?),
            false => None,
        };
        Ok(ProjectView { project: access.project, permissions: access.permissions, pending_requests })
    }

    /// The projects the caller belongs to (owned ones included), with the caller's role in each,
    /// oldest membership first.
    pub async fn my_projects(&self, caller: &Caller, page: &PageRequest) -> Result<ListPage<MyProject>> {
        let query = Query::prefix(layout::user_pk(&caller.id), layout::MEMBERSHIPS).on_index();
        let ListPage { items: members, next_cursor } = self.page::<Member>(query, page).await?;
        let members: Vec<(RoleName, ProjectId)> =
            members.into_iter().filter_map(|m| Some((m.role, m.project_id?))).collect();
        let keys: Vec<_> = members.iter().map(|(_, p)| layout::project(p)).collect();
        let roles: Vec<_> = members.iter().map(|(r, p)| layout::role(p, r)).collect();
        let (projects, roles) = tokio::try_join!(self.store.get_many(&keys), self.store.get_many(&roles))?;
        // The pending count, where the member's role may decide requests: one query each,
        // concurrently.
        let counts = try_join_all(members.iter().zip(&roles).map(|((_, p), role)| async move {
            let role = role.as_ref().map(decode::<Role>).transpose()?;
            match role.is_some_and(|r| r.permissions.contains(Permission::ProjectManage)) {
                true => Ok::<_, Error>(Some(self.pending_requests(p).await?)),
                false => Ok(None),
            }
        }))
        .await?;
        let mut items = Vec::with_capacity(projects.len());
        // A membership whose project is gone is not listed.
        for (((role, _), item), pending_requests) in members.into_iter().zip(projects).zip(counts) {
            if let Some(item) = item {
                items.push(MyProject { project: decode(&item)?, role, pending_requests });
            }
        }
        Ok(ListPage { items, next_cursor })
    }

    /// The project's members and their roles.
    pub async fn list_members(&self, caller: &Caller, id: &ProjectId, page: &PageRequest) -> Result<ListPage<Member>> {
        self.access(caller, id).await?.require(Permission::ProjectManage)?;
        self.page(Query::prefix(layout::project_pk(id), layout::MEMBERS), page).await
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
        let mut tx = self.tx();
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
        let node = Node { id: node, name: crate::project::normalize_name(&input.name), updated_at: self.now() };
        let key = layout::node(id, &node.id);
        let version = self.store.get(&key).await?.map_or(0, |i| i.version);
        let cond = if version == 0 { Cond::NotExists } else { Cond::Version(version) };
        let mut tx = self.tx();
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
        let member = Member {
            user_id: user,
            email: input.email,
            role: input.role,
            updated_at: self.now(),
            project_id: Some(id.clone()),
        };
        let key = layout::member(id, &member.user_id);
        let version = self.store.get(&key).await?.map_or(0, |i| i.version);
        let cond = if version == 0 { Cond::NotExists } else { Cond::Version(version) };
        let mut tx = self.tx();
        let index = layout::membership(&member.user_id, id);
        tx.check(role_key, Cond::Exists).put_indexed(key, index, version + 1, &member, cond).audit(
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
