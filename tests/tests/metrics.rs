//! keygate-local's `/metrics`, scraped during a load: the decisions it counts by outcome are
//! exactly the calls made, allowed and refused.

use std::sync::Arc;

use keygate_tests::LocalGateway;
use serde_json::json;

/// The value of the sample `name` (with its labels) in OpenMetrics text, 0 when absent.
fn sample(text: &str, name: &str) -> u64 {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_decisions_counted_are_the_calls_made() {
    let gw = Arc::new(LocalGateway::start(&[]));
    let (ann, bob) = (gw.token("ann"), gw.token("bob"));
    let reader = ("reader", ["project_view"].as_slice());
    let (p, t) = gw.project_with_template(&ann, "Metrics", reader, json!({"name": "M", "role": "reader"})).await;
    let (_, token) = gw.issue_key(&ann, &bob, &p, &t).await;
    let (clients, each) = (32, 40);
    let calls = (0..clients).map(|i| {
        let (gw, p, token) = (gw.clone(), p.clone(), token.clone());
        tokio::spawn(async move {
            for n in 0..each {
                // Per client: mostly allowed calls, a call without a key, one the role may not make.
                let (path, bearer, want) = match n % 10 {
                    0 => ("data_layers/last", None, 401),
                    1 => ("nodes/in/packages", Some(&token), 403),
                    _ => ("data_layers/last", Some(&token), 200),
                };
                let mut req = gw.http.get(format!("{}/api/projects/{p}/{path}", gw.url));
                if let Some(b) = bearer {
                    req = req.bearer_auth(b);
                }
                assert_eq!(req.send().await.unwrap().status(), want, "client {i} call {n}");
            }
        })
    });
    let load = futures_util::future::join_all(calls);
    let scrape = || async { gw.http.get(format!("{}/metrics", gw.url)).send().await.unwrap().text().await.unwrap() };
    let (done, during) = tokio::join!(load, async {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        scrape().await
    });
    assert!(done.into_iter().all(|r| r.is_ok()));
    let after = scrape().await;
    let total = (clients * each) as u64;
    let (allowed, no_key, permission) = (total * 8 / 10, total / 10, total / 10);
    assert!(sample(&during, "keygate_decisions_total{outcome=\"allowed\"}") <= allowed, "{during}");
    assert_eq!(sample(&after, "keygate_decisions_total{outcome=\"allowed\"}"), allowed, "{after}");
    assert_eq!(sample(&after, "keygate_decisions_total{outcome=\"no_key\"}"), no_key, "{after}");
    assert_eq!(sample(&after, "keygate_decisions_total{outcome=\"permission\"}"), permission, "{after}");
    assert_eq!(sample(&after, "keygate_decision_time_seconds_count"), total, "every decision timed: {after}");
    let period = gw.call("GET", &format!("/v1/projects/{p}/keys"), Some(&ann), None).await.1;
    assert_eq!(period["items"][0]["requests"], allowed, "and the allowed ones metered");
}
