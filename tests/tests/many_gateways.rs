//! Three `keygate-local` processes on one DynamoDB table (the test command's emulator), as an
//! operator runs them and as API Gateway runs authorizer instances (issue 30): the quota is
//! exact across all three, a limits change made through one holds on all of them at once, a
//! revocation reaches all within a second, a reroll's grace is honoured by all, each refusal is
//! counted once and the usage totals equal the calls allowed.

use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use keygate_tests::{LocalGateway, Scratch, aws, local_binary, require_aws};
use serde_json::{Value, json};
use tokio::sync::Mutex;

/// One test at a time: the emulator answers one request at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// Three gateways sharing one table, one signing key and one user-token secret.
struct Three {
    gateways: Vec<LocalGateway>,
    owner: String,
    bob: String,
    _shared: Scratch,
}

fn three(endpoint: &str, label: &str) -> Three {
    let shared = Scratch::new("shared-secrets");
    let keygen = Command::new(local_binary()).arg("--data-dir").arg(&shared.0).arg("keygen").output().unwrap();
    assert!(keygen.status.success(), "{}", String::from_utf8_lossy(&keygen.stderr));
    let signing_key = shared.0.join("signing-key.pem");
    std::fs::write(&signing_key, &keygen.stdout).unwrap();
    let secret = shared.0.join("user-token-secret");
    std::fs::write(&secret, format!("a shared secret of the three, {label}")).unwrap();
    let table = aws::unique_table(label);
    let timeout = aws::EMULATOR_ATTEMPT_TIMEOUT.as_millis().to_string();
    let args = [
        "--table",
        &table,
        "--dynamodb-endpoint",
        endpoint,
        "--signing-key-file",
        signing_key.to_str().unwrap(),
        "--user-token-secret-file",
        secret.to_str().unwrap(),
        "--aws-attempt-timeout-ms",
        &timeout,
    ];
    let gateways: Vec<_> = (0..3).map(|_| LocalGateway::start(&args)).collect();
    // A token minted by one is accepted by the others: the secret is shared.
    let owner = token(&gateways[0], &args, "ann");
    let bob = token(&gateways[2], &args, "bob");
    Three { gateways, owner, bob, _shared: shared }
}

fn token(gateway: &LocalGateway, args: &[&str], sub: &str) -> String {
    let out = Command::new(local_binary())
        .arg("--data-dir")
        .arg(&gateway.data.0)
        .args(args)
        .args(["token", "--sub", sub, "--email", &format!("{sub}@example.com")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A key of a new project whose template has `limits`: (project, template, key id, token).
async fn key_with(t: &Three, limits: Value) -> (String, String, String, String) {
    let mut template = json!({"name": "Forecast API", "role": "reader", "price_per_request": 3});
    template.as_object_mut().unwrap().extend(limits.as_object().unwrap().clone());
    let (p, tpl) =
        t.gateways[0].project_with_template(&t.owner, "Weather", ("reader", &["project_view"]), template).await;
    let (key, token) = t.gateways[1].issue_key(&t.owner, &t.bob, &p, &tpl).await;
    (p, tpl, key["id"].as_str().unwrap().to_owned(), token)
}

/// `n` calls at once, spread over the three gateways: the outcome of each (`allowed`, or the
/// refusal's outcome).
async fn calls(t: &Three, project: &str, token: &str, n: usize) -> Vec<String> {
    let path = format!("/api/projects/{project}/data_layers/last");
    let calls = (0..n).map(|i| {
        let gateway = &t.gateways[i % 3];
        let path = path.clone();
        async move {
            let (status, body) = gateway.call("GET", &path, Some(token), None).await;
            match status {
                200 => "allowed".to_owned(),
                _ => body["outcome"].as_str().or(body["limit"].as_str()).unwrap_or("?").to_owned(),
            }
        }
    });
    join_all(calls).await
}

fn count(outcomes: &[String], outcome: &str) -> usize {
    outcomes.iter().filter(|o| *o == outcome).count()
}

/// The key's row on the issued-keys page of today, read through gateway `i`.
async fn row(t: &Three, i: usize, project: &str, key: &str) -> Value {
    let (status, page) = t.gateways[i].call("GET", &format!("/v1/projects/{project}/keys"), Some(&t.owner), None).await;
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().unwrap().iter().find(|r| r["key_id"] == key).cloned().expect("the key's row")
}

/// Refusals are counted after they are answered: waits until the row shows `expected`.
async fn refused_settles(t: &Three, project: &str, key: &str, outcome: &str, expected: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let row = row(t, 2, project, key).await;
        if row["refused"][outcome] == expected || Instant::now() > deadline {
            return row;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_quota_of_one_hundred_allows_exactly_one_hundred_across_three_gateways() {
    let Some(endpoint) = require_aws!() else { return };
    let _turn = ONE_AT_A_TIME.lock().await;
    let t = three(&endpoint, "three-quota");
    let (p, _, key, token) = key_with(&t, json!({"quota": {"requests": 100, "per": "day"}})).await;
    let outcomes = calls(&t, &p, &token, 300).await;
    assert_eq!((count(&outcomes, "allowed"), count(&outcomes, "quota")), (100, 200), "{outcomes:?}");
    let row = refused_settles(&t, &p, &key, "quota", 200).await;
    assert_eq!((row["requests"].as_i64(), row["cost"].as_i64()), (Some(100), Some(300)), "{row}");
    assert_eq!(row["refused"]["quota"], 200, "each refusal counted once: {row}");
    assert_eq!(row["quota"]["used"], 100, "{row}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_templates_quota_changed_through_one_gateway_holds_on_all_three() {
    let Some(endpoint) = require_aws!() else { return };
    let _turn = ONE_AT_A_TIME.lock().await;
    let t = three(&endpoint, "three-template");
    for (from, to, more) in [(200, 100, 40), (100, 200, 140)] {
        let (p, tpl, _, token) = key_with(&t, json!({"quota": {"requests": from, "per": "day"}})).await;
        assert_eq!(count(&calls(&t, &p, &token, 60).await, "allowed"), 60);
        let patch = json!({"quota": {"requests": to, "per": "day"}});
        let (status, answer) = t.gateways[0]
            .call("PATCH", &format!("/v1/projects/{p}/templates/{tpl}"), Some(&t.owner), Some(patch))
            .await;
        assert_eq!(status, 200, "{answer}");
        let outcomes = calls(&t, &p, &token, 300).await;
        assert_eq!(count(&outcomes, "allowed"), more, "{from} → {to} after 60 calls: {outcomes:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_keys_own_quota_set_changed_and_removed_through_one_gateway_holds_on_all_three() {
    let Some(endpoint) = require_aws!() else { return };
    let _turn = ONE_AT_A_TIME.lock().await;
    let t = three(&endpoint, "three-own");
    let (p, _, key, token) = key_with(&t, json!({"quota": {"requests": 100, "per": "day"}})).await;
    assert_eq!(count(&calls(&t, &p, &token, 30).await, "allowed"), 30);
    let limits = |body: Value| {
        let path = format!("/v1/projects/{p}/keys/{key}");
        let (owner, gateway) = (t.owner.clone(), &t.gateways[0]);
        async move {
            let (status, answer) = gateway.call("PATCH", &path, Some(&owner), Some(body)).await;
            assert_eq!(status, 200, "{answer}");
        }
    };
    // Its own 150 and a top-up of 30: 150 more (180 today).
    limits(json!({"quota": {"requests": 150, "per": "day"}})).await;
    limits(json!({"top_up": 30})).await;
    assert_eq!(count(&calls(&t, &p, &token, 300).await, "allowed"), 150);
    // Changed to 200 (the top-up ends with the change): 20 more.
    limits(json!({"quota": {"requests": 200, "per": "day"}})).await;
    assert_eq!(count(&calls(&t, &p, &token, 100).await, "allowed"), 20);
    // Removed: back on the template's 100, with 200 used today: none.
    limits(json!({"quota": null})).await;
    let outcomes = calls(&t, &p, &token, 100).await;
    assert_eq!(count(&outcomes, "quota"), 100, "{outcomes:?}");
    // Refused: 150 + 80 + 100.
    let row = refused_settles(&t, &p, &key, "quota", 330).await;
    assert_eq!((row["requests"].as_i64(), row["refused"]["quota"].as_i64()), (Some(200), Some(330)), "{row}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revocation_through_one_gateway_is_refused_by_all_within_a_second() {
    let Some(endpoint) = require_aws!() else { return };
    let _turn = ONE_AT_A_TIME.lock().await;
    let t = three(&endpoint, "three-revoke");
    let (p, _, key, token) = key_with(&t, json!({})).await;
    // Every gateway has the key's record in memory.
    assert_eq!(count(&calls(&t, &p, &token, 6).await, "allowed"), 6);
    let (status, answer) =
        t.gateways[0].call("DELETE", &format!("/v1/projects/{p}/keys/{key}"), Some(&t.owner), None).await;
    assert_eq!(status, 200, "{answer}");
    let revoked = Instant::now();
    let path = format!("/api/projects/{p}/data_layers/last");
    for gateway in &t.gateways {
        loop {
            let (status, body) = gateway.call("GET", &path, Some(&token), None).await;
            if status == 403 {
                assert_eq!(body["outcome"], "revoked", "{body}");
                break;
            }
            assert!(revoked.elapsed() < Duration::from_secs(1), "still allowed after {:?}", revoked.elapsed());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert!(revoked.elapsed() < Duration::from_millis(1100), "{:?}", revoked.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rerolled_keys_old_token_works_on_all_three_inside_its_grace_and_on_none_after() {
    let Some(endpoint) = require_aws!() else { return };
    let _turn = ONE_AT_A_TIME.lock().await;
    let t = three(&endpoint, "three-reroll");
    let (p, _, key, old) = key_with(&t, json!({})).await;
    assert_eq!(count(&calls(&t, &p, &old, 3).await, "allowed"), 3);
    let (status, rerolled) = t.gateways[1]
        .call("POST", &format!("/v1/projects/{p}/keys/{key}/reroll"), Some(&t.bob), Some(json!({"grace_seconds": 3})))
        .await;
    assert_eq!(status, 200, "{rerolled}");
    let new = rerolled["token"].as_str().unwrap().to_owned();
    let inside = calls(&t, &p, &old, 6).await;
    assert_eq!(count(&inside, "allowed"), 6, "the old token inside its grace: {inside:?}");
    let new_at_once = calls(&t, &p, &new, 6).await;
    assert_eq!(count(&new_at_once, "allowed"), 6, "the new token at once on all three: {new_at_once:?}");
    tokio::time::sleep(Duration::from_millis(4000)).await;
    let after = calls(&t, &p, &old, 6).await;
    assert_eq!(count(&after, "rerolled"), 6, "the old token after its grace: {after:?}");
    assert_eq!(count(&calls(&t, &p, &new, 3).await, "allowed"), 3);
    let row = refused_settles(&t, &p, &key, "rerolled", 6).await;
    assert_eq!((row["requests"].as_i64(), row["refused"]["rerolled"].as_i64()), (Some(18), Some(6)), "{row}");
}

/// Calls as fast as three callers per gateway can make them, over the first `gateways`
/// gateways, for `seconds`: (calls allowed, seconds from the first call sent to the last
/// answer).
async fn rate_through(t: &Three, gateways: usize, project: &str, token: &str, seconds: f64) -> (usize, f64) {
    let path = format!("/api/projects/{project}/data_layers/last");
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let callers = (0..gateways * 3).map(|i| {
        let (gateway, path) = (&t.gateways[i % gateways], path.clone());
        async move {
            let mut allowed = 0;
            while Instant::now() < deadline {
                let (status, body) = gateway.call("GET", &path, Some(token), None).await;
                match status {
                    200 => allowed += 1,
                    429 => assert_eq!(body["limit"], "rate_limit", "{body}"),
                    _ => panic!("{status} {body}"),
                }
            }
            allowed
        }
    });
    let allowed = join_all(callers).await.into_iter().sum();
    (allowed, started.elapsed().as_secs_f64())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_strict_rate_limit_holds_across_three_gateways() {
    let Some(endpoint) = require_aws!() else { return };
    let _turn = ONE_AT_A_TIME.lock().await;
    let t = three(&endpoint, "three-strict");
    let (p, _, _, token) = key_with(&t, json!({"rate_limit": {"per_second": 5, "burst": 5, "mode": "strict"}})).await;
    let (allowed, took) = rate_through(&t, 3, &p, &token, 4.0).await;
    let most = 5.0 + 5.0 * took;
    assert!(allowed as f64 <= most, "{allowed} allowed in {took:.2} s: at most {most:.1}");
    assert!(allowed as f64 >= 0.9 * most, "{allowed} allowed in {took:.2} s: at least 90 % of {most:.1}");
    // With a quota too, the rate lives on the quota's counter: both hold.
    let limits =
        json!({"quota": {"requests": 12, "per": "day"}, "rate_limit": {"per_second": 5, "burst": 5, "mode": "strict"}});
    let (p, _, _, token) = key_with(&t, limits).await;
    // Each burst is 30 calls at once through the three gateways: 5 allowed, and one more for
    // every 200 ms the burst itself took (a busy host may take that long to send it).
    let (first, a1) = burst(&t, &p, &token).await;
    assert!(a1 >= 5, "the burst at once: {first:?}");
    assert_eq!(count(&first, "rate_limit"), 30 - a1, "{first:?}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (second, a2) = burst(&t, &p, &token).await;
    assert!(a2 >= 5, "a burst again: {second:?}");
    assert_eq!(count(&second, "rate_limit"), 30 - a2, "{second:?}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (last, a3) = burst(&t, &p, &token).await;
    assert_eq!(a1 + a2 + a3, 12, "then the quota's last ones, exactly: {first:?} {second:?} {last:?}");
    assert_eq!(count(&last, "quota"), 30 - a3, "{last:?}");
}

/// 30 calls at once through the three gateways to a key limited to 5 a second with a burst of
/// 5: its outcomes and the allowed ones, checked against what the burst's own duration allows.
async fn burst(t: &Three, project: &str, token: &str) -> (Vec<String>, usize) {
    let started = std::time::Instant::now();
    let outcomes = calls(t, project, token, 30).await;
    let took = started.elapsed().as_secs_f64();
    let allowed = count(&outcomes, "allowed");
    let most = 5 + (5.0 * took).floor() as usize;
    assert!((1..=most).contains(&allowed), "{allowed} allowed in a burst of {took:.2} s, at most {most}: {outcomes:?}");
    (outcomes, allowed)
}

/// The figures of BENCHMARKS.md, "Limits across instances": allowed calls per second for
/// one key limited to 5 a second (burst 5), `local` and `strict`, through 1, 2 and 3 gateways
/// on one table. `cargo test -p keygate-tests --test many_gateways -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a measurement for BENCHMARKS.md, not a check"]
async fn rates_through_one_two_and_three_gateways() {
    let Some(endpoint) = require_aws!() else { return };
    let _turn = ONE_AT_A_TIME.lock().await;
    let t = three(&endpoint, "three-rates");
    println!("| mode | gateways | allowed | seconds | allowed per second | limit (5 + 5 t) |");
    println!("|---|---|---|---|---|---|");
    for mode in ["local", "strict"] {
        for gateways in 1..=3 {
            let limits = json!({"rate_limit": {"per_second": 5, "burst": 5, "mode": mode}});
            let (p, _, _, token) = key_with(&t, limits).await;
            let (allowed, took) = rate_through(&t, gateways, &p, &token, 4.0).await;
            println!(
                "| {mode} | {gateways} | {allowed} | {took:.2} | {:.1} | {:.1} |",
                allowed as f64 / took,
                5.0 + 5.0 * took
            );
        }
    }
}
