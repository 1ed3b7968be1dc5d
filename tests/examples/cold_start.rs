//! Cold start of the authorizer: process start → first answer through a Lambda Runtime API,
//! repeated, with min/median/max, beside two yardsticks started the same way in the same runs
//! (docs/benchmarks-history.md, "Cold start against its yardsticks"):
//!
//! - the deny path (a token with a forged signature: no store call), for the authorizer, a bare
//!   `lambda_runtime` loop built with the same profile (`tests/yardsticks/bare-lambda`, on
//!   `#[tokio::main]`'s runtime, and again on the authorizer's single-threaded one) and a
//!   typical Node.js authorizer, jose + AWS SDK v3 (`tests/yardsticks/node-authorizer`);
//! - the allow path against the DynamoDB emulator, when `KEYGATE_TEST_AWS_ENDPOINT` names one:
//!   its first answer includes the SDK set-up and the first store calls.
//!
//! scripts/cold-start [runs] builds everything and runs it; by hand:
//! cold_start <authorizer> <bare-lambda> <node-authorizer/bootstrap.mjs or -> [runs]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use keygate::signing::{KeyClaims, KeyRing};
use keygate::store::Store;
use keygate::testing::{ISSUER, TestApp};
use keygate_tests::runtime::RuntimeApi;
use keygate_tests::{aws, story};
use serde_json::{Value, json};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Prints min/median/max and answers the median.
fn stats(name: &str, mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    let median = runs[runs.len() / 2];
    println!(
        "  {name:34} min {:7.2} ms  median {:7.2} ms  max {:7.2} ms  ({} starts)",
        ms(runs[0]),
        ms(median),
        ms(runs[runs.len() - 1]),
        runs.len()
    );
    median
}

/// An HTTP API authorizer event (payload 2.0) for a call with `token` to `project`.
fn authorizer_event(project: &str, token: &str) -> Value {
    let path = format!("/api/projects/{project}/data_layers/last");
    json!({
        "version": "2.0", "type": "REQUEST", "routeKey": "ANY /api/projects/{project}/{proxy+}",
        "rawPath": path, "rawQueryString": "", "cookies": [], "identitySource": [format!("Bearer {token}")],
        "headers": {"authorization": format!("Bearer {token}")},
        "requestContext": {"http": {"method": "GET", "path": path}, "accountId": "1", "apiId": "a", "requestId": "r", "routeKey": "$default", "stage": "$default", "timeEpoch": 0},
        "pathParameters": {"project": project, "proxy": "data_layers/last"},
    })
}

/// The authorizer's environment as deployed: the signing key's public half alone.
fn environment(endpoint: &str, table: &str, pem: &str) -> Vec<(&'static str, String)> {
    vec![
        ("KEYGATE_TABLE", table.to_owned()),
        ("KEYGATE_DYNAMODB_ENDPOINT", endpoint.to_owned()),
        ("KEYGATE_MAIL_FROM", aws::MAIL_FROM.to_owned()),
        ("KEYGATE_CONSOLE_URL", "https://console.example.com".to_owned()),
        ("KEYGATE_ISSUER", ISSUER.to_owned()),
        ("KEYGATE_SIGNING_PUBLIC_KEY", aws::signing_public_key(pem)),
        ("AWS_ACCESS_KEY_ID", "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ("RUST_LOG", "info".to_owned()),
    ]
}

/// One cold start: the process is started, handed `event`, and timed to its first answer.
/// Answers that time, and the time to its first poll (the end of its initialisation).
async fn start(binary: &Path, env: &[(&str, String)], event: &Value, authorized: bool) -> (Duration, Duration, String) {
    let runtime = RuntimeApi::start().await;
    let f = runtime.spawn(binary, env);
    let answer = runtime.invoke(event.clone()).await.unwrap_or_else(|e| panic!("{}: {e}", binary.display()));
    let answered = f.started.elapsed();
    assert_eq!(answer["isAuthorized"], authorized, "{}: {answer}", binary.display());
    let polled = runtime.first_poll().expect("the function polled") - f.started;
    (answered, polled, f.logs())
}

/// How long the authorizer took to build itself, from its own start-up log line.
fn built_in(logs: &str) -> Duration {
    let line: Value = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["fields"]["message"] == "authorizer built")
        .unwrap_or_else(|| panic!("no start-up timing in the logs: {logs}"));
    Duration::from_micros(line["fields"]["start_us"].as_u64().unwrap_or_default())
}

/// A token of the right shape, issuer and key id whose signature does not verify.
fn forged_token(pem: &str) -> String {
    let ring = KeyRing::new(ISSUER, pem, &[]).expect("a signing key");
    let claims = KeyClaims {
        iss: ISSUER.into(),
        sub: "ann".into(),
        aud: "project:p1".into(),
        jti: "k1".into(),
        iat: 0,
        exp: None,
        nbf: None,
        tpl: "t1".into(),
        generation: 0,
        narrowed: None,
    };
    let token = ring.sign(&claims).expect("signed").expose().to_owned();
    let (signed, signature) = token.rsplit_once('.').expect("three parts");
    let mut forged: Vec<u8> = signature.bytes().collect();
    forged[10] = if forged[10] == b'A' { b'B' } else { b'A' };
    format!("{signed}.{}", String::from_utf8(forged).expect("base64url"))
}

async fn deny_path(authorizer: &Path, bare: &Path, node: Option<&Path>, n: usize) {
    let pem = KeyRing::generate_pem();
    // Never called on this path: the signature fails first.
    let env = environment("http://127.0.0.1:9", "unused", &pem);
    let event = authorizer_event("p1", &forged_token(&pem));
    let (mut ours, mut floor, mut floor_single, mut theirs) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut single_env = env.clone();
    single_env.push(("BARE_LAMBDA_RUNTIME", "current_thread".to_owned()));
    let (mut ours_init, mut floor_init, mut ours_built) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        let (answered, polled, logs) = start(authorizer, &env, &event, false).await;
        ours.push(answered);
        ours_init.push(polled);
        ours_built.push(built_in(&logs));
        let (answered, polled, _) = start(bare, &env, &event, false).await;
        floor.push(answered);
        floor_init.push(polled);
        floor_single.push(start(bare, &single_env, &event, false).await.0);
        if let Some(node) = node {
            theirs.push(start(node, &env, &event, false).await.0);
        }
    }
    println!("deny path (forged signature, no store call): process start -> first answer");
    let ours = stats("authorizer", ours);
    let floor = stats("bare lambda_runtime loop", floor);
    println!("  of which process start -> first poll (initialisation):");
    stats("authorizer", ours_init);
    stats("bare lambda_runtime loop", floor_init);
    stats("of which building the authorizer (start_us)", ours_built);
    println!("  authorizer / bare loop (medians): {:.2}", ours.as_secs_f64() / floor.as_secs_f64());
    let single = stats("bare loop, current-thread runtime", floor_single);
    println!("  authorizer / that loop (medians): {:.2}", ours.as_secs_f64() / single.as_secs_f64());
    if !theirs.is_empty() {
        let theirs = stats("Node.js authorizer (jose + SDK v3)", theirs);
        println!("  Node.js / authorizer (medians): {:.1}", theirs.as_secs_f64() / ours.as_secs_f64());
    }
}

async fn allow_path(authorizer: &Path, bare: &Path, endpoint: &str, n: usize) {
    let store = aws::store(endpoint, "coldstart").await;
    let table = store.table().to_owned();
    let pem = KeyRing::generate_pem();
    let app = TestApp::with_key(Arc::new(store) as Arc<dyn Store>, &pem).app;
    let s = story::pending_request(&app).await;
    let key = app.approve(&s.owner, &s.project, &s.request).await.expect("approved").key;
    let token = app.my_key_token(&s.holder, &key.id).await.expect("a token").token;
    let event = authorizer_event(s.project.as_str(), token.expose());
    let env = environment(endpoint, &table, &pem);
    let (mut cold, mut init, mut first_call, mut second, mut built) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut floor = Vec::new();
    for _ in 0..n {
        let runtime = RuntimeApi::start().await;
        let f = runtime.spawn(authorizer, &env);
        let answer = runtime.invoke(event.clone()).await.expect("an answer");
        let answered = f.started.elapsed();
        assert_eq!(answer["isAuthorized"], true, "{answer}");
        let polled = runtime.first_poll().expect("the function polled") - f.started;
        cold.push(answered);
        init.push(polled);
        first_call.push(answered - polled);
        let t = std::time::Instant::now();
        let again = runtime.invoke(event.clone()).await.expect("an answer");
        assert_eq!(again["isAuthorized"], true, "{again}");
        second.push(t.elapsed());
        built.push(built_in(&f.logs()));
        drop(f);
        floor.push(start(bare, &env, &event, false).await.0);
    }
    println!("allow path (store on the emulator at {endpoint}): process start -> first answer");
    stats("authorizer", cold);
    stats("bare lambda_runtime loop (denies)", floor);
    println!("  of which:");
    stats("process start -> first poll", init);
    stats("building it (its own log: start_us)", built);
    stats("the first call (its store calls)", first_call);
    stats("a second call of the same process", second);
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: cold_start <authorizer> <bare-lambda> <node-authorizer/bootstrap.mjs or -> [runs]");
        std::process::exit(2);
    }
    let (authorizer, bare) = (PathBuf::from(&args[1]), PathBuf::from(&args[2]));
    let node = (args[3] != "-").then(|| PathBuf::from(&args[3]));
    let n: usize = args.get(4).and_then(|n| n.parse().ok()).unwrap_or(15);
    deny_path(&authorizer, &bare, node.as_deref(), n).await;
    match std::env::var("KEYGATE_TEST_AWS_ENDPOINT") {
        Ok(endpoint) => allow_path(&authorizer, &bare, &endpoint, n).await,
        Err(_) => println!("allow path: skipped (set KEYGATE_TEST_AWS_ENDPOINT to the emulator's address)"),
    }
}
