//! Each handler's refusals, through the route table with API-Gateway-shaped requests:
//! 401 without a user, 403 for those who may see the project but not do this, 404 for
//! strangers and for ids that do not exist, 409 for conflicts, 422 naming the bad field.

use keygate::http::routes::{Auth, ROUTES};
use keygate::testing::{TestApp, call, user};
use keygate_tests::story::{Story, pending_request};
use serde_json::{Value, json};

fn fill(path: &str, story: &Story) -> String {
    path.replace("{project}", story.project.as_str())
        .replace("{template}", story.template.as_str())
        .replace("{request}", story.request.as_str())
        .replace("{key}", keygate::ids::KeyId::generate().as_str())
        .replace("{role}", "reader")
        .replace("{node}", "in")
        .replace("{user}", "bob")
        .replace("{name}", "s")
}

fn field(problem: &Value) -> &str {
    problem["errors"][0]["field"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn every_user_route_refuses_anonymous_callers_with_401() {
    let t = TestApp::new();
    let story = pending_request(&t.app).await;
    for route in ROUTES.iter().filter(|r| r.auth == Auth::User) {
        let (status, problem) =
            call(&t.app, route.method.as_str(), &fill(route.path, &story), None, Some(json!({}))).await;
        assert_eq!(status, 401, "{} {}", route.method, route.path);
        assert_eq!(problem["type"], "urn:keygate:problem:unauthenticated");
    }
}

#[tokio::test]
async fn members_without_project_manage_get_403_and_strangers_404() {
    let t = TestApp::new();
    let story = pending_request(&t.app).await;
    let p = story.project.as_str();
    let manage_only = [
        ("POST", format!("/v1/projects/{p}/templates"), Some(json!({"name": "x", "role": "reader"}))),
        ("PUT", format!("/v1/projects/{p}/roles/extra"), Some(json!({"permissions": []}))),
        ("GET", format!("/v1/projects/{p}/roles"), None),
        ("GET", format!("/v1/projects/{p}/requests"), None),
        ("POST", format!("/v1/projects/{p}/requests/{}/approve", story.request), None),
        ("POST", format!("/v1/projects/{p}/requests/{}/reject", story.request), None),
        ("GET", format!("/v1/projects/{p}/keys"), None),
        ("GET", format!("/v1/projects/{p}/audit"), None),
        ("GET", format!("/v1/projects/{p}/secrets"), None),
        ("DELETE", format!("/v1/projects/{p}/templates/{}", story.template), None),
    ];
    let stranger = user("carl");
    for (method, path, body) in manage_only {
        let (status, _) = call(&t.app, method, &path, Some(&story.holder), body.clone()).await;
        assert_eq!(status, 403, "member: {method} {path}");
        let (status, _) = call(&t.app, method, &path, Some(&stranger), body).await;
        assert_eq!(status, 404, "stranger: {method} {path}");
    }
    let (status, _) = call(&t.app, "GET", &format!("/v1/projects/{p}/templates"), Some(&stranger), None).await;
    assert_eq!(status, 404);
    let (status, _) = call(&t.app, "GET", &format!("/v1/projects/{p}"), Some(&stranger), None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn ids_that_do_not_exist_are_404() {
    let t = TestApp::new();
    let story = pending_request(&t.app).await;
    let p = story.project.as_str();
    let other = keygate::ids::ProjectId::generate();
    for path in [
        format!("/v1/projects/{other}"),
        "/v1/projects/not-an-id".to_owned(),
        format!("/v1/projects/{p}/requests/{}/approve", keygate::ids::RequestId::generate()),
        format!("/v1/projects/{p}/keys/{}", keygate::ids::KeyId::generate()),
        format!("/v1/me/keys/{}/token", keygate::ids::KeyId::generate()),
    ] {
        let method = if path.ends_with("/approve") {
            "POST"
        } else if path.contains("/keys/") && !path.contains("/me/") {
            "DELETE"
        } else {
            "GET"
        };
        let (status, problem) = call(&t.app, method, &path, Some(&story.owner), None).await;
        assert_eq!(status, 404, "{method} {path}: {problem}");
    }
}

#[tokio::test]
async fn conflicts_are_409() {
    let t = TestApp::new();
    let story = pending_request(&t.app).await;
    let p = story.project.as_str();
    let (status, _) = call(
        &t.app,
        "POST",
        &format!("/v1/projects/{p}/templates/{}/requests", story.template),
        Some(&story.holder),
        None,
    )
    .await;
    assert_eq!(status, 409, "a second pending request");
    let (status, body) = call(
        &t.app,
        "POST",
        &format!("/v1/projects/{p}/templates"),
        Some(&story.owner),
        Some(json!({"name": "FORECAST api", "role": "reader"})),
    )
    .await;
    assert_eq!(status, 409, "names are unique regardless of case: {body}");
    let approve = format!("/v1/projects/{p}/requests/{}/approve", story.request);
    let (status, approval) = call(&t.app, "POST", &approve, Some(&story.owner), None).await;
    assert_eq!(status, 200);
    let (status, _) = call(&t.app, "POST", &approve, Some(&story.owner), None).await;
    assert_eq!(status, 409, "approving twice");
    let (status, _) = call(
        &t.app,
        "POST",
        &format!("/v1/projects/{p}/templates/{}/requests", story.template),
        Some(&story.holder),
        None,
    )
    .await;
    assert_eq!(status, 409, "requesting while holding an active key");
    let (status, _) =
        call(&t.app, "DELETE", &format!("/v1/projects/{p}/templates/{}", story.template), Some(&story.owner), None)
            .await;
    assert_eq!(status, 409, "deleting a template with active keys");
    let k = approval["key"]["id"].as_str().unwrap();
    let import = json!({"key_id": k, "prefix": "srv"});
    let (status, _) =
        call(&t.app, "POST", &format!("/v1/projects/{p}/secrets/import"), Some(&story.owner), Some(import.clone()))
            .await;
    assert_eq!(status, 404, "only the holder imports a key");
    let (_, client) = call(&t.app, "POST", "/v1/projects", Some(&story.holder), Some(json!({"name": "Client"}))).await;
    let c = client["id"].as_str().unwrap();
    let (status, _) =
        call(&t.app, "POST", &format!("/v1/projects/{c}/secrets/import"), Some(&story.holder), Some(import.clone()))
            .await;
    assert_eq!(status, 201);
    let (status, problem) =
        call(&t.app, "POST", &format!("/v1/projects/{c}/secrets/import"), Some(&story.holder), Some(import)).await;
    assert_eq!(status, 409);
    assert_eq!(problem["conflicting_names"], json!(["srv_token", "srv_project", "srv_input"]));
    let revoke = format!("/v1/projects/{p}/keys/{k}");
    assert_eq!(
        call(&t.app, "DELETE", &revoke, Some(&story.holder), None).await.0,
        200,
        "holders revoke their own keys"
    );
    assert_eq!(call(&t.app, "DELETE", &revoke, Some(&story.owner), None).await.0, 409, "revoking twice");
}

#[tokio::test]
async fn bad_input_is_422_naming_the_field() {
    let t = TestApp::new();
    let story = pending_request(&t.app).await;
    let p = story.project.as_str();
    let cases = [
        ("POST", format!("/v1/projects/{p}/templates"), json!({"name": "", "role": "reader"}), "name"),
        (
            "POST",
            format!("/v1/projects/{p}/templates"),
            json!({"name": "x", "role": "reader", "price_per_request": -1}),
            "price_per_request",
        ),
        (
            "POST",
            format!("/v1/projects/{p}/templates"),
            json!({"name": "x", "role": "reader", "fields": [{"name": "in put"}]}),
            "fields[0].name",
        ),
        (
            "POST",
            format!("/v1/projects/{p}/templates"),
            json!({"name": "x", "role": "reader", "fields": [{"name": "o", "kind": "node", "value": "nowhere"}]}),
            "fields[0].value",
        ),
        ("POST", format!("/v1/projects/{p}/templates"), json!({"name": "x", "role": "nobody"}), "role"),
        (
            "POST",
            format!("/v1/projects/{p}/templates"),
            json!({"name": "x", "role": "reader", "colour": "red"}),
            "colour",
        ),
        (
            "PUT",
            format!("/v1/projects/{p}/members/carl"),
            json!({"role": "nobody", "email": "carl@example.com"}),
            "role",
        ),
        ("PUT", format!("/v1/projects/{p}/members/carl"), json!({"role": "reader", "email": "not-mail"}), "email"),
        ("PUT", format!("/v1/projects/{p}/roles/reader"), json!({"permissions": ["fly"]}), "permissions[0]"),
        ("PUT", format!("/v1/projects/{p}/secrets/bad-name"), json!({"value": "v"}), "name"),
        ("POST", format!("/v1/projects/{p}/secrets/import"), json!({"key_id": "x", "prefix": "p"}), "key_id"),
        (
            "POST",
            format!("/v1/projects/{p}/secrets/import"),
            json!({"key_id": keygate::ids::KeyId::generate(), "prefix": "a-b"}),
            "prefix",
        ),
    ];
    for (method, path, body, want) in cases {
        let (status, problem) = call(&t.app, method, &path, Some(&story.owner), Some(body.clone())).await;
        assert_eq!((status, field(&problem)), (422, want), "{method} {path} {body}: {problem}");
    }
    for (query, want) in [
        ("from=2026-11-02&to=2026-11-01", "from"),
        ("from=2020-01-01&to=2026-01-01", "to"),
        ("from=soon", "from"),
        ("limit=0", "limit"),
        ("cursor=%%%", "cursor"),
    ] {
        let (status, problem) =
            call(&t.app, "GET", &format!("/v1/projects/{p}/keys?{query}"), Some(&story.owner), None).await;
        assert_eq!((status, field(&problem)), (422, want), "{query}: {problem}");
    }
    for (query, want) in [
        ("format=xml", "format"),
        ("granularity=week", "granularity"),
        ("granularity=hour&from=2026-01-01&to=2026-03-01", "to"),
        ("limit=51", "limit"),
        ("cursor=%%%", "cursor"),
    ] {
        let path = format!("/v1/projects/{p}/usage/export?{query}");
        let (status, problem) = call(&t.app, "GET", &path, Some(&story.owner), None).await;
        assert_eq!((status, field(&problem)), (422, want), "{query}: {problem}");
    }
}

#[tokio::test]
async fn stale_template_edits_are_refused() {
    let t = TestApp::new();
    let story = pending_request(&t.app).await;
    let path = format!("/v1/projects/{}/templates/{}", story.project, story.template);
    let (status, edited) =
        call(&t.app, "PATCH", &path, Some(&story.owner), Some(json!({"price_per_request": 9, "version": 1}))).await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(edited["version"], 2);
    let (status, _) =
        call(&t.app, "PATCH", &path, Some(&story.owner), Some(json!({"price_per_request": 10, "version": 1}))).await;
    assert_eq!(status, 409, "an edit made on version 1 after version 2 exists");
}

/// Every operation that mails says so in the route table: called as its Lambda function runs
/// it (with a mailer only if its row asks for one), each step's mail goes out at once and
/// nothing is left in the outbox for the retry.
#[tokio::test]
async fn each_mail_goes_out_from_the_function_whose_row_asks_for_a_mailer() {
    use keygate::store::{Query, layout};
    let t = TestApp::new();
    let story = pending_request(&t.app).await;
    let (p, tpl) = (story.project.as_str(), story.template.as_str());
    let outbox =
        || async { t.app.store.query(&Query::prefix(layout::OUTBOX_PK, "").limit(10)).await.unwrap().items.len() };
    let mut mailed = t.mailer.sent().len();
    let mut step = async |method: &str, path: String, caller: &keygate::identity::Caller, body: Option<Value>| {
        let (status, answer) = call(&t.app, method, &path, Some(caller), body).await;
        assert!(status < 300, "{method} {path}: {status} {answer}");
        assert_eq!(outbox().await, 0, "{method} {path} left mail in the outbox");
        let sent = t.mailer.sent().len();
        assert!(sent > mailed, "{method} {path} sent no mail");
        mailed = sent;
        answer
    };
    let approved =
        step("POST", format!("/v1/projects/{p}/requests/{}/approve", story.request), &story.owner, None).await;
    let key = approved["key"]["id"].as_str().unwrap().to_owned();
    step("DELETE", format!("/v1/projects/{p}/keys/{key}"), &story.owner, None).await;
    let requested = step("POST", format!("/v1/projects/{p}/templates/{tpl}/requests"), &story.holder, None).await;
    let request = requested["request"]["id"].as_str().unwrap().to_owned();
    step("POST", format!("/v1/projects/{p}/requests/{request}/reject"), &story.owner, Some(json!({"reason": "no"})))
        .await;
    let requested = step("POST", format!("/v1/projects/{p}/templates/{tpl}/requests"), &story.holder, None).await;
    let request = requested["request"]["id"].as_str().unwrap().to_owned();
    step("POST", format!("/v1/projects/{p}/requests/{request}/approve"), &story.owner, None).await;
    // Deleting the template revokes the key, and its holder is told.
    step("DELETE", format!("/v1/projects/{p}/templates/{tpl}?revoke_keys=true"), &story.owner, None).await;
}
