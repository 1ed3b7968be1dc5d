//! A leaked key answered (issue 23), on any store: a reroll with a grace period that updates
//! every imported secret, signed leak reports acted on once, and one key's own limits and
//! top-ups, exact under concurrency.

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use http::Method;
use keygate::App;
use keygate::authorizer::{Authorizer, Denial, Limit};
use keygate::identity::Caller;
use keygate::ids::{KeyId, ProjectId};
use keygate::key::{IssuedKey, KeyStatus};
use keygate::service::RerollInput;
use keygate::store::layout;
use keygate::testing::{Scanner, TestApp, call_with};
use serde_json::{Value, json};

use crate::story::{PRICE, Story, limit_template, pending_request};

/// A key issued on a new story, imported by its holder into two client projects of theirs.
struct Imported {
    story: Story,
    key: KeyId,
    token: String,
    read: String,
    clients: [ProjectId; 2],
}

async fn imported(app: &App) -> Imported {
    let story = pending_request(app).await;
    let key = app.approve(&story.owner, &story.project, &story.request).await.unwrap().key.id;
    let token = app.my_key_token(&story.holder, &key).await.unwrap().token.expose().to_owned();
    let clients = crate::story::import_into_new_projects(app, &story.holder, &key, &["Lab", "Notebooks"]).await;
    let read = format!("/api/projects/{}/data_layers/last", story.project);
    let clients = clients.try_into().unwrap();
    Imported { story, key, token, read, clients }
}

async fn allowed(authorizer: &Authorizer, path: &str, token: &str) -> Result<(), Denial> {
    authorizer.authorize(&Method::GET, path, Some(&format!("Bearer {token}"))).await.map(|_| ())
}

/// The value of the imported token secret in `client`.
async fn imported_token(app: &App, holder: &Caller, client: &ProjectId) -> String {
    let secrets = app.list_secrets(holder, client, true, &Default::default()).await.unwrap();
    let token = secrets.items.iter().find(|s| s.name.as_str() == "forecast_token").expect("the token's secret");
    token.value.as_ref().unwrap().expose().to_owned()
}

async fn stored_key(app: &App, project: &ProjectId, key: &KeyId) -> (IssuedKey, String) {
    let item = app.store.get(&layout::key(project, key)).await.unwrap().expect("the key's record");
    (serde_json::from_str(&item.body).unwrap(), item.body)
}

/// Old and new tokens both work inside the grace period, only the new one after it; every
/// imported secret holds the new token; `exp`, template, data layer and usage stay; no token is
/// stored in the key's record, its audit event or its mail.
pub async fn a_reroll_keeps_the_old_token_for_its_grace_period(t: TestApp) {
    let TestApp { app, authorizer, clock, mailer } = t;
    let start = Utc.with_ymd_and_hms(2026, 12, 3, 9, 0, 0).unwrap();
    clock.set(start);
    let k = imported(&app).await;
    let s = &k.story;
    for _ in 0..2 {
        allowed(&authorizer, &k.read, &k.token).await.unwrap();
    }
    let (before, _) = stored_key(&app, &s.project, &k.key).await;

    let too_long = RerollInput { grace_seconds: Some(8 * 86_400) };
    assert_eq!(app.reroll(&s.holder, &s.project, &k.key, too_long).await.unwrap_err().status(), 422);
    let reroll = app.reroll(&s.holder, &s.project, &k.key, RerollInput { grace_seconds: Some(3600) }).await.unwrap();
    let new = reroll.token.as_ref().expect("the holder is given the new token").expose().to_owned();
    assert_ne!(new, k.token);
    assert_eq!(reroll.secrets.len(), 2, "both imports updated");
    for client in &k.clients {
        assert_eq!(
            imported_token(&app, &s.holder, client).await,
            new,
            "the client project's secret holds the new token"
        );
    }
    let (after, body) = stored_key(&app, &s.project, &k.key).await;
    assert_eq!((after.generation, after.expires_at, after.issued_at), (1, before.expires_at, before.issued_at));
    assert_eq!((&after.template_id, &after.data_layer_id), (&before.template_id, &before.data_layer_id));
    assert_eq!(after.previous_until, Some(start + Duration::hours(1)));
    assert!(!body.contains(&new) && !body.contains(&k.token), "no token at rest in the key's record");
    let audit = app.list_audit(&s.owner, &s.project, &Default::default()).await.unwrap();
    let event = audit.items.iter().find(|e| e.action == keygate::audit::AuditAction::KeyRerolled).unwrap();
    assert_eq!((event.actor.as_str(), event.detail["grace_seconds"].as_i64()), (s.holder.id.as_str(), Some(3600)));
    assert!(!serde_json::to_string(&audit.items).unwrap().contains(&new));

    // Inside the grace period both work; after it only the new one, the old refused as `rerolled`.
    clock.set(start + Duration::minutes(59));
    allowed(&authorizer, &k.read, &k.token).await.unwrap();
    allowed(&authorizer, &k.read, &new).await.unwrap();
    clock.set(start + Duration::hours(1));
    assert_eq!(allowed(&authorizer, &k.read, &k.token).await, Err(Denial::Rerolled));
    allowed(&authorizer, &k.read, &new).await.unwrap();
    let refused = authorizer.authorize(&Method::GET, &k.read, Some(&format!("Bearer {}", k.token))).await.unwrap_err();
    assert!(refused.problem()["detail"].as_str().unwrap().contains("copy the new token"), "told why, in words");

    // One key all along: its usage history and its counters carry over.
    authorizer.flush_refusals().await;
    let period = keygate::usage::Period::parse(Some("2026-12-03"), Some("2026-12-04"), start, 366).unwrap();
    let rows = app.list_issued_keys(&s.owner, &s.project, period, &Default::default()).await.unwrap();
    assert_eq!(rows.items.len(), 1);
    assert_eq!((rows.items[0].requests, rows.items[0].cost), (5, 5 * PRICE));
    assert_eq!((rows.items[0].refused.rerolled, rows.items[0].refused.total()), (2, 2));

    // The holder and the owner are told, with when the old token stops; no mail holds a token.
    clock.set(start + Duration::hours(1) + Duration::minutes(1));
    app.retry_pending().await.unwrap();
    let told: Vec<_> = mailer.sent().into_iter().filter(|m| m.subject.contains("has a new token")).collect();
    let mut to: Vec<_> = told.iter().map(|m| m.to.clone()).collect();
    to.sort();
    assert_eq!(to, [s.owner.email.clone(), s.holder.email.clone()]);
    assert!(told.iter().all(|m| m.text.contains("2026-12-03T10:00:00Z") && m.text.contains("2 secrets")));
    assert!(mailer.sent().iter().all(|m| !m.text.contains(&new) && !m.text.contains(&k.token)));

    // The owner may reroll too, with no grace: the previous token stops at once, and the
    // owner is not handed the holder's token.
    let by_owner = app.reroll(&s.owner, &s.project, &k.key, RerollInput { grace_seconds: Some(0) }).await.unwrap();
    assert!(by_owner.token.is_none());
    assert_eq!(allowed(&authorizer, &k.read, &new).await, Err(Denial::Rerolled));
    let newest = imported_token(&app, &s.holder, &k.clients[0]).await;
    allowed(&authorizer, &k.read, &newest).await.unwrap();
    assert_eq!(app.my_key_token(&s.holder, &k.key).await.unwrap().token.expose(), newest);

    // A secret the holder changed by hand is left alone; a revoked key is not rerolled.
    let own = keygate::secret::SecretInput {
        description: String::new(),
        value: keygate::secret::SecretValue::new("mine"),
        nodes: vec![],
    };
    let name = keygate::ids::SecretName::parse("forecast_token").unwrap();
    app.put_secret(&s.holder, &k.clients[1], name, own).await.unwrap();
    let third = app.reroll(&s.holder, &s.project, &k.key, RerollInput::default()).await.unwrap();
    assert_eq!(third.secrets.len(), 1);
    assert_eq!(imported_token(&app, &s.holder, &k.clients[1]).await, "mine");
    app.revoke(&s.owner, &s.project, &k.key).await.unwrap();
    assert_eq!(app.reroll(&s.holder, &s.project, &k.key, RerollInput::default()).await.unwrap_err().status(), 409);
}

fn report(token: &str, url: &str) -> String {
    json!([{"token": token, "type": "keygate_api_key", "url": url, "source": "content"}]).to_string()
}

async fn send_report(app: &App, scanner: &Scanner, body: &str) -> (u16, Value) {
    let response =
        call_with(app, "POST", "/v1/leaks/github", None, &scanner.headers(body), Some(body.to_owned())).await;
    let status = response.status().as_u16();
    let value = match response.body() {
        lambda_http::Body::Text(t) => serde_json::from_str(t).unwrap(),
        _ => Value::Null,
    };
    (status, value)
}

/// A signed report of a key's token rerolls it with no grace period (the default), revokes
/// it, or only tells, as its template says; each once. A badly signed report is refused and
/// changes nothing; a token that is not keygate's changes nothing and is answered alike.
pub async fn a_signed_leak_report_acts_once(t: TestApp) {
    let TestApp { mut app, authorizer, clock, mailer } = t;
    let scanner = Scanner::new();
    app.settings.scanning = scanner.keys();
    let start = Utc.with_ymd_and_hms(2026, 12, 3, 9, 0, 0).unwrap();
    clock.set(start);
    let app = Arc::new(app);
    let k = imported(&app).await;
    let s = &k.story;
    let url = "https://github.com/bob/notebooks/blob/main/run.py";
    let body = report(&k.token, url);

    // Badly signed: another key, another body, no signature.
    let stranger = Scanner::new();
    let headers = stranger.headers(&body);
    let r = call_with(&app, "POST", "/v1/leaks/github", None, &headers, Some(body.clone())).await;
    assert_eq!(r.status(), 401);
    let mut tampered = scanner.headers(&body);
    tampered[1].1 = scanner.headers(&report(&k.token, "https://elsewhere"))[1].1.clone();
    assert_eq!(call_with(&app, "POST", "/v1/leaks/github", None, &tampered, Some(body.clone())).await.status(), 401);
    let unsigned = call_with(&app, "POST", "/v1/leaks/github", None, &[], Some(body.clone())).await;
    assert_eq!(unsigned.status(), 401);
    let problem = match unsigned.body() {
        lambda_http::Body::Text(t) => t.clone(),
        _ => String::new(),
    };
    assert!(problem.contains("no Github-Public-Key-Identifier header") && !problem.contains(&k.token), "{problem}");
    assert_eq!(stored_key(&app, &s.project, &k.key).await.0.generation, 0, "nothing changed");
    allowed(&authorizer, &k.read, &k.token).await.unwrap();

    // Signed: rerolled at once, the imports updated, both people told where it was found.
    let (status, answer) = send_report(&app, &scanner, &body).await;
    assert_eq!(status, 200);
    assert_eq!(answer[0]["label"], "true_positive");
    assert_eq!(answer[0]["token_hash"], keygate::scanning::token_hash(&k.token));
    assert_eq!(answer[0]["token_type"], "keygate_api_key");
    let (key, _) = stored_key(&app, &s.project, &k.key).await;
    assert_eq!((key.generation, key.status, key.previous_until), (1, KeyStatus::Active, None));
    assert_eq!(key.leak.as_ref().map(|l| l.url.as_str()), Some(url));
    assert_eq!(allowed(&authorizer, &k.read, &k.token).await, Err(Denial::Rerolled), "no grace for a leaked token");
    let new = imported_token(&app, &s.holder, &k.clients[0]).await;
    assert_ne!(new, k.token);
    allowed(&authorizer, &k.read, &new).await.unwrap();
    app.retry_pending().await.unwrap();
    let told = |mailer: &keygate::testing::RecordingMailer| {
        mailer.sent().into_iter().filter(|m| m.subject.contains("found in public")).collect::<Vec<_>>()
    };
    assert_eq!(told(&mailer).len(), 2, "the holder and the owner");
    assert!(told(&mailer).iter().all(|m| m.text.contains(url) && !m.text.contains(&k.token)));
    let audit = app.list_audit(&s.owner, &s.project, &Default::default()).await.unwrap();
    let reported: Vec<_> =
        audit.items.iter().filter(|e| e.action == keygate::audit::AuditAction::KeyLeakReported).collect();
    assert_eq!(reported.len(), 1);
    assert_eq!(reported[0].detail["url"], url);

    // The same report again does nothing: the token no longer works.
    let (status, again) = send_report(&app, &scanner, &body).await;
    assert_eq!((status, again[0]["label"].as_str()), (200, Some("false_positive")));
    assert_eq!(stored_key(&app, &s.project, &k.key).await.0.generation, 1);
    app.retry_pending().await.unwrap();
    assert_eq!(told(&mailer).len(), 2);

    // Tokens that are not keygate's, or forged, change nothing and get the same answer's shape.
    for token in ["ghp_notours", crate::refusals::forged_token(&s.project).as_str()] {
        let (status, answer) = send_report(&app, &scanner, &report(token, url)).await;
        assert_eq!((status, answer[0]["label"].as_str()), (200, Some("false_positive")));
        assert_eq!(answer[0].as_object().unwrap().len(), 3);
    }

    // `on_leak: notify` tells once and changes nothing; `revoke` revokes.
    for (on_leak, expect_status) in [("notify", KeyStatus::Active), ("revoke", KeyStatus::Revoked)] {
        let k = imported(&app).await;
        limit_template(&app, &k.story, json!({"on_leak": on_leak})).await;
        let body = report(&k.token, url);
        let mut labels = Vec::new();
        for _ in 0..2 {
            let (status, answer) = send_report(&app, &scanner, &body).await;
            assert_eq!(status, 200);
            labels.push(answer[0]["label"].as_str().unwrap().to_owned());
        }
        // A token that still works is a true positive; a revoked one no longer is.
        let second = if expect_status == KeyStatus::Active { "true_positive" } else { "false_positive" };
        assert_eq!(labels, ["true_positive", second], "{on_leak}");
        let (key, _) = stored_key(&app, &k.story.project, &k.key).await;
        assert_eq!((key.status, key.generation), (expect_status, 0), "{on_leak}");
        let events = app.list_audit(&k.story.owner, &k.story.project, &Default::default()).await.unwrap();
        let reports = events.items.iter().filter(|e| e.action == keygate::audit::AuditAction::KeyLeakReported).count();
        assert_eq!(reports, 1, "{on_leak}: acted on once");
        let works = allowed(&authorizer, &k.read, &k.token).await;
        assert_eq!(works.is_ok(), expect_status == KeyStatus::Active, "{on_leak}: {works:?}");
    }
}

/// The owner raises one key's quota over its template's, then tops it up for the day: under
/// 200 concurrent calls each time, exactly the calls allowed pass, each counted once; the holder
/// sees the override; a slower rate for one key applies to that key alone.
pub async fn an_override_and_a_top_up_are_exact_under_concurrency(t: TestApp) {
    let TestApp { app, authorizer, clock, .. } = t;
    let day = Utc.with_ymd_and_hms(2026, 12, 3, 9, 0, 0).unwrap();
    clock.set(day);
    let story = pending_request(&app).await;
    limit_template(&app, &story, json!({"quota": {"requests": 100, "per": "day"}})).await;
    let key = app.approve(&story.owner, &story.project, &story.request).await.unwrap().key.id;
    let token = app.my_key_token(&story.holder, &key).await.unwrap().token.expose().to_owned();
    let read = format!("/api/projects/{}/data_layers/last", story.project);
    let authorizer = Arc::new(authorizer);
    let burst = |n: usize| {
        let (authorizer, read, token) = (authorizer.clone(), read.clone(), token.clone());
        async move {
            let tasks = (0..n).map(|_| {
                let (authorizer, read, token) = (authorizer.clone(), read.clone(), token.clone());
                tokio::spawn(async move { allowed(&authorizer, &read, &token).await })
            });
            let mut ok = 0;
            for verdict in futures_util::future::join_all(tasks).await {
                match verdict.unwrap() {
                    Ok(()) => ok += 1,
                    Err(Denial::Limited(l)) => assert!(matches!(l.limit, Limit::Quota { .. }), "{l:?}"),
                    Err(other) => panic!("only the quota may refuse: {other:?}"),
                }
            }
            ok
        }
    };
    assert_eq!(burst(30).await, 30);
    let patch = |v: Value| serde_json::from_value::<keygate::key::LimitsPatch>(v).unwrap();
    let (holder, owner, p) = (&story.holder, &story.owner, &story.project);
    assert_eq!(app.set_key_limits(holder, p, &key, patch(json!({"top_up": 5}))).await.unwrap_err().status(), 403);
    let raised = app.set_key_limits(owner, p, &key, patch(json!({"quota": {"requests": 150, "per": "day"}}))).await;
    assert_eq!(raised.unwrap().limits.quota.map(|q| q.requests), Some(150));
    assert_eq!(burst(200).await, 120, "150 today, of which 30 were used under the template's quota");
    app.set_key_limits(owner, p, &key, patch(json!({"top_up": 30}))).await.unwrap();
    assert_eq!(burst(200).await, 30, "the top-up, exactly");
    let e = app.set_key_limits(owner, p, &key, patch(json!({"top_up": 0}))).await.unwrap_err();
    assert_eq!(e.status(), 422);

    let today = keygate::usage::Period::parse(Some("2026-12-03"), Some("2026-12-04"), day, 366).unwrap();
    let rows = app.list_issued_keys(owner, p, today, &Default::default()).await.unwrap();
    assert_eq!((rows.items[0].requests, rows.items[0].cost), (180, 180 * PRICE), "every allowed call metered once");
    let quota = rows.items[0].quota.clone().unwrap();
    assert_eq!((quota.requests, quota.top_up, quota.used, quota.own), (150, 30, 180, true));
    let mine = app.my_keys(holder, &Default::default()).await.unwrap();
    let mine = &mine.items[0];
    assert_eq!(mine.key.limits.quota.map(|q| q.requests), Some(150), "the holder sees the override");
    assert_eq!(mine.quota.as_ref().map(|q| q.top_up), Some(30));

    // The top-up ends with its day; the raised quota stays.
    clock.set(day + Duration::days(1));
    assert_eq!(burst(200).await, 150);

    // A slower rate for this key alone.
    clock.set(day + Duration::days(2));
    app.set_key_limits(owner, p, &key, patch(json!({"rate_limit": {"per_second": 1, "burst": 2}}))).await.unwrap();
    let mut outcomes = Vec::new();
    for _ in 0..4 {
        outcomes.push(allowed(&authorizer, &read, &token).await.map_err(|d| d.outcome()));
    }
    assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 2, "{outcomes:?}");
    assert!(outcomes.contains(&Err("rate_limit")));
    let back = app.set_key_limits(owner, p, &key, patch(json!({"quota": null, "rate_limit": null}))).await.unwrap();
    assert!(back.limits.is_empty(), "back to the template's limits: {:?}", back.limits);
}
