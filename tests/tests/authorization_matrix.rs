//! OWASP API1 (broken object-level authorization): every `/v1` route × {owner, manager by
//! role, plain member, stranger, key holder, holder of a key in another project}, each with the
//! status it must get. Nobody reads or changes another project's objects; a holder imports only
//! their own key into a project they manage; secret values only on request, only to managers.

use keygate::http::routes::{Operation, ROUTES};
use keygate::identity::Caller;
use keygate::ids::RoleName;
use keygate::project::{MemberInput, RoleInput};
use keygate::testing::{TestApp, call, user};
use keygate_tests::story;
use serde_json::{Value, json};

struct World {
    t: TestApp,
    project: String,
    template: String,
    request: String,
    key: String,
    other_key: String,
    client: String,
}

const ACTORS: [&str; 6] = ["owner", "manager", "member", "stranger", "holder", "other_holder"];

fn actor(name: &str) -> Caller {
    match name {
        "owner" => user("ann"),
        "holder" => user("bob"),
        other => user(other),
    }
}

async fn world() -> World {
    let t = TestApp::new();
    let s = story::pending_request(&t.app).await;
    let p = s.project.clone();
    let manage: RoleInput = serde_json::from_value(json!({"permissions": ["project_view", "project_manage"]})).unwrap();
    t.app.put_role(&s.owner, &p, RoleName::parse("admin").unwrap(), manage).await.unwrap();
    for (who, role) in [("manager", "admin"), ("member", "reader")] {
        let u = actor(who);
        let input = MemberInput { role: RoleName::parse(role).unwrap(), email: u.email.clone() };
        t.app.put_member(&s.owner, &p, u.id.clone(), input).await.unwrap();
    }
    let key = t.app.approve(&s.owner, &p, &s.request).await.unwrap().key;
    // A key in another project, held by other_holder, who manages that project.
    let other = story::pending_request(&t.app).await;
    let other_holder = actor("other_holder");
    let input = MemberInput { role: RoleName::parse("reader").unwrap(), email: other_holder.email.clone() };
    t.app.put_member(&other.owner, &other.project, other_holder.id.clone(), input).await.unwrap();
    let r = t.app.request_key(&other_holder, &other.project, &other.template).await.unwrap().request;
    let other_key = t.app.approve(&other.owner, &other.project, &r.id).await.unwrap().key;
    // The holder's own client project, with a secret.
    let client =
        t.app.register_project(&s.holder, serde_json::from_value(json!({"name": "Client"})).unwrap()).await.unwrap();
    let secret = serde_json::from_value(json!({"value": "hunter2"})).unwrap();
    t.app.put_secret(&s.holder, &client.id, keygate::ids::SecretName::parse("db").unwrap(), secret).await.unwrap();
    World {
        project: p.to_string(),
        template: s.template.to_string(),
        request: s.request.to_string(),
        key: key.id.to_string(),
        other_key: other_key.id.to_string(),
        client: client.id.to_string(),
        t,
    }
}

/// The request each operation is tried with, on the owner's project (or the holder's client
/// project for secrets), so that only authorization decides the answer.
fn attempt(op: Operation, w: &World) -> (String, Option<Value>) {
    let p = &w.project;
    use Operation::*;
    match op {
        RegisterProject => ("/v1/projects".into(), Some(json!({"name": "x"}))),
        GetProject => (format!("/v1/projects/{p}"), None),
        PutRole => (format!("/v1/projects/{p}/roles/extra"), Some(json!({"permissions": ["project_view"]}))),
        ListRoles => (format!("/v1/projects/{p}/roles"), None),
        PutNode => (format!("/v1/projects/{p}/nodes/extra"), Some(json!({"name": "x"}))),
        ListNodes => (format!("/v1/projects/{p}/nodes"), None),
        ListMembers => (format!("/v1/projects/{p}/members"), None),
        MyProjects => ("/v1/me/projects".into(), None),
        PutMember => {
            (format!("/v1/projects/{p}/members/zed"), Some(json!({"role": "reader", "email": "zed@example.com"})))
        }
        CreateTemplate => (format!("/v1/projects/{p}/templates"), Some(json!({"name": "Other", "role": "reader"}))),
        ListTemplates => (format!("/v1/projects/{p}/templates"), None),
        EditTemplate => (format!("/v1/projects/{p}/templates/{}", w.template), Some(json!({"description": "x"}))),
        DeleteTemplate => (format!("/v1/projects/{p}/templates/{}", w.template), None),
        RequestKey => (format!("/v1/projects/{p}/templates/{}/requests", w.template), None),
        ListRequests => (format!("/v1/projects/{p}/requests"), None),
        ApproveRequest => (format!("/v1/projects/{p}/requests/{}/approve", w.request), None),
        RejectRequest => (format!("/v1/projects/{p}/requests/{}/reject", w.request), Some(json!({"reason": "no"}))),
        ListIssuedKeys => (format!("/v1/projects/{p}/keys"), None),
        ProjectUsage => (format!("/v1/projects/{p}/usage"), None),
        KeyUsage => (format!("/v1/projects/{p}/keys/{}/usage", w.key), None),
        ExportUsage => (format!("/v1/projects/{p}/usage/export?granularity=day&format=jsonl"), None),
        RevokeKey => (format!("/v1/projects/{p}/keys/{}", w.key), None),
        RerollKey => (format!("/v1/projects/{p}/keys/{}/reroll", w.key), Some(json!({"grace_seconds": 60}))),
        SetKeyLimits => {
            (format!("/v1/projects/{p}/keys/{}", w.key), Some(json!({"rate_limit": {"per_second": 5, "burst": 5}})))
        }
        // Not a user's route: GitHub signs it. No scanning keys are configured here.
        LeakReport => ("/v1/leaks/github".into(), Some(json!([]))),
        MyKeys => ("/v1/me/keys".into(), None),
        MyKeyToken => (format!("/v1/me/keys/{}/token", w.key), None),
        ImportKey => {
            (format!("/v1/projects/{}/secrets/import", w.client), Some(json!({"key_id": w.key, "prefix": "srv"})))
        }
        ListSecrets => (format!("/v1/projects/{}/secrets?reveal=true", w.client), None),
        PutSecret => (format!("/v1/projects/{}/secrets/db", w.client), Some(json!({"value": "x"}))),
        DeleteSecret => (format!("/v1/projects/{}/secrets/db", w.client), None),
        ListAudit => (format!("/v1/projects/{p}/audit"), None),
        Jwks => ("/.well-known/jwks.json".into(), None),
        // Asked with an API key, not a user token.
        DescribeKey => ("/v1/key".into(), None),
        MintKeyToken => ("/v1/key/tokens".into(), Some(json!({"label": "ci"}))),
        MintMyKeyToken => (format!("/v1/me/keys/{}/tokens", w.key), Some(json!({"label": "ci"}))),
        ListMyKeyTokens => (format!("/v1/me/keys/{}/tokens", w.key), None),
        RevokeMyKeyToken => (format!("/v1/me/keys/{}/tokens/{}", w.key, keygate::ids::TokenId::generate()), None),
        ListKeyTokens => (format!("/v1/projects/{p}/keys/{}/tokens", w.key), None),
        GetKey => (format!("/v1/projects/{p}/keys/{}", w.key), None),
        // The test application has no webhook rules (the deployment delivers none): adding is
        // a conflict for those who may; an endpoint that does not exist is not found.
        AddWebhook => (format!("/v1/projects/{p}/webhooks"), Some(json!({"url": "https://hooks.example.com/in"}))),
        ListWebhooks => (format!("/v1/projects/{p}/webhooks"), None),
        EditWebhook => (
            format!("/v1/projects/{p}/webhooks/{}", keygate::ids::WebhookId::generate()),
            Some(json!({"enabled": false})),
        ),
        DeleteWebhook => (format!("/v1/projects/{p}/webhooks/{}", keygate::ids::WebhookId::generate()), None),
        RotateWebhookSecret => {
            (format!("/v1/projects/{p}/webhooks/{}/rotate", keygate::ids::WebhookId::generate()), None)
        }
        TestWebhook => (format!("/v1/projects/{p}/webhooks/{}/test", keygate::ids::WebhookId::generate()), None),
        ListDeliveries => {
            (format!("/v1/projects/{p}/webhooks/{}/deliveries", keygate::ids::WebhookId::generate()), None)
        }
        RetryDelivery => (
            format!(
                "/v1/projects/{p}/webhooks/{}/deliveries/{}/retry",
                keygate::ids::WebhookId::generate(),
                keygate::ids::DeliveryId::generate()
            ),
            None,
        ),
        RevokeKeyToken => {
            (format!("/v1/projects/{p}/keys/{}/tokens/{}", w.key, keygate::ids::TokenId::generate()), None)
        }
    }
}

/// The status each actor must get: [owner, manager, member, stranger, holder, other_holder].
fn expected(op: Operation) -> [u16; 6] {
    use Operation::*;
    match op {
        RegisterProject => [201; 6],
        Jwks => [200; 6],
        // A user token is not an API key: nobody learns anything with one.
        DescribeKey | MintKeyToken => [401; 6],
        // Narrowed tokens: the holder mints and lists his own; nobody revokes a token that is not.
        MintMyKeyToken => [404, 404, 404, 404, 201, 404],
        ListMyKeyTokens => [404, 404, 404, 404, 200, 404],
        RevokeMyKeyToken => [404; 6],
        // Seeing the project: its members; strangers and outsiders do not learn it exists.
        GetProject | ListTemplates => [200, 200, 200, 404, 200, 404],
        // Managing it: the owner and managers; members are told no; others see nothing.
        PutRole | PutNode | PutMember => [200, 200, 403, 404, 403, 404],
        // The billing export is the issued-keys page's figures: the same people.
        ListRoles | ListNodes | ListMembers | ListRequests | ListIssuedKeys | ProjectUsage | ExportUsage
        | ListAudit => [200, 200, 403, 404, 403, 404],
        CreateTemplate => [201, 201, 403, 404, 403, 404],
        EditTemplate => [200, 200, 403, 404, 403, 404],
        // The template has an active key: deleting it without revoke_keys is a conflict.
        DeleteTemplate => [409, 409, 403, 404, 403, 404],
        // Members may request; the holder already holds a key of this template.
        RequestKey => [201, 201, 201, 404, 409, 404],
        ApproveRequest | RejectRequest => [409, 409, 403, 404, 403, 404],
        // A key's usage and revocation: managers and the holder.
        KeyUsage | ListKeyTokens | GetKey => [200, 200, 403, 404, 200, 404],
        // A token that does not exist: those who may see the key learn so; others as above.
        RevokeKeyToken => [404, 404, 403, 404, 404, 404],
        RevokeKey | RerollKey => [200, 200, 403, 404, 200, 404],
        // One key's limits: the key's managers, not its holder.
        SetKeyLimits => [200, 200, 403, 404, 403, 404],
        LeakReport => [403; 6],
        // The caller's own keys: everyone has a list; only the holder has this key.
        MyKeys | MyProjects => [200; 6],
        MyKeyToken => [404, 404, 404, 404, 200, 404],
        // The holder's client project: only the holder manages it.
        ImportKey => [404, 404, 404, 404, 201, 404],
        ListSecrets | PutSecret => [404, 404, 404, 404, 200, 404],
        DeleteSecret => [404, 404, 404, 404, 204, 404],
        // A project's webhook endpoints: those who manage it.
        AddWebhook => [409, 409, 403, 404, 403, 404],
        ListWebhooks => [200, 200, 403, 404, 403, 404],
        EditWebhook | DeleteWebhook | RotateWebhookSecret | TestWebhook | ListDeliveries | RetryDelivery => {
            [404, 404, 403, 404, 403, 404]
        }
    }
}

#[tokio::test]
async fn every_route_for_every_actor() {
    let mut failures = Vec::new();
    for route in ROUTES {
        for (i, name) in ACTORS.iter().enumerate() {
            // A fresh world per attempt, so that one success cannot change another's answer.
            let w = world().await;
            let (path, body) = attempt(route.operation, &w);
            let (status, answer) = call(&w.t.app, route.method.as_str(), &path, Some(&actor(name)), body).await;
            let want = expected(route.operation)[i];
            if status != want {
                failures
                    .push(format!("{} {} as {name}: got {status}, want {want}: {answer}", route.method, route.path));
            }
            if status == 200 && route.operation == Operation::ListSecrets {
                assert_eq!(answer["items"][0]["value"], "hunter2", "a manager asked for the values");
            }
        }
    }
    assert!(failures.is_empty(), "{} wrong answers:\n{}", failures.len(), failures.join("\n"));
}

#[tokio::test]
async fn a_holder_cannot_import_another_holders_key_nor_into_a_project_they_do_not_manage() {
    let w = world().await;
    let holder = actor("holder");
    let other = serde_json::json!({"key_id": w.other_key, "prefix": "stolen"});
    let (status, _) =
        call(&w.t.app, "POST", &format!("/v1/projects/{}/secrets/import", w.client), Some(&holder), Some(other)).await;
    assert_eq!(status, 404, "another's key is not found");
    let own = serde_json::json!({"key_id": w.key, "prefix": "srv"});
    let (status, _) =
        call(&w.t.app, "POST", &format!("/v1/projects/{}/secrets/import", w.project), Some(&holder), Some(own)).await;
    assert_eq!(status, 403, "the holder is only a member of the owner's project");
    let (status, listed) =
        call(&w.t.app, "GET", &format!("/v1/projects/{}/secrets", w.client), Some(&holder), None).await;
    assert_eq!(status, 200);
    assert!(listed["items"][0].get("value").is_none(), "values only when asked for");
}

#[tokio::test]
async fn each_caller_lists_exactly_the_projects_they_belong_to_with_their_role() {
    let w = world().await;
    let list = |who: &'static str| {
        let app = &w.t.app;
        async move {
            let (status, answer) = call(app, "GET", "/v1/me/projects", Some(&actor(who)), None).await;
            assert_eq!(status, 200, "{answer}");
            answer["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (p["id"].as_str().unwrap().to_owned(), p["role"].as_str().unwrap().to_owned()))
                .collect::<Vec<_>>()
        }
    };
    // The owner registered the world's two projects (the second one for other_holder's key).
    let owned = list("owner").await;
    assert_eq!(owned.len(), 2);
    assert!(owned.contains(&(w.project.clone(), "owner".to_owned())));
    assert!(owned.iter().all(|(_, role)| role == "owner"));
    assert_eq!(list("member").await, [(w.project.clone(), "reader".to_owned())]);
    // The holder is a reader of both story projects and owns the client project.
    let held = list("holder").await;
    assert_eq!(held.len(), 3, "{held:?}");
    assert!(held.contains(&(w.project.clone(), "reader".to_owned())));
    assert_eq!(held.last(), Some(&(w.client.clone(), "owner".to_owned())), "oldest membership first");
    assert!(list("stranger").await.is_empty());
    // The project as fetched carries what the caller may do on it.
    let (_, owner_view) =
        call(&w.t.app, "GET", &format!("/v1/projects/{}", w.project), Some(&actor("owner")), None).await;
    assert!(owner_view["permissions"].as_array().unwrap().contains(&json!("project_manage")));
    let (_, member_view) =
        call(&w.t.app, "GET", &format!("/v1/projects/{}", w.project), Some(&actor("member")), None).await;
    assert!(!member_view["permissions"].as_array().unwrap().contains(&json!("project_manage")));
    assert!(member_view["permissions"].as_array().unwrap().contains(&json!("project_view")));
}
