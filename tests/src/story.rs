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
    let authorizer = std::sync::Arc::new(keygate::authorizer::Authorizer::of(&app));
    // One call first, so that the burst meets a warm instance (records cached), as in production.
    assert!(authorizer.authorize(&http::Method::GET, &path, Some(&authorization)).await.is_ok());
    let tasks = (0..calls).map(|_| {
        let (authorizer, path, authorization) = (authorizer.clone(), path.clone(), authorization.clone());
        tokio::spawn(async move { authorizer.authorize(&http::Method::GET, &path, Some(&authorization)).await })
    });
    for verdict in futures_util::future::join_all(tasks).await {
        assert!(verdict.unwrap().is_ok(), "every call is allowed");
    }
    let period = keygate::usage::Period::parse(None, None, app.now() + chrono::Duration::hours(1), 366).unwrap();
    let rows = app.list_issued_keys(&story.owner, &story.project, period, &Default::default()).await.unwrap();
    assert_eq!(rows.items[0].requests, calls as i64 + 1);
    assert_eq!(rows.items[0].cost, (calls as i64 + 1) * PRICE);
}

/// Another member's request for the story's template.
pub async fn another_request(app: &App, first: &Story, i: usize) -> Story {
    let holder = user(&format!("user{i}"));
    let role = RoleName::parse("reader").unwrap();
    app.put_member(&first.owner, &first.project, holder.id.clone(), MemberInput { role, email: holder.email.clone() })
        .await
        .unwrap();
    let request = app.request_key(&holder, &first.project, &first.template).await.unwrap().request.id;
    Story {
        owner: first.owner.clone(),
        holder,
        project: first.project.clone(),
        template: first.template.clone(),
        request,
    }
}

/// The pending count of a project follows every request and decision, for those who decide
/// (the project itself, and the owner's project list) and for nobody else; the pending list
/// pages over pending requests alone, however many were decided before.
pub async fn pending_counts_follow_every_decision(app: &App) {
    use keygate::testing::call;
    let first = pending_request(app).await;
    let (project, me) = (format!("/v1/projects/{}", first.project), "/v1/me/projects".to_owned());
    let pending = |caller: &keygate::identity::Caller| {
        let (project, me, caller) = (project.clone(), me.clone(), caller.clone());
        async move {
            let (status, p) = call(app, "GET", &project, Some(&caller), None).await;
            assert_eq!(status, 200, "{p}");
            let (status, mine) = call(app, "GET", &me, Some(&caller), None).await;
            assert_eq!(status, 200, "{mine}");
            assert_eq!(mine["items"][0]["pending_requests"], p["pending_requests"], "the list and the project agree");
            p["pending_requests"].as_u64()
        }
    };
    assert_eq!(pending(&first.owner).await, Some(1));
    assert_eq!(pending(&first.holder).await, None, "a member who cannot decide is told no count");
    let others: Vec<Story> = futures_util::future::join_all((0..4).map(|i| another_request(app, &first, i))).await;
    assert_eq!(pending(&first.owner).await, Some(5));
    app.approve(&first.owner, &first.project, &first.request).await.unwrap();
    app.approve(&first.owner, &first.project, &others[0].request).await.unwrap();
    let reason = keygate::request::Rejection { reason: "not yet".into() };
    app.reject(&first.owner, &first.project, &others[1].request, reason).await.unwrap();
    assert_eq!(pending(&first.owner).await, Some(2));
    // One pending request a page: each page holds one, and the decided ones are never in it.
    let mut listed = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let after = cursor.as_ref().map(|c| format!("&cursor={c}")).unwrap_or_default();
        let url = format!("{project}/requests?status=pending&limit=1{after}");
        let (status, page) = call(app, "GET", &url, Some(&first.owner), None).await;
        assert_eq!(status, 200, "{page}");
        let items = page["items"].as_array().unwrap();
        assert!(items.len() == 1 || (items.is_empty() && page["next_cursor"].is_null()), "{page}");
        listed.extend(items.iter().map(|r| r["id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let mut waiting: Vec<String> = others[2..].iter().map(|s| s.request.to_string()).collect();
    waiting.sort();
    listed.sort();
    assert_eq!(listed, waiting);
    // Deleting the template cancels the pending requests: nothing waits any more.
    let deleted = format!("{project}/templates/{}?revoke_keys=true", first.template);
    let (status, body) = call(app, "DELETE", &deleted, Some(&first.owner), None).await;
    assert!(status < 300, "{body}");
    assert_eq!(pending(&first.owner).await, Some(0));
}

/// The story's project with `n` keys of its template issued, to Bob and `n - 1` other members.
pub async fn issued_keys(app: &App, n: usize) -> (Story, Vec<keygate::ids::KeyId>) {
    let first = pending_request(app).await;
    let mut keys = vec![app.approve(&first.owner, &first.project, &first.request).await.unwrap().key.id];
    for i in 0..n - 1 {
        let s = another_request(app, &first, i).await;
        keys.push(app.approve(&first.owner, &first.project, &s.request).await.unwrap().key.id);
    }
    (first, keys)
}

/// Writes a usage bucket as the authorizer would: `requests` calls at [`PRICE`], last at `at`.
pub async fn record_use(app: &App, key: &keygate::ids::KeyId, at: chrono::DateTime<chrono::Utc>, requests: i64) {
    use keygate::store::{Increment, Write, layout};
    let write = Write::Increment(Increment::new(
        layout::usage_bucket(key, 0, keygate::usage::hour_of(at)),
        vec![(keygate::usage::REQUESTS, requests), (keygate::usage::COST, requests * PRICE)],
        keygate::usage::BucketBody::json(at),
    ));
    app.store.transact(vec![write]).await.unwrap();
}

/// The owner's issued-keys page reads one query per key used since the period began (two for
/// a key idle since then), and its figures are right in every case.
pub async fn issued_keys_page_costs_one_query_per_key(store: std::sync::Arc<dyn keygate::store::Store>) {
    use chrono::Duration;
    use keygate::testing::{CountingStore, TestApp};
    let counting = std::sync::Arc::new(CountingStore::new(store));
    let t = TestApp::on(counting.clone());
    let app = &t.app;
    // The keys were issued before every period read here (a period that ended before a key was
    // issued does not list it).
    let now = app.now();
    t.set_time(now - Duration::days(60));
    let (first, keys) = issued_keys(app, 6).await;
    t.set_time(now);
    // Keys 0-3: used in the period (key 0 also 50 days ago); key 4: last used 40 days ago; key 5: never.
    for (i, key) in keys.iter().enumerate().take(4) {
        record_use(app, key, now - Duration::hours(2), 10).await;
        record_use(app, key, now - Duration::minutes(i as i64), 1).await;
    }
    record_use(app, &keys[0], now - Duration::days(50), 100).await;
    record_use(app, &keys[4], now - Duration::days(40), 7).await;

    let before = counting.calls();
    app.access(&first.owner, &first.project).await.unwrap();
    let access_queries = (counting.calls() - before).queries;
    let period = keygate::usage::Period::parse(None, None, now + Duration::seconds(1), 366).unwrap();
    let before = counting.calls();
    let page = app.list_issued_keys(&first.owner, &first.project, period, &Default::default()).await.unwrap();
    let spent = counting.calls() - before;
    assert_eq!(page.items.len(), 6);
    let per_key = spent.queries - access_queries - 1;
    assert_eq!(
        per_key,
        4 + 2 + 2 + 6,
        "one query for each key used in the period, two for the idle ones, and one for each key's refusals: {spent:?}"
    );
    for row in &page.items {
        let i = keys.iter().position(|k| *k == row.key_id).unwrap();
        match i {
            0..4 => {
                assert_eq!((row.requests, row.cost), (11, 11 * PRICE), "key {i}");
                assert_eq!(row.last_used_at, Some(now - Duration::minutes(i as i64)), "key {i}");
            }
            4 => assert_eq!((row.requests, row.last_used_at), (0, Some(now - Duration::days(40)))),
            _ => assert_eq!((row.requests, row.last_used_at), (0, None)),
        }
    }

    // A period long past reads the period and the newest bucket separately, and is as right.
    let old = keygate::usage::Period::parse(None, Some(&(now - Duration::days(45)).to_rfc3339()), now, 366).unwrap();
    let page = app.list_issued_keys(&first.owner, &first.project, old, &Default::default()).await.unwrap();
    let row = page.items.iter().find(|r| r.key_id == keys[0]).unwrap();
    assert_eq!((row.requests, row.cost, row.last_used_at), (100, 100 * PRICE, Some(now)));
}

/// Sets a template's limits as its owner would (`quota` and `rate_limit` as in the API).
pub async fn limit_template(app: &App, story: &Story, limits: serde_json::Value) {
    let patch: keygate::template::TemplatePatch = serde_json::from_value(limits).unwrap();
    app.edit_template(&story.owner, &story.project, &story.template, patch, Default::default()).await.unwrap();
}

/// 200 calls at once on a key with a quota of 50 a day: exactly 50 allowed (each seeing a
/// different number of calls left), 150 refused as over quota, 50 counted and priced; the
/// holder is told at 80 % and 100 %, once each; the next day allows again.
pub async fn a_quota_holds_exactly_under_concurrency(t: keygate::testing::TestApp) {
    use chrono::TimeZone;
    use keygate::authorizer::{Denial, Limit};
    let keygate::testing::TestApp { app, authorizer, mailer, clock } = t;
    let day = chrono::Utc.with_ymd_and_hms(2026, 12, 2, 9, 0, 0).unwrap();
    clock.set(day - keygate::limits::SETTLE);
    let story = pending_request(&app).await;
    // The edit answers when its quota is in force: at 09:00 sharp.
    limit_template(&app, &story, serde_json::json!({"quota": {"requests": 50, "per": "day"}})).await;
    assert_eq!(keygate::clock::Clock::now(clock.as_ref()), day);
    let key = app.approve(&story.owner, &story.project, &story.request).await.unwrap().key;
    let token = app.my_key_token(&story.holder, &key.id).await.unwrap().token;
    let path = format!("/api/projects/{}/data_layers/last", story.project);
    let authorization = format!("Bearer {}", token.expose());
    let authorizer = std::sync::Arc::new(authorizer);
    let tasks = (0..200).map(|_| {
        let (authorizer, path, authorization) = (authorizer.clone(), path.clone(), authorization.clone());
        tokio::spawn(async move { authorizer.authorize(&http::Method::GET, &path, Some(&authorization)).await })
    });
    let mut left = Vec::new();
    let mut refused = 0;
    for verdict in futures_util::future::join_all(tasks).await {
        match verdict.unwrap() {
            Ok(context) => left.push(context.quota_remaining.expect("a quota reports what is left")),
            Err(Denial::Limited(limited)) => {
                assert!(matches!(limited.limit, Limit::Quota { .. }), "{limited:?}");
                assert_eq!(limited.retry_after, 15 * 3600, "until midnight UTC");
                refused += 1;
            }
            Err(other) => panic!("only the quota may refuse: {other:?}"),
        }
    }
    left.sort_unstable();
    assert_eq!(left, (0..50).collect::<Vec<i64>>(), "50 allowed, each counted once");
    assert_eq!(refused, 150);
    let today = keygate::usage::Period::parse(Some("2026-12-02"), Some("2026-12-03"), day, 366).unwrap();
    let rows = app.list_issued_keys(&story.owner, &story.project, today, &Default::default()).await.unwrap();
    assert_eq!((rows.items[0].requests, rows.items[0].cost), (50, 50 * PRICE), "refused calls cost nothing");
    let status = rows.items[0].quota.clone().expect("the issued-keys page shows the quota");
    assert_eq!((status.used, status.requests, status.period.as_str()), (50, 50, "2026-12-02"));
    let week = keygate::usage::Period::parse(Some("2026-11-26"), Some("2026-12-03"), day, 366).unwrap();
    let series =
        app.key_usage(&story.holder, &story.project, &key.id, week, keygate::usage::Granularity::Day).await.unwrap();
    assert_eq!(series.quota.map(|q| q.used), Some(50), "and so does the key's usage");

    // The notices wait in the outbox until the retry task sends them: once each.
    clock.set(day + chrono::Duration::minutes(1));
    app.retry_pending().await.unwrap();
    let notices: Vec<_> = mailer.sent().into_iter().filter(|m| m.subject.contains("of its quota")).collect();
    let subjects: Vec<_> = notices.iter().map(|m| m.subject.clone()).collect();
    assert_eq!(notices.len(), 2, "{subjects:?}");
    assert!(subjects[0].contains("80 %") || subjects[1].contains("80 %"), "{subjects:?}");
    assert!(subjects.iter().any(|s| s.contains("100 %")), "{subjects:?}");
    assert!(notices.iter().all(|m| m.to == story.holder.email));
    let again = authorizer.authorize(&http::Method::GET, &path, Some(&authorization)).await;
    assert!(matches!(again, Err(Denial::Limited(_))), "still over quota today");
    app.retry_pending().await.unwrap();
    assert_eq!(mailer.sent().iter().filter(|m| m.subject.contains("of its quota")).count(), 2, "never twice");

    // The next period allows again.
    clock.set(chrono::Utc.with_ymd_and_hms(2026, 12, 3, 0, 0, 1).unwrap());
    let next = authorizer.authorize(&http::Method::GET, &path, Some(&authorization)).await.unwrap();
    assert_eq!(next.quota_remaining, Some(49));
}

/// Issue 30's first case: a key on its template's 100 a day makes 30 calls; its owner gives it
/// 150 of its own and a top-up of 30, and it makes 150 more (180 today, all allowed); then
/// `{"quota": null}` puts it back on the template's 100 a day: 100 calls at once allow none,
/// and the pages say 180 of 100.
pub async fn a_key_back_on_its_templates_quota_counts_every_call(t: keygate::testing::TestApp) {
    use chrono::TimeZone;
    use keygate::authorizer::Denial;
    let keygate::testing::TestApp { app, authorizer, clock, .. } = t;
    let day = chrono::Utc.with_ymd_and_hms(2026, 12, 4, 9, 0, 0).unwrap();
    clock.set(day);
    let story = pending_request(&app).await;
    limit_template(&app, &story, serde_json::json!({"quota": {"requests": 100, "per": "day"}})).await;
    let key = app.approve(&story.owner, &story.project, &story.request).await.unwrap().key;
    let token = app.my_key_token(&story.holder, &key.id).await.unwrap().token;
    let path = format!("/api/projects/{}/data_layers/last", story.project);
    let authorization = format!("Bearer {}", token.expose());
    let authorizer = std::sync::Arc::new(authorizer);
    let burst = |n: usize| {
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let (authorizer, path, authorization) = (authorizer.clone(), path.clone(), authorization.clone());
                tokio::spawn(async move { authorizer.authorize(&http::Method::GET, &path, Some(&authorization)).await })
            })
            .collect();
        async move {
            let mut allowed = 0;
            for verdict in futures_util::future::join_all(tasks).await {
                match verdict.unwrap() {
                    Ok(_) => allowed += 1,
                    Err(Denial::Limited(_)) => {}
                    Err(other) => panic!("only the quota may refuse: {other:?}"),
                }
            }
            allowed
        }
    };
    let patch = |v: serde_json::Value| serde_json::from_value::<keygate::key::LimitsPatch>(v).unwrap();
    let (owner, p) = (&story.owner, &story.project);
    assert_eq!(burst(30).await, 30);
    app.set_key_limits(owner, p, &key.id, patch(serde_json::json!({"quota": {"requests": 150, "per": "day"}})))
        .await
        .unwrap();
    app.set_key_limits(owner, p, &key.id, patch(serde_json::json!({"top_up": 30}))).await.unwrap();
    assert_eq!(burst(150).await, 150, "180 of 150 + 30");
    app.set_key_limits(owner, p, &key.id, patch(serde_json::json!({"quota": null}))).await.unwrap();
    assert_eq!(burst(100).await, 0, "180 calls today already, over the template's 100");
    let today = keygate::usage::Period::parse(Some("2026-12-04"), Some("2026-12-05"), day, 366).unwrap();
    let rows = app.list_issued_keys(owner, p, today, &Default::default()).await.unwrap();
    let status = rows.items[0].quota.clone().expect("the template's quota");
    assert_eq!((rows.items[0].requests, status.used, status.requests, status.own), (180, 180, 100, false));
}

/// A quota switched off and on again, or moved from days to months, counts what the key used
/// earlier in the period (README: "a quota changed mid-period counts what was already used"):
/// 3 calls under 30 a day, the quota off for 20 calls, 30 a day again: 7 more, not 27; then
/// 40 a month: 10 more (the month's calls are the day's); and 45 a month counts on (5 more).
pub async fn a_quota_set_again_counts_what_was_used(t: keygate::testing::TestApp) {
    use chrono::TimeZone;
    use keygate::authorizer::Denial;
    let keygate::testing::TestApp { app, authorizer, clock, .. } = t;
    let day = chrono::Utc.with_ymd_and_hms(2026, 12, 2, 9, 0, 0).unwrap();
    clock.set(day);
    let story = pending_request(&app).await;
    let daily = serde_json::json!({"quota": {"requests": 30, "per": "day"}});
    limit_template(&app, &story, daily.clone()).await;
    let key = app.approve(&story.owner, &story.project, &story.request).await.unwrap().key;
    let token = app.my_key_token(&story.holder, &key.id).await.unwrap().token;
    let path = format!("/api/projects/{}/data_layers/last", story.project);
    let authorization = format!("Bearer {}", token.expose());
    let mut minute = 0;
    let mut calls = |n: usize| {
        let (authorizer, path, authorization, clock) = (&authorizer, &path, &authorization, &clock);
        minute += 1;
        let at = day + chrono::Duration::minutes(minute);
        async move {
            clock.set(at);
            let mut allowed = 0;
            for _ in 0..n {
                match authorizer.authorize(&http::Method::GET, path, Some(authorization)).await {
                    Ok(_) => allowed += 1,
                    Err(Denial::Limited(_)) => {}
                    Err(other) => panic!("only the quota may refuse: {other:?}"),
                }
            }
            allowed
        }
    };
    assert_eq!(calls(3).await, 3);
    limit_template(&app, &story, serde_json::json!({"quota": null})).await;
    assert_eq!(calls(20).await, 20, "no quota");
    limit_template(&app, &story, daily).await;
    assert_eq!(calls(30).await, 7, "the day's 23 calls count against the quota set again");
    limit_template(&app, &story, serde_json::json!({"quota": {"requests": 40, "per": "month"}})).await;
    assert_eq!(calls(30).await, 10, "the month so far is the day's 30 calls");
    limit_template(&app, &story, serde_json::json!({"quota": {"requests": 45, "per": "month"}})).await;
    assert_eq!(calls(30).await, 5, "a changed number of calls counts on");
    let today = keygate::usage::Period::parse(Some("2026-12-02"), Some("2026-12-03"), day, 366).unwrap();
    let rows = app.list_issued_keys(&story.owner, &story.project, today, &Default::default()).await.unwrap();
    assert_eq!(rows.items[0].requests, 45, "every allowed call metered once");
    let status = rows.items[0].quota.clone().expect("the quota on the page");
    assert_eq!((status.used, status.requests), (45, 45), "the page shows the counter decided on");
    // The next month starts from nothing, on the plain counter.
    clock.set(chrono::Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 1).unwrap());
    let next = authorizer.authorize(&http::Method::GET, &path, Some(&authorization)).await.unwrap();
    assert_eq!(next.quota_remaining, Some(44));
}

/// The billing export, followed page by page (two keys a page), in both formats and both
/// granularities: each key's totals equal the issued-keys page's for the same period.
pub async fn the_export_agrees_with_the_issued_keys_page(app: &App) {
    use chrono::{Duration, SecondsFormat};
    let (first, keys) = issued_keys(app, 5).await;
    let now = app.now();
    for (i, key) in keys.iter().enumerate() {
        // Use every 7 hours over the last days; the oldest falls before the period.
        for h in 0..(4 + 3 * i as i64) {
            record_use(app, key, now - Duration::hours(7 * h), h + 1).await;
        }
    }
    let time = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    let (from, to) = (time(now - Duration::hours(60)), time(now + Duration::hours(1)));
    let period = keygate::usage::Period::parse(Some(&from), Some(&to), now, 366).unwrap();
    let page = app.list_issued_keys(&first.owner, &first.project, period, &Default::default()).await.unwrap();
    let expected: std::collections::BTreeMap<String, (i64, i64)> =
        page.items.iter().map(|r| (r.key_id.to_string(), (r.requests, r.cost))).collect();
    assert!(expected.values().any(|(r, _)| *r > 0) && expected.len() == 5, "{expected:?}");
    // The project's totals are every page's: the sum of the five keys, however they are paged.
    let usage = format!("/v1/projects/{}/usage?from={from}&to={to}", first.project);
    let (status, totals) = keygate::testing::call(app, "GET", &usage, Some(&first.owner), None).await;
    assert_eq!(status, 200, "{totals}");
    let sum = expected.values().fold((0, 0), |(r, c), (requests, cost)| (r + requests, c + cost));
    assert_eq!((totals["requests"].as_i64(), totals["cost"].as_i64()), (Some(sum.0), Some(sum.1)), "{totals}");
    assert_eq!(totals["keys"], 5);
    assert_eq!(totals["currency"], serde_json::json!({"code": "EUR", "exponent": 2}));
    let (status, refused) = keygate::testing::call(app, "GET", &usage, Some(&first.holder), None).await;
    assert_eq!(status, 403, "only those who manage the project see its totals: {refused}");
    for (format, granularity) in [("csv", "hour"), ("jsonl", "day"), ("csv", "day"), ("jsonl", "hour")] {
        let mut got: std::collections::BTreeMap<String, (i64, i64)> = Default::default();
        let mut next = Some(format!(
            "/v1/projects/{}/usage/export?from={from}&to={to}&granularity={granularity}&format={format}&limit=2",
            first.project
        ));
        let mut pages = 0;
        while let Some(url) = next.take() {
            pages += 1;
            let res = keygate::testing::call_response(app, "GET", &url, Some(&first.owner), None).await;
            assert_eq!(res.status(), 200, "{url}");
            let body = String::from_utf8(res.body().to_vec()).unwrap();
            let mut lines = body.lines();
            if format == "csv" {
                assert_eq!(res.headers()["content-type"], "text/csv; charset=utf-8");
                assert_eq!(
                    lines.next(),
                    Some(
                        "key_id,user_id,user_email,template_id,template_name,start,requests,cost,refused,\
                         refused_revoked,refused_rerolled,refused_expired,refused_not_yet_valid,refused_permission,refused_quota,\
                         refused_rate_limit,refused_key_not_usable,amount,currency,label"
                    )
                );
            } else {
                assert_eq!(res.headers()["content-type"], "application/x-ndjson");
            }
            for line in lines {
                let (key, start, requests, cost) = if format == "csv" {
                    let cells: Vec<&str> = line.split(',').collect();
                    let money = keygate::money::Currency::default();
                    assert_eq!(
                        cells[cells.len() - 3..],
                        [money.amount(cells[7].parse().unwrap()).as_str(), "EUR", ""],
                        "{line}: the key's own calls, no label"
                    );
                    (
                        cells[0].to_owned(),
                        cells[5].to_owned(),
                        cells[6].parse::<i64>().unwrap(),
                        cells[7].parse::<i64>().unwrap(),
                    )
                } else {
                    let row: serde_json::Value = serde_json::from_str(line).unwrap();
                    let text = |k: &str| row[k].as_str().unwrap().to_owned();
                    (text("key_id"), text("start"), row["requests"].as_i64().unwrap(), row["cost"].as_i64().unwrap())
                };
                let step = if granularity == "day" { "T00:00:00Z" } else { ":00:00Z" };
                assert!(start.ends_with(step), "{granularity} rows start on the {granularity}: {start}");
                let sum = got.entry(key).or_default();
                *sum = (sum.0 + requests, sum.1 + cost);
            }
            next = res.headers().get("link").map(|l| {
                let l = l.to_str().unwrap();
                l[l.find('<').unwrap() + 1..l.find('>').unwrap()].to_owned()
            });
        }
        assert_eq!(pages, 3, "five keys, two a page");
        let used: std::collections::BTreeMap<_, _> =
            expected.iter().filter(|(_, v)| v.0 > 0).map(|(k, v)| (k.clone(), *v)).collect();
        assert_eq!(got, used, "{format} by {granularity}: the export's totals are the page's");
    }
}

/// The store writes of one allowed call, counted at the store interface: one counter write
/// (the hour bucket) for a key without limits; two (the quota counter, then the bucket) for a
/// key with a quota and a rate limit; never a transaction, and no read once the instance is warm.
pub async fn store_writes_per_allowed_call(store: std::sync::Arc<dyn keygate::store::Store>) {
    let counting = std::sync::Arc::new(keygate::testing::CountingStore::new(store));
    let t = keygate::testing::TestApp::on(counting.clone());
    let (free, capped) = (pending_request(&t.app).await, pending_request(&t.app).await);
    let limits = serde_json::json!({"quota": {"requests": 1000, "per": "month"}, "rate_limit": {"per_second": 100, "burst": 100}});
    limit_template(&t.app, &capped, limits).await;
    for (story, writes) in [(free, 1), (capped, 2)] {
        let key = t.app.approve(&story.owner, &story.project, &story.request).await.unwrap().key;
        let bearer = format!("Bearer {}", t.app.my_key_token(&story.holder, &key.id).await.unwrap().token.expose());
        let path = format!("/api/projects/{}/data_layers/last", story.project);
        t.authorizer.authorize(&http::Method::GET, &path, Some(&bearer)).await.unwrap();
        let before = counting.calls();
        for _ in 0..10 {
            t.authorizer.authorize(&http::Method::GET, &path, Some(&bearer)).await.unwrap();
        }
        let spent = counting.calls() - before;
        assert_eq!(spent.counter_writes, 10 * writes, "{spent:?}");
        assert_eq!((spent.transactions, spent.queries, spent.gets), (0, 0, 0), "warm: {spent:?}");
    }
}

/// Imports `key` as `forecast_*` into a new project of its holder for each of `names`; answers
/// those projects.
pub async fn import_into_new_projects(
    app: &App,
    holder: &Caller,
    key: &keygate::ids::KeyId,
    names: &[&str],
) -> Vec<ProjectId> {
    let mut clients = Vec::new();
    for name in names {
        let client = app
            .register_project(holder, NewProject { name: (*name).into(), description: String::new() })
            .await
            .unwrap()
            .id;
        let input = keygate::secret::ImportInput {
            key_id: key.clone(),
            prefix: keygate::ids::SecretPrefix::parse("forecast").unwrap(),
            nodes: Vec::new(),
            overwrite: false,
        };
        app.import_key(holder, &client, input).await.unwrap();
        clients.push(client);
    }
    clients
}
