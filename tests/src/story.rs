//! The story's set-up at the service level: a project with nodes and roles, a priced template,
//! and a pending request, for tests that then exercise one step (on any store).

use keygate::App;
use keygate::identity::Caller;
use keygate::ids::{ProjectId, RequestId, RoleName, TemplateId};
use keygate::project::{MemberInput, NewProject, NodeInput, RoleInput};
use keygate::template::TemplateInput;
use keygate::testing::user;

pub struct Story {
    pub owner: Caller,
    pub holder: Caller,
    pub project: ProjectId,
    pub template: TemplateId,
    pub request: RequestId,
}

pub const PRICE: i64 = 3;

/// Ann's project with a `reader` template priced at [`PRICE`], and Bob's pending request.
pub async fn pending_request(app: &App) -> Story {
    let (owner, holder) = (user("ann"), user("bob"));
    let project =
        app.register_project(&owner, NewProject { name: "Weather".into(), description: String::new() }).await.unwrap();
    let p = project.id;
    let role: RoleInput =
        serde_json::from_value(serde_json::json!({"permissions": ["project_view", "package_view"]})).unwrap();
    app.put_role(&owner, &p, RoleName::parse("reader").unwrap(), role).await.unwrap();
    for node in ["in", "out"] {
        app.put_node(&owner, &p, keygate::ids::NodeId::parse(node).unwrap(), NodeInput { name: node.into() })
            .await
            .unwrap();
    }
    app.put_member(
        &owner,
        &p,
        holder.id.clone(),
        MemberInput { role: RoleName::parse("reader").unwrap(), email: holder.email.clone() },
    )
    .await
    .unwrap();
    let input: TemplateInput = serde_json::from_value(serde_json::json!({
        "name": "Forecast API", "role": "reader", "price_per_request": PRICE,
        "fields": [{"name": "project", "kind": "project"}, {"name": "input", "kind": "node", "value": "in"}],
    }))
    .unwrap();
    let template = app.create_template(&owner, &p, input).await.unwrap();
    let request = app.request_key(&holder, &p, &template.id).await.unwrap().request;
    Story { owner, holder, project: p, template: template.id, request: request.id }
}

/// Twenty owners' clicks on "approve" at once: exactly one key is issued.
pub async fn concurrent_approvals_issue_one_key(app: std::sync::Arc<App>) {
    let story = pending_request(&app).await;
    let tasks = (0..20).map(|_| {
        let app = app.clone();
        let (owner, p, r) = (story.owner.clone(), story.project.clone(), story.request.clone());
        tokio::spawn(async move { app.approve(&owner, &p, &r).await })
    });
    let results: Vec<_> = futures_util::future::join_all(tasks).await.into_iter().map(|r| r.unwrap()).collect();
    let approved: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(approved.len(), 1, "exactly one approval wins");
    for e in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(e.status(), 409, "the others are told it was decided: {e}");
    }
    let period = keygate::usage::Period::parse(None, None, app.now(), 366).unwrap();
    let keys = app.list_issued_keys(&story.owner, &story.project, period, &Default::default()).await.unwrap();
    assert_eq!(keys.items.len(), 1, "one key in the store");
    assert_eq!(keys.items[0].key_id, approved[0].key.id);
}

/// `calls` metered calls at once through the authorizer count exactly `calls`, priced.
pub async fn concurrent_calls_are_counted_exactly(app: std::sync::Arc<App>, calls: usize) {
    let story = pending_request(&app).await;
    let key = app.approve(&story.owner, &story.project, &story.request).await.unwrap().key;
    let token = app.my_key_token(&story.holder, &key.id).await.unwrap().token;
    let path = format!("/api/projects/{}/data_layers/last", story.project);
    let authorization = format!("Bearer {}", token.expose());
    // One call first, so that the burst meets a warm instance (records cached), as in production.
    assert!(app.authorize(&http::Method::GET, &path, Some(&authorization)).await.is_ok());
    let tasks = (0..calls).map(|_| {
        let (app, path, authorization) = (app.clone(), path.clone(), authorization.clone());
        tokio::spawn(async move { app.authorize(&http::Method::GET, &path, Some(&authorization)).await })
    });
    for verdict in futures_util::future::join_all(tasks).await {
        assert!(verdict.unwrap().is_ok(), "every call is allowed");
    }
    let period = keygate::usage::Period::parse(None, None, app.now() + chrono::Duration::hours(1), 366).unwrap();
    let rows = app.list_issued_keys(&story.owner, &story.project, period, &Default::default()).await.unwrap();
    assert_eq!(rows.items[0].requests, calls as i64 + 1);
    assert_eq!(rows.items[0].cost, (calls as i64 + 1) * PRICE);
}
