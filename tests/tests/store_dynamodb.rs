//! The same conformance suite and concurrency checks as on SQLite, on the DynamoDB-compatible
//! server the test command starts.

use std::sync::Arc;

use keygate::testing::TestApp;
use keygate_tests::{aws, conformance, require_aws, story};
use tokio::sync::Mutex;

/// One burst at a time: the emulator processes requests one by one, so parallel bursts from
/// several tests would only measure its queue (and time out on a loaded machine).
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dynamodb_conforms() {
    let Some(endpoint) = require_aws!() else { return };
    let _turn = ONE_AT_A_TIME.lock().await;
    conformance::run(Arc::new(aws::store(&endpoint, "conformance").await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_parallel_approvals_issue_exactly_one_key_on_dynamodb() {
    let Some(endpoint) = require_aws!() else { return };
    let _turn = ONE_AT_A_TIME.lock().await;
    let app = TestApp::on(Arc::new(aws::store(&endpoint, "approvals").await)).app;
    story::concurrent_approvals_issue_one_key(Arc::new(app)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_parallel_calls_count_exactly_a_thousand_on_dynamodb() {
    let Some(endpoint) = require_aws!() else { return };
    let _turn = ONE_AT_A_TIME.lock().await;
    let app = TestApp::on(Arc::new(aws::store(&endpoint, "metering").await)).app;
    story::concurrent_calls_are_counted_exactly(Arc::new(app), 1000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_issued_keys_page_costs_one_query_per_key_on_dynamodb() {
    let Some(endpoint) = require_aws!() else { return };
    let _turn = ONE_AT_A_TIME.lock().await;
    story::issued_keys_page_costs_one_query_per_key(Arc::new(aws::store(&endpoint, "page").await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_quota_of_fifty_allows_exactly_fifty_of_two_hundred_parallel_calls_on_dynamodb() {
    let Some(endpoint) = require_aws!() else { return };
    let _turn = ONE_AT_A_TIME.lock().await;
    story::a_quota_holds_exactly_under_concurrency(TestApp::on(Arc::new(aws::store(&endpoint, "quota").await))).await;
}

#[tokio::test]
async fn a_quota_set_again_counts_what_was_used_on_dynamodb() {
    let Some(endpoint) = require_aws!() else { return };
    let _turn = ONE_AT_A_TIME.lock().await;
    let t = TestApp::on(Arc::new(aws::store(&endpoint, "quota-again").await));
    story::a_quota_set_again_counts_what_was_used(t).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_billing_export_agrees_with_the_issued_keys_page_on_dynamodb() {
    let Some(endpoint) = require_aws!() else { return };
    let _turn = ONE_AT_A_TIME.lock().await;
    story::the_export_agrees_with_the_issued_keys_page(
        &TestApp::on(Arc::new(aws::store(&endpoint, "export").await)).app,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_allowed_call_writes_once_without_limits_and_twice_with_a_quota_on_dynamodb() {
    let Some(endpoint) = require_aws!() else { return };
    story::store_writes_per_allowed_call(Arc::new(aws::store(&endpoint, "writes").await)).await;
}

#[tokio::test]
async fn pending_counts_follow_every_decision_on_dynamodb() {
    let Some(endpoint) = require_aws!() else { return };
    story::pending_counts_follow_every_decision(&TestApp::on(Arc::new(aws::store(&endpoint, "pending").await)).app)
        .await;
}
