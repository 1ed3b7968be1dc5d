//! A key describes itself (issue 33, `GET /v1/key`), on SQLite and on DynamoDB: asked with the
//! key alone, it answers its state as the authorizer would decide it (active, in a reroll's
//! grace, rerolled past it, quota spent, revoked), its permissions, quota and generation, and
//! when it works again; a token keygate did not sign learns nothing. Over HTTP, through
//! `keygate-local`, the answer and the refusals are the API's.

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use keygate::error::Error;
use keygate::service::{KeyState, RerollInput};
use keygate::signing::KeyRing;
use keygate::store::Store;
use keygate::store::sqlite::SqliteStore;
use keygate::testing::TestApp;
use keygate_tests::{LocalGateway, aws, require_aws, story};
use serde_json::{Value, json};

/// Changes the last character of a token's signature.
fn forged(token: &str) -> String {
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let mut signature = signature.to_owned();
    let last = if signature.ends_with('A') { "B" } else { "A" };
    signature.replace_range(signature.len() - 1.., last);
    format!("{signed}.{signature}")
}

async fn a_key_describes_itself_in_every_state(store: Arc<dyn Store>) {
    let TestApp { app, authorizer, clock, .. } = TestApp::on(store);
    clock.set(Utc.with_ymd_and_hms(2026, 12, 4, 9, 0, 0).unwrap());
    let s = story::pending_request(&app).await;
    story::limit_template(&app, &s, json!({"quota": {"requests": 3, "per": "day"}})).await;
    let key = app.approve(&s.owner, &s.project, &s.request).await.unwrap().key;
    let first = app.my_key_token(&s.holder, &key.id).await.unwrap().token.expose().to_owned();

    let active = app.describe_key(&first).await.unwrap();
    assert_eq!((active.state, active.works), (KeyState::Active, true), "{active:?}");
    assert_eq!((active.key_id.as_str(), active.project_id.as_str()), (key.id.as_str(), s.project.as_str()));
    let permissions = serde_json::to_value(active.permissions).unwrap();
    assert_eq!(permissions, json!(["project_view", "package_view"]));
    let quota = active.quota.as_ref().expect("the template's quota");
    assert_eq!((quota.requests, quota.used, quota.own), (3, 0, false));
    assert_eq!(quota.resets_at, Utc.with_ymd_and_hms(2026, 12, 5, 0, 0, 0).unwrap());

    // Rerolled with a minute of grace: the old token works until then, and says so.
    app.reroll(&s.holder, &s.project, &key.id, RerollInput { grace_seconds: Some(60) }).await.unwrap();
    let second = app.my_key_token(&s.holder, &key.id).await.unwrap().token.expose().to_owned();
    let old = app.describe_key(&first).await.unwrap();
    assert_eq!((old.state, old.works, old.token_generation, old.generation), (KeyState::InGrace, true, 0, 1));
    assert!(old.detail.contains("works until"), "{}", old.detail);
    let new = app.describe_key(&second).await.unwrap();
    assert_eq!((new.state, new.token_generation), (KeyState::Active, 1));
    clock.set(app.now() + Duration::seconds(61));
    let past = app.describe_key(&first).await.unwrap();
    assert_eq!((past.state, past.works), (KeyState::Rerolled, false), "{past:?}");

    // The quota spent: refused by the platform, answered here with when it works again.
    let path = format!("/api/projects/{}/data_layers/last", s.project);
    let bearer = format!("Bearer {second}");
    for _ in 0..3 {
        authorizer.authorize(&http::Method::GET, &path, Some(&bearer)).await.expect("within the quota");
    }
    assert!(authorizer.authorize(&http::Method::GET, &path, Some(&bearer)).await.is_err());
    let spent = app.describe_key(&second).await.unwrap();
    assert_eq!((spent.state, spent.works), (KeyState::QuotaSpent, false), "{spent:?}");
    assert_eq!(spent.works_again_at, Some(Utc.with_ymd_and_hms(2026, 12, 5, 0, 0, 0).unwrap()));
    assert_eq!(spent.quota.as_ref().map(|q| q.used), Some(3), "asking is not counted against the quota");
    assert!(spent.detail.contains("works again at 2026-12-05T00:00:00Z"), "{}", spent.detail);

    app.revoke(&s.owner, &s.project, &key.id).await.unwrap();
    let revoked = app.describe_key(&second).await.unwrap();
    assert_eq!((revoked.state, revoked.works), (KeyState::Revoked, false), "{revoked:?}");

    // A forged token, and one of another deployment's key, learn nothing: the same words.
    let other = KeyRing::new(keygate::testing::ISSUER, &KeyRing::generate_pem(), &[]).unwrap();
    let claims = other.verify_signature(&second).err();
    assert!(claims.is_some(), "another deployment's ring does not verify ours");
    for token in [forged(&second), "not.a.token".to_owned()] {
        match app.describe_key(&token).await {
            Err(Error::Unauthenticated(words)) => {
                assert_eq!(words, "the bearer token is not a key issued by this keygate")
            }
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn a_key_describes_itself_on_sqlite() {
    a_key_describes_itself_in_every_state(Arc::new(SqliteStore::in_memory().unwrap())).await;
}

#[tokio::test]
async fn a_key_describes_itself_on_dynamodb() {
    let Some(endpoint) = require_aws!() else { return };
    a_key_describes_itself_in_every_state(Arc::new(aws::store(&endpoint, "key-self").await)).await;
}

/// Over HTTP: `GET /v1/key` with the key alone; without one, or with a forged one, a 401
/// problem that names what to send and nothing of the key.
#[tokio::test]
async fn a_key_describes_itself_over_http() {
    let gateway = LocalGateway::start(&[]);
    let (ann, bob) = (gateway.token("ann"), gateway.token("bob"));
    let template = json!({"name": "Forecast API", "role": "reader", "price_per_request": 3});
    let (p, t) = gateway.project_with_template(&ann, "Weather", ("reader", &["project_view"]), template).await;
    let (key, token) = gateway.issue_key(&ann, &bob, &p, &t).await;
    let ask = |authorization: Option<String>| {
        let mut request = gateway.http.get(format!("{}/v1/key", gateway.url));
        if let Some(a) = authorization {
            request = request.header("authorization", a);
        }
        request.send()
    };
    let answer = ask(Some(format!("Bearer {token}"))).await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["cache-control"], "no-store");
    let body: Value = answer.json().await.unwrap();
    assert_eq!(
        (&body["key_id"], &body["state"], &body["works"]),
        (&key["id"], &json!("active"), &json!(true)),
        "{body}"
    );
    assert_eq!(body["permissions"], json!(["project_view"]));
    for (authorization, words) in [
        (None, "send the API key as Authorization: Bearer <key>"),
        (Some(format!("Bearer {}", forged(&token))), "the bearer token is not a key issued by this keygate"),
    ] {
        let refused = ask(authorization).await.unwrap();
        assert_eq!(refused.status(), 401);
        assert_eq!(refused.headers()["content-type"], "application/problem+json");
        let problem: Value = refused.json().await.unwrap();
        assert_eq!(problem["detail"], words);
        assert!(!problem.to_string().contains(&token[token.len() - 20..]), "the token is not echoed");
    }
    gateway.assert_no_secrets_logged(&[&token]);
}
