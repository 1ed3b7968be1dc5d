//! Refused calls, counted (issue 22), on any store: each outcome once per call against its key,
//! tokens that name no key per existing project only, a flood of refusals at a bounded number
//! of writes, and the holder's expiry notices.

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use futures_util::StreamExt;
use http::Method;
use keygate::App;
use keygate::authorizer::{Authorizer, Counting, Denial};
use keygate::ids::{KeyId, ProjectId};
use keygate::signing::{KeyClaims, audience};
use keygate::store::{Query, Store, layout};
use keygate::testing::{CountingStore, TestApp};
use keygate::usage::{Granularity, Period, Refusals};

use crate::story::{PRICE, Story, limit_template, pending_request};

/// A token for `project` that keygate did not sign (a key ring of the attacker's own).
pub fn forged_token(project: &ProjectId) -> String {
    let attacker =
        keygate::signing::KeyRing::new(keygate::testing::ISSUER, &keygate::signing::KeyRing::generate_pem(), &[])
            .unwrap();
    let claims = KeyClaims {
        iss: keygate::testing::ISSUER.into(),
        sub: "mallory".into(),
        aud: audience(project),
        jti: KeyId::generate().to_string(),
        iat: Utc::now().timestamp(),
        exp: None,
        nbf: None,
        tpl: keygate::ids::TemplateId::generate().to_string(),
        generation: 0,
        narrowed: None,
    };
    attacker.sign(&claims).unwrap().expose().to_owned()
}

/// A key issued on a new story, its bearer header and the platform path it may read.
struct Issued {
    story: Story,
    key: KeyId,
    bearer: String,
    read: String,
}

async fn issued(app: &App, limits: serde_json::Value) -> Issued {
    let story = pending_request(app).await;
    if limits.as_object().is_some_and(|l| !l.is_empty()) {
        limit_template(app, &story, limits).await;
    }
    let key = app.approve(&story.owner, &story.project, &story.request).await.unwrap().key.id;
    let bearer = format!("Bearer {}", app.my_key_token(&story.holder, &key).await.unwrap().token.expose());
    let read = format!("/api/projects/{}/data_layers/last", story.project);
    Issued { story, key, bearer, read }
}

/// A token for `key` signed by `app`'s key ring with claims of the test's choosing.
async fn signed(app: &App, issued: &Issued, change: impl FnOnce(&mut KeyClaims)) -> String {
    let key = app.my_keys(&issued.story.holder, &Default::default()).await.unwrap();
    let key = key.items.into_iter().find(|k| k.key.id == issued.key).unwrap().key;
    let mut claims = KeyClaims {
        iss: app.keys.issuer().to_owned(),
        sub: key.user_id.to_string(),
        aud: audience(&key.project_id),
        jti: key.id.to_string(),
        iat: key.issued_at.timestamp(),
        exp: key.expires_at.map(|t| t.timestamp()),
        nbf: None,
        tpl: key.template_id.to_string(),
        generation: 0,
        narrowed: None,
    };
    change(&mut claims);
    format!("Bearer {}", app.keys.sign(&claims).unwrap().expose())
}

fn today(app: &App) -> Period {
    let now = app.now();
    Period { from: now - Duration::hours(1), to: now + Duration::hours(1) }
}

/// The key's refusals today, as the owner's issued-keys page, the key's usage series and the
/// holder's My keys each show them.
async fn shown(app: &App, issued: &Issued) -> Refusals {
    let s = &issued.story;
    let rows = app.list_issued_keys(&s.owner, &s.project, today(app), &Default::default()).await.unwrap();
    let row = rows.items.iter().find(|r| r.key_id == issued.key).unwrap();
    let series = app.key_usage(&s.holder, &s.project, &issued.key, today(app), Granularity::Hour).await.unwrap();
    assert_eq!(series.totals.refused, row.refused, "the usage series agrees with the issued-keys page");
    let by_hour = series.points.iter().fold(Refusals::default(), |mut r, p| {
        r += p.refused;
        r
    });
    assert_eq!(by_hour, row.refused, "and its points add up to it");
    let mine = app.my_keys(&s.holder, &Default::default()).await.unwrap();
    let mine = mine.items.iter().find(|k| k.key.id == issued.key).unwrap();
    assert_eq!(mine.refused, row.refused, "the holder sees the same");
    row.refused
}

/// Every outcome a key can be refused with, counted once per call against that key and shown
/// to its owner and its holder; refused calls are never metered, allowed ones still are.
pub async fn each_outcome_is_counted_once_per_call(t: TestApp) {
    let TestApp { app, authorizer, clock, .. } = t;
    clock.set(Utc.with_ymd_and_hms(2026, 12, 2, 9, 30, 0).unwrap());
    let call = |path: String, bearer: String, method: Method| {
        let authorizer = &authorizer;
        async move { authorizer.authorize(&method, &path, Some(&bearer)).await }
    };

    // allowed, then permission: the reader role lacks package_create.
    let k = issued(&app, serde_json::json!({})).await;
    for _ in 0..3 {
        call(k.read.clone(), k.bearer.clone(), Method::GET).await.unwrap();
    }
    let create = format!("/api/projects/{}/nodes/in/packages", k.story.project);
    for _ in 0..2 {
        let refused = call(create.clone(), k.bearer.clone(), Method::POST).await.unwrap_err();
        assert_eq!(refused.outcome(), "permission");
    }
    authorizer.flush_refusals().await;
    assert_eq!(shown(&app, &k).await, Refusals { permission: 2, ..Default::default() });
    let s = &k.story;
    let row = app.list_issued_keys(&s.owner, &s.project, today(&app), &Default::default()).await.unwrap().items;
    assert_eq!((row[0].requests, row[0].cost), (3, 3 * PRICE), "only the allowed calls are metered and billed");

    // revoked
    let k = issued(&app, serde_json::json!({})).await;
    app.revoke(&k.story.owner, &k.story.project, &k.key).await.unwrap();
    for _ in 0..4 {
        assert_eq!(call(k.read.clone(), k.bearer.clone(), Method::GET).await, Err(Denial::Revoked));
    }
    authorizer.flush_refusals().await;
    assert_eq!(shown(&app, &k).await, Refusals { revoked: 4, ..Default::default() });

    // quota, then rate_limit
    let k = issued(&app, serde_json::json!({"quota": {"requests": 1, "per": "day"}})).await;
    call(k.read.clone(), k.bearer.clone(), Method::GET).await.unwrap();
    for _ in 0..3 {
        assert_eq!(call(k.read.clone(), k.bearer.clone(), Method::GET).await.unwrap_err().outcome(), "quota");
    }
    authorizer.flush_refusals().await;
    assert_eq!(shown(&app, &k).await, Refusals { quota: 3, ..Default::default() });
    let k = issued(&app, serde_json::json!({"rate_limit": {"per_second": 1, "burst": 1}})).await;
    call(k.read.clone(), k.bearer.clone(), Method::GET).await.unwrap();
    assert_eq!(call(k.read.clone(), k.bearer.clone(), Method::GET).await.unwrap_err().outcome(), "rate_limit");
    authorizer.flush_refusals().await;
    assert_eq!(shown(&app, &k).await, Refusals { rate_limit: 1, ..Default::default() });

    // not_yet_valid and key_not_usable: tokens keygate signed for the key, with other claims.
    let k = issued(&app, serde_json::json!({})).await;
    let early = signed(&app, &k, |c| c.nbf = Some(app.now().timestamp() + 3600)).await;
    assert_eq!(call(k.read.clone(), early, Method::GET).await.unwrap_err().outcome(), "not_yet_valid");
    let stranger = signed(&app, &k, |c| c.sub = "mallory".into()).await;
    assert_eq!(call(k.read.clone(), stranger, Method::GET).await, Err(Denial::KeyNotUsable));
    authorizer.flush_refusals().await;
    assert_eq!(shown(&app, &k).await, Refusals { not_yet_valid: 1, key_not_usable: 1, ..Default::default() });

    // expired: a template valid one day, called two days on (the token's `exp`).
    let k = issued(&app, serde_json::json!({"validity_days": 1})).await;
    call(k.read.clone(), k.bearer.clone(), Method::GET).await.unwrap();
    clock.set(app.now() + Duration::days(2));
    for _ in 0..2 {
        assert_eq!(call(k.read.clone(), k.bearer.clone(), Method::GET).await.unwrap_err().outcome(), "expired");
    }
    authorizer.flush_refusals().await;
    assert_eq!(shown(&app, &k).await, Refusals { expired: 2, ..Default::default() });
}

/// Tokens that name no key of the project are counted per project and reason, only for a
/// project that exists: made-up project ids never become items of the store.
pub async fn refusals_without_a_key_are_counted_per_existing_project(store: Arc<dyn Store>) {
    let t = TestApp::on(store.clone());
    t.set_time(Utc.with_ymd_and_hms(2026, 12, 2, 9, 30, 0).unwrap());
    let (app, authorizer) = (&t.app, &t.authorizer);
    let k = issued(app, serde_json::json!({})).await;
    let other = issued(app, serde_json::json!({})).await;
    let project = &k.story.project;
    let forged = format!("Bearer {}", forged_token(project));
    let cases =
        [(None, "no_key"), (Some(forged.clone()), "invalid_key"), (Some(other.bearer.clone()), "other_project")];
    for (bearer, outcome) in &cases {
        for _ in 0..2 {
            let refused = authorizer.authorize(&Method::GET, &k.read, bearer.as_deref()).await.unwrap_err();
            assert_eq!(refused.outcome(), *outcome);
        }
    }
    authorizer.flush_refusals().await;
    let hour = keygate::usage::hour_of(app.now());
    let row = store.get(&layout::project_refusals(project, hour)).await.unwrap().expect("the project's row");
    for (_, outcome) in &cases {
        assert_eq!(row.counter(outcome), 2, "{outcome}: {row:?}");
    }
    let rows = store.query(&Query::prefix(layout::project_refusals_pk(project), "")).await.unwrap();
    assert_eq!(rows.items.len(), 1, "one row per project and hour");
    assert_eq!(shown(app, &k).await, Refusals::default(), "none of them is the key's");

    // A hundred made-up projects, forged and keyless calls to each: no row for any of them.
    for _ in 0..100 {
        let made_up = ProjectId::generate();
        let path = format!("/api/projects/{made_up}/data_layers/last");
        let forged = format!("Bearer {}", forged_token(&made_up));
        for bearer in [None, Some(forged.as_str())] {
            assert!(authorizer.authorize(&Method::GET, &path, bearer).await.is_err());
        }
        authorizer.flush_refusals().await;
        let grown = store.query(&Query::prefix(layout::project_refusals_pk(&made_up), "")).await.unwrap();
        assert!(grown.items.is_empty(), "a made-up project got a row: {grown:?}");
    }
}

/// 10,000 allowed and 10,000 refused calls on one authorizer that flushes its refusals every
/// minute: the allowed ones are metered exactly, one write each; the refused ones cost the
/// writes SECURITY.md states (one at once, then one per key per interval, and one at the
/// final flush), and every one of them is counted.
pub async fn a_flood_of_refusals_costs_a_bounded_number_of_writes(store: Arc<dyn Store>, calls: usize) {
    let counting = Arc::new(CountingStore::new(store));
    let t = TestApp::on(counting.clone());
    t.set_time(Utc.with_ymd_and_hms(2026, 12, 2, 9, 30, 0).unwrap());
    let app = &t.app;
    let authorizer =
        Arc::new(Authorizer::of(app).counting_refusals(Counting::Flushed(std::time::Duration::from_secs(60))));
    let good = issued(app, serde_json::json!({})).await;
    let bad = issued(app, serde_json::json!({})).await;
    app.revoke(&bad.story.owner, &bad.story.project, &bad.key).await.unwrap();
    let (before, started) = (counting.calls(), std::time::Instant::now());
    let verdicts = futures_util::stream::iter(0..calls)
        .map(|i| {
            let authorizer = authorizer.clone();
            let k = if i % 2 == 0 { &good } else { &bad };
            let (path, bearer) = (k.read.clone(), k.bearer.clone());
            async move { authorizer.authorize(&Method::GET, &path, Some(&bearer)).await.is_ok() }
        })
        .buffer_unordered(32)
        .collect::<Vec<bool>>()
        .await;
    let allowed = verdicts.iter().filter(|ok| **ok).count();
    let took = started.elapsed();
    let flushed = authorizer.flush_refusals().await;
    let spent = counting.calls() - before;
    let refused = calls - allowed;
    assert_eq!(allowed, calls / 2, "every call of the good key is allowed");
    // One refusal write at once (in the background), then at most one per interval (a slow
    // store may see one), and one more at the final flush.
    let intervals = took.as_secs() as usize / 60;
    let refusal_writes = spent.counter_writes - allowed;
    assert!(
        (2..=2 + intervals).contains(&refusal_writes),
        "one metering write per allowed call, {refusal_writes} refusal writes in {took:?}: {spent:?}"
    );
    assert!(flushed.refusals > 0 && (flushed.refusals as usize) < refused);
    let s = &good.story;
    let rows = app.list_issued_keys(&s.owner, &s.project, today(app), &Default::default()).await.unwrap();
    assert_eq!((rows.items[0].requests, rows.items[0].cost), (allowed as i64, allowed as i64 * PRICE));
    assert_eq!(shown(app, &bad).await, Refusals { revoked: refused as i64, ..Default::default() });
}

/// The holder of a key valid 30 days is mailed 7 days and 1 day before it expires, once each,
/// through the outbox; the holder of a key revoked meanwhile is not.
pub async fn expiry_notices_are_mailed_once_seven_and_one_day_before(t: TestApp) {
    let TestApp { app, mailer, clock, .. } = t;
    let start = Utc.with_ymd_and_hms(2026, 12, 2, 9, 30, 0).unwrap();
    clock.set(start);
    let kept = issued(&app, serde_json::json!({"validity_days": 30})).await;
    let revoked = issued(&app, serde_json::json!({"validity_days": 30})).await;
    app.revoke(&revoked.story.owner, &revoked.story.project, &revoked.key).await.unwrap();
    let notices = || {
        let sent = mailer.sent();
        sent.into_iter().filter(|m| m.subject.contains("expires in")).map(|m| (m.to, m.subject)).collect::<Vec<_>>()
    };
    let holder = kept.story.holder.email.clone();
    clock.set(start + Duration::days(23) - Duration::minutes(1));
    app.retry_pending().await.unwrap();
    assert_eq!(notices(), [], "nothing before 7 days ahead");
    clock.set(start + Duration::days(23) + Duration::minutes(1));
    app.retry_pending().await.unwrap();
    app.retry_pending().await.unwrap();
    assert_eq!(notices(), [(holder.clone(), "Your API key for \"Forecast API\" expires in 7 days".to_owned())]);
    clock.set(start + Duration::days(29) + Duration::minutes(1));
    app.retry_pending().await.unwrap();
    app.retry_pending().await.unwrap();
    let sent = notices();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(sent[1], (holder, "Your API key for \"Forecast API\" expires in 1 day".to_owned()));
    let body = mailer.sent().into_iter().rfind(|m| m.subject.contains("expires in")).unwrap().text;
    assert!(body.contains(&kept.key.to_string()) && body.contains("request a new key"), "{body}");
    assert_eq!(app.pending_mail().await.unwrap(), 0, "nothing left in the outbox");
}
