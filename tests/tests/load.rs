//! Load without loss, over real HTTP against `keygate-local` on each store: 10,000 metered
//! calls from 64 concurrent clients are counted and priced exactly; a revocation made in the
//! middle of a run stops allowed calls within one second, and every allowed call is billed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use keygate_tests::{LocalGateway, aws, require_aws};
use serde_json::json;
use tokio::sync::Mutex;

const CLIENTS: usize = 64;

/// One load run at a time: runs in parallel would measure each other, and the emulator
/// processes requests one by one.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());
const PRICE: i64 = 5;

struct Setup {
    project: String,
    key: String,
    token: String,
    ann: String,
}

async fn setup(gw: &LocalGateway) -> Setup {
    let (ann, bob) = (gw.token("ann"), gw.token("bob"));
    let template = json!({"name": "Bulk", "role": "reader", "price_per_request": PRICE});
    let (p, t) = gw.project_with_template(&ann, "Load", ("reader", &["project_view"]), template).await;
    let (key, token) = gw.issue_key(&ann, &bob, &p, &t).await;
    Setup { project: p, key: key["id"].as_str().unwrap().to_owned(), token, ann }
}

/// `calls` calls from [`CLIENTS`] clients; returns the start times of the allowed ones.
async fn hammer(
    gw: &LocalGateway,
    s: &Setup,
    calls: usize,
    revoke_after: Option<usize>,
) -> (Vec<Instant>, Option<Instant>) {
    let url = format!("{}/api/projects/{}/data_layers/last", gw.url, s.project);
    let next = Arc::new(AtomicUsize::new(0));
    let allowed = Arc::new(Mutex::new(Vec::new()));
    let revoked_at = Arc::new(Mutex::new(None));
    let client = reqwest::Client::builder().pool_max_idle_per_host(CLIENTS).build().unwrap();
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (url, next, allowed, client, token) =
            (url.clone(), next.clone(), allowed.clone(), client.clone(), s.token.clone());
        let (revoked_at, revoke_url, ann) =
            (revoked_at.clone(), format!("{}/v1/projects/{}/keys/{}", gw.url, s.project, s.key), s.ann.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                if n >= calls {
                    return;
                }
                if Some(n) == revoke_after {
                    let res = client.delete(&revoke_url).bearer_auth(&ann).send().await.unwrap();
                    assert_eq!(res.status(), 200);
                    *revoked_at.lock().await = Some(Instant::now());
                }
                let started = Instant::now();
                let res = client.get(&url).bearer_auth(&token).send().await.unwrap();
                match res.status().as_u16() {
                    200 => allowed.lock().await.push(started),
                    403 => {}
                    other => panic!("unexpected status {other}"),
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let allowed = allowed.lock().await.clone();
    let revoked_at = *revoked_at.lock().await;
    (allowed, revoked_at)
}

async fn usage(gw: &LocalGateway, s: &Setup) -> (i64, i64) {
    let to = (chrono::Utc::now() + chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M:%SZ");
    let (status, keys) = gw.call("GET", &format!("/v1/projects/{}/keys?to={to}", s.project), Some(&s.ann), None).await;
    assert_eq!(status, 200, "{keys}");
    (keys["items"][0]["requests"].as_i64().unwrap(), keys["items"][0]["cost"].as_i64().unwrap())
}

async fn ten_thousand_calls_are_counted_exactly(gw: LocalGateway) {
    let s = setup(&gw).await;
    let started = Instant::now();
    let (allowed, _) = hammer(&gw, &s, 10_000, None).await;
    eprintln!("10,000 calls from {CLIENTS} clients in {:?}", started.elapsed());
    assert_eq!(allowed.len(), 10_000);
    assert_eq!(usage(&gw, &s).await, (10_000, 10_000 * PRICE));
    gw.assert_no_secrets_logged(&[&s.token, &s.ann]);
}

async fn a_revocation_stops_calls_within_a_second(gw: LocalGateway) {
    let s = setup(&gw).await;
    let (allowed, revoked_at) = hammer(&gw, &s, 4_000, Some(2_000)).await;
    let revoked_at = revoked_at.expect("the key was revoked mid-run");
    let late: Vec<_> = allowed.iter().filter(|t| **t > revoked_at + Duration::from_secs(1)).collect();
    assert!(late.is_empty(), "{} calls allowed more than a second after the revocation", late.len());
    assert!(allowed.len() >= 1_000 && allowed.len() < 4_000, "{} allowed", allowed.len());
    let (requests, cost) = usage(&gw, &s).await;
    assert_eq!(requests, allowed.len() as i64, "every allowed call billed, no denied one");
    assert_eq!(cost, allowed.len() as i64 * PRICE);
    gw.assert_no_secrets_logged(&[&s.token, &s.ann]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn load_on_sqlite() {
    let _turn = ONE_AT_A_TIME.lock().await;
    ten_thousand_calls_are_counted_exactly(LocalGateway::start(&[])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revocation_under_load_on_sqlite() {
    let _turn = ONE_AT_A_TIME.lock().await;
    a_revocation_stops_calls_within_a_second(LocalGateway::start(&[])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn load_on_dynamodb() {
    let Some(endpoint) = require_aws!() else { return };
    let _turn = ONE_AT_A_TIME.lock().await;
    aws::verify_sender(&endpoint).await;
    ten_thousand_calls_are_counted_exactly(LocalGateway::start_on_aws(&endpoint, &aws::unique_table("load"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revocation_under_load_on_dynamodb() {
    let Some(endpoint) = require_aws!() else { return };
    let _turn = ONE_AT_A_TIME.lock().await;
    aws::verify_sender(&endpoint).await;
    a_revocation_stops_calls_within_a_second(LocalGateway::start_on_aws(&endpoint, &aws::unique_table("revoke"))).await;
}
