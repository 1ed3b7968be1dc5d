//! Narrowed tokens (issue 33), on SQLite and on DynamoDB: minted from a key with the key itself
//! or by its holder signed in, allowed for the permissions and nodes they keep and refused
//! (`permission`) outside them, refused after their lifetime, after their key's revocation and
//! after the key's reroll grace, and revoked one by one; they never widen their key; their calls
//! are the key's (usage, quota, cost, export) under their label; 100 live per key. The forged
//! classes of the hardening tests, applied to them. Over HTTP, through `keygate-local`, the
//! routes answer as the API document says.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{Duration, TimeZone, Utc};
use http::Method;
use keygate::authorizer::{Authorizer, Denial, NarrowedOut};
use keygate::narrowed::{MAX_LIVE, MintInput};
use keygate::service::{ExportFormat, KeyState, PageRequest, RerollInput};
use keygate::store::Store;
use keygate::store::sqlite::SqliteStore;
use keygate::testing::TestApp;
use keygate::usage::{Granularity, Period};
use keygate_tests::{LocalGateway, aws, require_aws, story};
use serde_json::{Value, json};

fn mint(json: Value) -> MintInput {
    serde_json::from_value(json).unwrap()
}

async fn call(authorizer: &Authorizer, project: &str, path: &str, token: &str) -> Result<String, Denial> {
    let path = format!("/api/projects/{project}/{path}");
    authorizer.authorize(&Method::GET, &path, Some(&format!("Bearer {token}"))).await.map(|c| c.key_id.to_string())
}

/// The token with its payload changed by `edit` and its signature kept.
fn edited(token: &str, edit: impl FnOnce(&mut Value)) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut payload: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
    edit(&mut payload);
    parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&payload).unwrap());
    parts.join(".")
}

async fn narrowed_tokens_keep_their_promises(store: Arc<dyn Store>) {
    let TestApp { app, authorizer, clock, .. } = TestApp::on(store);
    clock.set(Utc.with_ymd_and_hms(2026, 12, 5, 9, 0, 0).unwrap());
    let s = story::pending_request(&app).await;
    story::limit_template(&app, &s, json!({"quota": {"requests": 50, "per": "day"}})).await;
    let key = app.approve(&s.owner, &s.project, &s.request).await.unwrap().key;
    let p = s.project.to_string();
    let full = app.my_key_token(&s.holder, &key.id).await.unwrap().token.expose().to_owned();

    // Minted with the key itself: package_view only, node "in" only, for an hour.
    let input = json!({"label": "ci", "ttl_seconds": 3600, "permissions": ["package_view"], "nodes": ["in"]});
    let ci = app.mint_with_key(&full, mint(input)).await.unwrap();
    assert_eq!(ci.narrowed.expires_at, app.now() + Duration::hours(1));
    let ci_token = ci.token.expose().to_owned();
    assert_eq!(
        call(&authorizer, &p, "nodes/in/packages", &ci_token).await,
        Ok(key.id.to_string()),
        "counted as its key"
    );
    assert_eq!(
        call(&authorizer, &p, "data_layers/last", &ci_token).await,
        Err(Denial::Narrowed(NarrowedOut::Permission(keygate::permission::Permission::ProjectView))),
        "a permission of the role it did not keep"
    );
    assert_eq!(call(&authorizer, &p, "nodes/out/packages", &ci_token).await, Err(Denial::Narrowed(NarrowedOut::Node)));
    assert_eq!(call(&authorizer, &p, "nodes/IN/packages", &ci_token).await, Err(Denial::Narrowed(NarrowedOut::Node)));
    let refused = Denial::Narrowed(NarrowedOut::Node);
    assert_eq!((refused.outcome(), refused.status()), ("permission", 403));
    assert_eq!(call(&authorizer, &p, "data_layers/last", &full).await, Ok(key.id.to_string()), "the key keeps all");

    // It describes itself as narrowed, with what it keeps.
    let described = app.describe_key(&ci_token).await.unwrap();
    assert!(described.narrowed && described.works, "{described:?}");
    assert_eq!(serde_json::to_value(described.permissions).unwrap(), json!(["package_view"]));
    assert_eq!(described.token.as_ref().map(|t| t.label.as_str()), Some("ci"));

    // Never wider than its key, nor past the template's rules.
    for (input, field) in [
        (json!({"label": "x", "permissions": ["package_create"]}), "permissions"),
        (json!({"label": "x", "nodes": ["nowhere"]}), "nodes"),
        (json!({"label": "x", "ttl_seconds": 31 * 86400}), "ttl_seconds"),
        (json!({"label": "x", "ttl_seconds": 5}), "ttl_seconds"),
        (json!({"label": "no spaces"}), "label"),
    ] {
        let err = app.mint_with_key(&full, mint(input.clone())).await.unwrap_err();
        assert_eq!(err.status(), 422, "{input}: {err}");
        assert!(err.to_string().contains(field) || format!("{err:?}").contains(field), "{input}: {err:?}");
    }
    let err = app.mint_with_key(&ci_token, mint(json!({"label": "child"}))).await.unwrap_err();
    assert_eq!(err.status(), 403, "a narrowed token mints nothing: {err}");

    // Its calls are its key's: usage, quota and cost, and under its label.
    let period = Period { from: app.now() - Duration::hours(1), to: app.now() + Duration::hours(1) };
    let usage = app.key_usage(&s.owner, &s.project, &key.id, period, Granularity::Hour).await.unwrap();
    assert_eq!(usage.totals.requests, 2);
    assert_eq!(usage.quota.as_ref().map(|q| q.used), Some(2));
    let by_label = serde_json::to_value(&usage.by_label).unwrap();
    assert_eq!(by_label, json!([{"label": "ci", "requests": 1, "cost": story::PRICE}]));
    let export = app
        .export_usage(&s.owner, &s.project, period, Granularity::Day, ExportFormat::Jsonl, &PageRequest::default())
        .await
        .unwrap();
    let rows: Vec<Value> =
        String::from_utf8(export.body).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let split: Vec<(&str, i64)> =
        rows.iter().map(|r| (r["label"].as_str().unwrap(), r["requests"].as_i64().unwrap())).collect();
    assert_eq!(split, [("", 1), ("ci", 1)], "the key's own calls and the token's, summing to its calls: {rows:?}");

    // Its lifetime: refused once it is over.
    clock.set(app.now() + Duration::seconds(3601));
    let expired = call(&authorizer, &p, "nodes/in/packages", &ci_token).await.unwrap_err();
    assert_eq!(expired.outcome(), "expired");

    // Minted by the holder signed in, listed, revoked on its own: the key and the others live.
    let nightly = app.mint_for_holder(&s.holder, &key.id, mint(json!({"label": "nightly"}))).await.unwrap();
    let other = app.mint_for_holder(&s.holder, &key.id, mint(json!({"label": "other"}))).await.unwrap();
    let listed: Vec<String> =
        app.my_key_tokens(&s.holder, &key.id).await.unwrap().iter().map(|t| t.label.to_string()).collect();
    assert_eq!(listed.len(), 2, "the expired one is not listed: {listed:?}");
    let owner_sees = app.key_tokens(&s.owner, &s.project, &key.id).await.unwrap();
    assert_eq!(owner_sees.len(), 2, "the owner sees them on the key");
    // The owner revokes one from the key's page; someone outside the project cannot.
    let owners = app.mint_for_holder(&s.holder, &key.id, mint(json!({"label": "shared-notebook"}))).await.unwrap();
    let eve = keygate::testing::user("eve");
    let outsider = app.revoke_key_token(&eve, &s.project, &key.id, &owners.narrowed.id).await.unwrap_err();
    assert_eq!(outsider.status(), 404, "{outsider}");
    app.revoke_key_token(&s.owner, &s.project, &key.id, &owners.narrowed.id).await.unwrap();
    let refused = call(&authorizer, &p, "data_layers/last", owners.token.expose()).await.unwrap_err();
    assert_eq!(refused, Denial::TokenRevoked);
    app.revoke_my_key_token(&s.holder, &key.id, &nightly.narrowed.id).await.unwrap();
    let revoked = call(&authorizer, &p, "data_layers/last", nightly.token.expose()).await.unwrap_err();
    assert_eq!(
        (revoked, call(&authorizer, &p, "data_layers/last", other.token.expose()).await.is_ok()),
        (Denial::TokenRevoked, true)
    );
    assert_eq!(app.describe_key(nightly.token.expose()).await.unwrap().state, KeyState::Revoked);
    let again = app.revoke_my_key_token(&s.holder, &key.id, &nightly.narrowed.id).await.unwrap_err();
    assert_eq!(again.status(), 404);
    let stranger = app.mint_for_holder(&s.owner, &key.id, mint(json!({"label": "mine"}))).await.unwrap_err();
    assert_eq!(stranger.status(), 404, "only the holder mints from his key");

    // A reroll: its tokens live through the grace and die with the old generation after it;
    // the replaced token cannot mint one that would outlive its grace.
    app.reroll(&s.holder, &s.project, &key.id, RerollInput { grace_seconds: Some(60) }).await.unwrap();
    let err = app.mint_with_key(&full, mint(json!({"label": "late"}))).await.unwrap_err();
    assert_eq!(err.status(), 403, "{err}");
    assert!(call(&authorizer, &p, "data_layers/last", other.token.expose()).await.is_ok(), "in the grace");
    clock.set(app.now() + Duration::seconds(61));
    assert_eq!(call(&authorizer, &p, "data_layers/last", other.token.expose()).await, Err(Denial::Rerolled));
    // The hardening classes: a stale generation edited to the current one, a claim edited.
    let stale_to_current = edited(other.token.expose(), |c| c["gen"] = json!(1));
    assert_eq!(
        call(&authorizer, &p, "data_layers/last", &stale_to_current).await.unwrap_err().outcome(),
        "invalid_key"
    );
    let widened = edited(ci_token.as_str(), |c| c["nar"]["perm"] = json!(["project_view", "package_view"]));
    assert_eq!(call(&authorizer, &p, "data_layers/last", &widened).await.unwrap_err().outcome(), "invalid_key");
    let unnarrowed = edited(other.token.expose(), |c| {
        c.as_object_mut().unwrap().remove("nar");
    });
    assert_eq!(call(&authorizer, &p, "data_layers/last", &unnarrowed).await.unwrap_err().outcome(), "invalid_key");

    // A hundred live per key; the 101st is refused, and a revocation makes room.
    let current = app.my_key_token(&s.holder, &key.id).await.unwrap().token.expose().to_owned();
    let mut last = None;
    for i in 0..MAX_LIVE {
        let m = app.mint_with_key(&current, mint(json!({"label": format!("batch-{i}")}))).await;
        last = Some(m.unwrap_or_else(|e| panic!("token {i}: {e}")));
    }
    let over = app.mint_with_key(&current, mint(json!({"label": "one-more"}))).await.unwrap_err();
    assert_eq!(over.status(), 409, "{over}");
    assert!(over.to_string().contains("100 live narrowed tokens"), "{over}");
    let last = last.unwrap();
    app.revoke_my_key_token(&s.holder, &key.id, &last.narrowed.id).await.unwrap();
    let room = app.mint_with_key(&current, mint(json!({"label": "one-more"}))).await.unwrap();

    // The key revoked: every token of it refused.
    app.revoke(&s.owner, &s.project, &key.id).await.unwrap();
    assert_eq!(call(&authorizer, &p, "data_layers/last", room.token.expose()).await, Err(Denial::Revoked));

    // A token of another project's key, on this project's path: refused as another project's.
    let elsewhere = story::pending_request(&app).await;
    let their_key = app.approve(&elsewhere.owner, &elsewhere.project, &elsewhere.request).await.unwrap().key;
    let theirs = app.my_key_token(&elsewhere.holder, &their_key.id).await.unwrap().token.expose().to_owned();
    let their_child = app.mint_with_key(&theirs, mint(json!({"label": "ci"}))).await.unwrap();
    let refusal = call(&authorizer, &p, "data_layers/last", their_child.token.expose()).await.unwrap_err();
    assert_eq!(refusal.outcome(), "other_project");
    let moved = edited(their_child.token.expose(), |c| c["aud"] = json!(format!("project:{p}")));
    assert_eq!(call(&authorizer, &p, "data_layers/last", &moved).await.unwrap_err().outcome(), "invalid_key");
}

#[tokio::test]
async fn narrowed_tokens_on_sqlite() {
    narrowed_tokens_keep_their_promises(Arc::new(SqliteStore::in_memory().unwrap())).await;
}

#[tokio::test]
async fn narrowed_tokens_on_dynamodb() {
    let Some(endpoint) = require_aws!() else { return };
    narrowed_tokens_keep_their_promises(Arc::new(aws::store(&endpoint, "narrowed").await)).await;
}

/// A template's owner decides: no narrowed tokens at all, or a shorter longest lifetime.
#[tokio::test]
async fn the_template_decides_whether_and_how_long() {
    let TestApp { app, .. } = TestApp::on(Arc::new(SqliteStore::in_memory().unwrap()));
    let s = story::pending_request(&app).await;
    let key = app.approve(&s.owner, &s.project, &s.request).await.unwrap().key;
    let full = app.my_key_token(&s.holder, &key.id).await.unwrap().token.expose().to_owned();
    story::limit_template(&app, &s, json!({"narrowed_tokens": {"max_lifetime_seconds": 600}})).await;
    let short = app.mint_with_key(&full, mint(json!({"label": "ci"}))).await.unwrap();
    assert_eq!(short.narrowed.expires_at, app.now() + Duration::seconds(600), "the default, within the maximum");
    assert_eq!(
        app.mint_with_key(&full, mint(json!({"label": "ci", "ttl_seconds": 601}))).await.unwrap_err().status(),
        422
    );
    story::limit_template(&app, &s, json!({"narrowed_tokens": {"allowed": false}})).await;
    let err = app.mint_with_key(&full, mint(json!({"label": "ci"}))).await.unwrap_err();
    assert_eq!(err.status(), 403);
    assert!(err.to_string().contains("does not allow narrowed tokens"), "{err}");
}

/// Over HTTP: mint with the key, list, revoke; refusals as problem+json; no token in the logs
/// and none in any answer but the mint's.
#[tokio::test]
async fn narrowed_tokens_over_http() {
    let gateway = LocalGateway::start(&[]);
    let (ann, bob) = (gateway.token("ann"), gateway.token("bob"));
    let template = json!({"name": "Forecast API", "role": "reader", "price_per_request": 3});
    let (p, t) = gateway.project_with_template(&ann, "Weather", ("reader", &["project_view"]), template).await;
    let (key, token) = gateway.issue_key(&ann, &bob, &p, &t).await;
    let mint = gateway
        .http
        .post(format!("{}/v1/key/tokens", gateway.url))
        .header("authorization", format!("Bearer {token}"))
        .json(&json!({"label": "ci", "ttl_seconds": 3600}))
        .send()
        .await
        .unwrap();
    assert_eq!(mint.status(), 201);
    assert_eq!(mint.headers()["cache-control"], "no-store");
    let minted: Value = mint.json().await.unwrap();
    let child = minted["token"].as_str().unwrap().to_owned();
    assert_eq!(
        (&minted["label"], &minted["key_id"], &minted["minted_with"]),
        (&json!("ci"), &key["id"], &json!("key"))
    );

    let k = key["id"].as_str().unwrap();
    let (status, listed) = gateway.call("GET", &format!("/v1/me/keys/{k}/tokens"), Some(&bob), None).await;
    assert_eq!((status, listed["items"].as_array().map(Vec::len)), (200, Some(1)), "{listed}");
    assert!(!listed.to_string().contains(&child[child.len() - 20..]), "the list holds no token");
    let (status, owner_list) =
        gateway.call("GET", &format!("/v1/projects/{p}/keys/{k}/tokens"), Some(&ann), None).await;
    assert_eq!((status, owner_list["items"][0]["label"].as_str()), (200, Some("ci")));

    let (status, problem) = gateway
        .call(
            "POST",
            &format!("/v1/me/keys/{k}/tokens"),
            Some(&bob),
            Some(json!({"label": "x", "permissions": ["package_delete"]})),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    assert!(problem["errors"].to_string().contains("the key's role lacks package_delete"), "{problem}");

    let id = minted["id"].as_str().unwrap();
    let (status, _) = gateway.call("DELETE", &format!("/v1/me/keys/{k}/tokens/{id}"), Some(&bob), None).await;
    assert_eq!(status, 200);
    let described: Value = gateway
        .http
        .get(format!("{}/v1/key", gateway.url))
        .header("authorization", format!("Bearer {child}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((&described["state"], &described["narrowed"]), (&json!("revoked"), &json!(true)), "{described}");
    gateway.assert_no_secrets_logged(&[&token, &child]);
}
