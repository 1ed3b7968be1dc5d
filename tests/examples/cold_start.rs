//! Cold start of a Lambda binary: process start → first answer through a Lambda Runtime API,
//! repeated, with min/median/max. The authorizer runs against the DynamoDB emulator (its first
//! answer includes SDK set-up, key loading and its first store calls); the floor is
//! `hello-lambda`, built the same way.
//!
//! cargo run --release -p keygate-tests --example cold_start -- <authorizer> <hello-lambda> [runs]
//! with KEYGATE_TEST_AWS_ENDPOINT pointing at the emulator (scripts/emulator.py).

use std::sync::Arc;
use std::time::Duration;

use keygate::signing::KeyRing;
use keygate::store::Store;
use keygate::testing::{ISSUER, TestApp};
use keygate_tests::runtime::RuntimeApi;
use keygate_tests::{aws, story};
use serde_json::json;

fn stats(name: &str, mut runs: Vec<Duration>) {
    runs.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name:12} min {:6.2} ms  median {:6.2} ms  max {:6.2} ms  ({} runs)",
        ms(runs[0]),
        ms(runs[runs.len() / 2]),
        ms(runs[runs.len() - 1]),
        runs.len()
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (authorizer, hello) = (std::path::PathBuf::from(&args[1]), std::path::PathBuf::from(&args[2]));
    let n: usize = args.get(3).and_then(|n| n.parse().ok()).unwrap_or(20);
    let endpoint = std::env::var("KEYGATE_TEST_AWS_ENDPOINT").expect("KEYGATE_TEST_AWS_ENDPOINT");

    let store = aws::store(&endpoint, "coldstart").await;
    let table = store.table().to_owned();
    let pem = KeyRing::generate_pem();
    let app = TestApp::with_key(Arc::new(store) as Arc<dyn Store>, &pem).app;
    let s = story::pending_request(&app).await;
    let key = app.approve(&s.owner, &s.project, &s.request).await.unwrap().key;
    let token = app.my_key_token(&s.holder, &key.id).await.unwrap().token;
    let path = format!("/api/projects/{}/data_layers/last", s.project);
    let event = json!({
        "version": "2.0", "type": "REQUEST", "routeKey": "ANY /api/projects/{project}/{proxy+}",
        "rawPath": path, "rawQueryString": "", "cookies": [], "identitySource": [format!("Bearer {}", token.expose())],
        "headers": {"authorization": format!("Bearer {}", token.expose())},
        "requestContext": {"http": {"method": "GET", "path": path}, "accountId": "1", "apiId": "a", "requestId": "r", "routeKey": "$default", "stage": "$default", "timeEpoch": 0},
        "pathParameters": {"project": s.project.to_string(), "proxy": "data_layers/last"},
    });
    let hello_event = json!({
        "version": "2.0", "routeKey": "$default", "rawPath": "/", "rawQueryString": "", "headers": {},
        "requestContext": {"http": {"method": "GET", "path": "/"}, "accountId": "1", "apiId": "a", "requestId": "r", "routeKey": "$default", "stage": "$default", "timeEpoch": 0},
        "isBase64Encoded": false,
    });
    let env = vec![
        ("KEYGATE_TABLE", table),
        ("KEYGATE_DYNAMODB_ENDPOINT", endpoint.clone()),
        ("KEYGATE_SES_ENDPOINT", endpoint.clone()),
        ("KEYGATE_MAIL_FROM", aws::MAIL_FROM.to_owned()),
        ("KEYGATE_CONSOLE_URL", "https://console.example.com".to_owned()),
        ("KEYGATE_ISSUER", ISSUER.to_owned()),
        // As deployed: the authorizer gets the signing key's public half, not the key.
        ("KEYGATE_SIGNING_PUBLIC_KEY", aws::signing_public_key(&pem)),
        ("AWS_ACCESS_KEY_ID", "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ("RUST_LOG", "info".to_owned()),
    ];

    let (mut cold, mut init, mut first_call, mut second) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut floor, mut floor_init) = (Vec::new(), Vec::new());
    let (mut sdk, mut keys) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let runtime = RuntimeApi::start().await;
        let f = runtime.spawn(&authorizer, &env);
        let answer = runtime.invoke(event.clone()).await.expect("an answer");
        let answered = f.started.elapsed();
        assert_eq!(answer["isAuthorized"], true, "{answer}");
        let polled = runtime.first_poll().expect("the function polled") - f.started;
        cold.push(answered);
        init.push(polled);
        first_call.push(answered - polled);
        let t = std::time::Instant::now();
        runtime.invoke(event.clone()).await.expect("an answer");
        second.push(t.elapsed());
        let logs = f.logs();
        let built: serde_json::Value = logs
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|l| l["fields"]["message"] == "application built")
            .unwrap_or_else(|| panic!("no start-up timing in the logs: {logs}"));
        let micros = |field: &str| Duration::from_micros(built["fields"][field].as_u64().unwrap_or_default());
        sdk.push(micros("sdk_us"));
        keys.push(micros("key_us"));
        drop(f);
        let runtime = RuntimeApi::start().await;
        let h = runtime.spawn(&hello, &[]);
        runtime.invoke(hello_event.clone()).await.expect("an answer");
        floor.push(h.started.elapsed());
        floor_init.push(runtime.first_poll().expect("hello polled") - h.started);
    }
    println!("process start -> first answer:");
    stats("authorizer", cold);
    stats("hello floor", floor);
    println!("of which process start -> first poll (exec, SDK set-up, key loading; the floor: exec and runtime):");
    stats("authorizer", init);
    stats("hello floor", floor_init);
    println!("of which, inside the authorizer (its own log):");
    stats("SDK set-up", sdk);
    stats("key loading", keys);
    println!(
        "of which the first call (its store round trips: key record + template in one batch read, role, usage write):"
    );
    stats("authorizer", first_call);
    println!("a second call of the same process (one store write):");
    stats("authorizer", second);
}
