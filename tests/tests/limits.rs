//! Quotas and rate limits end to end, over HTTP against a started `keygate-local` with an
//! upstream that counts what reaches it: a refused call is answered 429 with `Retry-After`, the
//! `RateLimit-Policy` / `RateLimit` headers and a problem naming the limit, and never reaches
//! the platform; allowed calls carry the quota left upstream.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use keygate_tests::LocalGateway;
use serde_json::{Value, json};
use tokio::sync::Mutex;

/// An upstream that counts calls and keeps the `x-keygate-quota-remaining` each one carried.
struct Upstream {
    url: String,
    calls: Arc<AtomicUsize>,
    remaining: Arc<Mutex<Vec<String>>>,
    server: tokio::task::JoinHandle<()>,
}

async fn upstream() -> Upstream {
    let calls = Arc::new(AtomicUsize::new(0));
    let remaining = Arc::new(Mutex::new(Vec::new()));
    let (c, r) = (calls.clone(), remaining.clone());
    let app = axum::Router::new().fallback(move |headers: HeaderMap| {
        let (c, r) = (c.clone(), r.clone());
        async move {
            c.fetch_add(1, Ordering::SeqCst);
            if let Some(v) = headers.get("x-keygate-quota-remaining") {
                r.lock().await.push(v.to_str().unwrap_or_default().to_owned());
            }
            "{}"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Upstream { url, calls, remaining, server }
}

/// A key of a template with `limits`, and the platform path it calls.
async fn limited_key(gw: &LocalGateway, limits: Value) -> (String, String, String, String) {
    let (ann, bob) = (gw.token("ann"), gw.token("bob"));
    let mut template = json!({"name": "Limited", "role": "reader", "price_per_request": 2});
    template.as_object_mut().unwrap().extend(limits.as_object().unwrap().clone());
    let (p, t) = gw.project_with_template(&ann, "Limits", ("reader", &["project_view"]), template).await;
    let (key, token) = gw.issue_key(&ann, &bob, &p, &t).await;
    (ann, p, key["id"].as_str().unwrap().to_owned(), token)
}

fn assert_too_many(res_headers: &reqwest::header::HeaderMap, body: &Value, limit: &str) {
    assert_eq!(res_headers["content-type"], "application/problem+json");
    let retry: u64 = res_headers["retry-after"].to_str().unwrap().parse().expect("Retry-After in seconds");
    assert!(retry >= 1, "{retry}");
    assert!(res_headers.contains_key("ratelimit-policy"), "{res_headers:?}");
    assert!(res_headers["ratelimit"].to_str().unwrap().contains(";r=0;"), "{res_headers:?}");
    assert_eq!((body["status"].as_u64(), body["limit"].as_str()), (Some(429), Some(limit)), "{body}");
    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_quota_refuses_the_call_after_the_last_one_and_the_platform_never_sees_it() {
    let up = upstream().await;
    let gw = LocalGateway::start(&["--upstream", &up.url]);
    let (ann, p, key, token) = limited_key(&gw, json!({"quota": {"requests": 5, "per": "day"}})).await;
    let url = format!("{}/api/projects/{p}/data_layers/last", gw.url);
    for left in (0..5).rev() {
        let res = gw.http.get(&url).bearer_auth(&token).send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["ratelimit-policy"], "\"quota\";q=5;w=86400");
        assert!(res.headers()["ratelimit"].to_str().unwrap().starts_with(&format!("\"quota\";r={left};")));
    }
    let res = gw.http.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(res.status(), 429);
    let headers = res.headers().clone();
    let body: Value = res.json().await.unwrap();
    assert_too_many(&headers, &body, "quota");
    assert!(body["detail"].as_str().unwrap().contains("5 calls per UTC day"), "{body}");
    assert_eq!(up.calls.load(Ordering::SeqCst), 5, "the refused call did not reach the platform");
    assert_eq!(*up.remaining.lock().await, ["4", "3", "2", "1", "0"], "the quota left, passed upstream");

    // The owner sees used / quota on the issued-keys page, and only allowed calls are billed.
    let (status, page) = gw.call("GET", &format!("/v1/projects/{p}/keys"), Some(&ann), None).await;
    assert_eq!(status, 200, "{page}");
    let row = page["items"].as_array().unwrap().iter().find(|r| r["key_id"] == key.as_str()).unwrap().clone();
    assert_eq!((row["requests"].as_i64(), row["cost"].as_i64()), (Some(5), Some(10)), "{row}");
    assert_eq!((row["quota"]["used"].as_i64(), row["quota"]["requests"].as_i64()), (Some(5), Some(5)), "{row}");

    // Raising the quota applies from the next call on.
    let t = row["template_id"].as_str().unwrap();
    let (status, edited) = gw
        .call(
            "PATCH",
            &format!("/v1/projects/{p}/templates/{t}"),
            Some(&ann),
            Some(json!({"quota": {"requests": 6, "per": "day"}})),
        )
        .await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(gw.http.get(&url).bearer_auth(&token).send().await.unwrap().status(), 200);
    assert_eq!(gw.http.get(&url).bearer_auth(&token).send().await.unwrap().status(), 429);
    gw.assert_no_secrets_logged(&[&token, &ann]);
    up.server.abort();
}

/// 200 calls spread evenly over 2 seconds on a key limited to 10 per second with bursts of 10:
/// the burst, then one call per 100 ms, so 10 + 20 = 30 allowed. Tolerance: ±2, for the
/// sender's timer jitter at the window's two ends (the limiter itself is exact: GCRA).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rate_limit_of_ten_per_second_allows_its_burst_and_then_ten_a_second() {
    let up = upstream().await;
    let gw = LocalGateway::start(&["--upstream", &up.url]);
    let (_, p, _, token) = limited_key(&gw, json!({"rate_limit": {"per_second": 10, "burst": 10}})).await;
    let url = format!("{}/api/projects/{p}/data_layers/last", gw.url);
    // Warm the connection and the gateway's caches with a call the limit does not count.
    let warm = gw.http.get(format!("{}/api/projects/{p}/data_layers/last", gw.url)).send().await.unwrap();
    assert_eq!(warm.status(), 401);

    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..200u32 {
        tokio::time::sleep_until((start + Duration::from_millis(10) * i).into()).await;
        let (http, url, token) = (gw.http.clone(), url.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            let res = http.get(&url).bearer_auth(&token).send().await.unwrap();
            let headers = res.headers().clone();
            (res.status().as_u16(), headers, res.json::<Value>().await.unwrap_or(Value::Null))
        }));
    }
    let mut allowed = 0;
    for task in tasks {
        let (status, headers, body) = task.await.unwrap();
        match status {
            200 => allowed += 1,
            429 => assert_too_many(&headers, &body, "rate_limit"),
            other => panic!("only the rate limit may refuse: {other} {body}"),
        }
    }
    assert!((28..=32).contains(&allowed), "10 + 20 ± 2 allowed, got {allowed}");
    assert_eq!(up.calls.load(Ordering::SeqCst), allowed, "refused calls never reach the platform");
    up.server.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn limits_are_validated_field_by_field_and_shown_on_the_tile() {
    let gw = LocalGateway::start(&[]);
    let ann = gw.token("ann");
    let bob = gw.token("bob");
    let (p, _) = gw
        .project_with_template(&ann, "Tiles", ("reader", &["project_view"]), json!({"name": "Free", "role": "reader"}))
        .await;
    let bad = [
        (json!({"quota": {"requests": 0, "per": "day"}}), "quota.requests"),
        (json!({"quota": {"requests": 5, "per": "week"}}), "quota.per"),
        (json!({"quota": {"requests": 5}}), "quota"),
        (json!({"rate_limit": {"per_second": 0, "burst": 1}}), "rate_limit.per_second"),
        (json!({"rate_limit": {"per_second": 5, "burst": "ten"}}), "rate_limit.burst"),
        (json!({"rate_limit": {"per_second": 5, "burst": 5, "mode": "fast"}}), "rate_limit.mode"),
    ];
    for (limits, field) in bad {
        let mut body = json!({"name": "Bad", "role": "reader"});
        body.as_object_mut().unwrap().extend(limits.as_object().unwrap().clone());
        let res = gw
            .http
            .post(format!("{}/v1/projects/{p}/templates", gw.url))
            .bearer_auth(&ann)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(matches!(res.status().as_u16(), 400 | 422), "{limits}: {}", res.status());
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        let problem: Value = res.json().await.unwrap();
        assert!(problem.to_string().contains(field), "{limits}: the problem names {field}: {problem}");
    }
    let limits = json!({"quota": {"requests": 1000, "per": "month"}, "rate_limit": {"per_second": 5, "burst": 20}});
    let mut body = json!({"name": "Metered", "role": "reader"});
    body.as_object_mut().unwrap().extend(limits.as_object().unwrap().clone());
    let (status, created) = gw.call("POST", &format!("/v1/projects/{p}/templates"), Some(&ann), Some(body)).await;
    assert_eq!(status, 201, "{created}");
    let (status, tiles) = gw.call("GET", &format!("/v1/projects/{p}/templates"), Some(&bob), None).await;
    assert_eq!(status, 200, "{tiles}");
    let tile = tiles["items"].as_array().unwrap().iter().find(|t| t["name"] == "Metered").unwrap().clone();
    assert_eq!(tile["quota"], limits["quota"], "{tile}");
    // A rate limit names its mode: `local` unless asked otherwise.
    assert_eq!(tile["rate_limit"], json!({"per_second": 5, "burst": 20, "mode": "local"}), "{tile}");
}
