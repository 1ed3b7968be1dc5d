//! Faults: an unreachable store answers 503 with Retry-After and the authorizer denies (fails
//! closed); mail that SES rejects or cannot take is kept and delivered once SES is back; a
//! transaction that fails half-way leaves no rows behind; a metering write whose answer is lost
//! is not counted twice, nor one that times out; a store that never answers is given up on
//! within the AWS timeouts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use keygate::mail::SesMailer;
use keygate::service::Notification;
use keygate::store::dynamodb::DynamoStore;
use keygate::store::{Increment, ItemKey, Store, StoreError, Write};
use keygate::testing::{TestApp, call, call_response, user};
use keygate_tests::proxy::{LossyProxy, Silent};
use keygate_tests::{aws, require_aws, story};
use serde_json::json;

/// A port nothing listens on: connections are refused at once.
const CLOSED: &str = "http://127.0.0.1:9";

async fn unreachable_store() -> Arc<dyn Store> {
    let clients = aws::clients(CLOSED).await;
    Arc::new(DynamoStore::new(clients.dynamodb, "unreachable"))
}

#[tokio::test]
async fn an_unreachable_store_is_503_with_retry_after() {
    let t = TestApp::on(unreachable_store().await);
    let response = call_response(&t.app, "POST", "/v1/projects", Some(&user("ann")), Some(json!({"name": "p"}))).await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let project = keygate::ids::ProjectId::generate();
    let (status, problem) =
        call(&t.app, "GET", &format!("/v1/projects/{project}/templates"), Some(&user("ann")), None).await;
    assert_eq!(status, 503, "{problem}");
    assert!(!problem["detail"].as_str().unwrap().contains("127.0.0.1"), "no internals in the answer");
}

#[tokio::test]
async fn the_authorizer_fails_closed_when_the_store_is_unreachable() {
    // A real key, issued on a working store, then checked by an instance whose store is down.
    let working = TestApp::new();
    let s = story::pending_request(&working.app).await;
    let key = working.app.approve(&s.owner, &s.project, &s.request).await.unwrap().key;
    let token = working.app.my_key_token(&s.holder, &key.id).await.unwrap().token;
    let down = working.app.with(
        unreachable_store().await,
        working.app.mailer.clone(),
        working.app.keys.clone(),
        working.app.clock.clone(),
    );
    let path = format!("/api/projects/{}/data_layers/last", s.project);
    let down = keygate::authorizer::Authorizer::of(&down);
    let verdict = down.authorize(&http::Method::GET, &path, Some(&format!("Bearer {}", token.expose()))).await;
    assert_eq!(verdict, Err(keygate::authorizer::Denial::StoreFailed));
}

#[tokio::test]
async fn a_failed_import_leaves_no_secret_behind() {
    let t = TestApp::new();
    let s = story::pending_request(&t.app).await;
    let approval = call(
        &t.app,
        "POST",
        &format!("/v1/projects/{}/requests/{}/approve", s.project, s.request),
        Some(&s.owner),
        None,
    )
    .await
    .1;
    let (_, client) = call(&t.app, "POST", "/v1/projects", Some(&s.holder), Some(json!({"name": "Client"}))).await;
    let c = client["id"].as_str().unwrap();
    let (status, _) = call(
        &t.app,
        "PUT",
        &format!("/v1/projects/{c}/secrets/srv_input"),
        Some(&s.holder),
        Some(json!({"value": "mine"})),
    )
    .await;
    assert_eq!(status, 200);
    let import = json!({"key_id": approval["key"]["id"], "prefix": "srv"});
    let (status, problem) =
        call(&t.app, "POST", &format!("/v1/projects/{c}/secrets/import"), Some(&s.holder), Some(import)).await;
    assert_eq!(status, 409);
    assert_eq!(problem["conflicting_names"], json!(["srv_input"]));
    let (_, secrets) =
        call(&t.app, "GET", &format!("/v1/projects/{c}/secrets?reveal=true"), Some(&s.holder), None).await;
    let names: Vec<&str> = secrets["items"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["srv_input"], "nothing of the failed import was written");
    assert_eq!(secrets["items"][0]["value"], "mine", "and nothing was overwritten");
}

async fn approve_with_broken_mail_then_recover(endpoint: &str, broken: SesMailer) {
    aws::verify_sender(endpoint).await;
    let store: Arc<dyn Store> = Arc::new(aws::store(endpoint, "mailfault").await);
    let t = TestApp::on(store.clone());
    let broken_app = t.app.with(store.clone(), Arc::new(broken), t.app.keys.clone(), t.app.clock.clone());
    let s = story::pending_request(&broken_app).await;
    let approval = broken_app.approve(&s.owner, &s.project, &s.request).await.unwrap();
    assert_eq!(approval.notification, Notification::Pending, "the approval stands and says mail is pending");
    let keys = broken_app.my_keys(&s.holder, &Default::default()).await.unwrap();
    assert_eq!(keys.items.len(), 1, "the key was issued");

    // SES is back: the retry (the scheduled function on AWS) delivers the kept mail, once.
    let working = SesMailer::new(aws::clients(endpoint).await.ses, aws::MAIL_FROM.into());
    let clock = Arc::new(keygate::clock::ManualClock::new(chrono::Utc::now() + chrono::Duration::minutes(1)));
    let recovered = broken_app.with(store, Arc::new(working), broken_app.keys.clone(), clock);
    assert!(recovered.retry_pending().await.unwrap() >= 1);
    let to_holder = aws::sent_mail(endpoint).await.into_iter().filter(|m| m.contains(approval.key.id.as_str())).count();
    assert_eq!(to_holder, 1, "the approval mail arrived exactly once");
    assert_eq!(recovered.retry_pending().await.unwrap(), 0);
}

#[tokio::test]
async fn mail_is_kept_while_ses_is_unreachable_and_delivered_after() {
    let Some(endpoint) = require_aws!() else { return };
    let unreachable = SesMailer::new(aws::clients(CLOSED).await.ses, aws::MAIL_FROM.into());
    approve_with_broken_mail_then_recover(&endpoint, unreachable).await;
}

#[tokio::test]
async fn mail_is_kept_while_ses_rejects_it_and_delivered_after() {
    let Some(endpoint) = require_aws!() else { return };
    let rejecting = SesMailer::new(aws::clients(&endpoint).await.ses, "keygate@unverified.example.org".into());
    approve_with_broken_mail_then_recover(&endpoint, rejecting).await;
}

/// A metering write whose answer is lost may have been applied: it is not sent again (the
/// call is denied), so it is never counted twice; the next write goes through.
#[tokio::test]
async fn a_lost_answer_to_a_metering_write_is_not_counted_twice() {
    let Some(endpoint) = require_aws!() else { return };
    let direct = aws::store(&endpoint, "lost-answer").await;
    let proxy = LossyProxy::start(&endpoint).await;
    let through = DynamoStore::new(aws::clients(&proxy.url).await.dynamodb, direct.table());
    let key = ItemKey::new("usage#key", "2026-11-24T06");
    let meter = || vec![Write::Increment(Increment::new(key.clone(), vec![("requests", 1)], "{}".into()))];

    proxy.lose_next_answer_to("DynamoDB_20120810.UpdateItem");
    let lost = through.transact(meter()).await;
    assert!(proxy.lost_one(), "the proxy lost the answer");
    assert!(matches!(lost, Err(StoreError::Unavailable(_))), "{lost:?}");
    let counted = |item: Option<keygate::store::Item>| item.map_or(0, |i| i.counter("requests"));
    assert_eq!(counted(direct.get(&key).await.unwrap()), 1, "applied once, not retried");

    through.transact(meter()).await.unwrap();
    assert_eq!(counted(direct.get(&key).await.unwrap()), 2);
}

/// A store whose connections hang (accepted, never answered) is given up on within the AWS
/// timeouts: the authorizer denies and an operation answers 503, long before the functions'
/// own time limits would end them with a bare 500.
#[tokio::test]
async fn a_store_that_never_answers_is_given_up_on_within_the_timeouts() {
    let silent = Silent::start().await;
    let mut config = aws::config(&silent.url, "silent");
    let timeouts = keygate::config::AwsTimeouts {
        connect: Duration::from_secs(1),
        attempt: Duration::from_millis(200),
        operation: Duration::from_millis(600),
    };
    config.aws_timeouts = timeouts;
    let hung: Arc<dyn Store> =
        Arc::new(DynamoStore::new(keygate::config::Clients::new(&config).await.dynamodb, "silent"));
    let working = TestApp::new();
    let s = story::pending_request(&working.app).await;
    let key = working.app.approve(&s.owner, &s.project, &s.request).await.unwrap().key;
    let token = working.app.my_key_token(&s.holder, &key.id).await.unwrap().token;
    let down =
        working.app.with(hung.clone(), working.app.mailer.clone(), working.app.keys.clone(), working.app.clock.clone());
    let path = format!("/api/projects/{}/data_layers/last", s.project);
    let bearer = format!("Bearer {}", token.expose());

    // Without timeouts the calls below would wait forever; the outer limit turns that into a failure.
    let limit = Duration::from_secs(20);
    let started = Instant::now();
    let authorizer = keygate::authorizer::Authorizer::of(&down);
    let verdict = tokio::time::timeout(limit, authorizer.authorize(&http::Method::GET, &path, Some(&bearer))).await;
    let took = started.elapsed();
    assert_eq!(verdict, Ok(Err(keygate::authorizer::Denial::StoreFailed)), "after {took:?}");
    assert!(took >= timeouts.attempt && took < timeouts.operation * 3, "gave up after {took:?}");
    assert!(silent.connections() >= 1, "the store was asked");

    let t = TestApp::on(hung);
    let started = Instant::now();
    let ann = user("ann");
    let create = call_response(&t.app, "POST", "/v1/projects", Some(&ann), Some(json!({"name": "p"})));
    let response = tokio::time::timeout(limit, create).await.expect("an answer, not a hang");
    let took = started.elapsed();
    assert_eq!(response.status(), 503, "after {took:?}");
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    assert!(took < timeouts.operation * 3, "gave up after {took:?}");
}

/// A metering write whose attempt times out may have been applied: it is sent once, while a
/// read in the same conditions is retried on a new connection.
#[tokio::test]
async fn a_metering_write_that_times_out_is_sent_once() {
    let timeouts = keygate::config::AwsTimeouts {
        connect: Duration::from_secs(1),
        attempt: Duration::from_millis(200),
        // Room for the SDK's retries (its first backoff is at most 1 s): only the write skips them.
        operation: Duration::from_secs(5),
    };
    let store_on = |silent: &Silent| {
        let mut config = aws::config(&silent.url, "silent");
        config.aws_timeouts = timeouts;
        async move { DynamoStore::new(keygate::config::Clients::new(&config).await.dynamodb, "silent") }
    };
    let key = ItemKey::new("usage#key", "2026-11-24T06");

    let silent = Silent::start().await;
    let write = Write::Increment(Increment::new(key.clone(), vec![("requests", 1)], "{}".into()));
    let result = store_on(&silent).await.transact(vec![write]).await;
    assert!(matches!(result, Err(StoreError::Unavailable(_))), "{result:?}");
    assert_eq!(silent.connections(), 1, "the write was sent once");

    let silent = Silent::start().await;
    let result = store_on(&silent).await.get(&key).await;
    assert!(matches!(result, Err(StoreError::Unavailable(_))), "{result:?}");
    assert!(silent.connections() >= 2, "the read was retried: {} connection(s)", silent.connections());
}
